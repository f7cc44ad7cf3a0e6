"""What the telemetry store gives back: collections, series, latest values, incidents."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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


class FaultOutcome(StrEnum):
    """How an injected fault ended."""

    #: the node failed (``failed_at`` is set) and the fault was then undone
    FAILED = "failed"
    #: the fault ran its duration and the node never failed
    SURVIVED = "survived"
    #: ``chaos stop`` (or ``lab down``) undid it before it ended by itself
    STOPPED = "stopped"
    #: remediation undid it before the node failed
    REMEDIATED = "remediated"
    #: injecting or undoing it went wrong (see ``detail``)
    ERROR = "error"


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault: the predictor's label for its node and time."""

    id: int
    node: str
    #: a :class:`~lepton_ops.chaos.faults.FaultKind` value
    fault: str
    params: dict[str, Any]
    campaign: str | None
    started_at: float
    #: when the node actually failed (health check failing, disk full, memory limit hit)
    failed_at: float | None
    #: what failed, in words ("memory limit hit: ...")
    failure: str | None
    ended_at: float | None
    #: a :class:`FaultOutcome` value; None while the fault runs
    outcome: str | None
    detail: str

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "fault": self.fault,
            "params": self.params,
            "campaign": self.campaign,
            "started_at": self.started_at,
            "failed_at": self.failed_at,
            "failure": self.failure,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "detail": self.detail,
        }
