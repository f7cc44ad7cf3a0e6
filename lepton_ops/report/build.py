"""Reading the store (and the optional sources) into a :class:`~lepton_ops.report.model.Report`.

One read per kind of row over the window ``[since, until]``: the reachability and health
series (stability and the health line), the failure incidents, the faults, the memory
and disk series (charts), the job history, the remediation audit. Everything else is
computed by the pure functions of the sections' modules.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lepton_ops.errors import BadInput
from lepton_ops.remediate.ladder import timeline_states
from lepton_ops.report.load import Interruptions, explain_job, load_section
from lepton_ops.report.model import Report
from lepton_ops.report.sources import (
    PredictionSection,
    prediction_section,
    remediation_section,
)
from lepton_ops.report.stability import (
    FAILURE_INCIDENTS,
    HEALTHY,
    HOUR_S,
    MAX_GAP_S,
    REACHABLE,
    Stability,
    fleet_stability,
    histories,
    node_stability,
    observations,
)
from lepton_ops.report.timeline import DISK, MEMORY, timelines
from lepton_ops.telemetry.history import HistoryStore
from lepton_ops.telemetry.records import RemediationRecord


def build_report(
    store: HistoryStore,
    state_dir: Path,
    *,
    since: float,
    until: float | None = None,
    horizon_s: float = HOUR_S,
    max_gap_s: float = MAX_GAP_S,
    prediction: PredictionSection | None = None,
) -> Report:
    """The report of ``[since, until]`` (``until``: now); BadInput for a bad window.

    ``prediction`` replaces asking the predictor (tests; a caller that has it already).
    """
    now = time.time()
    until = now if until is None else float(until)
    _check(since, until, horizon_s, max_gap_s)
    reachable = store.series(metric=REACHABLE, since=since, until=until)
    healthy = store.series(metric=HEALTHY, since=since, until=until)
    observed = observations(reachable, healthy)
    incidents = [
        incident
        for incident in store.incidents(since=since, until=until)
        if incident.kind in FAILURE_INCIDENTS
    ]
    faults = [
        fault
        for fault in store.faults(until=until)
        if fault.ended_at is None or fault.ended_at >= since
    ]
    by_node = histories(observed, incidents, faults, since, until)
    nodes = tuple(sorted(by_node, key=natural_key))
    per_node = tuple(
        node_stability(by_node[node], max_gap_s=max_gap_s, horizon_s=horizon_s) for node in nodes
    )
    fleet = fleet_stability(per_node, horizon_s=horizon_s)
    memory = store.series(metric=MEMORY, since=since, until=until)
    disk = store.series(metric=DISK, since=since, until=until)
    remediation = remediation_section(store, since, until)
    load = load_section(store.jobs(since=since, until=until))
    interruptions = _interruptions(per_node, remediation.actions, until)
    load = replace(load, explained=tuple(explain_job(job, interruptions) for job in load.jobs))
    predicted = prediction if prediction is not None else prediction_section(state_dir)
    missing = []
    if not reachable:
        missing.append(
            "no telemetry in the window: collect some with 'lepton-ops telemetry collect' "
            "(or 'telemetry pull')"
        )
    missing.extend(
        message
        for message in (
            load.message,
            remediation.message,
            predicted.risk_message,
            predicted.alarm_message,
        )
        if message
    )
    return Report(
        generated_at=now,
        since=since,
        until=until,
        horizon_s=horizon_s,
        max_gap_s=max_gap_s,
        store=str(store.path),
        nodes=nodes,
        stability=per_node,
        fleet=fleet,
        load=load,
        prediction=predicted,
        remediation=remediation,
        faults=tuple(fault for fault in faults if fault.node in by_node),
        incidents=tuple(incidents),
        timelines=timelines(nodes, memory, disk, observed, since, until),
        missing=tuple(missing),
        silent=tuple(sorted(set(store.nodes()) - set(nodes), key=natural_key)),
    )


def _interruptions(
    per_node: Sequence[Stability], actions: Sequence[RemediationRecord], until: float
) -> Interruptions:
    """When each node could not take shards: its failure episodes, and its drains."""
    found: dict[str, list[tuple[float, float | None, str]]] = {}
    draining = timeline_states()  # the actions that take a node out of job plans
    for entry in per_node:
        for episode in entry.episodes:
            found.setdefault(episode.node, []).append((episode.start, episode.end, "failed"))
    for action in actions:
        what = draining.get(action.action)
        if what is not None and action.started_at is not None:
            # a drain lasts until it is lifted, which the audit does not always say: the
            # job is explained by a drain placed before it ended
            found.setdefault(action.node, []).append((action.started_at, until, what))
    return found


def fitted_since(store: HistoryStore, since: float, until: float) -> float:
    """The start of a window that fits the data: the first thing the store saw in
    ``[since, until]`` (a collection, incident, fault, job or remediation), a little
    before it so that its mark is not on the edge; ``since`` when it has nothing there.
    """
    firsts = [
        *(record.started_at for record in store.collections(since=since)[:1]),
        *(incident.ts for incident in store.incidents(since=since, until=until)[:1]),
        *(fault.started_at for fault in store.faults(since=since, until=until)[:1]),
        *(job.submitted_at or job.finished_at for job in store.jobs(since=since)[:1]),
        *(action.started_at for action in store.remediations(since=since)[:1]),
    ]
    first = min((ts for ts in firsts if since <= ts < until), default=None)
    if first is None:
        return since
    margin = max(2.0, 0.03 * (until - first))
    return max(since, first - margin)


def _check(since: float, until: float, horizon_s: float, max_gap_s: float) -> None:
    for name, value in (("since", since), ("until", until)):
        if not math.isfinite(value):
            raise BadInput(f"the report's {name} must be a time, got {value!r}")
    if since >= until:
        raise BadInput("the report's window must start before it ends")
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise BadInput(f"the horizon must be more than 0 seconds, got {horizon_s!r}")
    if not (math.isfinite(max_gap_s) and max_gap_s > 0):
        raise BadInput(f"the longest observed gap must be more than 0 seconds, got {max_gap_s!r}")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """node2 before node10."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)
    )
