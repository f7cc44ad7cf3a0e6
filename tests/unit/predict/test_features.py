"""The predictor's features: window statistics by hand, causality (a later sample never
changes a feature), the node's own disks and services, the fleet-relative host features,
and the time a whole campaign takes to featurize."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from predict_support import (
    DATA_SIZE,
    LIMIT,
    MIB,
    NODES,
    T0,
    node_facts,
    plan_campaign,
    record,
)

from lepton_ops.predict import rolling
from lepton_ops.predict.features import (
    FEATURE_NAMES,
    FEATURES,
    HOST_SIGNALS,
    TTE_CAP_S,
    dead_band,
    featurize,
    fleet_excess,
)
from lepton_ops.predict.frames import NodeFrame, read_frames
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

WINDOW = 60.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(history_path(tmp_path)) as opened:
        yield opened


def collect(store: HistoryStore, ts: float, **per_node: dict[str, object]) -> None:
    """One collection: each named node's facts (``node=None``: unreachable)."""
    outcomes = []
    for node, values in per_node.items():
        if values is None:
            outcomes.append(NodeOutcome.unreachable(node, "timed out", ts=ts))
        else:
            outcomes.append(NodeOutcome.from_facts(node, node_facts(node, ts, **values)))  # type: ignore[arg-type]
    store.record_collection(outcomes, "ansible", started_at=ts, finished_at=ts + 0.5)


def features_at(
    store: HistoryStore, node: str, ts: float, window: float = WINDOW
) -> dict[str, float]:
    found = featurize(read_frames(store, None, None), window)[node]
    row = int(np.flatnonzero(found.ts == ts)[0])
    return dict(zip(FEATURE_NAMES, found.matrix[row].tolist(), strict=True))


# --------------------------------------------------------------------------- the table


def test_the_feature_table_is_consistent() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURES)
    assert all(spec.direction in (-1, 0, 1) and spec.scale > 0 for spec in FEATURES)
    assert set(HOST_SIGNALS) <= set(FEATURE_NAMES)
    for name in (
        "mem_used_pct_max",
        "mem_tte_s",
        "disk_tte_s",
        "health_fail_ratio_window",
        "restarts_delta_window",
        "reachable_ratio_window",
    ):
        assert name in FEATURE_NAMES


# --------------------------------------------------------------------------- statistics


def test_window_statistics_by_hand() -> None:
    ts = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    values = np.array([1.0, 3.0, np.nan, 7.0, 9.0])
    windows = rolling.Windows(ts, 25.0)  # (t - 25, t]: the current sample and two before
    matrix = windows.gather(values)
    np.testing.assert_array_equal(rolling.last(matrix), [1.0, 3.0, 3.0, 7.0, 9.0])
    np.testing.assert_allclose(rolling.mean(matrix), [1.0, 2.0, 2.0, 5.0, 8.0])
    np.testing.assert_allclose(rolling.count(matrix), [1, 2, 2, 2, 2])
    # a slope needs 3 points: only the full windows of a linear series have one
    linear = rolling.Windows(ts, 25.0).gather(2.0 * ts + 5.0)
    np.testing.assert_allclose(rolling.slope(linear, windows.age), [np.nan, np.nan, 2, 2, 2])


def test_a_counter_increase_counts_a_reset_from_zero() -> None:
    ts = np.arange(6) * 10.0
    windows = rolling.Windows(ts, 100.0)
    restarts = windows.gather(np.array([3.0, 3.0, 4.0, 0.0, 1.0, 1.0]))
    # 3 -> 4 is 1; 4 -> 0 is a restart of the counter (0 new); 0 -> 1 is 1
    np.testing.assert_array_equal(rolling.increase(restarts), [0, 0, 1, 1, 2, 2])


def test_time_to_exhaustion_by_hand() -> None:
    level = np.array([50.0, 50.0, 50.0, 100.0, 99.0, np.nan])
    rate = np.array([1.0, 0.0, -2.0, 1.0, np.nan, 1.0])
    tte = rolling.time_to_exhaustion(level, rate, 100.0, 3600.0)
    np.testing.assert_array_equal(tte[:5], [50.0, 3600.0, 3600.0, 0.0, 3600.0])
    assert np.isnan(tte[5])
    np.testing.assert_allclose(
        rolling.time_to_exhaustion(np.array([10.0]), np.array([1e-6]), 100.0, 3600.0), [3600.0]
    )


# --------------------------------------------------------------------------- on a store


def test_a_memory_leak_gives_its_slope_and_time_to_the_limit(store: HistoryStore) -> None:
    rate = 4 * MIB  # bytes per second
    base = 100 * MIB
    for step in range(13):
        ts = T0 + 5.0 * step
        collect(store, ts, node2={"rss": {"lepton-worker": base + rate * 5.0 * step}})
    f = features_at(store, "node2", T0 + 60.0)
    pct_per_s = rate / LIMIT * 100
    level = (base + rate * 60.0) / LIMIT * 100
    assert f["mem_used_pct_max"] == pytest.approx(level)
    assert f["mem_used_pct_slope_per_s"] == pytest.approx(pct_per_s)
    assert f["mem_tte_s"] == pytest.approx((100 - level) / pct_per_s)
    assert f["rss_slope_mib_per_s"] == pytest.approx(4.0)
    assert f["exhaustion_tte_s"] == pytest.approx(f["mem_tte_s"])
    # the window is (t - 60, t]: the sample at T0 is out of it, 12 are in
    assert f["mem_used_pct_mean_window"] == pytest.approx(
        np.mean([(base + rate * 5.0 * k) / LIMIT * 100 for k in range(1, 13)])
    )
    assert f["disk_tte_s"] == TTE_CAP_S  # a flat disk: no exhaustion in sight


def test_features_are_causal(store: HistoryStore) -> None:
    for step in range(10):
        ts = T0 + 5.0 * step
        collect(
            store,
            ts,
            node1={"rss": {"lepton-worker": (100 + step) * MIB}},
            node2={"data_used": (5 + step) * MIB},
        )
    at = T0 + 30.0
    before = {node: features_at(store, node, at) for node in ("node1", "node2")}
    # the future: a leak, a full disk, a failed health check, an unreachable node
    for step in range(10, 20):
        ts = T0 + 5.0 * step
        collect(
            store,
            ts,
            node1={
                "rss": {"lepton-worker": LIMIT * 0.99},
                "healthy": {"lepton-worker": False},
                "host_mem_pct": 95.0,
                "cpu": 99.0,
            },
            node2=None if step % 2 else {"data_used": DATA_SIZE - MIB, "host_mem_pct": 10.0},
        )
    collect(store, at + 0.5, node1={"rss": {"lepton-worker": LIMIT}, "host_mem_pct": 99.0})
    for node in ("node1", "node2"):
        assert features_at(store, node, at) == pytest.approx(before[node], nan_ok=True)


def test_the_root_file_system_and_directories_on_it_are_not_the_nodes_own(
    store: HistoryStore,
) -> None:
    for step in range(6):
        collect(
            store,
            T0 + 5.0 * step,
            node3={"data_used": (4 + 2 * step) * MIB, "root_used": 240e9 + step * 1e9},
        )
    frame = read_frames(store, None, None)["node3"]
    disks = frame.data_disks()
    # /opt/lepton and /etc/lepton report the very numbers of / (bind mounts): left out
    assert [path for path, _, values in disks if not np.isnan(values).all()] == ["/var/lib/lepton"]
    f = features_at(store, "node3", T0 + 25.0)
    assert f["disk_used_pct_max"] == pytest.approx(14 * MIB / DATA_SIZE * 100)


def test_services_are_aggregated_worst_first(store: HistoryStore) -> None:
    # node1 runs the aggregator and a worker: the worst of the two counts
    for step in range(6):
        collect(
            store,
            T0 + 5.0 * step,
            node1={
                "rss": {"lepton-aggregator": (300 + 10 * step) * MIB, "lepton-worker": 100 * MIB},
                "healthy": {"lepton-worker": step != 4},
                "restarts": {"lepton-worker": 1 if step >= 3 else 0, "lepton-aggregator": 2},
            },
        )
    f = features_at(store, "node1", T0 + 25.0, window=30.0)
    assert f["mem_used_pct_max"] == pytest.approx(350 * MIB / LIMIT * 100)
    assert f["health_fail_ratio_window"] == pytest.approx(1 / 6)
    assert f["restarts_delta_window"] == 1.0
    assert f["reachable_ratio_window"] == 1.0


def test_an_unreachable_node_has_only_its_reachability(store: HistoryStore) -> None:
    for step in range(4):
        collect(store, T0 + 5.0 * step, node4=None if step >= 2 else {})
    f = features_at(store, "node4", T0 + 15.0)
    assert f["reachable_ratio_window"] == 0.5
    # the latest memory known in the window is still reported
    assert not np.isnan(f["mem_used_pct_max"])
    frame = read_frames(store, None, None)["node4"]
    assert frame.up().tolist() == [True, True, False, False]


def test_host_numbers_count_only_against_the_fleet(store: HistoryStore) -> None:
    # one machine: every node reads the same host memory, and one node leaks into it
    for step in range(8):
        host = 40.0 + 2.0 * step
        collect(store, T0 + 5.0 * step, **{n: {"host_mem_pct": host, "cpu": 50.0} for n in NODES})
    for node in NODES:
        assert features_at(store, node, T0 + 35.0)["host_mem_used_pct_vs_fleet"] == 0.0
    # a host that stands out from the rest shows, less the dead band
    collect(
        store, T0 + 40.0, **{n: {"host_mem_pct": 95.0 if n == "node5" else 50.0} for n in NODES}
    )
    excess = fleet_excess(
        read_frames(store, None, None), ("lepton_node_memory_used_pct", ()), max_age_s=60.0
    )
    assert excess["node5"][-1] == pytest.approx(45.0)
    np.testing.assert_array_equal(
        dead_band(np.array([-7.0, 3.0, 12.0, np.nan]), 5.0)[:3], [-2, 0, 7]
    )


def test_the_fleet_reference_uses_only_earlier_samples() -> None:
    ts = {"a": np.array([0.0, 10.0]), "b": np.array([5.0, 15.0])}
    values = {"a": np.array([10.0, 10.0]), "b": np.array([30.0, 90.0])}
    key = ("lepton_node_memory_used_pct", ())
    frames = {node: NodeFrame(node, ts[node], {key: values[node]}) for node in ("a", "b")}
    excess = fleet_excess(frames, key, max_age_s=100.0)  # type: ignore[arg-type]
    # a at 0: only itself; a at 10: median of a=10 and b=30 (b's 90 comes later)
    np.testing.assert_allclose(excess["a"], [0.0, -10.0])
    np.testing.assert_allclose(excess["b"], [10.0, 40.0])


def test_a_campaign_featurizes_in_seconds(tmp_path: Path) -> None:
    campaign = plan_campaign(["memleak", "diskfill", "kill", "hang"], seed=4, lead_in_s=600)
    with HistoryStore(history_path(tmp_path)) as store:
        record(store, campaign, seed=4)
        started = time.perf_counter()
        features = featurize(read_frames(store, None, None), 120.0)
        took = time.perf_counter() - started
    assert sum(len(f.ts) for f in features.values()) >= 5 * 200
    assert all(f.matrix.shape[1] == len(FEATURE_NAMES) for f in features.values())
    assert took < 10.0, f"featurizing took {took:.1f} s"
