"""Trailing-window statistics of one node's samples, for every sample time at once.

A node's sample times ``ts`` (sorted) define, for each sample ``i``, the window
``(ts[i] - window_s, ts[i]]``: only what was known at ``ts[i]`` (causal). :class:`Windows`
turns that into an index matrix (one row per sample, one column per position in its
window, padded), so that a statistic over every window is one numpy expression instead
of a Python loop per sample: a 20-minute campaign (~300 samples a node, ~30 per window)
is a 300 x 30 matrix.

Missing values are NaN and are ignored by every statistic; a statistic with too few
values is NaN (the classifier handles NaN natively, the anomaly detector reads NaN as
"typical").
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: A slope needs this many points, spread over at least this many seconds.
MIN_SLOPE_POINTS = 3
MIN_SLOPE_SPAN_S = 8.0


class Windows:
    """The trailing windows ``(ts[i] - window_s, ts[i]]`` of the sorted times ``ts``."""

    def __init__(self, ts: FloatArray, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"a window must be longer than 0 s, got {window_s!r}")
        self.ts = np.asarray(ts, dtype=np.float64)
        count = len(self.ts)
        positions = np.arange(count)
        low = np.searchsorted(self.ts, self.ts - window_s, side="right")
        width = int((positions - low).max() + 1) if count else 1
        index = low[:, None] + np.arange(width)[None, :]
        #: which cells of the padded matrix are in the window
        self.inside: BoolArray = index <= positions[:, None]
        self.index = np.minimum(index, positions[:, None])
        #: each cell's time relative to its row's sample time (0 at the row's own sample)
        self.age: FloatArray = self.ts[self.index] - self.ts[:, None]

    def gather(self, values: FloatArray) -> FloatArray:
        """``values`` (one per sample, NaN = missing) as the padded window matrix."""
        matrix: FloatArray = np.asarray(values, dtype=np.float64)[self.index]
        matrix[~self.inside] = np.nan
        return matrix


def _quiet_nan(function: str, matrix: FloatArray) -> FloatArray:
    """``np.nan<function>`` along the window axis, silent about all-NaN windows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        result: FloatArray = getattr(np, f"nan{function}")(matrix, axis=1)
    return result


def last(matrix: FloatArray) -> FloatArray:
    """The latest value present in each window (NaN if none)."""
    present = ~np.isnan(matrix)
    # argmax over the reversed rows finds the last present cell
    from_end = np.argmax(present[:, ::-1], axis=1)
    column = matrix.shape[1] - 1 - from_end
    found: FloatArray = matrix[np.arange(len(matrix)), column]
    found[~present.any(axis=1)] = np.nan
    return found


def count(matrix: FloatArray) -> FloatArray:
    counted: FloatArray = np.sum(~np.isnan(matrix), axis=1).astype(np.float64)
    return counted


def mean(matrix: FloatArray) -> FloatArray:
    return _quiet_nan("mean", matrix)


def std(matrix: FloatArray) -> FloatArray:
    """Population standard deviation; NaN for a window with fewer than two values."""
    result = _quiet_nan("std", matrix)
    result[count(matrix) < 2] = np.nan
    return result


def maximum(matrix: FloatArray) -> FloatArray:
    return _quiet_nan("max", matrix)


def slope(matrix: FloatArray, age: FloatArray) -> FloatArray:
    """Least-squares slope (per second) of each window's values against time.

    NaN when a window has fewer than :data:`MIN_SLOPE_POINTS` values or they span less
    than :data:`MIN_SLOPE_SPAN_S` seconds: two noisy points make no trend.
    """
    present = ~np.isnan(matrix)
    times = np.where(present, age, np.nan)
    n = present.sum(axis=1)
    t_mean = _quiet_nan("mean", times)
    v_mean = _quiet_nan("mean", matrix)
    dt = times - t_mean[:, None]
    dv = matrix - v_mean[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        covariance = np.nansum(dt * dv, axis=1)
        variance = np.nansum(dt * dt, axis=1)
        result: FloatArray = covariance / variance
    span = _quiet_nan("max", times) - _quiet_nan("min", times)
    result[(n < MIN_SLOPE_POINTS) | ~(span >= MIN_SLOPE_SPAN_S)] = np.nan
    return result


def increase(matrix: FloatArray) -> FloatArray:
    """How much a counter grew over each window (a drop is a reset: counted from 0).

    As Prometheus' ``increase()`` without extrapolation: the sum of the steps between
    consecutive values present, a negative step (the counter restarted) counting as the
    new value itself.
    """
    rows, width = matrix.shape
    total = np.zeros(rows)
    previous = np.full(rows, np.nan)
    for column in range(width):
        value = matrix[:, column]
        present = ~np.isnan(value)
        known = present & ~np.isnan(previous)
        step = value - previous
        grew = np.where(step >= 0, step, value)
        total[known] += grew[known]
        previous = np.where(present, value, previous)
    return total


def time_to_exhaustion(
    level: FloatArray, rate: FloatArray, full: float, cap_s: float
) -> FloatArray:
    """Seconds until ``level`` reaches ``full`` at ``rate`` per second, in ``[0, cap_s]``.

    In the spirit of Prometheus' ``predict_linear``: a straight line from the current
    level with the window's least-squares slope. Not rising (or no trend): ``cap_s``.
    Already full: 0. Unknown level: NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        seconds = np.where(rate > 0, (full - level) / rate, cap_s)
    seconds = np.where(np.isnan(rate), cap_s, seconds)
    seconds = np.where(level >= full, 0.0, seconds)
    seconds = np.clip(seconds, 0.0, cap_s)
    seconds[np.isnan(level)] = np.nan
    return seconds
