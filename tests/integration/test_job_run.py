"""``lepton-ops job run`` on the deployed session lab: exact, and exact with workers killed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from lab_tools import Deployed, cli, deploy

from lepton_ops.jobs.client import AggregatorClient, aggregator_url

if TYPE_CHECKING:
    from conftest import RunningLab

MEAN_ARGS = ("--kind", "mean", "--tasks", "1000", "--task-size", "1000", "--seed", "7")
AGGREGATOR_NODE = "node5"
KILLED = ("node3", "node4")
RUN_TIMEOUT = 180


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
    data_dir = lab.lab.node_paths(name).data_dir
    supervisor = int((data_dir / "lepton-worker.pid").read_text(encoding="utf-8").strip())
    state = json.loads((data_dir / "lepton-worker.supervisor.json").read_text(encoding="utf-8"))
    master = int(state["child_pid"])
    children = Path(f"/proc/{master}/task/{master}/children").read_text(encoding="ascii")
    for pid in (supervisor, master, *(int(child) for child in children.split())):
        os.kill(pid, signal.SIGKILL)


def stored_shards(lab: RunningLab, job_id: str) -> list[str]:
    db = lab.lab.node_paths(AGGREGATOR_NODE).data_dir / "aggregator.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT shard_id FROM shard_results WHERE job_id = ?", (job_id,)
        ).fetchall()
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
        with AggregatorClient(aggregator_url(lab.inventory), deployed.token) as client:
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
