"""A node is "failing now" when it is down in two collections in a row: one health check that
times out on a loaded node is not a failure to act on. Both paths judge it the same way:
with a model (``predict_fleet``) and without one (``detect_fleet``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from predict_support import NODES, node_facts

from lepton_ops.predict import current_risk
from lepton_ops.predict.model_store import install_starter
from lepton_ops.predict.predictor import confirmed_down
from lepton_ops.remediate.run import node_states
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

WORKER = "lepton-worker"


def record(state_dir: Path, now: float, down_in_last: int, *, rows: int = 30) -> None:
    """``rows`` collections 5 s apart; node3's worker fails its health check in the last
    ``down_in_last`` of them."""
    with HistoryStore(history_path(state_dir)) as store:
        for i in range(rows):
            at = now - 5.0 * (rows - 1 - i)
            outcomes = []
            for node in NODES:
                down = node == "node3" and i >= rows - down_in_last
                facts = node_facts(node, at, healthy={WORKER: not down})
                outcomes.append(NodeOutcome.from_facts(node, facts))
            store.record_collection(outcomes, "ansible", started_at=at, finished_at=at + 0.5)


@pytest.mark.parametrize(
    ("up", "failing"),
    [
        ([True, True], False),
        ([True, False], False),
        ([False, True], False),
        ([False, False], True),
        ([True, False, False], True),
        ([False], False),
        ([], False),
    ],
)
def test_confirmed_down_needs_the_last_two_collections_down(up: list[bool], failing: bool) -> None:
    assert confirmed_down(up) is failing


@pytest.mark.parametrize("with_model", [False, True], ids=["detector", "starter-model"])
@pytest.mark.parametrize(("down_in_last", "failing"), [(0, False), (1, False), (2, True)])
def test_one_failed_check_is_not_failing_now_two_in_a_row_are(
    tmp_path: Path, with_model: bool, down_in_last: int, failing: bool
) -> None:
    now = time.time()
    record(tmp_path, now, down_in_last)
    if with_model:
        install_starter(tmp_path)
    predictions = {p.node: p for p in current_risk(tmp_path, now + 1)}
    assert predictions["node3"].failing_now is failing
    assert not any(p.failing_now for node, p in predictions.items() if node != "node3")


def test_remediation_sees_the_same_failing_nodes(tmp_path: Path) -> None:
    now = time.time()
    record(tmp_path, now, 2)
    states, evidence, _ = node_states(tmp_path)
    assert [s.node for s in states if s.failing] == ["node3"]
    assert evidence["node3"]["failing_now"] is True
