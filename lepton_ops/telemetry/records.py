"""What the telemetry store gives back: collections, series, latest values, incidents."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CollectionSource(StrEnum):
    """How a collection got its facts."""

    #: the ``lepton.ops.telemetry_facts`` module, run by a playbook
    ANSIBLE = "ansible"
    #: the controller asking the nodes' services directly
    PULL = "pull"
    #: read from a Prometheus server that already scrapes the fleet
    PROMETHEUS = "prometheus"


@dataclass(frozen=True)
class CollectionRecord:
    id: int
    started_at: float
    finished_at: float
    source: str
    nodes_ok: int
    nodes_failed: int
    #: samples stored (a point the series already had at that time is not stored again)
    samples: int
    incidents: int


@dataclass(frozen=True)
class Series:
    node: str
    metric: str
    #: labels besides ``node``
    labels: dict[str, str]
    #: ``(ts, value)``, oldest first
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class LatestSample:
    node: str
    metric: str
    labels: dict[str, str]
    ts: float
    value: float


@dataclass(frozen=True)
class IncidentRecord:
    id: int
    node: str
    #: an :class:`~lepton_ops.telemetry.facts.IncidentKind` value
    kind: str
    #: what on the node it is about (the service of a failed health check), if anything
    subject: str | None
    detail: str
    ts: float
    #: None once its collection was pruned
    collection_id: int | None


@dataclass(frozen=True)
class PruneCounts:
    samples: int
    series: int
    nodes: int
    incidents: int
    collections: int
