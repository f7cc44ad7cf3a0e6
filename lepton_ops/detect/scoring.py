"""The windowed scoring rules of streaming anomaly benchmarks, from their public description.

A labelled series is its timestamps and its *anomaly windows* (``[start, end]``, both
included). A detector gives every row a score; a row whose score is at or above the
threshold is a *detection*. Given a profile's costs ``A_TP``, ``A_FP``, ``A_FN``:

- **Probation**: the first 15 % of each series' rows (``floor(0.15 * rows)``) are not
  scored: a detection there counts for nothing, and a window that ends there is left out.
- **A window's earliest detection** earns ``A_TP * sigma(p)``, where ``p`` is its position
  in the window, ``-(right - i + 1) / width`` (-1 at the window's first row, close to 0 at
  its last), and ``sigma(p) = 2 / (1 + exp(5 p)) - 1`` (the *scaled sigmoid*: 0.987 at the
  start, 0 at the end). Later detections in the same window earn nothing.
- **A window with no detection** costs ``A_FN``.
- **A detection outside every window** costs ``A_FP`` times ``-sigma(q)``: before the first
  window ``q`` is taken as far (cost ``A_FP``); after a window ``q = (i - right) /
  (width - 1)`` is the distance past the previous window in its widths, so a detection
  just after a window costs little and one a window-width or more later costs nearly
  ``A_FP`` (exactly ``A_FP`` beyond 3 widths). This is how the reference scorer weighs
  them: *every* detection row counts, so a detector must not keep firing row after row.
- **One threshold for the whole corpus**, per profile: the one that maximises the sum of
  the files' raw scores (every distinct score is tried; of equal totals, the highest).
- **Normalised**: ``100 * (raw - null) / (perfect - null)``, where ``null = -A_FN *
  windows`` (a detector that never fires) and ``perfect = A_TP * sigma(-1) * windows``
  (every window detected at its first row, nothing else). Never firing scores 0, a
  perfect detector 100; a noisy one can go below 0.

The reference scorer also caps the probation at 750 rows; here it is 15 % whatever the
length (the series of this project's corpora are short enough for that not to matter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Share of each series' leading rows that is not scored.
PROBATION = 0.15


@dataclass(frozen=True)
class Profile:
    """A cost profile: reward of a true positive, cost of a false positive and of a miss."""

    name: str
    tp: float
    fp: float
    fn: float


STANDARD = Profile("standard", 1.0, 0.11, 1.0)
LOW_FP = Profile("reward_low_fp", 1.0, 0.22, 1.0)
LOW_FN = Profile("reward_low_fn", 1.0, 0.11, 2.0)
PROFILES: tuple[Profile, ...] = (STANDARD, LOW_FP, LOW_FN)


def scaled_sigmoid(position: float) -> float:
    """The reward of a detection at ``position`` (see the module's doc)."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


#: The reward of a detection at a window's first row.
PERFECT_REWARD = scaled_sigmoid(-1.0)


@dataclass(frozen=True)
class LabelledRows:
    """One series' rows as the scorer sees them."""

    #: Window number of each row (-1: outside every window).
    window: IntArray
    #: ``sigma`` of each row: the reward inside a window, minus the cost share outside.
    weight: FloatArray
    #: Rows past the probation.
    scored: npt.NDArray[np.bool_]
    #: Windows that count (with a row past the probation).
    windows: int

    @property
    def rows(self) -> int:
        return int(self.window.size)


def label_rows(
    timestamps: Sequence[float] | FloatArray,
    windows: Sequence[tuple[float, float]],
    probation: float = PROBATION,
) -> LabelledRows:
    """Each row's window, weight and whether it is scored (``timestamps`` in time order)."""
    t = np.asarray(timestamps, dtype=np.float64)
    n = t.size
    window = np.full(n, -1, dtype=np.intp)
    weight = np.full(n, -1.0)
    scored = np.arange(n) >= math.floor(probation * n)
    spans: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        left = int(np.searchsorted(t, start, side="left"))
        right = int(np.searchsorted(t, end, side="right")) - 1
        if right < left or not scored[right]:
            continue
        if spans and left <= spans[-1][1]:  # overlapping windows: one window
            left = spans[-1][0]
            right = max(right, spans[-1][1])
            spans.pop()
        spans.append((left, right))
    previous: tuple[int, int] | None = None
    cursor = 0
    for number, (left, right) in enumerate(spans):
        _weigh_outside(weight, cursor, left, previous)
        width = right - left + 1
        index = np.arange(left, right + 1)
        weight[left : right + 1] = _sigmoid(-(right - index + 1) / width)
        window[left : right + 1] = number
        previous = (left, right)
        cursor = right + 1
    _weigh_outside(weight, cursor, n, previous)
    return LabelledRows(window, weight, scored, len(spans))


def _weigh_outside(
    weight: FloatArray, begin: int, end: int, previous: tuple[int, int] | None
) -> None:
    if previous is None or begin >= end:
        return  # before the first window: -1 (already)
    left, right = previous
    past = (np.arange(begin, end) - right) / max(right - left, 1)
    weight[begin:end] = np.where(past > 3.0, -1.0, _sigmoid(past))


def _sigmoid(position: FloatArray) -> FloatArray:
    exponent = np.minimum(5.0 * position, 50.0)  # beyond: -1 (and no overflow)
    return np.asarray(2.0 / (1.0 + np.exp(exponent)) - 1.0, dtype=np.float64)


@dataclass(frozen=True)
class FileScore:
    """One series at a threshold."""

    raw: float
    #: windows detected, missed, and detections outside every window
    detected: int
    missed: int
    false_positives: int
    #: scored rows at or above the threshold
    alarms: int
    rows: int


def score_file(
    labelled: LabelledRows, scores: FloatArray, threshold: float, profile: Profile
) -> FileScore:
    """The raw score of one series' ``scores`` at ``threshold``."""
    fired = labelled.scored & (np.nan_to_num(scores, nan=-np.inf) >= threshold)
    outside = fired & (labelled.window < 0)
    raw = profile.fp * float(labelled.weight[outside].sum())
    detected = 0
    for number in range(labelled.windows):
        hits = np.flatnonzero(fired & (labelled.window == number))
        if hits.size:
            detected += 1
            raw += profile.tp * float(labelled.weight[hits[0]])
        else:
            raw -= profile.fn
    return FileScore(
        raw=raw,
        detected=detected,
        missed=labelled.windows - detected,
        false_positives=int(outside.sum()),
        alarms=int(fired.sum()),
        rows=labelled.rows,
    )


@dataclass(frozen=True)
class CorpusScore:
    profile: Profile
    threshold: float
    raw: float
    #: 0 never firing, 100 perfect; None for a corpus without a window
    normalized: float | None
    files: tuple[FileScore, ...]


def null_and_perfect(windows: int, profile: Profile) -> tuple[float, float]:
    return -profile.fn * windows, profile.tp * PERFECT_REWARD * windows


def normalize(raw: float, windows: int, profile: Profile) -> float | None:
    null, perfect = null_and_perfect(windows, profile)
    if perfect <= null:
        return None
    return 100.0 * (raw - null) / (perfect - null)


def best_threshold(
    labelled: Sequence[LabelledRows], scores: Sequence[FloatArray], profile: Profile
) -> tuple[float, float]:
    """The corpus threshold that maximises the summed raw score, and that sum.

    Exact: as the threshold falls, the total changes only at a row's score - by the
    row's false-positive cost, or by how much it raises its window's best reward - so
    the totals at every distinct score are one cumulative sum.
    """
    event_scores: list[FloatArray] = []
    event_deltas: list[FloatArray] = []
    windows = 0
    for rows, values in zip(labelled, scores, strict=True):
        if values.size != rows.rows:
            raise ValueError(f"{values.size} scores for {rows.rows} rows")
        windows += rows.windows
        usable = rows.scored & np.isfinite(values)
        outside = usable & (rows.window < 0)
        event_scores.append(values[outside])
        event_deltas.append(profile.fp * rows.weight[outside])
        inside = np.flatnonzero(usable & (rows.window >= 0))
        if not inside.size:
            continue
        # Per window, rows by falling score: the running best reward, and its increases.
        order = inside[np.lexsort((-values[inside], rows.window[inside]))]
        number = rows.window[order]
        reward = profile.tp * rows.weight[order]
        first = np.ones(order.size, dtype=bool)
        first[1:] = number[1:] != number[:-1]
        best = _segment_running_max(reward, first)
        before = np.where(first, -profile.fn, np.roll(best, 1))
        delta = best - before
        keep = delta > 0
        event_scores.append(values[order][keep])
        event_deltas.append(delta[keep])
    base = -profile.fn * windows
    all_scores = np.concatenate(event_scores) if event_scores else np.empty(0)
    all_deltas = np.concatenate(event_deltas) if event_deltas else np.empty(0)
    if not all_scores.size:
        return math.inf, base
    order = np.argsort(-all_scores, kind="stable")
    ordered = all_scores[order]
    totals = base + np.cumsum(all_deltas[order])
    last_of_tie = np.ones(ordered.size, dtype=bool)
    last_of_tie[:-1] = ordered[1:] != ordered[:-1]
    candidates = np.flatnonzero(last_of_tie)
    best_index = candidates[int(np.argmax(totals[candidates]))]
    if totals[best_index] <= base:
        return math.inf, base
    return float(ordered[best_index]), float(totals[best_index])


def _segment_running_max(values: FloatArray, starts: npt.NDArray[np.bool_]) -> FloatArray:
    """The running maximum of ``values``, restarted wherever ``starts`` is set."""
    out = values.copy()
    for i in range(1, out.size):
        if not starts[i] and out[i - 1] > out[i]:
            out[i] = out[i - 1]
    return out


def score_corpus(
    labelled: Sequence[LabelledRows],
    scores: Sequence[FloatArray],
    profile: Profile,
    threshold: float | None = None,
) -> CorpusScore:
    """The corpus at its best threshold for ``profile`` (or at ``threshold``)."""
    if threshold is None:
        threshold, _ = best_threshold(labelled, scores, profile)
    files = tuple(
        score_file(rows, values, threshold, profile)
        for rows, values in zip(labelled, scores, strict=True)
    )
    raw = sum(f.raw for f in files)
    windows = sum(rows.windows for rows in labelled)
    return CorpusScore(profile, threshold, raw, normalize(raw, windows, profile), files)
