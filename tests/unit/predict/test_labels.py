"""Labels: the positive horizon before a failure, the failed state left out, faults that
say nothing (stopped) censored, the seconds before an injection kept out of training, and
failures from incidents no fault explains."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from predict_support import T0, node_facts

from lepton_ops.predict.dataset import build_dataset
from lepton_ops.predict.labels import (
    FailureEvent,
    failure_events,
    fault_spans,
    label_samples,
)
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path
from lepton_ops.telemetry.records import FaultRecord, IncidentRecord

H = 60.0
TS = T0 + np.arange(0.0, 400.0, 5.0)


def fault(
    node: str = "node1",
    kind: str = "memleak",
    started: float = T0 + 100,
    failed: float | None = T0 + 200,
    ended: float | None = T0 + 201,
    outcome: str | None = "failed",
    fault_id: int = 1,
) -> FaultRecord:
    return FaultRecord(fault_id, node, kind, {}, None, started, failed, None, ended, outcome, "")


def incident(
    ts: float, node: str = "node1", kind: str = "health_check_failed", i: int = 1
) -> IncidentRecord:
    return IncidentRecord(i, node, kind, "lepton-worker", "failed", ts, None)


def up_all(ts: np.ndarray, down: list[tuple[float, float]] = ()) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[assignment]
    up = np.ones(len(ts), dtype=bool)
    for start, end in down:
        up[(ts >= start) & (ts < end)] = False
    return ts, up


def rows(ts: np.ndarray, mask: np.ndarray) -> list[float]:
    return (ts[mask] - T0).tolist()


def test_samples_in_the_horizon_before_a_failure_are_positive() -> None:
    faults = [fault()]
    events = failure_events(faults, [], {"node1": up_all(TS, [(T0 + 200, T0 + 210)])})
    [event] = events
    # failed until the first up sample at or after its end + grace: 201 + 15 -> 220
    assert (event.failed_at, event.recovered_at) == (T0 + 200, T0 + 220)
    labels = label_samples("node1", TS, events, fault_spans(faults), H, data_end=TS[-1])
    # positive: failed_at - 60 <= t < failed_at (the failure is in (t, t + 60])
    assert rows(TS, labels.y == 1) == [140.0 + 5 * k for k in range(12)]
    assert rows(TS, ~labels.countable & (TS < T0 + 300)) == [200.0, 205.0, 210.0, 215.0]
    assert labels.trainable[(TS >= T0 + 140) & (TS < T0 + 200)].all()
    # another node is not touched
    other = label_samples("node2", TS, events, fault_spans(faults), H, data_end=TS[-1])
    assert not other.y.any() and other.countable[TS[-1] - H >= TS].all()


def test_a_full_disk_with_green_health_checks_stays_failed_until_undone() -> None:
    faults = [fault(kind="diskfill", failed=T0 + 200, ended=T0 + 260)]
    events = failure_events(faults, [], {"node1": up_all(TS)})
    assert events[0].recovered_at == T0 + 275  # the first sample at or after 260 + grace 15
    labels = label_samples("node1", TS, events, fault_spans(faults), H, data_end=TS[-1])
    assert rows(TS, ~labels.countable & (TS < T0 + 300)) == [200.0 + 5 * k for k in range(15)]


def test_a_node_never_seen_up_again_is_failed_to_the_end() -> None:
    faults = [fault(kind="partition", failed=T0 + 200, ended=None, outcome=None)]
    events = failure_events(faults, [], {"node1": up_all(TS, [(T0 + 200, math.inf)])})
    assert events[0].recovered_at == math.inf
    labels = label_samples("node1", TS, events, fault_spans(faults), H, data_end=TS[-1])
    assert not labels.countable[TS >= T0 + 200].any()


def test_before_the_injection_is_kept_out_of_training_but_counted() -> None:
    # a kill: injected at 200, failed at 200.3 - nothing before 200 can announce it
    faults = [fault(kind="kill", started=T0 + 200, failed=T0 + 200.3, ended=T0 + 201)]
    events = failure_events(faults, [], {"node1": up_all(TS)})
    labels = label_samples("node1", TS, events, fault_spans(faults), H, data_end=TS[-1])
    ahead = (TS >= T0 + 140.3) & (TS < T0 + 200.3)
    assert labels.y[ahead].all()
    assert not labels.trainable[ahead & (TS < T0 + 200)].any()
    assert labels.trainable[TS == T0 + 200].all()
    assert labels.countable[ahead].all()


def test_a_sample_positive_for_an_injected_fault_stays_trainable() -> None:
    # a leak fails at 200; a hang injected at 230 fails at 232: the samples before 200
    # are positive for both, and the leak was already there
    faults = [
        fault(),
        fault(kind="hang", started=T0 + 230, failed=T0 + 232, ended=T0 + 250, fault_id=2),
    ]
    events = failure_events(faults, [], {"node1": up_all(TS)})
    labels = label_samples("node1", TS, events, fault_spans(faults), H, data_end=TS[-1])
    assert labels.trainable[(TS >= T0 + 172) & (TS < T0 + 200)].all()
    # after the leak's failed state, before the hang's injection: out of training
    assert not labels.trainable[(TS >= T0 + 220) & (TS < T0 + 230)].any()


def test_stopped_faults_are_censored_survived_ones_are_negative() -> None:
    faults = [
        fault(kind="memleak", failed=None, ended=T0 + 150, outcome="stopped"),
        fault(node="node2", kind="cpuhog", failed=None, ended=T0 + 150, outcome="survived"),
        fault(node="node3", kind="diskfill", failed=None, ended=None, outcome=None),
    ]
    spans = fault_spans(faults)
    assert [s.censored for s in spans] == [True, False, True]
    up = {n: up_all(TS) for n in ("node1", "node2", "node3")}
    assert failure_events(faults, [], up) == []
    stopped = label_samples("node1", TS, [], spans, H, data_end=TS[-1])
    assert rows(TS, ~stopped.countable & (TS[-1] - H > TS)) == [100.0 + 5 * k for k in range(14)]
    survived = label_samples("node2", TS, [], spans, H, data_end=TS[-1])
    assert survived.countable[TS[-1] - H >= TS].all() and not survived.y.any()
    assert survived.in_fault[(TS >= T0 + 100) & (TS <= T0 + 165)].all()
    running = label_samples("node3", TS, [], spans, H, data_end=TS[-1])
    assert not running.countable[TS >= T0 + 100].any()


def test_the_last_horizon_of_the_data_is_not_labelled_yet() -> None:
    labels = label_samples("node1", TS, [], [], H, data_end=TS[-1])
    # the data ends at 395: from 335 on, a failure could still come within the horizon
    assert rows(TS, ~labels.countable) == [340.0 + 5 * k for k in range(12)]


def test_incidents_no_fault_explains_are_failures() -> None:
    faults = [fault()]  # node1: explained from 100 to its recovery
    incidents = [
        incident(T0 + 150),  # during node1's fault: explained
        incident(T0 + 300, node="node2"),  # node2 fails on its own...
        incident(T0 + 305, node="node2", kind="unreachable", i=2),  # ...and stays down
        incident(T0 + 360, node="node2", i=3),  # after it was up again: a new failure
        incident(T0 + 320, node="node3", kind="facts_invalid", i=4),  # not a failure
    ]
    up = {
        "node1": up_all(TS, [(T0 + 200, T0 + 210)]),
        "node2": up_all(TS, [(T0 + 300, T0 + 315), (T0 + 360, T0 + 365)]),
        "node3": up_all(TS),
    }
    events = failure_events(faults, incidents, up)
    assert [
        (e.node, e.kind, e.failed_at - T0, e.recovered_at - T0, e.started_at) for e in events
    ] == [
        ("node1", "memleak", 200.0, 220.0, T0 + 100),
        ("node2", "health_check_failed", 300.0, 315.0, None),
        ("node2", "health_check_failed", 360.0, 365.0, None),
    ]
    assert events[1].detection_start(60.0, 120.0) == T0 + 300 - 180


def test_a_dataset_from_the_store_has_its_labels(tmp_path: Path) -> None:
    def facts(ts: float, healthy: bool = True) -> dict[str, Any]:
        return node_facts("node2", ts, healthy={"lepton-worker": healthy})

    with HistoryStore(history_path(tmp_path)) as store:
        for step in range(60):
            ts = T0 + 5.0 * step
            store.record_collection(
                [NodeOutcome.from_facts("node2", facts(ts, healthy=not 40 <= step < 42))],
                "ansible",
                started_at=ts,
                finished_at=ts + 1,
            )
        fault_id = store.start_fault("node2", "hang", {"duration_s": 10}, started_at=T0 + 198)
        store.mark_fault_failed(fault_id, T0 + 200, "health check failing")
        store.end_fault(fault_id, "failed", ended_at=T0 + 208)
        data = build_dataset(store, since=T0, until=None, horizon_s=H, window_s=120.0)
    assert [(e.kind, e.failed_at) for e in data.events] == [("hang", T0 + 200)]
    assert len(data) == 60 and data.nodes == ("node2",)
    # the failed state: 200 until up again at or after 208 + 15
    assert rows(data.ts, ~data.countable & (data.ts < T0 + 230)) == [
        200.0,
        205.0,
        210.0,
        215.0,
        220.0,
    ]
    assert data.summary()["failures_by_kind"] == {"hang": 1}


@pytest.mark.parametrize("failed", [T0 + 200.0, T0 + 202.5])
def test_positive_window_edges(failed: float) -> None:
    event = FailureEvent("node1", "memleak", failed, failed + 10, started_at=T0)
    labels = label_samples("node1", TS, [event], [], H, data_end=TS[-1])
    first, last = TS[labels.y == 1][[0, -1]]
    assert first >= failed - H and first - 5 < failed - H
    assert last < failed <= last + 5
