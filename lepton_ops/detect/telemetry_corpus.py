"""The lab's own telemetry as a labelled corpus: one series per node, metric and labels,
with the anomaly windows of the chaos faults injected on that node.

A fault is an anomaly only for the series that can show it (:data:`FAULT_SIGNALS`: a
memory leak in a service's memory, a full disk in the disk's use, ...; a partitioned node
has no data while it lasts, so its partition is labelled on the other nodes' connections to
it too); a series without such a fault is a no-anomaly control. Its window runs from the fault's
start to the moment it ended (or failed, if it has not ended), and at least
:data:`MIN_WINDOW_S`. The other metrics (configuration constants, counters) are left out.

``lepton-ops model export-corpus DIR --since 2h`` writes it; ``lepton-ops model benchmark
DIR`` scores it. In a one-machine lab the host's own numbers (CPU, memory) are the same
for every node, so a CPU hog on one node shows on all of them: ``cpuhog`` is labelled on
its own node only, and the same rise elsewhere counts as false positives. Disk series of
``/`` and of directories on it (the same numbers) are host-wide and left out.
"""

from __future__ import annotations

import json
import re

import numpy as np

from lepton_ops.detect.corpus import LabelledSeries
from lepton_ops.telemetry.history import HistoryStore
from lepton_ops.telemetry.records import FaultRecord, Series

#: The metrics each fault kind shows in.
FAULT_SIGNALS: dict[str, frozenset[str]] = {
    "memleak": frozenset(
        {
            "lepton_service_memory_used_pct",
            "lepton_service_rss_bytes",
            "lepton_service_process_rss_bytes",
        }
    ),
    "diskfill": frozenset({"lepton_node_disk_used_pct", "lepton_node_disk_free_bytes"}),
    "cpuhog": frozenset({"lepton_node_cpu_util_pct", "lepton_service_latency_ms"}),
    "kill": frozenset({"lepton_service_healthy", "lepton_service_up", "lepton_service_latency_ms"}),
    "hang": frozenset({"lepton_service_healthy", "lepton_service_up", "lepton_service_latency_ms"}),
    "partition": frozenset(
        {"lepton_node_reachable", "lepton_node_latency_ms", "lepton_node_target_reachable"}
    ),
}
#: The metrics exported: those some fault shows in.
METRICS = frozenset().union(*FAULT_SIGNALS.values())
#: The root file system: every node's in a one-machine lab.
ROOT_PATH = "/"
#: The shortest window, seconds (a kill is over in a second).
MIN_WINDOW_S = 30.0
#: Series with fewer points are left out.
MIN_POINTS = 50


def fault_window(fault: FaultRecord, last_ts: float) -> tuple[float, float]:
    end = fault.ended_at if fault.ended_at is not None else fault.failed_at
    end = last_ts if end is None else end
    return fault.started_at, max(end, fault.started_at + MIN_WINDOW_S)


def shows(fault: FaultRecord, series: Series) -> bool:
    """Whether ``series`` can show ``fault``: a series of the fault's node whose metric the
    fault shows in, or (a partition) another node's connections to the partitioned one."""
    if series.metric not in FAULT_SIGNALS[fault.fault]:
        return False
    if series.node == fault.node:
        return True
    return fault.fault == "partition" and series.labels.get("target") == fault.node


def _on_root(series: Series, root: dict[float, float] | None) -> bool:
    """A disk series of ``/`` or of a directory on it (the same numbers): host-wide, not the
    node's own disk (a lab's nodes share the host's root file system)."""
    return series.labels.get("path") == ROOT_PATH or on_root_file_system(series, root)


def on_root_file_system(series: Series, root: dict[float, float] | None) -> bool:
    """A disk series of a path other than ``/`` that reports the very numbers the node's
    ``/`` reports (``root``: its points by time) in 90 % of their common samples: a
    directory on the root file system, not a file system of its own."""
    path = series.labels.get("path")
    if path is None or path == ROOT_PATH or not root:
        return False
    common = [(value, root[ts]) for ts, value in series.points if ts in root]
    return bool(common) and sum(a == b for a, b in common) >= 0.9 * len(common)


def series_name(series: Series) -> str:
    """``node/metric--key=value--....csv``, safe as a relative path."""
    labels = "--".join(f"{key}={value}" for key, value in sorted(series.labels.items()))
    stem = series.metric + (f"--{labels}" if labels else "")
    clean = re.sub(r"[^A-Za-z0-9_.=-]+", "_", stem)
    node = re.sub(r"[^A-Za-z0-9_.-]+", "_", series.node)
    return f"{node}/{clean}.csv"


def export_corpus(
    store: HistoryStore,
    since: float | None = None,
    until: float | None = None,
    campaign: str | None = None,
) -> list[LabelledSeries]:
    """The store's fault-showing series in ``[since, until]``, labelled with its faults."""
    faults = [
        f
        for f in store.faults(since=since, until=until, campaign=campaign)
        if f.fault in FAULT_SIGNALS
    ]
    found = []
    for metric in sorted(METRICS):
        listed = store.series(metric=metric, since=since, until=until)
        roots = {s.node: dict(s.points) for s in listed if s.labels.get("path") == ROOT_PATH}
        for series in listed:
            if len(series.points) < MIN_POINTS or _on_root(series, roots.get(series.node)):
                continue
            stamps = np.array([p[0] for p in series.points], dtype=np.float64)
            values = np.array([p[1] for p in series.points], dtype=np.float64)
            last = float(stamps[-1])
            windows = tuple(
                sorted(
                    fault_window(f, last)
                    for f in faults
                    if shows(f, series) and f.started_at <= last
                )
            )
            found.append(LabelledSeries(series_name(series), stamps, values, windows))
    return sorted(found, key=lambda item: item.name)


def describe(series: list[LabelledSeries]) -> str:
    """A one-line JSON summary of an exported corpus."""
    return json.dumps(
        {
            "series": len(series),
            "without_anomaly": sum(1 for item in series if not item.windows),
            "windows": sum(len(item.windows) for item in series),
            "rows": int(sum(item.values.size for item in series)),
        }
    )
