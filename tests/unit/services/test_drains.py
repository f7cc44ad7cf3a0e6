"""Drains: a drained worker gets no new shard - new jobs plan it with weight 0, running jobs
move its unstarted shards - results stay exact; the API and the registry's guards."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from service_support import AUTH, Worker, aggregator, assert_exact_mean

from lepton_ops.errors import BadInput
from lepton_ops.jobs.planner import make_plan
from lepton_ops.jobs.shard_queue import ShardQueue
from lepton_ops.services.aggregator import dispatcher_of
from lepton_ops.services.drains import DrainRefused, DrainRegistry
from lepton_ops.services.job_store import JobStore

MEAN_JOB = {"kind": "mean", "params": {"task_size": 100, "seed": 7}, "tasks": 200}


def wait_done(app: Flask, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    assert dispatcher_of(app).wait(job_id, timeout)
    data: dict[str, Any] = app.test_client().get(f"/v1/jobs/{job_id}", headers=AUTH).json
    return data


def submit(app: Flask, body: dict[str, Any]) -> str:
    response = app.test_client().post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id: str = response.json["job_id"]
    return job_id


def shard_starts(db: Path, job_id: str) -> list[tuple[str, float]]:
    """``(node, when the shard started)`` of every recorded result."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT node, recorded_at - seconds FROM shard_results WHERE job_id = ?", (job_id,)
        ).fetchall()
    return [(str(node), float(start)) for node, start in rows]


def drain(app: Flask, node: str, **body: Any) -> Any:
    return app.test_client().put(
        f"/v1/drains/{node}", json={"reason": "predicted to fail", **body}, headers=AUTH
    )


def result_of(app: Flask, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (
        app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json["result"]
    )
    return data


def test_a_new_job_plans_a_drained_worker_with_weight_0(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    app = aggregator(token_file, tmp_path / "jobs.db", [make_worker() for _ in range(3)])
    apps.append(app)
    assert drain(app, "node2").status_code == 200
    job_id = submit(app, {**MEAN_JOB, "shard_size": 10})
    status = wait_done(app, job_id)
    assert status["status"] == "succeeded"
    assert status["per_node"]["node2"]["shards"] == 0
    assert all(node != "node2" for node, _ in shard_starts(tmp_path / "jobs.db", job_id))
    assert_exact_mean(result_of(app, job_id))


def test_a_worker_drained_mid_job_starts_no_shard_after_the_drain(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    # 40 shards of 0.05 s on three workers: about 0.7 s, so the drain lands mid-job.
    workers = [make_worker(delay_s=0.05) for _ in range(3)]
    db = tmp_path / "jobs.db"
    app = aggregator(token_file, db, workers, weights=[1, 1, 1])
    apps.append(app)
    job_id = submit(app, {**MEAN_JOB, "shard_size": 5})
    run = dispatcher_of(app).run(job_id)
    assert run is not None
    handed: list[tuple[str, float]] = []
    hand_out = run.queue.next_shard_for

    def recording(node: str, *, speculative: bool = False) -> Any:
        shard = hand_out(node, speculative=speculative)
        if shard is not None:
            handed.append((node, time.time()))
        return shard

    run.queue.next_shard_for = recording  # type: ignore[method-assign]
    time.sleep(0.2)
    placed = drain(app, "node3")
    assert placed.status_code == 200
    # The moment the aggregator placed it (a hand-out that had already checked the drain
    # may record its time a few microseconds later).
    drained_at = placed.json["since"] + 0.05
    status = wait_done(app, job_id)
    assert status["status"] == "succeeded" and status["drained_nodes"] == ["node3"]
    assert any(node == "node3" for node, _ in handed), "node3 ran shards before the drain"
    # A shard node3 had already started may finish; none is handed to it after the drain.
    assert all(when < drained_at for node, when in handed if node == "node3")
    starts = shard_starts(db, job_id)
    assert len(starts) == status["shards"]
    assert_exact_mean(result_of(app, job_id))
    # Undrained, it takes part in the next job again.
    assert app.test_client().delete("/v1/drains/node3", headers=AUTH).json["undrained"]
    again = submit(app, {**MEAN_JOB, "shard_size": 5})
    assert wait_done(app, again)["per_node"]["node3"]["shards"] > 0


def test_the_drain_api_lists_refuses_and_validates(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    app = aggregator(
        token_file, tmp_path / "jobs.db", [make_worker() for _ in range(2)], weights=[1, 2]
    )
    apps.append(app)
    client = app.test_client()
    assert client.get("/v1/drains").status_code == 401
    made = drain(app, "node1", ttl_s=60)
    assert made.status_code == 200 and made.json["until"] - made.json["since"] == 60
    listed = client.get("/v1/drains", headers=AUTH).json["drains"]
    assert [d["node"] for d in listed] == ["node1"]
    last = drain(app, "node2")
    assert last.status_code == 409 and "no worker" in last.json["error"]
    assert drain(app, "node9").status_code == 400
    assert drain(app, "node2", ttl_s=0).status_code == 400
    bad = client.put("/v1/drains/node2", json={"reason": 5}, headers=AUTH)
    assert bad.status_code == 400
    assert client.delete("/v1/drains/node2", headers=AUTH).json == {
        "node": "node2",
        "undrained": False,
    }
    paths = client.get("/openapi.json", headers=AUTH).json["paths"]
    assert {"/v1/drains", "/v1/drains/{node}"} <= set(paths)


def test_drains_expire_and_survive_a_restart(tmp_path: Path) -> None:
    now = [1000.0]
    store = JobStore(tmp_path / "jobs.db")
    registry = DrainRegistry(store, ["node1", "node2", "node3"], clock=lambda: now[0])
    registry.drain("node1", "risk 0.93", ttl_s=60)
    registry.drain("node2", "remediation")
    with pytest.raises(DrainRefused):
        registry.drain("node3", "x")
    with pytest.raises(BadInput, match="no worker named 'node7'"):
        registry.drain("node7", "x")
    assert registry.is_drained("node1") and registry.is_drained("node2")
    # Renewed while the risk stays high: the expiry moves, 'since' stays.
    now[0] = 1030.0
    renewed = registry.drain("node1", "risk 0.95", ttl_s=60)
    assert (renewed.since, renewed.until) == (1000.0, 1090.0)
    reopened = DrainRegistry(JobStore(tmp_path / "jobs.db"), ["node1", "node2", "node3"],
                             clock=lambda: now[0])  # fmt: skip
    assert [d.node for d in reopened.active()] == ["node1", "node2"]
    now[0] = 1091.0
    assert not reopened.is_drained("node1") and reopened.is_drained("node2")
    # An expired drain does not count against the last-worker guard.
    reopened.drain("node3", "x")


def test_the_queue_moves_a_drained_nodes_pending_shards_to_the_others() -> None:
    plan = make_plan([("a", 1), ("b", 1)], 20, shard_size=5)
    drained: set[str] = set()
    queue = ShardQueue(plan, stealing=False, drained=drained.__contains__)
    first = queue.next_shard_for("b")
    assert first is not None and first.node == "b"
    drained.add("b")
    assert queue.next_shard_for("b") is None and queue.is_drained("b")
    taken = []
    while (shard := queue.next_shard_for("a")) is not None:
        taken.append(shard)
        queue.complete(shard.id, "a")
    # Even with stealing off (the equal strategy), a drained node's queue is taken.
    assert len(taken) == 3 and {s.node for s in taken} == {"a", "b"}
    assert queue.state(first.id).value == "running"  # what b had started goes on
