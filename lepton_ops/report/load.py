"""The load section: each node's share of the work, planned and done, and each job's makespan.

From the controller's job history (:meth:`TelemetryStore.jobs`, written when a job
finishes: see :mod:`lepton_ops.jobs.history`). Per node, over the jobs of the window:

- ``load_share`` - ``L_i = W_i / sum(W)`` of the latest job that knew the node's weight
  (weights can change between jobs: a drain sets one to 0);
- ``planned_tasks`` - what the plans gave the node, summed (None if no job knew its plan);
- ``executed_tasks`` - what the node actually ran (its accepted shards, stolen ones
  included), summed, and its share of all executed tasks: the share it really carried;
- ``measured_speed`` - executed tasks per busy second.

Per job: the predicted makespan (the plan at the measured speeds) against the measured
one, and their ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lepton_ops.telemetry.records import JobRunRecord


@dataclass(frozen=True)
class NodeLoad:
    node: str
    weight: int | None
    load_share: float | None
    planned_tasks: int | None
    executed_tasks: int
    executed_share: float | None
    busy_s: float
    jobs: int

    @property
    def measured_speed(self) -> float | None:
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
            "executed_share": self.executed_share,
            "busy_s": self.busy_s,
            "measured_speed": self.measured_speed,
            "jobs": self.jobs,
        }


def makespan_ratio(job: JobRunRecord) -> float | None:
    """Measured over predicted makespan (1.0: as predicted); None without both."""
    if job.makespan_s is None or not job.predicted_makespan_s:
        return None
    return job.makespan_s / job.predicted_makespan_s


@dataclass(frozen=True)
class LoadSection:
    jobs: tuple[JobRunRecord, ...]
    nodes: tuple[NodeLoad, ...]
    #: what is missing, when something is
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "nodes": [node.to_dict() for node in self.nodes],
            "jobs": [
                {**job.to_dict(), "measured_over_predicted": makespan_ratio(job)}
                for job in self.jobs
            ],
        }


def load_section(jobs: Sequence[JobRunRecord]) -> LoadSection:
    """The load section of ``jobs`` (oldest first)."""
    if not jobs:
        return LoadSection(
            (), (), "no job recorded in the window (jobs are recorded when 'lepton-ops job "
            "run' or the lepton.ops.job module sees them finish)",
        )  # fmt: skip
    order: list[str] = []
    weight: dict[str, int | None] = {}
    share: dict[str, float | None] = {}
    planned: dict[str, int | None] = {}
    executed: dict[str, int] = {}
    busy: dict[str, float] = {}
    count: dict[str, int] = {}
    for job in jobs:
        for entry in job.nodes:
            name = entry.node
            if name not in executed:
                order.append(name)
                weight[name], share[name], planned[name] = None, None, None
                executed[name], busy[name], count[name] = 0, 0.0, 0
            if entry.weight is not None:
                weight[name], share[name] = entry.weight, entry.load_share
            if entry.planned_tasks is not None:
                planned[name] = (planned[name] or 0) + entry.planned_tasks
            executed[name] += entry.executed_tasks
            busy[name] += entry.busy_s
            count[name] += 1
    total = sum(executed.values())
    nodes = tuple(
        NodeLoad(
            node=name,
            weight=weight[name],
            load_share=share[name],
            planned_tasks=planned[name],
            executed_tasks=executed[name],
            executed_share=executed[name] / total if total else None,
            busy_s=busy[name],
            jobs=count[name],
        )
        for name in order
    )
    message = None
    if all(node.load_share is None for node in nodes):
        message = (
            "no job knew its plan's weights (the controller plans jobs over the inventory: "
            "run them with an inventory to record load shares)"
        )
    return LoadSection(tuple(jobs), nodes, message)
