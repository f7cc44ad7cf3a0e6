"""Applying a trained model to the fleet now: one :class:`NodePrediction` per node.

Each node is judged on its latest sample (its features from the window before it, as in
training). Its *anomaly score* is the streaming detector's (:mod:`~lepton_ops.detect.fleet`):
the loudest recent alarm of the node's watched series, with those series named. A model
trained without failures (anomaly only) and a fleet with no model at all are judged on
that score alone, against the detector's fleet threshold
(:data:`~lepton_ops.detect.fleet.FLEET_THRESHOLD`).

The prediction says how old the judged sample is: data older than
``stale_after_s`` (default three windows) is *stale* - a probability about the next
``horizon`` computed from minutes-old telemetry would be a guess, so none is given and
the node is flagged instead. A node whose last :data:`DOWN_CONFIRMATIONS` collections
all show it down (unreachable or a failed health check) is flagged ``failing_now``: that
is detection, and the probability is still reported. One failed check is not enough: a
health check that times out once on a loaded node is not a failure, and acting on it
would restart healthy services (the confirmation costs one collection interval, like a
Kubernetes probe's failure threshold or a Prometheus alert's ``for``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_ops.detect.fleet import FLEET_THRESHOLD, RECENT_S, NodeAlarms, SeriesAlarm, node_alarms
from lepton_ops.errors import OperationFailed
from lepton_ops.predict.features import featurize
from lepton_ops.predict.frames import HEALTHY, REACHABLE, read_frames
from lepton_ops.predict.model import Contribution, Predictor
from lepton_ops.predict.rolling import BoolArray
from lepton_ops.telemetry.history import HistoryStore, history_path

#: Data older than this many windows is stale.
STALE_WINDOWS = 3.0
#: How many collections in a row must show a node down before it is "failing now".
DOWN_CONFIRMATIONS = 2


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
    #: the watched series whose recent alarms make the anomaly score, loudest first
    anomaly_series: tuple[SeriesAlarm, ...] = ()
    #: recent alarms of series that moved on most nodes at once: not this node's failure
    fleet_wide_series: tuple[SeriesAlarm, ...] = ()
    #: recent memory and disk alarms while the resource is not running out: not a risk
    far_from_limit_series: tuple[SeriesAlarm, ...] = ()

    @property
    def risk(self) -> float | None:
        """What ``threshold`` is compared with: the probability, else the anomaly score."""
        return self.anomaly_score if self.probability is None else self.probability

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
            "anomaly_series": [alarm.to_dict() for alarm in self.anomaly_series],
            "fleet_wide_series": [alarm.to_dict() for alarm in self.fleet_wide_series],
            "far_from_limit_series": [alarm.to_dict() for alarm in self.far_from_limit_series],
        }


def predict_fleet(
    store: HistoryStore,
    predictor: Predictor,
    now: float | None = None,
    *,
    nodes: Iterable[str] | None = None,
    threshold: float | None = None,
    stale_after_s: float | None = None,
) -> list[NodePrediction]:
    """A prediction for each node of the store (or of ``nodes``), from data up to ``now``.

    With a classifier, ``threshold`` (default the model's) applies to the probability; an
    anomaly-only model is judged on the detector's score against ``threshold`` (default
    :data:`~lepton_ops.detect.fleet.FLEET_THRESHOLD`).
    """
    now = time.time() if now is None else float(now)
    anomaly_only = predictor.classifier is None
    default = FLEET_THRESHOLD if anomaly_only else predictor.threshold
    limit = default if threshold is None else float(threshold)
    stale_after = STALE_WINDOWS * predictor.window_s if stale_after_s is None else stale_after_s
    wanted = sorted(nodes) if nodes is not None else store.nodes()
    frames = read_frames(store, now - stale_after - predictor.window_s, now, wanted)
    features = featurize(frames, predictor.window_s)
    latest = {sample.node: sample.ts for sample in store.latest() if sample.node in wanted}
    alarms = node_alarms(store, now, wanted, recent_s=max(predictor.window_s, RECENT_S))
    found: list[NodePrediction] = []
    for node in wanted:
        nf = features.get(node)
        sample_ts = float(nf.ts[-1]) if nf is not None else latest.get(node)
        age = None if sample_ts is None or sample_ts > now else now - sample_ts
        if nf is None or age is None or age > stale_after:
            found.append(_stale(node, predictor.horizon_s, limit, sample_ts, age))
            continue
        row = nf.matrix[-1:]
        probability = predictor.probability(row)
        node_alarm = alarms.get(node)
        anomaly = node_alarm.score if node_alarm is not None else 0.0
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
                failing_now=confirmed_down(nf.up),
                anomaly_series=() if node_alarm is None else node_alarm.series,
                fleet_wide_series=() if node_alarm is None else node_alarm.fleet_wide,
                far_from_limit_series=() if node_alarm is None else node_alarm.far_from_limit,
            )
        )
    return found


def detect_fleet(
    store: HistoryStore,
    now: float | None = None,
    *,
    nodes: Iterable[str] | None = None,
    threshold: float | None = None,
    stale_after_s: float = STALE_WINDOWS * RECENT_S,
) -> list[NodePrediction]:
    """Without a model: each node judged on the streaming detector's alarms alone."""
    now = time.time() if now is None else float(now)
    limit = FLEET_THRESHOLD if threshold is None else float(threshold)
    wanted = sorted(nodes) if nodes is not None else store.nodes()
    alarms = node_alarms(store, now, wanted)
    down = down_now(store, wanted, now, lookback_s=stale_after_s)
    found = []
    for node in wanted:
        node_alarm = alarms.get(node) or NodeAlarms(node, 0.0, (), None)
        sample_ts = node_alarm.latest_ts
        age = None if sample_ts is None or sample_ts > now else now - sample_ts
        if age is None or age > stale_after_s:
            found.append(_stale(node, RECENT_S, limit, sample_ts, age))
            continue
        found.append(
            NodePrediction(
                node,
                None,
                node_alarm.score,
                RECENT_S,
                limit,
                node_alarm.score >= limit,
                (),
                sample_ts,
                age,
                stale=False,
                failing_now=down.get(node, False),
                anomaly_series=node_alarm.series,
                fleet_wide_series=node_alarm.fleet_wide,
                far_from_limit_series=node_alarm.far_from_limit,
            )
        )
    return found


def confirmed_down(up: Sequence[bool] | BoolArray) -> bool:
    """Whether the last :data:`DOWN_CONFIRMATIONS` collections (oldest first) all show down."""
    last = list(up)[-DOWN_CONFIRMATIONS:]
    return len(last) == DOWN_CONFIRMATIONS and not any(last)


def down_now(
    store: HistoryStore,
    nodes: Iterable[str],
    now: float,
    *,
    lookback_s: float = STALE_WINDOWS * RECENT_S,
) -> dict[str, bool]:
    """Each node's "failing now" from its reachability and health samples of the last
    ``lookback_s`` before ``now``: down in each of its last :data:`DOWN_CONFIRMATIONS`
    collections (see :func:`confirmed_down`). A node without such samples is left out."""
    wanted = set(nodes)
    up_at: dict[str, dict[float, bool]] = {}
    for metric in (REACHABLE, HEALTHY):
        for series in store.series(metric=metric, since=now - lookback_s, until=now):
            if series.node not in wanted:
                continue
            times = up_at.setdefault(series.node, {})
            for ts, value in series.points:
                times[ts] = times.get(ts, True) and value >= 1
    return {node: confirmed_down([t[ts] for ts in sorted(t)]) for node, t in up_at.items()}


def _stale(
    node: str, horizon_s: float, limit: float, sample_ts: float | None, age: float | None
) -> NodePrediction:
    return NodePrediction(
        node, None, None, horizon_s, limit, False, (), sample_ts, age, stale=True,
        failing_now=False,
    )  # fmt: skip


def current_risk(state_dir: Path, now: float | None = None) -> list[NodePrediction]:
    """The current model's prediction for every node of ``state_dir``'s store; without a
    model, the streaming detector's alarms alone (:func:`detect_fleet`).

    OperationFailed if the model fails its SHA-256 check, or there is no store.
    """
    from lepton_ops.predict.model_store import has_current, load_current

    saved = load_current(state_dir) if has_current(state_dir) else None
    path = history_path(state_dir)
    if not path.is_file():
        raise OperationFailed(f"no telemetry store at {path}")
    with HistoryStore(path, read_only=True) as store:
        if saved is None:
            return detect_fleet(store, now)
        return predict_fleet(store, saved.predictor, now)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
