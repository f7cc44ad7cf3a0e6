"""ShardQueue: own shards first, stealing, lost nodes, speculative copies, results once."""

from __future__ import annotations

import json
import random

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.jobs.planner import Shard, make_plan
from lepton_ops.jobs.shard_queue import ShardQueue, ShardState

LAB = [("node1", 100), ("node2", 200), ("node3", 300), ("node4", 400), ("node5", 500)]


def drain_own(queue: ShardQueue, node: str) -> list[Shard]:
    """Let ``node`` run and finish all of its own shards."""
    done = []
    for _ in queue.plan.node(node).shards:
        shard = queue.next_shard_for(node)
        assert shard is not None and shard.node == node
        assert queue.complete(shard.id, node)
        done.append(shard)
    return done


def test_own_shards_first_in_task_order() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    first = queue.next_shard_for("node3")
    second = queue.next_shard_for("node3")
    assert first is not None and second is not None
    assert [first.id, second.id] == list(queue.plan.node("node3").shards[:2])
    assert queue.state(first.id) is ShardState.RUNNING
    assert queue.runners(first.id) == ("node3",)


def test_idle_node_steals_from_the_node_that_would_finish_last() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    drain_own(queue, "node5")
    # Remaining time: node1 67/1, node2 133/2 = 66.5, node3 200/3, node4 267/4.
    stolen = queue.next_shard_for("node5")
    assert stolen is not None and stolen.node == "node1"
    assert stolen.id == queue.plan.node("node1").shards[-1]  # from the tail
    assert queue.runners(stolen.id) == ("node5",)
    assert stolen.id not in {shard.id for shard in queue.pending("node1")}


def test_lost_nodes_are_stolen_from_first() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    running = queue.next_shard_for("node3")
    assert running is not None
    orphaned = queue.mark_lost("node3")
    assert {shard.id for shard in orphaned} == set(queue.plan.node("node3").shards)
    assert queue.state(running.id) is ShardState.PENDING
    assert queue.next_shard_for("node3") is None  # a lost node gets nothing
    drain_own(queue, "node5")
    taken = []
    while queue.pending("node3"):
        shard = queue.next_shard_for("node5")
        assert shard is not None and shard.node == "node3"  # node1 has more time left
        taken.append(shard.id)
        assert queue.complete(shard.id, "node5")
    assert sorted(taken) == sorted(queue.plan.node("node3").shards)
    after = queue.next_shard_for("node5")
    assert after is not None and after.node == "node1"


def test_a_revived_node_runs_what_is_left_in_its_queue() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    queue.mark_lost("node2")
    drain_own(queue, "node5")
    stolen = queue.next_shard_for("node5")
    assert stolen is not None and stolen.node == "node2"
    queue.mark_alive("node2")
    assert queue.is_alive("node2")
    mine = queue.next_shard_for("node2")
    assert mine is not None and mine.id == queue.plan.node("node2").shards[0]


def test_equal_strategy_does_not_steal_but_recovers_lost_nodes() -> None:
    queue = ShardQueue(make_plan(LAB, 1000, strategy="equal"))
    assert not queue.stealing
    drain_own(queue, "node5")
    assert queue.next_shard_for("node5") is None
    assert queue.next_shard_for("node5", speculative=True) is None
    queue.mark_lost("node1")
    recovered = queue.next_shard_for("node5")
    assert recovered is not None and recovered.node == "node1"


def test_no_steal_that_would_finish_later() -> None:
    plan = make_plan([("slow", 1), ("fast", 10)], 110, shard_size=10)
    queue = ShardQueue(plan)
    drain_own(queue, "slow")  # 10 tasks
    # fast still has 100 tasks (10 s at speed 10); a 10-task shard takes slow 10 s.
    assert queue.next_shard_for("slow") is None
    for _ in range(3):
        shard = queue.next_shard_for("fast")
        assert shard is not None
        queue.complete(shard.id)
    # Now fast has 70 tasks left: 7 s, but still not worth it for slow (10 s).
    assert queue.next_shard_for("slow") is None
    # Measured: fast turns out to be as slow as slow.
    queue.observe("fast", 30, 30.0)
    queue.observe("slow", 10, 10.0)
    stolen = queue.next_shard_for("slow")
    assert stolen is not None and stolen.node == "fast"


def test_measured_speeds_change_the_victim() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    queue.observe("node4", 10, 10.0)  # planned speed 4, measured 1 task/s: a quarter
    queue.observe("node3", 30, 10.0)  # planned speed 3, measured 3 tasks/s: as planned
    assert queue.speed("node4") == 1.0
    # Nodes not measured yet are scaled by the mean measured/planned ratio (5/8), so
    # every speed is in tasks per second.
    assert queue.speed("node2") == pytest.approx(2 * 0.625)
    # node4 now needs 267 s; node1 67 / 0.625 = 107 s.
    drain_own(queue, "node5")
    stolen = queue.next_shard_for("node5")
    assert stolen is not None and stolen.node == "node4"


def test_speculative_copies_for_stragglers_and_results_once() -> None:
    queue = ShardQueue(make_plan(LAB, 100, shard_size=50))
    # 100 tasks: node1 7, node2 13, node3 20, node4 27, node5 33 -> one shard each.
    handed = {name: queue.next_shard_for(name) for name, _ in LAB}
    assert all(shard is not None for shard in handed.values())
    assert queue.counts() == {"pending": 0, "running": 5, "done": 0}
    assert queue.next_shard_for("node5") is None  # nothing new, no copy unasked
    copy = queue.next_shard_for("node5", speculative=True)
    # The slowest runner's shard: node1 needs 7 tasks / speed 1 = 7, the longest.
    node1_shard = handed["node1"]
    assert copy is not None and node1_shard is not None and copy.id == node1_shard.id
    assert queue.runners(copy.id) == ("node1", "node5")
    # At most two runners: node4 gets another straggler, never a third copy of s0000.
    other = queue.next_shard_for("node4", speculative=True)
    assert other is not None and other.id != copy.id
    assert queue.complete(copy.id, "node5") is True
    assert queue.complete(copy.id, "node1") is False  # the late copy does not count twice
    assert queue.state(copy.id) is ShardState.DONE
    assert queue.runners(copy.id) == ()


def test_a_result_for_a_pending_shard_is_accepted_once() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    shard_id = queue.plan.node("node2").shards[1]
    assert queue.complete(shard_id, "node2") is True
    assert queue.complete(shard_id) is False
    handed = [queue.next_shard_for("node2") for _ in queue.plan.node("node2").shards]
    assert shard_id not in {shard.id for shard in handed if shard is not None}


def test_release_puts_the_shard_back_first_in_line() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    drain_own(queue, "node5")
    stolen = queue.next_shard_for("node5")
    assert stolen is not None
    queue.release(stolen.id, "node5")  # could not be sent
    assert queue.state(stolen.id) is ShardState.PENDING
    assert queue.pending(stolen.node)[0].id == stolen.id
    again = queue.next_shard_for(stolen.node)
    assert again is not None and again.id == stolen.id


def test_drained_nodes_get_nothing() -> None:
    queue = ShardQueue(make_plan([("a", 0), ("b", 1)], 10))
    assert queue.next_shard_for("a") is None
    assert queue.next_shard_for("a", speculative=True) is None
    assert queue.next_shard_for("b") is not None


def test_bad_names_are_bad_input() -> None:
    queue = ShardQueue(make_plan(LAB, 10))
    with pytest.raises(BadInput, match="no node named 'ghost'"):
        queue.next_shard_for("ghost")
    with pytest.raises(BadInput, match="no shard 'x9'"):
        queue.complete("x9")
    with pytest.raises(BadInput, match="more than 0 seconds"):
        queue.observe("node1", 3, 0.0)


def test_random_runs_never_hand_out_a_shard_twice_and_finish_every_shard_once() -> None:
    rng = random.Random(1234)
    for round_ in range(60):
        nodes = [(f"n{i}", rng.choice([0, 1, 2, 5, 10])) for i in range(rng.randint(1, 7))]
        if not any(weight for _, weight in nodes):
            nodes[0] = ("n0", 3)
        total = rng.randint(0, 400)
        strategy = "weighted" if round_ % 3 else "equal"
        plan = make_plan(nodes, total, shard_size=rng.choice([None, 1, 5, 17]), strategy=strategy)
        queue = ShardQueue(plan)
        names = [name for name, _ in nodes]
        holding: dict[str, Shard | None] = dict.fromkeys(names)
        released: set[str] = set()  # shards that legitimately go out again
        handed: list[str] = []
        completed: list[str] = []
        for _ in range(20_000):
            if queue.finished:
                break
            name = rng.choice(names)
            roll = rng.random()
            if roll < 0.03 and sum(queue.is_alive(n) for n in names) > 1:
                if queue.is_alive(name):
                    shard = holding[name]
                    if shard is not None and queue.runners(shard.id) == (name,):
                        released.add(shard.id)
                    queue.mark_lost(name)
                    holding[name] = None
                continue
            if roll < 0.06:
                queue.mark_alive(name)
                continue
            shard = holding[name]
            if shard is None:
                got = queue.next_shard_for(name, speculative=rng.random() < 0.1)
                if got is not None:
                    if name in queue.runners(got.id)[1:]:
                        holding[name] = got  # a speculative copy
                        continue
                    assert got.id not in handed or got.id in released, got.id
                    released.discard(got.id)
                    handed.append(got.id)
                    holding[name] = got
            else:
                if queue.complete(shard.id, name):
                    completed.append(shard.id)
                assert queue.complete(shard.id, name) is False
                holding[name] = None
            if not any(queue.is_alive(n) and w > 0 for n, w in nodes):
                queue.mark_alive(next(n for n, w in nodes if w > 0))
        assert queue.finished, (nodes, total, queue.counts())
        assert sorted(completed) == sorted(shard.id for shard in plan.shards)
        assert queue.remaining_tasks() == 0


def test_queue_round_trips_through_json_mid_run() -> None:
    queue = ShardQueue(make_plan(LAB, 1000))
    drain_own(queue, "node5")
    running = queue.next_shard_for("node4")
    queue.next_shard_for("node5")
    queue.mark_lost("node2")
    queue.observe("node4", 50, 12.5)
    assert running is not None
    data = json.loads(json.dumps(queue.to_dict()))
    restored = ShardQueue.from_dict(data)
    assert restored.to_dict() == queue.to_dict()
    for name, _ in LAB * 3:
        a, b = queue.next_shard_for(name), restored.next_shard_for(name)
        assert a == b
    data["queues"]["node1"].append(running.id)
    with pytest.raises(BadInput, match="not a shard queue"):
        ShardQueue.from_dict(data)
