"""Stability figures from what the store observed: failure episodes, rate, MTBF, MTTR, availability.

Pure functions over store rows; :mod:`~lepton_ops.report.build` reads the rows. The
definitions, chosen so that each number can be checked by hand against the store:

- **Observation**: one collection's samples of a node at one time. It is *down* when the
  node was unreachable (``lepton_node_reachable`` 0) or a service failed its health check
  (``lepton_service_healthy`` 0); *up* when the node answered and every service it
  reported was healthy (a node that reported services in the window must report at least
  one at that time: a collection with unreadable facts is neither up nor down).
- **Failed observation**: a down observation, an ``unreachable`` or
  ``health_check_failed`` incident, or the moment an injected fault made its node fail
  (``faults.failed_at``).
- **Episode**: starts at a failed observation of a node that is not in an episode; the
  node's later failed observations belong to it; it ends at **verified recovery**, the
  first up observation after its last failed observation. One still open at the end of
  the window is *not recovered*: it counts as a failure, not in the MTTR. An episode under
  way when the window opens starts at the window's first failed observation.
- **Observed time** of a node: the sum of the intervals between its consecutive
  observations, leaving out intervals longer than ``max_gap_s`` (a telemetry gap is not
  observation). **Downtime**: the observed time inside episodes; **uptime**: the rest.
- **Failure rate** ``lambda = failures / observed hours``. The seed's ``P(F) = N(F)/N(T)``
  is this rate, not a probability; the probability of at least one failure within a
  horizon ``h`` follows from it for failures arriving at a constant rate (Poisson):
  ``P = 1 - exp(-lambda * h)``.
- **MTBF** = uptime / failures; **MTTR** = mean duration (start to verified recovery) of
  the recovered episodes; **availability** = MTBF / (MTBF + MTTR).
- **Measured availability** = uptime / observed time. When every episode recovered
  inside the window and no gap fell inside one, MTTR = downtime / failures and the two
  availabilities are equal; they differ by the open episodes (downtime without an MTTR)
  and by gaps inside episodes (MTTR counts wall time, downtime only observed time). For
  the same reason ``1 / lambda`` = MTBF + downtime / failures, about MTBF + MTTR.

The fleet's figures pool the nodes: failures, observed time and uptime add up, the MTTR
is the mean over every recovered episode, and the fleet rate is per node-hour. Every
figure carries the count it rests on, and is None with the reason when that count is 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from lepton_ops.telemetry.records import FaultRecord, IncidentRecord, Series

REACHABLE = "lepton_node_reachable"
HEALTHY = "lepton_service_healthy"
#: The incident kinds that are failures (``facts_invalid`` is not: the node answered).
FAILURE_INCIDENTS = frozenset({"unreachable", "health_check_failed"})
#: Default longest interval between two observations that still counts as observed.
MAX_GAP_S = 300.0
HOUR_S = 3600.0


class State(StrEnum):
    UP = "up"
    DOWN = "down"
    #: answered, but the services' health could not be read
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Observation:
    node: str
    ts: float
    state: State


@dataclass(frozen=True)
class FailureSignal:
    """A failed observation: when, and what saw it."""

    node: str
    ts: float
    #: ``down sample``, ``unreachable``, ``health_check_failed`` or ``fault <kind>``
    source: str


@dataclass(frozen=True)
class Episode:
    node: str
    start: float
    #: the verified recovery; None while not recovered
    end: float | None
    #: what saw its failed observations, each once, in order
    sources: tuple[str, ...]

    @property
    def recovered(self) -> bool:
        return self.end is not None

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "start": self.start,
            "end": self.end,
            "duration_s": self.duration_s,
            "recovered": self.recovered,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class Figure:
    """A number with its unit, the count it rests on, and why it is None when it is."""

    value: float | None
    unit: str
    count: int
    #: what ``count`` counts ("failures", "recovered episodes"...)
    basis: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "unit": self.unit,
            "count": self.count,
            "basis": self.basis,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Stability:
    """The figures of one node, or of the fleet (``node`` None)."""

    node: str | None
    observations: int
    observed_s: float
    uptime_s: float
    downtime_s: float
    failures: int
    recovered: int
    #: incidents (unreachable, health check failed) and failed faults in the window
    incidents: int
    faults_failed: int
    failure_rate: Figure
    p_failure: Figure
    mtbf: Figure
    mttr: Figure
    availability: Figure
    measured_availability: Figure
    episodes: tuple[Episode, ...] = ()
    #: fleet only: the probability that some node fails within the horizon
    p_any_node: Figure | None = None
    horizon_s: float = HOUR_S

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "node": self.node,
            "observations": self.observations,
            "observed_s": self.observed_s,
            "uptime_s": self.uptime_s,
            "downtime_s": self.downtime_s,
            "failures": self.failures,
            "recovered": self.recovered,
            "incidents": self.incidents,
            "faults_failed": self.faults_failed,
            "horizon_s": self.horizon_s,
            "failure_rate": self.failure_rate.to_dict(),
            "p_failure_within_horizon": self.p_failure.to_dict(),
            "mtbf": self.mtbf.to_dict(),
            "mttr": self.mttr.to_dict(),
            "availability": self.availability.to_dict(),
            "measured_availability": self.measured_availability.to_dict(),
        }
        if self.p_any_node is not None:
            data["p_any_node_within_horizon"] = self.p_any_node.to_dict()
        if self.node is not None:
            data["episodes"] = [episode.to_dict() for episode in self.episodes]
        return data


@dataclass
class NodeHistory:
    """What the store holds about one node in the window, as the figures need it."""

    node: str
    observations: list[Observation] = field(default_factory=list)
    signals: list[FailureSignal] = field(default_factory=list)
    incidents: int = 0
    faults_failed: int = 0


# --------------------------------------------------------------------------- from the store


def observations(
    reachable: Iterable[Series], healthy: Iterable[Series]
) -> dict[str, list[Observation]]:
    """Each node's observations, oldest first, from its reachability and health series."""
    seen: dict[str, dict[float, float]] = {}
    for series in reachable:
        points = seen.setdefault(series.node, {})
        for ts, value in series.points:
            points[ts] = value
    health: dict[str, dict[float, list[float]]] = {}
    for series in healthy:
        by_ts = health.setdefault(series.node, {})
        for ts, value in series.points:
            by_ts.setdefault(ts, []).append(value)
    found: dict[str, list[Observation]] = {}
    for node, points in seen.items():
        services = health.get(node, {})
        found[node] = [
            Observation(node, ts, _state(value, services.get(ts), has_services=bool(services)))
            for ts, value in sorted(points.items())
        ]
    return found


def _state(reachable: float, healthy: list[float] | None, *, has_services: bool) -> State:
    if reachable == 0.0 or (healthy is not None and any(value == 0.0 for value in healthy)):
        return State.DOWN
    if healthy is None and has_services:
        return State.UNKNOWN
    return State.UP


def histories(
    observed: Mapping[str, list[Observation]],
    incidents: Iterable[IncidentRecord],
    faults: Iterable[FaultRecord],
    since: float | None,
    until: float | None,
) -> dict[str, NodeHistory]:
    """Each node's observations and failed observations in ``[since, until]``."""
    low = -math.inf if since is None else since
    high = math.inf if until is None else until
    found = {
        node: NodeHistory(node, [o for o in obs if low <= o.ts <= high])
        for node, obs in observed.items()
    }
    for node, history in found.items():
        history.signals.extend(
            FailureSignal(node, o.ts, "down sample")
            for o in history.observations
            if o.state is State.DOWN
        )
    for incident in incidents:
        if incident.kind in FAILURE_INCIDENTS and low <= incident.ts <= high:
            history = found.setdefault(incident.node, NodeHistory(incident.node))
            history.signals.append(FailureSignal(incident.node, incident.ts, incident.kind))
            history.incidents += 1
    for fault in faults:
        if fault.failed_at is not None and low <= fault.failed_at <= high:
            history = found.setdefault(fault.node, NodeHistory(fault.node))
            history.signals.append(
                FailureSignal(fault.node, fault.failed_at, f"fault {fault.fault}")
            )
            history.faults_failed += 1
    for history in found.values():
        history.signals.sort(key=lambda signal: signal.ts)
    return found


# --------------------------------------------------------------------------- episodes, time


def episodes(signals: Sequence[FailureSignal], observed: Sequence[Observation]) -> list[Episode]:
    """The node's failure episodes (see the module's doc); both inputs oldest first."""
    ups = [o.ts for o in observed if o.state is State.UP]
    found: list[Episode] = []
    index, up_index = 0, 0
    while index < len(signals):
        start = signals[index].ts
        last = start
        sources = [signals[index].source]
        index += 1
        while True:
            # the first up observation after the episode's last failed observation...
            while up_index < len(ups) and ups[up_index] <= last:
                up_index += 1
            recovery = ups[up_index] if up_index < len(ups) else None
            # ...unless another failed observation comes first (or at the same time): it
            # belongs to the episode
            if index < len(signals) and (recovery is None or signals[index].ts <= recovery):
                last = signals[index].ts
                if signals[index].source not in sources:
                    sources.append(signals[index].source)
                index += 1
                continue
            break
        node = signals[0].node
        found.append(Episode(node, start, recovery, tuple(sources)))
        if recovery is None:
            # nothing after it can start a new episode: the node never recovered
            break
    return found


def observed_spans(times: Sequence[float], max_gap_s: float) -> list[tuple[float, float]]:
    """The intervals between consecutive observations that count as observed time."""
    return [
        (earlier, later)
        for earlier, later in itertools.pairwise(times)
        if later - earlier <= max_gap_s
    ]


def overlap(spans: Iterable[tuple[float, float]], start: float, end: float | None) -> float:
    """How much of ``spans`` lies in ``[start, end]`` (``end`` None: open)."""
    high = math.inf if end is None else end
    return sum(max(0.0, min(b, high) - max(a, start)) for a, b in spans)


# --------------------------------------------------------------------------- figures


def node_stability(
    history: NodeHistory, *, max_gap_s: float = MAX_GAP_S, horizon_s: float = HOUR_S
) -> Stability:
    """One node's figures."""
    times = [o.ts for o in history.observations]
    spans = observed_spans(times, max_gap_s)
    found = episodes(history.signals, history.observations)
    observed = sum(b - a for a, b in spans)
    down = min(sum(overlap(spans, e.start, e.end) for e in found), observed)
    durations = [e.duration_s for e in found if e.duration_s is not None]
    return _figures(
        history.node,
        observations=len(times),
        observed_s=observed,
        downtime_s=down,
        failures=len(found),
        durations=durations,
        incidents=history.incidents,
        faults_failed=history.faults_failed,
        episodes=tuple(found),
        horizon_s=horizon_s,
    )


def fleet_stability(nodes: Sequence[Stability], *, horizon_s: float = HOUR_S) -> Stability:
    """The fleet's figures: the nodes pooled (rate per node-hour)."""
    durations = [
        episode.duration_s
        for node in nodes
        for episode in node.episodes
        if episode.duration_s is not None
    ]
    fleet = _figures(
        None,
        observations=sum(node.observations for node in nodes),
        observed_s=sum(node.observed_s for node in nodes),
        downtime_s=sum(node.downtime_s for node in nodes),
        failures=sum(node.failures for node in nodes),
        durations=durations,
        incidents=sum(node.incidents for node in nodes),
        faults_failed=sum(node.faults_failed for node in nodes),
        episodes=(),
        horizon_s=horizon_s,
    )
    observed_nodes = sum(1 for node in nodes if node.observed_s > 0)
    rate = fleet.failure_rate
    if rate.value is None:
        any_node = Figure(None, "probability", rate.count, "failures", rate.reason)
    else:
        any_node = Figure(
            1.0 - math.exp(-rate.value * observed_nodes * horizon_s / HOUR_S),
            "probability",
            rate.count,
            "failures",
        )
    return replace(fleet, p_any_node=any_node)


def _figures(
    node: str | None,
    *,
    observations: int,
    observed_s: float,
    downtime_s: float,
    failures: int,
    durations: Sequence[float],
    incidents: int,
    faults_failed: int,
    episodes: tuple[Episode, ...],
    horizon_s: float,
) -> Stability:
    uptime = max(observed_s - downtime_s, 0.0)
    hours = observed_s / HOUR_S
    per = "failures/hour" if node is not None else "failures/node-hour"
    if observed_s <= 0:
        rate = Figure(None, per, failures, "failures", "no observed time in the window")
    elif failures == 0:
        bound = 3.0 / hours  # the "rule of three": 95 % upper bound with no event seen
        rate = Figure(
            None, per, 0, "failures",
            f"no failure in {hours:.3g} h observed (95 % upper bound {bound:.3g} {per})",
        )  # fmt: skip
    else:
        rate = Figure(failures / hours, per, failures, "failures")
    if rate.value is None:
        p_fail = Figure(None, "probability", rate.count, "failures", rate.reason)
    else:
        p_fail = Figure(
            1.0 - math.exp(-rate.value * horizon_s / HOUR_S), "probability", failures, "failures"
        )
    if failures == 0:
        mtbf = Figure(None, "s", 0, "failures", f"no failure in {uptime:.0f} s of uptime")
    else:
        mtbf = Figure(uptime / failures, "s", failures, "failures")
    if durations:
        mttr = Figure(sum(durations) / len(durations), "s", len(durations), "recovered episodes")
    else:
        why = "no failure" if failures == 0 else "no episode recovered within the window"
        mttr = Figure(None, "s", 0, "recovered episodes", why)
    if mtbf.value is None or mttr.value is None:
        availability = Figure(
            None, "ratio", min(mtbf.count, mttr.count), "failures",
            f"needs MTBF and MTTR: {mtbf.reason or mttr.reason}",
        )  # fmt: skip
    elif mtbf.value + mttr.value <= 0:
        availability = Figure(None, "ratio", failures, "failures", "MTBF and MTTR are both 0")
    else:
        availability = Figure(
            mtbf.value / (mtbf.value + mttr.value), "ratio", len(durations), "recovered episodes"
        )
    if observed_s <= 0:
        measured = Figure(None, "ratio", observations, "observations", "no observed time")
    else:
        measured = Figure(uptime / observed_s, "ratio", observations, "observations")
    return Stability(
        node=node,
        observations=observations,
        observed_s=observed_s,
        uptime_s=uptime,
        downtime_s=downtime_s,
        failures=failures,
        recovered=len(durations),
        incidents=incidents,
        faults_failed=faults_failed,
        failure_rate=rate,
        p_failure=p_fail,
        mtbf=mtbf,
        mttr=mttr,
        availability=availability,
        measured_availability=measured,
        episodes=episodes,
        horizon_s=horizon_s,
    )
