"""The streaming detector on the fleet's store: a node whose worker's memory jumps is at
risk with that series named, the quiet nodes are not; and without a trained model,
``current_risk`` (remediation, the module, the EDA source) is the detector's verdict."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from predict_support import BASE_RSS, MIB, NODES, node_facts

from lepton_ops.detect.fleet import FLEET_THRESHOLD, node_alarms
from lepton_ops.predict import current_risk
from lepton_ops.remediate.run import node_states
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

WORKER = "lepton-worker"


def record_quiet_then_jump(state_dir: Path, now: float, rows: int = 400) -> None:
    rng = np.random.default_rng(0)
    with HistoryStore(history_path(state_dir)) as store:
        for i in range(rows):
            at = now - 5.0 * (rows - i)
            outcomes = []
            for node in NODES:
                rss = {WORKER: BASE_RSS[WORKER] + rng.normal(0, 0.6 * MIB)}
                if node == "node3" and i >= rows - 3:
                    rss[WORKER] += 300 * MIB
                facts = node_facts(
                    node, at, rss=rss, cpu=float(18 + rng.normal(0, 3)),
                    service_latency_ms=float(abs(4 + rng.normal(0, 1))),
                )  # fmt: skip
                outcomes.append(NodeOutcome.from_facts(node, facts))
            store.record_collection(outcomes, "ansible", started_at=at, finished_at=at + 0.5)


def test_the_node_whose_memory_jumps_is_named_with_its_series(tmp_path: Path) -> None:
    now = time.time()
    record_quiet_then_jump(tmp_path, now)
    with HistoryStore(history_path(tmp_path)) as store:
        alarms = node_alarms(store, now)
    assert sorted(alarms) == list(NODES)
    jumped = alarms["node3"]
    assert jumped.score >= FLEET_THRESHOLD
    assert any(a.series.startswith("lepton_service_") for a in jumped.series)
    assert all(alarms[node].score < FLEET_THRESHOLD for node in NODES if node != "node3")


def test_without_a_model_the_detector_decides(tmp_path: Path) -> None:
    now = time.time()
    record_quiet_then_jump(tmp_path, now)
    predictions = {p.node: p for p in current_risk(tmp_path, now)}
    assert predictions["node3"].at_risk and predictions["node3"].probability is None
    assert predictions["node3"].anomaly_series
    assert not any(p.at_risk for node, p in predictions.items() if node != "node3")
    states, evidence, model = node_states(tmp_path)
    assert not model
    risky = [s for s in states if s.risk is not None]
    assert [s.node for s in risky] == ["node3"]
    assert risky[0].why and risky[0].why[0].startswith("lepton_service_")
    assert evidence["node3"]["anomaly_series"]
