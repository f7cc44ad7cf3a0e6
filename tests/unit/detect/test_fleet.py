"""The streaming detector on the fleet's store: a node whose worker's memory leaks is at
risk with that series named, the quiet nodes are not; a memory step far from the budget is
new but no risk; and without a trained model, ``current_risk`` (remediation, the module,
the EDA source) is the detector's verdict."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from predict_support import BASE_RSS, MIB, NODES, node_facts

from lepton_ops.detect.fleet import FLEET_THRESHOLD, heading_to_limit, node_alarms
from lepton_ops.predict import current_risk
from lepton_ops.remediate.run import node_states
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

WORKER = "lepton-worker"


def record_quiet_then_jump(
    state_dir: Path, now: float, rows: int = 400, *, step_mib: float = 0.0
) -> None:
    """``rows`` quiet collections 5 s apart; in the last 5, node3's worker leaks 20 MiB a
    collection (4 MiB/s into its 512 MiB budget) - or, with ``step_mib``, its memory steps
    up by that much 5 collections before the end and stays there."""
    rng = np.random.default_rng(0)
    with HistoryStore(history_path(state_dir)) as store:
        for i in range(rows):
            at = now - 5.0 * (rows - i)
            outcomes = []
            for node in NODES:
                rss = {WORKER: BASE_RSS[WORKER] + rng.normal(0, 0.6 * MIB)}
                if node == "node3" and i >= rows - 5:
                    grown = step_mib if step_mib else 20.0 * (i - rows + 6)
                    rss[WORKER] += grown * MIB
                facts = node_facts(
                    node, at, rss=rss, cpu=float(18 + rng.normal(0, 3)),
                    service_latency_ms=float(abs(4 + rng.normal(0, 1))),
                )  # fmt: skip
                outcomes.append(NodeOutcome.from_facts(node, facts))
            store.record_collection(outcomes, "ansible", started_at=at, finished_at=at + 0.5)


def test_the_node_whose_memory_leaks_is_named_with_its_series(tmp_path: Path) -> None:
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


def test_a_memory_step_far_from_the_budget_is_new_but_no_risk(tmp_path: Path) -> None:
    now = time.time()
    record_quiet_then_jump(tmp_path, now, step_mib=15.0)  # 90 -> 105 MiB of 512, then flat
    with HistoryStore(history_path(tmp_path)) as store:
        alarms = node_alarms(store, now)
    stepped = alarms["node3"]
    assert stepped.score < FLEET_THRESHOLD and not stepped.series
    assert stepped.far_from_limit and stepped.far_from_limit[0].score >= FLEET_THRESHOLD
    assert stepped.far_from_limit[0].series.startswith("lepton_service_")
    assert not any(p.at_risk for p in current_risk(tmp_path, now))


def test_a_memory_step_to_near_the_budget_is_a_risk(tmp_path: Path) -> None:
    now = time.time()
    record_quiet_then_jump(tmp_path, now, step_mib=390.0)  # 480 MiB of 512: 94 %
    with HistoryStore(history_path(tmp_path)) as store:
        alarms = node_alarms(store, now)
    assert alarms["node3"].score >= FLEET_THRESHOLD and not alarms["node3"].far_from_limit


@pytest.mark.parametrize(
    ("used", "running_out"),
    [
        ([20.0] * 10, False),  # flat
        ([20.0] * 9 + [23.0], False),  # one step: the median rise is none
        ([20.0 + 0.5 * i for i in range(10)], True),  # 0.1 %/s: full in ~13 min
        ([20.0 + 0.05 * i for i in range(10)], False),  # 0.01 %/s: full in ~2 h
        ([92.0] * 10, True),  # nearly full
        ([50.0 - i for i in range(10)], False),  # shrinking
        ([20.0], False),  # one point: no pace
        ([], True),  # nothing known: not gated
    ],
)
def test_heading_to_limit(used: list[float], running_out: bool) -> None:
    stamps = np.arange(len(used), dtype=np.float64) * 5.0
    now = float(stamps[-1]) if used else 0.0
    assert heading_to_limit(stamps, np.array(used, dtype=np.float64), now) is running_out
