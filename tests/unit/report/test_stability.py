"""The report's stability figures against values computed by hand from a known store."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_support import (
    HOUR,
    PERIOD_S,
    T0,
    UNHEALTHY,
    UNREACHABLE,
    UP,
    collect,
    known_store,
    series,
)

from lepton_ops.errors import BadInput
from lepton_ops.report import Report, build_report
from lepton_ops.report.sources import PredictionSection
from lepton_ops.report.stability import (
    FailureSignal,
    NodeHistory,
    Observation,
    State,
    episodes,
    node_stability,
    observed_spans,
    overlap,
)
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

NO_PREDICTOR = PredictionSection((), "no model trained yet", None, "no predictor data")


def report_of(store: HistoryStore, state_dir: Path, **kwargs: float) -> Report:
    window = {"since": T0, "until": T0 + HOUR, **kwargs}
    return build_report(store, state_dir, prediction=NO_PREDICTOR, **window)


@pytest.fixture
def known(tmp_path: Path) -> Iterator[Report]:
    with known_store(tmp_path) as store:
        yield report_of(store, tmp_path)


# --------------------------------------------------------------------------- by hand


def test_a_node_that_never_failed_has_no_rate_mtbf_or_mttr_but_full_availability(
    known: Report,
) -> None:
    node1 = known.node_stability("node1")
    assert node1 is not None
    # 61 observations a minute apart: 60 intervals of 60 s = 3600 s observed, all up.
    assert (node1.observations, node1.observed_s, node1.uptime_s) == (61, 3600.0, 3600.0)
    assert node1.failures == 0 and node1.episodes == ()
    for figure in (node1.failure_rate, node1.p_failure, node1.mtbf, node1.mttr):
        assert figure.value is None and figure.count == 0 and figure.reason
    # no failure in 1 h: the 95 % upper bound of the rate is 3 / 1 h.
    assert "no failure in 1 h observed (95 % upper bound 3 failures/hour)" in str(
        node1.failure_rate.reason
    )
    assert node1.availability.value is None and "needs MTBF and MTTR" in str(
        node1.availability.reason
    )
    assert node1.measured_availability.value == 1.0
    assert node1.measured_availability.count == 61


def test_node2_figures_match_the_hand_computed_values(known: Report) -> None:
    node2 = known.node_stability("node2")
    assert node2 is not None
    # Episode 1: health check failed at +600 and +660 (one episode: consecutive failed
    # observations merge); first up observation after +660 is +720 -> 600..720, 120 s.
    # Episode 2: the fault's failed_at +1790 starts it; unreachable +1800..+1920 merge
    # into it; up again at +1980 -> 1790..1980, 190 s.
    assert [(e.start - T0, None if e.end is None else e.end - T0) for e in node2.episodes] == [
        (600.0, 720.0),
        (1790.0, 1980.0),
    ]
    assert node2.episodes[0].sources == ("down sample", "health_check_failed")
    assert node2.episodes[1].sources == ("fault kill", "down sample", "unreachable")
    # Observed: 60 intervals of 60 s, no gap = 3600 s. Downtime: 120 + 190 = 310 s.
    # Uptime: 3600 - 310 = 3290 s.
    assert (node2.observed_s, node2.downtime_s, node2.uptime_s) == (3600.0, 310.0, 3290.0)
    # incidents: 2 failed health checks + 3 unreachable; 1 fault failed.
    assert (node2.incidents, node2.faults_failed) == (5, 1)
    # lambda = 2 failures / 1 h observed = 2 per hour.
    assert node2.failure_rate.value == pytest.approx(2.0)
    assert (node2.failure_rate.unit, node2.failure_rate.count) == ("failures/hour", 2)
    # P(>= 1 failure within 1 h) = 1 - exp(-2 * 1) = 0.864664716...
    assert node2.p_failure.value == pytest.approx(1 - math.exp(-2.0))
    assert node2.p_failure.value == pytest.approx(0.8646647167633873)
    # MTBF = uptime / failures = 3290 / 2 = 1645 s.
    assert node2.mtbf.value == pytest.approx(1645.0) and node2.mtbf.count == 2
    # MTTR = (120 + 190) / 2 = 155 s, from 2 recovered episodes.
    assert node2.mttr.value == pytest.approx(155.0) and node2.mttr.count == 2
    # availability = 1645 / (1645 + 155) = 1645 / 1800 = 0.913888...
    assert node2.availability.value == pytest.approx(1645 / 1800)
    # measured = 3290 / 3600 = 0.913888...: the same, as every episode recovered and no
    # gap fell inside one.
    assert node2.measured_availability.value == pytest.approx(3290 / 3600)
    assert node2.availability.value == pytest.approx(node2.measured_availability.value)


def test_node3_with_a_gap_and_an_episode_that_never_recovers(known: Report) -> None:
    node3 = known.node_stability("node3")
    assert node3 is not None
    # Observations at +0..+1200 (21) and +2400..+3600 (21): 42. The interval
    # +1200..+2400 (1200 s) is longer than the 300 s gap limit: not observed.
    # Observed: 20 * 60 + 20 * 60 = 2400 s.
    assert (node3.observations, node3.observed_s) == (42, 2400.0)
    # Unreachable from +3300 to the end: one episode, never recovered.
    assert [(e.start - T0, e.end) for e in node3.episodes] == [(3300.0, None)]
    # Downtime: the observed time from +3300 to +3600 = 300 s; uptime 2400 - 300 = 2100 s.
    assert (node3.downtime_s, node3.uptime_s) == (300.0, 2100.0)
    # lambda = 1 failure / (2400 s = 2/3 h) = 1.5 per hour.
    assert node3.failure_rate.value == pytest.approx(1.5)
    # MTBF = 2100 / 1 = 2100 s.
    assert node3.mtbf.value == pytest.approx(2100.0)
    # No episode recovered: no MTTR, hence no MTBF/(MTBF+MTTR) availability.
    assert node3.mttr.value is None and node3.mttr.count == 0
    assert node3.mttr.reason == "no episode recovered within the window"
    assert node3.availability.value is None
    # measured = 2100 / 2400 = 0.875.
    assert node3.measured_availability.value == pytest.approx(0.875)


def test_fleet_figures_pool_the_nodes(known: Report) -> None:
    fleet = known.fleet
    # failures 0 + 2 + 1 = 3; observed 3600 + 3600 + 2400 = 9600 s = 8/3 h.
    assert (fleet.failures, fleet.recovered, fleet.observed_s) == (3, 2, 9600.0)
    # lambda = 3 / (8/3) = 1.125 per node-hour.
    assert fleet.failure_rate.value == pytest.approx(1.125)
    assert fleet.failure_rate.unit == "failures/node-hour"
    assert fleet.p_failure.value == pytest.approx(1 - math.exp(-1.125))
    # some node of 3 fails within 1 h: 1 - exp(-1.125 * 3 * 1) = 1 - exp(-3.375).
    assert fleet.p_any_node is not None
    assert fleet.p_any_node.value == pytest.approx(1 - math.exp(-3.375))
    # uptime 3600 + 3290 + 2100 = 8990 s; MTBF = 8990 / 3 = 2996.67 s.
    assert fleet.uptime_s == 8990.0
    assert fleet.mtbf.value == pytest.approx(8990 / 3)
    # MTTR: the 2 recovered episodes, (120 + 190) / 2 = 155 s.
    assert fleet.mttr.value == pytest.approx(155.0) and fleet.mttr.count == 2
    # availability = 2996.67 / (2996.67 + 155) = 0.950819...
    assert fleet.availability.value == pytest.approx((8990 / 3) / (8990 / 3 + 155))
    assert fleet.availability.value == pytest.approx(0.9508196721)
    # measured = 8990 / 9600 = 0.936458...: lower, node3's open episode has downtime but
    # no MTTR.
    assert fleet.measured_availability.value == pytest.approx(8990 / 9600)
    assert fleet.incidents == 5 + 6 and fleet.faults_failed == 1


def test_the_report_json_carries_every_figure_with_its_count(known: Report) -> None:
    data = json.loads(json.dumps(known.to_dict()))
    nodes = {entry["node"]: entry for entry in data["stability"]["nodes"]}
    assert nodes["node2"]["mtbf"] == {
        "value": 1645.0, "unit": "s", "count": 2, "basis": "failures", "reason": None,
    }  # fmt: skip
    assert nodes["node1"]["mttr"]["value"] is None and nodes["node1"]["mttr"]["reason"]
    assert data["stability"]["fleet"]["failure_rate"]["value"] == pytest.approx(1.125)
    assert data["nodes"] == ["node1", "node2", "node3"]
    assert [fault["fault"] for fault in data["faults"]] == ["kill"]


# --------------------------------------------------------------------------- the rules


def obs(node: str, *points: tuple[float, State]) -> list[Observation]:
    return [Observation(node, ts, state) for ts, state in points]


def signals(node: str, *times: float) -> list[FailureSignal]:
    return [FailureSignal(node, ts, "down sample") for ts in times]


def test_recovery_needs_an_up_observation_after_the_last_failed_one() -> None:
    observed = obs("n", (0, State.UP), (10, State.DOWN), (20, State.UNKNOWN), (30, State.UP))
    # an unknown observation (facts unreadable) is no verified recovery
    assert [(e.start, e.end) for e in episodes(signals("n", 10), observed)] == [(10, 30)]
    # a failed observation at the same time as an up one wins: the recovery comes later
    observed = obs("n", (10, State.UP), (20, State.UP))
    assert [(e.start, e.end) for e in episodes(signals("n", 5, 10), observed)] == [(5, 20)]
    # two failures with a recovery between them are two episodes
    observed = obs("n", (0, State.UP), (10, State.DOWN), (20, State.UP), (30, State.DOWN))
    found = episodes(signals("n", 10, 30), observed)
    assert [(e.start, e.end) for e in found] == [(10, 20), (30, None)]


def test_observed_time_leaves_out_gaps() -> None:
    assert observed_spans([0, 60, 120, 600, 660], 300) == [(0, 60), (60, 120), (600, 660)]
    assert overlap([(0, 60), (600, 660)], 30, None) == 30 + 60
    assert overlap([(0, 60), (600, 660)], 30, 630) == 30 + 30


def test_a_gap_inside_an_episode_separates_mttr_from_measured_downtime() -> None:
    # Up at 0..600 (10 intervals), down at 600, nothing until 1200 (a 600 s gap), down
    # at 1200, up at 1260, then up to 1860.
    times = (
        [60.0 * i for i in range(11)] + [1200.0, 1260.0] + [1260.0 + 60 * i for i in range(1, 11)]
    )
    down = {600.0, 1200.0}
    history = NodeHistory(
        "n",
        obs("n", *((ts, State.DOWN if ts in down else State.UP) for ts in times)),
        signals("n", *sorted(down)),
    )
    node = node_stability(history, max_gap_s=300)
    # One episode 600..1260: MTTR = 660 s (wall time, the gap included).
    assert [(e.start, e.end) for e in node.episodes] == [(600.0, 1260.0)]
    assert node.mttr.value == 660.0
    # Observed: 10 * 60 + 60 (1200..1260) + 10 * 60 = 1260 s; downtime only the observed
    # 1200..1260 = 60 s; uptime 1200 s.
    assert (node.observed_s, node.downtime_s, node.uptime_s) == (1260.0, 60.0, 1200.0)
    # MTBF = 1200 s; availability = 1200 / (1200 + 660) = 0.645..., measured 1200 / 1260.
    assert node.availability.value == pytest.approx(1200 / 1860)
    assert node.measured_availability.value == pytest.approx(1200 / 1260)
    # 1 / lambda = observed / failures = 1260 s = MTBF + downtime / failures.
    assert node.failure_rate.value == pytest.approx(1 / (1260 / 3600))


def test_the_window_bounds_what_counts(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        times = [T0 + PERIOD_S * i for i in range(11)]
        series(store, times, {"a": [UP, UNHEALTHY, UNHEALTHY, UP] + [UP] * 7})
        # the window opens inside the episode: it starts at the window's first failed
        # observation (+120), and recovers at +180
        report = report_of(store, tmp_path, since=T0 + 120, until=T0 + 600)
        (node,) = report.stability
        assert [(e.start - T0, (e.end or 0) - T0) for e in node.episodes] == [(120.0, 180.0)]
        assert node.observed_s == 480.0
        with pytest.raises(BadInput, match="must start before it ends"):
            report_of(store, tmp_path, since=T0 + 10, until=T0)
        with pytest.raises(BadInput, match="horizon"):
            report_of(store, tmp_path, horizon_s=0.0)


def test_an_incident_without_telemetry_is_a_failure_without_observed_time(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        collect(store, T0, {"a": UP})
        store.record_collection(
            [NodeOutcome.unreachable("ghost", "no route", ts=T0 + 30)], finished_at=T0 + 30
        )
        report = report_of(store, tmp_path)
    ghost = report.node_stability("ghost")
    assert ghost is not None and ghost.failures == 1 and ghost.observed_s == 0
    assert ghost.failure_rate.value is None
    assert ghost.failure_rate.reason == "no observed time in the window"
    assert ghost.measured_availability.value is None


def test_an_empty_store_says_what_is_missing(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        report = report_of(store, tmp_path)
    assert report.nodes == () and report.fleet.failures == 0
    assert report.fleet.failure_rate.reason == "no observed time in the window"
    assert any("no telemetry in the window" in line for line in report.missing)
    assert any("no job recorded" in line for line in report.missing)
    assert any("no remediation recorded" in line for line in report.missing)
    json.dumps(report.to_dict())


def test_unreachable_and_unhealthy_samples_alone_make_episodes(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        times = [T0 + PERIOD_S * i for i in range(6)]
        series(store, times, {"a": [UP, UNREACHABLE, UNHEALTHY, UP, UNHEALTHY, UP]})
        (node,) = report_of(store, tmp_path).stability
    # +60 unreachable and +120 unhealthy merge: 60..180; +240: 240..300.
    assert [(e.start - T0, (e.end or 0) - T0) for e in node.episodes] == [
        (60.0, 180.0),
        (240.0, 300.0),
    ]
