"""The failure predictor: from each node's recent telemetry to the probability that it
fails within a horizon, with the features that drove it.

- :mod:`~lepton_ops.predict.frames` - a node's telemetry from the store as aligned arrays;
- :mod:`~lepton_ops.predict.rolling` - trailing-window statistics (causal, vectorized);
- :mod:`~lepton_ops.predict.features` - the features, defined once;
- :mod:`~lepton_ops.predict.labels` - failures (faults, unexplained incidents) and which
  samples precede them, or must not be used;
- :mod:`~lepton_ops.predict.dataset` - features and labels of a time range of the store;
- :mod:`~lepton_ops.predict.anomaly` - the unsupervised score (robust z against healthy);
- :mod:`~lepton_ops.predict.model` - training (calibrated classifier, threshold) and
  applying a model, with occlusion explanations;
- :mod:`~lepton_ops.predict.model_store` - saved models, versioned, SHA-256 checked;
- :mod:`~lepton_ops.predict.metrics` - alarm episodes, precision, recall, lead times;
- :mod:`~lepton_ops.predict.evaluate` - time split, the model against two baselines;
- :mod:`~lepton_ops.predict.predictor` - the fleet's predictions now
  (:func:`current_risk` for other parts of lepton-ops: the report, remediation).

The anomaly detector behind the predictor's per-series scores, ``model score-csv`` and
the detection benchmark lives in :mod:`lepton_ops.detect`.

Nothing here imports scikit-learn at import time: the CLI stays quick to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lepton_ops.predict.predictor import NodePrediction


def current_risk(state_dir: Path, now: float | None = None) -> list[NodePrediction]:
    """Every node's prediction by the current model (see :mod:`~lepton_ops.predict.predictor`)."""
    from lepton_ops.predict.predictor import current_risk as predict_now

    return predict_now(state_dir, now)
