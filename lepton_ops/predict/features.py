"""The predictor's features: defined once in :data:`FEATURES`, computed by :func:`featurize`.

Each feature describes a node at one sample time ``t`` from its trailing window
``(t - window, t]`` only (causal: a later sample never changes it). They are built from
the signals that belong to the node itself:

- its **services** (``lepton_service_*{service}``): memory used in percent of the
  service's limit, resident memory, health, restarts, health-check latency - aggregated
  across the node's services (the worst one: max of a level or a slope, min of a
  time-to-exhaustion), since nodes run different sets of services;
- its **own file systems** (``lepton_node_disk_*{path}``), leaving out ``/`` and any path
  that is on the root file system (see :meth:`~lepton_ops.predict.frames.NodeFrame.data_disks`);
- whether it **answered** (``lepton_node_reachable``) and how its connections to the
  aggregator and peers went;
- its **host** (memory, swap, CPU, load, file handles, ``/``) only *relative to the
  fleet*: the window mean of the node's value minus the fleet's median, less a dead band
  (:func:`dead_band`). In a one-machine lab every node reports the same host, so these
  are 0 and the model cannot mistake a fault on one node (which moves the shared host
  numbers) for a risk on all of them; on a real fleet a host that stands out from the
  others still shows.

Trends are least-squares slopes over the window; a *time to exhaustion* (``*_tte_s``) is
``(100 - current level) / slope``, as Prometheus' ``predict_linear`` would extrapolate,
capped at :data:`TTE_CAP_S` (not rising: the cap). The ``exhaustion_*`` features take
whichever of memory and disk is worse: with few failures of each kind to learn from,
one rule for "a resource is running out" generalises where two half-learned ones do not.

Each feature has a *direction* (does risk rise with it?) used as a monotonic constraint
by the classifier and to make the anomaly score one-sided, and a *scale*: the deviation
the anomaly detector counts as one unit when the healthy history barely varies.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from lepton_ops.predict import rolling
from lepton_ops.predict.frames import REACHABLE, LabelKey, NodeFrame
from lepton_ops.predict.rolling import BoolArray, FloatArray, Windows

#: A time to exhaustion beyond this (or no trend towards it) is this.
TTE_CAP_S = 3600.0
MIB = float(1 << 20)


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    help: str
    unit: str
    #: +1: risk rises with the value; -1: risk rises as it falls; 0: no fixed direction
    direction: int
    #: a deviation the anomaly detector counts as one unit at least (see anomaly.py)
    scale: float


# fmt: off
FEATURES: tuple[FeatureSpec, ...] = (
    # ---- service memory (used in percent of the service's memory limit)
    FeatureSpec("mem_used_pct_max", "latest memory used of the fullest service, % of its limit",
                "percent", +1, 2.0),
    FeatureSpec("mem_used_pct_mean_window", "window mean of a service's memory used, worst service",
                "percent", +1, 2.0),
    FeatureSpec("mem_used_pct_slope_per_s", "least-squares slope of a service's memory used, "
                "steepest service", "percent/s", +1, 0.05),
    FeatureSpec("mem_tte_s", "time until a service reaches its memory limit at that slope, "
                "soonest", "seconds", -1, 300.0),
    FeatureSpec("rss_slope_mib_per_s", "slope of a service's resident memory, steepest "
                "(also without a memory limit)", "MiB/s", +1, 0.5),
    # ---- the node's own file systems (not /)
    FeatureSpec("disk_used_pct_max", "latest space used of the node's fullest own file system",
                "percent", +1, 2.0),
    FeatureSpec("disk_used_pct_slope_per_s", "slope of a file system's space used, steepest",
                "percent/s", +1, 0.05),
    FeatureSpec("disk_tte_s", "time until a file system is full at that slope, soonest",
                "seconds", -1, 300.0),
    # ---- whichever of the two runs out first: one rule for every resource that fills up
    FeatureSpec("exhaustion_used_pct_max", "the fuller of service memory and own file system",
                "percent", +1, 2.0),
    FeatureSpec("exhaustion_slope_pct_per_s", "the steeper of their slopes", "percent/s",
                +1, 0.05),
    FeatureSpec("exhaustion_tte_s", "the sooner of their times to exhaustion", "seconds",
                -1, 300.0),
    # ---- service health
    FeatureSpec("health_fail_ratio_window", "share of the window's samples with a service "
                "failing its health check", "ratio", +1, 0.05),
    FeatureSpec("restarts_delta_window", "service restarts in the window, all services",
                "count", +1, 0.5),
    FeatureSpec("service_latency_ms_max", "latest health-check latency, slowest service",
                "milliseconds", +1, 50.0),
    FeatureSpec("service_latency_ms_mean_window", "window mean of a service's health-check "
                "latency, slowest service", "milliseconds", +1, 50.0),
    # ---- reachability and the network
    FeatureSpec("reachable_ratio_window", "share of the window's collections the node answered",
                "ratio", -1, 0.05),
    FeatureSpec("facts_errors_max_window", "most facts the node could not read, in the window",
                "count", +1, 0.5),
    FeatureSpec("peer_latency_ms_max", "latest connect latency to the aggregator or a peer, "
                "slowest", "milliseconds", +1, 20.0),
    FeatureSpec("peer_unreachable_ratio", "latest share of targets the node could not connect to",
                "ratio", +1, 0.1),
    FeatureSpec("peer_lost_ratio_max", "latest share of lost connects to a target, worst",
                "ratio", +1, 0.1),
    # ---- the host, relative to the fleet (window mean of node - fleet median)
    FeatureSpec("host_mem_used_pct_vs_fleet", "host memory used minus the fleet's median",
                "percent", +1, 5.0),
    FeatureSpec("host_swap_used_pct_vs_fleet", "host swap used minus the fleet's median",
                "percent", +1, 5.0),
    FeatureSpec("host_cpu_util_pct_vs_fleet", "host CPU utilisation minus the fleet's median",
                "percent", +1, 10.0),
    FeatureSpec("host_load1_per_cpu_vs_fleet", "host load per CPU minus the fleet's median",
                "ratio", +1, 0.25),
    FeatureSpec("host_fds_used_pct_vs_fleet", "host file handles used minus the fleet's median",
                "percent", +1, 2.0),
    FeatureSpec("host_root_disk_used_pct_vs_fleet", "space used on / minus the fleet's median",
                "percent", +1, 2.0),
)
# fmt: on

FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
FEATURE_INDEX: dict[str, int] = {name: index for index, name in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class HostSignal:
    """A host-level series compared with the fleet, and the difference that is noise."""

    metric: str
    labels: LabelKey
    #: differences up to this are 0 (see :func:`dead_band`)
    dead_band: float


#: feature -> the host-level signal it compares with the fleet
HOST_SIGNALS: dict[str, HostSignal] = {
    "host_mem_used_pct_vs_fleet": HostSignal("lepton_node_memory_used_pct", (), 5.0),
    "host_swap_used_pct_vs_fleet": HostSignal("lepton_node_swap_used_pct", (), 5.0),
    "host_cpu_util_pct_vs_fleet": HostSignal("lepton_node_cpu_util_pct", (), 20.0),
    "host_load1_per_cpu_vs_fleet": HostSignal("lepton_node_load1_per_cpu", (), 0.5),
    "host_fds_used_pct_vs_fleet": HostSignal("lepton_node_fds_used_pct", (), 5.0),
    "host_root_disk_used_pct_vs_fleet": HostSignal(
        "lepton_node_disk_used_pct", (("path", "/"),), 5.0
    ),
}


@dataclass(frozen=True)
class NodeFeatures:
    """A node's feature vectors, one row per sample time (columns: :data:`FEATURE_NAMES`)."""

    node: str
    ts: FloatArray
    matrix: FloatArray
    #: the node answered and all its services were healthy at that sample
    up: BoolArray

    def column(self, name: str) -> FloatArray:
        column: FloatArray = self.matrix[:, FEATURE_INDEX[name]]
        return column


def featurize(frames: Mapping[str, NodeFrame], window_s: float) -> dict[str, NodeFeatures]:
    """The features of every sample of every node (see the module's doc)."""
    excess = {
        feature: fleet_excess(frames, (signal.metric, signal.labels), max_age_s=window_s)
        for feature, signal in HOST_SIGNALS.items()
    }
    found: dict[str, NodeFeatures] = {}
    for node, frame in frames.items():
        windows = Windows(frame.ts, window_s)
        columns = _node_columns(frame, windows)
        for feature, signal in HOST_SIGNALS.items():
            mean = rolling.mean(windows.gather(excess[feature][node]))
            columns[feature] = dead_band(mean, signal.dead_band)
        missing = set(FEATURE_NAMES) - set(columns)
        assert not missing, f"features not computed: {sorted(missing)}"
        matrix = np.column_stack([columns[name] for name in FEATURE_NAMES])
        found[node] = NodeFeatures(node, frame.ts, matrix, frame.up())
    return found


# --------------------------------------------------------------------------- per node

Stat = Callable[[FloatArray], FloatArray]


def _node_columns(frame: NodeFrame, windows: Windows) -> dict[str, FloatArray]:
    count = len(frame)
    columns: dict[str, FloatArray] = {}

    memory = [windows.gather(v) for _, v in frame.series("lepton_service_memory_used_pct")]
    mem_last = [rolling.last(m) for m in memory]
    mem_slope = [rolling.slope(m, windows.age) for m in memory]
    columns["mem_used_pct_max"] = _worst(mem_last, count, max)
    columns["mem_used_pct_mean_window"] = _worst([rolling.mean(m) for m in memory], count, max)
    columns["mem_used_pct_slope_per_s"] = _worst(mem_slope, count, max)
    columns["mem_tte_s"] = _worst(
        [
            rolling.time_to_exhaustion(level, rate, 100.0, TTE_CAP_S)
            for level, rate in zip(mem_last, mem_slope, strict=True)
        ],
        count,
        min,
    )
    rss = [windows.gather(v / MIB) for _, v in frame.series("lepton_service_rss_bytes")]
    columns["rss_slope_mib_per_s"] = _worst(
        [rolling.slope(m, windows.age) for m in rss], count, max
    )

    disks = [windows.gather(used) for _, used, _ in frame.data_disks()]
    disk_last = [rolling.last(m) for m in disks]
    disk_slope = [rolling.slope(m, windows.age) for m in disks]
    columns["disk_used_pct_max"] = _worst(disk_last, count, max)
    columns["disk_used_pct_slope_per_s"] = _worst(disk_slope, count, max)
    columns["disk_tte_s"] = _worst(
        [
            rolling.time_to_exhaustion(level, rate, 100.0, TTE_CAP_S)
            for level, rate in zip(disk_last, disk_slope, strict=True)
        ],
        count,
        min,
    )

    columns["exhaustion_used_pct_max"] = _worst(
        [columns["mem_used_pct_max"], columns["disk_used_pct_max"]], count, max
    )
    columns["exhaustion_slope_pct_per_s"] = _worst(
        [columns["mem_used_pct_slope_per_s"], columns["disk_used_pct_slope_per_s"]], count, max
    )
    columns["exhaustion_tte_s"] = _worst([columns["mem_tte_s"], columns["disk_tte_s"]], count, min)

    columns["health_fail_ratio_window"] = rolling.mean(windows.gather(_health_failing(frame)))
    restarts = [
        rolling.increase(windows.gather(v))
        for _, v in frame.series("lepton_service_restarts_total")
    ]
    columns["restarts_delta_window"] = np.sum(restarts, axis=0) if restarts else np.zeros(count)
    latency = [windows.gather(v) for _, v in frame.series("lepton_service_latency_ms")]
    columns["service_latency_ms_max"] = _worst([rolling.last(m) for m in latency], count, max)
    columns["service_latency_ms_mean_window"] = _worst(
        [rolling.mean(m) for m in latency], count, max
    )

    columns["reachable_ratio_window"] = rolling.mean(windows.gather(frame.single(REACHABLE)))
    columns["facts_errors_max_window"] = rolling.maximum(
        windows.gather(frame.single("lepton_node_facts_errors"))
    )
    peer_latency = [windows.gather(v) for _, v in frame.series("lepton_node_latency_ms")]
    columns["peer_latency_ms_max"] = _worst([rolling.last(m) for m in peer_latency], count, max)
    columns["peer_unreachable_ratio"] = rolling.last(
        windows.gather(_share_false(frame, "lepton_node_target_reachable"))
    )
    lost = [windows.gather(v) for _, v in frame.series("lepton_node_latency_lost_ratio")]
    columns["peer_lost_ratio_max"] = _worst([rolling.last(m) for m in lost], count, max)
    return columns


def _worst(arrays: list[FloatArray], count: int, which: Callable[..., object]) -> FloatArray:
    """Element-wise max (``which=max``) or min across series, ignoring NaN; NaN if none."""
    if not arrays:
        return np.full(count, np.nan)
    stacked = np.vstack(arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        result: FloatArray = (np.nanmax if which is max else np.nanmin)(stacked, axis=0)
    return result


def _health_failing(frame: NodeFrame) -> FloatArray:
    """1 where a service failed its health check, 0 where all passed, NaN: no check."""
    checks = [values for _, values in frame.series("lepton_service_healthy")]
    if not checks:
        return np.full(len(frame), np.nan)
    stacked = np.vstack(checks)
    failing: FloatArray = np.any(stacked == 0.0, axis=0).astype(np.float64)
    failing[np.all(np.isnan(stacked), axis=0)] = np.nan
    return failing


def _share_false(frame: NodeFrame, metric: str) -> FloatArray:
    """Per sample, the share of the metric's series that are 0 (NaN: none reported)."""
    flags = [values for _, values in frame.series(metric)]
    if not flags:
        return np.full(len(frame), np.nan)
    stacked = np.vstack(flags)
    reported = np.sum(~np.isnan(stacked), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share: FloatArray = np.sum(stacked == 0.0, axis=0) / reported
    return share


# --------------------------------------------------------------------------- the fleet


def dead_band(values: FloatArray, band: float) -> FloatArray:
    """``values`` moved towards 0 by ``band`` (those within it become 0); NaN stays NaN.

    The nodes of a fleet read their host at slightly different moments (up to a
    collection apart): in a one-machine lab, a leak anywhere makes whichever node read
    last look a little fuller than the others. A difference that small is not a
    difference between hosts.
    """
    shrunk: FloatArray = np.sign(values) * np.maximum(np.abs(values) - band, 0.0)
    return shrunk


#: Query times handled at once by :func:`fleet_excess` (bounds its memory: nodes x chunk).
_CHUNK = 4096


def fleet_excess(
    frames: Mapping[str, NodeFrame], key: tuple[str, LabelKey], max_age_s: float
) -> dict[str, FloatArray]:
    """Per node, its value of series ``key`` minus the fleet's median at each of its samples.

    The fleet's median at time ``t`` is over every node's latest value at or before
    ``t`` (no older than ``max_age_s``), the node's own included: causal, and 0 for a
    fleet of one. NaN where the node has no value.
    """
    known: list[tuple[FloatArray, FloatArray]] = []
    for frame in frames.values():
        values = frame.values.get(key)
        if values is None:
            continue
        present = ~np.isnan(values)
        known.append((frame.ts[present], values[present]))
    nodes = list(frames)
    queries = np.concatenate([frames[node].ts for node in nodes]) if nodes else np.zeros(0)
    reference = np.full(len(queries), np.nan)
    for start in range(0, len(queries), _CHUNK):
        chunk = queries[start : start + _CHUNK]
        latest = np.full((max(len(known), 1), len(chunk)), np.nan)
        for row, (times, values) in enumerate(known):
            if not len(times):
                continue
            at = np.searchsorted(times, chunk, side="right") - 1
            valid = at >= 0
            at = np.maximum(at, 0)
            valid &= chunk - times[at] <= max_age_s
            latest[row, valid] = values[at[valid]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            reference[start : start + len(chunk)] = np.nanmedian(latest, axis=0)
    excess: dict[str, FloatArray] = {}
    offset = 0
    for node in nodes:
        frame = frames[node]
        own = frame.values.get(key, np.full(len(frame), np.nan))
        excess[node] = own - reference[offset : offset + len(frame)]
        offset += len(frame)
    return excess
