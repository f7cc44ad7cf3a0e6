"""Labels: which samples come before a failure, and which must not be used at all.

**Failures** (:class:`FailureEvent`), per node:

1. An injected fault (``faults`` table) with ``failed_at`` set: a failure at ``failed_at``,
   of the fault's kind (``memleak``, ``diskfill``...), injected at ``started_at``.
2. ``health_check_failed`` and ``unreachable`` incidents that no fault explains: what a
   fleet records in production, so the model also learns from real history. An incident
   is explained by a fault of its node if it happened from the fault's start to the end
   of its failed state (or, for a fault that never failed, its end + ``grace_s``).
   Unexplained incidents until the node is next seen up are one failure, at the first
   incident's time, of the incident's kind.

**Failed state**: from ``failed_at`` until the node is *up* again (it answered and every
service it reports passed its health check) - for a fault, the first up sample at or
after ``max(failed_at, ended_at + grace_s)`` (a full disk can leave the health checks
green until the fault is undone); for incidents, the first up sample after the last one.
Not seen up again: until the end of the data.

**A sample at time t** is *positive* if its node fails in ``(t, t + horizon]``, else
negative; and it is

- **excluded from training and from false-alarm counting** (``countable`` false) when it
  is in a failed state (an alarm then is detection, not prediction); during a fault that
  neither failed nor ran its course (stopped, remediated, error, or still running: it is
  not known whether it would have failed), until its end + ``grace_s``; or in the last
  ``horizon`` of the data (whether a failure follows is not known yet);
- **excluded from training only** (``trainable`` false, still counted in evaluation) when
  it is positive only because of faults not injected yet (in ``[failed_at - horizon,
  started_at)``): nothing in the telemetry can announce a fault that was not there, so
  a positive label would only teach noise. An alarm there still counts as a true alarm
  (a failure follows within the horizon).

Faults that ran their course without a failure (``survived``, e.g. most ``cpuhog``) are
plain negatives: an alarm during them is a false alarm.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lepton_ops.predict.rolling import BoolArray, FloatArray
from lepton_ops.telemetry.facts import IncidentKind
from lepton_ops.telemetry.records import FaultOutcome, FaultRecord, IncidentRecord

#: After a fault ends, its node gets this long to settle before it counts as healthy.
GRACE_S = 15.0
#: Incident kinds that are failures (a node sending malformed facts is not one).
FAILURE_INCIDENTS = frozenset({IncidentKind.HEALTH_CHECK_FAILED, IncidentKind.UNREACHABLE})
#: Outcomes of a fault that did not fail but whose ending says nothing about whether it
#: would have: its samples are censored.
_CENSORING = frozenset({FaultOutcome.STOPPED, FaultOutcome.REMEDIATED, FaultOutcome.ERROR})


@dataclass(frozen=True)
class FailureEvent:
    node: str
    #: the fault's kind, or the incident's kind for a failure no fault explains
    kind: str
    failed_at: float
    #: end of the failed state (``inf``: not seen recovered)
    recovered_at: float
    #: when the fault was injected; None for a failure from incidents
    started_at: float | None = None
    fault_id: int | None = None

    def detection_start(self, horizon_s: float, window_s: float) -> float:
        """From when an alarm counts as announcing this failure (see evaluate.py)."""
        if self.started_at is not None:
            return self.started_at
        return self.failed_at - horizon_s - window_s

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "kind": self.kind,
            "failed_at": self.failed_at,
            "recovered_at": None if math.isinf(self.recovered_at) else self.recovered_at,
            "started_at": self.started_at,
            "fault_id": self.fault_id,
        }


@dataclass(frozen=True)
class FaultSpan:
    """When an injected fault was active on its node (end + grace; ``inf`` while active)."""

    node: str
    kind: str
    start: float
    end: float
    #: its samples are censored (see the module's doc)
    censored: bool


@dataclass(frozen=True)
class SampleLabels:
    y: npt.NDArray[np.int8]
    trainable: BoolArray
    countable: BoolArray
    #: during an injected fault (its span): not a healthy baseline
    in_fault: BoolArray


#: A node's sample times and whether it was up at each.
UpState = tuple[FloatArray, BoolArray]


def fault_spans(faults: Iterable[FaultRecord], grace_s: float = GRACE_S) -> list[FaultSpan]:
    spans = []
    for fault in faults:
        end = math.inf if fault.ended_at is None else fault.ended_at + grace_s
        unfinished = fault.ended_at is None or fault.outcome in _CENSORING
        censored = fault.failed_at is None and unfinished
        spans.append(FaultSpan(fault.node, fault.fault, fault.started_at, end, censored))
    return spans


def failure_events(
    faults: Iterable[FaultRecord],
    incidents: Iterable[IncidentRecord],
    up: Mapping[str, UpState],
    grace_s: float = GRACE_S,
) -> list[FailureEvent]:
    """Every failure (see the module's doc), ordered by ``failed_at``."""
    nothing: UpState = (np.zeros(0), np.zeros(0, dtype=bool))
    events: list[FailureEvent] = []
    #: node -> spans in which incidents are explained by a fault
    explained: dict[str, list[tuple[float, float]]] = {}
    for fault in faults:
        ts, node_up = up.get(fault.node, nothing)
        end = math.inf if fault.ended_at is None else fault.ended_at + grace_s
        if fault.failed_at is not None:
            settle = max(fault.failed_at, end)
            recovered = _first_up(ts, node_up, settle, strictly_after=False)
            events.append(
                FailureEvent(
                    fault.node,
                    fault.fault,
                    fault.failed_at,
                    recovered,
                    started_at=fault.started_at,
                    fault_id=fault.id,
                )
            )
            end = max(end, recovered)
        explained.setdefault(fault.node, []).append((fault.started_at, end))

    open_groups: dict[str, FailureEvent] = {}
    for incident in sorted(incidents, key=lambda i: (i.ts, i.id)):
        if incident.kind not in FAILURE_INCIDENTS:
            continue
        spans = explained.get(incident.node, [])
        if any(start <= incident.ts <= end for start, end in spans):
            continue
        ts, node_up = up.get(incident.node, nothing)
        recovered = _first_up(ts, node_up, incident.ts, strictly_after=True)
        group = open_groups.get(incident.node)
        if group is not None and incident.ts < group.recovered_at:
            # the node was not seen up since: the same failure goes on
            open_groups[incident.node] = FailureEvent(
                group.node, group.kind, group.failed_at, max(recovered, group.recovered_at)
            )
            continue
        if group is not None:
            events.append(group)
        open_groups[incident.node] = FailureEvent(
            incident.node, incident.kind, incident.ts, recovered
        )
    events.extend(open_groups.values())
    return sorted(events, key=lambda e: (e.failed_at, e.node))


def label_samples(
    node: str,
    ts: FloatArray,
    events: Iterable[FailureEvent],
    spans: Iterable[FaultSpan],
    horizon_s: float,
    data_end: float,
) -> SampleLabels:
    """The labels of ``node``'s samples at times ``ts`` (see the module's doc)."""
    ts = np.asarray(ts, dtype=np.float64)
    positive = np.zeros(len(ts), dtype=bool)
    failed_state = np.zeros(len(ts), dtype=bool)
    #: positive because of a failure whose cause was already there
    announced = np.zeros(len(ts), dtype=bool)
    censored = np.zeros(len(ts), dtype=bool)
    in_fault = np.zeros(len(ts), dtype=bool)
    for event in events:
        if event.node != node:
            continue
        ahead = (ts >= event.failed_at - horizon_s) & (ts < event.failed_at)
        positive |= ahead
        failed_state |= (ts >= event.failed_at) & (ts < event.recovered_at)
        if event.started_at is None:
            announced |= ahead
        else:
            announced |= ahead & (ts >= event.started_at)
    for span in spans:
        if span.node != node:
            continue
        inside = (ts >= span.start) & (ts <= span.end)
        in_fault |= inside
        if span.censored:
            censored |= inside
    unknown_future = ts > data_end - horizon_s
    countable = ~failed_state & ~censored & ~unknown_future
    before_injection = positive & ~announced
    return SampleLabels(
        y=positive.astype(np.int8),
        trainable=countable & ~before_injection,
        countable=countable,
        in_fault=in_fault,
    )


def _first_up(ts: FloatArray, up: BoolArray, after: float, *, strictly_after: bool) -> float:
    """Time of the first up sample at (or strictly after) ``after``; ``inf`` if none."""
    if math.isinf(after):
        return math.inf
    start = int(np.searchsorted(ts, after, side="right" if strictly_after else "left"))
    found = np.flatnonzero(up[start:])
    return float(ts[start + found[0]]) if len(found) else math.inf
