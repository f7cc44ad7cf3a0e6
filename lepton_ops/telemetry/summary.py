"""One line per node for people: the few numbers an operator looks at first, and when
each of them is bad.

The thresholds are defined here, once; the CLI colours by :class:`Level`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lepton_ops.telemetry.catalogue import REACHABLE
from lepton_ops.telemetry.facts import NodeOutcome, NodeStatus
from lepton_ops.telemetry.records import LatestSample


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    BAD = "bad"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Threshold:
    """A value at or above ``warn`` is a warning, at or above ``bad`` is bad."""

    warn: float
    bad: float

    def level(self, value: float | None) -> Level:
        if value is None:
            return Level.UNKNOWN
        if value >= self.bad:
            return Level.BAD
        if value >= self.warn:
            return Level.WARN
        return Level.OK


#: CPU, memory and disk in percent; latency in milliseconds; loss as a ratio (0 to 1).
THRESHOLDS: dict[str, Threshold] = {
    "cpu_pct": Threshold(warn=80.0, bad=95.0),
    "mem_pct": Threshold(warn=80.0, bad=90.0),
    "disk_pct": Threshold(warn=80.0, bad=90.0),
    "latency_ms": Threshold(warn=50.0, bad=200.0),
    "loss": Threshold(warn=0.01, bad=0.5),
}


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    healthy: bool
    running: bool


@dataclass(frozen=True)
class NodeSummary:
    """The headline numbers of one node's outcome (None: not measured)."""

    node: str
    status: NodeStatus
    cpu_pct: float | None = None
    mem_pct: float | None = None
    #: the fullest file system of those watched, and its path
    disk_pct: float | None = None
    disk_path: str | None = None
    #: the slowest target's median connect time, and its name
    latency_ms: float | None = None
    latency_target: str | None = None
    #: the worst share of lost connects to a target (1.0 for a target never reached)
    loss: float | None = None
    unreached_targets: tuple[str, ...] = ()
    services: tuple[ServiceHealth, ...] = ()
    #: what the node could not read (facts ``errors``)
    fact_errors: int = 0
    #: why the node gave no facts (unreachable, invalid)
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.status is not NodeStatus.UNREACHABLE

    def level(self, field: str) -> Level:
        value: float | None = getattr(self, field)
        return THRESHOLDS[field].level(value)

    @property
    def healthy(self) -> bool:
        return all(service.healthy for service in self.services)


def summarize(outcome: NodeOutcome) -> NodeSummary:
    if not outcome.ok or outcome.facts is None:
        return NodeSummary(outcome.node, outcome.status, error=outcome.error)
    facts = outcome.facts
    disk = _worst((entry["used_pct"], entry["path"]) for entry in facts["disks"] if entry["exists"])
    latency = _worst((entry["latency_ms"], entry["name"]) for entry in facts["latency"])
    losses = [_loss(entry) for entry in facts["latency"]]
    return NodeSummary(
        node=outcome.node,
        status=outcome.status,
        cpu_pct=facts["cpu"]["util_pct"],
        mem_pct=facts["memory"]["used_pct"],
        disk_pct=disk[0],
        disk_path=disk[1],
        latency_ms=latency[0],
        latency_target=latency[1],
        loss=max((loss for loss in losses if loss is not None), default=None),
        unreached_targets=tuple(
            entry["name"] for entry in facts["latency"] if not entry["reachable"]
        ),
        services=tuple(
            ServiceHealth(service["name"], bool(service["healthy"]), bool(service["running"]))
            for service in facts["services"]
        ),
        fact_errors=len(facts["errors"]),
    )


def _worst(pairs: Any) -> tuple[float | None, str | None]:
    known = [(float(value), name) for value, name in pairs if value is not None]
    if not known:
        return None, None
    value, name = max(known, key=lambda pair: pair[0])
    return value, str(name)


def _loss(entry: Mapping[str, Any]) -> float | None:
    if not entry["reachable"]:
        return 1.0
    attempts, lost = entry["attempts"], entry["lost"]
    if not attempts or lost is None:
        return None
    return float(lost) / float(attempts)


def summary_from_latest(node: str, latest: list[LatestSample]) -> NodeSummary:
    """A node's summary from the store's latest values (as ``telemetry show`` prints it).

    Only values of the node's last collection count: those stamped with the time of its
    last ``lepton_node_reachable`` sample (a node's samples share its facts' timestamp).
    A node whose last collection found it unreachable shows no stale numbers.
    """
    rows = [row for row in latest if row.node == node]
    reachable = next((row for row in rows if row.metric == REACHABLE.name), None)
    if reachable is None:
        return NodeSummary(node, NodeStatus.INVALID, error="no reachability sample")
    if reachable.value == 0:
        return NodeSummary(node, NodeStatus.UNREACHABLE, error="unreachable")
    current = [row for row in rows if row.ts == reachable.ts]

    def one(metric: str) -> float | None:
        return next((row.value for row in current if row.metric == metric), None)

    def worst(metric: str, label: str) -> tuple[float | None, str | None]:
        return _worst((row.value, row.labels.get(label)) for row in current if row.metric == metric)

    disk = worst("lepton_node_disk_used_pct", "path")
    latency = worst("lepton_node_latency_ms", "target")
    unreached = sorted(
        row.labels.get("target", "?")
        for row in current
        if row.metric == "lepton_node_target_reachable" and row.value == 0
    )
    # As in summarize(): a target never reached lost every connect.
    loss = _worst(
        [(1.0, name) for name in unreached]
        + [
            (row.value, row.labels.get("target"))
            for row in current
            if row.metric == "lepton_node_latency_lost_ratio"
        ]
    )
    services = {
        row.labels.get("service", "?"): row.value
        for row in current
        if row.metric == "lepton_service_healthy"
    }
    running = {
        row.labels.get("service", "?"): row.value
        for row in current
        if row.metric == "lepton_service_running"
    }
    errors = one("lepton_node_facts_errors")
    return NodeSummary(
        node=node,
        status=NodeStatus.OK if len(current) > 1 else NodeStatus.INVALID,
        cpu_pct=one("lepton_node_cpu_util_pct"),
        mem_pct=one("lepton_node_memory_used_pct"),
        disk_pct=disk[0],
        disk_path=disk[1],
        latency_ms=latency[0],
        latency_target=latency[1],
        loss=loss[0],
        unreached_targets=tuple(unreached),
        services=tuple(
            ServiceHealth(name, healthy == 1, running.get(name) == 1)
            for name, healthy in sorted(services.items())
        ),
        fact_errors=int(errors) if errors is not None else 0,
        error=None,
    )
