"""The report tells the story: a window that fits the data, a summary at the top, a line
for a node without data, and why executed shares differ from L_i."""

from __future__ import annotations

from pathlib import Path

from report_support import HOUR, T0, full_report, known_store

from lepton_ops.report.build import build_report, fitted_since
from lepton_ops.report.html import page
from lepton_ops.report.load import explain_job
from lepton_ops.report.summary import summary_lines
from lepton_ops.telemetry.records import JobRunNode, JobRunRecord


def job(executed: dict[str, int], *, shards: int = 8, makespan: float = 0.4) -> JobRunRecord:
    weights = {"node1": 100, "node2": 200, "node3": 300}
    total = sum(weights.values())
    nodes = tuple(
        JobRunNode(name, weights[name], weights[name] / total, None, tasks, shards // 3, 0.1)
        for name, tasks in executed.items()
    )
    return JobRunRecord(
        "j" * 32, "mean", "weighted", sum(executed.values()), "succeeded", T0 + 100,
        T0 + 100 + makespan, makespan, None, "", nodes, T0 + 101,
    )  # fmt: skip


def test_the_window_starts_at_the_first_observation(tmp_path: Path) -> None:
    with known_store(tmp_path) as store:
        start = fitted_since(store, T0 - 24 * HOUR, T0 + HOUR)
        # the first collection is at T0; a margin of 3 % of the span keeps it off the edge
        assert T0 - 0.03 * HOUR - 1 <= start < T0
        # capped by --since: a window that starts later stays as asked
        assert fitted_since(store, T0 + 600, T0 + HOUR) == T0 + 600
        # nothing in the window: as asked
        assert fitted_since(store, T0 + 2 * HOUR, T0 + 3 * HOUR) == T0 + 2 * HOUR


def test_the_summary_tells_availability_failures_predictions_and_remediation(
    tmp_path: Path,
) -> None:
    lines = summary_lines(full_report(tmp_path / "state"))
    text = " ".join(lines)
    assert lines[0].startswith("3 nodes observed for") and "fleet availability" in lines[0]
    assert "failures" in text and "recovered" in text and "MTTR" in text
    assert "1 injected fault: kill on node2." in text
    assert "at risk now: node2." in text
    assert "remediation: restart_service of node2 recovered" in text
    html = page(full_report(tmp_path / "again"))
    assert html.index('<ul class="summary">') < html.index("<h2>Stability</h2>")


def test_a_node_without_data_in_the_window_is_one_line(tmp_path: Path) -> None:
    with known_store(tmp_path) as store:
        # node3 sends nothing between +1200 and +2400 s: a window inside that gap
        report = build_report(store, tmp_path, since=T0 + 1500, until=T0 + 1700)
    html = page(report)
    assert report.silent == ("node3",) and "node3" not in report.nodes
    assert html.count("node3: no telemetry, fault or action in these 3.33 min") == 1
    assert 'data-node="node3"' not in html
    assert 'data-node="node1"' in html and 'data-node="node2"' in html


def test_shares_that_follow_l_i_say_so() -> None:
    explained = explain_job(job({"node1": 101, "node2": 199, "node3": 300}), {})
    assert explained.deviation is not None and explained.deviation < 0.01
    assert explained.reason.startswith("executed shares follow L_i")


def test_shares_decided_by_stealing_say_so() -> None:
    explained = explain_job(job({"node1": 4, "node2": 0, "node3": 117}), {})
    assert explained.deviation is not None and explained.deviation > 0.05
    assert explained.reason.startswith("work stealing") and "6 shards in 0.4 s" in explained.reason


def test_a_drain_or_a_failure_during_the_job_is_the_reason() -> None:
    during = {"node2": [(T0 + 100.2, None, "drained (predicted)")]}
    explained = explain_job(job({"node1": 200, "node2": 0, "node3": 400}), during)
    assert explained.reason.startswith("node2 drained (predicted) while the job ran")
    before = {"node1": [(T0, T0 + 50, "failed")]}  # over before the job: not the reason
    assert explain_job(job({"node1": 0, "node2": 0, "node3": 600}), before).reason.startswith(
        "work stealing"
    )
