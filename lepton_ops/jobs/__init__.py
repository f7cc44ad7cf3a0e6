"""Jobs: the shard planner, work stealing and the job kinds (map, reduce, finalize).

This package is the single source of truth for how a job is split and merged; the
CLI, the Ansible module and the aggregator service all use it.

The names below are imported on first use: planning a job (``lepton-ops job plan``)
needs neither numpy (the kinds) nor httpx (the client).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "JobKind": "lepton_ops.jobs.kinds",
    "Param": "lepton_ops.jobs.kinds",
    "get_kind": "lepton_ops.jobs.kinds",
    "known_kinds": "lepton_ops.jobs.kinds",
    "reduce_partials": "lepton_ops.jobs.kinds",
    "Plan": "lepton_ops.jobs.planner",
    "PlanNode": "lepton_ops.jobs.planner",
    "Shard": "lepton_ops.jobs.planner",
    "Strategy": "lepton_ops.jobs.planner",
    "apportion": "lepton_ops.jobs.planner",
    "default_shard_size": "lepton_ops.jobs.planner",
    "make_plan": "lepton_ops.jobs.planner",
    "ShardQueue": "lepton_ops.jobs.shard_queue",
    "ShardState": "lepton_ops.jobs.shard_queue",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lepton_ops.jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
