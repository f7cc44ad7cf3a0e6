"""The remediation policy: from each node's risk and history, who gets which action now.

A pure function of its inputs (no I/O), so every guard is tested on its own:

- **threshold**: a node is a candidate when its failure probability within the horizon is
  at least ``risk_threshold``, or it is failing now (unreachable, a health check failing);
- **cooldown**: no action on a node within ``cooldown_s`` of the last one ended;
- **escalation**: each action on a node within ``escalation_window_s`` of earlier ones
  climbs the ladder (:func:`~lepton_ops.remediate.ladder.ladder`: restart -> drain ->
  re-provision -> cordon);
- **circuit breaker**: after ``max_attempts`` actions in the window the node gets the
  ladder's last rung (a cordon) and nothing more is tried on it: a person is asked
  instead of looping;
- **concurrency**: at most ``max_concurrent`` nodes under remediation at once (those with
  an action in progress count), the riskiest first, so the fleet keeps its capacity;
- a node under an action that holds (a cordon) is left alone until a person lifts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.remediate.ladder import Action, ladder, rung


@dataclass(frozen=True)
class PolicyConfig:
    risk_threshold: float = 0.5
    cooldown_s: float = 60.0
    escalation_window_s: float = 900.0
    max_attempts: int = 3
    max_concurrent: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.risk_threshold <= 1:
            raise BadInput(f"the risk threshold is in (0, 1], got {self.risk_threshold}")
        if self.cooldown_s < 0 or self.escalation_window_s < 0:
            raise BadInput("the cooldown and the escalation window are 0 seconds or more")
        rungs = len(ladder())
        if not 1 <= self.max_attempts <= rungs:
            raise BadInput(f"max attempts is from 1 to {rungs}, got {self.max_attempts}")
        if self.max_concurrent < 1:
            raise BadInput(f"at least 1 node may be under remediation, got {self.max_concurrent}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "risk_threshold": self.risk_threshold,
            "cooldown_s": self.cooldown_s,
            "escalation_window_s": self.escalation_window_s,
            "max_attempts": self.max_attempts,
            "max_concurrent": self.max_concurrent,
        }


@dataclass(frozen=True)
class NodeState:
    """What the policy knows of one node now."""

    node: str
    #: probability of failing within the horizon (None: no prediction)
    risk: float | None
    #: failing now: unreachable or a health check failing
    failing: bool = False
    #: the features that drove the risk, for the audit and the operator
    why: tuple[str, ...] = ()


@dataclass(frozen=True)
class PastAction:
    """One earlier action on a node, from the audit log."""

    node: str
    action: Action
    started_at: float
    #: None while it is in progress
    finished_at: float | None


@dataclass(frozen=True)
class Decision:
    node: str
    #: None: nothing is done (see ``reason``)
    action: Action | None
    reason: str
    risk: float | None = None
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "action": None if self.action is None else self.action.value,
            "reason": self.reason,
            "risk": self.risk,
            "attempt": self.attempt,
        }


@dataclass
class Plan:
    decisions: list[Decision] = field(default_factory=list)

    @property
    def actions(self) -> list[Decision]:
        return [decision for decision in self.decisions if decision.action is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"decisions": [decision.to_dict() for decision in self.decisions]}


def decide(
    states: Iterable[NodeState],
    history: Iterable[PastAction],
    now: float,
    config: PolicyConfig,
    *,
    cordoned: Iterable[str] = (),
) -> Plan:
    """Which nodes get which action now, and why every other candidate gets none."""
    past: dict[str, list[PastAction]] = {}
    for item in history:
        past.setdefault(item.node, []).append(item)
    cordons = set(cordoned)
    in_progress = {
        node for node, items in past.items() if any(i.finished_at is None for i in items)
    }
    plan = Plan()
    candidates: list[tuple[float, NodeState, Action, int]] = []
    for state in states:
        at_risk = state.risk is not None and state.risk >= config.risk_threshold
        if not (at_risk or state.failing):
            continue
        items = past.get(state.node, [])
        why = "failing now" if state.failing else f"risk {state.risk:.2f}"
        if state.node in cordons:
            plan.decisions.append(
                Decision(state.node, None, f"{why}; cordoned: a person decides", state.risk)
            )
            continue
        if state.node in in_progress:
            plan.decisions.append(
                Decision(state.node, None, f"{why}; an action is in progress", state.risk)
            )
            continue
        ended = [i.finished_at for i in items if i.finished_at is not None]
        if ended and now - max(ended) < config.cooldown_s:
            left = config.cooldown_s - (now - max(ended))
            plan.decisions.append(
                Decision(state.node, None, f"{why}; cooling down ({left:.0f}s left)", state.risk)
            )
            continue
        recent = [i for i in items if now - i.started_at <= config.escalation_window_s]
        attempts = len(recent)
        action = ladder()[-1] if attempts >= config.max_attempts else rung(attempts)
        urgency = 2.0 if state.failing else (state.risk or 0.0)
        candidates.append((urgency, state, action, attempts + 1))
    slots = max(config.max_concurrent - len(in_progress - cordons), 0)
    candidates.sort(key=lambda item: (-item[0], item[1].node))
    for index, (_, state, action, attempt) in enumerate(candidates):
        why = "failing now" if state.failing else f"risk {state.risk:.2f}"
        if index < slots:
            reason = f"{why}; attempt {attempt} in the escalation window"
            if action.held:
                reason = (
                    f"{why}; {attempt - 1} attempts did not hold: {action.name} and call a human"
                )
            plan.decisions.append(Decision(state.node, action, reason, state.risk, attempt))
        else:
            plan.decisions.append(
                Decision(
                    state.node,
                    None,
                    f"{why}; waiting: {config.max_concurrent} node(s) at most under remediation",
                    state.risk,
                )
            )
    return plan


def cordoned_nodes(
    history: Iterable[PastAction], lifted: Mapping[str, float] | None = None
) -> set[str]:
    """Nodes under an action that holds (a cordon) not lifted after it (``lifted``: node
    -> when)."""
    lifted = lifted or {}
    found: set[str] = set()
    for item in history:
        if item.action.held and item.started_at > lifted.get(item.node, float("-inf")):
            found.add(item.node)
    return found
