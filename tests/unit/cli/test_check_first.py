"""The CLI checks before it acts: bad input is one line and exit 2 before anything runs or
is written, and the read-only commands create nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import one_error_line, run_cli, static_inventory


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return static_inventory(tmp_path / "hosts.yml", 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("uncordon", "node9"), "node9 is not in the inventory"),
        (("job", "plan", "--tasks", "0"), "0 is not in the range x>=1"),
        (("job", "run", "--kind", "mean", "--tasks", "0"), "0 is not in the range x>=1"),
        (("job", "plan", "--tasks", "10", "--task-ms", "-1"), "'--task-ms': -1.0 is not in"),
        (("telemetry", "export", "--format", "csv", "--json"), "--json does not apply to export"),
        (("telemetry", "export", "--format", "xml"), "'xml' is not one of 'csv', 'prometheus'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_is_created(
    tmp_path: Path, inventory: Path, args: tuple[str, ...], message: str
) -> None:
    state = tmp_path / "state"
    result = run_cli(*args, "-i", str(inventory), state_dir=state)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_error_line(result)
    assert message in line
    assert "seconds" not in line or "--task-ms" not in line  # --task-ms is in milliseconds
    assert result.stdout == ""
    assert not state.exists()  # no token, no runs/ folder, no store
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts.yml"]


def test_watch_interval_takes_units(tmp_path: Path, inventory: Path) -> None:
    # --watch is read before --timeout: a refused timeout shows that "5s" was accepted.
    state = tmp_path / "state"
    result = run_cli(
        "telemetry", "pull", "--watch", "5s", "--timeout", "-1", "-i", str(inventory),
        state_dir=state,
    )  # fmt: skip
    assert result.returncode == 2
    assert "the timeout must be more than 0 seconds" in one_error_line(result)
    refused = run_cli("telemetry", "pull", "--watch", "soon", state_dir=state)
    assert refused.returncode == 2 and "bad duration 'soon'" in one_error_line(refused)
    assert not state.exists()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("audit",), 0, "no remediation in the last 24h"),
        (("report",), 0, ""),
        (("telemetry", "show"), 0, "no telemetry yet"),
        (("telemetry", "export", "--format", "csv"), 0, ""),
        (("model", "show"), 1, "lepton-ops model install-starter"),
        (("lab", "status"), 1, "start one with 'lepton-ops lab up'"),
    ],
)
def test_read_only_commands_create_nothing(
    tmp_path: Path, args: tuple[str, ...], code: int, says: str
) -> None:
    state = tmp_path / "state"
    result = run_cli(*args, state_dir=state)
    assert result.returncode == code, result.stderr
    assert says in result.stdout + result.stderr
    assert not state.exists()
    assert list(tmp_path.iterdir()) == []


def test_lab_status_json_without_a_lab_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = run_cli("lab", "status", "--json", state_dir=state)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["up"] is False and "lepton-ops lab up" in data["message"]
    assert not state.exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_the_report_page_is_written_with_the_users_umask(
    tmp_path: Path, umask: int, mode: int
) -> None:
    import os
    import stat

    from lepton_ops.cli.report import write_atomically

    before = os.umask(umask)
    try:
        write_atomically(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == mode


def test_status_creates_nothing(tmp_path: Path) -> None:
    # 127.0.3.x: loopback addresses no lab uses; nothing listens, /healthz fails at once
    inventory = static_inventory(tmp_path / "hosts.yml", 2)
    state = tmp_path / "state"
    result = run_cli("status", "-i", str(inventory), "--json", state_dir=state)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [node["node"] for node in data["nodes"]] == ["node1", "node2"]
    assert data["nodes"][1]["healthy"] is False
    assert not state.exists()
