"""Hostile input, faults and cancels: the findings of the schemathesis run, one test each."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from service_support import AUTH, Worker, aggregator, assert_exact_mean

from lepton_ops.errors import BadInput
from lepton_ops.jobs.planner import MAX_SHARDS, make_plan
from lepton_ops.services.aggregator import dispatcher_of
from lepton_ops.services.job_store import JobStatus, JobStore
from lepton_ops.services.worker import create_worker_app

MEAN_JOB = {"kind": "mean", "params": {"task_size": 100, "seed": 7}, "tasks": 200}


def submit(app: Flask, body: dict[str, Any]) -> str:
    response = app.test_client().post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id: str = response.json["job_id"]
    return job_id


def status_of(app: Flask, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = app.test_client().get(f"/v1/jobs/{job_id}", headers=AUTH).json
    return data


@pytest.fixture
def worker_app(token_file: Path, tmp_path: Path) -> Flask:
    return create_worker_app(
        {"token_file": str(token_file), "cancel_dir": str(tmp_path / "cancelled")}
    )


# --------------------------------------------------------------------------- bounded shards

HUGE_SLEEP_SHARD = {
    "job_id": "j",
    "shard_id": "s0",
    "kind": "sleep",
    "params": {"tasks": 10**12, "task_ms": 3_600_000},
    "start": 0,
    "stop": 10**12,
}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (HUGE_SLEEP_SHARD, "--task-ms must be at most"),
        ({**HUGE_SLEEP_SHARD, "params": {"tasks": 10**12, "task_ms": 1}}, "at most 30000 tasks"),
        ({**HUGE_SLEEP_SHARD, "params": {"tasks": 10**400, "task_ms": 1}}, "--tasks must be"),
        (
            {**HUGE_SLEEP_SHARD, "params": {"tasks": 10**400}, "stop": 10**400},
            "--tasks must be at most",
        ),
        (
            {
                **HUGE_SLEEP_SHARD,
                "kind": "pi",
                "params": {"tasks": 10**6, "task_size": 10**6},
                "stop": 10**6,
            },
            "a pi shard may hold at most 100 tasks",
        ),
        (
            {**HUGE_SLEEP_SHARD, "kind": "mean", "params": {"tasks": 10**7}, "stop": 10**7},
            "a mean shard may hold at most",
        ),
    ],
)
def test_the_worker_refuses_unbounded_shards_with_400(
    worker_app: Flask, body: dict[str, Any], message: str
) -> None:
    began = time.monotonic()
    response = worker_app.test_client().post("/v1/shards/run", json=body, headers=AUTH)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.json["error"]
    assert time.monotonic() - began < 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "sleep", "tasks": 10**12, "params": {"task_ms": 3_600_000}}, "at most 30000"),
        ({"kind": "sleep", "tasks": 10**12, "params": {"task_ms": 1}}, f"at most {MAX_SHARDS}"),
        (
            {"kind": "sleep", "tasks": 100, "params": {"task_ms": 1000}, "shard_size": 31},
            "at most 30",
        ),
        ({"kind": "pi", "tasks": 10**9, "params": {"task_size": 10**6}}, "submit fewer tasks"),
    ],
)
def test_the_aggregator_refuses_jobs_whose_shards_would_be_unbounded(
    idle_app: Flask, body: dict[str, Any], message: str
) -> None:
    response = idle_app.test_client().post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.json["error"]


def test_default_shards_are_cut_within_the_kinds_limit(idle_app: Flask, tmp_path: Path) -> None:
    job_id = submit(idle_app, {"kind": "sleep", "tasks": 40, "params": {"task_ms": 10_000}})
    plan = JobStore(tmp_path / "jobs.db").job(job_id).plan
    assert max(s["stop"] - s["start"] for s in plan["shards"]) == 3  # 30 s of sleep
    dispatcher_of(idle_app).cancel(job_id)


# --------------------------------------------------------------------------- cancel


def test_cancel_stops_the_shards_running_on_the_workers(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    workers = [make_worker(), make_worker()]
    app = aggregator(token_file, tmp_path / "jobs.db", workers, weights=[1, 1])
    apps.append(app)
    job_id = submit(
        app, {"kind": "sleep", "tasks": 4, "params": {"task_ms": 20_000}, "shard_size": 1}
    )
    deadline = time.monotonic() + 10
    while sum(w.served for w in workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(w.served for w in workers) == 2  # one 20 s shard in flight on each
    began = time.monotonic()
    response = app.test_client().delete(f"/v1/jobs/{job_id}", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["status"] == "failed" and response.json["reason"] == "cancelled"
    # The in-flight shards stopped between tasks: the dispatch is over long before 20 s.
    assert dispatcher_of(app).wait(job_id, 5.0)
    assert time.monotonic() - began < 5.0
    status = status_of(app, job_id)
    assert status["status"] == "failed" and status["reason"] == "cancelled"
    assert status["progress"]["shards_done"] == 0
    again = app.test_client().delete(f"/v1/jobs/{job_id}", headers=AUTH)
    assert again.status_code == 409 and "already finished" in again.json["error"]
    assert app.test_client().delete("/v1/jobs/nosuch", headers=AUTH).status_code == 404


def test_a_cancel_reaches_every_process_of_a_worker(token_file: Path, tmp_path: Path) -> None:
    # Two apps sharing a cancel directory: the two gunicorn processes of one worker.
    config = {"token_file": str(token_file), "cancel_dir": str(tmp_path / "cancelled")}
    one, two = create_worker_app(config), create_worker_app(config)
    shard = {
        "job_id": "job-x",
        "shard_id": "s0",
        "kind": "sleep",
        "params": {"tasks": 1, "task_ms": 20_000},
        "start": 0,
        "stop": 1,
    }
    answers: list[Any] = []
    running = threading.Thread(
        target=lambda: answers.append(
            two.test_client().post("/v1/shards/run", json=shard, headers=AUTH)
        )
    )
    began = time.monotonic()
    running.start()
    time.sleep(0.2)
    cancel = one.test_client().delete("/v1/shards/job-x", headers=AUTH)
    assert cancel.status_code == 200 and cancel.json == {"job_id": "job-x", "cancelled": True}
    running.join(5.0)
    assert answers and answers[0].status_code == 410
    assert "cancelled" in answers[0].json["error"]
    assert time.monotonic() - began < 5.0
    later = one.test_client().post("/v1/shards/run", json=shard, headers=AUTH)
    assert later.status_code == 410
    assert two.test_client().delete("/v1/shards/job-x").status_code == 401


# --------------------------------------------------------------------------- metrics


def test_made_up_methods_and_paths_do_not_grow_the_metrics(worker_app: Flask) -> None:
    client = worker_app.test_client()

    def series() -> int:
        text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
        return sum(1 for line in text.splitlines() if line and not line.startswith("#"))

    def hostile(tag: str, count: int) -> None:
        for i in range(count):
            client.open("/v1/kinds", method=f"{tag}{i:04d}")
            client.open(f"/nope/{tag}{i}", method=f"Z{tag}{i:04d}", headers=AUTH)
            client.get(f"/made/up/{tag}{i}", headers=AUTH)

    hostile("Y", 2)
    series()
    before = series()
    hostile("X", 300)
    assert series() == before
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert 'method="other"' in text and 'endpoint="unmatched"' in text
    assert "X0001" not in text and "/made/up" not in text


# --------------------------------------------------------------------------- store faults


class FailingShardWrites:
    """The store's connection, but the first ``times`` writes of a result fail (disk full)."""

    def __init__(self, db: sqlite3.Connection, times: int) -> None:
        self._db = db
        self.times = times

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("INSERT OR IGNORE INTO shard_results") and self.times > 0:
            self.times -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def mean_job_with_failing_writes(
    token_file: Path,
    tmp_path: Path,
    make_worker: Callable[..., Worker],
    apps: list[Flask],
    failures: int,
) -> tuple[Flask, dict[str, Any]]:
    """The mean job on three workers, the first ``failures`` result writes failing; the
    aggregator and the job's final status."""
    workers = [make_worker() for _ in range(3)]
    app = aggregator(token_file, tmp_path / "jobs.db", workers)
    apps.append(app)
    store = dispatcher_of(app).store
    store._db = FailingShardWrites(store._db, failures)  # type: ignore[assignment]
    job_id = submit(app, MEAN_JOB)
    assert dispatcher_of(app).wait(job_id, 20)
    return app, status_of(app, job_id)


def test_a_failed_store_write_fails_only_that_attempt(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    app, status = mean_job_with_failing_writes(token_file, tmp_path, make_worker, apps, 3)
    assert status["status"] == "succeeded", status
    result = app.test_client().get(f"/v1/jobs/{status['job_id']}/result", headers=AUTH).json
    assert_exact_mean(result["result"])


def test_a_store_that_keeps_failing_fails_the_job_with_the_true_reason(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    _, status = mean_job_with_failing_writes(token_file, tmp_path, make_worker, apps, 10**9)
    assert status["status"] == "failed"
    assert status["reason"] == "could not write to the job store: database or disk is full"
    assert status["lost_nodes"] == []


def test_a_store_write_error_on_submit_is_503_not_500(idle_app: Flask) -> None:
    store = dispatcher_of(idle_app).store

    class Full(FailingShardWrites):
        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("INSERT INTO jobs"):
                raise sqlite3.OperationalError("database or disk is full")
            return self._db.execute(sql, *args)

    store._db = Full(store._db, 0)  # type: ignore[assignment]
    response = idle_app.test_client().post("/v1/jobs", json=MEAN_JOB, headers=AUTH)
    assert response.status_code == 503
    assert "could not write to the job store: database or disk is full" in response.json["error"]


def test_record_shard_refuses_shards_not_in_the_plan(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    plan = make_plan([("n1", 1)], 10, shard_size=5).to_dict()
    store.create_job("j", kind="mean", params={"tasks": 10}, strategy="weighted", plan=plan)
    partial = {"count": 0, "sum_k": "0", "sum_k2": "0", "min_k": None, "max_k": None}
    assert store.record_shard("j", "s0000", node="n1", partial=partial, seconds=0.1)
    with pytest.raises(BadInput, match="has no shard 's0099'"):
        store.record_shard("j", "s0099", node="n1", partial=partial, seconds=0.1)
    with pytest.raises(BadInput, match="has no shard"):
        store.record_shard("other", "s0000", node="n1", partial=partial, seconds=0.1)
    assert store.count_shards("j") == 1


# --------------------------------------------------------------------------- resume


def test_resume_keeps_the_stored_plan_even_if_the_planner_now_cuts_differently(
    token_file: Path, tmp_path: Path, make_worker: Callable[..., Worker], apps: list[Flask]
) -> None:
    db = tmp_path / "jobs.db"
    nodes = [("node1", 1), ("node2", 2), ("node3", 3)]
    stored = make_plan(nodes, 200, shard_size=7).to_dict()
    stored["shard_size"] = None  # what today's planner would cut into other shards
    assert make_plan(nodes, 200).to_dict()["shards"] != stored["shards"]
    store = JobStore(db)
    params = {"task_size": 100, "seed": 7, "tasks": 200}
    store.create_job("old-job", kind="mean", params=params, strategy="weighted", plan=stored)
    store.close()
    workers = [make_worker() for _ in range(3)]
    app = aggregator(token_file, db, workers)
    apps.append(app)
    assert dispatcher_of(app).wait("old-job", 20)
    status = status_of(app, "old-job")
    assert status["status"] == "succeeded", status
    assert status["shards"] == len(stored["shards"])
    result = app.test_client().get("/v1/jobs/old-job/result", headers=AUTH).json
    assert_exact_mean(result["result"])
    assert json.loads(json.dumps(JobStore(db).job("old-job").plan)) == stored
    assert JobStore(db).job("old-job").status is JobStatus.SUCCEEDED
