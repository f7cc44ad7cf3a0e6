"""The metric catalogue: every telemetry metric, defined once, with where it comes from.

Each :class:`MetricSpec` says what a metric is called (Prometheus-compatible), what it
means (the ``# HELP`` text), its unit and type, its *scope* (which fixes its labels) and
its :class:`Origin`:

- ``facts`` (:data:`CATALOGUE`): read from a node's facts, as the
  ``lepton.ops.telemetry_facts`` module returns them (``telemetry collect``); ``read``
  says how. Flattening facts into samples (:mod:`lepton_ops.telemetry.facts`) makes
  exactly these.
- ``service`` (:data:`PULLED_METRICS`): read from the services' own ``/metrics``, by
  ``telemetry pull`` or from a Prometheus server that scrapes them; each is the sum of
  one exposition sample's series (:class:`PulledMetric`). They all have the ``service``
  scope, with the facts' service names, so a service's pulled series sit next to its
  health-check series from the facts.

The exports, the failure predictor and the readers of both origins read these tables;
nothing else names a metric (:func:`metric` finds either).

Scopes and their labels (every series also has ``node``):

============  ==========================  =====================================
scope         labels                      one series per
============  ==========================  =====================================
``node``      (none)                      node
``disk``      ``path``                    entry of ``disks``
``target``    ``target``, ``role``        entry of ``latency`` (aggregator, peers)
``service``   ``service``                 entry of ``services``
============  ==========================  =====================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: Reads one value from a facts section (the whole facts for ``node`` scope, else one
#: entry of the scope's list); None when the node could not measure it.
Reader = Callable[[Mapping[str, Any]], float | None]


class Scope(StrEnum):
    NODE = "node"
    DISK = "disk"
    TARGET = "target"
    SERVICE = "service"


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"


class Origin(StrEnum):
    #: a node's facts (the ``lepton.ops.telemetry_facts`` module, ``telemetry collect``)
    FACTS = "facts"
    #: a service's ``/metrics`` (``telemetry pull``, or a Prometheus server scraping it)
    SERVICE = "service"


@dataclass(frozen=True)
class ScopeSource:
    """Where a list scope's entries are in the facts, and how an entry becomes labels."""

    facts_key: str
    #: label name -> key of the entry holding its value
    labels: tuple[tuple[str, str], ...]
    #: the entry key that must be unique within the list
    identity: str


SCOPE_SOURCES: dict[Scope, ScopeSource] = {
    Scope.DISK: ScopeSource("disks", (("path", "path"),), "path"),
    Scope.TARGET: ScopeSource("latency", (("target", "name"), ("role", "role")), "name"),
    Scope.SERVICE: ScopeSource("services", (("service", "name"),), "name"),
}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    help: str
    #: percent, ratio, bytes, seconds, milliseconds, count, code or bool (1 true, 0 false)
    unit: str
    type: MetricType
    scope: Scope
    #: how the value is read, for people: a key path or a formula over the section
    source: str
    read: Reader
    origin: Origin = Origin.FACTS

    @property
    def labels(self) -> tuple[str, ...]:
        if self.scope is Scope.NODE:
            return ("node",)
        return ("node", *(label for label, _ in SCOPE_SOURCES[self.scope].labels))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


def _key(path: str) -> Reader:
    """Read the value at a dotted key path (``cpu.util_pct``); bools become 1 or 0."""
    keys = path.split(".")
    if len(keys) == 1:
        (key,) = keys
        return lambda section: _number(section[key])
    outer, inner = keys
    return lambda section: _number(section[outer][inner])


def _ratio(numerator: str, denominator: str, scale: float = 1.0) -> Reader:
    """``numerator / denominator * scale``; None when either is unknown or the divisor is 0."""
    read_numerator, read_denominator = _key(numerator), _key(denominator)

    def read(section: Mapping[str, Any]) -> float | None:
        top, bottom = read_numerator(section), read_denominator(section)
        if top is None or bottom is None or bottom <= 0:
            return None
        return top / bottom * scale

    return read


def _reachable(_facts: Mapping[str, Any]) -> float:
    # A node that sent facts answered; an unreachable one gets 0 from its outcome instead.
    return 1.0


def _error_count(facts: Mapping[str, Any]) -> float:
    return float(len(facts["errors"]))


def _metric(
    name: str,
    unit: str,
    scope: Scope,
    source: str,
    help_text: str,
    read: Reader | None = None,
    type_: MetricType = MetricType.GAUGE,
) -> MetricSpec:
    return MetricSpec(name, help_text, unit, type_, scope, source, read or _key(source))


_N, _D, _T, _S = Scope.NODE, Scope.DISK, Scope.TARGET, Scope.SERVICE

# fmt: off
CATALOGUE: tuple[MetricSpec, ...] = (
    # ---- node
    _metric(
        "lepton_node_reachable", "bool", _N, "(collection outcome)",
        "1 if the node answered the collection, 0 if it was unreachable.", _reachable,
    ),
    _metric(
        "lepton_node_facts_errors", "count", _N, "len(errors)",
        "Facts the node could not read in this collection.", _error_count,
    ),
    _metric("lepton_node_uptime_seconds", "seconds", _N, "uptime_s", "Time since the node booted."),
    _metric("lepton_node_cpu_count", "count", _N, "cpu.count", "CPUs the node has."),
    _metric(
        "lepton_node_cpu_util_pct", "percent", _N, "cpu.util_pct",
        "CPU utilisation over the sampling interval, all CPUs.",
    ),
    _metric("lepton_node_load1", "count", _N, "load.1m", "Load average over 1 minute."),
    _metric("lepton_node_load5", "count", _N, "load.5m", "Load average over 5 minutes."),
    _metric("lepton_node_load15", "count", _N, "load.15m", "Load average over 15 minutes."),
    _metric(
        "lepton_node_load1_per_cpu", "ratio", _N, "load.1m / cpu.count",
        "Load average over 1 minute divided by the number of CPUs.", _ratio("load.1m", "cpu.count"),
    ),
    _metric(
        "lepton_node_memory_total_bytes", "bytes", _N, "memory.total_bytes", "Physical memory."
    ),
    _metric(
        "lepton_node_memory_available_bytes", "bytes", _N, "memory.available_bytes",
        "Memory available to new processes without swapping.",
    ),
    _metric(
        "lepton_node_memory_used_pct", "percent", _N, "memory.used_pct",
        "Memory in use (not available), in percent of the total.",
    ),
    _metric("lepton_node_swap_total_bytes", "bytes", _N, "swap.total_bytes", "Swap space."),
    _metric("lepton_node_swap_free_bytes", "bytes", _N, "swap.free_bytes", "Free swap space."),
    _metric(
        "lepton_node_swap_used_pct", "percent", _N, "swap.used_pct",
        "Swap in use, in percent of the total.",
    ),
    _metric("lepton_node_processes", "count", _N, "processes.count", "Processes running."),
    _metric("lepton_node_open_fds", "count", _N, "processes.open_fds", "Open file handles."),
    _metric("lepton_node_max_fds", "count", _N, "processes.max_fds", "Limit of open file handles."),
    _metric(
        "lepton_node_fds_used_pct", "percent", _N, "processes.open_fds / processes.max_fds * 100",
        "Open file handles in percent of the limit.",
        _ratio("processes.open_fds", "processes.max_fds", 100.0),
    ),
    # ---- disk {path}
    _metric("lepton_node_disk_exists", "bool", _D, "exists", "1 if the watched path exists."),
    _metric(
        "lepton_node_disk_used_pct", "percent", _D, "used_pct",
        "Space used on the path's file system, in percent.",
    ),
    _metric(
        "lepton_node_disk_free_bytes", "bytes", _D, "free_bytes",
        "Space available to unprivileged users on the path's file system.",
    ),
    _metric(
        "lepton_node_disk_inodes_used_pct", "percent", _D, "inodes_used_pct",
        "Inodes used on the path's file system, in percent.",
    ),
    # ---- target {target, role}
    _metric(
        "lepton_node_latency_ms", "milliseconds", _T, "latency_ms",
        "TCP connect latency from the node to the target (aggregator or peer).",
    ),
    _metric(
        "lepton_node_latency_lost_ratio", "ratio", _T, "lost / attempts",
        "Share of connection attempts to the target that failed.", _ratio("lost", "attempts"),
    ),
    _metric(
        "lepton_node_target_reachable", "bool", _T, "reachable",
        "1 if the node could connect to the target.",
    ),
    # ---- service {service}
    _metric(
        "lepton_service_healthy", "bool", _S, "healthy",
        "1 if the service answered its health check.",
    ),
    _metric(
        "lepton_service_status_code", "code", _S, "status_code",
        "HTTP status of the service's health check.",
    ),
    _metric(
        "lepton_service_latency_ms", "milliseconds", _S, "latency_ms",
        "Time the service took to answer its health check.",
    ),
    _metric("lepton_service_running", "bool", _S, "running", "1 if the service process runs."),
    _metric(
        "lepton_service_rss_bytes", "bytes", _S, "rss_bytes",
        "Resident memory of the service process.",
    ),
    _metric(
        "lepton_service_memory_limit_bytes", "bytes", _S, "memory_limit_bytes",
        "Memory limit of the service (its cgroup), if it has one.",
    ),
    _metric(
        "lepton_service_memory_used_pct", "percent", _S, "rss_bytes / memory_limit_bytes * 100",
        "Resident memory of the service in percent of its memory limit.",
        _ratio("rss_bytes", "memory_limit_bytes", 100.0),
    ),
    _metric(
        "lepton_service_restarts_total", "count", _S, "restarts",
        "Times the supervisor restarted the service.", type_=MetricType.COUNTER,
    ),
)
# fmt: on

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}
REACHABLE = METRICS["lepton_node_reachable"]

# ------------------------------------------------------------- from the services' /metrics

#: Sample names that the puller measures itself, as Prometheus names them for its targets.
UP_SAMPLE = "up"
SCRAPE_SAMPLE = "scrape_duration_seconds"


@dataclass(frozen=True)
class PulledMetric:
    """A stored metric and the exposition samples it is the sum of."""

    spec: MetricSpec
    #: the sample name summed over its series (``up`` and ``scrape_duration_seconds``
    #: are the scrape's own, as Prometheus records them)
    sample: str
    #: only the series with these labels
    where: tuple[tuple[str, str], ...] = ()
    #: stored value = sum x scale
    scale: float = 1.0

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(name) == value for name, value in self.where)


def _pulled(
    name: str,
    unit: str,
    sample: str,
    help_text: str,
    *,
    counter: bool = False,
    where: tuple[tuple[str, str], ...] = (),
    scale: float = 1.0,
) -> PulledMetric:
    selector = ",".join(f'{key}="{value}"' for key, value in where)
    source = f"sum({sample}{{{selector}}})" if where else f"sum({sample})"
    if scale != 1.0:
        source = f"{source} * {scale:g}"
    spec = MetricSpec(
        name,
        help_text,
        unit,
        MetricType.COUNTER if counter else MetricType.GAUGE,
        Scope.SERVICE,
        source,
        _not_from_facts,
        Origin.SERVICE,
    )
    return PulledMetric(spec, sample, where, scale)


def _not_from_facts(_section: Mapping[str, Any]) -> float | None:
    return None


# fmt: off
PULLED_METRICS: tuple[PulledMetric, ...] = (
    _pulled(
        "lepton_service_up", "bool", UP_SAMPLE,
        "1 if the service answered its /metrics (with the token), 0 if it did not.",
    ),
    _pulled(
        "lepton_service_scrape_ms", "milliseconds", SCRAPE_SAMPLE,
        "Time the service took to answer its /metrics.", scale=1000.0,
    ),
    _pulled(
        "lepton_service_process_rss_bytes", "bytes", "lepton_process_resident_memory_bytes",
        "Resident memory of the service process that answered (one gunicorn process).",
    ),
    _pulled(
        "lepton_service_requests_total", "count", "lepton_http_requests_total",
        "HTTP requests the service answered, every endpoint and status (scrapes included).",
        counter=True,
    ),
    _pulled(
        "lepton_service_request_seconds_total", "seconds", "lepton_http_request_seconds_sum",
        "Time spent answering HTTP requests; over requests_total, the mean latency.",
        counter=True,
    ),
    _pulled(
        "lepton_service_errors_total", "count", "lepton_http_errors_total",
        "HTTP requests the service answered with an error (4xx and 5xx).", counter=True,
    ),
    _pulled(
        "lepton_service_server_errors_total", "count", "lepton_http_errors_total",
        "HTTP requests the service answered with a server error (5xx).",
        counter=True, where=(("class", "5xx"),),
    ),
    _pulled(
        "lepton_service_shards_done_total", "count", "lepton_shards_done_total",
        "Shards done: run by a worker, or accepted by the aggregator.", counter=True,
    ),
    _pulled(
        "lepton_service_shards_duplicate_total", "count", "lepton_shards_duplicate_total",
        "Shard results ignored because that shard id already had one.", counter=True,
    ),
)
# fmt: on

PULLED: dict[str, MetricSpec] = {entry.spec.name: entry.spec for entry in PULLED_METRICS}
UP_METRIC = "lepton_service_up"
#: Every exposition sample name a pulled metric reads.
SAMPLE_NAMES: frozenset[str] = frozenset(entry.sample for entry in PULLED_METRICS)


def metric(name: str) -> MetricSpec | None:
    """The entry of ``name`` (either origin), or None for a metric neither table knows."""
    return METRICS.get(name) or PULLED.get(name)


def by_scope(scope: Scope) -> tuple[MetricSpec, ...]:
    return tuple(spec for spec in CATALOGUE if spec.scope is scope)
