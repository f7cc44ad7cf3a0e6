"""The remediation policy's guards, one by one: threshold, cooldown, escalation up the
ladder, the circuit breaker (cordon after N attempts), concurrency, cordons."""

from __future__ import annotations

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.remediate.ladder import Action
from lepton_ops.remediate.policy import (
    NodeState,
    PastAction,
    PolicyConfig,
    cordoned_nodes,
    decide,
)

NOW = 10_000.0
CONFIG = PolicyConfig(risk_threshold=0.5, cooldown_s=60, escalation_window_s=900,
                      max_attempts=3, max_concurrent=1)  # fmt: skip


def decided(
    states: list[NodeState], history: tuple[PastAction, ...] | list[PastAction] = ()
) -> dict[str, Action | None]:
    plan = decide(states, history, NOW, CONFIG)
    return {d.node: d.action for d in plan.decisions}


def test_only_nodes_at_risk_or_failing_are_candidates() -> None:
    got = decided([NodeState("a", 0.49), NodeState("b", None), NodeState("c", 0.2, failing=True)])
    assert got == {"c": Action.RESTART}


def test_the_riskiest_goes_first_and_the_others_wait_their_turn() -> None:
    plan = decide([NodeState("a", 0.7), NodeState("b", 0.95), NodeState("c", 0.6)], [], NOW, CONFIG)
    assert [(d.node, d.action) for d in plan.actions] == [("b", Action.RESTART)]
    waiting = [d for d in plan.decisions if d.action is None]
    assert {d.node for d in waiting} == {"a", "c"}
    assert all("at most under remediation" in d.reason for d in waiting)
    wider = PolicyConfig(max_concurrent=2)
    plan = decide([NodeState("a", 0.7), NodeState("b", 0.95), NodeState("c", 0.6)], [], NOW, wider)
    assert [d.node for d in plan.actions] == ["b", "a"]


def test_an_action_in_progress_takes_a_slot_and_blocks_its_node() -> None:
    history = [PastAction("a", Action.RESTART, NOW - 5, None)]
    assert decided([NodeState("a", 0.9), NodeState("b", 0.9)], history) == {"a": None, "b": None}


def test_cooldown_then_escalation_up_the_ladder() -> None:
    once = [PastAction("a", Action.RESTART, NOW - 100, NOW - 30)]
    plan = decide([NodeState("a", 0.9)], once, NOW, CONFIG)
    assert (
        plan.decisions[0].action is None and "cooling down (30s left)" in plan.decisions[0].reason
    )
    once = [PastAction("a", Action.RESTART, NOW - 200, NOW - 61)]
    assert decided([NodeState("a", 0.9)], once) == {"a": Action.DRAIN}
    twice = [*once, PastAction("a", Action.DRAIN, NOW - 150, NOW - 100)]
    assert decided([NodeState("a", 0.9)], twice) == {"a": Action.REPROVISION}
    # Outside the escalation window, the ladder starts again.
    old = [PastAction("a", Action.RESTART, NOW - 1000, NOW - 990)]
    assert decided([NodeState("a", 0.9)], old) == {"a": Action.RESTART}


def test_the_circuit_breaker_cordons_after_max_attempts_and_then_stops() -> None:
    history = [
        PastAction("a", Action.RESTART, NOW - 300, NOW - 290),
        PastAction("a", Action.DRAIN, NOW - 200, NOW - 190),
        PastAction("a", Action.REPROVISION, NOW - 100, NOW - 90),
    ]
    plan = decide([NodeState("a", 0.9, failing=True)], history, NOW, CONFIG)
    (decision,) = plan.actions
    assert decision.action is Action.CORDON and "call a human" in decision.reason
    cordoned = [*history, PastAction("a", Action.CORDON, NOW - 80, NOW - 79)]
    nodes = cordoned_nodes(cordoned)
    assert nodes == {"a"}
    plan = decide([NodeState("a", 0.99, failing=True)], cordoned, NOW, CONFIG, cordoned=nodes)
    assert plan.actions == [] and "cordoned" in plan.decisions[0].reason
    assert cordoned_nodes(cordoned, {"a": NOW - 10}) == set()


def test_bad_policy_settings_are_bad_input() -> None:
    for kwargs in ({"risk_threshold": 0}, {"max_attempts": 9}, {"max_concurrent": 0},
                   {"cooldown_s": -1}):  # fmt: skip
        with pytest.raises(BadInput):
            PolicyConfig(**kwargs)  # type: ignore[arg-type]
