"""``telemetry pull --source prometheus``: the same series, read from a Prometheus server.

A fleet that already runs Prometheus has it scrape the services' ``/metrics``; then
lepton-ops need not scrape them itself. :class:`PrometheusSource` asks the server's HTTP
API (``GET /api/v1/query_range``) for the exposition samples that the pulled metrics are
made of (:data:`~lepton_ops.telemetry.catalogue.PULLED_METRICS`, Prometheus's own ``up`` and
``scrape_duration_seconds`` included) over a window, reduces them exactly as a pull does,
and stores them with ``source="prometheus"``, each point at Prometheus's time.

Series are matched to the inventory's services by their ``instance`` label: ``host:port``
where ``host`` is a node's address (``ansible_host``) or name and ``port`` its service's
port; a series of a known host on another port is matched by its ``service`` label
(``worker``, ``aggregator``). Series of other targets are ignored. A service Prometheus
has nothing on is reported (``up`` None) and stores nothing. A point where ``up`` is 0 is
a ``health_check_failed`` incident, recorded once however often the window is read.

The window is aligned to the step, so reading it again gives the same timestamps: a
point already stored is not stored twice. Any failure of the server (not answering, an
HTTP error, ``"status": "error"``, not JSON, not a matrix) is one OperationFailed line.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.telemetry.catalogue import SAMPLE_NAMES, UP_METRIC
from lepton_ops.telemetry.exposition import RawSample, reduce_samples
from lepton_ops.telemetry.facts import Incident, IncidentKind
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.pull import (
    APP_SERVICES,
    DEFAULT_TIMEOUT_S,
    PullResult,
    ServiceReading,
    ServiceTarget,
    check_timeout,
    describe,
    fleet_targets,
    node_outcomes,
)
from lepton_ops.telemetry.records import CollectionSource

#: How far back a sample reads by default, and the resolution of what it reads.
DEFAULT_WINDOW_S = 300.0
DEFAULT_STEP_S = 15.0
#: Prometheus refuses a range query of more points per series than this.
MAX_POINTS = 11_000
QUERY_RANGE_PATH = "/api/v1/query_range"

Matrix = list[tuple[dict[str, str], list[tuple[float, float]]]]


def prometheus_query() -> str:
    """The PromQL selector of every sample name the pulled metrics read."""
    names = "|".join(re.escape(name) for name in sorted(SAMPLE_NAMES))
    return f'{{__name__=~"{names}"}}'


def check_url(url: str) -> str:
    """``url`` without a trailing slash if it is an http(s) URL with a host; else BadInput."""
    text = str(url).strip()
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadInput(
            f"--prometheus-url {url!r} is not an http(s) URL with a host "
            f"(e.g. http://prometheus.example:9090)"
        )
    if parsed.query or parsed.fragment:
        raise BadInput(f"--prometheus-url {url!r}: give the server's base URL, without a query")
    return text.rstrip("/")


class PrometheusClient:
    """The one call of Prometheus's HTTP API this needs: a range query."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        check_timeout(timeout)
        self.base_url = check_url(base_url)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self._http.close()

    def query_range(self, query: str, start: float, end: float, step: float) -> Matrix:
        """``(labels, [(ts, value), ...])`` of each series; OperationFailed on any failure."""
        params = {"query": query, "start": _num(start), "end": _num(end), "step": _num(step)}
        where = f"Prometheus at {self.base_url}"
        try:
            response = self._http.get(f"{self.base_url}{QUERY_RANGE_PATH}", params=params)
        except httpx.HTTPError as exc:
            raise OperationFailed(f"{where} is not answering: {describe(exc)}") from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise OperationFailed(
                f"{where} answered {response.status_code} to the range query: "
                f"{_error_text(body) or response.reason_phrase or 'no reason given'}"
            )
        if not isinstance(body, dict):
            raise OperationFailed(f"{where} answered the range query with something not JSON")
        if body.get("status") != "success":
            raise OperationFailed(
                f"{where}: the range query failed: {_error_text(body) or 'no reason given'}"
            )
        return _matrix(body.get("data"), where)


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _error_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [str(body[key]) for key in ("errorType", "error") if body.get(key)]
    return " ".join(": ".join(parts).split())[:300]


def _matrix(data: Any, where: str) -> Matrix:
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        kind = data.get("resultType") if isinstance(data, dict) else None
        raise OperationFailed(f"{where} answered the range query without a matrix (got {kind!r})")
    result = data.get("result")
    if not isinstance(result, list):
        raise OperationFailed(f"{where} answered the range query without a result list")
    matrix: Matrix = []
    for index, entry in enumerate(result):
        try:
            labels = entry["metric"]
            values = entry["values"]
            if not isinstance(labels, dict) or not isinstance(values, list):
                raise TypeError
            points = [(float(ts), float(value)) for ts, value in values]
        except (KeyError, TypeError, ValueError):
            raise OperationFailed(
                f"{where} answered the range query with a malformed series (result[{index}])"
            ) from None
        matrix.append(({str(k): str(v) for k, v in labels.items()}, points))
    return matrix


# ----------------------------------------------------------------------------- matching


class InstanceMap:
    """Which inventory service a series is about, from its ``instance`` label."""

    def __init__(self, targets: Sequence[ServiceTarget]) -> None:
        self._by_port: dict[tuple[str, int], ServiceTarget] = {}
        self._by_service: dict[tuple[str, str], ServiceTarget] = {}
        for target in targets:
            for host in (target.address.lower(), target.node.lower()):
                self._by_port.setdefault((host, target.port), target)
                self._by_service.setdefault((host, target.service), target)

    def target(self, labels: Mapping[str, str]) -> ServiceTarget | None:
        host, port = _split_instance(labels.get("instance", ""))
        if not host:
            return None
        if port is not None and (host, port) in self._by_port:
            return self._by_port[host, port]
        service = APP_SERVICES.get(labels.get("service", ""))
        if service is not None:
            return self._by_service.get((host, service))
        return None


def _split_instance(instance: str) -> tuple[str, int | None]:
    text = instance.strip().lower()
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    port = int(port_text) if port_text.isdigit() else None
    return host, port


# ----------------------------------------------------------------------------- the source


class PrometheusSource:
    """Reads the services' series from Prometheus, again and again (:meth:`sample`)."""

    def __init__(
        self,
        url: str,
        targets: Sequence[ServiceTarget],
        store: HistoryStore,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        step_s: float = DEFAULT_STEP_S,
        timeout: float = DEFAULT_TIMEOUT_S,
        owns_store: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not targets:
            raise BadInput("nothing to read: no lepton services given")
        check_window(window_s, step_s)
        self.client = PrometheusClient(url, timeout=timeout)
        self.targets = tuple(targets)
        self.store = store
        self.window_s = float(window_s)
        self.step_s = float(step_s)
        self._instances = InstanceMap(self.targets)
        self._owns_store = owns_store
        self._clock = clock

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        if self._owns_store:
            self.store.close()

    def window(self) -> tuple[float, float]:
        """``(start, end)`` of the next read: the last ``window_s``, on multiples of the step."""
        now = float(self._clock())
        end = math.floor(now / self.step_s) * self.step_s
        start = math.floor((end - self.window_s) / self.step_s) * self.step_s
        return start, end

    def read(
        self, window: tuple[float, float] | None = None
    ) -> dict[ServiceTarget, dict[float, dict[str, float]]]:
        """Per service, the pulled metrics at each time Prometheus has in ``window`` (default:
        :meth:`window`); nothing is stored."""
        start, end = window or self.window()
        matrix = self.client.query_range(prometheus_query(), start, end, self.step_s)
        raw: dict[ServiceTarget, dict[float, list[RawSample]]] = {}
        for labels, points in matrix:
            target = self._instances.target(labels)
            name = labels.get("__name__", "")
            if target is None or name not in SAMPLE_NAMES:
                continue
            per_ts = raw.setdefault(target, {})
            for ts, value in points:
                per_ts.setdefault(ts, []).append((name, labels, value))
        return {
            target: {ts: reduce_samples(samples) for ts, samples in sorted(per_ts.items())}
            for target, per_ts in raw.items()
        }

    def sample(self) -> PullResult:
        """Read the window and store it (source ``prometheus``)."""
        started = time.perf_counter()
        started_at = time.time()
        start, end = self.window()
        series = self.read((start, end))
        readings: list[ServiceReading] = []
        points: dict[ServiceTarget, list[tuple[float, dict[str, float]]]] = {}
        incidents: dict[ServiceTarget, list[Incident]] = {}
        seen = {
            (incident.node, incident.subject, incident.ts)
            for incident in self.store.incidents(
                since=start, until=end, kind=IncidentKind.HEALTH_CHECK_FAILED.value
            )
        }
        for target in self.targets:
            per_ts = {ts: values for ts, values in series.get(target, {}).items() if values}
            if not per_ts:
                readings.append(
                    ServiceReading(
                        target,
                        None,
                        end,
                        error=f"Prometheus has no series of instance {target.instance}",
                    )
                )
                continue
            points[target] = list(per_ts.items())
            incidents[target] = [
                _down(target, ts)
                for ts, values in per_ts.items()
                if values.get(UP_METRIC) == 0.0 and (target.node, target.service, ts) not in seen
            ]
            latest_ts = max(per_ts)
            latest = per_ts[latest_ts]
            up = latest.get(UP_METRIC, 1.0) != 0.0
            error = None if up else f"Prometheus: up is 0 at {_when(latest_ts)}"
            readings.append(ServiceReading(target, up, latest_ts, dict(latest), error))
        outcomes = node_outcomes(readings, points, incidents=incidents)
        record = self.store.record_collection(
            outcomes, CollectionSource.PROMETHEUS, started_at=started_at
        )
        return PullResult(
            CollectionSource.PROMETHEUS.value,
            tuple(readings),
            record,
            time.perf_counter() - started,
        )


def _down(target: ServiceTarget, ts: float) -> Incident:
    return Incident(
        target.node,
        IncidentKind.HEALTH_CHECK_FAILED,
        f"service {target.service} was down in Prometheus (up 0 for {target.instance})",
        ts,
        subject=target.service,
    )


def _when(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def check_window(window_s: float, step_s: float) -> None:
    for what, value in (("window", window_s), ("step", step_s)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"the Prometheus {what} must be a number of seconds, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise BadInput(f"the Prometheus {what} must be more than 0 seconds, got {value!r}")
    if window_s / step_s > MAX_POINTS:
        raise BadInput(
            f"a window of {window_s:g} s at a step of {step_s:g} s is more than {MAX_POINTS} "
            f"points per series, which Prometheus refuses: use a shorter window or longer step"
        )


def open_prometheus_source(
    url: str,
    inventory: Path,
    state_dir: Path,
    *,
    limit: str | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    step_s: float = DEFAULT_STEP_S,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> PrometheusSource:
    """A :class:`PrometheusSource` of the inventory's services into the state dir's store."""
    check_url(url)
    check_window(window_s, step_s)
    check_timeout(timeout)
    targets = fleet_targets(inventory, limit)
    store = HistoryStore(history_path(state_dir))
    try:
        return PrometheusSource(
            url,
            targets,
            store,
            window_s=window_s,
            step_s=step_s,
            timeout=timeout,
            owns_store=True,
        )
    except BaseException:
        store.close()
        raise


def pull_prometheus(
    url: str,
    inventory: Path,
    state_dir: Path,
    *,
    limit: str | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    step_s: float = DEFAULT_STEP_S,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> PullResult:
    """Read the services' series from Prometheus once and store them."""
    with open_prometheus_source(
        url,
        inventory,
        state_dir,
        limit=limit,
        window_s=window_s,
        step_s=step_s,
        timeout=timeout,
    ) as source:
        return source.sample()


__all__ = [
    "DEFAULT_STEP_S",
    "DEFAULT_WINDOW_S",
    "InstanceMap",
    "PrometheusClient",
    "PrometheusSource",
    "check_url",
    "open_prometheus_source",
    "prometheus_query",
    "pull_prometheus",
]
