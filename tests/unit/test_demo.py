"""The demo's checks and story, without a lab: the heterogeneous job's share check, its
parameters, and node3's timeline in the final report (leak, prediction, restart, recovery)
drawn from a store shaped like the tour's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from report_support import add_remediations, collect
from report_support import outcome as node_outcome

from lepton_ops import demo
from lepton_ops.jobs.planner import make_plan
from lepton_ops.report.build import build_report, fitted_since
from lepton_ops.report.html import page
from lepton_ops.telemetry.history import HistoryStore, history_path

LAB_WEIGHTS = [("node1", 100), ("node2", 200), ("node3", 300), ("node4", 400), ("node5", 500)]


def test_share_gaps_compare_executed_shares_with_l_i() -> None:
    gaps = demo.share_gaps({"node1": 30, "node2": 70}, {"node1": 0.25, "node2": 0.75, "n3": 0.0})
    assert gaps == {"node1": (0.25, 0.3), "node2": (0.75, 0.7), "n3": (0.0, 0.0)}


def test_the_speeds_job_plans_l_i_in_shards_of_one_percent() -> None:
    plan = make_plan(LAB_WEIGHTS, demo.SPEEDS_TASKS, shard_size=demo.SPEEDS_SHARD_SIZE)
    for node in plan.nodes:
        assert abs(node.tasks - node.load_share * demo.SPEEDS_TASKS) < 1  # largest remainder
    # one shard moved by stealing changes a node's share by one point at most
    assert plan.max_shard_size / demo.SPEEDS_TASKS <= 0.01


@pytest.mark.parametrize("overhead_s", [0.0, 0.01, 0.03])
def test_per_shard_overhead_keeps_shares_within_the_tolerance(overhead_s: float) -> None:
    # Every worker stays busy until the queue runs dry (work stealing), so each one's share
    # of the executed tasks is its rate over the sum of rates; a shard costs its sleep
    # (task_ms / speed per task) plus a fixed overhead (a round trip to the aggregator).
    speeds = {name: weight / 100 for name, weight in LAB_WEIGHTS}
    size = demo.SPEEDS_SHARD_SIZE
    rates = {
        name: size / (size * demo.SPEEDS_TASK_MS / 1000 / speed + overhead_s)
        for name, speed in speeds.items()
    }
    total = sum(rates.values())
    shares = {name: weight / 1500 for name, weight in LAB_WEIGHTS}
    worst = max(abs(rates[name] / total - shares[name]) for name in shares)
    assert worst <= demo.SHARE_TOLERANCE / 2


def test_node3s_timeline_tells_the_leak_prediction_restart_and_recovery(tmp_path: Path) -> None:
    t0 = 1_800_000_000.0
    with HistoryStore(history_path(tmp_path)) as store:
        for second in range(0, 90, 3):  # every node sampled every 3 s (the tour's loop)
            collect(store, t0 + second, {f"node{k}": "up" for k in range(1, 6)})
        fault = store.start_fault("node3", "memleak", {}, started_at=t0 + 20, campaign="demo")
        store.end_fault(fault, "remediated", ended_at=t0 + 62)
        outcomes = [node_outcome("node3", t0 + 90, "up")]
        store.record_collection([o for o in outcomes if o is not None])
        path = store.path
    add_remediations(
        path,
        [
            ("node3", "predictive-drain", "demo", t0 + 55, t0 + 55.5, "verified"),
            ("node3", "restart", "demo", t0 + 56, t0 + 62, "verified"),
        ],
    )
    with HistoryStore(path) as store:
        until = t0 + 95
        report = build_report(
            store, tmp_path, since=fitted_since(store, t0 - 900, until), until=until
        )
    # the window fits the tour (not the 15 minutes before it)
    assert t0 - 5 <= report.since <= t0
    html = page(report)
    node3 = re.search(
        r'<figure class="chart" data-chart="timeline" data-node="node3".*?</figure>', html
    )
    assert node3 is not None
    chart = node3.group(0)
    assert 'class="data fault"' in chart and "fault memleak" in chart  # the leak
    assert 'class="data prediction"' in chart  # its prediction, with its lead time
    assert "35 s after the fault began" in chart and "1 s before the remediation" in chart
    assert 'class="data remediation"' in chart and "remediation restart" in chart  # the restart
    assert 'class="data line health"' in chart  # and the node healthy to the end
    assert all(f'data-node="node{k}"' in html for k in range(1, 6))
