"""The aggregator: job API, job store, dispatch to real workers (127.0.0.1), loss, resume."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from service_support import (
    AUTH,
    TOKEN,
    Worker,
    aggregator,
    assert_exact_mean,
    assert_openapi_covers,
)

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.services.aggregator import dispatcher_of
from lepton_ops.services.aggregator_config import AggregatorConfig
from lepton_ops.services.job_store import SCHEMA_VERSION, JobStatus, JobStore

MEAN_JOB = {"kind": "mean", "params": {"task_size": 100, "seed": 7}, "tasks": 200}


def wait_done(app: Flask, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    assert dispatcher_of(app).wait(job_id, timeout)
    response = app.test_client().get(f"/v1/jobs/{job_id}", headers=AUTH)
    assert response.status_code == 200
    data: dict[str, Any] = response.json
    return data


def shard_rows(db: Path, job_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT shard_id, node FROM shard_results WHERE job_id = ? ORDER BY shard_id",
            (job_id,),
        ).fetchall()


def submit(app: Flask, body: dict[str, Any]) -> str:
    response = app.test_client().post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.json["status"] == "running"
    assert response.headers["Location"] == f"/v1/jobs/{response.json['job_id']}"
    job_id: str = response.json["job_id"]
    return job_id


# --------------------------------------------------------------------------- end to end


def test_mean_job_on_three_real_workers_is_exact(
    token_file: Path,
    tmp_path: Path,
    make_worker: Callable[..., Worker],
    apps: list[Flask],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    workers = [make_worker() for _ in range(3)]
    app = aggregator(token_file, tmp_path / "jobs.db", workers)
    apps.append(app)
    job_id = submit(app, {**MEAN_JOB, "strategy": "weighted"})
    status = wait_done(app, job_id)
    assert status["status"] == "succeeded", status
    assert status["progress"]["shards_done"] == status["progress"]["shards_total"]
    assert status["progress"]["tasks_done"] == 200
    assert sum(node["tasks"] for node in status["per_node"].values()) == 200
    assert status["makespan_s"] is not None and status["makespan_s"] >= 0
    result = app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json
    assert_exact_mean(result["result"])
    rows = shard_rows(tmp_path / "jobs.db", job_id)
    assert len({shard for shard, _ in rows}) == len(rows) == status["shards"]
    listed = app.test_client().get("/v1/jobs", headers=AUTH).json["jobs"]
    assert [job["job_id"] for job in listed] == [job_id]
    metrics = app.test_client().get("/metrics", headers=AUTH).get_data(as_text=True)
    assert f'lepton_shards_done_total{{kind="mean",service="aggregator"}} {len(rows)}.0' in metrics
    captured = capfd.readouterr()
    assert "/v1/shards/run" in caplog.text  # httpx and werkzeug did log the requests
    for text in (caplog.text, captured.out, captured.err):
        assert TOKEN not in text


def test_equal_strategy_also_exact(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    workers = [make_worker() for _ in range(3)]
    app = aggregator(token_file, tmp_path / "jobs.db", workers)
    apps.append(app)
    job_id = submit(app, {**MEAN_JOB, "strategy": "equal", "shard_size": 7})
    assert wait_done(app, job_id)["status"] == "succeeded"
    assert_exact_mean(
        app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json["result"]
    )


def test_a_worker_dies_midway_and_the_result_is_still_exact(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    workers = [make_worker(delay_s=0.01), make_worker(delay_s=0.01), make_worker(die_after=2)]
    db = tmp_path / "jobs.db"
    app = aggregator(token_file, db, workers)
    apps.append(app)
    job_id = submit(app, {**MEAN_JOB, "shard_size": 5})
    status = wait_done(app, job_id)
    assert status["status"] == "succeeded", status
    assert workers[2].dead
    assert status["lost_nodes"] == ["node3"]
    assert status["per_node"]["node3"]["shards"] == 2
    rows = shard_rows(db, job_id)
    # 33 / 67 / 100 tasks in shards of 5: 7 + 14 + 20 shards.
    assert len(rows) == len({shard for shard, _ in rows}) == status["shards"] == 41
    assert_exact_mean(
        app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json["result"]
    )


def test_a_slow_worker_gets_speculative_copies_counted_once(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    workers = [make_worker(), make_worker(), make_worker(delay_s=0.4)]
    db = tmp_path / "jobs.db"
    app = aggregator(token_file, db, workers, weights=[1, 1, 1])
    apps.append(app)
    job_id = submit(app, {**MEAN_JOB, "shard_size": 50})
    status = wait_done(app, job_id)
    assert status["status"] == "succeeded", status
    rows = shard_rows(db, job_id)
    # 67 / 67 / 66 tasks in shards of 50: 2 shards each.
    assert len(rows) == len({shard for shard, _ in rows}) == 6
    assert_exact_mean(
        app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json["result"]
    )
    # The slow node's shard was copied to an idle fast node, which finished it first.
    assert status["per_node"]["node3"]["shards"] <= 1


def test_the_job_finishes_without_waiting_for_a_copy_still_running(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    gate = threading.Event()
    workers = [make_worker(), make_worker(), make_worker(gate=gate)]
    db = tmp_path / "jobs.db"
    app = aggregator(token_file, db, workers, weights=[1, 1, 1])
    apps.append(app)
    try:
        job_id = submit(app, {**MEAN_JOB, "shard_size": 50})
        # node3 holds its first shard until the gate opens (its read timeout is 10 s);
        # the others take its second shard and copy the first, and the job ends then.
        status = wait_done(app, job_id, timeout=5.0)
        assert status["status"] == "succeeded", status
        assert status["per_node"]["node3"]["shards"] == 0
        assert len(shard_rows(db, job_id)) == 6
    finally:
        gate.set()
    assert_exact_mean(
        app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json["result"]
    )


def test_a_hung_worker_is_lost_by_its_health_checks_long_before_its_read_timeout(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    hang = threading.Event()
    hang.set()
    # 40 shards of 0.1 s on two fast workers take about 2 s: long enough that the job is
    # still running when node3 is declared lost (about 1 s), even on a loaded machine.
    workers = [make_worker(delay_s=0.1), make_worker(delay_s=0.1), make_worker(hang=hang)]
    db = tmp_path / "jobs.db"
    # The first shard's read timeout is 30 s; the health thread probes every 0.2 s.
    app = aggregator(
        token_file,
        db,
        workers,
        first_read_timeout_s=30.0,
        health_interval_s=0.2,
        health_timeout_s=0.2,
    )
    apps.append(app)
    try:
        job_id = submit(app, {**MEAN_JOB, "shard_size": 5})
        status = wait_done(app, job_id, timeout=20.0)
        assert status["status"] == "succeeded", status
        assert status["lost_nodes"] == ["node3"]
        assert status["per_node"]["node3"]["shards"] == 0
        assert len(shard_rows(db, job_id)) == status["shards"]
    finally:
        hang.clear()
    assert_exact_mean(
        app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json["result"]
    )


def test_every_worker_lost_fails_the_job_with_a_reason(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    workers = [make_worker(die_after=0), make_worker(die_after=1), make_worker(die_after=0)]
    app = aggregator(token_file, tmp_path / "jobs.db", workers)
    apps.append(app)
    job_id = submit(app, MEAN_JOB)
    status = wait_done(app, job_id)
    assert status["status"] == "failed"
    assert "every worker was lost" in status["reason"]
    assert sorted(status["lost_nodes"]) == ["node1", "node2", "node3"]
    response = app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH)
    assert response.status_code == 409 and "failed" in response.json["error"]


def test_restart_resumes_the_running_job(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    workers = [make_worker(delay_s=0.02) for _ in range(3)]
    db = tmp_path / "jobs.db"
    first = aggregator(token_file, db, workers)
    job_id = submit(first, {**MEAN_JOB, "shard_size": 5})
    deadline = time.monotonic() + 10
    while len(shard_rows(db, job_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    dispatcher_of(first).shutdown(timeout=10)
    done_before = len(shard_rows(db, job_id))
    assert 3 <= done_before < 41
    assert JobStore(db).job(job_id).status is JobStatus.RUNNING

    second = aggregator(token_file, db, workers)
    apps.append(second)
    status = wait_done(second, job_id)
    assert status["status"] == "succeeded", status
    rows = shard_rows(db, job_id)
    assert len(rows) == len({shard for shard, _ in rows}) == status["shards"] == 41
    # Only speculative copies are sent twice; the recorded shards were not sent again.
    assert sum(worker.served for worker in workers) <= 41 + 3 * 2
    result = second.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json
    assert_exact_mean(result["result"])


# --------------------------------------------------------------------------- API checks


BAD_JOBS: list[tuple[object, str]] = [
    ([], "JSON object"),
    ({}, "kind is required"),
    ({"kind": "mean"}, "tasks is required"),
    ({"kind": "nope", "tasks": 3}, "unknown job kind"),
    ({"kind": 3, "tasks": 3}, "kind must be a string"),
    ({"kind": "mean", "tasks": -1}, "tasks must be at least 0"),
    ({"kind": "mean", "tasks": "3"}, "tasks must be a whole number"),
    ({"kind": "mean", "tasks": 1.5}, "tasks must be a whole number"),
    ({"kind": "mean", "tasks": 10**13}, "at most"),
    ({"kind": "mean", "tasks": 3, "strategy": "fastest"}, "unknown strategy"),
    ({"kind": "mean", "tasks": 3, "strategy": 1}, "strategy must be a string"),
    ({"kind": "mean", "tasks": 3, "params": "x"}, "params must be a JSON object"),
    ({"kind": "mean", "tasks": 3, "params": {"task_size": 0}}, "--task-size must be 1"),
    ({"kind": "mean", "tasks": 3, "params": {"bogus": 1}}, "no parameter bogus"),
    ({"kind": "mean", "tasks": 3, "params": {"tasks": 4}}, "differs from tasks"),
    ({"kind": "mean", "tasks": 3, "shard_size": 0}, "shard_size must be at least 1"),
    ({"kind": "mean", "tasks": 3, "extra": True}, "unknown field extra"),
]


@pytest.mark.parametrize(("body", "message"), BAD_JOBS)
def test_bad_jobs_are_400(idle_app: Flask, body: object, message: str) -> None:
    response = idle_app.test_client().post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.json["error"]


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,", b"\xff", b'{"tasks": NaN}', b"[" * 3000])
def test_malformed_job_bodies_are_400(idle_app: Flask, raw: bytes) -> None:
    response = idle_app.test_client().post(
        "/v1/jobs", data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_unknown_job_is_404_json(idle_app: Flask) -> None:
    client = idle_app.test_client()
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/result"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404
        assert "no job" in response.json["error"]
    assert client.get("/v1/jobs?status=weird", headers=AUTH).status_code == 400
    assert client.get("/v1/jobs?status=running", headers=AUTH).json == {"jobs": []}


def test_aggregator_auth_readiness_and_openapi(idle_app: Flask) -> None:
    client = idle_app.test_client()
    assert client.post("/v1/jobs", json=MEAN_JOB).status_code == 401
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs/x", headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz", headers=AUTH).json["status"] == "ready"
    assert_openapi_covers(idle_app, AUTH)
    paths = client.get("/openapi.json", headers=AUTH).json["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result"} <= set(paths)


def test_empty_job_succeeds_at_once(idle_app: Flask) -> None:
    job_id = submit(idle_app, {"kind": "mean", "tasks": 0})
    status = wait_done(idle_app, job_id)
    assert status["status"] == "succeeded"
    result = idle_app.test_client().get(f"/v1/jobs/{job_id}/result", headers=AUTH).json
    assert result["result"]["count"] == 0


def test_aggregator_config_is_checked(token_file: Path, tmp_path: Path) -> None:
    base = {"token_file": str(token_file), "db_path": str(tmp_path / "j.db")}
    with pytest.raises(BadInput, match="at least one worker"):
        AggregatorConfig.from_mapping({**base, "workers": []})
    with pytest.raises(BadInput, match="workers must be a list"):
        AggregatorConfig.from_mapping(base)
    with pytest.raises(BadInput, match="listed twice"):
        AggregatorConfig.from_mapping(
            {**base, "workers": [{"name": "a", "url": "http://127.0.0.1:1"}] * 2}
        )
    with pytest.raises(BadInput, match="url must be"):
        AggregatorConfig.from_mapping({**base, "workers": [{"name": "a", "url": "ftp://x"}]})
    with pytest.raises(BadInput, match="weight"):
        AggregatorConfig.from_mapping(
            {**base, "workers": [{"name": "a", "url": "http://127.0.0.1:1", "weight": -1}]}
        )


# --------------------------------------------------------------------------- the store


def test_store_accepts_a_shard_result_once(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.db")
    assert store.schema_version == SCHEMA_VERSION
    plan = {"tasks": 2, "shards": [{"id": "s0"}], "nodes": []}
    store.create_job("j1", kind="pi", params={"tasks": 2}, strategy="weighted", plan=plan)
    with pytest.raises(BadInput, match="already exists"):
        store.create_job("j1", kind="pi", params={}, strategy="weighted", plan=plan)
    assert store.record_shard("j1", "s0", node="a", partial={"x": 1}, seconds=0.5)
    assert not store.record_shard("j1", "s0", node="b", partial={"x": 2}, seconds=0.1)
    [only] = store.shard_results("j1")
    assert (only.node, only.partial) == ("a", {"x": 1})
    store.finish_job("j1", JobStatus.SUCCEEDED, result={"ok": True})
    store.finish_job("j1", JobStatus.FAILED, reason="late")  # a finished job stays finished
    record = store.job("j1")
    assert record.status is JobStatus.SUCCEEDED and record.result == {"ok": True}
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(OperationFailed, match="upgrade lepton-ops"):
        JobStore(tmp_path / "s.db")
