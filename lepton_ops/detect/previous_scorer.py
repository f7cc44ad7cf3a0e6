"""The scorer lepton-ops used before :mod:`~lepton_ops.detect.detector`, kept as a baseline
of the detection benchmark: a causal, unsupervised anomaly score in [0, 1] for one
metric's time series.

``score_series(timestamps, values)`` scores a whole series; :class:`StreamingScorer` does
the same one row (or one batch) at a time and gives bitwise the same scores. The score of
a row depends only on that row and the rows before it (in the order given), never on a
later row: the series can be scored as it arrives.

How a row is scored
-------------------
Each row goes through a few simple *forecasters*, each a robust baseline of a different
horizon, and the forecaster's error is standardized by the robust scale (inter-quartile
range / 1.349, as in Hampel's and Rousseeuw & Croux's robust statistics) of that
forecaster's own past errors, after subtracting their median (so a steady trend, such as
a counter, is not an anomaly). The detectors:

- ``level``: the error against the median of the current regime (at most
  ``long_window`` rows): spikes, dips and the first rows of a level shift;
- ``local``: against the median of the previous ``short_window`` rows: an outlier on a
  series that wanders (temperatures, queues), which the regime median calls normal;
- ``jump``: against the previous value (divided by the square root of the gap in typical
  sampling steps, so a change over a long gap counts less), and only as far as the row
  also leaves the local median, so the row after a spike, which jumps back, is not one:
  sudden changes in smooth series;
- ``shift``: a two-sided CUSUM (Page, 1954) of the ``level`` z-scores, Huber-clipped at
  ``shift_clip`` so one outlier moves it little, with a drift allowance: small persistent
  shifts and slow drifts that no single row reveals;
- ``volatility``: the log of the trimmed mean squared ``jump`` z-score over
  ``volatility_window`` rows against its usual value: noise that grows or vanishes;
- ``stuck``: how many times in a row the value repeated exactly, against the series' own
  history and against the rate at which it changed before the run: a frozen exporter;
- ``seasonal``: the error against the median of the same moment of the previous
  ``seasonal_cycles`` days or weeks (a few rows around the same phase), counted only as
  far as the deviation from the level is also unusual for that moment (so a level shift
  does not make the next day or week anomalous): a value normal for the series but not
  for this time of day. Only with regular sampling, and only used once it explains the
  series better than the regime median (checked every few hundred rows).

Robust baselines and scales ignore outliers, heavy tails and short anomalies. When the
CUSUM is significant (tail probability ``shift_alarm``; at least three extreme rows, at
most ``shift_threshold``) the series is taken to have moved to a new level: the regime
restarts at the CUSUM's change-point estimate (the last row where it was zero), so after
a persistent level shift the baseline follows within a few rows instead of scoring the new
level high for a whole window.

Calibration: each detector's raw statistic becomes a tail probability against the
detector's *own* recent history (``calibration_window`` rows), as Numenta's anomaly
likelihood (NAB, Ahmad et al. 2017) does with its raw scores. Inside the observed range it
is the empirical (conformal) probability ``(#past >= s + 1) / (n + 1)``; above the top
``tail_fraction`` a generalized Pareto tail fitted by probability-weighted moments
(peaks over threshold, as in SPOT, Siffer et al. 2017), exponential for light tails and
Pareto for heavy ones, so that values beyond anything seen still get ordered
probabilities. A detector that often sees large values (a spiky latency series, a
wandering temperature) thereby needs larger values to be surprised, and a probability
means the same on every series. The detectors are combined with a Bonferroni minimum,
``p = min(1, K * min_k p_k)``, and the score is the surprise in decades,
``min(1, -log10(p) / decades)``: with the default ``decades = 5``, score 1 means a
probability of 1e-5 or less, and on a well-behaved series about 1 row in 10^(5 s) scores
above ``s`` (1 in 300 above 0.5, 1 in 30,000 above 0.9). Unlike ``1 - p``, which puts
1 % of all rows above 0.99, this leaves room to tell rare from very rare.

Warm-up and missing values
--------------------------
The first ``warmup`` valid rows score 0: they fill the baselines and the calibration
history (a detector counts once it has ``_MIN_CALIBRATION`` rows of history). A row whose
value (or timestamp) is missing, NaN or infinite is not scored (NaN) and changes nothing:
the next row compares against the rows before the gap. Timestamps are only used for the
gap between rows (a negative gap counts as 0: callers that can should sort by time) and
for the seasonal period; without timestamps each row is one step.

Speed: rows are processed in blocks; the baselines are refreshed every ``stride`` rows and
after a level shift, the calibration, sampling step and season every
``calibration_stride`` rows, all from the rows before the block; the rest is vectorized
(about 100,000 rows a second on one core).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

DETECTORS: tuple[str, ...] = (
    "level",
    "local",
    "jump",
    "shift",
    "volatility",
    "stuck",
    "seasonal",
)

_LEVEL, _LOCAL, _JUMP, _SHIFT, _VOLATILITY, _STUCK, _SEASONAL = range(len(DETECTORS))
# Columns of the history: timestamp, value, the forecasters' errors, the squared clipped
# jump z-score, the volatility statistic, the repeat count, then each detector's
# log(1 + raw score).
_T, _X, _RL, _RS, _RD, _RP, _RQ, _ZD2, _LV, _RC = range(10)
_RAW = 10
_COLUMNS = _RAW + len(DETECTORS)

#: IQR of a standard normal distribution.
_IQR_NORMAL = 1.3489795
#: 5 %-95 % range of a standard normal distribution.
_P90_NORMAL = 3.2897073
#: Mean absolute deviation of a standard normal distribution, times this, is its sigma.
_MEAN_ABS_NORMAL = 1.2533141
#: The fewest rows between two refreshes of the baselines (while the history is short).
_MIN_REFRESH_ROWS = 8
#: Residuals in a scale window below this: estimate the scale from the values instead.
_MIN_RESIDUALS = 8
#: Calibration rows a detector needs before its probabilities count.
_MIN_CALIBRATION = 16
#: Peaks-over-threshold tail: the prior (an exponential tail of this scale, in raw score
#: units, that is robust standard deviations for the z-scores), its weight in rows, and
#: the fewest rows in the tail.
_TAIL_PRIOR_SIGMA = 0.5
_TAIL_PRIOR_ROWS = 5.0
_TAIL_MIN_ROWS = 5
#: Offset inside the log of the volatility statistic (a flat stretch is log(0.05)).
_VOLATILITY_OFFSET = 0.05
#: The volatility statistic clips the jump z-scores here...
_VOLATILITY_CLIP = 5.0
#: ... and leaves out this many of the largest squared ones.
_VOLATILITY_TRIM = 2
#: Repeats of a value that the stuck detector ignores.
_STUCK_FREE = 2
#: A run of repeats this improbable (given the change rate before it) is a frozen stretch.
_STUCK_IGNORED = 1e-3
#: Seasonal forecaster: rows on each side of the same phase, rows used to choose a period,
#: how often (rows) the period is chosen again, the error ratio (against the level
#: forecaster) it must beat to be used, the ratio a new period must beat the current one
#: by, the shortest period in rows, and the share of regular steps it needs.
_SEASON_HALF_WIDTH = 2
_SEASON_EVAL_ROWS = 1024
_SEASON_CHECK_ROWS = 512
_SEASON_GAIN = 0.75
_SEASON_SWITCH = 0.9
_SEASON_MIN_PERIOD_ROWS = 8
_REGULAR_SHARE = 0.9


@dataclass(frozen=True)
class ScorerOptions:
    """The scorer's settings (rows are valid rows: missing values do not count)."""

    #: Rows in the level baseline (at most) and in each robust scale estimate.
    long_window: int = 400
    #: Rows in the local baseline (odd, so that its median is one row).
    short_window: int = 11
    #: Rows in the volatility statistic.
    volatility_window: int = 12
    #: Rows of each detector's own history its scores are calibrated against.
    calibration_window: int = 4096
    #: Leading valid rows that score 0 while the baselines fill.
    warmup: int = 64
    #: Rows between two refreshes of the baselines.
    stride: int = 64
    #: Rows between two refits of the calibration (and of the sampling step and season).
    calibration_stride: int = 512
    #: The CUSUM: z-scores are clipped at ``shift_clip``, ``shift_drift`` is subtracted from
    #: each, and passing ``shift_threshold`` restarts the level baseline...
    shift_clip: float = 3.0
    shift_drift: float = 1.0
    shift_threshold: float = 16.0
    #: ... or earlier, once the CUSUM alone has a tail probability below this.
    shift_alarm: float = 1e-4
    #: Share of the calibration history above the peaks-over-threshold tail's threshold.
    tail_fraction: float = 0.05
    #: Tail probability 10 ** -decades maps to score 1.
    decades: float = 5.0
    #: Candidate seasonal periods in seconds (a day, a week); empty: no seasonal detector.
    seasonal_periods: tuple[float, ...] = (86_400.0, 604_800.0)
    #: Past cycles the seasonal baseline looks at.
    seasonal_cycles: int = 3
    #: The longest seasonal period, in rows, the scorer keeps history for.
    max_season_rows: int = 10_080

    def __post_init__(self) -> None:
        checks = [
            (self.long_window >= 16, "long_window must be at least 16"),
            (
                self.short_window >= 3 and self.short_window % 2 == 1,
                "short_window must be odd and at least 3",
            ),
            (
                self.volatility_window > _VOLATILITY_TRIM,
                f"volatility_window must be at least {_VOLATILITY_TRIM + 1}",
            ),
            (self.calibration_window >= 64, "calibration_window must be at least 64"),
            (
                self.warmup >= self.short_window + _MIN_CALIBRATION,
                f"warmup must be at least short_window + {_MIN_CALIBRATION}",
            ),
            (self.stride >= 1, "stride must be at least 1"),
            (self.calibration_stride >= 1, "calibration_stride must be at least 1"),
            (self.shift_clip > self.shift_drift > 0, "need shift_clip > shift_drift > 0"),
            (
                self.shift_threshold > 2 * (self.shift_clip - self.shift_drift),
                "shift_threshold must be greater than 2 * (shift_clip - shift_drift)",
            ),
            (0 < self.shift_alarm < 1, "shift_alarm must be in (0, 1)"),
            (0 < self.tail_fraction < 0.5, "tail_fraction must be in (0, 0.5)"),
            (self.decades > 0, "decades must be greater than 0"),
            (
                all(math.isfinite(p) and p > 0 for p in self.seasonal_periods),
                "seasonal_periods must be positive seconds",
            ),
            (self.seasonal_cycles >= 1, "seasonal_cycles must be at least 1"),
            (
                self.max_season_rows >= _SEASON_MIN_PERIOD_ROWS,
                f"max_season_rows must be at least {_SEASON_MIN_PERIOD_ROWS}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def score_series(
    timestamps: Sequence[float] | FloatArray | None,
    values: Sequence[float] | FloatArray,
    *,
    options: ScorerOptions | None = None,
) -> FloatArray:
    """Anomaly scores in [0, 1] for ``values`` (NaN where a value or timestamp is missing).

    ``timestamps`` are seconds (any origin), one per value, in time order; ``None``: one
    step per row. Row ``i``'s score depends on rows ``0..i`` only.
    """
    return StreamingScorer(options).update_many(timestamps, values)


class StreamingScorer:
    """The scorer with its state: feed rows in time order, get each row's score.

    ``update`` and ``update_many`` can be mixed freely: the scores do not depend on how
    the rows were split into calls.
    """

    def __init__(self, options: ScorerOptions | None = None) -> None:
        self.options = options or ScorerOptions()
        opts = self.options
        season_keep = 0
        if opts.seasonal_periods:
            season_keep = (
                _SEASON_EVAL_ROWS + opts.seasonal_cycles * opts.max_season_rows + _SEASON_HALF_WIDTH
            )
        keep = max(opts.calibration_window, opts.long_window + 1, season_keep)
        self._history = _History(_COLUMNS, keep)
        self._rows = 0  # every row given, valid or not
        self._valid = 0  # valid rows seen
        self._regime = 0  # valid rows in the current level regime
        self._quantum = math.inf  # smallest non-zero change seen: the data's resolution
        self._cusum = _Cusum()
        self._repeats = 0  # rows in a row equal to the one before
        self._snapshot: _Snapshot | None = None
        self._next_snapshot = 0  # valid rows at which the next snapshot is due
        self._slow: _Slow | None = None
        self._next_slow = 0
        self._season_rows = 0  # the seasonal period in rows, 0: none
        self._season_ratio = math.inf
        self._season_checked_at = -1
        self._trace: list[FloatArray] | None = None  # per-detector probabilities, for tests

    @property
    def rows(self) -> int:
        """Rows given so far (with the missing ones)."""
        return self._rows

    @property
    def valid_rows(self) -> int:
        """Rows with a value given so far."""
        return self._valid

    def update(self, timestamp: float | None, value: float) -> float:
        """The score of one more row (NaN if its value or timestamp is missing)."""
        stamps = None if timestamp is None else [timestamp]
        return float(self.update_many(stamps, [value])[0])

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
        scores = np.full(x.size, np.nan)
        index = np.flatnonzero(np.isfinite(x) & np.isfinite(t))
        if index.size:
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                scores[index] = self._score_valid(t[index], x[index])
        return scores

    # ------------------------------------------------------------------ the blocks

    def _score_valid(self, t: FloatArray, x: FloatArray) -> FloatArray:
        out = np.empty(x.size)
        done = 0
        opts = self.options
        while done < x.size:
            # Everything is refreshed when the scoring starts (the first local window is
            # full, the warm-up ends), then every so many rows.
            starts = self._valid in (opts.short_window, opts.warmup)
            if self._slow is None or self._valid >= self._next_slow or starts:
                self._slow = self._take_slow()
                self._next_slow = self._valid + self._interval(opts.calibration_stride)
                self._snapshot = None
            if self._snapshot is None or self._valid >= self._next_snapshot:
                self._snapshot = self._take_snapshot(self._slow)
                self._next_snapshot = self._valid + self._interval(opts.stride)
            size = min(
                x.size - done, self._next_snapshot - self._valid, self._next_slow - self._valid
            )
            for boundary in (self.options.short_window, self.options.warmup):
                if self._valid < boundary:
                    size = min(size, boundary - self._valid)
            done += self._block(t[done : done + size], x[done : done + size], out[done:])
        return out

    def _interval(self, stride: int) -> int:
        """Rows until the next refresh: fewer while the history is short."""
        return min(stride, max(_MIN_REFRESH_ROWS, self._valid // 4))

    def _block(self, t: FloatArray, x: FloatArray, out: FloatArray) -> int:
        """Score rows that share one snapshot; the rows used (fewer after a level shift)."""
        opts = self.options
        snap = self._snapshot
        assert snap is not None
        hist = self._history
        size = x.size
        rows = np.full((size, _COLUMNS), np.nan)
        rows[:, _T] = t
        rows[:, _X] = x
        prev_x = np.concatenate((hist.column(_X, 1), x[:-1]))
        if prev_x.size < size:  # the very first row
            prev_x = np.concatenate((x[:1], prev_x))
        self._note_quantum(x - prev_x)
        repeats = self._count_repeats(x == prev_x, first_row=hist.length == 0)
        rows[:, _RC] = repeats
        if hist.length == 0:
            rows[0, _RC] = np.nan  # the first row is not a change
        if self._valid < opts.short_window:  # filling the first local window
            out[:size] = 0.0
            self._repeats = int(repeats[-1])
            self._append(rows)
            return size

        prev_t = np.concatenate((hist.column(_T, 1), t[:-1]))
        change = x - prev_x
        if snap.gap > 0:
            change = change / np.sqrt(np.maximum(1.0, (t - prev_t) / snap.gap))
        z_jump = (change - snap.bias_jump) / snap.scale_jump
        window = opts.short_window
        recent = np.concatenate((hist.column(_X, window), x))
        local = np.partition(recent[_window_index(size, window)], window // 2, axis=1)[
            :, window // 2
        ]
        z_level = (x - snap.level) / snap.scale_level

        shift, alarm = self._cusum.run(
            z_level, opts.shift_clip, opts.shift_drift, self._shift_threshold(snap)
        )
        used = size if alarm < 0 else alarm + 1
        if used < size:
            rows, x, change, z_jump, local, z_level = (
                rows[:used],
                x[:used],
                change[:used],
                z_jump[:used],
                local[:used],
                z_level[:used],
            )
            shift = shift[:used]
            repeats = repeats[:used]
        self._repeats = int(repeats[-1])

        clipped = np.minimum(np.maximum(z_jump, -_VOLATILITY_CLIP), _VOLATILITY_CLIP)
        z2 = clipped * clipped
        past_z2 = hist.column(_ZD2, opts.volatility_window - 1)
        volatility = np.log(_trimmed_mean(past_z2, z2, opts.volatility_window) + _VOLATILITY_OFFSET)
        away = x - local
        rows[:, _RL] = x - snap.level
        rows[:, _RS] = away
        rows[:, _RD] = change
        rows[:, _ZD2] = z2
        rows[:, _LV] = volatility
        raw = np.empty((used, len(DETECTORS)))
        raw[:, _LEVEL] = np.abs(z_level)
        unusual = np.abs(away - snap.bias_local)
        raw[:, _LOCAL] = unusual / snap.scale_local
        # A jump counts as far as it also leaves the local baseline: the row after a spike
        # jumps back, but to where the series was.
        raw[:, _JUMP] = np.minimum(np.abs(z_jump), unusual / snap.scale_jump)
        raw[:, _SHIFT] = shift
        raw[:, _VOLATILITY] = np.abs(volatility - snap.volatility_center)
        # A value repeated exactly: two repeats are common in coarse data, more may be a
        # frozen exporter (calibration tells which, for this series).
        raw[:, _STUCK] = np.maximum(repeats - _STUCK_FREE, 0.0)
        raw[:, _SEASONAL] = np.nan
        if self._season_rows:
            # Against the same phase of past cycles, as values and as deviations from the
            # level: the first alone would call a whole cycle after a level shift anomalous.
            baseline = self._seasonal_baseline(rows[:, _X : _RL + 1])
            seasonal = x - baseline[:, 0]
            deviation = rows[:, _RL] - baseline[:, 1]
            rows[:, _RP] = seasonal
            rows[:, _RQ] = deviation
            raw[:, _SEASONAL] = np.minimum(
                np.abs(seasonal - snap.bias_seasonal) / snap.scale_seasonal,
                np.abs(deviation - snap.bias_deviation) / snap.scale_deviation,
            )
        logged = np.log1p(raw)
        rows[:, _RAW:] = logged
        stuck = np.where(
            repeats > _STUCK_FREE,
            np.exp(snap.log_first_repeat + (repeats - 1.0) * snap.log_repeat_again),
            1.0,
        )
        # Rows of a frozen stretch say nothing about the forecasters' usual errors: left
        # in, they would shrink the scales and make the noise after it look anomalous.
        rows[stuck < _STUCK_IGNORED, _RL : _RQ + 1] = np.nan

        if self._valid >= opts.warmup:
            out[:used] = self._combine(raw, logged, snap.slow.calibration, stuck)
        else:
            out[:used] = 0.0
        self._append(rows)
        if alarm >= 0:  # a new level: the rows since the change point are its baseline
            self._regime = self._cusum.restart()
            level = _median(hist.column(_X, min(opts.long_window, self._regime)))
            self._snapshot = dataclasses.replace(snap, level=level)
            # Its other baselines in a stride, from rows of the new level (but not later
            # than two strides after the last full refresh, however often it shifts).
            self._next_snapshot = min(
                self._valid + self._interval(opts.stride), snap.taken_at + 2 * opts.stride
            )
        return used

    def _shift_threshold(self, snap: _Snapshot) -> float:
        """The CUSUM value that restarts the level: as soon as the shift detector alone is
        significant (``shift_alarm``), but not before three extreme rows in a row (a short
        burst is an outlier, not a new level), and at most ``shift_threshold``."""
        opts = self.options
        lowest = 2.0 * (opts.shift_clip - opts.shift_drift)
        alarm = snap.slow.calibration.quantile(_SHIFT, opts.shift_alarm)
        if alarm is None:
            return opts.shift_threshold
        return min(opts.shift_threshold, max(lowest, alarm))

    def _count_repeats(self, same: npt.NDArray[np.bool_], first_row: bool) -> FloatArray:
        """For each row: how many rows in a row, up to it, repeat the value before."""
        if first_row:
            same = same.copy()
            same[0] = False
        index = np.arange(same.size)
        last_change = np.maximum.accumulate(np.where(same, -1, index))
        return np.where(last_change >= 0, index - last_change, self._repeats + index + 1).astype(
            np.float64
        )

    def _note_quantum(self, changes: FloatArray) -> None:
        moved = np.abs(changes)
        moved = moved[moved > 0]
        if moved.size:
            self._quantum = min(self._quantum, float(moved.min()))

    def _append(self, rows: FloatArray) -> None:
        self._history.append(rows)
        self._valid += rows.shape[0]
        self._regime += rows.shape[0]

    def _combine(
        self, raw: FloatArray, logged: FloatArray, calibration: _Calibration, stuck: FloatArray
    ) -> FloatArray:
        probabilities = calibration.probability(raw, logged)
        # A run of repeats is only as rare as the change rate before it says: on a series
        # that seldom changes (or never did), a long run is no news.
        probabilities[:, _STUCK] = np.maximum(probabilities[:, _STUCK], stuck)
        if self._trace is not None:
            self._trace.append(probabilities)
        best = np.min(probabilities, axis=1)
        combined = np.minimum(1.0, max(1, calibration.used) * best)
        surprise = -np.log10(combined) / self.options.decades
        return np.asarray(np.minimum(np.maximum(surprise, 0.0), 1.0) + 0.0, dtype=np.float64)

    def _seasonal_baseline(self, new: FloatArray) -> FloatArray:
        """For each row of ``new`` (columns value and level deviation): the medians of those
        columns around the same phase of past cycles."""
        period = self._season_rows
        cycles = min(self.options.seasonal_cycles, (self._valid - _SEASON_HALF_WIDTH) // period)
        past = self._history.columns(_X, _RL + 1, cycles * period + _SEASON_HALF_WIDTH)
        seq = np.concatenate((past, new))
        here = past.shape[0] + np.arange(new.shape[0])
        return _seasonal_median(seq, here, period, cycles)

    # ------------------------------------------------------------------ snapshots

    def _take_snapshot(self, slow: _Slow) -> _Snapshot:
        """The baselines and scales for the next rows, from the rows before them."""
        opts = self.options
        hist = self._history
        values = hist.column(_X, min(opts.long_window, max(1, self._regime)))
        level = _median(values) if values.size else 0.0
        floor = self._floor(level)
        # The robust scale of each forecaster's past errors (and their median: the bias
        # of a forecaster on a trend); while they are few, the scale of the recent values
        # (or of their changes), which is all there is to go on.
        last = _RQ if self._season_rows else _RD
        scales, centers = _robust_spread(hist.columns(_RL, last + 1, opts.long_window))
        if np.any(np.isnan(scales)):
            recent = hist.column(_X, opts.long_window)
            of_values = _robust_scales(recent[:, None], minimum=2)[0]
            of_changes = _robust_scales(np.diff(recent)[:, None], minimum=2)[0]
            fallback = np.array([of_values, of_changes, of_changes, of_values, of_values])
            scales = np.where(np.isnan(scales), fallback[: scales.size], scales)
        listed = (
            np.maximum(np.where(np.isnan(scales), 0.0, scales), floor).tolist() + [math.nan] * 2
        )
        scale_level, scale_local, scale_jump, scale_seasonal, scale_deviation = listed[:5]
        biases = np.where(np.isnan(centers), 0.0, centers).tolist() + [0.0] * 2
        return _Snapshot(
            taken_at=self._valid,
            level=level,
            bias_local=biases[1],
            bias_jump=biases[2],
            bias_seasonal=biases[3],
            bias_deviation=biases[4],
            scale_level=scale_level,
            scale_local=scale_local,
            scale_jump=scale_jump,
            scale_seasonal=scale_seasonal,
            scale_deviation=scale_deviation,
            volatility_center=slow.volatility_center,
            **self._repeat_odds(),
            gap=slow.gap,
            slow=slow,
        )

    def _repeat_odds(self) -> dict[str, float]:
        """How likely a run of repeats is, from the ``long_window`` rows before the current
        run: log P(a row repeats the one before) and log P(it repeats again after a repeat)
        (a run of ``L`` then has probability ``P(first) * P(again) ** (L - 1)``; changes
        cluster in coarse data, so the second is larger there). 0 when nothing is known."""
        window = self.options.long_window
        counts = self._history.column(_RC, self._repeats + window)
        counts = counts[: max(0, counts.size - self._repeats)][-window:]
        counts = counts[np.isfinite(counts)]
        if counts.size == 0:
            return {"log_first_repeat": 0.0, "log_repeat_again": 0.0}
        repeated = float((counts > 0).sum())
        again = float((counts > 1).sum())
        return {
            "log_first_repeat": math.log((repeated + 0.5) / (counts.size + 1.0)),
            "log_repeat_again": math.log((again + 0.5) / (repeated + 1.0)),
        }

    def _floor(self, level: float) -> float:
        """The smallest scale: half the data's resolution, and a tiny share of its level."""
        quantum = 0.5 * self._quantum if math.isfinite(self._quantum) else 0.0
        return max(quantum, 1e-9 * abs(level), 1e-300)

    def _take_slow(self) -> _Slow:
        """What changes slowly: sampling step, volatility centre, season, calibration."""
        opts = self.options
        hist = self._history
        steps = np.diff(hist.column(_T, opts.long_window + 1))
        positive = steps[steps > 0]
        gap = _median(positive) if positive.size else 0.0
        past_vol = hist.column(_LV, opts.long_window)
        past_vol = past_vol[np.isfinite(past_vol)]
        center = _median(past_vol) if past_vol.size else math.log(1.0 + _VOLATILITY_OFFSET)
        active = self._choose_season(gap)
        # No scores during the warm-up: its calibration would be fitted for nothing.
        scoring = self._valid >= opts.warmup
        detectors = [scoring] * len(DETECTORS)
        detectors[_SEASONAL] = scoring and active
        logged = hist.columns(_RAW, _COLUMNS, opts.calibration_window if scoring else 0)
        calibration = _Calibration(logged, detectors, opts.tail_fraction)
        return _Slow(gap=gap, volatility_center=center, calibration=calibration)

    def _choose_season(self, gap: float) -> bool:
        """Every few hundred rows, pick the seasonal period (if any); is it to be used?"""
        opts = self.options
        if not opts.seasonal_periods or gap <= 0:
            self._set_season(0, math.inf)
            return False
        due = self._season_checked_at < 0 or (
            self._valid - self._season_checked_at >= _SEASON_CHECK_ROWS
        )
        if due:
            self._season_checked_at = self._valid
            steps = np.diff(self._history.column(_T, _SEASON_EVAL_ROWS + 1))
            regular = steps.size > 0 and (
                float(np.mean(np.abs(steps - gap) <= 0.05 * gap)) >= _REGULAR_SHARE
            )
            ratios: dict[int, float] = {}
            if regular:
                for seconds in opts.seasonal_periods:
                    period = round(seconds / gap)
                    if _SEASON_MIN_PERIOD_ROWS <= period <= opts.max_season_rows:
                        ratios[period] = self._season_fit(period)
            best = min(ratios, key=lambda period: ratios[period], default=0)
            current = ratios.get(self._season_rows, math.inf)
            if best and ratios[best] < _SEASON_SWITCH * current:
                self._set_season(best, ratios[best])
            elif self._season_rows in ratios:
                self._season_ratio = current
            else:
                self._set_season(0, math.inf)
        return bool(self._season_rows) and self._season_ratio < _SEASON_GAIN

    def _set_season(self, period: int, ratio: float) -> None:
        if period != self._season_rows:
            # A new period: its errors and raw scores start afresh.
            self._history.clear_columns((_RP, _RQ, _RAW + _SEASONAL))
        self._season_rows = period
        self._season_ratio = ratio

    def _season_fit(self, period: int) -> float:
        """Robust scale of the seasonal errors over that of the level errors (lower: better)."""
        half = _SEASON_HALF_WIDTH
        evaluated = min(_SEASON_EVAL_ROWS, self._valid - period - half)
        if evaluated < _SEASON_EVAL_ROWS // 2:
            return math.inf
        cycles = min(self.options.seasonal_cycles, (self._valid - evaluated - half) // period)
        seq = self._history.column(_X, evaluated + cycles * period + half)
        here = seq.size - evaluated + np.arange(evaluated)
        seasonal = _robust_scale(seq[here] - _seasonal_median(seq, here, period, cycles))
        level = _robust_scale(self._history.column(_RL, evaluated))
        if not (math.isfinite(level) and math.isfinite(seasonal)):
            return math.inf
        floor = self._floor(float(seq[-1]))
        return max(seasonal, floor) / max(level, floor)


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class _Slow:
    """The slowly changing part of a snapshot, refreshed every ``calibration_stride`` rows."""

    gap: float  # the typical step between rows, seconds (0: unknown)
    volatility_center: float
    calibration: _Calibration


@dataclass(frozen=True)
class _Snapshot:
    """What a block of rows is compared against: computed from the rows before it."""

    taken_at: int  # valid rows seen when it was computed
    level: float
    #: Median past errors of the forecasters: subtracted, so a trend is not an anomaly.
    bias_local: float
    bias_jump: float
    bias_seasonal: float
    bias_deviation: float
    scale_level: float
    scale_local: float
    scale_jump: float
    scale_seasonal: float
    scale_deviation: float
    volatility_center: float
    log_first_repeat: float
    log_repeat_again: float
    gap: float
    slow: _Slow


class _Calibration:
    """Every detector's calibration: its past raw scores, sorted, and a tail above them.

    The histories are kept as ``g = log(1 + raw)`` (order-preserving); those of all the
    detectors sit in one sorted array, detector ``d``'s shifted by ``d * _SPAN``, so that one
    ``searchsorted`` counts, for a whole block, the past raw scores at least as large. Above
    the top ``tail_fraction`` a generalized Pareto tail is fitted to the excesses by
    probability-weighted moments (Hosking & Wallis, 1987), its shape clipped to [0, 1]:
    exponential for light tails, Pareto for heavy ones.
    """

    _SPAN = 1024.0  # > log(1 + the largest float)

    def __init__(self, logged: FloatArray, active: list[bool], fraction: float) -> None:
        detectors = logged.shape[1]
        self.counts = np.zeros(detectors)
        self.tail_rows = np.ones(detectors)
        self.threshold = np.full(detectors, np.inf)
        self.shape = np.zeros(detectors)
        self.sigma = np.ones(detectors)
        self.largest = np.full(detectors, np.inf)
        self.active = np.zeros(detectors, dtype=bool)
        self._sorted: list[FloatArray] = []
        parts = []
        for detector in range(detectors):
            column = logged[:, detector]
            history = np.sort(column[np.isfinite(column)])
            self._sorted.append(history)
            n = history.size
            if not active[detector] or n < _MIN_CALIBRATION:
                continue
            tail_rows = min(n, max(_TAIL_MIN_ROWS, math.ceil(fraction * n)))
            top = np.expm1(history[n - tail_rows :])
            shape, sigma = _pareto_fit(top - top[0])
            self.counts[detector] = n
            self.tail_rows[detector] = tail_rows
            self.threshold[detector] = top[0]
            self.shape[detector] = shape
            self.sigma[detector] = sigma
            self.largest[detector] = top[-1]
            self.active[detector] = True
            parts.append(np.minimum(history, self._SPAN - 1.0) + detector * self._SPAN)
        self._keys = np.concatenate(parts) if parts else np.empty(0)
        self._offsets = np.arange(detectors) * self._SPAN
        self._ends = np.searchsorted(self._keys, self._offsets + self._SPAN, side="left")
        self._scale = 1.0 / (self.counts + 1.0)
        self._heavy = self.shape > 0
        self._safe_shape = np.where(self._heavy, self.shape, 1.0)
        self._log_survival_largest = self._log_survival(self.largest - self.threshold)

    def _log_survival(self, excess: FloatArray) -> FloatArray:
        """log P(excess over the threshold > ``excess``) under the fitted tail."""
        over = np.maximum(excess, 0.0) / self.sigma
        heavy = -np.log1p(self._safe_shape * over) / self._safe_shape
        return np.asarray(np.where(self._heavy, heavy, -over), dtype=np.float64)

    @property
    def used(self) -> int:
        """Detectors with enough history to count."""
        return int(self.active.sum())

    def probability(self, raw: FloatArray, logged: FloatArray) -> FloatArray:
        """For each row and detector: P(a past raw score >= this one); 1 if inactive.

        Inside the history the empirical (conformal) probability; above the tail's
        threshold the fitted tail, never rarer than the history shows (ties: quantized
        data), and beyond the largest past score no rarer than that score (seen once in
        ``n`` rows) times the tail's odds of going from it to this one: a series with a
        few huge jumps among small ones (a sawtooth) has seen such jumps before.
        """
        keys = np.minimum(logged, self._SPAN - 1.0) + self._offsets
        at_least = self._ends - np.searchsorted(self._keys, keys, side="left")
        empirical = (at_least + 1.0) * self._scale
        log_survival = self._log_survival(raw - self.threshold)
        tail = np.maximum(self.tail_rows * np.exp(log_survival), at_least) * self._scale
        beyond = np.exp(np.minimum(log_survival - self._log_survival_largest, 0.0)) * self._scale
        tail = np.where(raw > self.largest, np.maximum(tail, beyond), tail)
        p = np.where(raw > self.threshold, tail, empirical)
        return np.asarray(np.where(self.active & np.isfinite(raw), p, 1.0), dtype=np.float64)

    def quantile(self, detector: int, p: float) -> float | None:
        """The raw score of ``detector`` whose tail probability is ``p``; None if inactive."""
        if not self.active[detector]:
            return None
        n = float(self.counts[detector])
        tail_rows = float(self.tail_rows[detector])
        if p * (n + 1.0) >= tail_rows:
            history = self._sorted[detector]
            index = min(history.size - 1, max(0, history.size - math.ceil(p * (n + 1.0) - 1.0)))
            return math.expm1(float(history[index]))
        share = p * (n + 1.0) / tail_rows
        shape = float(self.shape[detector])
        sigma = float(self.sigma[detector])
        excess = sigma * (share**-shape - 1.0) / shape if shape > 0 else -sigma * math.log(share)
        return float(self.threshold[detector]) + excess


class _Cusum:
    """Two-sided CUSUM of clipped z-scores, with the rows since each side was last 0."""

    def __init__(self) -> None:
        self.up = 0.0
        self.down = 0.0
        self.up_rows = 0
        self.down_rows = 0
        self._alarm_rows = 0

    def run(
        self, z: FloatArray, clip: float, drift: float, threshold: float
    ) -> tuple[FloatArray, int]:
        """The statistic for each row, up to the first alarm; its index, or -1."""
        out = np.zeros(z.size)
        up, down, up_rows, down_rows = self.up, self.down, self.up_rows, self.down_rows
        alarm = -1
        for i, value in enumerate(np.minimum(np.maximum(z, -clip), clip).tolist()):
            up += value - drift
            if up <= 0.0:
                up, up_rows = 0.0, 0
            else:
                up_rows += 1
            down -= value + drift
            if down <= 0.0:
                down, down_rows = 0.0, 0
            else:
                down_rows += 1
            out[i] = up if up > down else down
            if up > threshold or down > threshold:
                alarm = i
                self._alarm_rows = up_rows if up > down else down_rows
                break
        self.up, self.down, self.up_rows, self.down_rows = up, down, up_rows, down_rows
        return out, alarm

    def restart(self) -> int:
        """After an alarm: reset; the rows since the estimated change point."""
        rows = max(1, self._alarm_rows)
        self.up = self.down = 0.0
        self.up_rows = self.down_rows = 0
        return rows


class _History:
    """The last valid rows, as the columns of one growable array."""

    def __init__(self, columns: int, keep: int) -> None:
        self._keep = keep
        self._data = np.empty((min(2 * keep, 512), columns))
        self._len = 0

    def append(self, rows: FloatArray) -> None:
        size = rows.shape[0]
        if self._len + size > self._data.shape[0]:
            if self._len > self._keep:  # drop what is no longer needed
                self._data[: self._keep] = self._data[self._len - self._keep : self._len]
                self._len = self._keep
            if self._len + size > self._data.shape[0]:  # grow (to twice what is kept)
                needed = self._len + size
                capacity = min(max(2 * self._data.shape[0], needed), max(2 * self._keep, needed))
                grown = np.empty((capacity, self._data.shape[1]))
                grown[: self._len] = self._data[: self._len]
                self._data = grown
        self._data[self._len : self._len + size] = rows
        self._len += size

    @property
    def length(self) -> int:
        return self._len

    def column(self, column: int, last: int) -> FloatArray:
        """The last ``last`` values of ``column`` (fewer if fewer rows were kept)."""
        start = max(0, self._len - max(0, last))
        return self._data[start : self._len, column]

    def columns(self, first: int, end: int, last: int) -> FloatArray:
        """The last ``last`` rows of columns ``first`` to ``end - 1``."""
        start = max(0, self._len - max(0, last))
        return self._data[start : self._len, first:end]

    def clear_columns(self, columns: tuple[int, ...]) -> None:
        self._data[: self._len, list(columns)] = np.nan


def _pareto_fit(excess: FloatArray) -> tuple[float, float]:
    """Shape (clipped to [0, 1]) and scale of a generalized Pareto distribution fitted to
    ``excess`` (sorted, >= 0) by probability-weighted moments, shrunk towards an
    exponential tail of scale ``_TAIL_PRIOR_SIGMA`` by ``_TAIL_PRIOR_ROWS`` pseudo-rows."""
    k = excess.size
    mean = float(excess.sum()) / k
    weighted = float(_pwm_weights(k) @ excess) / k
    spread = mean - 2.0 * weighted
    if spread > 1e-12 * max(mean, 1e-300):
        shape = 2.0 - mean / spread
        sigma = 2.0 * mean * weighted / spread
    else:  # all the excesses (nearly) equal
        shape, sigma = 0.0, mean
    shape = min(max(shape, 0.0), 1.0)
    prior = _TAIL_PRIOR_ROWS / (k + _TAIL_PRIOR_ROWS)
    return (1.0 - prior) * shape, (1.0 - prior) * sigma + prior * _TAIL_PRIOR_SIGMA


@functools.lru_cache(maxsize=64)
def _pwm_weights(k: int) -> FloatArray:
    """1 - the plotting positions (i - 0.35) / k of ``k`` sorted excesses."""
    weights = 1.0 - (np.arange(1, k + 1) - 0.35) / k
    weights.flags.writeable = False
    return weights


def _trimmed_mean(past: FloatArray, new: FloatArray, window: int) -> FloatArray:
    """For each of ``new``: the mean of the finite values among it and the ``window - 1``
    before it, without the largest ``_VOLATILITY_TRIM`` (a spike moves it little)."""
    if past.size < window - 1:
        past = np.concatenate((np.full(window - 1 - past.size, np.nan), past))
    seq = np.concatenate((past, new))
    ordered = np.sort(seq[_window_index(new.size, window)], axis=1)  # NaN last
    kept = np.maximum(np.isfinite(ordered).sum(axis=1) - _VOLATILITY_TRIM, 1)
    terms = np.where(np.arange(window)[None, :] < kept[:, None], ordered, 0.0)
    return np.asarray(terms.sum(axis=1) / kept, dtype=np.float64)


@functools.lru_cache(maxsize=64)
def _window_index(rows: int, window: int) -> IndexArray:
    """Indices of ``rows`` sliding windows of ``window`` items over a sequence."""
    index = np.arange(rows)[:, None] + np.arange(window)[None, :]
    index.flags.writeable = False
    return index


@functools.lru_cache(maxsize=16)
def _season_offsets(period: int, cycles: int) -> IndexArray:
    """Offsets of the rows around the same phase, 1 to ``cycles`` periods back."""
    half = _SEASON_HALF_WIDTH
    offsets = np.array(
        [-(c * period) + d for c in range(1, cycles + 1) for d in range(-half, half + 1)]
    )
    offsets.flags.writeable = False
    return offsets


def _seasonal_median(seq: FloatArray, here: IndexArray, period: int, cycles: int) -> FloatArray:
    """For each index in ``here``: the median of ``seq`` (each column of it, if 2-D) around
    the same phase, 1 to ``cycles`` periods before (``_SEASON_HALF_WIDTH`` rows each side)."""
    offsets = _season_offsets(period, cycles)
    gathered = seq[here[:, None] + offsets[None, :]]  # rows, offsets[, columns]
    middle = offsets.size // 2
    return np.asarray(np.partition(gathered, middle, axis=1)[:, middle], dtype=np.float64)


def _median(values: FloatArray) -> float:
    n = values.size
    if n == 0:
        return math.nan
    middle = n // 2
    if n % 2:
        return float(np.partition(values, middle)[middle])
    part = np.partition(values, (middle - 1, middle))
    return float((part[middle - 1] + part[middle]) * 0.5)


def _robust_scale(values: FloatArray) -> float:
    """A robust standard deviation of ``values`` (NaN if fewer than two are finite)."""
    return float(_robust_scales(values[:, None], minimum=2)[0])


_SCALE_QUANTILES = np.array([0.05, 0.25, 0.5, 0.75, 0.95])


def _robust_scales(columns: FloatArray, minimum: int = _MIN_RESIDUALS) -> FloatArray:
    """A robust standard deviation of each column's finite values: the IQR, else a wider
    range, else the mean deviation (quantized data); NaN with fewer than ``minimum``."""
    return _robust_spread(columns, minimum)[0]


def _robust_spread(
    columns: FloatArray, minimum: int = _MIN_RESIDUALS
) -> tuple[FloatArray, FloatArray]:
    """Each column's robust standard deviation (see :func:`_robust_scales`) and median;
    NaN with fewer than ``minimum`` finite values."""
    if columns.shape[0] == 0:
        empty = np.full(columns.shape[1], np.nan)
        return empty, empty
    ordered = np.sort(columns, axis=0)  # NaN last
    finite = np.isfinite(ordered)
    counts = finite.sum(axis=0)
    top = np.maximum(counts - 1, 0)
    position = _SCALE_QUANTILES[:, None] * top[None, :]
    low = position.astype(np.intp)
    high = np.minimum(low + 1, top[None, :])
    which = np.arange(columns.shape[1])[None, :]
    below = ordered[low, which]
    q05, q25, q50, q75, q95 = below + (position - low) * (ordered[high, which] - below)
    iqr = (q75 - q25) / _IQR_NORMAL
    wide = (q95 - q05) / _P90_NORMAL
    deviation = np.where(finite, np.abs(ordered - q50), 0.0)
    mean_deviation = deviation.sum(axis=0) / np.maximum(counts, 1) * _MEAN_ABS_NORMAL
    scale = np.where(iqr > 0, iqr, np.where(wide > 0, wide, mean_deviation))
    enough = counts >= minimum
    return (
        np.asarray(np.where(enough, scale, np.nan), dtype=np.float64),
        np.asarray(np.where(enough, q50, np.nan), dtype=np.float64),
    )
