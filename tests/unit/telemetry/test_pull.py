"""``lepton_ops.telemetry.pull`` and ``telemetry pull``: real services on 127.0.0.1 scraped in
parallel, their metrics mapped and stored; a dead, hung or token-refusing service; the
token sent but never shown; the watch loop and Ctrl-C."""

from __future__ import annotations

import io
import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from service_support import TOKEN, Worker, aggregator
from telemetry_pull_support import (
    CLI_SCRIPT,
    inventory_file,
    port_of,
    run_pull,
    spy_on,
    state_with_token,
    stopped,
)

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.inventory import load_fleet
from lepton_ops.telemetry import CATALOGUE, HistoryStore, MetricType, Scope, history_path
from lepton_ops.telemetry.catalogue import PULLED, PULLED_METRICS
from lepton_ops.telemetry.export import write_prometheus
from lepton_ops.telemetry.exposition import parse_exposition, reduce_samples
from lepton_ops.telemetry.pull import (
    Puller,
    PullResult,
    ServiceTarget,
    fleet_targets,
    pull,
    service_targets,
    watch,
)

# --------------------------------------------------------------------------- the table

EXPOSITION = """\
# HELP lepton_http_requests_total HTTP requests answered.
# TYPE lepton_http_requests_total counter
lepton_http_requests_total{endpoint="/healthz",method="GET",service="worker",status="200"} 7.0
lepton_http_requests_total{endpoint="/v1/shards/run",method="POST",status="500"} 2.0
lepton_http_requests_total{endpoint="unmatched",method="GET",service="worker",status="404"} 1.0
lepton_http_requests_created{endpoint="/healthz",method="GET",service="worker",status="200"} 1.7e+09
# TYPE lepton_http_request_seconds histogram
lepton_http_request_seconds_bucket{endpoint="/healthz",le="0.005",service="worker",status="200"} 7.0
lepton_http_request_seconds_bucket{endpoint="/healthz",le="+Inf",service="worker",status="200"} 7.0
lepton_http_request_seconds_count{endpoint="/healthz",service="worker",status="200"} 7.0
lepton_http_request_seconds_sum{endpoint="/healthz",service="worker",status="200"} 0.25
lepton_http_request_seconds_sum{endpoint="/v1/shards/run",service="worker",status="500"} 0.5
# TYPE lepton_http_errors_total counter
lepton_http_errors_total{class="5xx",endpoint="/v1/shards/run",service="worker"} 2.0
lepton_http_errors_total{class="4xx",endpoint="unmatched",service="worker"} 1.0
# TYPE lepton_shards_done_total counter
lepton_shards_done_total{kind="mean",service="worker"} 3.0
lepton_shards_done_total{kind="pi",service="worker"} 4.0
lepton_shards_duplicate_total{kind="mean",service="worker"} NaN
# TYPE lepton_process_resident_memory_bytes gauge
lepton_process_resident_memory_bytes{service="worker"} 6.5e+07
some_other_metric 12
"""


def test_pulled_metrics_are_service_scoped_prometheus_names_apart_from_the_catalogue() -> None:
    names = [entry.spec.name for entry in PULLED_METRICS]
    assert len(set(names)) == len(names) == len(PULLED)
    assert not set(names) & {spec.name for spec in CATALOGUE}
    for entry in PULLED_METRICS:
        spec = entry.spec
        assert spec.scope is Scope.SERVICE and spec.labels == ("node", "service")
        assert spec.name.startswith("lepton_service_") and spec.help.endswith(".")
        assert spec.name.endswith("_total") == (spec.type is MetricType.COUNTER)
        assert spec.read({}) is None  # nothing of it is in a node's facts


def test_exposition_is_reduced_to_the_pulled_metrics() -> None:
    values = reduce_samples(parse_exposition(EXPOSITION))
    assert values == {
        "lepton_service_process_rss_bytes": 6.5e7,
        "lepton_service_requests_total": 10.0,
        "lepton_service_request_seconds_total": 0.75,
        "lepton_service_errors_total": 3.0,
        "lepton_service_server_errors_total": 2.0,
        "lepton_service_shards_done_total": 7.0,
        # shards_duplicate: its one value is NaN, so it is left out (never stored as 0)
    }


def test_the_scrape_itself_gives_up_and_milliseconds() -> None:
    values = reduce_samples([("up", {}, 1.0), ("scrape_duration_seconds", {}, 0.0042)])
    assert values["lepton_service_up"] == 1.0
    assert values["lepton_service_scrape_ms"] == pytest.approx(4.2)
    # A service that answered without a counter's series has counted nothing yet: 0.
    assert values["lepton_service_shards_done_total"] == 0.0
    assert "lepton_service_process_rss_bytes" not in values  # a gauge is not made up
    down = reduce_samples([("up", {}, 0.0), ("lepton_shards_done_total", {}, 3.0)])
    assert down == {"lepton_service_up": 0.0, "lepton_service_shards_done_total": 3.0}


@pytest.mark.parametrize(
    "text",
    ["<html><body>Welcome</body></html>", '{"status": "ok"}', "lepton_shards_done_total x\n"],
)
def test_text_that_is_not_prometheus_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_exposition(text)


def test_parse_of_a_real_worker(make_worker: Callable[..., Worker]) -> None:
    worker = make_worker()
    with httpx.Client(base_url=worker.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for _ in range(3):
            c.get("/healthz")
        c.get("/no-such-page")
        text = c.get("/metrics").text
    values = reduce_samples(parse_exposition(text))
    assert values["lepton_service_requests_total"] == 4.0
    assert values["lepton_service_errors_total"] == 1.0
    assert values["lepton_service_process_rss_bytes"] > 1 << 20
    assert values["lepton_service_request_seconds_total"] > 0
    assert "lepton_service_server_errors_total" not in values


# --------------------------------------------------------------------------- targets


def test_targets_from_the_inventory(tmp_path: Path) -> None:
    inventory = inventory_file(
        tmp_path / "inventory.yml",
        {
            "node1": {"ansible_host": "127.0.1.1"},
            "node2": {"ansible_host": "127.0.1.2", "lepton_worker_port": 9001},
            "node3": {"ansible_host": "127.0.1.3", "lepton_aggregator_port": "9000"},
        },
        aggregator="node3",
    )
    targets = service_targets(load_fleet(inventory))
    assert [(t.node, t.service, t.url) for t in targets] == [
        ("node1", "lepton-worker", "http://127.0.1.1:8701"),
        ("node2", "lepton-worker", "http://127.0.1.2:9001"),
        ("node3", "lepton-worker", "http://127.0.1.3:8701"),
        ("node3", "lepton-aggregator", "http://127.0.1.3:9000"),
    ]
    assert [t.node for t in fleet_targets(inventory, limit="node2")] == ["node2"]


def test_bad_ports_and_an_inventory_without_services_are_bad_input(tmp_path: Path) -> None:
    bad = inventory_file(
        tmp_path / "bad.yml",
        {"node1": {"ansible_host": "127.0.1.1", "lepton_worker_port": "x"}},
        None,
    )
    with pytest.raises(BadInput, match="node1: lepton_worker_port must be a port number"):
        fleet_targets(bad)
    plain = tmp_path / "plain.yml"
    plain.write_text("all:\n  hosts:\n    node1: {ansible_host: 127.0.1.1}\n")
    with pytest.raises(BadInput, match="no lepton services"):
        fleet_targets(plain)


def test_missing_token_is_bad_input(tmp_path: Path) -> None:
    inventory = inventory_file(tmp_path / "i.yml", {"node1": {"ansible_host": "127.0.1.1"}}, None)
    with pytest.raises(BadInput, match=r"no service token at .*deploy first"):
        pull(inventory, tmp_path / "state")


# --------------------------------------------------------------------------- a small fleet


class Fleet:
    """node1: worker + aggregator on 127.0.0.1; node2: a worker reached as ``localhost``."""

    def __init__(self, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask],
                 token_file: Path) -> None:  # fmt: skip
        self.worker1 = make_worker()
        self.worker2 = make_worker()
        agg_app = aggregator(
            token_file, tmp_path / "agg.sqlite", [self.worker1, self.worker2], [1, 1]
        )
        apps.append(agg_app)
        self.aggregator = Worker(agg_app)
        self.spies = [spy_on(w) for w in (self.worker1, self.worker2, self.aggregator)]
        self.state = state_with_token(tmp_path / "state")
        self.inventory = inventory_file(
            tmp_path / "inventory.yml",
            {
                "node1": {
                    "ansible_host": "127.0.0.1",
                    "lepton_worker_port": port_of(self.worker1),
                    "lepton_aggregator_port": port_of(self.aggregator),
                },
                "node2": {"ansible_host": "localhost", "lepton_worker_port": port_of(self.worker2)},
            },
            aggregator="node1",
        )

    def store(self) -> HistoryStore:
        return HistoryStore(history_path(self.state))

    def close(self) -> None:
        if not self.aggregator.dead:
            self.aggregator.stop()


@pytest.fixture
def fleet(
    tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask], token_file: Path
) -> Iterator[Fleet]:
    made = Fleet(tmp_path, make_worker, apps, token_file)
    yield made
    made.close()


def _latest(store: HistoryStore) -> dict[tuple[str, str, str], float]:
    return {
        (row.node, row.metric, row.labels.get("service", "")): row.value for row in store.latest()
    }


def test_pull_stores_every_service(fleet: Fleet) -> None:
    result = pull(fleet.inventory, fleet.state)
    assert result.source == "pull"
    assert [(r.target.node, r.target.service, r.up) for r in result.readings] == [
        ("node1", "lepton-worker", True),
        ("node1", "lepton-aggregator", True),
        ("node2", "lepton-worker", True),
    ]
    assert result.up == 3 and result.down == 0 and result.missing == 0
    assert result.collection.nodes_ok == 2 and result.collection.nodes_failed == 0
    assert result.collection.incidents == 0
    with fleet.store() as store:
        latest = _latest(store)
        (collection,) = store.collections()
        assert collection.source == "pull" and collection.samples == result.collection.samples
        assert store.incidents() == []
    for node, service in (
        ("node1", "lepton-worker"),
        ("node1", "lepton-aggregator"),
        ("node2", "lepton-worker"),
    ):
        assert latest[node, "lepton_service_up", service] == 1.0
        assert 0 < latest[node, "lepton_service_scrape_ms", service] < 2000
        assert latest[node, "lepton_service_process_rss_bytes", service] > 1 << 20
    assert {metric for _, metric, _ in latest} <= set(PULLED)
    # Every service got its own request, with the token.
    assert [spy.seen for spy in fleet.spies] == [[f"Bearer {TOKEN}"]] * 3


def test_counters_follow_the_services(fleet: Fleet) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(5):
            client.get(f"{fleet.worker2.url}/healthz")
        client.get(f"{fleet.worker2.url}/v1/kinds", headers={"Authorization": "Bearer wrong"})
    first = pull(fleet.inventory, fleet.state)
    values = {
        r.target.node: r.values for r in first.readings if r.target.service == "lepton-worker"
    }
    assert values["node2"]["lepton_service_requests_total"] == 6.0  # 5 health checks + the 401
    assert values["node2"]["lepton_service_errors_total"] == 1.0
    assert values["node1"]["lepton_service_requests_total"] == 0.0  # nothing before its scrape
    second = pull(fleet.inventory, fleet.state)
    again = {
        r.target.node: r.values for r in second.readings if r.target.service == "lepton-worker"
    }
    assert again["node1"]["lepton_service_requests_total"] == 1.0  # the first scrape


def test_a_dead_service_is_down_and_the_rest_is_stored(fleet: Fleet) -> None:
    with stopped(fleet.worker2):
        result = pull(fleet.inventory, fleet.state, timeout=2.0)
    by_node = {(r.target.node, r.target.service): r for r in result.readings}
    dead = by_node["node2", "lepton-worker"]
    assert dead.up is False and dead.values == {"lepton_service_up": 0.0}
    assert dead.error is not None and "\n" not in dead.error
    assert by_node["node1", "lepton-worker"].up and by_node["node1", "lepton-aggregator"].up
    assert result.collection.nodes_ok == 1 and result.collection.nodes_failed == 1
    with fleet.store() as store:
        latest = _latest(store)
        (incident,) = store.incidents()
    assert latest["node2", "lepton_service_up", "lepton-worker"] == 0.0
    assert ("node2", "lepton_service_scrape_ms", "lepton-worker") not in latest
    assert latest["node1", "lepton_service_up", "lepton-aggregator"] == 1.0
    assert (incident.node, incident.kind, incident.subject) == (
        "node2",
        "health_check_failed",
        "lepton-worker",
    )
    assert f"{fleet.worker2.url.replace('127.0.0.1', 'localhost')}/metrics" in incident.detail


def test_a_hung_service_costs_the_timeout_not_more(
    tmp_path: Path, make_worker: Callable[..., Worker]
) -> None:
    hang = threading.Event()
    live, hung = make_worker(), make_worker(hang=hang)
    hang.set()
    targets = [
        ServiceTarget("node1", "lepton-worker", "127.0.0.1", port_of(live), "http"),
        ServiceTarget("node2", "lepton-worker", "localhost", port_of(hung), "http"),
    ]
    try:
        with HistoryStore(tmp_path / "t.sqlite3") as store, Puller(
            targets, TOKEN, store, timeout=0.5
        ) as puller:  # fmt: skip
            started = time.monotonic()
            result = puller.sample()
            elapsed = time.monotonic() - started
    finally:
        hang.clear()
    assert elapsed < 1.5
    assert [r.up for r in result.readings] == [True, False]
    assert result.readings[1].error is not None and "timed out" in result.readings[1].error


def test_a_refused_token_is_down_without_showing_the_token(
    tmp_path: Path, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    target = ServiceTarget("node1", "lepton-worker", "127.0.0.1", port_of(worker), "http")
    wrong = "not-the-token-0123456789abcdef"
    with HistoryStore(tmp_path / "t.sqlite3") as store, Puller([target], wrong, store) as puller:
        (reading,) = puller.sample().readings
    assert reading.up is False and reading.error is not None
    assert "401" in reading.error and wrong not in reading.error


def test_the_token_is_sent_but_never_logged_printed_or_stored(
    fleet: Fleet, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log each request at DEBUG
    with stopped(fleet.worker1):
        result = pull(fleet.inventory, fleet.state)
        cli = run_pull(
            monkeypatch, "-i", str(fleet.inventory), "--state-dir", str(fleet.state), "-vv"
        )
        cli_json = run_pull(
            monkeypatch, "-i", str(fleet.inventory), "--state-dir", str(fleet.state), "--json"
        )
    assert fleet.spies[1].seen[0] == f"Bearer {TOKEN}"
    assert "HTTP Request: GET" in caplog.text  # the requests were logged, their headers not
    shown = [caplog.text, repr(result), json.dumps(result.to_dict()), cli.stdout, cli.stderr]
    shown += [cli_json.stdout, cli_json.stderr]
    for text in shown:
        assert TOKEN not in text
    stored = b"".join(path.read_bytes() for path in history_path(fleet.state).parent.iterdir())
    assert TOKEN.encode() not in stored


# --------------------------------------------------------------------------- watching


def _fake_result() -> PullResult:
    return PullResult("pull", (), None, 0.0)  # type: ignore[arg-type]


def test_watch_samples_until_ctrl_c() -> None:
    sleeps: list[float] = []
    seen: list[PullResult] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    taken = watch(_fake_result, 2.0, seen.append, sleep=sleep, clock=lambda: 100.0)
    assert taken == 3 and len(seen) == 3
    assert sleeps == [2.0, 2.0, 2.0]


def test_watch_keeps_the_pace_and_goes_on_after_a_failed_sample() -> None:
    now = [0.0]
    calls = [0]
    errors: list[OperationFailed] = []

    def sample() -> PullResult:
        calls[0] += 1
        now[0] += 0.5  # each sample takes half a second
        if calls[0] == 2:
            raise OperationFailed("Prometheus at http://127.0.0.1:1 is not answering")
        return _fake_result()

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    seen: list[PullResult] = []
    taken = watch(
        sample, 2.0, seen.append, on_error=errors.append, sleep=sleep, clock=lambda: now[0],
        max_samples=4,
    )  # fmt: skip
    assert taken == 4 and len(seen) == 3 and len(errors) == 1
    assert sleeps == [1.5, 1.5, 1.5]
    calls[0] = 1  # the next sample fails: without on_error, it ends the watch
    with pytest.raises(OperationFailed):
        watch(sample, 2.0, seen.append, sleep=sleep, clock=lambda: now[0])


@pytest.mark.parametrize("interval", [0.0, -1.0, math.inf, math.nan])
def test_watch_needs_a_positive_interval(interval: float) -> None:
    with pytest.raises(BadInput, match="--watch"):
        watch(_fake_result, interval, lambda _: None, max_samples=1)


def test_watch_from_the_command_line_stops_on_ctrl_c_with_exit_0(fleet: Fleet) -> None:
    script = fleet.state.parent / "cli.py"
    script.write_text(CLI_SCRIPT.format(paths=[str(Path(__file__).parents[1])]))
    process = subprocess.Popen(
        [
            sys.executable, str(script), "telemetry", "pull", "-i", str(fleet.inventory),
            "--state-dir", str(fleet.state), "--watch", "0.2", "--json",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    samples = [json.loads(line) for line in lines + rest.splitlines() if line.strip()]
    assert len(samples) >= 3
    ids = [sample["collection_id"] for sample in samples]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(sample["up"] == 3 and sample["source"] == "pull" for sample in samples)
    assert "Traceback" not in err and TOKEN not in err


# --------------------------------------------------------------------------- the command


def _pull(monkeypatch: pytest.MonkeyPatch, fleet: Fleet, *args: str) -> Any:
    return run_pull(monkeypatch, "-i", str(fleet.inventory), "--state-dir", str(fleet.state), *args)


def test_command_table_and_json(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    with stopped(fleet.worker2):
        shown = _pull(monkeypatch, fleet)
        as_json = _pull(monkeypatch, fleet, "--json")
    assert shown.code == 0, shown.stderr
    assert "2/3 services up" in shown.stdout and "…" not in shown.stdout
    assert "node2 worker: [Errno 111] Connection refused" in shown.stdout
    for text in ("node1", "node2", "aggregator", "worker", "down", "RSS MiB"):
        assert text in shown.stdout
    assert as_json.code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["source"] == "pull" and data["up"] == 2 and data["down"] == 1
    assert data["collection_id"] == 2 and data["nodes"] == 2 and data["services"] == 3
    down = [r for r in data["readings"] if not r["up"]]
    assert [(r["node"], r["service"]) for r in down] == [("node2", "lepton-worker")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--source", "carrier-pigeon"), "'carrier-pigeon' is not one of 'services', 'prometheus'"),
        (("--prometheus-url", "http://127.0.0.1:9090"), "--prometheus-url is only read with"),
        (("--window", "5m"), "--window is only read with --source prometheus"),
        (("--watch", "0"), "--watch needs a number of seconds greater than 0"),
        (("--timeout", "-1"), "the timeout must be more than 0 seconds"),
        (("--limit", "node9"), "--limit node9: no host or group named node9"),
    ],
)
def test_command_bad_input_is_one_line_exit_2(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    result = _pull(monkeypatch, fleet, *args)
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("lepton-ops: error: ") and message in result.stderr


def test_command_without_a_token_is_one_line_exit_2(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = run_pull(
        monkeypatch, "-i", str(fleet.inventory), "--state-dir", str(tmp_path / "empty")
    )
    assert result.code == 2 and "no service token at" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_prometheus_export_knows_the_pulled_metrics() -> None:
    stream = io.StringIO()
    row = ("node1", "lepton_service_requests_total", '{"service":"lepton-worker"}', 1.0, 5.0)
    write_prometheus(stream, [row])
    text = stream.getvalue()
    assert "# TYPE lepton_service_requests_total counter" in text
    assert "without a catalogue entry" not in text
