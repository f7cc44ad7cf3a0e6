"""``lepton-ops job run`` on the deployed session lab: exact, and exact with workers killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from lab_tools import CLI, Deployed, aggregator_rows, cli, deploy

from lepton_ops.jobs.client import AggregatorClient, aggregator_url

if TYPE_CHECKING:
    from conftest import RunningLab

MEAN_ARGS = ("--kind", "mean", "--tasks", "1000", "--task-size", "1000", "--seed", "7")
AGGREGATOR_NODE = "node5"
KILLED = ("node3", "node4")
RUN_TIMEOUT = 180
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    values = np.concatenate([np.random.default_rng([7, i]).random(1000) for i in range(1000)])
    return {
        "count": values.size,
        "mean": float(values.mean()),
        "variance": float(values.var()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def assert_exact(result: dict[str, Any], expected: dict[str, Any]) -> None:
    assert result["count"] == expected["count"] == 1_000_000
    assert result["mean"] == pytest.approx(expected["mean"], rel=1e-12)
    assert result["variance"] == pytest.approx(expected["variance"], rel=1e-12)
    assert result["min"] == expected["min"]
    assert result["max"] == expected["max"]


def job(lab: RunningLab, *args: str) -> Any:
    result = cli("job", *args, state_dir=lab.state_dir, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def kill_worker(lab: RunningLab, name: str) -> None:
    """``kill -9`` of the node's supervisor (so nothing restarts it), its gunicorn master and
    the master's workers (which would otherwise serve on until they notice the master died)."""
    data_dir = lab.lab.node_data_dir(name)
    supervisor = int((data_dir / "lepton-worker.pid").read_text(encoding="utf-8").strip())
    state = json.loads((data_dir / "lepton-worker.supervisor.json").read_text(encoding="utf-8"))
    master = int(state["child_pid"])
    children = Path(f"/proc/{master}/task/{master}/children").read_text(encoding="ascii")
    for pid in (supervisor, master, *(int(child) for child in children.split())):
        os.kill(pid, signal.SIGKILL)


def stored_shards(lab: RunningLab, job_id: str) -> list[str]:
    rows = aggregator_rows(lab, "SELECT shard_id FROM shard_results WHERE job_id = ?", (job_id,))
    return [str(row[0]) for row in rows]


@pytest.mark.slow
def test_mean_job_is_exact(deployed: Deployed, expected: dict[str, Any]) -> None:
    data = job(deployed.lab, "run", *MEAN_ARGS, "--json")
    assert list(data) == ["job_id", "status", "kind", "result", "per_node", "makespan_s"]
    assert data["status"] == "succeeded" and data["kind"] == "mean"
    assert_exact(data["result"], expected)
    assert sum(node["tasks"] for node in data["per_node"].values()) == 1000
    assert data["makespan_s"] > 0
    assert deployed.token not in json.dumps(data)


@pytest.mark.slow
def test_mean_job_survives_two_killed_workers(deployed: Deployed, expected: dict[str, Any]) -> None:
    lab = deployed.lab
    try:
        # Submitted through the library (no CLI start-up between submitting and killing),
        # in shards of one task so the job is still running when the workers die.
        with AggregatorClient(
            aggregator_url(lab.inventory), deployed.token, verify=deployed.tls
        ) as client:
            job_id = client.submit("mean", {"task_size": 1000, "seed": 7}, 1000, "weighted", 1)
            for name in KILLED:
                kill_worker(lab, name)
            midway = client.status(job_id)
        assert midway["status"] == "running", "the job ended before the workers were killed"
        data = job(lab, "watch", job_id, "--json")
        assert data["status"] == "succeeded"
        assert_exact(data["result"], expected)
        assert sum(node["tasks"] for node in data["per_node"].values()) == 1000
        shards = stored_shards(lab, job_id)
        assert len(shards) == len(set(shards)) == 1000  # exactly one result per shard
        status = job(lab, "status", job_id, "--json")
        assert set(KILLED) <= set(status["lost_nodes"])
    finally:
        restored, _ = deploy(lab)  # the supervisors start the killed workers again
        assert restored.returncode == 0, restored.stderr


def stop_worker(lab: RunningLab, name: str, sig: signal.Signals) -> None:
    """Send ``sig`` to the node's worker: its gunicorn master and the master's workers."""
    data_dir = lab.lab.node_data_dir(name)
    state = json.loads((data_dir / "lepton-worker.supervisor.json").read_text(encoding="utf-8"))
    master = int(state["child_pid"])
    children = Path(f"/proc/{master}/task/{master}/children").read_text(encoding="ascii")
    for pid in (master, *(int(child) for child in children.split())):
        os.kill(pid, sig)


@pytest.mark.slow
def test_a_stopped_worker_is_lost_by_its_health_checks(
    deployed: Deployed, expected: dict[str, Any]
) -> None:
    """SIGSTOP: the worker's port still accepts connections but nothing answers, the case a
    connect timeout cannot see. With the equal strategy nothing is stolen, so only the
    health checks can move the stopped node's shards."""
    lab = deployed.lab
    stopped = "node2"
    try:
        with AggregatorClient(
            aggregator_url(lab.inventory), deployed.token, verify=deployed.tls
        ) as client:
            job_id = client.submit("mean", {"task_size": 1000, "seed": 7}, 1000, "equal", 1)
            stop_worker(lab, stopped, signal.SIGSTOP)
        data = job(lab, "watch", job_id, "--json")
        assert data["status"] == "succeeded"
        assert_exact(data["result"], expected)
        shards = stored_shards(lab, job_id)
        assert len(shards) == len(set(shards)) == 1000
        status = job(lab, "status", job_id, "--json")
        assert status["lost_nodes"] == [stopped]
    finally:
        stop_worker(lab, stopped, signal.SIGCONT)


PLAYBOOK = """\
- name: Run a job from a playbook
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the mean job on the fleet
      lepton.ops.job:
        kind: mean
        tasks: 1000
        params: {task_size: 1000, seed: 7}
        inventory: "{{ fleet_inventory }}"
        state_dir: "{{ fleet_state_dir }}"
      register: outcome
    - name: Keep the registered outcome
      ansible.builtin.copy:
        content: "{{ outcome | to_json }}"
        dest: "{{ outcome_file }}"
        mode: "0600"
"""


@pytest.mark.slow
def test_the_job_module_runs_a_job_from_a_playbook(
    deployed: Deployed, expected: dict[str, Any], tmp_path: Path
) -> None:
    lab = deployed.lab
    playbook = tmp_path / "job.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    outcome_file = tmp_path / "outcome.json"
    venv_bin = Path(sys.executable).parent
    extra = {
        "fleet_inventory": str(lab.inventory),
        "fleet_state_dir": str(lab.state_dir),
        "outcome_file": str(outcome_file),
        "ansible_python_interpreter": sys.executable,
    }
    result = subprocess.run(
        [
            str(venv_bin / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps(extra),
            str(playbook),
        ],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(outcome_file.read_text(encoding="utf-8"))
    assert outcome["changed"] is True and outcome["status"] == "succeeded"
    assert_exact(outcome["result"], expected)
    assert sum(node["tasks"] for node in outcome["per_node"].values()) == 1000
    assert deployed.token not in result.stdout + result.stderr + json.dumps(outcome)


def kill_aggregator(lab: RunningLab) -> int:
    """``kill -9`` of the aggregator's gunicorn master and its workers (not its supervisor,
    which starts it again); the supervisor's restart count before the kill."""
    data_dir = lab.lab.node_data_dir(AGGREGATOR_NODE)
    state_file = data_dir / "lepton-aggregator.supervisor.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    master = int(state["child_pid"])
    children = Path(f"/proc/{master}/task/{master}/children").read_text(encoding="ascii")
    for pid in (master, *(int(child) for child in children.split())):
        os.kill(pid, signal.SIGKILL)
    return int(state["restarts"])


@pytest.mark.slow
def test_job_run_prints_the_exact_result_after_the_aggregator_is_killed(
    deployed: Deployed, expected: dict[str, Any]
) -> None:
    """The aggregator dies (kill -9) mid-job; its supervisor restarts it, the job resumes,
    and the ``job run`` that was following it reconnects and prints the exact result."""
    lab = deployed.lab
    command = [str(CLI), "job", "run", *MEAN_ARGS]
    running = subprocess.Popen(
        [*command, "--shard-size", "1", "--json", "--state-dir", str(lab.state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with AggregatorClient(
            aggregator_url(lab.inventory), deployed.token, verify=deployed.tls
        ) as client:
            deadline = time.monotonic() + 60
            job_id = None
            while job_id is None and time.monotonic() < deadline:
                listed = [job for job in client.list() if job["status"] == "running"]
                job_id = listed[0]["job_id"] if listed else None
                time.sleep(0.05)
            assert job_id is not None, "job run submitted nothing"
            while len(stored_shards(lab, job_id)) < 50 and time.monotonic() < deadline:
                time.sleep(0.1)
        restarts = kill_aggregator(lab)
        out, err = running.communicate(timeout=RUN_TIMEOUT)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == 0, err
    data = json.loads(out)
    assert data["job_id"] == job_id and data["status"] == "succeeded"
    assert_exact(data["result"], expected)
    assert "trying again for up to" in err and "the aggregator answers again" in err
    shards = stored_shards(lab, job_id)
    assert len(shards) == len(set(shards)) == 1000
    state_file = lab.lab.node_data_dir(AGGREGATOR_NODE) / "lepton-aggregator.supervisor.json"
    assert json.loads(state_file.read_text(encoding="utf-8"))["restarts"] == restarts + 1
    assert deployed.token not in out + err
