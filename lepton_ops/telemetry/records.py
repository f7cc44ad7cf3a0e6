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


@dataclass(frozen=True)
class JobRunNode:
    """One node's part of a finished job: what the plan gave it and what it ran."""

    node: str
    #: ``lepton_weight`` in the plan; None when the controller could not see the plan
    weight: int | None
    #: ``L_i = W_i / sum(W)``; None with the weight
    load_share: float | None
    #: tasks the plan gave the node; None with the weight
    planned_tasks: int | None
    #: tasks of the shards whose accepted result came from this node (stolen ones included)
    executed_tasks: int
    shards: int
    #: seconds the node spent on its accepted shards (as it reported them)
    busy_s: float

    @property
    def measured_speed(self) -> float | None:
        """Tasks per second the node ran at; None without a measured task."""
        if self.executed_tasks <= 0 or self.busy_s <= 0:
            return None
        return self.executed_tasks / self.busy_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "weight": self.weight,
            "load_share": self.load_share,
            "planned_tasks": self.planned_tasks,
            "executed_tasks": self.executed_tasks,
            "shards": self.shards,
            "busy_s": self.busy_s,
            "measured_speed": self.measured_speed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRunNode:
        def optional(key: str, kind: type[int] | type[float]) -> Any:
            value = data.get(key)
            return None if value is None else kind(value)

        return cls(
            node=str(data["node"]),
            weight=optional("weight", int),
            load_share=optional("load_share", float),
            planned_tasks=optional("planned_tasks", int),
            executed_tasks=int(data.get("executed_tasks") or 0),
            shards=int(data.get("shards") or 0),
            busy_s=float(data.get("busy_s") or 0.0),
        )


@dataclass(frozen=True)
class JobRunRecord:
    """A job the controller saw finish: the report's load data.

    Named apart from :class:`lepton_ops.services.job_store.JobRecord`, the aggregator's
    own (running) job.
    """

    job_id: str
    kind: str
    strategy: str
    tasks: int
    #: ``succeeded`` or ``failed``
    status: str
    submitted_at: float | None
    finished_at: float
    #: the aggregator's wall time from submission to the last result
    makespan_s: float | None
    #: the plan's makespan at the measured speeds (see :mod:`lepton_ops.jobs.history`)
    predicted_makespan_s: float | None
    #: how ``predicted_makespan_s`` was computed, or why there is none
    predicted_from: str
    nodes: tuple[JobRunNode, ...]
    recorded_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "strategy": self.strategy,
            "tasks": self.tasks,
            "status": self.status,
            "submitted_at": self.submitted_at,
            "finished_at": self.finished_at,
            "makespan_s": self.makespan_s,
            "predicted_makespan_s": self.predicted_makespan_s,
            "predicted_from": self.predicted_from,
            "nodes": [node.to_dict() for node in self.nodes],
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True)
class RemediationRecord:
    """One remediation action in the audit log."""

    id: int
    node: str
    #: a :class:`~lepton_ops.remediate.ladder.Action` value (or ``uncordon``)
    action: str
    #: who or what asked for it: ``cli:<user>``, ``schedule``, ``watch``, ``playbook``...
    trigger: str
    reason: str
    started_at: float
    #: None while it is in progress
    finished_at: float | None
    #: ``verified``, ``unverified``, ``failed``, ``cordoned``...; None while in progress
    outcome: str | None
    before: dict[str, Any]
    after: dict[str, Any] | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "action": self.action,
            "trigger": self.trigger,
            "reason": self.reason,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
        }
