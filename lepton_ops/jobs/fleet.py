"""Plans for the fleet an inventory describes: its workers, weights and speeds."""

from __future__ import annotations

import math
from pathlib import Path

from lepton_ops.errors import BadInput
from lepton_ops.inventory import Fleet, load_fleet
from lepton_ops.jobs.planner import Plan, Strategy, make_plan

#: A worker's relative speed (tasks per unit time against a speed-1 node). Unset, the
#: planner takes the node's weight over the smallest weight.
SPEED_VAR = "lepton_speed"


def fleet_speeds(fleet: Fleet) -> dict[str, float]:
    """The ``lepton_speed`` of every worker that sets one."""
    speeds: dict[str, float] = {}
    for node in fleet.workers:
        raw = node.vars.get(SPEED_VAR)
        if raw is None:
            continue
        speeds[node.name] = _speed(node.name, raw)
    return speeds


def plan_for_fleet(
    fleet: Fleet,
    tasks: int,
    *,
    strategy: str | Strategy = Strategy.WEIGHTED,
    task_s: float = 1.0,
    shard_size: int | None = None,
) -> Plan:
    """The plan for ``tasks`` tasks over ``fleet``'s workers (in the fleet's name order)."""
    workers = fleet.workers
    if not workers:
        where = f" matched by --limit {fleet.limit}" if fleet.limit else ""
        raise BadInput(
            f"inventory {fleet.source} has no host in the 'workers' group{where}: "
            f"jobs run on workers"
        )
    return make_plan(
        [(node.name, node.weight) for node in workers],
        tasks,
        strategy=strategy,
        shard_size=shard_size,
        task_s=task_s,
        speeds=fleet_speeds(fleet),
    )


def plan_inventory(
    source: Path,
    tasks: int,
    *,
    limit: str | None = None,
    strategy: str | Strategy = Strategy.WEIGHTED,
    task_s: float = 1.0,
    shard_size: int | None = None,
) -> Plan:
    """Read the inventory at ``source`` (``limit``: an Ansible pattern) and plan for it."""
    return plan_for_fleet(
        load_fleet(source, limit),
        tasks,
        strategy=strategy,
        task_s=task_s,
        shard_size=shard_size,
    )


def _speed(host: str, raw: object) -> float:
    problem = f"host {host}: {SPEED_VAR} must be a number greater than 0, got {raw!r}"
    if isinstance(raw, bool):
        raise BadInput(problem)
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise BadInput(problem) from None
    if not math.isfinite(value) or value <= 0:
        raise BadInput(problem)
    return value
