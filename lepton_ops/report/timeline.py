"""Each node's timeline for the HTML page: a few telemetry series, thinned to the chart's width.

The series drawn (all in percent, so they share one axis):

- **service memory** - ``lepton_service_memory_used_pct``, the highest of the node's
  services at each time (the one closest to its memory limit);
- **data disk** - ``lepton_node_disk_used_pct``, the fullest path other than ``/`` (the
  host's own root is shared in the lab; the node's data directory is what fills up); ``/``
  only when the node reports no other path;
- **health** - 100 when the observation is up, 0 when down (see
  :mod:`~lepton_ops.report.stability`).

A day of 10-second collections is ~8600 points a series; each series is cut into at most
:data:`BUCKETS` buckets of equal time and keeps each bucket's highest value (health: its
lowest), so a short spike or outage stays visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lepton_ops.report.stability import Observation, State
from lepton_ops.telemetry.records import Series

MEMORY = "lepton_service_memory_used_pct"
DISK = "lepton_node_disk_used_pct"
ROOT_PATH = "/"
BUCKETS = 400

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class NodeTimeline:
    node: str
    memory: Points
    disk: Points
    health: Points

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "memory": self.memory, "disk": self.disk, "health": self.health}


def timelines(
    nodes: Sequence[str],
    memory: Iterable[Series],
    disk: Iterable[Series],
    observed: dict[str, list[Observation]],
    since: float,
    until: float,
    buckets: int = BUCKETS,
) -> dict[str, NodeTimeline]:
    """Each node's thinned series over ``[since, until]``."""
    memory_by = _highest(memory, lambda series: True)
    data_disks = _highest(disk, lambda series: series.labels.get("path") != ROOT_PATH)
    root_disks = _highest(disk, lambda series: series.labels.get("path") == ROOT_PATH)
    found = {}
    for node in nodes:
        health = [
            (o.ts, 100.0 if o.state is State.UP else 0.0)
            for o in observed.get(node, [])
            if o.state is not State.UNKNOWN
        ]
        found[node] = NodeTimeline(
            node,
            thin(memory_by.get(node, []), since, until, buckets, max),
            thin(data_disks.get(node) or root_disks.get(node, []), since, until, buckets, max),
            thin(health, since, until, buckets, min),
        )
    return found


def _highest(series: Iterable[Series], keep: Callable[[Series], bool]) -> dict[str, Points]:
    """Per node, the highest value of the kept series at each time."""
    by_node: dict[str, dict[float, float]] = {}
    for entry in series:
        if not keep(entry):
            continue
        points = by_node.setdefault(entry.node, {})
        for ts, value in entry.points:
            points[ts] = max(value, points.get(ts, value))
    return {node: sorted(points.items()) for node, points in by_node.items()}


def thin(
    points: Sequence[tuple[float, float]],
    since: float,
    until: float,
    buckets: int,
    pick: Callable[[float, float], float],
) -> Points:
    """At most ``buckets`` points: per time bucket, the first time and the picked value."""
    if len(points) <= buckets or until <= since:
        return [(ts, value) for ts, value in points if since <= ts <= until]
    width = (until - since) / buckets
    kept: dict[int, tuple[float, float]] = {}
    for ts, value in points:
        if not since <= ts <= until:
            continue
        index = min(int((ts - since) / width), buckets - 1)
        if index in kept:
            first, best = kept[index]
            kept[index] = (first, pick(best, value))
        else:
            kept[index] = (ts, value)
    return [kept[index] for index in sorted(kept)]
