"""Evaluation a skeptical SRE would accept: train on the past, judge on the future.

**Split by time, never at random.** The failures in the data are ordered by time; the
last ``test_fraction`` of them (default 40 %) are held out. The cut is placed at the
earliest moment a held-out failure could be announced (its fault's injection; for a
failure from incidents, its horizon and window before it), and only where every
training failure happened before it - with faults injected in batches, the nearest such
place to the wanted share:

- the model trains on samples up to ``cut - horizon`` only, so no training label looks
  past the cut (a label says whether a failure follows within the horizon);
- it is judged on the samples after the cut, which it never saw, with its alarm
  threshold chosen on the training part alone (:func:`~lepton_ops.predict.model.train`).

**Same samples, same counting, three contenders** (:mod:`~lepton_ops.predict.metrics`):

- the model (its probability at its threshold);
- ``threshold``: a static rule, service memory used > 90 % of its limit or a node's own
  file system > 90 % full;
- ``predict_linear``: extrapolation alone, a service's memory or a file system reaching
  100 % within the horizon at the window's least-squares slope;

plus ``anomaly`` (the unsupervised score alone at its threshold) for reference.

Sudden faults (``kill``, ``hang``, ``partition``) have nothing to announce them; they are
counted (per fault type, so progressive ones can be read apart) rather than hidden.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lepton_ops.errors import OperationFailed
from lepton_ops.predict.anomaly import ANOMALY_THRESHOLD
from lepton_ops.predict.dataset import Dataset
from lepton_ops.predict.features import FEATURE_INDEX
from lepton_ops.predict.labels import FailureEvent
from lepton_ops.predict.metrics import Score, score_alarms, targets
from lepton_ops.predict.model import MODE_CLASSIFIER, Predictor, TrainOptions, train
from lepton_ops.predict.rolling import BoolArray, FloatArray

TEST_FRACTION = 0.4
#: The static rule's limit, in percent (service memory, own file system).
THRESHOLD_PCT = 90.0


@dataclass(frozen=True)
class Split:
    """Train on samples at or before ``cut - horizon``; evaluate on those after ``cut``."""

    cut: float
    horizon_s: float
    train_failures: tuple[FailureEvent, ...]
    test_failures: tuple[FailureEvent, ...]

    @property
    def train_until(self) -> float:
        return self.cut - self.horizon_s

    def train_rows(self, dataset: Dataset) -> BoolArray:
        rows: BoolArray = dataset.ts <= self.train_until
        return rows

    def test_rows(self, dataset: Dataset) -> BoolArray:
        rows: BoolArray = dataset.ts > self.cut
        return rows


@dataclass(frozen=True)
class Evaluation:
    model: Score
    baselines: dict[str, Score]
    predictor: Predictor
    split: Split
    options: TrainOptions
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        rules = {
            "threshold": f"service memory or own file system used > {THRESHOLD_PCT:g} %",
            "predict_linear": "service memory or own file system full within the horizon "
            "at the window's slope",
            "anomaly": f"anomaly score >= {ANOMALY_THRESHOLD:g}",
        }
        return {
            "mode": self.predictor.mode,
            **self.model.to_dict(),
            "threshold": round(self.predictor.threshold, 4),
            "horizon_s": self.options.horizon_s,
            "window_s": self.options.window_s,
            "min_lead_s": self.options.min_lead_s,
            "baselines": {
                name: {**score.to_dict(), "rule": rules[name]}
                for name, score in self.baselines.items()
            },
            "split": {"cut": self.split.cut, **self.parts},
            "notes": list(self.predictor.info.get("notes", [])),
        }


def split_by_time(dataset: Dataset, test_fraction: float = TEST_FRACTION) -> Split:
    """Where to cut ``dataset`` (see the module's doc); OperationFailed if it cannot be cut."""
    if not 0.0 < test_fraction < 1.0:
        raise OperationFailed(f"the held-out share must be between 0 and 1, got {test_fraction}")
    horizon, window = dataset.horizon_s, dataset.window_s
    first, last = float(dataset.ts.min()), float(dataset.ts.max())
    failures = sorted(
        (e for e in dataset.events if first < e.failed_at <= last), key=lambda e: e.failed_at
    )
    if len(failures) < 2:
        raise OperationFailed(
            f"evaluation needs at least 2 failures in the data, found {len(failures)}: run a "
            "chaos campaign ('lepton-ops chaos') or widen --since"
        )
    held_out = min(max(round(len(failures) * test_fraction), 1), len(failures) - 1)
    wanted = len(failures) - held_out
    # Try the wanted split first, then the nearest ones, until a cut is clear of failures.
    for first_test in sorted(range(1, len(failures)), key=lambda k: (abs(k - wanted), -k)):
        cut = min(e.detection_start(horizon, window) for e in failures[first_test:])
        if failures[first_test - 1].failed_at < cut and (dataset.ts <= cut - horizon).any():
            return Split(cut, horizon, tuple(failures[:first_test]), tuple(failures[first_test:]))
    raise OperationFailed(
        "cannot split the data by time: the failures overlap (each would need to be "
        "announced before the previous one failed); collect a longer history"
    )


def evaluate(
    dataset: Dataset, options: TrainOptions, test_fraction: float = TEST_FRACTION
) -> Evaluation:
    """Train on the earlier part of ``dataset``, score the model and baselines on the later."""
    options.check()
    split = split_by_time(dataset, test_fraction)
    training = dataset.select(split.train_rows(dataset))
    testing = dataset.select(split.test_rows(dataset))
    predictor = train(training, options)
    failures = targets(split.test_failures, options.horizon_s, options.window_s)

    def score(alarm: BoolArray) -> Score:
        return score_alarms(
            testing.node_names,
            testing.ts,
            alarm,
            testing.countable,
            failures,
            testing.spans,
            horizon_s=options.horizon_s,
            min_lead_s=options.min_lead_s,
        )

    model = score(predictor.risk(testing.X) >= predictor.threshold)
    baselines = {
        "threshold": score(threshold_rule(testing)),
        "predict_linear": score(predict_linear_rule(testing, options.horizon_s)),
    }
    if predictor.mode == MODE_CLASSIFIER:
        baselines["anomaly"] = score(predictor.anomaly_score(testing.X) >= ANOMALY_THRESHOLD)
    parts = {
        "train": _part(training, split.train_failures),
        "test": _part(testing, split.test_failures),
    }
    return Evaluation(model, baselines, predictor, split, options, parts)


def threshold_rule(dataset: Dataset) -> BoolArray:
    """The static rule: memory or an own file system above :data:`THRESHOLD_PCT`."""
    memory = np.nan_to_num(_column(dataset, "mem_used_pct_max"), nan=0.0)
    disk = np.nan_to_num(_column(dataset, "disk_used_pct_max"), nan=0.0)
    alarm: BoolArray = (memory > THRESHOLD_PCT) | (disk > THRESHOLD_PCT)
    return alarm


def predict_linear_rule(dataset: Dataset, horizon_s: float) -> BoolArray:
    """Extrapolation alone: memory or an own file system full within the horizon."""
    memory, disk = _column(dataset, "mem_tte_s"), _column(dataset, "disk_tte_s")
    # NaN (no level known) compares false: no alarm
    alarm: BoolArray = (memory < horizon_s) | (disk < horizon_s)
    return alarm


def _column(dataset: Dataset, name: str) -> FloatArray:
    column: FloatArray = dataset.X[:, FEATURE_INDEX[name]]
    return column


def _part(dataset: Dataset, failures: tuple[FailureEvent, ...]) -> dict[str, Any]:
    return {
        "since": float(dataset.ts.min()) if len(dataset) else None,
        "until": float(dataset.ts.max()) if len(dataset) else None,
        "samples": len(dataset),
        "failures": len(failures),
        "failures_by_kind": dict(sorted(Counter(e.kind for e in failures).items())),
    }
