"""The load section: each node's share of the work, planned and done, and each job's makespan.

From the controller's job history (:meth:`HistoryStore.jobs`, written when a job
finishes: see :mod:`lepton_ops.jobs.history`). Per node, over the jobs of the window:

- ``load_share`` - ``L_i = W_i / sum(W)`` of the latest job that knew the node's weight
  (weights can change between jobs: a drain sets one to 0);
- ``planned_tasks`` - what the plans gave the node, summed (None if no job knew its plan);
- ``executed_tasks`` - what the node actually ran (its accepted shards, stolen ones
  included), summed, and its share of all executed tasks: the share it really carried;
- ``measured_speed`` - executed tasks per busy second.

Per job: the predicted makespan (the plan at the measured speeds) against the measured
one, and their ratio; each node's share of the job's executed tasks against ``L_i``, and
why they differ when they do (:func:`explain_job`): a node drained or failed while the
job ran, or - otherwise - work stealing (a node that ran out of shards took unstarted
ones; in a job of a few short shards, per-shard overhead rather than capacity decides).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lepton_ops.telemetry.records import JobRunNode, JobRunRecord


@dataclass(frozen=True)
class NodeLoad(JobRunNode):
    """A node's part of every job of the window, summed (the latest known weight and
    load share), with its share of all executed tasks and how many jobs it was in."""

    executed_share: float | None
    jobs: int

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "executed_share": self.executed_share, "jobs": self.jobs}


def makespan_ratio(job: JobRunRecord) -> float | None:
    """Measured over predicted makespan (1.0: as predicted); None without both."""
    if job.makespan_s is None or not job.predicted_makespan_s:
        return None
    return job.makespan_s / job.predicted_makespan_s


#: Executed shares within this of L_i (percentage points / 100) follow the weights.
SHARE_TOLERANCE = 0.05


@dataclass(frozen=True)
class JobShares:
    """One job's executed share per node against its ``L_i``, and why they differ."""

    job_id: str
    #: node -> (L_i or None, executed share)
    shares: dict[str, tuple[float | None, float]]
    #: the largest |executed share - L_i| (None without a plan)
    deviation: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "shares": {
                node: {"load_share": planned, "executed_share": done}
                for node, (planned, done) in self.shares.items()
            },
            "deviation": self.deviation,
            "reason": self.reason,
        }


#: node -> intervals ``(start, end, what)`` when it could not take shards (end None: open)
Interruptions = Mapping[str, Sequence[tuple[float, float | None, str]]]


def explain_job(job: JobRunRecord, interruptions: Interruptions) -> JobShares:
    """The job's shares, and the reason its executed shares differ from L_i, if they do."""
    total = sum(entry.executed_tasks for entry in job.nodes)
    shares = {
        entry.node: (entry.load_share, entry.executed_tasks / total if total else 0.0)
        for entry in job.nodes
    }
    known = [abs(done - planned) for planned, done in shares.values() if planned is not None]
    deviation = max(known) if known else None
    if deviation is None:
        return JobShares(job.job_id, shares, None, "no plan recorded: no L_i to compare")
    if deviation <= SHARE_TOLERANCE:
        return JobShares(
            job.job_id, shares, deviation,
            f"executed shares follow L_i (within {deviation * 100:.1f} points)",
        )  # fmt: skip
    start = job.submitted_at if job.submitted_at is not None else job.finished_at
    hit = []
    for node in shares:
        for begin, end, what in interruptions.get(node, ()):
            if begin <= job.finished_at and (end is None or end >= start):
                hit.append(f"{node} {what}")
                break
    if hit:
        reason = f"{'; '.join(hit)} while the job ran: its unstarted shards went to the others"
    else:
        shards = sum(entry.shards for entry in job.nodes)
        reason = (
            f"work stealing: nodes that ran out of shards took unstarted ones ({shards} shards"
            + (f" in {job.makespan_s:.1f} s" if job.makespan_s is not None else "")
            + "); in a short job per-shard overhead, not capacity, decides who runs what"
        )
    return JobShares(job.job_id, shares, deviation, reason)


@dataclass(frozen=True)
class LoadSection:
    jobs: tuple[JobRunRecord, ...]
    nodes: tuple[NodeLoad, ...]
    #: what is missing, when something is
    message: str | None = None
    #: per job (same order as ``jobs``): executed shares against L_i, and why
    explained: tuple[JobShares, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        reasons = {entry.job_id: entry for entry in self.explained}
        return {
            "message": self.message,
            "nodes": [node.to_dict() for node in self.nodes],
            "jobs": [
                {
                    **job.to_dict(),
                    "measured_over_predicted": makespan_ratio(job),
                    **({"shares": reasons[job.job_id].to_dict()} if job.job_id in reasons else {}),
                }
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
    shards: dict[str, int] = {}
    count: dict[str, int] = {}
    for job in jobs:
        for entry in job.nodes:
            name = entry.node
            if name not in executed:
                order.append(name)
                weight[name], share[name], planned[name] = None, None, None
                executed[name], busy[name], shards[name], count[name] = 0, 0.0, 0, 0
            if entry.weight is not None:
                weight[name], share[name] = entry.weight, entry.load_share
            if entry.planned_tasks is not None:
                planned[name] = (planned[name] or 0) + entry.planned_tasks
            executed[name] += entry.executed_tasks
            busy[name] += entry.busy_s
            shards[name] += entry.shards
            count[name] += 1
    total = sum(executed.values())
    nodes = tuple(
        NodeLoad(
            node=name,
            weight=weight[name],
            load_share=share[name],
            planned_tasks=planned[name],
            executed_tasks=executed[name],
            shards=shards[name],
            busy_s=busy[name],
            executed_share=executed[name] / total if total else None,
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
