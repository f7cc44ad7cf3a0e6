"""The report's HTML page (self-contained, escaped, one chart per node and two for the
load) and the optional sources it shows: remediation audit, current risk, alarms."""

from __future__ import annotations

import html
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from report_support import T0, full_report

import lepton_ops.predict
import lepton_ops.predict.model_store
from lepton_ops.report.html import page
from lepton_ops.report.load import makespan_ratio
from lepton_ops.report.sources import alarm_figures, current_risks
from lepton_ops.report.text import render

#: Any attribute or CSS that would make a browser fetch something.
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|action|poster|data|srcset|xlink:href)\s*=\s*["']?\s*(?:https?:)?//)"""
    r"""|url\(\s*["']?\s*(?:https?:)?//|@import""",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def html_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    return page(full_report(tmp_path_factory.mktemp("state")))


def charts(text: str) -> list[str]:
    return re.findall(r'<figure class="chart" data-chart="([a-z-]+)"', text)


def test_the_page_has_a_timeline_per_node_and_the_load_charts(html_page: str) -> None:
    assert html_page.startswith("<!DOCTYPE html>")
    assert charts(html_page) == ["timeline"] * 3 + ["load-shares", "makespan"]
    assert re.findall(r'data-node="(\w+)"', html_page) == ["node1", "node2", "node3"]
    # every chart starts undrawn: only the browser's check marks it drawn
    assert html_page.count('data-drawn="no"') == 5 and 'data-drawn="yes"' not in html_page
    assert '<body data-charts-drawn="pending">' in html_page
    # the charts show data: lines, shaded episodes, the fault, incidents, remediation, risk
    for mark in (
        "data line memory", "data line disk", "data line health", "data episode",
        "data fault", "data incident", "data remediation", "data risk", "data planned",
        "data executed job0", "data predicted", "data measured",
    ):  # fmt: skip
        assert f'class="{mark}"' in html_page, mark


def test_the_page_references_nothing_outside_itself(html_page: str) -> None:
    assert not EXTERNAL.search(html_page)
    assert "http://" not in html_page and "https://" not in html_page
    assert not re.search(r"<(?:link|img|iframe|object|embed)\b", html_page, re.IGNORECASE)
    assert re.search(r"<script\b[^>]*\bsrc=", html_page) is None
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html_page)
    assert csp is not None and html.unescape(csp.group(1)).startswith("default-src 'none';")
    # the check is not vacuous
    assert EXTERNAL.search('<img src="https://cdn.example/x.png">')
    assert EXTERNAL.search("<script src='//cdn.example/x.js'>")
    assert EXTERNAL.search("background: url(http://x/y.png)")


def test_strings_from_the_store_are_escaped(html_page: str) -> None:
    assert "<script>alert(1)</script>" not in html_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_page
    assert html_page.count("<script>") == 1  # the page's own check


def test_the_page_shows_the_numbers(html_page: str) -> None:
    # node2: lambda 2 per hour, MTBF 1645 s = 27.4 min, MTTR 155 s = 2.58 min
    assert "2 failures/hour" in html_page and "27.4 min" in html_page and "2.58 min" in html_page
    assert "1.12 failures/node-hour" in html_page
    assert "P(some node fails within 1h) = 96.58 %" in html_page
    # load shares 1/4, 2/4, 1/4 and executed 10, 22, 8 of 40
    for share in ("25.00 %", "50.00 %", "55.00 %", "20.00 %"):
        assert share in html_page
    assert "restart_service" in html_page and "recovered" in html_page
    assert "61.0 %" in html_page  # node2's current risk


def test_the_report_json_has_load_remediation_and_prediction(tmp_path: Path) -> None:
    report = full_report(tmp_path)
    data = report.to_dict()
    nodes = {node["node"]: node for node in data["load"]["nodes"]}
    assert (nodes["node2"]["load_share"], nodes["node2"]["planned_tasks"]) == (0.5, 60)
    assert nodes["node2"]["executed_tasks"] == 66 and nodes["node3"]["executed_tasks"] == 24
    assert nodes["node1"]["executed_share"] == pytest.approx(30 / 120)
    (job, *_) = report.load.jobs
    # plan: node1 10, node2 20, node3 10; speeds 10/1.0, 22/1.1 = 20, 8/0.9 = 8.89 per s:
    # predicted max(10/10, 20/20, 10/8.89) = 1.125 s, against 1.5 s measured.
    assert job.predicted_makespan_s == pytest.approx(1.125)
    assert makespan_ratio(job) == pytest.approx(1.5 / 1.125)
    assert data["remediation"]["by_action"] == {
        "<script>alert(1)</script>": {"cordoned": 1},
        "restart_service": {"failed": 1, "recovered": 1},
    }
    assert data["remediation"]["actions"][0]["before"] == {"healthy": False}
    assert data["prediction"]["alarms"] == {"alarm_episodes": 4, "false_alarms": 1}
    assert data["missing"] == []


def test_the_terminal_report_renders_every_section(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=220)
    render(full_report(tmp_path), console)
    text = console.export_text()
    for words in (
        "stability: failures",
        "stability: repair",
        "load over 3 jobs",
        "makespan",
        "current risk",
        "remediation: 3 actions",
        "P(some node fails within 1h) = 96.58 %",
    ):
        assert words in text, words


# --------------------------------------------------------------------------- the predictor


def test_current_risk_is_read_from_the_predictor_when_it_offers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(lepton_ops.predict, "current_risk", raising=False)
    assert current_risks(tmp_path) == ((), "no model trained yet")

    def risk(state_dir: Path) -> Any:
        assert state_dir == tmp_path
        return [
            {"node": "b", "probability": 0.4, "at_risk": True, "horizon_s": 600.0},
            SimpleNamespace(node="a", probability=None, at_risk=False, stale=True),
        ]

    monkeypatch.setattr(lepton_ops.predict, "current_risk", risk, raising=False)
    risks, message = current_risks(tmp_path)
    assert message is None
    assert [(r.node, r.probability, r.at_risk, r.detail) for r in risks] == [
        ("a", None, False, "stale data"),
        ("b", 0.4, True, ""),
    ]
    monkeypatch.setattr(lepton_ops.predict, "current_risk", lambda _: {"c": 0.1}, raising=False)
    assert current_risks(tmp_path)[0][0].probability == 0.1

    def broken(state_dir: Path) -> Any:
        raise RuntimeError("no\nmodel file")

    monkeypatch.setattr(lepton_ops.predict, "current_risk", broken, raising=False)
    assert current_risks(tmp_path) == ((), "no model trained yet (no model file)")


def test_alarms_come_from_the_current_models_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures, message = alarm_figures(tmp_path)
    assert figures is None and str(message).startswith("no predictor data (")
    info = {"validation": {"alarm_episodes": 7, "false_alarms": 2, "median_lead_s": 41.5,
                           "precision": 0.71, "f1": 0.6}}  # fmt: skip
    saved = SimpleNamespace(predictor=SimpleNamespace(info=info))
    monkeypatch.setattr(lepton_ops.predict.model_store, "load_current", lambda _: saved)
    assert alarm_figures(tmp_path) == (
        {"alarm_episodes": 7, "false_alarms": 2, "median_lead_s": 41.5, "precision": 0.71},
        None,
    )
    saved.predictor.info = {"notes": ["trained the anomaly detector only"]}
    assert alarm_figures(tmp_path) == (
        None,
        "no predictor data (the current model has no alarm validation: "
        "trained the anomaly detector only)",
    )


def test_a_page_without_data_says_so(tmp_path: Path) -> None:
    from lepton_ops.report import build_report
    from lepton_ops.report.sources import PredictionSection
    from lepton_ops.telemetry import HistoryStore, history_path

    none = PredictionSection((), "no model trained yet", None, "no predictor data")
    with HistoryStore(history_path(tmp_path)) as store:
        report = build_report(store, tmp_path, since=T0, until=T0 + 60, prediction=none)
    text = page(report)
    assert charts(text) == []
    assert "no node observed in the window" in text and "no job recorded" in text
    assert "no remediation recorded" in text and "no model trained yet" in text
