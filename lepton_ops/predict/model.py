"""Training and applying the failure predictor.

**The classifier** is scikit-learn's ``HistGradientBoostingClassifier``: it handles the
missing values telemetry has (a node that did not answer, a service without a memory
limit) without imputation, trains in well under a second on a campaign's few thousand
samples, and takes a *monotonic constraint* per feature (from each feature's direction:
more memory used never lowers the risk). With a few dozen failures to learn from, those
constraints are what keeps it from learning coincidences - e.g. "memory just dropped"
(after a restart) as a sign of failure.

**Calibration**: ``CalibratedClassifierCV`` with a sigmoid (Platt) fitted on
out-of-fold scores, the final model trained on all the data (``ensemble=False``). The
folds are contiguous **time blocks**, cut between failures so that each block holds
whole failures (:func:`time_blocks`): a sample is never scored by a model that saw the
seconds around it.

**The alarm threshold** is chosen on those same out-of-fold probabilities - the training
data only, never the evaluation's held-out part: the one that maximises F1 (the event
counting of :mod:`~lepton_ops.predict.metrics`) among those within the false-alarm
budget (``max_false_alarms_per_node_day``), the middle one of a tie.

**The anomaly score** (:mod:`~lepton_ops.predict.anomaly`) is fitted on healthy samples
(negative, not during a fault) and always reported. With fewer than two failures that
the telemetry could have announced, there is no classifier: the model is *anomaly
only* and its at-risk verdict is the anomaly score against
:data:`~lepton_ops.predict.anomaly.ANOMALY_THRESHOLD`.

**Top features** (:meth:`Predictor.explain`) are measured by occlusion: each feature in
turn is replaced by its training median and the probability recomputed; a feature's
contribution is how much the probability drops. It is model-agnostic and honest (it is
what the model does, not what a surrogate says), but correlated features share credit:
memory level, slope and time to exhaustion each get part of a memory leak's.
In anomaly-only mode the contribution is the feature's one-sided robust z-score.
"""

from __future__ import annotations

import itertools
import math
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.predict.anomaly import ANOMALY_THRESHOLD, AnomalyDetector
from lepton_ops.predict.dataset import Dataset, IntArray
from lepton_ops.predict.features import FEATURE_NAMES, FEATURES
from lepton_ops.predict.labels import FailureEvent
from lepton_ops.predict.metrics import Score, score_alarms, targets
from lepton_ops.predict.rolling import FloatArray

MODE_CLASSIFIER = "classifier"
MODE_ANOMALY = "anomaly_only"
#: Below this many failures that the data could announce, no classifier is trained.
MIN_LEARNABLE_FAILURES = 2
#: At most this many candidate thresholds are scored.
_CANDIDATES = 200
#: A threshold used when no candidate detects any training failure.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class TrainOptions:
    horizon_s: float = 60.0
    window_s: float = 120.0
    #: an alarm later than this before the failure is a miss (see metrics.py)
    min_lead_s: float = 10.0
    max_false_alarms_per_node_day: float = 1.0
    folds: int = 5
    seed: int = 0

    def check(self) -> None:
        """BadInput (one line) for options that cannot work."""
        if not 5.0 <= self.horizon_s <= 86_400.0:
            raise BadInput(f"the horizon must be between 5s and 1d, got {self.horizon_s:g} s")
        if not 10.0 <= self.window_s <= 86_400.0:
            raise BadInput(f"the window must be between 10s and 1d, got {self.window_s:g} s")
        if not 0.0 <= self.min_lead_s < self.horizon_s:
            raise BadInput(
                f"the minimum lead time ({self.min_lead_s:g} s) must be shorter than the "
                f"horizon ({self.horizon_s:g} s)"
            )
        if self.max_false_alarms_per_node_day < 0:
            raise BadInput("the false-alarm budget cannot be negative")


@dataclass(frozen=True)
class Contribution:
    feature: str
    #: the feature's value (None: missing)
    value: float | None
    #: probability drop when the feature is set to its training median (anomaly only: z)
    contribution: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "value": None if self.value is None else round(self.value, 4),
            "contribution": round(self.contribution, 4),
        }


@dataclass
class Predictor:
    """A trained model: classifier (or none), anomaly detector, threshold, and its story."""

    classifier: Any | None
    anomaly: AnomalyDetector
    #: per feature, the training median (the occlusion baseline)
    medians: FloatArray
    #: the probability (anomaly only: the anomaly score) at or above which a node is at risk
    threshold: float
    horizon_s: float
    window_s: float
    features: tuple[str, ...] = FEATURE_NAMES
    #: training window, counts, metrics, versions, notes (JSON data)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return MODE_CLASSIFIER if self.classifier is not None else MODE_ANOMALY

    def probability(self, X: FloatArray) -> FloatArray | None:
        """Calibrated probability of failing within the horizon; None in anomaly-only mode."""
        if self.classifier is None:
            return None
        if not len(X):
            return np.zeros(0)
        with one_thread():
            result: FloatArray = self.classifier.predict_proba(X)[:, 1]
        return result

    def anomaly_score(self, X: FloatArray) -> FloatArray:
        return self.anomaly.score(X)

    def risk(self, X: FloatArray) -> FloatArray:
        """What is compared with the threshold: the probability, or the anomaly score."""
        probability = self.probability(X)
        return self.anomaly_score(X) if probability is None else probability

    def explain(self, X: FloatArray, top: int = 3) -> list[list[Contribution]]:
        """The ``top`` features that raised each row's risk most (see the module's doc)."""
        X = np.asarray(X, dtype=np.float64)
        if not len(X):
            return []
        if self.classifier is None:
            effect = self.anomaly.z(X)
        else:
            rows, width = X.shape
            occluded = np.repeat(X[None, :, :], width, axis=0)
            for column in range(width):
                occluded[column, :, column] = self.medians[column]
            with one_thread():
                base = self.classifier.predict_proba(X)[:, 1]
                changed = self.classifier.predict_proba(occluded.reshape(-1, width))[:, 1]
            effect = base[None, :] - changed.reshape(width, rows)
            effect = effect.T
        found = []
        for row, values in zip(effect, X, strict=True):
            best = np.argsort(-row, kind="stable")[:top]
            found.append(
                [
                    Contribution(
                        self.features[j],
                        None if math.isnan(values[j]) else float(values[j]),
                        float(row[j]),
                    )
                    for j in best
                ]
            )
        return found


def train(dataset: Dataset, options: TrainOptions) -> Predictor:
    """A predictor trained on ``dataset``'s trainable samples (see the module's doc)."""
    options.check()
    rows = dataset.trainable
    if not rows.any():
        raise OperationFailed(
            "no usable samples to train on (all are in failed states, censored faults, "
            "or the last horizon of the data): collect more telemetry"
        )
    X, y = dataset.X[rows], dataset.y[rows].astype(np.int64)
    medians = _medians(X)
    healthy = rows & (dataset.y == 0) & ~dataset.in_fault
    if healthy.sum() < 10:
        healthy = rows & (dataset.y == 0)
    anomaly = AnomalyDetector.fit(dataset.X[healthy])
    span = (float(dataset.ts.min()), float(dataset.ts.max()))
    events = [e for e in dataset.events if span[0] < e.failed_at <= span[1] + options.horizon_s]
    learnable = learnable_events(dataset, events)
    info: dict[str, Any] = {
        "training": {
            **dataset.summary(),
            "healthy_samples": int(healthy.sum()),
            "learnable_failures": len(learnable),
        },
        "options": {
            "min_lead_s": options.min_lead_s,
            "max_false_alarms_per_node_day": options.max_false_alarms_per_node_day,
            "folds": options.folds,
        },
        "versions": library_versions(),
        "created_at": time.time(),
        "notes": [],
    }
    why_not = None
    if len(learnable) < MIN_LEARNABLE_FAILURES:
        why_not = (
            f"{len(learnable)} failure(s) the telemetry could announce (at least "
            f"{MIN_LEARNABLE_FAILURES} are needed)"
        )
    else:
        blocks = time_blocks(dataset.ts[rows], learnable, options)
        if not folds_usable(y, blocks):
            why_not = "the failures are too close together to validate on separate time blocks"
    if why_not is not None:
        info["notes"].append(f"{why_not}: trained the anomaly detector only")
        return Predictor(
            None,
            anomaly,
            medians,
            ANOMALY_THRESHOLD,
            options.horizon_s,
            options.window_s,
            info=info,
        )
    classifier, out_of_fold = _fit_calibrated(X, y, blocks, options)
    probabilities = np.full(len(dataset), np.nan)
    probabilities[rows] = out_of_fold
    threshold, score = choose_threshold(dataset, probabilities, events, options)
    info["validation"] = {
        "method": f"out-of-fold over {len(np.unique(blocks))} time blocks of the training data",
        **score.to_dict(),
    }
    if score.detected == 0:
        info["notes"].append(
            "no threshold announced any training failure in time: using "
            f"{DEFAULT_THRESHOLD}; the model will rarely alarm"
        )
    return Predictor(
        classifier, anomaly, medians, threshold, options.horizon_s, options.window_s, info=info
    )


def learnable_events(dataset: Dataset, events: list[FailureEvent]) -> list[FailureEvent]:
    """Failures with at least one trainable positive sample (a sudden kill has none)."""
    names = dataset.node_names
    found = []
    for event in events:
        rows = (
            (names == event.node)
            & dataset.trainable
            & (dataset.y == 1)
            & (dataset.ts >= event.failed_at - dataset.horizon_s)
            & (dataset.ts < event.failed_at)
        )
        if rows.any():
            found.append(event)
    return sorted(found, key=lambda e: e.failed_at)


def time_blocks(ts: FloatArray, learnable: list[FailureEvent], options: TrainOptions) -> IntArray:
    """Block number (0..k-1) of each sample time: contiguous in time, whole failures each.

    The ``learnable`` failures (sorted) are dealt into ``k = min(folds, len)`` groups in
    time order; a block ends just before the next group's first failure's horizon (or at
    the previous failure, if they are closer), so every block holds the positive samples
    of its own failures and each fold's training part has failures too.
    """
    k = max(2, min(options.folds, len(learnable)))
    groups = np.array_split(np.arange(len(learnable)), k)
    cuts = []
    for before, after in itertools.pairwise(groups):
        last_failure = learnable[before[-1]].failed_at
        next_failure = learnable[after[0]].failed_at
        cuts.append(max(last_failure, next_failure - options.horizon_s - 1e-6))
    blocks: IntArray = np.searchsorted(np.asarray(cuts), ts, side="right").astype(np.int64)
    return blocks


def folds_usable(y: Any, blocks: IntArray) -> bool:
    """Whether there are two blocks or more and each fold trains on both classes."""
    present = np.unique(blocks)
    return len(present) >= 2 and all(len(np.unique(y[blocks != b])) == 2 for b in present)


def _fit_calibrated(
    X: FloatArray, y: Any, blocks: IntArray, options: TrainOptions
) -> tuple[Any, FloatArray]:
    """The calibrated classifier, and its calibrated out-of-fold probabilities."""
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    base = HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=150,
        max_leaf_nodes=8,
        min_samples_leaf=5,
        l2_regularization=1.0,
        monotonic_cst=[spec.direction for spec in FEATURES],
        early_stopping=False,
        random_state=options.seed,
    )
    X = _fill_sparse_columns(X, blocks)
    folds = PredefinedSplit(blocks)
    calibrated = CalibratedClassifierCV(base, method="sigmoid", cv=folds, ensemble=False)
    with one_thread():
        calibrated.fit(X, y)
        # The same folds again, to get the out-of-fold scores the sigmoid was fitted on.
        scores = cross_val_predict(clone(base), X, y, cv=folds, method="decision_function")
    calibrator = calibrated.calibrated_classifiers_[0].calibrators[0]
    out_of_fold: FloatArray = np.asarray(calibrator.predict(scores), dtype=np.float64)
    return calibrated, out_of_fold


def _fill_sparse_columns(X: FloatArray, blocks: IntArray) -> FloatArray:
    """``X`` with the missing values of nearly empty columns set to the column's median.

    A column with values in fewer than two time blocks would be all missing in some
    fold's training part, which the gradient-boosting binner cannot take (and which
    could teach nothing anyway): such a column (e.g. swap on hosts without swap) becomes
    a constant, 0 if it has no value at all.
    """
    filled = X.copy()
    for column in range(X.shape[1]):
        present = ~np.isnan(X[:, column])
        if len(np.unique(blocks[present])) >= 2:
            continue
        median = float(np.median(X[present, column])) if present.any() else 0.0
        filled[~present, column] = median
    return filled


def choose_threshold(
    dataset: Dataset, probabilities: FloatArray, events: list[FailureEvent], options: TrainOptions
) -> tuple[float, Score]:
    """The alarm threshold for ``probabilities`` (NaN: no prediction) on ``dataset``.

    Maximises F1 within the false-alarm budget (or, if no threshold keeps to it, has the
    fewest false alarms); the middle threshold of a tie. Only samples with a probability
    count.
    """
    known = ~np.isnan(probabilities)
    values = np.unique(probabilities[known])
    if len(values) > _CANDIDATES:
        values = np.unique(np.quantile(values, np.linspace(0, 1, _CANDIDATES)))
    failures = targets(events, options.horizon_s, options.window_s)
    names = dataset.node_names

    def score_at(threshold: float) -> Score:
        return score_alarms(
            names,
            dataset.ts,
            known & (probabilities >= threshold),
            known & dataset.countable,
            failures,
            dataset.spans,
            horizon_s=options.horizon_s,
            min_lead_s=options.min_lead_s,
        )

    def false_rate(score: Score) -> float:
        return score.false_alarms_per_node_day or 0.0

    def f1(score: Score) -> float:
        return score.f1 or 0.0

    scored = [(float(candidate), score_at(float(candidate))) for candidate in values]
    budget = options.max_false_alarms_per_node_day
    pool = [item for item in scored if false_rate(item[1]) <= budget]
    if not pool and scored:
        fewest = min(false_rate(score) for _, score in scored)
        pool = [item for item in scored if false_rate(item[1]) <= fewest + 1e-12]
    best = max((f1(score) for _, score in pool), default=0.0)
    if best <= 0.0:
        return DEFAULT_THRESHOLD, score_at(DEFAULT_THRESHOLD)
    ties = [item for item in pool if f1(item[1]) >= best - 1e-12]
    return ties[len(ties) // 2]


def _medians(X: FloatArray) -> FloatArray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        medians = np.nanmedian(X, axis=0)
    result: FloatArray = np.nan_to_num(medians, nan=0.0)
    return result


@contextmanager
def one_thread() -> Iterator[None]:
    """Run scikit-learn's OpenMP code on one thread.

    The data sets are small (a fit takes well under a second on one core), and on a
    machine whose cores are busy - the lab's nodes share them - OpenMP threads waiting
    for each other made one fit 15 times slower.
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def library_versions() -> dict[str, str]:
    """Versions of what a model file depends on, as saved in its metadata."""
    from importlib.metadata import PackageNotFoundError, version

    from lepton_ops import __version__

    def installed(distribution: str) -> str:
        try:
            return version(distribution)
        except PackageNotFoundError:
            return "unknown"

    return {
        "lepton_ops": __version__,
        "python": platform.python_version(),
        "sklearn": installed("scikit-learn"),
        "numpy": installed("numpy"),
        "scipy": installed("scipy"),
        "skops": installed("skops"),
    }
