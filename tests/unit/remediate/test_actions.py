"""Remediation actions are specs: the registry and the playbook agree, and the recipe of
docs/remediation.md ("Adding a remediation action": one spec plus its playbook task) holds -
an action registered from another module climbs the ladder, runs its playbook task, is
verified and audited as its spec says."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_ops.remediate import actions as actions_module
from lepton_ops.remediate import run as run_module
from lepton_ops.remediate.ladder import (
    Action,
    Runs,
    Verify,
    action_named,
    actions,
    ladder,
    register,
    unregister,
)
from lepton_ops.remediate.policy import NodeState, PastAction, PolicyConfig, decide
from lepton_ops.remediate.run import remediate_once
from lepton_ops.telemetry.history import HistoryStore, history_path

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "ansible_collections" / "lepton" / "ops" / "playbooks" / "remediate.yml"


def playbook_play() -> dict[str, Any]:
    (play,) = yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))
    assert isinstance(play, dict)
    return play


def test_the_playbook_does_exactly_the_actions_specified_to_run_there() -> None:
    play = playbook_play()
    specified = {a.name for a in actions() if a.runs is Runs.REMEDIATE_PLAYBOOK}
    assert set(play["vars"]["lepton_remediate_known_actions"]) == specified
    conditions = " ".join(str(task.get("when", "")) for task in play["tasks"])
    for name in specified:
        assert f"'{name}'" in conditions, f"no task of {PLAYBOOK.name} runs {name}"


def test_the_built_in_ladder_and_undrain() -> None:
    assert [a.name for a in ladder()] == ["restart", "drain", "reprovision", "cordon"]
    assert action_named("undrain") is Action.UNDRAIN and Action.UNDRAIN not in ladder()
    assert ladder()[-1].held and ladder()[-1].alerts
    assert [a.name for a in actions() if a.lifts_predictive_drain] == ["restart", "reprovision"]


def test_a_name_or_a_rung_is_taken_once() -> None:
    with pytest.raises(Exception, match="registered twice"):
        register(Action("restart", "again", rung=None, verify=Verify.RAN))
    with pytest.raises(Exception, match="takes rung 20, which is 'drain'"):
        register(Action("other", "same rung", rung=20, verify=Verify.RAN))
    assert "other" not in {a.name for a in actions()}


# The recipe, as a plugin would follow it: a spec registered in a module of its own.
PLUGIN = """
from lepton_ops.remediate.ladder import Action, Verify, register

REBOOT = register(Action(
    "reboot", "Reboot the node.", rung=25, verify=Verify.HEALTHY, lifts_predictive_drain=True
))
"""


@pytest.fixture
def reboot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Action]:
    (tmp_path / "lepton_reboot_action.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lepton_reboot_action", raising=False)
    try:
        yield importlib.import_module("lepton_reboot_action").REBOOT
    finally:
        unregister("reboot")
        sys.modules.pop("lepton_reboot_action", None)


def test_a_registered_action_takes_its_rung_on_the_ladder(reboot: Action) -> None:
    assert [a.name for a in ladder()] == ["restart", "drain", "reboot", "reprovision", "cordon"]
    config = PolicyConfig(cooldown_s=0, max_attempts=5)
    history = [
        PastAction("n1", Action.RESTART, 10.0, 11.0),
        PastAction("n1", Action.DRAIN, 20.0, 21.0),
    ]
    (decision,) = decide([NodeState("n1", 0.9)], history, 30.0, config).decisions
    assert decision.action is reboot


class Ran:
    def __init__(self, playbook: str) -> None:
        self.playbook, self.succeeded, self.duration_s = playbook, True, 0.1


def test_a_registered_action_runs_its_playbook_task(
    reboot: Action, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests: list[Any] = []
    monkeypatch.setattr(
        actions_module, "run_playbook", lambda request, state_dir: requests.append(request)
        or Ran(request.playbook),
    )  # fmt: skip
    outcome = actions_module.run_action(reboot, "n1", tmp_path / "inv.yml", tmp_path, reason="r")
    assert outcome.ok
    (request,) = requests
    assert request.playbook == "remediate" and request.limit == "n1"
    assert request.extravars["lepton_remediate_action"] == "reboot"
    assert not (tmp_path / "alerts.log").exists()  # the spec does not alert


def test_a_pass_verifies_and_audits_a_registered_action_as_its_spec_says(
    reboot: Action, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        for name in ("restart", "drain"):
            done = store.start_remediation("n1", name, trigger="t", reason="r", before={})
            store.finish_remediation(done, "unverified", after={}, detail="")
    ran: list[str] = []
    lifted: list[str] = []
    monkeypatch.setattr(run_module, "node_states", lambda state_dir, nodes=None: (
        [NodeState("n1", 0.9)], {"n1": {"probability": 0.9}}, True))  # fmt: skip
    monkeypatch.setattr(run_module, "run_action", lambda action, node, *a, **k: (
        ran.append(action.name) or actions_module.ActionOutcome(True, "ran", 0.1)))  # fmt: skip
    monkeypatch.setattr(run_module, "node_health", lambda *a: {"lepton-worker": True})
    monkeypatch.setattr(run_module, "predictive_drain", lambda *a, **k: [])
    monkeypatch.setattr(run_module, "lift_predictive_drain", lambda *a: lifted.append("n1") or "")
    config = PolicyConfig(cooldown_s=0, max_attempts=5)
    result = remediate_once(tmp_path, tmp_path / "inv.yml", config, verify_timeout_s=0)
    assert ran == ["reboot"] and lifted == ["n1"] and result.ok
    with HistoryStore(history_path(tmp_path)) as store:
        last = store.remediations()[-1]
    assert (last.action, last.outcome) == ("reboot", "verified")
    assert [p.action for p in run_module.ladder_history([last])] == [reboot]
