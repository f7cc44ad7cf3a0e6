"""Applying a trained model to the fleet now: one :class:`NodePrediction` per node.

Each node is judged on its latest sample (its features from the window before it, as in
training). The prediction says how old that sample is: data older than
``stale_after_s`` (default three windows) is *stale* - a probability about the next
``horizon`` computed from minutes-old telemetry would be a guess, so none is given and
the node is flagged instead. A node whose latest sample already shows it down
(unreachable or a failed health check) is flagged ``failing_now``: that is detection,
and the probability is still reported.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_ops.errors import OperationFailed
from lepton_ops.predict.features import featurize
from lepton_ops.predict.frames import read_frames
from lepton_ops.predict.model import Contribution, Predictor
from lepton_ops.telemetry.store import TelemetryStore, store_path

#: Data older than this many windows is stale.
STALE_WINDOWS = 3.0


@dataclass(frozen=True)
class NodePrediction:
    node: str
    #: calibrated probability of failing within ``horizon_s`` (None: anomaly-only model, or stale)
    probability: float | None
    anomaly_score: float | None
    horizon_s: float
    #: what ``probability`` (anomaly-only model: ``anomaly_score``) is compared with
    threshold: float
    at_risk: bool
    top_features: tuple[Contribution, ...]
    #: time of the sample judged, and how old it is
    sample_ts: float | None
    data_age_s: float | None
    stale: bool
    failing_now: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "probability": _round(self.probability),
            "anomaly_score": _round(self.anomaly_score),
            "horizon_s": self.horizon_s,
            "threshold": _round(self.threshold),
            "at_risk": self.at_risk,
            "top_features": [c.to_dict() for c in self.top_features],
            "sample_ts": self.sample_ts,
            "data_age_s": _round(self.data_age_s, 1),
            "stale": self.stale,
            "failing_now": self.failing_now,
        }


def predict_fleet(
    store: TelemetryStore,
    predictor: Predictor,
    now: float | None = None,
    *,
    nodes: Iterable[str] | None = None,
    threshold: float | None = None,
    stale_after_s: float | None = None,
) -> list[NodePrediction]:
    """A prediction for each node of the store (or of ``nodes``), from data up to ``now``."""
    now = time.time() if now is None else float(now)
    limit = predictor.threshold if threshold is None else float(threshold)
    stale_after = STALE_WINDOWS * predictor.window_s if stale_after_s is None else stale_after_s
    wanted = sorted(nodes) if nodes is not None else store.nodes()
    frames = read_frames(store, now - stale_after - predictor.window_s, now, wanted)
    features = featurize(frames, predictor.window_s)
    latest = {sample.node: sample.ts for sample in store.latest() if sample.node in wanted}
    found: list[NodePrediction] = []
    for node in wanted:
        nf = features.get(node)
        sample_ts = float(nf.ts[-1]) if nf is not None else latest.get(node)
        age = None if sample_ts is None or sample_ts > now else now - sample_ts
        if nf is None or age is None or age > stale_after:
            found.append(
                NodePrediction(
                    node,
                    None,
                    None,
                    predictor.horizon_s,
                    limit,
                    False,
                    (),
                    sample_ts,
                    age,
                    stale=True,
                    failing_now=False,
                )
            )
            continue
        row = nf.matrix[-1:]
        probability = predictor.probability(row)
        anomaly = float(predictor.anomaly_score(row)[0])
        risk = anomaly if probability is None else float(probability[0])
        found.append(
            NodePrediction(
                node,
                None if probability is None else float(probability[0]),
                anomaly,
                predictor.horizon_s,
                limit,
                risk >= limit,
                tuple(predictor.explain(row)[0]),
                sample_ts,
                age,
                stale=False,
                failing_now=not bool(nf.up[-1]),
            )
        )
    return found


def current_risk(state_dir: Path, now: float | None = None) -> list[NodePrediction]:
    """The current model's prediction for every node of ``state_dir``'s store.

    OperationFailed if there is no model (or it fails its SHA-256 check) or no store.
    """
    from lepton_ops.predict.model_store import load_current

    saved = load_current(state_dir)
    path = store_path(state_dir)
    if not path.is_file():
        raise OperationFailed(f"no telemetry store at {path}")
    with TelemetryStore(path, read_only=True) as store:
        return predict_fleet(store, saved.predictor, now)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
