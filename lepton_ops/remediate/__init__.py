"""Remediation: a policy ladder over each node's risk and history, actions that are
playbooks, verified and audited; one pass (``remediate``), the loop (``cycle``, ``watch``),
the schedule, and the events Event-Driven Ansible reads."""

from lepton_ops.remediate.ladder import Action, register
from lepton_ops.remediate.policy import Decision, NodeState, PastAction, PolicyConfig, decide

__all__ = [
    "Action",
    "Decision",
    "NodeState",
    "PastAction",
    "PolicyConfig",
    "decide",
    "register",
]
