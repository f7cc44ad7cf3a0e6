"""The controller's job history: each finished job, written to the telemetry store.

Why: ``lepton-ops report`` compares each node's load share with the tasks it ran, and
each job's predicted makespan with the measured one, from the controller's store alone
(the aggregator keeps its own jobs, but it can be redeployed or unreachable when the
report is made). Both ways of running a job - ``lepton-ops job run`` and the
``lepton.ops.job`` module (through :mod:`lepton_ops.jobs.run`) - end in
:func:`lepton_ops.jobs.client.outcome`; the client they use carries a
:class:`JobHistory`, and ``outcome`` records the job there. Recording is best-effort: a
store that cannot be written costs one warning line, never the finished job.

What is recorded comes from the job's last status (per node: tasks of its accepted
shards, their count and its busy seconds; the aggregator's wall time from submission to
the last result) and from the job's plan. The aggregator's status does not carry the
plan's weights, so the controller plans the job again with the same planner over the
inventory (the weights the aggregator was deployed with) and keeps that plan only if it
names exactly the nodes the status names; a ``plan`` in the status (``Plan.to_dict``) is
used first when an aggregator reports one. Without a plan, weights, shares and planned
tasks are None and no makespan is predicted.

The predicted makespan is the plan's, at the speeds the job measured:
``max_i planned_i / v_i`` over the nodes with planned tasks, where ``v_i`` is node i's
measured tasks per second (executed tasks / busy seconds). A node that ran nothing gets
the plan's relative speed scaled by the seconds per task at speed 1 measured over the
others (``sum_j busy_j * speed_j / sum_j executed_j``).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lepton_ops.errors import BadInput, LeptonError
from lepton_ops.jobs.fleet import plan_inventory
from lepton_ops.jobs.planner import Plan
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.records import JobRunNode, JobRunRecord

log = logging.getLogger(__name__)

#: The job statuses that are final (as :data:`lepton_ops.jobs.client.FINISHED`).
_FINISHED = frozenset({"succeeded", "failed"})

#: A job's plan from its last status; None when it cannot be known.
PlanSource = Callable[[Mapping[str, Any]], Plan | None]


def inventory_plans(inventory: Callable[[], Path]) -> PlanSource:
    """Plans made over the inventory ``inventory()`` names (called only when needed)."""

    def plan(status: Mapping[str, Any]) -> Plan | None:
        return plan_inventory(
            inventory(), int(status["tasks"]), strategy=str(status.get("strategy", "weighted"))
        )

    return plan


class JobHistory:
    """Where a client records the jobs it sees finish: the store in ``state_dir``."""

    def __init__(self, state_dir: Path, plans: PlanSource | None = None) -> None:
        self.state_dir = state_dir
        self._plans = plans

    def record(self, status: Mapping[str, Any]) -> JobRunRecord | None:
        """Record the finished job ``status`` describes; None if it was not recorded.

        Never raises: a job that is not finished is skipped, anything else that goes wrong
        is one warning line.
        """
        if status.get("status") not in _FINISHED:
            return None
        job_id = status.get("job_id")
        try:
            job = job_run_record(status, self.plan_of(status))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "job %s: not written to the job history (unreadable status: %s)", job_id, exc
            )
            return None
        path = history_path(self.state_dir)
        try:
            with HistoryStore(path) as store:
                store.record_job(job)
        except (LeptonError, OSError, sqlite3.Error) as exc:
            log.warning("job %s finished but was not written to the job history: %s", job_id, exc)
            return None
        return job

    def plan_of(self, status: Mapping[str, Any]) -> Plan | None:
        """The job's plan: the status's own, else the plan source's if it names its nodes."""
        given = status.get("plan")
        if isinstance(given, Mapping):
            try:
                return Plan.from_dict(given)
            except BadInput:
                pass
        if self._plans is None:
            return None
        try:
            plan = self._plans(status)
        # Best-effort: no inventory, an unreadable one, Ansible's own errors - the finished
        # job is recorded without its plan rather than not at all.
        except Exception:
            return None
        if plan is None or {node.name for node in plan.nodes} != set(status.get("per_node") or {}):
            return None
        return plan


def job_run_record(
    status: Mapping[str, Any], plan: Plan | None, *, now: float | None = None
) -> JobRunRecord:
    """The history row of a finished job from its last status and (if known) its plan."""
    recorded = time.time() if now is None else float(now)
    per_node: Mapping[str, Mapping[str, Any]] = status.get("per_node") or {}
    planned = {node.name: node for node in plan.nodes} if plan is not None else {}
    names = list(planned) + [name for name in per_node if name not in planned]
    nodes = []
    for name in names:
        entry = per_node.get(name) or {}
        plan_node = planned.get(name)
        nodes.append(
            JobRunNode(
                node=str(name),
                weight=None if plan_node is None else plan_node.weight,
                load_share=None if plan_node is None else plan_node.load_share,
                planned_tasks=None if plan_node is None else plan_node.tasks,
                executed_tasks=int(entry.get("tasks") or 0),
                shards=int(entry.get("shards") or 0),
                busy_s=float(entry.get("seconds") or 0.0),
            )
        )
    predicted, basis = predicted_makespan(plan, nodes)
    finished = status.get("finished_at")
    submitted = status.get("created_at")
    makespan = status.get("makespan_s")
    return JobRunRecord(
        job_id=str(status["job_id"]),
        kind=str(status["kind"]),
        strategy=str(status.get("strategy") or (plan.strategy.value if plan else "")),
        tasks=int(status.get("tasks") or (plan.tasks if plan else 0)),
        status=str(status["status"]),
        submitted_at=None if submitted is None else float(submitted),
        finished_at=recorded if finished is None else float(finished),
        makespan_s=None if makespan is None else float(makespan),
        predicted_makespan_s=predicted,
        predicted_from=basis,
        nodes=tuple(nodes),
        recorded_at=recorded,
    )


def predicted_makespan(plan: Plan | None, nodes: list[JobRunNode]) -> tuple[float | None, str]:
    """The plan's makespan at the measured speeds, and how it was computed (or why not)."""
    if plan is None:
        return None, "no plan: the nodes' weights were not known to the controller"
    measured = {node.node: node for node in nodes if node.measured_speed is not None}
    if not measured:
        return None, "no node measured a speed"
    relative = {node.name: node.speed for node in plan.nodes}
    calibrated = [node for node in measured.values() if relative.get(node.node, 0.0) > 0]
    executed = sum(node.executed_tasks for node in calibrated)
    task_s = (
        sum(node.busy_s * relative[node.node] for node in calibrated) / executed
        if executed
        else None
    )
    worst, scaled = 0.0, []
    for plan_node in plan.nodes:
        if plan_node.tasks == 0:
            continue
        ran = measured.get(plan_node.name)
        if ran is not None and ran.measured_speed is not None:
            worst = max(worst, plan_node.tasks / ran.measured_speed)
        elif task_s is not None and plan_node.speed > 0:
            worst = max(worst, plan_node.tasks * task_s / plan_node.speed)
            scaled.append(plan_node.name)
        else:
            return None, f"node {plan_node.name} had planned tasks and no speed to predict with"
    basis = "planned tasks at each node's measured speed"
    if scaled:
        basis += f" ({', '.join(scaled)}: plan speed x measured seconds per task)"
    return worst, basis
