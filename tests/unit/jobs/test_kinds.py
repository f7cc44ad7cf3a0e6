"""Job kinds: the entry-point registry, and exact, order-independent map/reduce."""

from __future__ import annotations

import itertools
import json
import random
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import numpy as np
import pytest

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.jobs import kinds as registry
from lepton_ops.jobs.kinds import ENTRY_POINT_GROUP, JobKind, get_kind, known_kinds
from lepton_ops.jobs.kinds.base import Partial, reduce_partials
from lepton_ops.jobs.kinds.mean import MeanKind
from lepton_ops.jobs.kinds.pi import PiKind
from lepton_ops.jobs.kinds.sleep import SleepKind
from lepton_ops.jobs.planner import make_plan

MEAN_PARAMS = {"tasks": 1000, "task_size": 1000, "seed": 7}


def cut(total: int, rng: random.Random, pieces: int) -> list[tuple[int, int]]:
    """``[0, total)`` cut at ``pieces - 1`` random points (empty ranges allowed)."""
    points = sorted(rng.randint(0, total) for _ in range(pieces - 1))
    bounds = [0, *points, total]
    return list(itertools.pairwise(bounds))


def merge_in_random_tree(kind: JobKind, partials: list[Partial], rng: random.Random) -> Partial:
    """Merge pairs picked at random until one is left: every grouping and order."""
    pool = [json.loads(json.dumps(p)) for p in partials]  # as they would travel
    rng.shuffle(pool)
    while len(pool) > 1:
        a = pool.pop(rng.randrange(len(pool)))
        b = pool.pop(rng.randrange(len(pool)))
        pool.append(json.loads(json.dumps(kind.reduce(a, b))))
    return pool[0] if pool else kind.empty()


# ------------------------------------------------------------------ registry


def test_the_entry_points_register_the_built_in_kinds() -> None:
    registered = {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert registered == {
        "mean": "lepton_ops.jobs.kinds.mean:MeanKind",
        "pi": "lepton_ops.jobs.kinds.pi:PiKind",
        "predict": "lepton_ops.jobs.kinds.predict:PredictKind",
        "sleep": "lepton_ops.jobs.kinds.sleep:SleepKind",
    }
    assert known_kinds() == ["mean", "pi", "predict", "sleep"]
    assert isinstance(get_kind("mean"), MeanKind)
    assert isinstance(get_kind("pi"), PiKind)
    assert isinstance(get_kind("sleep"), SleepKind)
    assert get_kind("mean") is get_kind("mean")


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(
        BadInput, match=r"unknown job kind 'median': known kinds are mean, pi, predict, sleep"
    ):
        get_kind("median")


class TripleKind(SleepKind):
    name = "triple"


class Misnamed(SleepKind):
    name = "other"


def test_users_add_their_own_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = [
        EntryPoint("triple", f"{__name__}:TripleKind", ENTRY_POINT_GROUP),
        EntryPoint("misnamed", f"{__name__}:Misnamed", ENTRY_POINT_GROUP),
        EntryPoint("broken", "no_such_module_here:Kind", ENTRY_POINT_GROUP),
        EntryPoint("notakind", "json:dumps", ENTRY_POINT_GROUP),
    ]
    real = list(entry_points(group=ENTRY_POINT_GROUP))

    def fake(group: str) -> list[EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return real + extra

    monkeypatch.setattr(registry, "entry_points", fake)
    assert known_kinds() == [
        "broken", "mean", "misnamed", "notakind", "pi", "predict", "sleep", "triple"
    ]  # fmt: skip
    assert isinstance(get_kind("triple"), TripleKind)
    assert isinstance(get_kind("mean"), MeanKind)  # a broken plugin breaks only itself
    with pytest.raises(OperationFailed, match="could not be imported"):
        get_kind("broken")
    with pytest.raises(OperationFailed, match="not a lepton_ops JobKind"):
        get_kind("notakind")
    with pytest.raises(OperationFailed, match="calls itself 'other'"):
        get_kind("misnamed")


def test_a_name_registered_twice_differently_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    clash = [
        EntryPoint("mean", "lepton_ops.jobs.kinds.mean:MeanKind", ENTRY_POINT_GROUP),
        EntryPoint("mean", "elsewhere:MeanKind", ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: clash)
    with pytest.raises(OperationFailed, match="registered twice"):
        get_kind("mean")


def test_built_ins_work_without_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    assert known_kinds() == ["mean", "pi", "predict", "sleep"]
    assert isinstance(get_kind("pi"), PiKind)


# ------------------------------------------------------------------ parameters


def test_parameters_are_validated_with_defaults() -> None:
    kind = get_kind("mean")
    assert kind.validate({"tasks": "12"}) == {"tasks": 12, "task_size": 1000, "seed": 0}
    assert get_kind("sleep").validate({"tasks": 3, "task_ms": "1.5"}) == {
        "tasks": 3,
        "task_ms": 1.5,
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "job kind mean needs --tasks"),
        ({"tasks": -1}, "--tasks must be 0 or more, got -1"),
        ({"tasks": 5, "task_size": 0}, "--task-size must be 1 or more"),
        ({"tasks": 5, "task_size": 10**9}, "--task-size must be at most"),
        ({"tasks": 5, "seed": "x"}, "--seed must be a whole number"),
        ({"tasks": True}, "--tasks must be a whole number"),
        ({"tasks": 5, "task_ms": 3}, "job kind mean has no parameter task_ms"),
    ]
    for params, needle in cases:
        with pytest.raises(BadInput) as caught:
            kind.validate(params)
        assert needle in str(caught.value)
    with pytest.raises(BadInput, match="--task-ms must be a number"):
        get_kind("sleep").validate({"tasks": 1, "task_ms": "nan"})


def test_map_checks_the_range_and_speed() -> None:
    kind = get_kind("pi")
    with pytest.raises(BadInput, match=r"shard \[5, 11\) is not inside the job's tasks \[0, 10\)"):
        kind.map({"tasks": 10}, 5, 11)
    with pytest.raises(BadInput, match="speed must be a number greater than 0"):
        kind.map({"tasks": 10}, 0, 1, speed=0)


def test_partials_from_elsewhere_are_checked() -> None:
    mean = get_kind("mean")
    with pytest.raises(BadInput, match="not a mean partial result"):
        mean.reduce(mean.empty(), {"count": 1})
    good = mean.map({"tasks": 2, "task_size": 3}, 0, 1)
    forged = dict(good, sum_k=str(int(good["sum_k"]) + 2**60))
    with pytest.raises(BadInput, match="do not fit"):
        mean.finalize(forged)
    with pytest.raises(BadInput, match="points inside out of"):
        get_kind("pi").finalize({"inside": 5, "total": 4})


# ------------------------------------------------------------------ mean


def reference_numbers(params: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.concatenate(
        [
            np.random.default_rng([params["seed"], task]).random(params["task_size"])
            for task in range(params["tasks"])
        ]
    )


def test_mean_matches_numpy_and_is_bitwise_independent_of_sharding() -> None:
    kind = get_kind("mean")
    numbers = reference_numbers(MEAN_PARAMS)
    expected_mean = float(np.mean(numbers))
    expected_var = float(np.var(numbers))
    rng = random.Random(99)
    results = []
    for pieces in (1, 2, 7, 33, 1000):
        ranges = cut(1000, rng, pieces)
        partials = [kind.map(MEAN_PARAMS, start, stop) for start, stop in ranges]
        results.append(kind.finalize(merge_in_random_tree(kind, partials, rng)))
        results.append(kind.finalize(reduce_partials(kind, reversed(partials))))
    plan = make_plan([("a", 1), ("b", 2), ("c", 3)], 1000, shard_size=37)
    partials = [kind.map(MEAN_PARAMS, s.start, s.stop) for s in plan.shards]
    results.append(kind.finalize(merge_in_random_tree(kind, partials, rng)))
    first = results[0]
    for result in results[1:]:
        assert json.dumps(result) == json.dumps(first)  # bitwise the same floats
    assert first["count"] == 1_000_000
    assert abs(first["mean"] - expected_mean) <= 1e-12 * abs(expected_mean)
    assert abs(first["variance"] - expected_var) <= 1e-12 * abs(expected_var)
    assert first["min"] == float(numbers.min())
    assert first["max"] == float(numbers.max())
    assert first["std"] == pytest.approx(float(np.std(numbers)), rel=1e-12)


def test_mean_is_exact_against_rational_arithmetic() -> None:
    from fractions import Fraction

    params = {"tasks": 20, "task_size": 50, "seed": 3}
    numbers = reference_numbers(params)
    exact = [Fraction(float(x)) for x in numbers]
    mean = sum(exact) / len(exact)
    variance = sum((x - mean) ** 2 for x in exact) / len(exact)
    kind = get_kind("mean")
    result = kind.finalize(kind.map(params, 0, 20))
    assert result["mean"] == float(mean)  # correctly rounded, once
    assert result["variance"] == float(variance)


def test_mean_edge_cases() -> None:
    kind = get_kind("mean")
    empty = kind.finalize(kind.map({"tasks": 10}, 4, 4))
    assert empty["count"] == 0 and empty["mean"] is None and empty["variance"] is None
    assert kind.finalize(kind.empty()) == empty
    one = kind.map({"tasks": 1, "task_size": 1, "seed": 5}, 0, 1)
    result = kind.finalize(one)
    value = float(np.random.default_rng([5, 0]).random(1)[0])
    assert result == {
        "count": 1,
        "sum": value,
        "mean": value,
        "variance": 0.0,
        "std": 0.0,
        "min": value,
        "max": value,
    }
    # Sums past 2**63 stay exact (big values travel as decimal text).
    big = kind.map({"tasks": 2, "task_size": 1_000_000, "seed": 1}, 0, 2)
    assert int(big["sum_k2"]) > 2**100
    assert kind.reduce(big, kind.empty()) == big


def test_seed_and_task_index_pick_the_numbers() -> None:
    kind = get_kind("mean")
    base = kind.map({"tasks": 3, "seed": 1}, 0, 3)
    assert kind.map({"tasks": 3, "seed": 1}, 0, 3) == base
    assert kind.map({"tasks": 3, "seed": 2}, 0, 3) != base
    assert kind.map({"tasks": 9, "seed": 1}, 0, 3) == base  # the task count does not matter


# ------------------------------------------------------------------ pi


def test_pi_counts_points_exactly_whatever_the_sharding() -> None:
    kind = get_kind("pi")
    params = {"tasks": 200, "task_size": 2000, "seed": 11}
    inside = 0
    for task in range(200):
        points = np.random.default_rng([11, task]).random((2000, 2))
        inside += int(np.count_nonzero(points[:, 0] ** 2 + points[:, 1] ** 2 <= 1.0))
    rng = random.Random(5)
    for pieces in (1, 3, 50):
        partials = [kind.map(params, a, b) for a, b in cut(200, rng, pieces)]
        result = kind.finalize(merge_in_random_tree(kind, partials, rng))
        assert result["inside"] == inside and result["total"] == 400_000
        assert result["pi_estimate"] == 4 * inside / 400_000
    assert abs(result["pi_estimate"] - np.pi) < 5 * result["std_error"]
    assert kind.finalize(kind.empty())["pi_estimate"] is None


# ------------------------------------------------------------------ sleep


def test_sleep_takes_task_ms_over_speed() -> None:
    kind = get_kind("sleep")
    params = {"tasks": 10, "task_ms": 2.0}
    slow = kind.map(params, 0, 5, speed=1.0)
    fast = kind.map(params, 5, 10, speed=4.0)
    assert slow["tasks"] == 5 and fast["tasks"] == 5
    assert slow["slept_ns"] >= 10_000_000  # 5 tasks x 2 ms
    assert fast["slept_ns"] >= 2_500_000  # 5 x 2 ms / 4
    result = kind.finalize(kind.reduce(slow, fast))
    assert result["tasks"] == 10
    assert result["slept_s"] == (slow["slept_ns"] + fast["slept_ns"]) / 1e9
    assert kind.map(params, 3, 3) == {"tasks": 0, "slept_ns": 0}
    assert kind.map({"tasks": 4, "task_ms": 0}, 0, 4)["tasks"] == 4


def test_every_kind_describes_its_parameters() -> None:
    for name in known_kinds():
        described = get_kind(name).describe()
        assert described["name"] == name
        assert described["params"][0]["flag"] == "--tasks"
        assert described["params"][0]["required"] is True
        json.dumps(described)
