"""Deploying the services on the session lab: token, health, idempotence, supervision."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from lab_tools import NODES, Deployed, deploy, statuses

from lepton_ops.credentials.tls import ca_key_path, node_cert_paths
from lepton_ops.credentials.tokens import token_files
from lepton_ops.lab import LAB_NODES

if TYPE_CHECKING:
    from conftest import RunningLab

WORKER_PORT = 8701
AGGREGATOR_PORT = 8700
ADDRESSES = {node.name: node.address for node in LAB_NODES}


def worker_url(name: str, path: str) -> str:
    return f"https://{ADDRESSES[name]}:{WORKER_PORT}{path}"


def supervisor_state(lab: RunningLab, name: str, service: str) -> dict[str, Any]:
    state = lab.lab.node_data_dir(name) / f"{service}.supervisor.json"
    data: dict[str, Any] = json.loads(state.read_text(encoding="utf-8"))
    return data


@pytest.mark.slow
def test_token_files_are_private(deployed: Deployed) -> None:
    files = token_files(deployed.lab.state_dir)
    for path in files.all():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert files.controller.parent.stat().st_mode & 0o777 == 0o700
    assert len(deployed.token) >= 40
    tokens = {path: path.read_text(encoding="utf-8").strip() for path in files.all()}
    assert len(set(tokens.values())) == 3  # one token per role
    for name in NODES:
        config_dir = deployed.lab.lab.node_paths(name).config_dir
        for on_node, source in (("worker-token", files.aggregator), ("scrape-token", files.scrape)):
            path = config_dir / on_node
            assert path.stat().st_mode & 0o777 == 0o600, path
            assert path.read_text(encoding="utf-8").strip() == tokens[source], path
    controller = deployed.lab.lab.node_paths("node5").config_dir / "service-token"
    assert controller.stat().st_mode & 0o777 == 0o600
    assert controller.read_text(encoding="utf-8").strip() == deployed.token


def bearer(path: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {path.read_text(encoding='utf-8').strip()}"}


@pytest.mark.slow
def test_each_role_has_its_own_token(deployed: Deployed) -> None:
    files = token_files(deployed.lab.state_dir)
    controller = {"Authorization": f"Bearer {deployed.token}"}
    dispatch, scrape = bearer(files.aggregator), bearer(files.scrape)
    with httpx.Client(timeout=5, verify=deployed.tls) as client:
        for name in NODES:
            assert client.get(worker_url(name, "/healthz")).status_code == 200, name
            assert client.get(worker_url(name, "/readyz")).status_code == 401, name
            assert client.get(worker_url(name, "/readyz"), headers=dispatch).status_code == 200
            assert client.get(worker_url(name, "/readyz"), headers=controller).status_code == 401
            assert client.get(worker_url(name, "/metrics"), headers=scrape).status_code == 200
            assert client.get(worker_url(name, "/readyz"), headers=scrape).status_code == 403
        aggregator = f"https://{ADDRESSES['node5']}:{AGGREGATOR_PORT}"
        assert client.get(f"{aggregator}/healthz").status_code == 200
        assert client.get(f"{aggregator}/readyz").status_code == 401
        assert client.get(f"{aggregator}/readyz", headers=controller).status_code == 200
        assert client.get(f"{aggregator}/metrics", headers=scrape).status_code == 200
        # A worker's credentials (and the scrape token) get 403 on every write endpoint.
        writes = [
            ("POST", "/v1/jobs", {"json": {"kind": "pi", "tasks": 1}}),
            ("PUT", "/v1/artifacts/" + "0" * 64, {"content": b"x"}),
            ("PUT", "/v1/drains/node1", {"json": {"reason": "test"}}),
            ("DELETE", "/v1/drains/node1", {}),
            ("DELETE", "/v1/jobs/none", {}),
        ]
        for headers in (dispatch, scrape):
            for method, path, extra in writes:
                answer = client.request(method, f"{aggregator}{path}", headers=headers, **extra)
                assert answer.status_code == 403, (method, path, answer.text)


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
    with httpx.Client(timeout=1, verify=deployed.tls) as client:
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
@pytest.mark.parametrize("role", ["controller", "aggregator", "scrape"])
def test_tokens_are_never_written_out(deployed: Deployed, role: str) -> None:
    path = getattr(token_files(deployed.lab.state_dir), role)
    token = path.read_text(encoding="utf-8").strip()
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
    # ... nor in any process's command line.
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert token.encode() not in cmdline.read_bytes(), cmdline
        except OSError:
            continue


@pytest.mark.slow
def test_tls_keys_are_private_and_plain_http_is_refused(deployed: Deployed) -> None:
    state = deployed.lab.state_dir
    assert ca_key_path(state).stat().st_mode & 0o777 == 0o600
    for name in NODES:
        controller = node_cert_paths(state, name)
        assert controller.key.stat().st_mode & 0o777 == 0o600, name
        on_node = deployed.lab.lab.node_paths(name).config_dir / "tls" / "worker.key"
        assert on_node.stat().st_mode & 0o777 == 0o600, name
        key = controller.key.read_text(encoding="utf-8")
        assert on_node.read_text(encoding="utf-8") == key
        body = "".join(line for line in key.splitlines() if "-----" not in line)
        assert body[:40] not in deployed.result.stdout + deployed.result.stderr
    with httpx.Client(timeout=5, verify=deployed.tls) as client:
        assert client.get(worker_url("node1", "/healthz")).status_code == 200
    with httpx.Client(timeout=5) as client:
        with pytest.raises(httpx.HTTPError):  # plain http to the HTTPS port: no answer
            client.get(worker_url("node1", "/healthz").replace("https://", "http://"))
        with pytest.raises(httpx.ConnectError):  # not verified against the fleet's CA
            client.get(worker_url("node1", "/healthz"))
