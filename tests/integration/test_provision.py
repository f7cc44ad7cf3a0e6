"""Provisioning the session lab through the CLI, as an operator runs it (no -i: the lab's)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cli_support import one_error_line
from lab_tools import NODES, node_ssh, provision, statuses

from lepton_ops.lab import LabMode

if TYPE_CHECKING:
    from conftest import RunningLab

STACK_CHECK = "import sklearn, flask, numpy, lepton_ops"


@pytest.mark.slow
def test_second_run_changes_nothing(provisioned: RunningLab) -> None:
    result, data = provision(provisioned)
    assert result.returncode == 0, result.stderr
    assert statuses(data) == {name: ("ok", 0) for name in NODES}
    assert data["succeeded"] is True
    assert data["wheelhouse"]["built"] is False


@pytest.mark.slow
def test_every_node_runs_the_stack(provisioned: RunningLab) -> None:
    for name in NODES:
        if provisioned.mode is LabMode.SSH:
            ran = node_ssh(provisioned, name, f'/opt/lepton/venv/bin/python -c "{STACK_CHECK}"')
        else:
            python = provisioned.lab.node_paths(name).prefix / "venv" / "bin" / "python"
            ran = subprocess.run(
                [str(python), "-c", STACK_CHECK], capture_output=True, text=True, check=False
            )
        assert ran.returncode == 0, f"{name}: {ran.stderr}"
    if provisioned.mode is LabMode.SSH:
        assert not Path("/opt/lepton").exists(), "the host's own /opt/lepton must not exist"


@pytest.mark.slow
def test_check_mode_reports_and_changes_nothing(provisioned: RunningLab) -> None:
    venv = provisioned.lab.node_paths("node2").prefix / "venv"
    shutil.rmtree(venv)
    try:
        result, data = provision(provisioned, "--check", "--limit", "node2")
        assert result.returncode == 0, result.stderr
        assert data["check"] is True
        assert statuses(data)["node2"][0] == "changed"
        assert not venv.exists(), "--check must not change the node"
    finally:
        result, data = provision(provisioned, "--limit", "node2")
        assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_unknown_limit_host_is_bad_input(provisioned: RunningLab) -> None:
    result, _ = provision(provisioned, "--limit", "node9")
    assert result.returncode == 2
    assert "node9" in one_error_line(result)


@pytest.mark.slow
@pytest.mark.ssh
def test_unreachable_node_fails_with_one_line(provisioned: RunningLab) -> None:
    if provisioned.mode is not LabMode.SSH:
        pytest.skip("cutting a node off needs the ssh-mode lab")
    provisioned.lab.firewall().cut_off("127.0.1.3", "test")
    try:
        result, data = provision(provisioned, "--limit", "node3,node4")
    finally:
        provisioned.lab.firewall().restore("127.0.1.3", "test")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "node3 unreachable" in line
    assert statuses(data)["node3"][0] == "unreachable"
    assert statuses(data)["node4"] == ("ok", 0)
