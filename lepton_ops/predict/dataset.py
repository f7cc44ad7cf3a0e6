"""A labelled data set from the telemetry store: every node's samples in a time range, with
their features (:mod:`~lepton_ops.predict.features`), labels and the failures behind them
(:mod:`~lepton_ops.predict.labels`).

Rows are ordered by node, then time: what the alarm-episode arithmetic of
:mod:`~lepton_ops.predict.metrics` walks through.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from lepton_ops.errors import OperationFailed
from lepton_ops.predict.features import featurize
from lepton_ops.predict.frames import read_frames
from lepton_ops.predict.labels import (
    GRACE_S,
    FailureEvent,
    FaultSpan,
    failure_events,
    fault_spans,
    label_samples,
)
from lepton_ops.predict.rolling import BoolArray, FloatArray
from lepton_ops.telemetry.history import HistoryStore

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    nodes: tuple[str, ...]
    #: per row: index into ``nodes``
    node: IntArray
    ts: FloatArray
    X: FloatArray
    y: npt.NDArray[np.int8]
    trainable: BoolArray
    countable: BoolArray
    in_fault: BoolArray
    #: every failure and fault known for the data's time range (also just outside it)
    events: tuple[FailureEvent, ...]
    spans: tuple[FaultSpan, ...]
    horizon_s: float
    window_s: float

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, rows: BoolArray) -> Dataset:
        """The rows where ``rows`` is true (the failures and faults are kept)."""
        return replace(
            self,
            node=self.node[rows],
            ts=self.ts[rows],
            X=self.X[rows],
            y=self.y[rows],
            trainable=self.trainable[rows],
            countable=self.countable[rows],
            in_fault=self.in_fault[rows],
        )

    @property
    def node_names(self) -> npt.NDArray[np.str_]:
        return np.asarray(self.nodes, dtype=np.str_)[self.node]

    def events_between(self, since: float, until: float) -> list[FailureEvent]:
        """Failures with ``failed_at`` in ``(since, until]``."""
        return [e for e in self.events if since < e.failed_at <= until]

    def summary(self) -> dict[str, object]:
        """Counts for people and for the model's metadata."""
        first = last = None
        events: list[FailureEvent] = []
        if len(self):
            first, last = float(self.ts.min()), float(self.ts.max())
            events = [e for e in self.events if first <= e.failed_at <= last]
        return {
            "since": first,
            "until": last,
            "nodes": len(set(self.node.tolist())),
            "samples": len(self),
            "trainable": int(self.trainable.sum()),
            "positives": int((self.y[self.trainable] == 1).sum()),
            "failures": len(events),
            "failures_by_kind": dict(sorted(Counter(e.kind for e in events).items())),
        }


def build_dataset(
    store: HistoryStore,
    *,
    since: float | None,
    until: float | None,
    horizon_s: float,
    window_s: float,
    grace_s: float = GRACE_S,
) -> Dataset:
    """Every node's samples in ``[since, until]``, featurized and labelled.

    Features of the first samples look back a window before ``since``. OperationFailed if
    the store has no telemetry in the range.
    """
    frames = read_frames(store, None if since is None else since - window_s, until)
    if not frames:
        raise OperationFailed(
            f"no telemetry {_range(since, until)} in {store.path}: collect "
            "some with 'lepton-ops telemetry collect'"
        )
    features = featurize(frames, window_s)
    faults = store.faults(until=until)
    incidents = store.incidents(since=None if since is None else since - window_s, until=until)
    up = {node: (nf.ts, nf.up) for node, nf in features.items()}
    events = failure_events(faults, incidents, up, grace_s)
    spans = fault_spans(faults, grace_s)
    data_end = max(float(nf.ts[-1]) for nf in features.values())
    nodes = tuple(sorted(features))
    parts: dict[str, list[npt.NDArray[np.generic]]] = {
        key: [] for key in ("node", "ts", "X", "y", "trainable", "countable", "in_fault")
    }
    for index, node in enumerate(nodes):
        nf = features[node]
        labels = label_samples(node, nf.ts, events, spans, horizon_s, data_end)
        keep = nf.ts >= since if since is not None else np.ones(len(nf.ts), dtype=bool)
        parts["node"].append(np.full(int(keep.sum()), index, dtype=np.int64))
        parts["ts"].append(nf.ts[keep])
        parts["X"].append(nf.matrix[keep])
        parts["y"].append(labels.y[keep])
        parts["trainable"].append(labels.trainable[keep])
        parts["countable"].append(labels.countable[keep])
        parts["in_fault"].append(labels.in_fault[keep])
    joined = {key: np.concatenate(arrays) for key, arrays in parts.items()}
    if not len(joined["ts"]):
        raise OperationFailed(
            f"no telemetry {_range(since, until)} in {store.path}: collect "
            "some with 'lepton-ops telemetry collect'"
        )
    return Dataset(
        nodes=nodes,
        node=joined["node"],
        ts=joined["ts"],
        X=joined["X"],
        y=joined["y"],
        trainable=joined["trainable"],
        countable=joined["countable"],
        in_fault=joined["in_fault"],
        events=tuple(events),
        spans=tuple(spans),
        horizon_s=horizon_s,
        window_s=window_s,
    )


def _range(since: float | None, until: float | None) -> str:
    def clock(ts: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))

    if since is None and until is None:
        return "at all"
    if until is None:
        return f"since {clock(since)}"  # type: ignore[arg-type]
    if since is None:
        return f"until {clock(until)}"
    return f"between {clock(since)} and {clock(until)}"
