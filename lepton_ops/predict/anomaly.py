"""The unsupervised part: how far a node's features are from the fleet's healthy history.

A fleet with no recorded failure yet has nothing to learn a probability from, but it
does know what normal looks like. For each feature, the healthy samples' median and a
spread give a robust z-score, one-sided along the feature's risk direction (memory
climbing is anomalous, memory dropping after a restart is not); missing values count as
typical. The spread is the largest of

- 1.4826 x the median absolute deviation (a robust standard deviation);
- a third of the distance from the median to the healthy samples' 99.5th percentile
  (0.5th for a feature whose risk rises as it falls): what the healthy history already
  did now and then - a worker's memory burst while it runs a job - scores z = 3 at
  most, which is noise, instead of looking like a leak because it is rare;
- the feature's ``scale`` from :data:`~lepton_ops.predict.features.FEATURES`, so a value
  that never moved does not make the smallest wiggle infinitely surprising.

The node's score is the largest z, mapped to [0, 1): ``1 - exp(-(z - 3) / 3)`` above
z = 3, else 0 (3 robust standard deviations is ordinary noise; z = 5.1 gives 0.5,
z = 9 gives 0.86). The features with the largest z are what made it anomalous.

Everything here is a few numbers per feature, saved as plain JSON in the model's
metadata.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton_ops.predict.features import FEATURES, FeatureSpec
from lepton_ops.predict.rolling import FloatArray

#: z-scores up to this are noise (score 0)...
Z_NOISE = 3.0
#: ...and each further this many multiply the distance to 1 by 1/e.
Z_SCALE = 3.0
#: The score at or above which a node is at risk when the model has no classifier.
ANOMALY_THRESHOLD = 0.5
#: The healthy history's tail (percent each side) that still counts as noise.
TAIL_PCT = 0.5
#: MAD to standard deviation for a normal distribution.
_MAD_TO_STD = 1.4826


@dataclass(frozen=True)
class AnomalyDetector:
    center: FloatArray
    scale: FloatArray
    direction: FloatArray

    @classmethod
    def fit(cls, healthy: FloatArray, specs: Sequence[FeatureSpec] = FEATURES) -> AnomalyDetector:
        """Medians and robust spreads of ``healthy`` (rows: samples, columns: ``specs``)."""
        direction = np.array([float(spec.direction) for spec in specs])
        floors = np.array([spec.scale for spec in specs])
        if not len(healthy):
            return cls(np.zeros(len(specs)), floors, direction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            center = np.nanmedian(healthy, axis=0)
            mad = np.nanmedian(np.abs(healthy - center), axis=0)
            high = np.nanpercentile(healthy, 100.0 - TAIL_PCT, axis=0) - center
            low = center - np.nanpercentile(healthy, TAIL_PCT, axis=0)
        tail = np.where(direction > 0, high, np.where(direction < 0, low, np.fmax(high, low)))
        spread = np.fmax(mad * _MAD_TO_STD, tail / Z_NOISE)
        return cls(
            center=np.nan_to_num(center, nan=0.0),
            scale=np.fmax(np.nan_to_num(spread, nan=0.0), floors),
            direction=direction,
        )

    def z(self, X: FloatArray) -> FloatArray:
        """One-sided robust z-scores (0 for a missing value or one on the safe side)."""
        deviation = (np.asarray(X, dtype=np.float64) - self.center) / self.scale
        deviation = np.nan_to_num(deviation, nan=0.0, posinf=1e6, neginf=-1e6)
        oriented = np.where(
            self.direction > 0,
            deviation,
            np.where(self.direction < 0, -deviation, np.abs(deviation)),
        )
        result: FloatArray = np.maximum(oriented, 0.0)
        return result

    def score(self, X: FloatArray) -> FloatArray:
        """Anomaly score in [0, 1) of each row (see the module's doc)."""
        worst = self.z(X).max(axis=1) if len(X) else np.zeros(0)
        result: FloatArray = 1.0 - np.exp(-np.maximum(worst - Z_NOISE, 0.0) / Z_SCALE)
        return result

    def to_json(self) -> dict[str, list[float]]:
        return {
            "center": [float(v) for v in self.center],
            "scale": [float(v) for v in self.scale],
            "direction": [float(v) for v in self.direction],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], features: int) -> AnomalyDetector:
        arrays = {
            key: np.asarray(data[key], dtype=np.float64) for key in ("center", "scale", "direction")
        }
        for key, array in arrays.items():
            if array.shape != (features,) or not np.all(np.isfinite(array)):
                raise ValueError(f"anomaly {key} is not {features} finite numbers")
        if not np.all(arrays["scale"] > 0):
            raise ValueError("anomaly scale must be positive")
        return cls(arrays["center"], arrays["scale"], arrays["direction"])


def z_to_score(z: float) -> float:
    """The score of a single z-score (for tests and explanations)."""
    return 1.0 - math.exp(-max(z - Z_NOISE, 0.0) / Z_SCALE)
