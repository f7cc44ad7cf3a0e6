"""Deploying the services on the session lab: token, health, idempotence, supervision."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from lab_tools import NODES, Deployed, deploy, statuses

from lepton_ops.deploy.token import token_path
from lepton_ops.lab import LAB_NODES

if TYPE_CHECKING:
    from conftest import RunningLab

WORKER_PORT = 8701
AGGREGATOR_PORT = 8700
ADDRESSES = {node.name: node.address for node in LAB_NODES}


def worker_url(name: str, path: str) -> str:
    return f"http://{ADDRESSES[name]}:{WORKER_PORT}{path}"


def supervisor_state(lab: RunningLab, name: str, service: str) -> dict[str, Any]:
    state = lab.lab.node_data_dir(name) / f"{service}.supervisor.json"
    data: dict[str, Any] = json.loads(state.read_text(encoding="utf-8"))
    return data


@pytest.mark.slow
def test_token_file_is_private(deployed: Deployed) -> None:
    path = token_path(deployed.lab.state_dir)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert len(deployed.token) >= 40
    for name in NODES:
        on_node = deployed.lab.lab.node_paths(name).config_dir / "service-token"
        assert on_node.stat().st_mode & 0o777 == 0o600
        assert on_node.read_text(encoding="utf-8").strip() == deployed.token


@pytest.mark.slow
def test_workers_answer_behind_the_token(deployed: Deployed) -> None:
    auth = {"Authorization": f"Bearer {deployed.token}"}
    with httpx.Client(timeout=5) as client:
        for name in NODES:
            assert client.get(worker_url(name, "/healthz")).status_code == 200, name
            assert client.get(worker_url(name, "/readyz")).status_code == 401, name
            assert client.get(worker_url(name, "/readyz"), headers=auth).status_code == 200, name
        aggregator = f"http://{ADDRESSES['node5']}:{AGGREGATOR_PORT}"
        assert client.get(f"{aggregator}/healthz").status_code == 200
        assert client.get(f"{aggregator}/readyz").status_code == 401
        assert client.get(f"{aggregator}/readyz", headers=auth).status_code == 200


@pytest.mark.slow
def test_second_deploy_changes_nothing(deployed: Deployed) -> None:
    result, data = deploy(deployed.lab)
    assert result.returncode == 0, result.stderr
    assert statuses(data) == {name: ("ok", 0) for name in NODES}


@pytest.mark.slow
def test_killed_worker_comes_back(deployed: Deployed) -> None:
    before = supervisor_state(deployed.lab, "node2", "lepton-worker")
    os.kill(before["child_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 15
    healthy = False
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            after = supervisor_state(deployed.lab, "node2", "lepton-worker")
            if after["child_pid"] == before["child_pid"]:
                continue
            try:
                healthy = client.get(worker_url("node2", "/healthz")).status_code == 200
            except httpx.TransportError:
                healthy = False
            if healthy:
                break
    assert healthy, "node2's worker did not come back within 15 s"
    assert after["restarts"] == before["restarts"] + 1
    log = deployed.lab.lab.node_data_dir("node2") / "lepton-worker.supervisor.log"
    assert "restart #" in log.read_text(encoding="utf-8")


@pytest.mark.slow
def test_token_is_never_written_out(deployed: Deployed) -> None:
    token = deployed.token
    assert token not in deployed.result.stdout
    assert token not in deployed.result.stderr
    leaks = [
        str(path)
        for path in (deployed.lab.state_dir / "runs").rglob("*")
        if path.is_file() and token.encode() in path.read_bytes()
    ]
    assert leaks == []
    for name in NODES:
        data_dir = deployed.lab.lab.node_data_dir(name)
        for log in data_dir.glob("*.log"):
            assert token not in log.read_text(encoding="utf-8", errors="replace"), log
