"""The fleet layer weighs each alarm against the node's peers: a quiet five-node lab whose
shared disk (``/`` and the directories on it, the same numbers on every node) jumps on
every node at once, with noisy peer latencies, raises no node alarm - the shared change is
a fleet-wide finding - while a node's own data directory filling up, or its worker's memory
leaking, still alarms on that node with that series named. Two nodes: a change on both is
fleet-wide, on one it is that node's."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from predict_support import BASE_RSS, DATA_BASE, MIB, NODES, ROOT_SIZE, node_facts

from lepton_ops.detect.detector import detect
from lepton_ops.detect.fleet import FLEET_THRESHOLD, NodeAlarms, node_alarms
from lepton_ops.predict import current_risk
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

ROWS = 600
STEP_S = 5.0
#: The host's disk: a build writes 600 MiB in a minute, from this row on.
BUILD_ROW = 520
DATA_DIR = '{path="/var/lib/lepton"}'


def record_fleet(
    state_dir: Path,
    now: float,
    *,
    nodes: tuple[str, ...] = NODES,
    seed: int = 0,
    diskfill: str | None = None,
    memleak: str | None = None,
    shared_on: tuple[str, ...] | None = None,
) -> None:
    """A quiet fleet with a shared disk that every node in ``shared_on`` (default: all)
    sees jump at :data:`BUILD_ROW`; optionally one node's data directory filling at
    1 MiB/s, or its worker leaking 4 MiB/s, over the last 25 rows."""
    rng = np.random.default_rng(seed)
    sharing = nodes if shared_on is None else shared_on
    root = 0.33 * ROOT_SIZE
    with HistoryStore(history_path(state_dir)) as store:
        for row in range(ROWS):
            at = now - STEP_S * (ROWS - row)
            root += 20_000.0 + (50 * MIB if BUILD_ROW <= row < BUILD_ROW + 12 else 0.0)
            fault_s = max(0.0, STEP_S * (row - (ROWS - 25)))
            outcomes = []
            for index, node in enumerate(nodes):
                rss = {
                    service: base + rng.normal(0, 0.6 * MIB) for service, base in BASE_RSS.items()
                }
                if node == memleak:
                    rss["lepton-worker"] += 4 * MIB * fault_s
                data = DATA_BASE + rng.normal(0, 4096.0)
                if node == diskfill:
                    data += 1 * MIB * fault_s
                facts = node_facts(
                    node,
                    at + 0.05 * index,
                    rss=rss,
                    data_used=data,
                    cpu=float(18 + rng.normal(0, 3)),
                    root_used=root if node in sharing else 0.33 * ROOT_SIZE,
                    service_latency_ms=float(abs(4 + rng.normal(0, 1))),
                    peer_latency_ms=float(0.08 + 0.02 * rng.pareto(2.5)),
                )
                outcomes.append(NodeOutcome.from_facts(node, facts))
            store.record_collection(outcomes, "ansible", started_at=at, finished_at=at + 0.5)


def alarms_since_warm_up(state_dir: Path, now: float) -> dict[str, NodeAlarms]:
    """Every node's alarms over the whole recording (one pass over every row)."""
    with HistoryStore(history_path(state_dir)) as store:
        return node_alarms(store, now, recent_s=STEP_S * ROWS)


def at_risk(alarms: dict[str, NodeAlarms]) -> list[str]:
    return sorted(node for node, alarm in alarms.items() if alarm.score >= FLEET_THRESHOLD)


def test_the_shared_disk_alarms_every_node_when_scored_alone(tmp_path: Path) -> None:
    """The reproduction has teeth: each node's ``/`` series, scored on its own, alarms."""
    now = time.time()
    record_fleet(tmp_path, now)
    with HistoryStore(history_path(tmp_path)) as store:
        roots = [
            s
            for s in store.series(metric="lepton_node_disk_free_bytes")
            if s.labels.get("path") == "/"
        ]
    assert sorted(s.node for s in roots) == list(NODES)
    for series in roots:
        stamps = np.array([p[0] for p in series.points])
        values = np.array([p[1] for p in series.points])
        assert np.nanmax(detect(stamps, values)[BUILD_ROW:]) >= FLEET_THRESHOLD


def test_a_quiet_fleet_with_a_shared_disk_change_raises_no_node_alarm(tmp_path: Path) -> None:
    now = time.time()
    record_fleet(tmp_path, now)
    alarms = alarms_since_warm_up(tmp_path, now)
    assert sorted(alarms) == list(NODES)
    assert at_risk(alarms) == []
    # The change is reported, as fleet-wide, on the disk every node shares.
    for node in NODES:
        shared = alarms[node].fleet_wide
        assert shared and all('path="/"' in a.series for a in shared)
        assert all(a.fleet >= 0.5 * a.score for a in shared)
        # /etc/lepton and /opt/lepton are the root file system: scored once, as /.
        assert not any("/etc/lepton" in a.series for a in shared + alarms[node].series)


def test_a_node_whose_data_directory_fills_alarms_with_that_series(tmp_path: Path) -> None:
    now = time.time()
    record_fleet(tmp_path, now, diskfill="node3")
    alarms = alarms_since_warm_up(tmp_path, now)
    assert at_risk(alarms) == ["node3"]
    named = alarms["node3"].series
    assert named[0].series.startswith("lepton_node_disk_") and DATA_DIR in named[0].series
    assert named[0].fleet < 0.1


def test_a_node_whose_worker_leaks_alarms_with_that_series(tmp_path: Path) -> None:
    now = time.time()
    record_fleet(tmp_path, now, memleak="node2")
    alarms = alarms_since_warm_up(tmp_path, now)
    assert at_risk(alarms) == ["node2"]
    assert alarms["node2"].series[0].series.startswith("lepton_service_")
    assert 'service="lepton-worker"' in alarms["node2"].series[0].series


def test_two_nodes_a_change_on_both_is_fleet_wide(tmp_path: Path) -> None:
    now = time.time()
    record_fleet(tmp_path, now, nodes=("node1", "node2"))
    alarms = alarms_since_warm_up(tmp_path, now)
    assert at_risk(alarms) == []
    assert all(alarms[node].fleet_wide for node in ("node1", "node2"))


def test_two_nodes_a_change_on_one_is_that_nodes_alarm(tmp_path: Path) -> None:
    now = time.time()
    record_fleet(tmp_path, now, nodes=("node1", "node2"), shared_on=("node2",))
    alarms = alarms_since_warm_up(tmp_path, now)
    # node2's own alarm - though no risk: the build wrote its 600 MiB and stopped, the disk
    # is a third full and not filling (far from its limit).
    assert at_risk(alarms) == []
    assert not alarms["node2"].fleet_wide
    assert not any('path="/"' in a.series for a in alarms["node2"].series)
    assert 'path="/"' in alarms["node2"].far_from_limit[0].series
    assert alarms["node2"].far_from_limit[0].score >= FLEET_THRESHOLD


def test_without_a_model_the_shared_change_is_reported_fleet_wide_not_acted_on(
    tmp_path: Path,
) -> None:
    now = time.time()
    record_fleet(tmp_path, now, nodes=("node1", "node2", "node3"))
    # The build ended a while ago: judge the fleet right after it.
    judged = now - STEP_S * (ROWS - BUILD_ROW - 14)
    predictions = current_risk(tmp_path, judged)
    assert not any(p.at_risk for p in predictions)
    for prediction in predictions:
        entry = prediction.to_dict()
        assert entry["fleet_wide_series"]
        assert 'path="/"' in entry["fleet_wide_series"][0]["series"]
        assert not any('path="/"' in a["series"] for a in entry["anomaly_series"])
