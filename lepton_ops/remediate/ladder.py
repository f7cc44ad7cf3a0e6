"""The remediation ladder: what is tried on a node, in order, when it needs help again."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    #: restart the node's lepton service (a leak and a stuck process go with it)
    RESTART = "restart"
    #: take the node out of job plans (weight 0; running jobs move its unstarted shards)
    DRAIN = "drain"
    #: provision and deploy the node again from the controller's wheelhouse
    REPROVISION = "reprovision"
    #: drain it until a person says otherwise, and alert a human: the robot stops here
    CORDON = "cordon"


LADDER: tuple[Action, ...] = (Action.RESTART, Action.DRAIN, Action.REPROVISION, Action.CORDON)

#: Audit log actions outside the ladder: a person lifting a cordon, and the drain placed on
#: a node predicted to fail (not an attempt at a fix: it lapses by itself).
UNCORDON = "uncordon"
PREDICTIVE_DRAIN = "predictive-drain"


def rung(attempts_in_window: int) -> Action:
    """The action for a node helped ``attempts_in_window`` times within the escalation window."""
    return LADDER[min(max(attempts_in_window, 0), len(LADDER) - 1)]
