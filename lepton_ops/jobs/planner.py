"""The shard planner: split N tasks over weighted nodes, and hand shards out while they run.

Pure Python, no I/O. Two layers:

- :func:`apportion` - how many tasks each node gets. Largest remainder (Hamilton):
  node i's quota is ``q_i = N * W_i / sum(W)``; every node gets ``floor(q_i)``, and the
  tasks left over go one by one to the largest fractional remainders (ties: larger weight
  first, then name in natural order, node2 before node10). The counts add up to N
  exactly and each is within 1 of its quota. Everything is integer arithmetic
  (remainders are ``N * W_i mod sum(W)``), so huge N and weights stay exact.
  The ``equal`` strategy is the naive ``N / N_c`` split, kept for comparison: every node
  with a weight above 0 counts as weight 1.
  A node with weight 0 is drained: it gets nothing, whatever the strategy.
- :func:`make_plan` - a :class:`Plan`: each node's count cut into contiguous shards
  ``[start, stop)`` of at most ``shard_size`` tasks, with stable ids (``s0000``...). The
  shards partition ``[0, N)``; node after node, in the order the nodes were given.
  Without an explicit shard size each node's count is cut into about
  :data:`SHARDS_PER_NODE` shards, so a shard takes about as long on every node (a fast
  node does not pay the per-shard round trip more often than a slow one).
  Also each node's load share ``L_i = W_i / sum(W)`` and the predicted makespan.
The live assignment of a running plan (work stealing, lost nodes, speculative copies,
each result accepted once) is :class:`lepton_ops.jobs.shard_queue.ShardQueue`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any

from lepton_ops.errors import BadInput

#: With the default shard size each active node gets about this many shards, so that an
#: idle node has something left to steal.
SHARDS_PER_NODE = 4
#: The default shard size never exceeds this many tasks (a lost shard costs little)...
MAX_DEFAULT_SHARD_SIZE = 1000
#: ...unless the plan would then hold more than this many shards: for very large N the
#: default size grows so that the plan stays this small.
MAX_DEFAULT_SHARDS = 10_000
#: No plan holds more shards than this (an explicit shard size that small is refused).
MAX_SHARDS = 100_000


class Strategy(StrEnum):
    """How tasks are apportioned: by weight, or the naive equal split."""

    WEIGHTED = "weighted"
    EQUAL = "equal"


def parse_strategy(value: str | Strategy) -> Strategy:
    """``value`` as a :class:`Strategy`; BadInput naming the choices otherwise."""
    if isinstance(value, Strategy):
        return value
    try:
        return Strategy(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(item.value for item in Strategy)
        raise BadInput(f"unknown strategy {value!r}: choose one of {choices}") from None


# --------------------------------------------------------------------------- apportionment


def apportion(
    total: int,
    nodes: Sequence[tuple[str, int]],
    strategy: str | Strategy = Strategy.WEIGHTED,
) -> dict[str, int]:
    """How many of ``total`` tasks each ``(name, weight)`` node gets (largest remainder).

    The result keeps the nodes' order and its values add up to ``total`` exactly.
    """
    strategy = parse_strategy(strategy)
    names, weights = _check_nodes(nodes)
    _check_total(total, weights)
    counts = _hamilton(total, names, _effective_weights(weights, strategy), weights)
    return dict(zip(names, counts, strict=True))


def _hamilton(
    total: int, names: Sequence[str], weights: Sequence[int], tiebreak: Sequence[int]
) -> list[int]:
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [0] * len(weights)
    counts: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        whole, remainder = divmod(total * weight, weight_sum)
        counts.append(whole)
        remainders.append(remainder)
    left = total - sum(counts)
    # left < the number of nodes with a remainder above 0, so only those get one more.
    order = sorted(
        range(len(weights)),
        key=lambda i: (-remainders[i], -tiebreak[i], _natural_key(names[i]), names[i]),
    )
    for index in order[:left]:
        counts[index] += 1
    return counts


def _effective_weights(weights: Sequence[int], strategy: Strategy) -> list[int]:
    if strategy is Strategy.EQUAL:
        return [1 if weight > 0 else 0 for weight in weights]
    return list(weights)


def _check_nodes(nodes: Sequence[tuple[str, int]]) -> tuple[list[str], list[int]]:
    names: list[str] = []
    weights: list[int] = []
    seen: set[str] = set()
    for entry in nodes:
        try:
            name, weight = entry
        except (TypeError, ValueError):
            raise BadInput(f"a node must be a (name, weight) pair, got {entry!r}") from None
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"a node name must be a non-empty string, got {name!r}")
        if name in seen:
            raise BadInput(f"node {name} is listed twice: node names must be unique")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise BadInput(f"node {name}: the weight must be a whole number, got {weight!r}")
        if weight < 0:
            raise BadInput(f"node {name}: the weight must be 0 (drained) or more, got {weight}")
        seen.add(name)
        names.append(name)
        weights.append(weight)
    return names, weights


def _check_total(total: int, weights: Sequence[int]) -> None:
    if isinstance(total, bool) or not isinstance(total, int):
        raise BadInput(f"the task count must be a whole number, got {total!r}")
    if total < 0:
        raise BadInput(f"the task count must be 0 or more, got {total}")
    if total > 0 and not any(weight > 0 for weight in weights):
        raise BadInput(
            f"no node can take the {total} tasks: every node has weight 0 (drained)"
            if weights
            else f"no node to give the {total} tasks to"
        )


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """node2 before node10."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)
    )


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Shard:
    """A contiguous range of task indices ``[start, stop)``, first given to ``node``."""

    id: str
    node: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "node": self.node, "start": self.start, "stop": self.stop}


@dataclass(frozen=True)
class PlanNode:
    """One node's part of a plan."""

    name: str
    weight: int
    #: Relative speed: tasks per unit time compared with a node of speed 1.
    speed: float
    #: The load share ``L_i = W_i / sum(W)``, exact (0 when every weight is 0).
    share: Fraction
    #: The strategy's exact quota of tasks (``tasks`` is within 1 of it).
    quota: Fraction
    tasks: int
    shards: tuple[str, ...]
    #: The most tasks one of this node's shards holds.
    shard_size: int
    #: ``tasks * task_s / speed``: seconds to run this node's tasks (0 without tasks).
    predicted_s: float

    @property
    def load_share(self) -> float:
        return float(self.share)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": self.weight,
            "speed": self.speed,
            "load_share": self.load_share,
            "load_share_exact": str(self.share),
            "quota": str(self.quota),
            "tasks": self.tasks,
            "shards": list(self.shards),
            "shard_size": self.shard_size,
            "predicted_s": self.predicted_s,
        }


@dataclass(frozen=True)
class Plan:
    """Which node runs which task ranges, and how long that should take."""

    strategy: Strategy
    tasks: int
    #: The shard size asked for; None: the default, about SHARDS_PER_NODE per node.
    shard_size: int | None
    #: Seconds one task takes on a node of speed 1.
    task_s: float
    nodes: tuple[PlanNode, ...]
    shards: tuple[Shard, ...]
    _by_id: dict[str, Shard] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {shard.id: shard for shard in self.shards})

    @property
    def total_weight(self) -> int:
        return sum(node.weight for node in self.nodes)

    @property
    def max_shard_size(self) -> int:
        """The most tasks any shard holds (0 for a plan without shards)."""
        return max((shard.size for shard in self.shards), default=0)

    @property
    def makespan_s(self) -> float:
        """Predicted seconds until the last node is done: ``max_i(tasks_i * t / speed_i)``."""
        return max((node.predicted_s for node in self.nodes), default=0.0)

    @property
    def ideal_makespan_s(self) -> float:
        """``N * t / sum(speeds)`` over the nodes that take work: a perfect split."""
        speed = sum(node.speed for node in self.nodes if node.weight > 0)
        if self.tasks == 0 or speed <= 0:
            return 0.0
        return self.tasks * self.task_s / speed

    def node(self, name: str) -> PlanNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise BadInput(f"the plan has no node named {name!r} (nodes: {self._node_names()})")

    def shard(self, shard_id: str) -> Shard:
        try:
            return self._by_id[shard_id]
        except KeyError:
            raise BadInput(f"the plan has no shard {shard_id!r}") from None

    def shards_of(self, name: str) -> tuple[Shard, ...]:
        return tuple(self._by_id[shard_id] for shard_id in self.node(name).shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.value,
            "tasks": self.tasks,
            "shard_size": self.shard_size,
            "task_s": self.task_s,
            "total_weight": self.total_weight,
            "makespan_s": self.makespan_s,
            "ideal_makespan_s": self.ideal_makespan_s,
            "nodes": [node.to_dict() for node in self.nodes],
            "shards": [shard.to_dict() for shard in self.shards],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """The plan ``to_dict`` wrote, as it was stored, checked for consistency.

        The stored plan wins: it is not planned again, so a job planned by an earlier
        planner resumes as it was cut even if this planner would cut it differently. The
        shards must partition ``[0, tasks)`` in order, with unique ids, each listed by
        the plan node it belongs to (BadInput otherwise).
        """
        try:
            shards = tuple(
                Shard(id=str(s["id"]), node=str(s["node"]), start=int(s["start"]),
                      stop=int(s["stop"]))
                for s in data["shards"]
            )  # fmt: skip
            nodes = tuple(
                PlanNode(
                    name=str(node["name"]),
                    weight=int(node["weight"]),
                    speed=float(node["speed"]),
                    share=Fraction(str(node["load_share_exact"])),
                    quota=Fraction(str(node["quota"])),
                    tasks=int(node["tasks"]),
                    shards=tuple(str(shard_id) for shard_id in node["shards"]),
                    shard_size=int(node["shard_size"]),
                    predicted_s=float(node["predicted_s"]),
                )
                for node in data["nodes"]
            )
            shard_size = data["shard_size"]
            plan = cls(
                strategy=parse_strategy(data["strategy"]),
                tasks=int(data["tasks"]),
                shard_size=None if shard_size is None else int(shard_size),
                task_s=float(data["task_s"]),
                nodes=nodes,
                shards=shards,
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
            raise BadInput(f"not a job plan: {exc.__class__.__name__}: {exc}") from None
        plan._check_consistent()
        return plan

    def _check_consistent(self) -> None:
        def wrong(why: str) -> BadInput:
            return BadInput(f"the stored plan's shards do not match its tasks: {why}")

        cursor = 0
        for shard in self.shards:
            if shard.start != cursor or shard.stop < shard.start:
                raise wrong(f"shard {shard.id} is [{shard.start}, {shard.stop}) after {cursor}")
            cursor = shard.stop
        if cursor != self.tasks:
            raise wrong(f"they cover [0, {cursor}) of {self.tasks} tasks")
        if len(self._by_id) != len(self.shards):
            raise wrong("two shards have the same id")
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise wrong("two nodes have the same name")
        for node in self.nodes:
            own = tuple(shard.id for shard in self.shards if shard.node == node.name)
            if node.shards != own or node.tasks != sum(self._by_id[i].size for i in own):
                raise wrong(f"node {node.name} does not list its own shards")
        if any(shard.node not in names for shard in self.shards):
            raise wrong("a shard belongs to no node of the plan")

    def _node_names(self) -> str:
        return ", ".join(node.name for node in self.nodes) or "none"


def default_shard_size(node_tasks: int, total: int, active_nodes: int) -> int:
    """The default shard size for a node given ``node_tasks`` of the plan's ``total``.

    About :data:`SHARDS_PER_NODE` shards for the node: ``ceil(node_tasks / 4)`` bounded
    to ``[1, 1000]``; for very large N it grows past 1000 so that the plan holds at most
    :data:`MAX_DEFAULT_SHARDS` shards.
    """
    if node_tasks <= 0 or total <= 0 or active_nodes <= 0:
        return 1
    size = _ceil_div(node_tasks, SHARDS_PER_NODE)
    size = min(max(size, 1), MAX_DEFAULT_SHARD_SIZE)
    # Each node's last shard may be short: budget one extra shard per node.
    budget = max(MAX_DEFAULT_SHARDS - active_nodes, 1)
    return max(size, _ceil_div(total, budget))


def make_plan(
    nodes: Sequence[tuple[str, int]],
    tasks: int,
    *,
    strategy: str | Strategy = Strategy.WEIGHTED,
    shard_size: int | None = None,
    task_s: float = 1.0,
    speeds: Mapping[str, float] | None = None,
    max_shard_size: int | None = None,
) -> Plan:
    """Apportion ``tasks`` over ``nodes`` (``(name, weight)`` pairs) and cut them into shards.

    ``max_shard_size`` (the job kind's limit) caps the default shard size; an explicit
    ``shard_size`` above it is BadInput.

    ``speeds`` (tasks per unit time, relative) defaults, per node, to its weight divided
    by the smallest weight above 0; a drained node (weight 0) defaults to speed 0.
    ``task_s`` is the time one task takes at speed 1 (with the default 1.0 the predicted
    times are in task units).
    """
    strategy = parse_strategy(strategy)
    names, weights = _check_nodes(nodes)
    _check_total(tasks, weights)
    task_s = _check_task_s(task_s)
    resolved_speeds = _resolve_speeds(names, weights, speeds)
    counts = _hamilton(tasks, names, _effective_weights(weights, strategy), weights)
    active = sum(1 for weight in weights if weight > 0)
    asked = _check_shard_size(shard_size) if shard_size is not None else None
    cap = _check_shard_size(max_shard_size) if max_shard_size is not None else None
    if asked is not None and cap is not None and asked > cap:
        raise BadInput(
            f"shard size {asked} is larger than this job's shards may be ({cap} tasks): "
            f"use a shard size of at most {cap}"
        )
    sizes = [asked or default_shard_size(count, tasks, active) for count in counts]
    if cap is not None:
        sizes = [min(size, cap) for size in sizes]
    shard_count = sum(_ceil_div(count, size) for count, size in zip(counts, sizes, strict=True))
    if shard_count > MAX_SHARDS:
        raise BadInput(
            f"shard size {asked or max(sizes)} cuts {tasks} tasks into {shard_count} shards; "
            f"a plan holds at most {MAX_SHARDS}: use a larger shard size"
            if asked is not None or cap is None
            else f"{tasks} tasks need {shard_count} shards of at most {cap} tasks (the job "
            f"kind's limit with these parameters); a plan holds at most {MAX_SHARDS}: "
            f"submit fewer tasks"
        )
    width = max(4, len(str(max(shard_count - 1, 0))))

    weight_sum = sum(weights)
    effective = _effective_weights(weights, strategy)
    effective_sum = sum(effective)
    plan_nodes: list[PlanNode] = []
    shards: list[Shard] = []
    cursor = 0
    for name, weight, eff, count, speed, size in zip(
        names, weights, effective, counts, resolved_speeds, sizes, strict=True
    ):
        own: list[str] = []
        stop_at = cursor + count
        while cursor < stop_at:
            shard = Shard(
                id=f"s{len(shards):0{width}d}",
                node=name,
                start=cursor,
                stop=min(cursor + size, stop_at),
            )
            shards.append(shard)
            own.append(shard.id)
            cursor = shard.stop
        plan_nodes.append(
            PlanNode(
                name=name,
                weight=weight,
                speed=speed,
                share=Fraction(weight, weight_sum) if weight_sum else Fraction(0),
                quota=Fraction(tasks * eff, effective_sum) if effective_sum else Fraction(0),
                tasks=count,
                shards=tuple(own),
                shard_size=min(size, count),
                predicted_s=count * task_s / speed if count else 0.0,
            )
        )
    return Plan(
        strategy=strategy,
        tasks=tasks,
        shard_size=asked,
        task_s=task_s,
        nodes=tuple(plan_nodes),
        shards=tuple(shards),
    )


def _check_task_s(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"the time per task must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise BadInput(f"the time per task must be 0 or more seconds, got {value}")
    return float(value)


def _check_shard_size(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"the shard size must be a whole number, got {value!r}")
    if value < 1:
        raise BadInput(f"the shard size must be 1 or more tasks, got {value}")
    return value


def _resolve_speeds(
    names: Sequence[str], weights: Sequence[int], speeds: Mapping[str, float] | None
) -> list[float]:
    given = dict(speeds or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise BadInput(f"speed given for unknown node {', '.join(unknown)}")
    smallest = min((weight for weight in weights if weight > 0), default=0)
    resolved: list[float] = []
    for name, weight in zip(names, weights, strict=True):
        if name in given:
            resolved.append(_check_speed(name, given[name]))
        elif weight > 0:
            resolved.append(weight / smallest)
        else:
            resolved.append(0.0)
    return resolved


def _check_speed(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"node {name}: the speed must be a number, got {value!r}")
    speed = float(value)
    if not math.isfinite(speed) or speed <= 0:
        raise BadInput(f"node {name}: the speed must be greater than 0, got {value}")
    return speed
