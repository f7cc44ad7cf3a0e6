"""How good an alarm series is, counted the way an SRE would check it by hand.

Inputs: every evaluated sample (node, time, whether it is an alarm, whether it is
*countable* - see :mod:`~lepton_ops.predict.labels`), the failures to announce
(:class:`Target`) and the faults that were active (for naming false alarms).

- **Alarm episode**: a run of consecutive countable samples of a node that are alarms;
  a sample that is not countable (a failed state...) ends the run. One episode is one
  page to a human, however many samples it lasts.
- An episode is **true** if it announces a failure of its node: it starts before the
  failure and reaches into ``[min(detection start, failed_at - horizon), failed_at)`` -
  some alarm of it has the failure within the horizon, or it lies in the failure's
  fault from its injection on. Otherwise it is a **false alarm**.
- A failure is **detected** if the first alarm sample of its node in
  ``[detection start, failed_at)`` comes at least ``min_lead_s`` before ``failed_at``:
  an alarm too late to act on is a miss. Its **lead time** is ``failed_at`` minus that
  first alarm. The detection start is the fault's injection for a chaos failure (no
  earlier alarm can be about it), else ``failed_at - horizon - window``.
- **precision** = true episodes / episodes; **recall** = detected failures / failures;
  **F1** their harmonic mean (0 when nothing is detected, None without failures).
- **False alarms per node-day** = false episodes / observed node time, where a node's
  observed time is the sum, over its countable samples, of the time to its next sample
  (at most ``max_gap_s``: a telemetry gap is not observation).
- **By kind**: failures, detections and true episodes by the failure's kind; a false
  episode goes to the kind of the fault active on its node then (e.g. ``cpuhog``), or to
  no kind. Precision of a kind = its true episodes / (its true + its false episodes).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_ops.predict.labels import FailureEvent, FaultSpan
from lepton_ops.predict.rolling import BoolArray, FloatArray

DAY_S = 86_400.0
#: A gap between two samples longer than this is not observed time.
MAX_GAP_S = 30.0


@dataclass(frozen=True)
class Target:
    """A failure an alarm should announce."""

    node: str
    kind: str
    failed_at: float
    detection_start: float


def targets(events: Iterable[FailureEvent], horizon_s: float, window_s: float) -> list[Target]:
    return [
        Target(e.node, e.kind, e.failed_at, e.detection_start(horizon_s, window_s)) for e in events
    ]


@dataclass(frozen=True)
class Episode:
    node: str
    start: float
    end: float
    true: bool
    #: the kind of the failure it announced, or of the fault it fell in (false alarm)
    kind: str | None


@dataclass(frozen=True)
class KindScore:
    incidents: int
    detected: int
    true_alarms: int
    false_alarms: int
    precision: float | None
    recall: float | None
    f1: float | None
    median_lead_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "detected": self.detected,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "f1": _round(self.f1),
            "median_lead_s": _round(self.median_lead_s, 1),
            "true_alarms": self.true_alarms,
            "false_alarms": self.false_alarms,
        }


@dataclass(frozen=True)
class Score:
    incidents: int
    detected: int
    alarm_episodes: int
    false_alarms: int
    precision: float | None
    recall: float | None
    f1: float | None
    node_days: float
    false_alarms_per_node_day: float | None
    median_lead_s: float | None
    by_kind: dict[str, KindScore] = field(default_factory=dict)
    episodes: tuple[Episode, ...] = ()
    #: per target (same order): lead time in seconds if detected, else None
    leads: tuple[float | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "f1": _round(self.f1),
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "false_alarms_per_node_day": _round(self.false_alarms_per_node_day, 2),
            "median_lead_s": _round(self.median_lead_s, 1),
            "incidents": self.incidents,
            "detected": self.detected,
            "alarm_episodes": self.alarm_episodes,
            "false_alarms": self.false_alarms,
            "node_days": _round(self.node_days, 6),
            "by_fault": {kind: score.to_dict() for kind, score in sorted(self.by_kind.items())},
        }


def score_alarms(
    nodes: Sequence[str] | npt.NDArray[np.str_],
    ts: FloatArray,
    alarm: BoolArray,
    countable: BoolArray,
    failures: Sequence[Target],
    spans: Iterable[FaultSpan] = (),
    *,
    horizon_s: float,
    min_lead_s: float,
    max_gap_s: float = MAX_GAP_S,
) -> Score:
    """Score an alarm series (see the module's doc); rows may come in any order."""
    names = np.asarray(nodes, dtype=np.str_)
    ts = np.asarray(ts, dtype=np.float64)
    order = np.lexsort((ts, names))
    names, ts = names[order], ts[order]
    alarm = np.asarray(alarm, dtype=bool)[order]
    countable = np.asarray(countable, dtype=bool)[order]
    spans = list(spans)
    episodes: list[Episode] = []
    observed_s = 0.0
    for node in np.unique(names):
        rows = names == node
        node_ts, node_alarm, node_countable = ts[rows], alarm[rows], countable[rows]
        gaps = np.minimum(np.diff(node_ts), max_gap_s)
        observed_s += float(gaps[node_countable[:-1]].sum())
        node_failures = [f for f in failures if f.node == node]
        node_spans = [s for s in spans if s.node == node]
        for start, end in _runs(node_ts, node_alarm & node_countable):
            episodes.append(_episode(str(node), start, end, node_failures, node_spans, horizon_s))
    leads: list[float | None] = []
    for failure in failures:
        rows = (
            (names == failure.node)
            & alarm
            & countable
            & (ts >= failure.detection_start)
            & (ts < failure.failed_at)
        )
        first = ts[rows].min() if rows.any() else None
        lead = None if first is None else failure.failed_at - float(first)
        leads.append(lead if lead is not None and lead >= min_lead_s else None)
    node_days = observed_s / DAY_S
    overall = _kind_score(len(failures), leads, episodes)
    kinds = sorted({f.kind for f in failures} | {e.kind for e in episodes if e.kind is not None})
    by_kind = {
        kind: _kind_score(
            sum(1 for f in failures if f.kind == kind),
            [lead for f, lead in zip(failures, leads, strict=True) if f.kind == kind],
            [e for e in episodes if e.kind == kind],
        )
        for kind in kinds
    }
    return Score(
        incidents=overall.incidents,
        detected=overall.detected,
        alarm_episodes=len(episodes),
        false_alarms=overall.false_alarms,
        precision=overall.precision,
        recall=overall.recall,
        f1=overall.f1,
        node_days=node_days,
        false_alarms_per_node_day=overall.false_alarms / node_days if node_days > 0 else None,
        median_lead_s=overall.median_lead_s,
        by_kind=by_kind,
        episodes=tuple(episodes),
        leads=tuple(leads),
    )


def _runs(ts: FloatArray, flags: BoolArray) -> list[tuple[float, float]]:
    """``(first time, last time)`` of each run of consecutive true flags."""
    if not flags.any():
        return []
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    return [(float(ts[a]), float(ts[b])) for a, b in zip(starts, stops, strict=True)]


def _episode(
    node: str,
    start: float,
    end: float,
    failures: list[Target],
    spans: list[FaultSpan],
    horizon_s: float,
) -> Episode:
    announced = [
        f
        for f in failures
        if start < f.failed_at and end >= min(f.detection_start, f.failed_at - horizon_s)
    ]
    if announced:
        return Episode(node, start, end, True, min(announced, key=lambda f: f.failed_at).kind)
    during = [s for s in spans if s.start <= end and start <= s.end]
    kind = min(during, key=lambda s: s.start).kind if during else None
    return Episode(node, start, end, False, kind)


def _kind_score(incidents: int, leads: list[float | None], episodes: list[Episode]) -> KindScore:
    detected = [lead for lead in leads if lead is not None]
    true_alarms = sum(1 for e in episodes if e.true)
    false_alarms = len(episodes) - true_alarms
    precision = true_alarms / len(episodes) if episodes else None
    recall = len(detected) / incidents if incidents else None
    return KindScore(
        incidents=incidents,
        detected=len(detected),
        true_alarms=true_alarms,
        false_alarms=false_alarms,
        precision=precision,
        recall=recall,
        f1=f1_score(precision, recall),
        median_lead_s=statistics.median(detected) if detected else None,
    )


def f1_score(precision: float | None, recall: float | None) -> float | None:
    """Harmonic mean; 0 with failures but no (true) alarm; None without failures."""
    if recall is None:
        return None
    if precision is None or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
