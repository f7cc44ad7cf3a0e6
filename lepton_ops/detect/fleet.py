"""The streaming detector on a fleet's stored telemetry: each node's recent alarms, with
the series that raised them.

Every watched series of a node (:data:`WATCHED_METRICS`: the metrics a failure shows in -
service memory, disk use, CPU, health, latency, reachability) is scored by
:mod:`~lepton_ops.detect.detector` over its last :data:`HISTORY_ROWS` points (enough for
the warm-up and a full calibration window). A node's anomaly score is the highest alarm
of its series in the last ``recent_s`` seconds; the series behind it are named.

One threshold for the fleet, :data:`FLEET_THRESHOLD` = 0.8: a surprise of 6.4 decades,
about one row in 2.5 million of a series behaving as before. A node watched on ~30 series
sampled every 5 s has ~500,000 rows a day: that keeps chance alarms well under one per
node-day, the budget an operator can live with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton_ops.detect.detector import DetectorOptions, detect
from lepton_ops.detect.telemetry_corpus import METRICS
from lepton_ops.telemetry.records import Series
from lepton_ops.telemetry.store import TelemetryStore

#: The metrics a node is watched on.
WATCHED_METRICS = METRICS
#: A node is at risk when one of its series alarms at or above this.
FLEET_THRESHOLD = 0.8
#: An alarm counts for this long after its row (a detector alarms once per anomaly).
RECENT_S = 120.0
#: Points of each series scored (the warm-up and a full calibration window).
HISTORY_ROWS = DetectorOptions().warmup + DetectorOptions().calibration_window
#: The named series of a node, at most.
TOP_SERIES = 3


@dataclass(frozen=True)
class SeriesAlarm:
    """A series' highest recent alarm."""

    series: str
    score: float
    ts: float
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "score": round(self.score, 4),
            "ts": self.ts,
            "value": round(self.value, 6),
        }


@dataclass(frozen=True)
class NodeAlarms:
    node: str
    #: the highest recent alarm of the node's series (0: none)
    score: float
    #: the series that alarmed, loudest first
    series: tuple[SeriesAlarm, ...]
    #: the node's latest watched point
    latest_ts: float | None


def series_label(series: Series) -> str:
    """``metric{key="value",...}``, as Prometheus writes a series."""
    if not series.labels:
        return series.metric
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(series.labels.items()))
    return f"{series.metric}{{{inner}}}"


def node_alarms(
    store: TelemetryStore,
    now: float,
    nodes: list[str] | None = None,
    *,
    recent_s: float = RECENT_S,
    history_s: float | None = None,
) -> dict[str, NodeAlarms]:
    """Each node's recent alarms (of ``nodes``, default every node of the store), from the
    data up to ``now``; ``history_s`` bounds the data read (default: no bound but the last
    :data:`HISTORY_ROWS` points of each series)."""
    since = None if history_s is None else now - history_s
    found: dict[str, list[SeriesAlarm]] = {}
    latest: dict[str, float] = {}
    wanted = None if nodes is None else set(nodes)
    for metric in sorted(WATCHED_METRICS):
        for series in store.series(metric=metric, since=since, until=now):
            if wanted is not None and series.node not in wanted:
                continue
            points = series.points[-HISTORY_ROWS:]
            stamps = np.array([p[0] for p in points], dtype=np.float64)
            values = np.array([p[1] for p in points], dtype=np.float64)
            latest[series.node] = max(latest.get(series.node, -np.inf), float(stamps[-1]))
            scores = np.nan_to_num(detect(stamps, values), nan=0.0)
            recent = np.flatnonzero((stamps > now - recent_s) & (scores > 0))
            alarms = found.setdefault(series.node, [])
            if recent.size:
                best = int(recent[np.argmax(scores[recent])])
                alarms.append(
                    SeriesAlarm(
                        series_label(series),
                        float(scores[best]),
                        float(stamps[best]),
                        float(values[best]),
                    )
                )
    result = {}
    for node in sorted(set(found) | set(latest)):
        alarms = sorted(found.get(node, []), key=lambda a: (-a.score, a.series))[:TOP_SERIES]
        result[node] = NodeAlarms(
            node, alarms[0].score if alarms else 0.0, tuple(alarms), latest.get(node)
        )
    return result
