"""``lepton-ops report``: text, --json, --html; bad input is one line and exit 2."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_support import one_error_line, run_cli
from report_support import PERIOD_S, UNHEALTHY, UP, series

from lepton_ops.telemetry import HistoryStore, history_path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A store with the last 10 minutes of one node: one failed health check at -5 min."""
    state_dir = tmp_path / "state"
    now = time.time()
    times = [now - 600 + PERIOD_S * index for index in range(10)]
    with HistoryStore(history_path(state_dir)) as store:
        series(store, times, {"node1": [UP] * 5 + [UNHEALTHY] + [UP] * 4})
    return state_dir


def test_an_empty_state_gives_a_report_that_says_what_is_missing(tmp_path: Path) -> None:
    done = run_cli("report", "--json", state_dir=tmp_path / "empty")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["nodes"] == [] and data["html"] is None
    assert any("no telemetry in the window" in line for line in data["missing"])
    text = run_cli("report", state_dir=tmp_path / "empty")
    assert text.returncode == 0 and "missing: no telemetry in the window" in text.stdout


def test_the_report_as_json_and_text(state: Path) -> None:
    done = run_cli("report", "--since", "1h", "--horizon", "30m", "--json", state_dir=state)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    (node,) = data["stability"]["nodes"]
    # 10 observations a minute apart: 540 s observed; one episode of 60 s (-5 min, up again
    # a minute later): lambda = 1 / (540 / 3600) = 6.67 per hour, MTTR 60 s.
    assert (node["node"], node["failures"], node["observed_s"]) == ("node1", 1, 540.0)
    assert node["failure_rate"]["value"] == pytest.approx(3600 / 540)
    assert node["mttr"]["value"] == pytest.approx(60.0)
    assert data["horizon_s"] == 1800.0 and data["max_gap_s"] == 300.0
    text = run_cli("report", state_dir=state)
    assert text.returncode == 0, text.stderr
    assert "stability: failures" in text.stdout and "stability: repair" in text.stdout
    assert "fleet MTTR: 60 s from 1 recovered episode" in text.stdout


def test_html_is_written_whole_and_its_path_printed(state: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    done = run_cli("report", "--html", str(target), state_dir=state)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(str(target))
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [path.name for path in target.parent.iterdir()] == ["report.html"]  # no temporary
    with_json = run_cli("report", "--html", str(target), "--json", state_dir=state)
    assert json.loads(with_json.stdout)["html"] == str(target)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "bad duration 'yesterday'"),
        (("--horizon", "0s"), "it must be longer than 0 seconds"),
        (("--max-gap", "5"), "bad duration '5'"),
        (("--html", "/nonexistent-dir/x.html"), "the directory /nonexistent-dir does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = run_cli("report", *args, state_dir=tmp_path / "state")
    assert done.returncode == 2
    assert message in one_error_line(done)


def test_html_to_a_directory_is_bad_input(tmp_path: Path) -> None:
    done = run_cli("report", "--html", str(tmp_path), state_dir=tmp_path / "state")
    assert done.returncode == 2 and "is a directory" in one_error_line(done)
