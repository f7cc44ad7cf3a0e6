"""A telemetry store with known observations, incidents and faults, for the report's tests.

The scenario (:func:`known_store`) is small enough to compute every figure by hand; the
arithmetic is written out in ``test_report_stability.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from telemetry_support import make_facts

from lepton_ops.jobs.history import job_run_record
from lepton_ops.jobs.planner import make_plan
from lepton_ops.report import Report, build_report
from lepton_ops.report.sources import NodeRisk, PredictionSection
from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

T0 = 1_700_000_000.0
PERIOD_S = 60.0
HOUR = 3600.0
NODES = ("node1", "node2", "node3")

#: States a node can be observed in by one collection.
UP, UNHEALTHY, UNREACHABLE, ABSENT = "up", "unhealthy", "unreachable", "absent"


def outcome(node: str, ts: float, state: str, **facts: object) -> NodeOutcome | None:
    if state == ABSENT:
        return None
    if state == UNREACHABLE:
        return NodeOutcome.unreachable(node, "ssh: connect timed out", ts=ts)
    unhealthy = ("worker",) if state == UNHEALTHY else ()
    return NodeOutcome.from_facts(node, make_facts(node, ts, unhealthy=unhealthy, **facts))  # type: ignore[arg-type]


def collect(store: HistoryStore, ts: float, states: Mapping[str, str]) -> None:
    outcomes = [outcome(node, ts, state) for node, state in states.items()]
    store.record_collection([o for o in outcomes if o is not None], started_at=ts, finished_at=ts)


def node2_state(offset: float) -> str:
    """node2: a failed health check at 600 and 660 s; unreachable 1800-1920 s."""
    if offset in (600.0, 660.0):
        return UNHEALTHY
    if 1800.0 <= offset <= 1920.0:
        return UNREACHABLE
    return UP


def node3_state(offset: float) -> str:
    """node3: no telemetry between 1200 and 2400 s (a gap); unreachable from 3300 s on."""
    if 1200.0 < offset < 2400.0:
        return ABSENT
    if offset >= 3300.0:
        return UNREACHABLE
    return UP


def known_store(state_dir: Path) -> HistoryStore:
    """The scenario: 61 collections, one a minute from T0 to T0 + 1 h, and one fault.

    - node1 is up throughout;
    - node2 fails its health check at +600 and +660 (up again at +720), and is killed by
      a chaos fault: injected at +1750, failed at +1790, unreachable from +1800 to +1920,
      up again at +1980 (the fault ended then);
    - node3 sends nothing between +1200 and +2400 (the interval is longer than the
      5-minute gap limit) and is unreachable from +3300 to the end.
    """
    store = HistoryStore(history_path(state_dir))
    for minute in range(61):
        offset = minute * PERIOD_S
        collect(
            store,
            T0 + offset,
            {"node1": UP, "node2": node2_state(offset), "node3": node3_state(offset)},
        )
    fault = store.start_fault("node2", "kill", {}, started_at=T0 + 1750, campaign="test")
    store.mark_fault_failed(fault, T0 + 1790, "worker killed")
    store.end_fault(fault, "failed", ended_at=T0 + 1980)
    return store


def series(store: HistoryStore, times: Iterable[float], states: Mapping[str, list[str]]) -> None:
    """Collections at ``times``, node by node in the given states (one per time)."""
    for index, ts in enumerate(times):
        collect(store, ts, {node: seq[index] for node, seq in states.items()})


# --------------------------------------------------------------------------- a full report


def add_remediations(path: Path, rows: Iterable[tuple[str, str, str, float, float, str]]) -> None:
    """Fill the store's remediation audit (schema v4) with ``rows``:
    ``(node, action, trigger, started_at, finished_at, outcome)``."""
    with HistoryStore(path) as store:
        for node, action, trigger, started, finished, outcome in rows:
            audit_id = store.start_remediation(
                node, action, trigger=trigger, reason=trigger, before={"healthy": False},
                started_at=started,
            )  # fmt: skip
            store.finish_remediation(
                audit_id, outcome, after={"healthy": True}, finished_at=finished
            )


def add_jobs(store: HistoryStore, count: int = 3) -> None:
    """``count`` finished jobs over node1..node3 (weights 1, 2, 1), a minute apart."""
    plan = make_plan([("node1", 1), ("node2", 2), ("node3", 1)], 40)
    for index in range(count):
        finished = T0 + 300 + 600 * index
        per_node = {
            "node1": {"tasks": 10, "shards": 2, "seconds": 1.0},
            "node2": {"tasks": 22, "shards": 5, "seconds": 1.1},  # stole 2 from node3
            "node3": {"tasks": 8, "shards": 2, "seconds": 0.9},
        }
        status = {
            "job_id": f"job{index:02d}" + "f" * 24,
            "kind": "sleep",
            "status": "succeeded",
            "strategy": "weighted",
            "tasks": 40,
            "created_at": finished - 1.5,
            "finished_at": finished,
            "makespan_s": 1.5,
            "per_node": per_node,
        }
        store.record_job(job_run_record(status, plan, now=finished))


def full_report(state_dir: Path) -> Report:
    """The known store with jobs, remediation actions and a current risk: every chart."""
    with known_store(state_dir) as store:
        add_jobs(store)
        path = store.path
    add_remediations(
        path,
        [
            ("node2", "restart_service", "health check failed", T0 + 700, T0 + 715, "recovered"),
            ("node2", "restart_service", "risk 0.9", T0 + 2000, T0 + 2010, "failed"),
            ("node3", "<script>alert(1)</script>", "risk", T0 + 3400, T0 + 3500, "cordoned"),
        ],
    )
    risks = (
        NodeRisk("node1", 0.02, False, 3600.0, ""),
        NodeRisk("node2", 0.61, True, 3600.0, ""),
        NodeRisk("node3", None, None, 3600.0, "stale data"),
    )
    prediction = PredictionSection(risks, None, {"alarm_episodes": 4, "false_alarms": 1}, None)
    with HistoryStore(path) as store:
        return build_report(store, state_dir, since=T0, until=T0 + HOUR, prediction=prediction)
