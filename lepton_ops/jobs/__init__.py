"""Jobs: the shard planner, work stealing and the job kinds (map, reduce, finalize).

This package is the single source of truth for how a job is split and merged; the
CLI, the Ansible module and the aggregator service all use it.
"""

from lepton_ops.jobs.kinds import JobKind, Param, get_kind, known_kinds, reduce_partials
from lepton_ops.jobs.planner import (
    Plan,
    PlanNode,
    Shard,
    Strategy,
    apportion,
    default_shard_size,
    make_plan,
)
from lepton_ops.jobs.shard_queue import ShardQueue, ShardState

__all__ = [
    "JobKind",
    "Param",
    "Plan",
    "PlanNode",
    "Shard",
    "ShardQueue",
    "ShardState",
    "Strategy",
    "apportion",
    "default_shard_size",
    "get_kind",
    "known_kinds",
    "make_plan",
    "reduce_partials",
]
