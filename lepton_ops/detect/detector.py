"""The streaming anomaly detector: a calibrated surprise per row, one threshold for a fleet.

``detect(timestamps, values)`` scores a series; :class:`StreamingDetector` does the same
a row (or a batch) at a time with exactly the same result. Causal: a row's score depends
on that row and the rows before it, never on a later one nor on the series' length.

How a row is scored
-------------------
1. **Raw statistics** (one pass, a few numbers of state). Each says how unusual the row
   is in one way; none needs tuning per series:

   - ``jump``: the change from the previous value over the usual change (an
     exponentially weighted mean of absolute changes, Huber-clipped so one outlier does
     not blind it; a change after a gap of ``g`` usual steps is divided by ``sqrt(g)``);
   - ``level``: the distance from a slow exponentially weighted level, over its usual
     distance: spikes, dips, level shifts, drifts. The level follows a shift within a few
     dozen rows, so a shift that becomes the new normal stops being news (relearning);
   - ``shift``: the exponentially weighted mean of the signed ``level`` z-scores: a small
     persistent shift that no single row shows;
   - ``context``: the surprisal ``-log P(q_t | q_t-2, q_t-1)`` of the value's bin given
     the two before it, from counts of what followed each such pair (the *contextual*
     novelty of CAD OSE, and of HTM's sequence memory, as an order-2 Markov chain over 8
     bins of the series' recent range, plus two for "below" and "above" it), averaged
     over about 4 rows: a pattern that changed, with values still in range. The counts
     forget at the pace of the calibration window, so a surprisal means the same late
     in a long series as early on;
   - ``noisier`` and ``calmer``: the log ratio of the recent mean absolute change to the
     usual one, each way: noise that grows, and a series that freezes (a stuck sensor);
   - ``daily``: the row's distance to the level against the same distance at the same
     moment a day before (the median of 3 rows there), over its usual size: a value
     wrong for the time of day (a missing peak, a holiday). Comparing distances to the
     level, not values, makes a level shift old news a day later. Active once the usual
     step between rows puts a day within the last 2,048 rows.

2. **Calibration** (the *anomaly likelihood* of HTM, made robust): each statistic becomes
   a tail probability against its *own* last ``calibration_window`` values - the share of
   them at least as large, and above the top ``tail_share`` an exponential tail fitted to
   their excesses (shrunk towards a prior scale with few rows; its predictive form, heavier
   the fewer rows it rests on), so a value beyond anything seen still gets an ordered,
   finite probability, and never one rarer than ``(n + 1) ** -3`` from ``n`` rows of
   history: a statistic just past its warm-up needs more evidence to alarm. The
   calibration is refitted every ``block`` rows from the rows before the block. A
   statistic that is often large on a series (a spiky latency) thereby needs to be larger
   to surprise: the probability means the same on every series.

3. **Combination**: the Bonferroni minimum ``p = min(1, K * min_k p_k)`` over the ``K``
   statistics; the *surprise* is ``min(1, -log10(p) / decades)``: with ``decades = 8``,
   0.5 is a one-in-10,000 row, 1 one in 10^8 or rarer.

4. **One alarm per anomaly**: the score is the surprise of a row that is news, and 0 for
   the others. A row is news when its surprise is above every surprise of the previous
   ``rest_rows`` rows, and either at least one decade (``1 / decades``) above them (a
   sudden anomaly) or twice (in decades) the loudest alarm of those rows (one that grows
   slowly: a leak, a freezing sensor). An anomaly that lasts (a level shift, a stuck
   value) thereby alarms when it starts and again only if it gets much stranger, and a
   slow one a few times as it grows; streaming benchmarks count every row above the
   threshold outside a labelled window as a false positive, and so does an operator.

Warm-up and missing rows
------------------------
The first ``warmup`` valid rows score 0 (never 1): the statistics and their calibration
are still learning. Until the calibration rests on 259 rows (the refit at row 384 with the
defaults) no row can reach the fleet threshold 0.8 (see
:meth:`_Calibration.probabilities`). A row with a missing (NaN, infinite) value or
timestamp scores NaN and changes nothing. Timestamps serve only for the gap between rows
(``None``: one step each).

Speed: the raw statistics are one loop of scalar arithmetic; calibration, combination and
the alarm rule are vectorised per block (about 150,000 rows a second on one core).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

STATISTICS: tuple[str, ...] = (
    "jump", "level", "shift", "context", "noisier", "calmer", "daily",
)  # fmt: skip
_K = len(STATISTICS)
#: The prior scale of each statistic's exponential tail (z units, nats, log ratios).
_TAIL_PRIOR = np.array([1.0, 1.0, 0.5, 1.0, 0.5, 0.5, 1.0])
#: The seasonal period of the ``daily`` statistic, and the longest, in rows, it looks back.
_DAY_S = 86_400.0
_SEASON_ROWS = 2048
_TAIL_PRIOR_ROWS = 5.0
_TAIL_MIN_ROWS = 5
#: A history of ``n`` rows vouches for a tail probability of ``(n + 1) ** -3`` at the least.
_EVIDENCE_POWER = 3.0
#: Quantile bins of the context statistic (plus "below" and "above").
_BINS = 8
_SYMBOLS = _BINS + 2
#: The context statistic averages the surprisals of about this many rows: one odd
#: transition is noise, a run of them a pattern that changed.
_CONTEXT_ROWS = 4.0
#: Additive smoothing of the context counts.
_SMOOTHING = 0.5
#: Clip of the errors that update the scales, in scales: one outlier raises a scale by a
#: quarter at most, while changes as rare as 1 row in 32 still hold it up.
_CLIP = 32.0
#: Clip of the z-scores the ``shift`` statistic averages.
_Z_CLIP = 4.0
#: The value range the bins cover: these quantiles of the calibration window's values.
_RANGE_QUANTILES = (0.005, 0.995)
#: An anomaly whose surprise keeps growing alarms again each time it is this many times
#: (in decades) its loudest alarm of the last ``rest_rows`` rows.
_ESCALATION = 2.0
#: Leading statistics left out of the calibration (the scales are still settling).
_BURN_IN = 16


@dataclass(frozen=True)
class DetectorOptions:
    """The detector's few settings (rows are valid rows)."""

    #: Leading rows that score 0.
    warmup: int = 128
    #: Rows of each statistic's history its probabilities are computed against.
    calibration_window: int = 2048
    #: Rows between two refits of the calibration and of the context bins.
    block: int = 128
    #: Smoothing of the slow level and of the scales, in rows (1 / weight of a new row).
    level_rows: float = 32.0
    scale_rows: float = 128.0
    #: Smoothing of the ``shift`` and volatility statistics, in rows.
    short_rows: float = 8.0
    #: Share of the calibration history above the tail's threshold.
    tail_share: float = 0.05
    #: Tail probability 10 ** -decades is surprise 1.
    decades: float = 8.0
    #: After an alarm, rows during which only a much stranger row alarms again.
    rest_rows: int = 128

    def __post_init__(self) -> None:
        checks = [
            (self.warmup >= _BURN_IN + 16, f"warmup must be at least {_BURN_IN + 16}"),
            (self.calibration_window >= 64, "calibration_window must be at least 64"),
            (1 <= self.block <= self.calibration_window, "block must be in [1, window]"),
            (self.level_rows >= 1 and self.scale_rows >= 1, "smoothing must be >= 1 row"),
            (self.short_rows >= 1, "short_rows must be >= 1"),
            (0 < self.tail_share < 0.5, "tail_share must be in (0, 0.5)"),
            (self.decades > 0, "decades must be positive"),
            (self.rest_rows >= 0, "rest_rows must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def detect(
    timestamps: Sequence[float] | FloatArray | None,
    values: Sequence[float] | FloatArray,
    *,
    options: DetectorOptions | None = None,
) -> FloatArray:
    """The score in [0, 1] of each row of ``values`` (NaN where a value is missing)."""
    return StreamingDetector(options).update_many(timestamps, values)


def surprise(
    timestamps: Sequence[float] | FloatArray | None,
    values: Sequence[float] | FloatArray,
    *,
    options: DetectorOptions | None = None,
) -> FloatArray:
    """Each row's calibrated surprise, before the one-alarm-per-anomaly rule."""
    detector = StreamingDetector(options)
    detector.update_many(timestamps, values)
    return np.asarray(detector.surprises, dtype=np.float64)


@dataclass(frozen=True)
class _Calibration:
    """Each statistic's sorted history and exponential tail (see the module's doc)."""

    history: list[FloatArray]
    scale: FloatArray  # the tail's mean excess
    shape: FloatArray  # the evidence behind it, in rows (tail rows + the prior's)
    counts: FloatArray

    @classmethod
    def fit(cls, stats: FloatArray, share: float) -> _Calibration:
        history: list[FloatArray] = []
        scale = _TAIL_PRIOR.copy()
        shape = np.full(_K, _TAIL_PRIOR_ROWS)
        counts = np.zeros(_K)
        for k in range(_K):
            column = np.sort(stats[:, k][np.isfinite(stats[:, k])])
            history.append(column)
            n = column.size
            if n < 16:
                continue
            top = min(n, max(_TAIL_MIN_ROWS, math.ceil(share * n)))
            tail = column[n - top :]
            excess = float(tail.sum() - top * tail[0])
            scale[k] = (excess + _TAIL_PRIOR_ROWS * _TAIL_PRIOR[k]) / (top + _TAIL_PRIOR_ROWS)
            shape[k] = top + _TAIL_PRIOR_ROWS
            counts[k] = n
        return cls(history, scale, shape, counts)

    def probabilities(self, stats: FloatArray) -> FloatArray:
        """P(a past value >= this one) of each row and statistic (1: not calibrated).

        Inside the history the conformal share ``(at least as large + 1) / (n + 1)``:
        never rarer than the history shows, so what recurs (a nightly job, a sawtooth's
        reset) stays ordinary however large. Beyond the largest past value, that share
        times the tail's odds of going that much further: the predictive tail of an
        exponential whose rate is known from ``shape`` rows only, ``(1 + x / (shape *
        scale)) ** -shape`` (Lomax). With a long history it is the exponential tail; with a
        short one (a statistic just past its warm-up) it is much heavier, so a row needs
        far more evidence to look one in a million: a few dozen rows cannot vouch for that.
        And never rarer than ``(n + 1) ** -3``: how far beyond its history an
        extrapolation is trusted grows with that history. The whole window (2,048 rows)
        vouches for 1 in 10^10, beyond any alarm (surprise 1); the 112 rows calibrated at
        the end of the warm-up for 1 in 1.4 million only, and the 240 of the next refit
        for 1 in 14 million: surprises of 0.66 and 0.79 at most after the Bonferroni
        factor, short of the fleet threshold (0.8), which takes 259 rows - the refit at
        row 384, on 368 (a surprise of 0.86 at most; 0.91 at row 512). A probation like
        that of HTM's anomaly likelihood (388 rows): spiky series (a latency) would
        otherwise raise most of their chance alarms in the first blocks after the warm-up,
        when one new spike larger than the few seen so far looks one in a billion.
        """
        p = np.ones(stats.shape)
        for k in range(_K):
            n = self.counts[k]
            if n == 0:
                continue
            column = stats[:, k]
            history = self.history[k]
            at_least = history.size - np.searchsorted(history, column, side="left")
            beyond = np.maximum(column - history[-1], 0.0)
            shape = self.shape[k]
            odds = np.exp(-shape * np.log1p(beyond / (shape * self.scale[k])))
            chosen = np.maximum((at_least + 1.0) / (n + 1.0) * odds, (n + 1.0) ** -_EVIDENCE_POWER)
            p[:, k] = np.where(np.isfinite(column), chosen, 1.0)
        return p


class StreamingDetector:
    """The detector with its state: feed rows in time order, get each row's score.

    ``update`` and ``update_many`` can be mixed: the scores do not depend on how the rows
    were split into calls.
    """

    def __init__(self, options: DetectorOptions | None = None) -> None:
        self.options = options or DetectorOptions()
        o = self.options
        self._valid = 0
        self._rows = 0
        self._prev_x = math.nan
        self._prev_t = math.nan
        self._gap = 0.0  # usual step between valid rows (0: unknown yet)
        self._level = math.nan
        self._jump_scale = 0.0
        self._level_scale = 0.0
        self._shift = 0.0
        self._recent_change = 0.0
        self._deviations = [math.nan] * _SEASON_ROWS  # ring: each row's distance to the level
        self._daily_scale = 0.0
        self._period = 0  # rows in a day (0: unknown, or too long to look back)
        self._q1 = -1  # the two previous bins (-1: none yet)
        self._q2 = -1
        self._pairs = np.zeros((_SYMBOLS, _SYMBOLS))
        self._triples = np.zeros((_SYMBOLS, _SYMBOLS, _SYMBOLS))
        self._low = math.nan
        self._high = math.nan
        self._weight = 1.0  # the weight of the next context count (see _statistics)
        self._novelty = 0.0
        keep = o.calibration_window
        self._stats = np.full((keep, _K), np.nan)  # ring of the last statistics
        self._xs = np.full(keep, np.nan)  # and values
        self._calibration: _Calibration | None = None
        self._recent = np.zeros(max(o.rest_rows, 1))  # the last surprises
        self._fired: list[tuple[int, float]] = []  # recent alarms: (valid row, level)
        #: Every valid row's surprise so far (for :func:`surprise` and tests).
        self.surprises: list[float] = []

    @property
    def rows(self) -> int:
        return self._rows

    def update(self, timestamp: float | None, value: float) -> float:
        """The score of one more row (NaN if its value or timestamp is missing)."""
        return float(self.update_many(None if timestamp is None else [timestamp], [value])[0])

    def update_many(
        self,
        timestamps: Sequence[float] | FloatArray | None,
        values: Sequence[float] | FloatArray,
    ) -> FloatArray:
        """The scores of more rows, in order (NaN where a value or timestamp is missing)."""
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if timestamps is None:
            t = np.arange(self._rows, self._rows + x.size, dtype=np.float64)
        else:
            t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
            if t.size != x.size:
                raise ValueError(f"{t.size} timestamps for {x.size} values")
        self._rows += x.size
        out = np.full(x.size, np.nan)
        index = np.flatnonzero(np.isfinite(x) & np.isfinite(t))
        block = self.options.block
        start = 0
        while start < index.size:
            until_refit = block - self._valid % block
            chunk = index[start : start + until_refit]
            if self._valid % block == 0:
                self._refit()
            out[chunk] = self._score_chunk(t[chunk], x[chunk])
            start += chunk.size
        return out

    # ------------------------------------------------------------------ internals

    def _refit(self) -> None:
        o = self.options
        self._pairs /= self._weight
        self._triples /= self._weight
        self._weight = 1.0
        seen = min(self._valid, o.calibration_window)
        usable = max(0, min(seen, self._valid - _BURN_IN))
        if usable < 16:
            return
        order = (np.arange(self._valid - usable, self._valid)) % o.calibration_window
        self._calibration = _Calibration.fit(self._stats[order], o.tail_share)
        values = self._xs[(np.arange(self._valid - seen, self._valid)) % o.calibration_window]
        self._low, self._high = (float(v) for v in np.quantile(values, _RANGE_QUANTILES))
        period = round(_DAY_S / self._gap) if self._gap > 0 else 0
        self._period = period if 8 <= period <= _SEASON_ROWS - 2 else 0

    def _score_chunk(self, t: FloatArray, x: FloatArray) -> FloatArray:
        o = self.options
        stats = self._statistics(t, x)
        window = o.calibration_window
        slots = (self._valid + np.arange(x.size)) % window
        self._stats[slots] = stats
        self._xs[slots] = x
        first = self._valid
        self._valid += x.size
        if self._calibration is None:
            surprise = np.zeros(x.size)
        else:
            p = self._calibration.probabilities(stats)
            combined = np.minimum(1.0, _K * p.min(axis=1))
            surprise = np.minimum(1.0, -np.log10(np.maximum(combined, 1e-300)) / o.decades)
        surprise[np.arange(first, first + x.size) < o.warmup] = 0.0
        self.surprises.extend(surprise.tolist())
        return self._alarms(surprise)

    def _alarms(self, surprise: FloatArray) -> FloatArray:
        """The one-alarm-per-anomaly rule (see the module's doc)."""
        o = self.options
        if o.rest_rows == 0:
            return surprise
        rest = o.rest_rows
        past = np.concatenate((self._recent, surprise))
        # The highest surprise of the ``rest`` rows before each new row.
        windows = np.lib.stride_tricks.sliding_window_view(past[:-1], rest)
        before = windows[-surprise.size :].max(axis=1)
        self._recent = past[-rest:]
        out = np.zeros(surprise.size)
        step = 1.0 / o.decades
        first = self._valid - surprise.size
        for i in np.flatnonzero(surprise > before).tolist():
            row = first + i
            level = surprise[i]
            recent = [value for at, value in self._fired if at >= row - rest]
            loudest = max(recent, default=0.0)
            if level >= before[i] + step or level >= _ESCALATION * loudest:
                out[i] = level
                recent.append(level)
                self._fired = [(at, v) for at, v in self._fired if at >= row - rest]
                self._fired.append((row, level))
        return out

    def _statistics(self, t: FloatArray, x: FloatArray) -> FloatArray:
        """The raw statistics of each row (one loop of scalar state updates)."""
        o = self.options
        a_level = 1.0 / o.level_rows
        a_scale = 1.0 / o.scale_rows
        a_short = 1.0 / o.short_rows
        prev_x, prev_t, gap = self._prev_x, self._prev_t, self._gap
        level, jump_scale, level_scale = self._level, self._jump_scale, self._level_scale
        shift, recent = self._shift, self._recent_change
        deviations, daily_scale, period = self._deviations, self._daily_scale, self._period
        q1, q2 = self._q1, self._q2
        pairs, triples = self._pairs, self._triples
        low, high = self._low, self._high
        width = (high - low) / _BINS if high > low else 0.0
        # Counts forget at the calibration window's pace: each new count weighs ``growth``
        # times the one before (rescaled at each refit), so the surprisal of a transition
        # means the same after 10,000 rows as after 2,000.
        weight = self._weight
        novelty = self._novelty
        a_context = 1.0 / _CONTEXT_ROWS
        growth = 1.0 / (1.0 - 1.0 / o.calibration_window)
        valid = self._valid
        log = math.log
        sqrt = math.sqrt
        nan = math.nan
        out = np.full((x.size, _K), nan)
        rows = out.tolist()
        for i, (ti, xi) in enumerate(zip(t.tolist(), x.tolist(), strict=True)):
            n = valid + i
            row = rows[i]
            if n == 0:
                prev_x, prev_t, level = xi, ti, xi
                continue
            # The usual step between rows, and this row's gap in usual steps.
            step = ti - prev_t
            if step > 0:
                gap = step if gap <= 0 else gap + a_scale * (min(step, 4 * gap) - gap)
            steps = step / gap if gap > 0 and step > gap else 1.0
            change = xi - prev_x
            error = xi - level
            warm = 1.0 / n if n < o.scale_rows else a_scale
            floor = 1e-9 * (abs(level) + 1e-9)
            # Statistics against the state before this row.
            if n >= 2:
                row[0] = abs(change) / sqrt(steps) / max(jump_scale, floor)
                z = error / max(level_scale, floor)
                row[1] = abs(z)
                shift += a_short * (max(min(z, _Z_CLIP), -_Z_CLIP) - shift)
                row[2] = abs(shift)
                usual = max(jump_scale, floor)
                recent += a_short * (abs(change) - recent)
                ratio = log((recent + 0.1 * usual) / (1.1 * usual))
                row[4] = ratio
                row[5] = -ratio
            # This row's distance to the level against the same moment a day before (so a
            # level shift is old news a day later): a value wrong for the time of day.
            if period and n > period + 1:
                back = n - period
                a = deviations[(back - 1) % _SEASON_ROWS]
                b = deviations[back % _SEASON_ROWS]
                c = deviations[(back + 1) % _SEASON_ROWS]
                same_time = a + b + c - max(a, b, c) - min(a, b, c)  # their median
                seasonal = abs(error - same_time)
                if daily_scale > 0:
                    row[6] = seasonal / max(daily_scale, floor)
                    limit = _CLIP * daily_scale
                    daily_scale += a_scale * (min(seasonal, limit) - daily_scale)
                elif seasonal == seasonal:
                    daily_scale = seasonal
            deviations[n % _SEASON_ROWS] = error
            # The context: this row's bin after the previous two.
            if xi < low:
                q = 0
            elif xi > high:
                q = _BINS + 1
            elif width > 0:
                q = min(int((xi - low) / width), _BINS - 1) + 1
            else:
                q = 1
            if q1 >= 0 and low == low:
                seen = triples[q1, q2, q]
                total = pairs[q1, q2]
                prior = _SMOOTHING * weight
                novelty += a_context * (-log((seen + prior) / (total + prior * _SYMBOLS)) - novelty)
                row[3] = novelty
                triples[q1, q2, q] = seen + weight
                pairs[q1, q2] = total + weight
                weight *= growth
            if low == low:
                q1, q2 = q2, q
            # Learn from this row (Huber-clipped, so an outlier moves little).
            if n == 1:
                jump_scale = recent = abs(change)
            else:
                limit = _CLIP * jump_scale if jump_scale > 0 else abs(change)
                jump_scale += warm * (min(abs(change), limit) - jump_scale)
            limit = _CLIP * level_scale if level_scale > 0 else abs(error)
            level_scale += warm * (min(abs(error), limit) - level_scale)
            level += max(a_level, 1.0 / (n + 1)) * error
            prev_x, prev_t = xi, ti
        self._prev_x, self._prev_t, self._gap = prev_x, prev_t, gap
        self._level, self._jump_scale, self._level_scale = level, jump_scale, level_scale
        self._shift, self._recent_change = shift, recent
        self._daily_scale = daily_scale
        self._q1, self._q2 = q1, q2
        self._weight = weight
        self._novelty = novelty
        return np.asarray(rows, dtype=np.float64)
