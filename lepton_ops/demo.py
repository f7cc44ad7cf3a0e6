"""The guided tour on the embedded lab: every step of the loop, timed, with its outcome.

lab up -> provision -> deploy -> a weighted ``mean`` job (checked against numpy) -> a
``sleep`` job on nodes of unequal speed (each node's share of the executed tasks checked
against its L_i = W_i / sum(W)) -> telemetry -> a memory leak injected on one node ->
prediction -> remediation -> verification -> report. Each step prints its outcome and
time; the tour stops at the first failed step (the later ones depend on it) and the
command exits non-zero then.

Run again, it does the same: the lab, the wheelhouse and the services are already there
(provision and deploy change nothing), the job and the fault are new, and the demo's
remediation policy treats each run's fault as a new incident (its escalation window is
shorter than a run). The prediction uses the state dir's current model, or the lab's
starter model (shipped with lepton-ops) when none was trained yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from lepton_ops.chaos import Chaos, FaultKind, FaultSpec
from lepton_ops.chaos.faults import MiB
from lepton_ops.deploy.deploy import deploy
from lepton_ops.errors import LeptonError
from lepton_ops.jobs.client import connect
from lepton_ops.jobs.run import wait_for_outcome
from lepton_ops.lab import Lab, LabMode
from lepton_ops.provision.provision import provision
from lepton_ops.remediate.policy import PolicyConfig
from lepton_ops.remediate.run import node_health, remediate_once
from lepton_ops.settings import StateLayout
from lepton_ops.telemetry.collect import collect
from lepton_ops.telemetry.history import HistoryStore, history_path

FAULT_NODE = "node3"
#: Grows the worker's resident memory toward its 640 MiB budget in about a minute and a half.
LEAK_RATE = 5 * MiB
JOB = {"tasks": 200, "task_size": 1000, "seed": 7}
#: The heterogeneous job: the lab's workers run at speeds 1:2:3:4:5 (their weights over the
#: smallest), so a sleep task takes 50 ms / speed. Shards of 10 tasks (1 % of the job)
#: keep stealing at the end from moving more than a point or two of anyone's share, and
#: 50 ms keeps the per-shard overhead small against a shard's time (node5: 100 ms).
SPEEDS_TASKS = 1000
SPEEDS_TASK_MS = 50.0
SPEEDS_SHARD_SIZE = 10
#: Each node's share of the executed tasks must be within this of its L_i.
SHARE_TOLERANCE = 0.05
PREDICT_TIMEOUT_S = 120.0
SAMPLE_EVERY_S = 3.0


@dataclass
class StepOutcome:
    name: str
    ok: bool
    seconds: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            "detail": self.detail,
        }


@dataclass
class DemoResult:
    steps: list[StepOutcome] = field(default_factory=list)
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "steps": [step.to_dict() for step in self.steps],
            "report": None if self.report is None else str(self.report),
        }


class _StepFailed(LeptonError):
    pass


def expected_mean(tasks: int, task_size: int, seed: int) -> dict[str, float]:
    """What one process computes over the job's numbers (the job kind's seeding rule)."""
    values = np.concatenate(
        [np.random.default_rng([seed, i]).random(task_size) for i in range(tasks)]
    )
    return {"count": float(values.size), "mean": float(values.mean()),
            "variance": float(values.var()), "min": float(values.min()),
            "max": float(values.max())}  # fmt: skip


def share_gaps(
    executed: Mapping[str, int], load_shares: Mapping[str, float]
) -> dict[str, tuple[float, float]]:
    """Each node's (L_i, share of the executed tasks), for the nodes of ``load_shares``."""
    total = sum(executed.values())
    return {
        node: (share, executed.get(node, 0) / total if total else 0.0)
        for node, share in load_shares.items()
    }


def run_demo(
    state_dir: Path,
    *,
    mode: LabMode | None = None,
    console: Console | None = None,
    on_step: Callable[[StepOutcome], None] | None = None,
) -> DemoResult:
    """Run the tour; stop at the first failed step."""
    lab = Lab(state_dir)
    result = DemoResult()
    started_at = time.time()
    memo: dict[str, Any] = {}

    def step(name: str, action: Callable[[], str]) -> bool:
        began = time.monotonic()
        try:
            detail, ok = action(), True
        except LeptonError as exc:
            detail, ok = str(exc), False
        outcome = StepOutcome(name, ok, time.monotonic() - began, detail)
        result.steps.append(outcome)
        if on_step is not None:
            on_step(outcome)
        return ok

    def lab_up() -> str:
        status = lab.up(mode)
        down = [node.name for node in status.nodes if not node.reachable]
        if down:
            raise _StepFailed(f"unreachable: {', '.join(down)}")
        return f"{len(status.nodes)} nodes in {status.mode} mode, inventory {status.inventory}"

    def provision_fleet() -> str:
        outcome = provision(lab.inventory_path, state_dir, console=console)
        summary = ", ".join(f"{n} {s}" for s, n in outcome.run.summary().items() if n)
        if not outcome.run.succeeded:
            raise _StepFailed(f"provision: {summary}")
        return f"{summary}; wheelhouse {outcome.wheelhouse.id}"

    def deploy_services() -> str:
        run = deploy(lab.inventory_path, state_dir, console=console)
        summary = ", ".join(f"{n} {s}" for s, n in run.summary().items() if n)
        if not run.succeeded:
            raise _StepFailed(f"deploy: {summary}")
        return f"aggregator and workers answer; {summary}"

    def job() -> str:
        with connect(state_dir, lambda: lab.inventory_path) as client:
            job_id = client.submit(
                "mean", {"task_size": JOB["task_size"], "seed": JOB["seed"]}, JOB["tasks"],
                "weighted", None,
            )  # fmt: skip
            outcome = wait_for_outcome(client, job_id, timeout_s=300)
        if not outcome.succeeded:
            raise _StepFailed(f"job {job_id} did not succeed: {outcome.to_dict()}")
        got = outcome.to_dict()["result"]
        want = expected_mean(JOB["tasks"], JOB["task_size"], JOB["seed"])
        same = all(got[key] == want[key] for key in ("count", "min", "max"))
        close = all(abs(got[k] - want[k]) <= 1e-12 * abs(want[k]) for k in ("mean", "variance"))
        exact = same and close
        if not exact:
            raise _StepFailed(f"the job's result {got} differs from numpy's {want}")
        per_node = outcome.to_dict().get("per_node", {})
        shares = ", ".join(f"{n} {v.get('tasks', 0)}" for n, v in sorted(per_node.items()))
        return (f"mean {got['mean']:.12f} of {int(got['count'])} numbers, equal to numpy's "
                f"(1e-12); tasks per node: {shares}")  # fmt: skip

    def speeds() -> str:
        from lepton_ops.jobs.fleet import plan_inventory

        plan = plan_inventory(lab.inventory_path, SPEEDS_TASKS)
        load_shares = {node.name: node.load_share for node in plan.nodes}
        with connect(state_dir, lambda: lab.inventory_path) as client:
            job_id = client.submit(
                "sleep", {"task_ms": SPEEDS_TASK_MS}, SPEEDS_TASKS, "weighted", SPEEDS_SHARD_SIZE
            )
            outcome = wait_for_outcome(client, job_id, timeout_s=300)
        if not outcome.succeeded:
            raise _StepFailed(f"job {job_id} did not succeed: {outcome.to_dict()}")
        per_node = outcome.to_dict().get("per_node", {})
        executed = {node: int(entry.get("tasks", 0)) for node, entry in per_node.items()}
        gaps = share_gaps(executed, load_shares)
        shown = ", ".join(
            f"{node} {done:.1%} (L_i {planned:.1%})" for node, (planned, done) in gaps.items()
        )
        worst = max(abs(done - planned) for planned, done in gaps.values())
        if worst > SHARE_TOLERANCE:
            raise _StepFailed(
                f"executed shares stray {worst * 100:.1f} points from L_i (at most "
                f"{SHARE_TOLERANCE * 100:.0f}): {shown}"
            )
        makespan = outcome.to_dict().get("makespan_s")
        took = f" in {makespan:.1f}s" if isinstance(makespan, int | float) else ""
        return (f"sleep job on speeds 1:2:3:4:5{took}: executed shares {shown}; each within "
                f"{worst * 100:.1f} points of L_i")  # fmt: skip

    def telemetry() -> str:
        outcome = collect(lab.inventory_path, state_dir)
        record = outcome.record
        if record.nodes_ok == 0:
            raise _StepFailed("no node answered the telemetry collection")
        return f"{record.nodes_ok} nodes sampled, {record.samples} samples stored"

    def fault() -> str:
        from lepton_ops.predict.model_store import has_current, install_starter

        if not has_current(state_dir):
            install_starter(state_dir)
            memo["model"] = "the lab's starter model"
        else:
            memo["model"] = "the state dir's current model"
        spec = FaultSpec.of(FaultKind.MEMLEAK, duration_s=240, rate_bytes_s=LEAK_RATE)
        (record,) = Chaos(state_dir).inject({FAULT_NODE: spec}, campaign="demo")
        if record.outcome == "error":
            raise _StepFailed(f"the memory leak did not start: {record.detail}")
        memo["fault"] = record
        return (f"memleak on {FAULT_NODE}: {LEAK_RATE // MiB} MiB/s into its worker's "
                f"640 MiB memory budget (fault {record.id})")  # fmt: skip

    def predict() -> str:
        from lepton_ops.predict import current_risk

        deadline = time.monotonic() + PREDICT_TIMEOUT_S
        while time.monotonic() < deadline:
            began = time.monotonic()
            # every node, so that every node's timeline in the report has data
            collect(lab.inventory_path, state_dir)
            found = {p.node: p for p in current_risk(state_dir)}.get(FAULT_NODE)
            if found is not None and found.probability is not None and found.probability >= 0.5:
                leak = memo["fault"]
                features = ", ".join(c.feature for c in found.top_features[:3])
                return (f"{FAULT_NODE}: p(fail within {found.horizon_s:.0f}s) = "
                        f"{found.probability:.2f} after {time.time() - leak.started_at:.0f}s of "
                        f"leak ({memo['model']}); top features: {features}")  # fmt: skip
            time.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - began)))
        raise _StepFailed(f"{FAULT_NODE} was not predicted to fail within {PREDICT_TIMEOUT_S:.0f}s")

    def refresh(node: str) -> None:
        collect(lab.inventory_path, state_dir, limit=node)

    def remediate() -> str:
        config = PolicyConfig(risk_threshold=0.5, cooldown_s=0, escalation_window_s=30)
        done = remediate_once(
            state_dir, lab.inventory_path, config, trigger="demo", only=[FAULT_NODE],
            refresh=refresh,
        )  # fmt: skip
        if not done.results:
            reasons = "; ".join(d.reason for d in done.plan.decisions) or "no decision"
            raise _StepFailed(f"nothing was done: {reasons}")
        (action,) = done.results
        if action.outcome != "verified":
            raise _StepFailed(f"{action.decision.action} on {FAULT_NODE}: {action.outcome}")
        return (f"{action.decision.action} of {FAULT_NODE} ({action.decision.reason}), "
                f"verified in {action.seconds:.1f}s; audit #{action.audit_id}")  # fmt: skip

    def verify() -> str:
        chaos = Chaos(state_dir)
        leak = memo["fault"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chaos.sync()
            with chaos.store() as store:
                ended = next((f for f in store.faults(active=False) if f.id == leak.id), None)
            if ended is not None:
                break
            time.sleep(1)
        else:
            raise _StepFailed(f"the leak on {FAULT_NODE} has not ended")
        health = node_health(state_dir, lab.inventory_path, FAULT_NODE)
        if ended.outcome != "remediated" or not all(health.values()):
            raise _StepFailed(f"the leak ended {ended.outcome}; health {health}")
        assert ended.ended_at is not None
        return (f"the leak was removed {ended.ended_at - ended.started_at:.0f}s after it began, "
                f"before the memory budget was hit; {FAULT_NODE} healthy")  # fmt: skip

    def report() -> str:
        from lepton_ops.report.build import build_report, fitted_since
        from lepton_ops.report.html import page

        collect(lab.inventory_path, state_dir)  # the fleet after the tour: node3 recovered
        with HistoryStore(history_path(state_dir)) as store:
            now = time.time()
            # this tour's story: from its first observation (a previous tour is not in it)
            built = build_report(store, state_dir, since=fitted_since(store, started_at, now))
        target = StateLayout(state_dir).reports / "demo-report.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(page(built), encoding="utf-8")
        temporary.replace(target)
        result.report = target
        return str(target)

    for name, action in (
        ("lab up", lab_up),
        ("provision", provision_fleet),
        ("deploy", deploy_services),
        ("job", job),
        ("speeds", speeds),
        ("telemetry", telemetry),
        ("fault", fault),
        ("prediction", predict),
        ("remediation", remediate),
        ("verification", verify),
        ("report", report),
    ):
        if not step(name, action):
            if "fault" in memo:
                Chaos(state_dir).stop([FAULT_NODE])
            break
    return result
