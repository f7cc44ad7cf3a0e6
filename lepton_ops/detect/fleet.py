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

A node is alarmed when it stands out from its peers
-----------------------------------------------------
A change that shows on most nodes at once (the same series - metric and labels - on each)
has a shared cause: a file system every node mounts, a host they share, a deploy, the
network. It is not one node failing, and restarting a node would not help. So each alarm
is weighed against the fleet: the *fleet surprise* of a row is the median, over the other
nodes that report the same series, of each one's highest surprise (before the
one-alarm-per-anomaly rule) within :data:`COMOVING_S` seconds of it (0 for a node with no
row there), less :data:`ORDINARY` (the loudest of a few ordinary rows reaches 2 decades
now and then: only more than that is shared). The node's alarm is its score minus that,
in decades: its tail probability divided by the fleet's typical one. An alarm whose fleet
surprise is at least half its score is a *fleet-wide* finding: reported apart
(``NodeAlarms.fleet_wide``), never the node's own alarm.

With three or more nodes the median needs most peers to move for an alarm to be
discounted: one or two failing nodes among five stand out. With two nodes the one peer
decides: both moving together is fleet-wide (there is no majority to tell which one is
normal); one alone is the node's alarm. A single node has no peers and nothing is
discounted.

Disk series: a path that reports the very numbers of the node's ``/`` (a directory on the
root file system, as ``/etc/lepton`` often is) is that file system, scored once as ``/``;
a file system every node sees (a shared mount, or in a one-machine lab the host's own
disk) moves on all nodes at once and is fleet-wide by the rule above, while the node's own
data directory filling up stands out.

Memory and disk alarm only on the way to their limit
----------------------------------------------------
A surprise in a resource that fills up (a service's memory against its budget, a file
system's space) is a risk only when the resource is running out: a worker whose memory
steps from 14 % to 16 % of its budget and stays there is new, not dangerous. So an alarm
of such a series counts (as the node's own alarm) only while its gauge - the service's
``lepton_service_memory_used_pct``, the path's ``lepton_node_disk_used_pct`` - is at
least :data:`NEAR_FULL_PCT`, or would reach 100 % within :data:`EXHAUSTION_HORIZON_S` at
its pace: the median rise per second between the points of its last :data:`PACE_S`
seconds (a median, so one step is no pace; a leak is). The others are reported apart
(``NodeAlarms.far_from_limit``). A series with no gauge (a service without a memory
budget) is not gated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lepton_ops.detect.detector import DetectorOptions, FloatArray, StreamingDetector
from lepton_ops.detect.telemetry_corpus import METRICS, ROOT_PATH, on_root_file_system
from lepton_ops.telemetry.history import HistoryStore
from lepton_ops.telemetry.records import Series

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
#: Rows of other nodes this close in time (seconds) to an alarm are the same moment.
COMOVING_S = 20.0
#: Surprise that is ordinary for the loudest of a few rows (2 decades: one row in 100).
ORDINARY = 0.25
#: An alarm whose fleet surprise is at least this share of its score is fleet-wide.
FLEET_WIDE_SHARE = 0.5
#: A memory or disk alarm counts when its gauge is at least this full (percent) ...
NEAR_FULL_PCT = 90.0
#: ... or would be full within this many seconds at its pace ...
EXHAUSTION_HORIZON_S = 900.0
#: ... the median rise per second between the points of its last this many seconds.
PACE_S = 30.0
#: Series of a resource that fills up: metric -> (resource, the label naming it).
FILLING: dict[str, tuple[str, str]] = {
    "lepton_service_memory_used_pct": ("memory", "service"),
    "lepton_service_rss_bytes": ("memory", "service"),
    "lepton_service_process_rss_bytes": ("memory", "service"),
    "lepton_node_disk_used_pct": ("disk", "path"),
    "lepton_node_disk_free_bytes": ("disk", "path"),
}
#: Each resource's gauge: its share used, in percent.
GAUGES = {"memory": "lepton_service_memory_used_pct", "disk": "lepton_node_disk_used_pct"}


@dataclass(frozen=True)
class SeriesAlarm:
    """A series' highest recent alarm."""

    series: str
    #: the node's alarm above the fleet's (a fleet-wide finding: the alarm itself)
    score: float
    ts: float
    value: float
    #: the fleet surprise at that time: the other nodes' median on the same series
    fleet: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "score": round(self.score, 4),
            "ts": self.ts,
            "value": round(self.value, 6),
            "fleet": round(self.fleet, 4),
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
    #: alarms of series that moved on most nodes at once: not this node's failure
    fleet_wide: tuple[SeriesAlarm, ...] = ()
    #: memory and disk alarms while the resource is not running out: not a risk
    far_from_limit: tuple[SeriesAlarm, ...] = ()


@dataclass(frozen=True)
class _Scored:
    """One series of one node, scored: its valid rows, their alarms and surprises."""

    node: str
    label: str
    stamps: FloatArray
    values: FloatArray
    scores: FloatArray
    surprises: FloatArray
    #: the resource it fills, ``(kind, name)`` (None: not a filling series)
    resource: tuple[str, str] | None = None

    def loudest(self, begin: float, end: float) -> float:
        """The highest surprise of the rows in ``[begin, end]`` (0: none)."""
        first = int(np.searchsorted(self.stamps, begin, side="left"))
        last = int(np.searchsorted(self.stamps, end, side="right"))
        return float(self.surprises[first:last].max()) if last > first else 0.0


def series_label(series: Series) -> str:
    """``metric{key="value",...}``, as Prometheus writes a series."""
    if not series.labels:
        return series.metric
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(series.labels.items()))
    return f"{series.metric}{{{inner}}}"


def node_alarms(
    store: HistoryStore,
    now: float,
    nodes: list[str] | None = None,
    *,
    recent_s: float = RECENT_S,
    history_s: float | None = None,
) -> dict[str, NodeAlarms]:
    """Each node's recent alarms (of ``nodes``, default every node of the store), from the
    data up to ``now``; ``history_s`` bounds the data read (default: no bound but the last
    :data:`HISTORY_ROWS` points of each series). Every node of the store is scored: the
    fleet surprise needs the peers of ``nodes`` too."""
    since = None if history_s is None else now - history_s
    by_label: dict[str, list[_Scored]] = {}
    latest: dict[str, float] = {}
    #: (node, resource) -> the scored series of its gauge (see heading_to_limit)
    gauges: dict[tuple[str, tuple[str, str]], _Scored] = {}
    for metric in sorted(WATCHED_METRICS):
        listed = [
            replace(series, points=series.points[-HISTORY_ROWS:])
            for series in store.series(metric=metric, since=since, until=now)
        ]
        roots = {s.node: dict(s.points) for s in listed if s.labels.get("path") == ROOT_PATH}
        for series in listed:
            stamps = np.array([p[0] for p in series.points], dtype=np.float64)
            latest[series.node] = max(latest.get(series.node, -np.inf), float(stamps[-1]))
            if on_root_file_system(series, roots.get(series.node)):
                continue
            resource = _resource(series)
            scored = _score(series, stamps, resource)
            by_label.setdefault(scored.label, []).append(scored)
            if resource is not None and metric == GAUGES[resource[0]]:
                gauges[series.node, resource] = scored
    wanted = set(latest) if nodes is None else set(nodes) & set(latest)
    own: dict[str, list[SeriesAlarm]] = {node: [] for node in wanted}
    shared: dict[str, list[SeriesAlarm]] = {node: [] for node in wanted}
    harmless: dict[str, list[SeriesAlarm]] = {node: [] for node in wanted}
    for group in by_label.values():
        for scored in group:
            if scored.node not in wanted:
                continue
            peers = [other for other in group if other.node != scored.node]
            alarm, fleet_wide = _recent_alarms(scored, peers, now - recent_s)
            if alarm is not None:
                gauge = (
                    None if scored.resource is None else gauges.get((scored.node, scored.resource))
                )
                if gauge is None or heading_to_limit(gauge.stamps, gauge.values, now):
                    own[scored.node].append(alarm)
                else:
                    harmless[scored.node].append(alarm)
            if fleet_wide is not None:
                shared[scored.node].append(fleet_wide)
    result = {}
    for node in sorted(wanted):
        alarms = sorted(own[node], key=_loudest_first)[:TOP_SERIES]
        result[node] = NodeAlarms(
            node,
            alarms[0].score if alarms else 0.0,
            tuple(alarms),
            latest.get(node),
            tuple(sorted(shared[node], key=_loudest_first)[:TOP_SERIES]),
            tuple(sorted(harmless[node], key=_loudest_first)[:TOP_SERIES]),
        )
    return result


def heading_to_limit(stamps: FloatArray, used_pct: FloatArray, now: float) -> bool:
    """Whether a resource whose share used (percent) is ``used_pct`` at ``stamps`` is running
    out at ``now``: at least :data:`NEAR_FULL_PCT` full, or full within
    :data:`EXHAUSTION_HORIZON_S` at its pace (the median rise per second between its points
    of the last :data:`PACE_S` seconds up to ``now``)."""
    known = np.isfinite(stamps) & np.isfinite(used_pct) & (stamps <= now)
    at, used = stamps[known], used_pct[known]
    if used.size == 0:
        return True  # nothing known about the limit: the alarm is not gated
    level = float(used[-1])
    if level >= NEAR_FULL_PCT:
        return True
    if used.size < 2:
        return False
    # the points of the last PACE_S seconds, and at least the last two
    stretch = min(int(np.searchsorted(at, at[-1] - PACE_S, side="left")), at.size - 2)
    steps = np.diff(at[stretch:])
    rises = np.diff(used[stretch:])
    rates = rises[steps > 0] / steps[steps > 0]
    if rates.size == 0:
        return False
    pace = float(np.median(rates))
    return pace > 0 and (100.0 - level) / pace <= EXHAUSTION_HORIZON_S


def _resource(series: Series) -> tuple[str, str] | None:
    """The resource a series fills, ``(kind, name)``: None for other series."""
    filling = FILLING.get(series.metric)
    if filling is None:
        return None
    kind, label = filling
    name = series.labels.get(label)
    return None if name is None else (kind, name)


def _score(series: Series, stamps: FloatArray, resource: tuple[str, str] | None) -> _Scored:
    values = np.array([p[1] for p in series.points], dtype=np.float64)
    valid = np.isfinite(stamps) & np.isfinite(values)
    detector = StreamingDetector()
    scores = np.nan_to_num(detector.update_many(stamps, values), nan=0.0)
    surprises = np.zeros(stamps.size)
    surprises[valid] = detector.surprises
    return _Scored(series.node, series_label(series), stamps, values, scores, surprises, resource)


def _recent_alarms(
    scored: _Scored, peers: list[_Scored], since: float
) -> tuple[SeriesAlarm | None, SeriesAlarm | None]:
    """The series' loudest recent alarm above its fleet's, and its loudest fleet-wide one."""
    own: SeriesAlarm | None = None
    fleet_wide: SeriesAlarm | None = None
    for row in np.flatnonzero((scored.stamps > since) & (scored.scores > 0)).tolist():
        ts = float(scored.stamps[row])
        score = float(scored.scores[row])
        fleet = _fleet_surprise(peers, ts)
        value = float(scored.values[row])
        if fleet >= FLEET_WIDE_SHARE * score:
            if fleet_wide is None or score > fleet_wide.score:
                fleet_wide = SeriesAlarm(scored.label, score, ts, value, fleet)
        elif own is None or score - fleet > own.score:
            own = SeriesAlarm(scored.label, score - fleet, ts, value, fleet)
    return own, fleet_wide


def _fleet_surprise(peers: list[_Scored], ts: float) -> float:
    """The median over ``peers`` of their highest surprise within :data:`COMOVING_S`,
    less what is :data:`ORDINARY` for the loudest of that many rows."""
    if not peers:
        return 0.0
    loudest = np.median([p.loudest(ts - COMOVING_S, ts + COMOVING_S) for p in peers])
    return max(0.0, float(loudest) - ORDINARY)


def _loudest_first(alarm: SeriesAlarm) -> tuple[float, str]:
    return -alarm.score, alarm.series
