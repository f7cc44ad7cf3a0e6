"""The planner: largest-remainder apportionment, shards, load shares and makespan."""

from __future__ import annotations

import itertools
import json
import random
from fractions import Fraction

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.jobs.planner import (
    MAX_DEFAULT_SHARD_SIZE,
    MAX_DEFAULT_SHARDS,
    MAX_SHARDS,
    Plan,
    Strategy,
    apportion,
    default_shard_size,
    make_plan,
)

LAB = [("node1", 100), ("node2", 200), ("node3", 300), ("node4", 400), ("node5", 500)]


def random_nodes(rng: random.Random) -> list[tuple[str, int]]:
    """1 to 12 nodes, some drained (weight 0), at least one with a weight above 0."""
    weights = [0, 1, 2, 3, 7, 100, 250, 999, 10**6]
    nodes = [
        (f"n{index}", rng.choice([*weights, rng.randint(1, 1000)]))
        for index in range(rng.randint(1, 12))
    ]
    if all(weight == 0 for _, weight in nodes):
        nodes[0] = (nodes[0][0], rng.randint(1, 50))
    return nodes


def test_reference_example() -> None:
    # Quotas 66.67, 133.33, 200, 266.67, 333.33: the floors sum to 998 and the two
    # leftover tasks go to the largest remainders (2/3 each: node1 and node4).
    assert apportion(1000, LAB) == {
        "node1": 67,
        "node2": 133,
        "node3": 200,
        "node4": 267,
        "node5": 333,
    }
    plan = make_plan(LAB, 1000)
    assert [node.tasks for node in plan.nodes] == [67, 133, 200, 267, 333]
    assert [node.share for node in plan.nodes] == [Fraction(k, 15) for k in range(1, 6)]
    assert plan.node("node4").quota == Fraction(800, 3)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_shares_add_up_and_stay_within_one_of_the_quota(strategy: Strategy) -> None:
    rng = random.Random(20240601)
    for _ in range(500):
        nodes = random_nodes(rng)
        total = rng.choice([0, 1, 2, 5, rng.randint(0, 100), rng.randint(0, 10**6)])
        counts = apportion(total, nodes, strategy)
        assert list(counts) == [name for name, _ in nodes]
        assert sum(counts.values()) == total
        active = [weight for _, weight in nodes if weight > 0]
        for name, weight in nodes:
            if weight == 0:
                assert counts[name] == 0
                continue
            if strategy is Strategy.WEIGHTED:
                quota = Fraction(total * weight, sum(active))
            else:
                quota = Fraction(total, len(active))
            assert abs(counts[name] - quota) < 1


def test_the_sum_and_bounds_hold_as_n_grows() -> None:
    rng = random.Random(7)
    nodes = random_nodes(rng)
    positive = sum(weight for _, weight in nodes)
    for total in range(0, 400):
        counts = apportion(total, nodes)
        assert sum(counts.values()) == total
        for name, weight in nodes:
            low = total * weight // positive
            assert low <= counts[name] <= low + 1


def test_weight_zero_is_drained() -> None:
    counts = apportion(10, [("a", 0), ("b", 1), ("c", 0), ("d", 3)])
    # Quotas 2.5 and 7.5: equal remainders, the leftover task goes to the larger weight.
    assert counts == {"a": 0, "b": 2, "c": 0, "d": 8}
    equal = apportion(10, [("a", 0), ("b", 1), ("c", 0), ("d", 3)], "equal")
    assert equal == {"a": 0, "b": 5, "c": 0, "d": 5}
    plan = make_plan([("a", 0), ("b", 5)], 9)
    assert plan.node("a").shards == () and plan.node("a").predicted_s == 0.0


def test_equal_strategy_is_the_naive_split() -> None:
    assert apportion(1000, LAB, "equal") == {name: 200 for name, _ in LAB}
    # 7 over 5: two leftovers, ties broken by the larger weight.
    assert apportion(7, LAB, Strategy.EQUAL) == {
        "node1": 1,
        "node2": 1,
        "node3": 1,
        "node4": 2,
        "node5": 2,
    }


def test_ties_are_broken_by_weight_then_natural_name() -> None:
    assert apportion(1, [("b", 1), ("a", 1)]) == {"b": 0, "a": 1}
    assert apportion(1, [("node10", 1), ("node2", 1)]) == {"node10": 0, "node2": 1}
    assert apportion(1, [("a", 1), ("b", 1), ("c", 2)], "equal") == {"a": 0, "b": 0, "c": 1}
    # The order the nodes come in does not change who gets what.
    rng = random.Random(3)
    for _ in range(100):
        nodes = random_nodes(rng)
        total = rng.randint(0, 5000)
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        assert apportion(total, nodes) == apportion(total, shuffled)


def test_huge_numbers_are_exact() -> None:
    total = 10**30 + 7
    nodes = [("a", 10**20 + 1), ("b", 3), ("c", 10**20)]
    counts = apportion(total, nodes)
    assert sum(counts.values()) == total
    weight_sum = sum(weight for _, weight in nodes)
    for name, weight in nodes:
        assert abs(Fraction(total * weight, weight_sum) - counts[name]) < 1
    plan = make_plan(nodes, total, shard_size=10**27)
    assert sum(node.tasks for node in plan.nodes) == total
    assert plan.shards[-1].stop == total


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: apportion(-1, LAB), "task count must be 0 or more, got -1"),
        (lambda: apportion(5, [("a", 1), ("b", -2)]), "node b: the weight must be 0"),
        (lambda: apportion(5, [("a", 0), ("b", 0)]), "every node has weight 0"),
        (lambda: apportion(5, []), "no node to give the 5 tasks to"),
        (lambda: apportion(5, LAB, "fair"), "unknown strategy 'fair'"),
        (lambda: apportion(5, [("a", 1), ("a", 2)]), "node a is listed twice"),
        (lambda: apportion(5, [("a", 1.5)]), "whole number"),  # type: ignore[list-item]
        (lambda: apportion(True, LAB), "whole number"),
        (lambda: make_plan(LAB, 10, shard_size=0), "shard size must be 1 or more"),
        (lambda: make_plan(LAB, 10, task_s=-1.0), "0 or more seconds"),
        (lambda: make_plan(LAB, 10, speeds={"node1": 0}), "node1: the speed must be greater"),
        (lambda: make_plan(LAB, 10, speeds={"ghost": 1.0}), "unknown node ghost"),
        (lambda: make_plan(LAB, 10**9, shard_size=1), f"at most {MAX_SHARDS}"),
    ],
)
def test_bad_input_is_one_clear_line(call: object, needle: str) -> None:
    with pytest.raises(BadInput) as caught:
        call()  # type: ignore[operator]
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message


def test_no_tasks_and_all_drained_is_fine() -> None:
    assert apportion(0, [("a", 0)]) == {"a": 0}
    plan = make_plan([("a", 0), ("b", 0)], 0)
    assert plan.shards == () and plan.makespan_s == 0.0 and plan.ideal_makespan_s == 0.0


def test_shards_partition_the_tasks() -> None:
    rng = random.Random(11)
    for _ in range(300):
        nodes = random_nodes(rng)
        total = rng.choice([0, 1, rng.randint(0, 300), rng.randint(0, 200_000)])
        shard_size = rng.choice([None, 1, 7, 64, 1000]) if total < 50_000 else None
        plan = make_plan(nodes, total, shard_size=shard_size)
        cursor = 0
        for shard in plan.shards:
            assert shard.start == cursor and shard.stop > shard.start
            assert shard.size <= plan.node(shard.node).shard_size
            if shard_size is not None:
                assert shard.size <= shard_size
            cursor = shard.stop
        assert cursor == total
        ids = [shard.id for shard in plan.shards]
        assert len(set(ids)) == len(ids) and ids == sorted(ids)
        for node in plan.nodes:
            own = plan.shards_of(node.name)
            assert sum(shard.size for shard in own) == node.tasks
            assert all(shard.node == node.name for shard in own)
            # A node's shards are contiguous: one range per node.
            for left, right in itertools.pairwise(own):
                assert left.stop == right.start


def test_shard_ids_are_stable_and_sortable() -> None:
    first = make_plan(LAB, 1000)
    assert first == make_plan(LAB, 1000)
    assert first.shards[0].id == "s0000"
    assert [s.id for s in first.shards] == [f"s{i:04d}" for i in range(len(first.shards))]
    wide = make_plan([("a", 1)], 20_000, shard_size=1)
    assert wide.shards[0].id == "s00000" and wide.shards[-1].id == "s19999"


def test_default_shard_size() -> None:
    assert default_shard_size(0, 1000, 5) == 1
    assert default_shard_size(333, 1000, 5) == 84  # about 4 shards per node
    assert default_shard_size(67, 1000, 5) == 17
    assert default_shard_size(3, 3, 5) == 1
    assert default_shard_size(10**6, 10**6, 5) == MAX_DEFAULT_SHARD_SIZE
    huge = default_shard_size(10**9 // 3, 10**9, 5)
    plan = make_plan(LAB, 10**9)
    assert plan.max_shard_size == huge > MAX_DEFAULT_SHARD_SIZE
    assert plan.shard_size is None
    assert len(plan.shards) <= MAX_DEFAULT_SHARDS


def test_default_shards_take_about_as_long_on_every_node() -> None:
    plan = make_plan(LAB, 1000, task_s=0.02)
    # 67 / 133 / 200 / 267 / 333 tasks: four shards each, the last one shorter.
    assert [len(node.shards) for node in plan.nodes] == [4, 4, 4, 4, 4]
    assert [node.shard_size for node in plan.nodes] == [17, 34, 50, 67, 84]
    seconds = [node.shard_size * plan.task_s / node.speed for node in plan.nodes]
    assert max(seconds) / min(seconds) < 1.03
    # An explicit size applies to every node.
    fixed = make_plan(LAB, 1000, shard_size=50)
    assert fixed.shard_size == fixed.max_shard_size == 50
    assert [len(node.shards) for node in fixed.nodes] == [2, 3, 4, 6, 7]


def test_load_share_and_makespan() -> None:
    plan = make_plan(LAB, 1000, task_s=0.02)
    assert [node.load_share for node in plan.nodes] == pytest.approx(
        [1 / 15 * k for k in range(1, 6)]
    )
    assert [node.speed for node in plan.nodes] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert plan.node("node1").predicted_s == pytest.approx(67 * 0.02)
    assert plan.makespan_s == pytest.approx(67 * 0.02)
    assert plan.ideal_makespan_s == pytest.approx(1000 * 0.02 / 15)
    naive = make_plan(LAB, 1000, task_s=0.02, strategy="equal")
    assert naive.makespan_s == pytest.approx(200 * 0.02)  # node1 at speed 1 is last
    assert naive.makespan_s > 2.9 * plan.makespan_s
    measured = make_plan(LAB, 1000, task_s=0.02, speeds={"node1": 2.0})
    assert measured.node("node1").predicted_s == pytest.approx(67 * 0.02 / 2)
    assert measured.ideal_makespan_s == pytest.approx(1000 * 0.02 / 16)


def test_plan_round_trips_through_json() -> None:
    for plan in (
        make_plan(LAB, 1000, task_s=0.02),
        make_plan([*LAB, ("drained", 0)], 77, strategy="equal", shard_size=3),
        make_plan(LAB, 500, speeds={"node3": 1.25}),
    ):
        data = json.loads(json.dumps(plan.to_dict()))
        assert Plan.from_dict(data) == plan
    tampered = make_plan(LAB, 1000).to_dict()
    tampered["shards"][0]["stop"] += 1
    with pytest.raises(BadInput, match="do not match"):
        Plan.from_dict(tampered)
    with pytest.raises(BadInput, match="not a job plan"):
        Plan.from_dict({"tasks": 3})
