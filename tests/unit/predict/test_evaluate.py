"""Evaluation: alarm episodes, precision, recall, F1, false alarms per node-day and lead
times counted by hand; the split by time (every test sample after every training one);
the two baselines; and a whole evaluation of a simulated campaign."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from predict_support import plan_campaign, record

from lepton_ops.errors import OperationFailed
from lepton_ops.predict.dataset import Dataset, build_dataset
from lepton_ops.predict.evaluate import (
    evaluate,
    predict_linear_rule,
    split_by_time,
    threshold_rule,
)
from lepton_ops.predict.features import FEATURE_INDEX, FEATURE_NAMES
from lepton_ops.predict.labels import FaultSpan
from lepton_ops.predict.metrics import DAY_S, Target, score_alarms
from lepton_ops.predict.model import TrainOptions
from lepton_ops.telemetry import HistoryStore, history_path

KINDS = [
    "memleak",
    "diskfill",
    "kill",
    "memleak",
    "cpuhog",
    "diskfill",
    "hang",
    "memleak",
    "partition",
    "diskfill",
    "memleak",
    "kill",
    "diskfill",
    "memleak",
    "diskfill",
]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    state = tmp_path_factory.mktemp("campaign")
    with HistoryStore(history_path(state)) as store:
        record(store, plan_campaign(KINDS, seed=7), seed=7)
        yield build_dataset(store, since=None, until=None, horizon_s=60.0, window_s=120.0)


# --------------------------------------------------------------------------- by hand


def hand_case(min_lead: float = 10.0) -> tuple[object, ...]:
    ts = np.arange(0.0, 201.0, 10.0)  # 21 samples a node, 20 intervals of 10 s
    nodes = np.array(["a"] * 21 + ["b"] * 21)
    times = np.concatenate([ts, ts])
    alarm = np.zeros(42, dtype=bool)
    countable = np.ones(42, dtype=bool)
    for t in (60, 70, 180):  # a: an early true episode, a false one at the end
        alarm[(nodes == "a") & (times == t)] = True
    for t in (20, 140):  # b: a false one during a cpuhog, a late true one
        alarm[(nodes == "b") & (times == t)] = True
    countable[(nodes == "a") & ((times == 100) | (times == 110))] = False  # a's failed state
    failures = [Target("a", "memleak", 100.0, 50.0), Target("b", "diskfill", 150.0, 130.0)]
    spans = [FaultSpan("b", "cpuhog", 0.0, 30.0, censored=False)]
    return nodes, times, alarm, countable, failures, spans


def test_scores_by_hand() -> None:
    nodes, times, alarm, countable, failures, spans = hand_case()
    score = score_alarms(
        nodes,
        times,
        alarm,
        countable,
        failures,
        spans,  # type: ignore[arg-type]
        horizon_s=60.0,
        min_lead_s=10.0,
    )
    assert [(e.node, e.start, e.end, e.true, e.kind) for e in score.episodes] == [
        ("a", 60.0, 70.0, True, "memleak"),
        ("a", 180.0, 180.0, False, None),
        ("b", 20.0, 20.0, False, "cpuhog"),
        ("b", 140.0, 140.0, True, "diskfill"),
    ]
    assert score.leads == (40.0, 10.0)
    assert (score.incidents, score.detected, score.alarm_episodes, score.false_alarms) == (
        2,
        2,
        4,
        2,
    )
    assert score.precision == 0.5 and score.recall == 1.0
    assert score.f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    # observed: a 200 s less the two failed-state intervals, b 200 s
    assert score.node_days == pytest.approx(380.0 / DAY_S)
    assert score.false_alarms_per_node_day == pytest.approx(2 / (380.0 / DAY_S))
    assert score.median_lead_s == 25.0
    cpuhog = score.by_kind["cpuhog"]
    assert (cpuhog.incidents, cpuhog.false_alarms, cpuhog.precision, cpuhog.recall) == (
        0,
        1,
        0.0,
        None,
    )
    memleak = score.by_kind["memleak"].to_dict()
    assert memleak == {
        "incidents": 1,
        "detected": 1,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "median_lead_s": 40.0,
        "true_alarms": 1,
        "false_alarms": 0,
    }


def test_an_alarm_too_late_to_act_on_is_a_miss() -> None:
    nodes, times, alarm, countable, failures, spans = hand_case()
    score = score_alarms(
        nodes,
        times,
        alarm,
        countable,
        failures,
        spans,  # type: ignore[arg-type]
        horizon_s=60.0,
        min_lead_s=15.0,
    )
    assert score.leads == (40.0, None)
    assert score.recall == 0.5 and score.by_kind["diskfill"].recall == 0.0
    # the late alarm is still a true alarm: precision does not change
    assert score.precision == 0.5


def test_a_sample_that_is_not_countable_splits_an_episode_and_is_no_alarm() -> None:
    ts = np.arange(0.0, 60.0, 10.0)
    alarm = np.ones(6, dtype=bool)
    countable = np.array([True, True, False, True, True, True])
    score = score_alarms(["a"] * 6, ts, alarm, countable, [], horizon_s=60.0, min_lead_s=10.0)
    assert [(e.start, e.end) for e in score.episodes] == [(0.0, 10.0), (30.0, 50.0)]
    assert score.false_alarms == 2 and score.f1 is None and score.recall is None


def test_rows_in_any_order_give_the_same_score() -> None:
    nodes, times, alarm, countable, failures, spans = hand_case()
    order = np.random.default_rng(1).permutation(len(times))  # type: ignore[arg-type]
    shuffled = score_alarms(
        nodes[order],
        times[order],
        alarm[order],
        countable[order],  # type: ignore[index]
        failures,
        spans,
        horizon_s=60.0,
        min_lead_s=10.0,
    )  # type: ignore[arg-type]
    assert (
        shuffled.to_dict()
        == score_alarms(
            nodes,
            times,
            alarm,
            countable,
            failures,
            spans,  # type: ignore[arg-type]
            horizon_s=60.0,
            min_lead_s=10.0,
        ).to_dict()
    )


def test_no_alarm_at_all_is_f1_zero() -> None:
    failures = [Target("a", "memleak", 100.0, 50.0)]
    score = score_alarms(
        ["a"] * 3,
        np.array([50.0, 60.0, 70.0]),
        np.zeros(3, dtype=bool),
        np.ones(3, dtype=bool),
        failures,
        horizon_s=60.0,
        min_lead_s=10.0,
    )
    assert (score.precision, score.recall, score.f1, score.median_lead_s) == (None, 0.0, 0.0, None)


# --------------------------------------------------------------------------- baselines


def test_the_baselines_by_hand(campaign: Dataset) -> None:
    X = np.full((4, len(FEATURE_NAMES)), np.nan)
    values = {
        "mem_used_pct_max": [50.0, 91.0, 89.0, np.nan],
        "disk_used_pct_max": [95.0, 10.0, 89.0, 10.0],
        "mem_tte_s": [30.0, 3600.0, 61.0, np.nan],
        "disk_tte_s": [3600.0, 3600.0, 3600.0, 59.0],
    }
    for name, column in values.items():
        X[:, FEATURE_INDEX[name]] = column
    rows = replace(campaign.select(np.arange(len(campaign)) < 4), X=X)
    assert threshold_rule(rows).tolist() == [True, True, False, False]
    assert predict_linear_rule(rows, 60.0).tolist() == [True, False, False, True]


# --------------------------------------------------------------------------- the split


def test_the_split_is_by_time(campaign: Dataset) -> None:
    split = split_by_time(campaign, 0.4)
    train, test = split.train_rows(campaign), split.test_rows(campaign)
    assert campaign.ts[train].max() <= split.cut - 60.0 < split.cut < campaign.ts[test].min()
    assert all(e.failed_at < split.cut for e in split.train_failures)
    assert all(e.detection_start(60.0, 120.0) >= split.cut for e in split.test_failures)
    failures = len(split.train_failures) + len(split.test_failures)
    assert 0.3 <= len(split.test_failures) / failures <= 0.5
    # never random: the same cut for the same data, whatever the row order
    order = np.random.default_rng(3).permutation(len(campaign))
    shuffled = campaign.select(order)  # type: ignore[arg-type]
    assert split_by_time(shuffled, 0.4).cut == split.cut


def test_too_few_failures_cannot_be_evaluated(campaign: Dataset) -> None:
    first = campaign.events[0]
    early = campaign.select(campaign.ts < first.failed_at + 30)
    with pytest.raises(OperationFailed, match="at least 2 failures"):
        split_by_time(early)


# --------------------------------------------------------------------------- a campaign


def test_a_campaign_evaluation(campaign: Dataset) -> None:
    result = evaluate(campaign, TrainOptions(), 0.4)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    for key in ("f1", "false_alarms_per_node_day", "by_fault", "baselines"):
        assert key in data
    for name in ("threshold", "predict_linear"):
        assert {"f1", "precision", "recall", "false_alarms_per_node_day"} <= set(
            data["baselines"][name]
        )
    for fault, entry in data["by_fault"].items():
        assert {"incidents", "precision", "recall", "f1", "median_lead_s"} <= set(entry), fault
    # the bar, on held-out simulated failures
    for fault in ("memleak", "diskfill"):
        entry = data["by_fault"][fault]
        assert entry["incidents"] >= 2
        assert entry["recall"] >= 0.9, (fault, entry)
        assert entry["median_lead_s"] >= 30.0, (fault, entry)
    assert data["false_alarms_per_node_day"] <= 1.0
    for name in ("threshold", "predict_linear"):
        baseline = data["baselines"][name]
        assert data["f1"] >= baseline["f1"], name
        assert data["median_lead_s"] > baseline["median_lead_s"], name
    # sudden faults have nothing to announce them: counted, not hidden
    assert data["split"]["test"]["failures"] == data["incidents"]
