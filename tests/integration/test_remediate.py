"""Remediation in the ssh lab: a crashed worker back within 5 s with ``watch`` running, a
dry run that changes nothing, the circuit breaker and the concurrency limit with faults on
three nodes at once, and a job that a predicted failure costs nothing."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from lab_tools import CLI, Deployed, aggregator_rows, cli, deploy, requires_root

from lepton_ops.jobs.client import AggregatorClient, aggregator_url
from lepton_ops.lab import LAB_NODES, LabMode
from lepton_ops.predict.predictor import DOWN_CONFIRMATIONS
from lepton_ops.remediate import run as run_module
from lepton_ops.remediate.policy import NodeState, PolicyConfig
from lepton_ops.remediate.run import remediate_once
from lepton_ops.telemetry.history import HistoryStore, history_path

ADDRESS = {node.name: node.address for node in LAB_NODES}
AGGREGATOR_NODE = "node5"

pytestmark = [pytest.mark.slow, pytest.mark.ssh, requires_root]


@pytest.fixture
def ssh_deployed(deployed: Deployed) -> Deployed:
    if deployed.lab.mode is not LabMode.SSH:
        pytest.skip("remediation needs the ssh lab (partitions, per-node addresses)")
    return deployed


def healthy(deployed: Deployed, node: str) -> bool:
    try:
        url = f"https://{ADDRESS[node]}:8701/healthz"
        return httpx.get(url, timeout=0.5, verify=deployed.tls).status_code == 200
    except httpx.HTTPError:
        return False


def kill_service(deployed: Deployed, node: str) -> float:
    """SIGKILL the worker's gunicorn master and workers (not its supervisor): a crash."""
    data_dir = deployed.lab.lab.node_data_dir(node)
    state = json.loads((data_dir / "lepton-worker.supervisor.json").read_text(encoding="utf-8"))
    master = int(state["child_pid"])
    children = Path(f"/proc/{master}/task/{master}/children").read_text(encoding="ascii")
    killed_at = time.monotonic()
    for pid in (master, *(int(child) for child in children.split())):
        os.kill(pid, signal.SIGKILL)
    return killed_at


@pytest.fixture
def watching(ssh_deployed: Deployed) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [str(CLI), "--state-dir", str(ssh_deployed.lab.state_dir), "watch", "--interval", "10s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_killed_worker_is_healthy_again_within_5s_with_watch_running(
    ssh_deployed: Deployed, watching: subprocess.Popen[str]
) -> None:
    time.sleep(3)  # watch is up and has started its first cycle
    assert healthy(ssh_deployed, "node2")
    killed_at = kill_service(ssh_deployed, "node2")
    while not healthy(ssh_deployed, "node2"):
        assert time.monotonic() - killed_at < 5.0, "node2 was not healthy again within 5 s"
        time.sleep(0.05)
    back_after = time.monotonic() - killed_at
    assert back_after < 5.0
    # SIGTERM stops watch cleanly, between steps.
    watching.send_signal(signal.SIGTERM)
    out, err = watching.communicate(timeout=120)
    assert watching.returncode == 0, err
    assert "watch stopped after" in out


def fingerprint(deployed: Deployed) -> dict[str, Any]:
    """What a remediation could change: the audit log, drains, services, the firewall."""
    state_dir = deployed.lab.state_dir
    with HistoryStore(history_path(state_dir)) as store:
        audit = [r.to_dict() for r in store.remediations()]
    headers = {"Authorization": f"Bearer {deployed.token}"}
    drains = httpx.get(
        f"https://{ADDRESS[AGGREGATOR_NODE]}:8700/v1/drains", headers=headers, verify=deployed.tls
    )
    services = {}
    for node in ADDRESS:
        state = deployed.lab.lab.node_data_dir(node) / "lepton-worker.supervisor.json"
        data = json.loads(state.read_text(encoding="utf-8"))
        services[node] = (data["child_pid"], data["restarts"])
    chain = deployed.lab.lab.firewall().chain
    rules = subprocess.run(["iptables", "-S", chain], capture_output=True, text=True)
    alerts = state_dir / "alerts.log"
    return {
        "audit": audit,
        "drains": drains.json()["drains"],
        "services": services,
        "firewall": rules.stdout,
        "alerts": hashlib.sha256(alerts.read_bytes()).hexdigest() if alerts.exists() else None,
    }


def test_a_dry_run_plans_and_changes_nothing(ssh_deployed: Deployed) -> None:
    state_dir = ssh_deployed.lab.state_dir
    ssh_deployed.lab.lab.firewall().cut_off(ADDRESS["node4"], "test")
    try:
        for _ in range(DOWN_CONFIRMATIONS):  # one failed collection is not a failure
            cli("telemetry", "collect", "--json", state_dir=state_dir, check=True, timeout=120)
        before = fingerprint(ssh_deployed)
        planned = cli("remediate", "--dry-run", "--json", state_dir=state_dir, timeout=120)
        assert planned.returncode == 0, planned.stderr
        plan = json.loads(planned.stdout)
        assert plan["dry_run"] is True and plan["actions"] == []
        (decision,) = [d for d in plan["decisions"] if d["action"]]
        assert (decision["node"], decision["action"]) == ("node4", "restart")
        assert fingerprint(ssh_deployed) == before
    finally:
        ssh_deployed.lab.lab.firewall().restore(ADDRESS["node4"], "test")


def test_a_node_failing_after_each_fix_is_cordoned_and_one_node_at_a_time(
    ssh_deployed: Deployed,
) -> None:
    """Three nodes cut off at once: each pass acts on one node (the limit is 1); with the
    circuit breaker at 2 attempts each node climbs restart -> drain -> cordon, and then nothing
    more is tried. (Re-provisioning, the ladder's third rung with the default 3 attempts, is
    left out here: it only repeats the unreachable node's ssh timeout.)"""
    state_dir = ssh_deployed.lab.state_dir
    # Not node2: the watch test's restart of it is in the audit, within the escalation
    # window, so its ladder would rightly start one rung higher.
    faulty = ["node1", "node3", "node4"]
    started = time.time()
    for node in faulty:
        ssh_deployed.lab.lab.firewall().cut_off(ADDRESS[node], "test")
    try:
        for _ in range(DOWN_CONFIRMATIONS):
            cli("telemetry", "collect", "--json", state_dir=state_dir, check=True, timeout=120)
        for _ in range(3 * len(faulty) + 1):
            done = cli("remediate", "--cooldown", "0s", "--max-attempts", "2", "--json",
                       state_dir=state_dir, timeout=300)  # fmt: skip
            assert done.returncode in (0, 1), done.stderr
        with HistoryStore(history_path(state_dir)) as store:
            audit = [r for r in store.remediations(since=started) if r.action != "uncordon"]
        ladder = {node: [r.action for r in audit if r.node == node] for node in faulty}
        assert ladder == {node: ["restart", "drain", "cordon"] for node in faulty}
        assert [r.outcome for r in audit if r.action == "cordon"] == ["cordoned"] * 3
        # Never two nodes under remediation at once: the audit intervals do not overlap.
        spans = sorted((r.started_at, r.finished_at or time.time()) for r in audit)
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
        alerts = (state_dir / "alerts.log").read_text(encoding="utf-8").splitlines()
        assert {json.loads(line)["node"] for line in alerts} >= set(faulty)
    finally:
        for node in faulty:
            ssh_deployed.lab.lab.firewall().restore(ADDRESS[node], "test")
        for node in faulty:
            cli("uncordon", node, state_dir=state_dir, timeout=120)
        restored, _ = deploy(ssh_deployed.lab)
        assert restored.returncode == 0, restored.stderr


def test_a_job_loses_nothing_to_a_predicted_failure(
    ssh_deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = ssh_deployed.lab
    tasks, size = 400, 100_000

    def node3_at_risk(state_dir: Path, nodes: list[str] | None = None) -> Any:
        chosen = [n for n in ADDRESS if nodes is None or n in nodes]
        risk = {n: (0.95 if n == "node3" else 0.05) for n in chosen}
        states = [NodeState(n, r) for n, r in risk.items()]
        return states, {n: {"probability": r, "horizon_s": 60.0} for n, r in risk.items()}, True

    monkeypatch.setattr(run_module, "node_states", node3_at_risk)
    with AggregatorClient(
        aggregator_url(lab.inventory), ssh_deployed.token, verify=ssh_deployed.tls
    ) as client:
        job_id = client.submit("mean", {"task_size": size, "seed": 11}, tasks, "weighted", 1)
        time.sleep(0.5)
        predicted_at = time.time()
        done = remediate_once(lab.state_dir, lab.inventory, PolicyConfig(), verify_timeout_s=30)
        assert "node3" in done.drained
        deadline = time.monotonic() + 180
        while (status := client.status(job_id))["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        result = client.result(job_id)["result"]
    assert status["status"] == "succeeded"
    values = [np.random.default_rng([11, i]).random(size) for i in range(tasks)]
    total = np.concatenate(values)
    assert result["count"] == total.size
    assert result["mean"] == pytest.approx(float(total.mean()), rel=1e-12)
    starts = aggregator_rows(
        lab,
        "SELECT recorded_at - seconds FROM shard_results WHERE job_id = ? AND node = 'node3'",
        (job_id,),
    )
    with HistoryStore(history_path(lab.state_dir)) as store:
        (drain,) = [r for r in store.remediations(node="node3", since=predicted_at)
                    if r.action == "predictive-drain"]  # fmt: skip
    assert drain.after is not None
    drained_at = float(drain.after["drain"]["since"])
    # node3 ran shards before the prediction's drain, none after it (1 s: the worker's clock
    # starts when it computes, a little after the shard was handed out).
    assert starts and all(start < drained_at + 1.0 for (start,) in starts)
    headers = {"Authorization": f"Bearer {ssh_deployed.token}"}
    for node in ("node3",):
        httpx.delete(
            f"https://{ADDRESS[AGGREGATOR_NODE]}:8700/v1/drains/{node}",
            headers=headers,
            verify=ssh_deployed.tls,
        )
