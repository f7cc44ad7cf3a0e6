"""``lepton-ops model train|evaluate|show`` and ``lepton-ops predict``: on a store with a
simulated campaign, their JSON, and their one-line errors with meaningful exit codes (2 bad
input, 1 no model, no telemetry, or a model file that was modified)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import one_error_line, run_cli
from predict_support import NODES, record_recent

from lepton_ops.cli.app import main

KINDS = ["memleak", "diskfill", "kill", "memleak", "diskfill", "cpuhog", "memleak", "diskfill"]


class Ran:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def error_line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lepton-ops: error: "), self.err
        return lines[0]


Cli = Callable[..., Ran]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """Run ``lepton-ops ARGS`` in this process, through the CLI's error boundary."""

    def run(*args: str, state: Path) -> Ran:
        capsys.readouterr()
        try:
            main([*args, "--state-dir", str(state)])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    yield run


@pytest.fixture(scope="module")
def campaign_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("campaign")
    record_recent(state, KINDS, seed=5)
    return state


@pytest.fixture(scope="module")
def trained(campaign_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the campaign's state dir with a model trained by the CLI."""
    state = tmp_path_factory.mktemp("trained")
    shutil.copytree(campaign_state / "telemetry", state / "telemetry")
    result = run_cli("model", "train", "--json", state_dir=state)
    assert result.returncode == 0, result.stderr
    return state


def test_train_saves_a_model_and_says_what_it_learned(trained: Path, cli: Cli) -> None:
    shown = cli("model", "show", "--json", state=trained)
    assert shown.code == 0, shown.err
    data = shown.json
    assert data["mode"] == "classifier"
    assert (data["horizon_s"], data["window_s"]) == (60.0, 120.0)
    assert data["training"]["failures_by_kind"]["memleak"] == 3
    assert data["validation"]["method"].startswith("out-of-fold")
    assert "mem_tte_s" in data["features"] and "sklearn" in data["versions"]
    assert [m["current"] for m in data["models"]] == [True]
    table = cli("model", "show", state=trained)
    assert table.code == 0 and "classifier" in table.out and "threshold" in table.out


def test_predict_json_per_node(trained: Path, cli: Cli) -> None:
    result = cli("predict", "--json", state=trained)
    assert result.code == 0, result.err
    data = result.json
    assert data["mode"] == "classifier" and data["horizon_s"] == 60.0
    assert [n["node"] for n in data["nodes"]] == list(NODES)
    for node in data["nodes"]:
        assert 0.0 <= node["probability"] <= 1.0
        assert 0.0 <= node["anomaly_score"] <= 1.0
        assert node["horizon_s"] == 60.0 and not node["stale"]
        assert len(node["top_features"]) == 3
        assert {"feature", "value", "contribution"} == set(node["top_features"][0])
        assert 0.0 <= node["data_age_s"] < 120.0
    one = cli("predict", "--json", "--node", "node3", "--threshold", "0", state=trained)
    assert one.code == 0, one.err
    [node] = one.json["nodes"]
    assert node["node"] == "node3" and node["at_risk"] and one.json["threshold"] == 0.0
    table = cli("predict", state=trained)
    assert table.code == 0 and all(name in table.out for name in NODES)


def test_predict_bad_input_is_exit_2(trained: Path, cli: Cli) -> None:
    result = cli("predict", "--threshold", "1.5", state=trained)
    assert result.code == 2 and "--threshold must be between 0 and 1" in result.error_line()
    result = cli("predict", "--node", "node9", state=trained)
    assert result.code == 2 and "no telemetry for node 'node9'" in result.error_line()


def test_predict_without_a_model_uses_the_streaming_detector(
    campaign_state: Path, cli: Cli
) -> None:
    # Issue 12 changed this: without a model, the streaming detector's alarms decide
    # (it used to be exit 1, "no failure model yet").
    result = cli("predict", "--json", state=campaign_state)
    assert result.code == 0, result.err
    data = result.json
    assert data["mode"] == "detector" and data["model"] is None and data["threshold"] == 0.8
    assert [node["node"] for node in data["nodes"]] == list(NODES)
    for node in data["nodes"]:
        assert node["probability"] is None and not node["stale"]
        assert 0.0 <= node["anomaly_score"] <= 1.0
        assert node["at_risk"] == (node["anomaly_score"] >= 0.8)
        for alarm in node["anomaly_series"]:
            assert alarm["series"].startswith("lepton_") and 0 < alarm["score"] <= 1
    table = cli("predict", state=campaign_state)
    assert table.code == 0 and "no model" in table.out
    shown = cli("model", "show", state=campaign_state)
    assert shown.code == 1 and "no failure model yet" in shown.error_line()


def test_no_telemetry_is_a_clear_line(tmp_path: Path, cli: Cli) -> None:
    result = cli("model", "train", state=tmp_path)
    assert result.code == 1
    assert "no telemetry store" in result.error_line() and "telemetry collect" in result.err
    assert not (tmp_path / "telemetry").exists()


def test_bad_durations_and_options_are_exit_2(campaign_state: Path, cli: Cli) -> None:
    for args, words in (
        (("model", "train", "--horizon", "60"), "bad duration '60'"),
        (("model", "train", "--horizon", "2s"), "the horizon must be between 5s and 1d"),
        (("model", "train", "--window", "5s"), "the window must be between 10s and 1d"),
        (("model", "evaluate", "--min-lead", "90s"), "must be shorter than the horizon"),
        (("model", "evaluate", "--held-out", "1.5"), "--held-out must be between 0 and 1"),
        (("model", "train", "--since", "10m", "--until", "20m"), "is not after --since"),
    ):
        result = cli(*args, state=campaign_state)
        assert result.code == 2, (args, result.err)
        assert words in result.error_line(), (args, result.err)


def test_evaluate_json_has_the_issues_shape(campaign_state: Path, cli: Cli) -> None:
    result = cli("model", "evaluate", "--json", state=campaign_state)
    assert result.code == 0, result.err
    data = result.json
    assert {"f1", "false_alarms_per_node_day", "by_fault", "baselines"} <= set(data)
    for fault in data["by_fault"].values():
        assert {"incidents", "precision", "recall", "f1", "median_lead_s"} <= set(fault)
    assert set(data["baselines"]) >= {"threshold", "predict_linear"}
    assert "f1" in data["baselines"]["threshold"] and "f1" in data["baselines"]["predict_linear"]
    assert data["split"]["train"]["until"] < data["split"]["cut"] < data["split"]["test"]["since"]
    assert not (campaign_state / "models").exists()  # evaluation saves nothing
    table = cli("model", "evaluate", state=campaign_state)
    assert table.code == 0 and "predict_linear" in table.out and "memleak" in table.out


def test_a_modified_model_file_is_refused_by_predict(trained: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(trained, state)
    current = json.loads((state / "models" / "current.json").read_text())
    model = state / "models" / current["model"]
    data = bytearray(model.read_bytes())
    data[100] ^= 0x20
    model.write_bytes(bytes(data))
    result = run_cli("predict", state_dir=state)
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"model file {model} does not match its recorded SHA-256" in line
    assert "retrain with 'lepton-ops model train'" in line
