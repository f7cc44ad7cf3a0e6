"""Reference detectors every benchmark run scores next to the real one.

- ``never``: never fires (0 by construction of the normalised score);
- ``random``: a uniform score per row from a fixed seed and the file's name;
- ``windowed_gaussian``: the two-sided Gaussian tail of the row's z-score against the
  mean and standard deviation of the previous :data:`GAUSSIAN_WINDOW` rows, as
  ``erf(|z| / sqrt(2))`` (0 while fewer than two rows were seen);
- ``previous``: the project's earlier scorer (:mod:`~lepton_ops.detect.previous_scorer`).

Each takes ``(name, timestamps, values)`` and returns one score per row (NaN: missing).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from lepton_ops.detect.scoring import FloatArray

#: Rows of history the windowed Gaussian baseline uses.
GAUSSIAN_WINDOW = 6400
RANDOM_SEED = 42


def never(name: str, timestamps: FloatArray, values: FloatArray) -> FloatArray:
    return np.where(np.isfinite(values), 0.0, np.nan)


def random(name: str, timestamps: FloatArray, values: FloatArray) -> FloatArray:
    rng = np.random.default_rng([RANDOM_SEED, zlib.crc32(name.encode())])
    return np.where(np.isfinite(values), rng.random(values.size), np.nan)


def windowed_gaussian(name: str, timestamps: FloatArray, values: FloatArray) -> FloatArray:
    out = np.full(values.size, np.nan)
    valid = np.flatnonzero(np.isfinite(values))
    x = values[valid]
    if not x.size:
        return out
    center = float(np.median(x[: min(x.size, 100)]))  # for the sums' precision only
    y = x - center
    s1 = np.concatenate(([0.0], np.cumsum(y)))
    s2 = np.concatenate(([0.0], np.cumsum(y * y)))
    i = np.arange(x.size)
    lo = np.maximum(0, i - GAUSSIAN_WINDOW)
    count = (i - lo).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (s1[i] - s1[lo]) / count
        var = (s2[i] - s2[lo]) / count - mean * mean
        std = np.sqrt(np.maximum(var, 0.0))
        z = np.abs(y - mean) / std
    z = np.where(std > 0, z, np.where(np.abs(y - mean) > 0, np.inf, 0.0))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    score = np.where(count >= 2, erf(np.minimum(z, 40.0) / math.sqrt(2.0)), 0.0)
    out[valid] = score
    return out


def previous(name: str, timestamps: FloatArray, values: FloatArray) -> FloatArray:
    from lepton_ops.detect.previous_scorer import score_series

    return score_series(timestamps, values)
