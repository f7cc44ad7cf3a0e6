"""``telemetry pull --source prometheus``: the same series read from a Prometheus server's
``query_range`` API, here a small fake that speaks its JSON on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from telemetry_pull_support import inventory_file, run_pull

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.telemetry import HistoryStore, history_path
from lepton_ops.telemetry.catalogue import SAMPLE_NAMES
from lepton_ops.telemetry.prometheus_source import (
    InstanceMap,
    PrometheusClient,
    PrometheusSource,
    check_url,
    prometheus_query,
    pull_prometheus,
)
from lepton_ops.telemetry.pull import ServiceTarget

STEP = 15.0
END = 1_699_999_995.0  # a multiple of the step
NOW = END + 7.0
START = END - 60.0  # the tests' window: 60 s, 5 points
TIMES = [START + STEP * index for index in range(5)]

#: A series: its labels, and its value at a time (None: no point then).
Value = Callable[[float], float | None]


@dataclass
class FakePrometheus:
    """Answers ``GET /api/v1/query_range`` with every series at every step of the range."""

    series: list[tuple[dict[str, str], Value]] = field(default_factory=list)
    #: when set, the answer instead: (status, body bytes)
    answer: tuple[int, bytes] | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def respond(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        if path != "/api/v1/query_range":
            return 404, b"404 page not found"
        self.requests.append(query)
        if self.answer is not None:
            return self.answer
        start, end, step = (float(query[key]) for key in ("start", "end", "step"))
        times = [start + step * index for index in range(int((end - start) / step) + 1)]
        result = []
        for labels, value in self.series:
            values = [[ts, _text(v)] for ts in times if (v := value(ts)) is not None]
            if values:
                result.append({"metric": labels, "values": values})
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return 200, json.dumps(body).encode()


def _text(value: float) -> str:
    return "NaN" if value != value else repr(float(value))


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            status, body = fake.respond(parts.path, query)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    fake.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


TARGETS = [
    ServiceTarget("node1", "lepton-worker", "127.0.1.1", 8701),
    ServiceTarget("node1", "lepton-aggregator", "127.0.1.1", 8700),
    ServiceTarget("node2", "lepton-worker", "127.0.1.2", 8701),
    ServiceTarget("node3", "lepton-worker", "127.0.1.3", 8701),
]


def const(value: float) -> Value:
    return lambda ts: value


def healthz_requests(ts: float) -> float:
    return (ts - 1_699_999_000.0) / 10


def fleet_series(fake: FakePrometheus, *, node2_down_at: float | None = None) -> None:
    """node1's worker and aggregator and node2's worker as Prometheus scrapes them; node3 is
    not scraped; another exporter's target is there too."""

    def node2_up(ts: float) -> float:
        return 0.0 if node2_down_at is not None and ts >= node2_down_at else 1.0

    def while_up(value: float) -> Value:
        return lambda ts: value if node2_up(ts) else None

    w1 = {"instance": "127.0.1.1:8701", "job": "lepton"}
    agg = {"instance": "127.0.1.1:8700", "job": "lepton"}
    w2 = {"instance": "node2:8701", "job": "lepton"}  # by inventory name, not address
    fake.series = [
        ({"__name__": "up", **w1}, const(1)),
        ({"__name__": "up", **agg}, const(1)),
        ({"__name__": "up", **w2}, node2_up),
        ({"__name__": "up", "instance": "10.9.9.9:9100", "job": "node"}, const(1)),
        ({"__name__": "scrape_duration_seconds", **w1}, const(0.004)),
        ({"__name__": "scrape_duration_seconds", **agg}, const(0.006)),
        (
            {"__name__": "lepton_http_requests_total", **w1, "service": "worker",
             "endpoint": "/healthz", "method": "GET", "status": "200"},
            healthz_requests,
        ),
        (
            {"__name__": "lepton_http_requests_total", **w1, "service": "worker",
             "endpoint": "/v1/shards/run", "method": "POST", "status": "500"},
            const(2),
        ),
        (
            {"__name__": "lepton_http_errors_total", **w1, "service": "worker",
             "endpoint": "/v1/shards/run", "class": "5xx"},
            const(2),
        ),
        (
            {"__name__": "lepton_http_errors_total", **w1, "service": "worker",
             "endpoint": "unmatched", "class": "4xx"},
            const(5),
        ),
        (
            {"__name__": "lepton_shards_done_total", **w1, "service": "worker", "kind": "pi"},
            const(9),
        ),
        # The aggregator's RSS, on a port that is not the inventory's: matched by `service`.
        (
            {"__name__": "lepton_process_resident_memory_bytes", "service": "aggregator",
             "instance": "127.0.1.1:9999", "job": "lepton-extra"},
            const(5e7),
        ),
        (
            {"__name__": "lepton_process_resident_memory_bytes", **w2, "service": "worker"},
            while_up(4e7),
        ),
        ({"__name__": "lepton_shards_done_total", "instance": "10.9.9.9:9100"}, const(1)),
    ]  # fmt: skip


def source(fake: FakePrometheus, store: HistoryStore, **kwargs: Any) -> PrometheusSource:
    return PrometheusSource(
        fake.url, TARGETS, store, step_s=STEP, clock=lambda: NOW, **{"window_s": 60.0, **kwargs}
    )


# --------------------------------------------------------------------------- query and window


def test_the_query_names_every_sample_the_pulled_metrics_read() -> None:
    query = prometheus_query()
    assert query.startswith('{__name__=~"') and query.endswith('"}')
    assert set(query[len('{__name__=~"') : -2].replace("\\", "").split("|")) == SAMPLE_NAMES


def test_the_window_is_aligned_to_the_step(prometheus: FakePrometheus, tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "t.sqlite3") as store, source(prometheus, store) as src:
        assert src.window() == (START, END)
        src.sample()
    (request,) = prometheus.requests
    assert request["query"] == prometheus_query()
    assert (request["start"], request["end"], request["step"]) == (
        "1699999935",
        "1699999995",
        "15",
    )


# --------------------------------------------------------------------------- mapping and storing


def test_series_are_mapped_to_the_inventory_and_stored(
    prometheus: FakePrometheus, tmp_path: Path
) -> None:
    fleet_series(prometheus)
    with HistoryStore(tmp_path / "t.sqlite3") as store:
        with source(prometheus, store) as src:
            result = src.sample()
        series = {(s.node, s.metric, s.labels["service"]): s.points for s in store.series()}
        (collection,) = store.collections()
    assert result.source == collection.source == "prometheus"
    by_target = {(r.target.node, r.target.service): r for r in result.readings}
    worker1 = by_target["node1", "lepton-worker"]
    assert worker1.up is True and worker1.ts == END
    assert worker1.values == {
        "lepton_service_up": 1.0,
        "lepton_service_scrape_ms": pytest.approx(4.0),
        "lepton_service_requests_total": healthz_requests(END) + 2,  # two series summed
        "lepton_service_request_seconds_total": 0.0,
        "lepton_service_errors_total": 7.0,
        "lepton_service_server_errors_total": 2.0,
        "lepton_service_shards_done_total": 9.0,
        "lepton_service_shards_duplicate_total": 0.0,
    }
    aggregator = by_target["node1", "lepton-aggregator"]
    assert aggregator.values["lepton_service_process_rss_bytes"] == 5e7
    assert by_target["node2", "lepton-worker"].values["lepton_service_process_rss_bytes"] == 4e7
    missing = by_target["node3", "lepton-worker"]
    assert missing.up is None and missing.values == {}
    assert missing.error == "Prometheus has no series of instance 127.0.1.3:8701"
    assert (result.up, result.down, result.missing) == (3, 0, 1)
    # Every point of the window, at Prometheus's times.
    requests = series["node1", "lepton_service_requests_total", "lepton-worker"]
    assert requests == [(ts, healthz_requests(ts) + 2) for ts in TIMES]
    assert [ts for ts, _ in series["node2", "lepton_service_up", "lepton-worker"]] == TIMES
    assert not any(node == "node3" for node, _, _ in series)
    assert collection.nodes_ok == 2 and collection.nodes_failed == 0
    assert (
        collection.samples
        == result.collection.samples
        == len(TIMES) * sum(len(r.values) for r in result.readings)
    )


def test_a_down_point_is_an_incident_once_and_reading_again_stores_nothing_twice(
    prometheus: FakePrometheus, tmp_path: Path
) -> None:
    fleet_series(prometheus, node2_down_at=TIMES[3])  # the last two points
    with HistoryStore(tmp_path / "t.sqlite3") as store, source(prometheus, store) as src:
        first = src.sample()
        second = src.sample()
        incidents = store.incidents()
        up = {
            ts: v
            for s in store.series(node="node2")
            for ts, v in s.points
            if s.metric.endswith("_up")
        }
    node2 = next(r for r in first.readings if r.target.node == "node2")
    assert node2.up is False and node2.error is not None and "up is 0" in node2.error
    assert node2.values == {"lepton_service_up": 0.0}
    assert first.collection.nodes_failed == 1 and first.collection.incidents == 2
    assert [(i.node, i.kind, i.subject, i.ts) for i in incidents] == [
        ("node2", "health_check_failed", "lepton-worker", TIMES[3]),
        ("node2", "health_check_failed", "lepton-worker", TIMES[4]),
    ]
    assert second.collection.samples == 0 and second.collection.incidents == 0
    assert up == dict(zip(TIMES, [1.0, 1.0, 1.0, 0.0, 0.0], strict=True))


def test_instances_match_by_address_or_name_then_by_service_label() -> None:
    instances = InstanceMap(TARGETS)
    assert instances.target({"instance": "127.0.1.2:8701"}) == TARGETS[2]
    assert instances.target({"instance": "NODE2:8701"}) == TARGETS[2]
    assert instances.target({"instance": "127.0.1.1:1234", "service": "aggregator"}) == TARGETS[1]
    assert instances.target({"instance": "127.0.1.1:1234"}) is None
    assert instances.target({"instance": "127.0.1.9:8701"}) is None
    assert instances.target({"job": "lepton"}) is None
    v6 = ServiceTarget("node6", "lepton-worker", "fd00::6", 8701, "http")
    assert InstanceMap([v6]).target({"instance": "[fd00::6]:8701"}) == v6
    assert v6.url == "http://[fd00::6]:8701"


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            b'{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\""}',
            'answered 400 to the range query: bad_data: invalid parameter "query"',
        ),
        (503, b"Service Unavailable\n", "answered 503 to the range query: Service Unavailable"),
        (
            200,
            b'{"status":"error","errorType":"timeout","error":"query timed out\\nin eval"}',
            "the range query failed: timeout: query timed out in eval",
        ),
        (200, b"<html>not json</html>", "answered the range query with something not JSON"),
        (
            200,
            b'{"status":"success","data":{"resultType":"vector","result":[]}}',
            "answered the range query without a matrix (got 'vector')",
        ),
        (
            200,
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{}}]}}',
            "with a malformed series (result[0])",
        ),
        (
            200,
            b'{"status":"success","data":{"resultType":"matrix","result":'
            b'[{"metric":{},"values":[[1,"x"]]}]}}',
            "with a malformed series (result[0])",
        ),
    ],
)
def test_a_failing_server_is_one_operation_failed_line(
    prometheus: FakePrometheus, tmp_path: Path, status: int, body: bytes, message: str
) -> None:
    prometheus.answer = (status, body)
    with HistoryStore(tmp_path / "t.sqlite3") as store, source(prometheus, store) as src:
        with pytest.raises(OperationFailed) as failed:
            src.sample()
        assert store.collections() == []
    text = str(failed.value)
    assert text.startswith(f"Prometheus at {prometheus.url}") and message in text
    assert "\n" not in text


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = PrometheusClient(f"http://127.0.0.1:{port}/", timeout=1.0)
    with pytest.raises(OperationFailed, match=r"is not answering: .*Connection refused"):
        client.query_range("up", 0, 60, 15)
    client.close()


@pytest.mark.parametrize(
    "url", ["127.0.0.1:9090", "ftp://127.0.0.1", "http://", "http://127.0.0.1:9090/?q=1", ""]
)
def test_bad_urls_are_bad_input(url: str) -> None:
    with pytest.raises(BadInput, match="--prometheus-url"):
        check_url(url)


def test_a_window_of_too_many_points_is_bad_input(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "t.sqlite3") as store, pytest.raises(BadInput, match="11000"):
        PrometheusSource("http://127.0.0.1:9", TARGETS, store, window_s=86_400 * 7, step_s=15)


# --------------------------------------------------------------------------- the command


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return inventory_file(
        tmp_path / "inventory.yml",
        {
            "node1": {"ansible_host": "127.0.1.1"},
            "node2": {"ansible_host": "127.0.1.2"},
            "node3": {"ansible_host": "127.0.1.3"},
        },
        aggregator="node1",
    )


def test_library_call_reads_the_inventory(
    prometheus: FakePrometheus, inventory: Path, tmp_path: Path
) -> None:
    fleet_series(prometheus)
    result = pull_prometheus(prometheus.url, inventory, tmp_path / "state", window_s=30, step_s=15)
    assert [(r.target.node, r.target.service, r.up) for r in result.readings] == [
        ("node1", "lepton-worker", True),
        ("node1", "lepton-aggregator", True),
        ("node2", "lepton-worker", True),
        ("node3", "lepton-worker", None),
    ]
    with HistoryStore(history_path(tmp_path / "state")) as store:
        assert [c.source for c in store.collections()] == ["prometheus"]


def test_command_with_prometheus(
    prometheus: FakePrometheus,
    inventory: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet_series(prometheus)
    common = (
        "-i",
        str(inventory),
        "--state-dir",
        str(tmp_path / "state"),
        "--source",
        "prometheus",
    )
    shown = run_pull(monkeypatch, *common, "--prometheus-url", prometheus.url, "--window", "1m")
    assert shown.code == 0, shown.stderr
    assert "3/4 services up, 1 not in Prometheus" in shown.stdout
    assert "node3 worker: Prometheus has no series of instance 127.0.1.3:8701" in shown.stdout
    as_json = run_pull(monkeypatch, *common, "--prometheus-url", prometheus.url, "--json")
    assert as_json.code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["source"] == "prometheus" and (data["up"], data["missing"]) == (3, 1)
    assert float(prometheus.requests[-1]["end"]) - float(prometheus.requests[-1]["start"]) >= 300

    missing = run_pull(monkeypatch, *common)
    assert missing.code == 2 and "--source prometheus needs --prometheus-url" in missing.stderr
    bad = run_pull(monkeypatch, *common, "--prometheus-url", "prometheus:9090")
    assert bad.code == 2 and bad.stderr.count("\n") == 1
    step = run_pull(monkeypatch, *common, "--prometheus-url", prometheus.url, "--step", "0s")
    assert step.code == 2 and "bad duration '0s'" in step.stderr

    prometheus.answer = (200, b'{"status":"error","errorType":"internal","error":"boom"}')
    failed = run_pull(monkeypatch, *common, "--prometheus-url", prometheus.url)
    assert failed.code == 1
    assert failed.stderr == (
        f"lepton-ops: error: Prometheus at {prometheus.url}: the range query failed: "
        "internal: boom\n"
    )
