"""One node's telemetry as aligned arrays: the predictor's view of the store.

A :class:`NodeFrame` holds every sample time of a node (the union of its series' point
times: one per collection, an unreachable collection included) and, for each series
(metric and labels), its values at those times, NaN where the series has no point (a
node that did not answer has only ``lepton_node_reachable`` = 0 at that time).

:func:`read_frames` reads each node's window with one ``store.series(node=...)`` call
(one contiguous range of the store's key), so featurizing a whole campaign is a handful
of queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from lepton_ops.predict.rolling import BoolArray, FloatArray
from lepton_ops.telemetry.catalogue import METRICS
from lepton_ops.telemetry.history import HistoryStore

#: Labels of a series besides ``node``, as sorted ``(name, value)`` pairs.
LabelKey = tuple[tuple[str, str], ...]

REACHABLE = "lepton_node_reachable"
HEALTHY = "lepton_service_healthy"
DISK_USED = "lepton_node_disk_used_pct"
DISK_FREE = "lepton_node_disk_free_bytes"
#: The host's root file system: shared by every node of a one-machine lab.
ROOT_PATH = "/"


@dataclass
class NodeFrame:
    """A node's samples: times (sorted, unique) and each series' values at those times."""

    node: str
    ts: FloatArray
    #: (metric, labels) -> values aligned with ``ts`` (NaN: no point at that time)
    values: dict[tuple[str, LabelKey], FloatArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts)

    def series(self, metric: str) -> list[tuple[dict[str, str], FloatArray]]:
        """Every series of ``metric``: its labels and values, in label order."""
        return [
            (dict(labels), values)
            for (name, labels), values in sorted(self.values.items())
            if name == metric
        ]

    def single(self, metric: str) -> FloatArray:
        """The values of a node-level metric (NaN everywhere if the node has none)."""
        return self.values.get((metric, ()), np.full(len(self.ts), np.nan))

    def up(self) -> BoolArray:
        """Samples where the node answered and every service it reports was healthy.

        A sample that says nothing either way (no reachability or health series, as from
        a source that does not record them) counts as up: it shows no failure.
        """
        reachable = self.single(REACHABLE)
        up: BoolArray = ~(reachable == 0.0)
        for _, healthy in self.series(HEALTHY):
            up &= ~(healthy == 0.0)
        return up

    def data_disks(self) -> list[tuple[str, FloatArray, FloatArray]]:
        """``(path, used_pct, free_bytes)`` of the node's own file systems.

        Leaves out ``/`` (host-wide) and, sample by sample, any path that reports the
        very numbers ``/`` reports at that time: a directory on the root file system
        (the lab's bind mounts) is not a disk of its own.
        """
        used_by_path = {labels.get("path", ""): values for labels, values in self.series(DISK_USED)}
        free_by_path = {labels.get("path", ""): values for labels, values in self.series(DISK_FREE)}
        nothing = np.full(len(self.ts), np.nan)
        root_used = used_by_path.get(ROOT_PATH, nothing)
        root_free = free_by_path.get(ROOT_PATH, nothing)
        disks = []
        for path, used in used_by_path.items():
            if path == ROOT_PATH:
                continue
            free = free_by_path.get(path, nothing)
            on_root = (used == root_used) & (free == root_free)
            disks.append((path, np.where(on_root, np.nan, used), np.where(on_root, np.nan, free)))
        return disks


def read_frames(
    store: HistoryStore,
    since: float | None,
    until: float | None,
    nodes: Iterable[str] | None = None,
) -> dict[str, NodeFrame]:
    """Each node's frame over ``[since, until]`` (nodes without a sample there are left out).

    Only metrics of the catalogue are kept (a store may hold others, e.g. pulled ones).
    """
    frames: dict[str, NodeFrame] = {}
    for node in sorted(nodes) if nodes is not None else store.nodes():
        series = [
            s for s in store.series(node=node, since=since, until=until) if s.metric in METRICS
        ]
        if not series:
            continue
        times = [np.fromiter((ts for ts, _ in s.points), np.float64) for s in series]
        ts = np.unique(np.concatenate(times))
        frame = NodeFrame(node, ts)
        for entry, point_times in zip(series, times, strict=True):
            aligned = np.full(len(ts), np.nan)
            aligned[np.searchsorted(ts, point_times)] = [value for _, value in entry.points]
            key = (entry.metric, tuple(sorted(entry.labels.items())))
            frame.values[key] = aligned
        frames[node] = frame
    return frames
