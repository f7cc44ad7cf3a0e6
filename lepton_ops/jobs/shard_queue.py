"""The live assignment of a plan's shards while a job runs: what each node runs next.

Own shards first, then work stolen from the node that would finish last (lost nodes
first), speculative copies for stragglers near the end, and each shard's result
accepted exactly once. Pure Python, no I/O; thread-safe, so a threaded server can share it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.jobs.planner import Plan, Shard, Strategy

DEFAULT_MAX_COPIES = 2
"""At most this many nodes run one shard at once (the first runner and one speculative copy)."""


class ShardState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


@dataclass
class _Slot:
    shard: Shard
    state: ShardState = ShardState.PENDING
    #: The nodes running the shard now: the first, then speculative copies.
    runners: list[str] = field(default_factory=list)
    done_by: str | None = None


class ShardQueue:
    """The live assignment of a plan's shards: what each node runs next.

    - :meth:`next_shard_for` hands a node its own pending shards first (in task order).
      When it has none left it takes a not-yet-started shard from another node: from a
      lost node first (the one with the most pending tasks), otherwise - only when
      stealing is on - from the live node with the most remaining estimated time
      (``(pending + running tasks) / speed``), taking that node's last pending shard, and
      only if the thief would finish it before the victim would finish its own backlog
      (``shard / speed_thief < remaining_victim / speed_victim``), so a steal never makes
      the makespan worse.
    - Stealing is on for the ``weighted`` strategy and off for ``equal`` (the naive
      baseline): with ``equal`` a node only ever runs its own shards, except shards of a
      lost node, which are always handed to whoever is idle - recovering from a failure is
      not load balancing.
    - A shard is never handed out twice, unless a node asks with ``speculative=True`` and
      has nothing else to do: it then gets a copy of a started-but-not-done shard (the
      one whose fastest runner is slowest), at most ``max_copies`` runners per shard.
      Speculative copies follow the stealing switch.
    - :meth:`complete` accepts each shard id once: it returns False for a duplicate.
    - Speeds start as the plan's and are replaced by measurements (:meth:`observe`,
      tasks per second); nodes not measured yet are scaled by the measured nodes' mean
      ratio of measured to planned speed, so all speeds stay in one unit.

    A node with weight 0 is never handed a shard. A node that ``drained`` (a callable)
    names is handed none while it is drained - a node predicted to fail, or under
    remediation - and its not-yet-started shards are the first the others take, as a
    lost node's are; a shard it already runs is left to finish. Every method is atomic
    (an internal lock), so a threaded server can share one queue.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        stealing: bool | None = None,
        max_copies: int = DEFAULT_MAX_COPIES,
        drained: Callable[[str], bool] | None = None,
    ) -> None:
        if isinstance(max_copies, bool) or not isinstance(max_copies, int) or max_copies < 1:
            raise BadInput(f"max_copies must be 1 or more, got {max_copies!r}")
        self.plan = plan
        self.stealing = plan.strategy is Strategy.WEIGHTED if stealing is None else stealing
        self.max_copies = max_copies
        self._drained = drained or (lambda node: False)
        self._lock = threading.RLock()
        self._order = {node.name: index for index, node in enumerate(plan.nodes)}
        self._planned_speed = {node.name: node.speed for node in plan.nodes}
        self._weight = {node.name: node.weight for node in plan.nodes}
        self._alive = {node.name: True for node in plan.nodes}
        self._observed: dict[str, tuple[int, float]] = {}
        self._slots = {shard.id: _Slot(shard) for shard in plan.shards}
        self._queues: dict[str, deque[str]] = {node.name: deque(node.shards) for node in plan.nodes}

    # ------------------------------------------------------------------ handing out

    def next_shard_for(self, node: str, *, speculative: bool = False) -> Shard | None:
        """The shard ``node`` should run next (now marked as started by it), or None."""
        with self._lock:
            self._check_node(node)
            if not self._alive[node] or self._weight[node] == 0 or self._drained(node):
                return None
            slot = self._take_own(node) or self._steal_for(node)
            if slot is None and speculative and self.stealing:
                slot = self._speculative_for(node)
            if slot is None:
                return None
            slot.state = ShardState.RUNNING
            slot.runners.append(node)
            return slot.shard

    def _take_own(self, node: str) -> _Slot | None:
        queue = self._queues[node]
        return self._slots[queue.popleft()] if queue else None

    def _steal_for(self, thief: str) -> _Slot | None:
        lost = [
            name
            for name, queue in self._queues.items()
            if queue and name != thief and (not self._alive[name] or self._drained(name))
        ]
        if lost:
            victim = min(lost, key=lambda name: (-self._pending_tasks(name), self._order[name]))
            return self._slots[self._queues[victim].pop()]
        if not self.stealing:
            return None
        thief_speed = self._speed(thief)
        victims = sorted(
            (name for name, queue in self._queues.items() if queue and name != thief),
            key=lambda name: (-self._remaining_s(name), self._order[name]),
        )
        for victim in victims:
            candidate = self._slots[self._queues[victim][-1]]
            if thief_speed > 0 and candidate.shard.size / thief_speed < self._remaining_s(victim):
                return self._slots[self._queues[victim].pop()]
        return None

    def _speculative_for(self, node: str) -> _Slot | None:
        candidates = [
            slot
            for slot in self._slots.values()
            if slot.state is ShardState.RUNNING
            and node not in slot.runners
            and len(slot.runners) < self.max_copies
        ]
        if not candidates:
            return None

        def finish_s(slot: _Slot) -> float:
            fastest = max(self._speed(runner) for runner in slot.runners)
            return slot.shard.size / fastest if fastest > 0 else math.inf

        return min(candidates, key=lambda slot: (-finish_s(slot), slot.shard.id))

    # ------------------------------------------------------------------ results and failures

    def complete(self, shard_id: str, node: str | None = None) -> bool:
        """Record ``shard_id``'s result: True the first time, False for a duplicate."""
        with self._lock:
            slot = self._slot(shard_id)
            if node is not None:
                self._check_node(node)
            if slot.state is ShardState.DONE:
                return False
            if slot.state is ShardState.PENDING:
                self._queue_holding(shard_id).remove(shard_id)
            slot.state = ShardState.DONE
            slot.runners.clear()
            slot.done_by = node
            return True

    def release(self, shard_id: str, node: str) -> None:
        """``node`` no longer runs ``shard_id`` (it could not be sent, the node refused it).

        Without another runner the shard is pending again, first in its planned node's
        queue.
        """
        with self._lock:
            slot = self._slot(shard_id)
            self._check_node(node)
            if node in slot.runners:
                slot.runners.remove(node)
                self._requeue_if_orphaned(slot)

    def mark_lost(self, node: str) -> tuple[Shard, ...]:
        """``node`` stopped answering: it gets no more shards and loses its own.

        The shards it was running alone are pending again, in their planned node's queue;
        the shards in a lost node's queue are the first any idle node takes (even with
        stealing off). Returns the shards now waiting in its queue for another node.
        """
        with self._lock:
            self._check_node(node)
            self._alive[node] = False
            for slot in self._slots.values():
                if slot.state is ShardState.RUNNING and node in slot.runners:
                    slot.runners.remove(node)
                    self._requeue_if_orphaned(slot)
            return tuple(self._slots[shard_id].shard for shard_id in self._queues[node])

    def mark_alive(self, node: str) -> None:
        """``node`` answers again: it runs what is still in its queue, and may steal."""
        with self._lock:
            self._check_node(node)
            self._alive[node] = True

    def observe(self, node: str, tasks: int, seconds: float) -> None:
        """``node`` ran ``tasks`` tasks in ``seconds``: its measured speed is updated."""
        with self._lock:
            self._check_node(node)
            if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 0:
                raise BadInput(f"a task count must be 0 or more, got {tasks!r}")
            if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
                raise BadInput(f"a duration must be more than 0 seconds, got {seconds!r}")
            done, spent = self._observed.get(node, (0, 0.0))
            self._observed[node] = (done + tasks, spent + float(seconds))

    # ------------------------------------------------------------------ reading

    @property
    def finished(self) -> bool:
        with self._lock:
            return all(slot.state is ShardState.DONE for slot in self._slots.values())

    def state(self, shard_id: str) -> ShardState:
        with self._lock:
            return self._slot(shard_id).state

    def runners(self, shard_id: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._slot(shard_id).runners)

    def pending(self, node: str) -> tuple[Shard, ...]:
        """The shards waiting in ``node``'s queue, in the order it would run them."""
        with self._lock:
            self._check_node(node)
            return tuple(self._slots[shard_id].shard for shard_id in self._queues[node])

    def is_drained(self, node: str) -> bool:
        with self._lock:
            self._check_node(node)
            return self._drained(node)

    def is_alive(self, node: str) -> bool:
        with self._lock:
            self._check_node(node)
            return self._alive[node]

    def speed(self, node: str) -> float:
        """``node``'s current speed estimate (see the class docstring for the unit)."""
        with self._lock:
            self._check_node(node)
            return self._speed(node)

    def remaining_tasks(self) -> int:
        with self._lock:
            return sum(
                slot.shard.size
                for slot in self._slots.values()
                if slot.state is not ShardState.DONE
            )

    def counts(self) -> dict[str, int]:
        """How many shards are pending, running and done."""
        with self._lock:
            result = {state.value: 0 for state in ShardState}
            for slot in self._slots.values():
                result[slot.state.value] += 1
            return result

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "plan": self.plan.to_dict(),
                "stealing": self.stealing,
                "max_copies": self.max_copies,
                "alive": dict(self._alive),
                "observed": {
                    name: {"tasks": tasks, "seconds": seconds}
                    for name, (tasks, seconds) in self._observed.items()
                },
                "queues": {name: list(queue) for name, queue in self._queues.items()},
                "shards": {
                    shard_id: {
                        "state": slot.state.value,
                        "runners": list(slot.runners),
                        "done_by": slot.done_by,
                    }
                    for shard_id, slot in self._slots.items()
                },
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardQueue:
        """The queue ``to_dict`` wrote, checked for consistency."""
        plan = Plan.from_dict(data.get("plan") or {})
        try:
            queue = cls(plan, stealing=bool(data["stealing"]), max_copies=data["max_copies"])
            names = set(queue._alive)
            alive = dict(data["alive"])
            if set(alive) != names:
                raise ValueError("the alive flags do not name the plan's nodes")
            queue._alive = {name: bool(alive[name]) for name in queue._alive}
            for name, seen in dict(data["observed"]).items():
                queue.observe(str(name), int(seen["tasks"]), float(seen["seconds"]))
            queues = {str(name): [str(i) for i in ids] for name, ids in data["queues"].items()}
            if set(queues) != names:
                raise ValueError("the queues do not name the plan's nodes")
            shards = dict(data["shards"])
            if set(shards) != set(queue._slots):
                raise ValueError("the shard states do not name the plan's shards")
            for shard_id, stored in shards.items():
                slot = queue._slots[shard_id]
                slot.state = ShardState(stored["state"])
                slot.runners = [str(name) for name in stored["runners"]]
                slot.done_by = None if stored["done_by"] is None else str(stored["done_by"])
                if not set(slot.runners) <= names:
                    raise ValueError(f"shard {shard_id} names an unknown runner")
            queue._queues = {name: deque(queues[name]) for name in queue._queues}
            queued = [shard_id for ids in queues.values() for shard_id in ids]
            pending = sorted(i for i, s in queue._slots.items() if s.state is ShardState.PENDING)
            if sorted(queued) != pending:
                raise ValueError("the queues do not hold exactly the pending shards")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(f"not a shard queue: {exc}") from None
        return queue

    # ------------------------------------------------------------------ internals

    def _check_node(self, node: str) -> None:
        if node not in self._alive:
            known = ", ".join(self._alive) or "none"
            raise BadInput(f"no node named {node!r} in this job (nodes: {known})")

    def _slot(self, shard_id: str) -> _Slot:
        try:
            return self._slots[shard_id]
        except (KeyError, TypeError):
            raise BadInput(f"no shard {shard_id!r} in this job") from None

    def _queue_holding(self, shard_id: str) -> deque[str]:
        for queue in self._queues.values():
            if shard_id in queue:
                return queue
        raise AssertionError(f"pending shard {shard_id} is in no queue")

    def _requeue_if_orphaned(self, slot: _Slot) -> None:
        if slot.state is ShardState.RUNNING and not slot.runners:
            slot.state = ShardState.PENDING
            self._queues[slot.shard.node].appendleft(slot.shard.id)

    def _pending_tasks(self, node: str) -> int:
        return sum(self._slots[shard_id].shard.size for shard_id in self._queues[node])

    def _running_tasks(self, node: str) -> int:
        return sum(
            slot.shard.size
            for slot in self._slots.values()
            if slot.state is ShardState.RUNNING and node in slot.runners
        )

    def _remaining_s(self, node: str) -> float:
        tasks = self._pending_tasks(node) + self._running_tasks(node)
        speed = self._speed(node)
        if tasks == 0:
            return 0.0
        return tasks / speed if speed > 0 else math.inf

    def _speed(self, node: str) -> float:
        measured = self._measured(node)
        if measured is not None:
            return measured
        planned = self._planned_speed[node]
        ratios = [
            speed / self._planned_speed[name]
            for name in self._observed
            if (speed := self._measured(name)) is not None and self._planned_speed[name] > 0
        ]
        return planned * (sum(ratios) / len(ratios)) if ratios else planned

    def _measured(self, node: str) -> float | None:
        tasks, seconds = self._observed.get(node, (0, 0.0))
        if tasks == 0 or seconds <= 0:
            return None
        return tasks / seconds
