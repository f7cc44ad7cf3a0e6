"""The fast path: read the services' ``/metrics`` over HTTP, in parallel, without Ansible.

:func:`pull` asks every lepton service of the inventory for its Prometheus metrics - the
worker (port ``lepton_worker_port``, default 8701) on each host of ``workers``, the
aggregator (``lepton_aggregator_port``, default 8700) on the ``aggregator`` host - with
the controller's bearer token, all at once (one shared ``httpx.Client``, one thread per
service), parses the answers with ``prometheus_client`` and stores one collection
(``source="pull"``). A watch loop keeps a :class:`Puller` open and calls
:meth:`Puller.sample` every few seconds: the inventory is read and the token loaded once.

The pulled series are the catalogue's ``service``-origin metrics
(:data:`~lepton_ops.telemetry.catalogue.PULLED_METRICS`); the scraped text becomes their
values in :mod:`~lepton_ops.telemetry.exposition`, as it does for a Prometheus server's
samples (its ``up`` and ``scrape_duration_seconds`` are what this module measures for
itself). Histogram buckets and ``_created`` series are not kept.

A service that does not answer (refused, timed out, 401, not Prometheus text) gets
``lepton_service_up`` = 0, nothing else (a value it did not report is not stored as 0),
and a ``health_check_failed`` incident naming it; its node is still recorded. One node's
failure never raises. Note that a service run by several gunicorn processes answers from
one of them: its counters are that process's.
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lepton_ops.credentials.tls import fleet_ssl_context
from lepton_ops.credentials.tokens import load_scrape_token
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.inventory import Fleet, load_fleet
from lepton_ops.inventory.fleet import AGGREGATOR_GROUP, WORKERS_GROUP, Node
from lepton_ops.telemetry.catalogue import SCRAPE_SAMPLE, UP_SAMPLE
from lepton_ops.telemetry.exposition import parse_exposition, reduce_samples
from lepton_ops.telemetry.facts import (
    Incident,
    IncidentKind,
    NodeOutcome,
    NodeStatus,
    Sample,
)
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.records import CollectionRecord, CollectionSource

#: Seconds a service has to answer ``/metrics`` (connecting included).
DEFAULT_TIMEOUT_S = 2.0
WORKER_SERVICE = "lepton-worker"
AGGREGATOR_SERVICE = "lepton-aggregator"
WORKER_PORT_VAR = "lepton_worker_port"
AGGREGATOR_PORT_VAR = "lepton_aggregator_port"
DEFAULT_WORKER_PORT = 8701
DEFAULT_AGGREGATOR_PORT = 8700
#: The ``service`` label the apps put on their own metrics -> the facts' service name.
APP_SERVICES = {"worker": WORKER_SERVICE, "aggregator": AGGREGATOR_SERVICE}

# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class ServiceTarget:
    """One service to scrape: which node runs it, which service, where."""

    node: str
    service: str
    address: str
    port: int
    #: ``https`` (verified against the fleet's CA), or ``http`` where the inventory sets
    #: ``lepton_insecure_http``.
    scheme: str = "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.instance}"

    @property
    def instance(self) -> str:
        """``address:port``, as Prometheus labels the target."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def service_targets(fleet: Fleet) -> list[ServiceTarget]:
    """The services of the fleet: a worker per host of ``workers``, the aggregator's."""
    targets: list[ServiceTarget] = []
    for node in fleet.nodes:
        if node.is_worker:
            targets.append(_target(node, WORKER_SERVICE, WORKER_PORT_VAR, DEFAULT_WORKER_PORT))
        if node.is_aggregator:
            targets.append(
                _target(node, AGGREGATOR_SERVICE, AGGREGATOR_PORT_VAR, DEFAULT_AGGREGATOR_PORT)
            )
    return targets


def fleet_targets(inventory: Path, limit: str | None = None) -> list[ServiceTarget]:
    """The services of the inventory's hosts (after ``limit``); BadInput if there is none."""
    fleet = load_fleet(inventory, limit)
    targets = service_targets(fleet)
    if not targets:
        raise BadInput(
            f"inventory {inventory} has no lepton services to read"
            + (f" within --limit {limit}" if limit else "")
            + f": no host is in the '{WORKERS_GROUP}' or '{AGGREGATOR_GROUP}' group"
        )
    return targets


def _target(node: Node, service: str, port_var: str, default: int) -> ServiceTarget:
    raw = node.vars.get(port_var, default)
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise BadInput(f"host {node.name}: {port_var} must be a port number, got {raw!r}")
    return ServiceTarget(node.name, service, node.address, port, node.scheme)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ServiceReading:
    """What one sample got from one service."""

    target: ServiceTarget
    #: True: it answered; False: it did not; None: the source has nothing on it
    #: (Prometheus does not scrape it)
    up: bool | None
    #: when (the scrape's start, or the source's latest point)
    ts: float
    #: pulled metric name -> value (the latest, for a source with many points)
    values: dict[str, float] = field(default_factory=dict)
    #: why it is not up (one line, never the token)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.target.node,
            "service": self.target.service,
            "url": self.target.url,
            "up": self.up,
            "ts": self.ts,
            "error": self.error,
            "values": dict(self.values),
        }


@dataclass(frozen=True)
class PullResult:
    """One sample of the services, as stored."""

    source: str
    readings: tuple[ServiceReading, ...]
    collection: CollectionRecord
    #: wall time of the sample: requests, parse and store
    seconds: float

    @property
    def up(self) -> int:
        return sum(1 for reading in self.readings if reading.up)

    @property
    def down(self) -> int:
        return sum(1 for reading in self.readings if reading.up is False)

    @property
    def missing(self) -> int:
        return sum(1 for reading in self.readings if reading.up is None)

    def to_dict(self) -> dict[str, Any]:
        nodes = sorted({reading.target.node for reading in self.readings})
        return {
            "source": self.source,
            "collection_id": self.collection.id,
            "nodes": len(nodes),
            "services": len(self.readings),
            "up": self.up,
            "down": self.down,
            "missing": self.missing,
            "samples": self.collection.samples,
            "incidents": self.collection.incidents,
            "seconds": round(self.seconds, 6),
            "readings": [reading.to_dict() for reading in self.readings],
        }


@dataclass(frozen=True)
class PulledOutcome(NodeOutcome):
    """A node's outcome made of pulled samples (not facts), for the store.

    ``status`` is ``ok`` when every service read on the node was up, else ``unreachable``
    (the store counts it as failed); its incidents are one ``health_check_failed`` per
    service that was down, never a node-level ``unreachable``: pulling the services cannot
    tell a node that is down from one whose services are.
    """

    pulled: tuple[Sample, ...] = ()
    failures: tuple[Incident, ...] = ()

    def samples(self) -> list[Sample]:
        return list(self.pulled)

    def incidents(self) -> list[Incident]:
        return list(self.failures)


def node_outcomes(
    readings: Sequence[ServiceReading],
    points: Mapping[ServiceTarget, Sequence[tuple[float, Mapping[str, float]]]] | None = None,
    *,
    incidents: Mapping[ServiceTarget, Sequence[Incident]] | None = None,
) -> list[PulledOutcome]:
    """Per node, the outcome of its services' readings.

    ``points``: a target's values at each time (a source with history); default, its
    reading's values at the reading's time. ``incidents``: a target's incidents; default,
    one if its reading is down. Targets without any data (``up`` None) add nothing.
    """
    by_node: dict[str, list[ServiceReading]] = {}
    for reading in readings:
        if reading.up is not None:
            by_node.setdefault(reading.target.node, []).append(reading)
    outcomes = []
    for node, node_readings in by_node.items():
        samples: list[Sample] = []
        failures: list[Incident] = []
        for reading in node_readings:
            target = reading.target
            labels = (("service", target.service),)
            series = points[target] if points is not None else [(reading.ts, reading.values)]
            for ts, values in series:
                samples.extend(
                    Sample(node, name, labels, ts, value) for name, value in values.items()
                )
            if incidents is not None:
                failures.extend(incidents.get(target, ()))
            elif not reading.up:
                failures.append(_failure(reading))
        all_up = all(reading.up for reading in node_readings)
        outcomes.append(
            PulledOutcome(
                node,
                NodeStatus.OK if all_up else NodeStatus.UNREACHABLE,
                min(reading.ts for reading in node_readings),
                error=None
                if all_up
                else "; ".join(r.error or "down" for r in node_readings if not r.up),
                pulled=tuple(samples),
                failures=tuple(failures),
            )
        )
    return outcomes


def targets_verify(state_dir: Path, targets: Sequence[ServiceTarget]) -> ssl.SSLContext | bool:
    """What a client of ``targets`` verifies with: the fleet's CA when any is https."""
    if any(target.scheme == "https" for target in targets):
        return fleet_ssl_context(state_dir)
    return True


def _failure(reading: ServiceReading) -> Incident:
    target = reading.target
    return Incident(
        target.node,
        IncidentKind.HEALTH_CHECK_FAILED,
        f"service {target.service} did not answer {target.url}/metrics: "
        f"{reading.error or 'no answer'}",
        reading.ts,
        subject=target.service,
    )


# ----------------------------------------------------------------------------- pulling


class Puller:
    """Scrapes a fixed set of services, again and again (:meth:`sample`), into a store.

    One ``httpx.Client`` (its connections are kept between samples) and one thread per
    service. The token goes in the client's ``Authorization`` header and nowhere else.
    """

    def __init__(
        self,
        targets: Sequence[ServiceTarget],
        token: str,
        store: HistoryStore,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        owns_store: bool = False,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if not targets:
            raise BadInput("nothing to pull: no lepton services given")
        check_timeout(timeout)
        self.targets = tuple(targets)
        self.store = store
        self._owns_store = owns_store
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=len(self.targets), max_keepalive_connections=len(self.targets)
            ),
            trust_env=False,  # the fleet is reached directly, never through a proxy
            verify=verify,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=min(len(self.targets), 64), thread_name_prefix="lepton-pull"
        )
        self._closed = threading.Event()

    def __enter__(self) -> Puller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        if self._owns_store:
            self.store.close()

    def scrape(self) -> list[ServiceReading]:
        """Every service's reading, scraped at once (nothing stored)."""
        if len(self.targets) == 1:
            return [self._scrape(self.targets[0])]
        return list(self._pool.map(self._scrape, self.targets))

    def sample(self) -> PullResult:
        """Scrape every service and store the collection (source ``pull``)."""
        started = time.perf_counter()
        started_at = time.time()
        readings = self.scrape()
        record = self.store.record_collection(
            node_outcomes(readings), CollectionSource.PULL, started_at=started_at
        )
        return PullResult(
            CollectionSource.PULL.value,
            tuple(readings),
            record,
            time.perf_counter() - started,
        )

    def _scrape(self, target: ServiceTarget) -> ServiceReading:
        ts = time.time()
        started = time.perf_counter()
        try:
            response = self._http.get(f"{target.url}/metrics")
            elapsed = time.perf_counter() - started
        except httpx.HTTPError as exc:
            return ServiceReading(target, False, ts, {"lepton_service_up": 0.0}, describe(exc))
        error = _answer_error(response)
        if error is None:
            try:
                raw = parse_exposition(response.text)
            except ValueError as exc:
                error = f"answered text that is not Prometheus metrics ({_first_line(exc)})"
        if error is not None:
            return ServiceReading(target, False, ts, {"lepton_service_up": 0.0}, error)
        raw.append((UP_SAMPLE, {}, 1.0))
        raw.append((SCRAPE_SAMPLE, {}, elapsed))
        return ServiceReading(target, True, ts, reduce_samples(raw))


def _answer_error(response: httpx.Response) -> str | None:
    if response.status_code == 401:
        return "refused the controller's token (401): deploy again with 'lepton-ops deploy'"
    if response.status_code != 200:
        return f"answered {response.status_code} {response.reason_phrase}".rstrip()
    return None


def describe(exc: BaseException) -> str:
    """One line about a transport error (httpx's text, or its class when it has none)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    text = _first_line(exc)
    return f"{text} ({type(exc).__name__})" if text else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split())[:200] if lines else ""


def check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise BadInput(f"the timeout must be a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise BadInput(f"the timeout must be more than 0 seconds, got {timeout!r}")


def open_puller(
    inventory: Path,
    state_dir: Path,
    *,
    limit: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Puller:
    """A :class:`Puller` of the inventory's services into the state dir's store."""
    check_timeout(timeout)
    targets = fleet_targets(inventory, limit)
    token = load_scrape_token(state_dir)
    store = HistoryStore(history_path(state_dir))
    try:
        return Puller(
            targets,
            token,
            store,
            timeout=timeout,
            owns_store=True,
            verify=targets_verify(state_dir, targets),
        )
    except BaseException:
        store.close()
        raise


def pull(
    inventory: Path,
    state_dir: Path,
    *,
    limit: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> PullResult:
    """Read every service's ``/metrics`` once and store it (``source="pull"``).

    BadInput for an unusable inventory or a missing token; a service that does not
    answer is recorded as down, never raised.
    """
    with open_puller(inventory, state_dir, limit=limit, timeout=timeout) as puller:
        return puller.sample()


# ----------------------------------------------------------------------------- watching


def watch(
    sample: Callable[[], PullResult],
    interval_s: float,
    on_sample: Callable[[PullResult], None],
    *,
    on_error: Callable[[OperationFailed], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    max_samples: int | None = None,
) -> int:
    """Sample every ``interval_s`` seconds until Ctrl-C (or ``max_samples``); samples taken.

    The next sample starts ``interval_s`` after the previous one started (at once if it
    took longer). A sample that fails (OperationFailed: the Prometheus server did not
    answer, the store was locked) is handed to ``on_error`` and the loop goes on; without
    ``on_error`` it ends the loop. Any other error ends it. Ctrl-C ends it quietly.
    """
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise BadInput(f"--watch needs an interval of more than 0 seconds, got {interval_s!r}")
    taken = 0
    try:
        while max_samples is None or taken < max_samples:
            started = clock()
            try:
                result = sample()
            except OperationFailed as exc:
                if on_error is None:
                    raise
                on_error(exc)
            else:
                on_sample(result)
            taken += 1
            if max_samples is not None and taken >= max_samples:
                break
            sleep(max(0.0, interval_s - (clock() - started)))
    except KeyboardInterrupt:
        pass
    return taken


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PullResult",
    "PulledOutcome",
    "Puller",
    "ServiceReading",
    "ServiceTarget",
    "fleet_targets",
    "node_outcomes",
    "open_puller",
    "pull",
    "service_targets",
    "watch",
]
