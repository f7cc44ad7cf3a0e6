"""The remediation actions, one spec each, and the ladder they make: what is tried on a
node, in order, when it needs help again.

An action's spec says everything the rest of remediation needs to know of it: how it
runs, how its effect is verified, whether a verified run lifts a predictive drain, whether
it alerts a human, whether it holds until a person lifts it. Adding an action is one
:func:`register` call here plus its task in the ``lepton.ops.remediate`` playbook (see
docs/remediation.md, "Adding a remediation action").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from lepton_ops.errors import OperationFailed


class Runs(StrEnum):
    """How an action runs on its node (through the gateway, limited to the node)."""

    #: the ``lepton.ops.remediate`` playbook with ``lepton_remediate_action=<name>``: the
    #: playbook's tasks whose ``when`` names the action do it
    REMEDIATE_PLAYBOOK = "lepton.ops.remediate"
    #: ``lepton.ops.provision`` then ``lepton.ops.deploy`` (the same code path as
    #: ``lepton-ops provision`` and ``deploy``)
    PROVISION_AND_DEPLOY = "lepton.ops.provision + lepton.ops.deploy"


class Verify(StrEnum):
    """How a run that succeeded is checked to have had its effect."""

    #: the node's services answer ``/healthz`` and - with a model - its risk is below the
    #: threshold on freshly collected telemetry, within the verification timeout
    HEALTHY = "healthy"
    #: the aggregator lists the node as drained
    DRAINED = "drained"
    #: the playbook's success is the verification
    RAN = "ran"


@dataclass(frozen=True, eq=False)
class Action:
    """One remediation action. Specs are compared by identity: there is one per name."""

    name: str
    #: one line for docs and listings
    summary: str
    #: its place on the ladder, lowest first; None: not a rung, run only when asked
    rung: int | None
    verify: Verify
    runs: Runs = Runs.REMEDIATE_PLAYBOOK
    #: the audit outcome of a verified run
    verified_as: str = "verified"
    #: a verified run lifts a drain placed because the node was predicted to fail
    lifts_predictive_drain: bool = False
    #: a human is alerted (``<state_dir>/alerts.log`` and ``LEPTON_ALERT_COMMAND``)
    alerts: bool = False
    #: it holds until a person lifts it (``lepton-ops uncordon``): the policy leaves the
    #: node alone meanwhile
    held: bool = False
    #: what it leaves the node as, for the report's timeline (None: nothing to show)
    leaves_node: str | None = None

    # The built-in specs (registered below), for code that names one of them.
    RESTART: ClassVar[Action]
    DRAIN: ClassVar[Action]
    REPROVISION: ClassVar[Action]
    CORDON: ClassVar[Action]
    UNDRAIN: ClassVar[Action]

    @property
    def value(self) -> str:
        """The name, as the audit log and ``--json`` write it."""
        return self.name

    def __str__(self) -> str:
        return self.name


_registry: dict[str, Action] = {}


def register(action: Action) -> Action:
    """Add ``action`` to the registry (its name must be new, its rung free); ``action``."""
    if action.name in _registry:
        raise OperationFailed(f"remediation action {action.name!r} is registered twice")
    taken = {known.rung: known.name for known in _registry.values() if known.rung is not None}
    if action.rung is not None and action.rung in taken:
        raise OperationFailed(
            f"remediation action {action.name!r} takes rung {action.rung}, "
            f"which is {taken[action.rung]!r}'s"
        )
    _registry[action.name] = action
    return action


def unregister(name: str) -> None:
    """Take the action ``name`` out of the registry (tests, and plugins that withdraw)."""
    _registry.pop(name, None)


def actions() -> tuple[Action, ...]:
    """Every registered action, in the order they were registered."""
    return tuple(_registry.values())


def action_named(name: str) -> Action:
    """The action called ``name``; OperationFailed naming the known ones if there is none."""
    found = _registry.get(name)
    if found is None:
        raise OperationFailed(
            f"unknown remediation action {name!r}: known actions are {', '.join(_registry)}"
        )
    return found


def ladder() -> tuple[Action, ...]:
    """The rungs, lowest first: the last one is where the robot stops (the circuit breaker)."""
    rungs = [action for action in _registry.values() if action.rung is not None]
    return tuple(sorted(rungs, key=lambda action: action.rung or 0))


def rung(attempts_in_window: int) -> Action:
    """The action for a node helped ``attempts_in_window`` times within the escalation window."""
    steps = ladder()
    return steps[min(max(attempts_in_window, 0), len(steps) - 1)]


def verified_outcomes() -> frozenset[str]:
    """The audit outcomes that mean an action did what it is for."""
    return frozenset({"verified", *(action.verified_as for action in _registry.values())})


Action.RESTART = register(
    Action(
        "restart",
        "Restart the node's lepton services (a leak and a stuck process go with them).",
        rung=10,
        verify=Verify.HEALTHY,
        lifts_predictive_drain=True,
    )
)
Action.DRAIN = register(
    Action(
        "drain",
        "Take the node out of job plans for a while (running jobs move its unstarted shards).",
        rung=20,
        verify=Verify.DRAINED,
        leaves_node="drained",
    )
)
Action.REPROVISION = register(
    Action(
        "reprovision",
        "Provision and deploy the node again from the controller's wheelhouse.",
        rung=30,
        verify=Verify.HEALTHY,
        runs=Runs.PROVISION_AND_DEPLOY,
        lifts_predictive_drain=True,
    )
)
Action.CORDON = register(
    Action(
        "cordon",
        "Drain the node until a person says otherwise, and alert a human: the robot stops here.",
        rung=40,
        verify=Verify.DRAINED,
        verified_as="cordoned",
        alerts=True,
        held=True,
        leaves_node="cordoned",
    )
)
Action.UNDRAIN = register(
    Action(
        "undrain",
        "Lift the node's drain (what lifting a cordon runs).",
        rung=None,
        verify=Verify.RAN,
    )
)

#: Audit log actions that are not specs: a person lifting a cordon (it runs ``undrain``),
#: and the drain placed on a node predicted to fail (not an attempt at a fix: it lapses by
#: itself; the pass places it on the aggregator directly).
UNCORDON = "uncordon"
PREDICTIVE_DRAIN = "predictive-drain"


def timeline_states() -> dict[str, str]:
    """``{audit action: what it leaves the node as}`` for the actions that show on a node's
    timeline in the report (those that take it out of job plans)."""
    found = {a.name: a.leaves_node for a in _registry.values() if a.leaves_node is not None}
    return {**found, PREDICTIVE_DRAIN: "drained (predicted)"}
