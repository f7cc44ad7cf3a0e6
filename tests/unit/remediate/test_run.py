"""One remediation pass with its playbooks and probes replaced: the lock, the dry run,
the audit log written before and after each action, escalation read back from the audit,
and verification outcomes."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from lepton_ops.errors import OperationFailed
from lepton_ops.remediate import run as run_module
from lepton_ops.remediate.actions import ActionOutcome
from lepton_ops.remediate.ladder import Action
from lepton_ops.remediate.policy import NodeState, PolicyConfig
from lepton_ops.remediate.run import lock_path, remediate_once, uncordon
from lepton_ops.telemetry.history import HistoryStore, history_path

CONFIG = PolicyConfig(risk_threshold=0.5, cooldown_s=0, max_attempts=3, max_concurrent=1)


class Fleet:
    """Stands in for the predictor, the playbooks and the health checks."""

    def __init__(self, risks: dict[str, float]) -> None:
        self.risks = dict(risks)
        self.actions: list[tuple[str, str]] = []
        self.healthy = True
        self.ok = True
        self.drains: list[list[str]] = []

    def states(self, state_dir: Path, nodes: list[str] | None = None) -> Any:
        chosen = {n: r for n, r in self.risks.items() if nodes is None or n in nodes}
        states = [NodeState(n, r) for n, r in sorted(chosen.items())]
        return states, {n: {"probability": r} for n, r in chosen.items()}, True

    def act(self, action: Any, node: str, *args: Any, **kwargs: Any) -> ActionOutcome:
        self.actions.append((str(action), node))
        if self.ok and str(action) == "restart":
            self.risks[node] = 0.05  # the restart fixed it
        return ActionOutcome(self.ok, f"{action} ran", 0.1)


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Fleet:
    made = Fleet({"node1": 0.1, "node2": 0.92, "node3": 0.7})
    monkeypatch.setattr(run_module, "node_states", made.states)
    monkeypatch.setattr(run_module, "run_action", made.act)
    monkeypatch.setattr(run_module, "node_health", lambda *a: {"lepton-worker": made.healthy})
    monkeypatch.setattr(run_module, "drained_nodes", lambda *a: {"node2"})
    monkeypatch.setattr(run_module, "lift_predictive_drain", lambda *a: "drain lifted")
    monkeypatch.setattr(
        run_module,
        "predictive_drain",
        lambda state_dir, inventory, at_risk, trigger: (
            made.drains.append(sorted(at_risk)) or sorted(at_risk)
        ),
    )
    return made


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def test_a_dry_run_plans_and_changes_nothing(tmp_path: Path, fleet: Fleet) -> None:
    HistoryStore(history_path(tmp_path)).close()
    before = digest(history_path(tmp_path))
    result = remediate_once(tmp_path, tmp_path / "inv.yml", CONFIG, dry_run=True)
    assert [(d.node, d.action) for d in result.plan.actions] == [("node2", Action.RESTART)]
    assert fleet.actions == [] and result.results == [] and fleet.drains == []
    assert digest(history_path(tmp_path)) == before


def test_an_action_is_audited_with_evidence_and_verified(tmp_path: Path, fleet: Fleet) -> None:
    refreshed: list[str] = []
    result = remediate_once(
        tmp_path, tmp_path / "inv.yml", CONFIG, trigger="schedule", refresh=refreshed.append
    )
    assert fleet.actions == [("restart", "node2")] and refreshed == ["node2"]
    # Both nodes at risk are drained at once; only one is under remediation.
    assert fleet.drains == [["node2", "node3"]] and result.drained == ["node2", "node3"]
    (done,) = result.results
    assert done.outcome == "verified" and result.ok
    with HistoryStore(history_path(tmp_path)) as store:
        (record,) = store.remediations()
    assert (record.node, record.action, record.trigger, record.outcome) == (
        "node2", "restart", "schedule", "verified")  # fmt: skip
    assert record.before == {"probability": 0.92}
    assert record.after is not None and record.after["prediction"] == {"probability": 0.05}
    # node3 (0.7) waited for its turn: one node at a time; it goes next.
    remediate_once(tmp_path, tmp_path / "inv.yml", CONFIG)
    assert fleet.actions[-1] == ("restart", "node3")


def test_a_node_that_keeps_failing_climbs_the_ladder_to_a_cordon(
    tmp_path: Path, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.risks = {"node2": 0.95}
    monkeypatch.setattr(fleet, "act", lambda action, node, *a, **k: (
        fleet.actions.append((str(action), node)) or ActionOutcome(True, "ran", 0.1)))  # fmt: skip
    monkeypatch.setattr(run_module, "run_action", fleet.act)
    for _ in range(5):  # the fresh telemetry still shows the risk: no fix held
        remediate_once(
            tmp_path, tmp_path / "inv.yml", CONFIG, verify_timeout_s=0, refresh=lambda n: None
        )
    assert [a for a, _ in fleet.actions] == ["restart", "drain", "reprovision", "cordon"]
    with HistoryStore(history_path(tmp_path)) as store:
        outcomes = [r.outcome for r in store.remediations()]
    assert outcomes == ["unverified", "verified", "unverified", "cordoned"]
    # A person lifts the cordon: the ladder may act again (escalated, the window holds).
    # (uncordon first checks that the inventory names the node)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    node2:\n", encoding="utf-8")
    uncordon(tmp_path, tmp_path / "inv.yml", "node2")
    remediate_once(tmp_path, tmp_path / "inv.yml", CONFIG, verify_timeout_s=0)
    assert fleet.actions[-1] == ("cordon", "node2")


def test_a_failed_playbook_is_audited_as_failed(tmp_path: Path, fleet: Fleet) -> None:
    fleet.ok = False
    result = remediate_once(tmp_path, tmp_path / "inv.yml", CONFIG)
    assert [r.outcome for r in result.results] == ["failed"] and not result.ok


def test_two_passes_never_act_at_once(tmp_path: Path, fleet: Fleet) -> None:
    holder = run_module.FileLock(str(lock_path(tmp_path)))
    holder.acquire()
    try:
        with pytest.raises(OperationFailed, match="another remediation pass holds"):
            remediate_once(tmp_path, tmp_path / "inv.yml", CONFIG)
    finally:
        holder.release()
    assert fleet.actions == []


def test_concurrent_actions_stay_within_the_limit(
    tmp_path: Path, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.risks = {f"node{i}": 0.9 for i in range(1, 6)}
    running = 0
    peak = 0
    guard = threading.Lock()

    def slow(action: Any, node: str, *a: Any, **k: Any) -> ActionOutcome:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.2)
        with guard:
            running -= 1
        return ActionOutcome(True, "ran", 0.2)

    monkeypatch.setattr(run_module, "run_action", slow)
    wider = PolicyConfig(risk_threshold=0.5, cooldown_s=0, max_concurrent=2)
    result = remediate_once(tmp_path, tmp_path / "inv.yml", wider, verify_timeout_s=0)
    assert len(result.results) == 2 and peak == 2


def test_an_action_left_in_progress_by_a_dead_pass_is_closed(tmp_path: Path, fleet: Fleet) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        store.start_remediation("node2", "restart", trigger="watch", reason="x", before={})
    result = remediate_once(tmp_path, tmp_path / "inv.yml", CONFIG)
    # It no longer blocks node2: the ladder goes on (a drain: it was the second attempt).
    assert [(d.node, d.action) for d in result.plan.actions] == [("node2", Action.DRAIN)]
    with HistoryStore(history_path(tmp_path)) as store:
        assert store.remediations()[0].outcome == "abandoned"
