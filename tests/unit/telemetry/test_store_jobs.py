"""The controller's job history: the store's ``jobs`` table (schema version 3), and how a
finished job gets there (``jobs.outcome``, shared by ``job run`` and the module)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import run_cli
from flask import Flask
from report_support import T0, UP, collect
from service_support import TOKEN, Worker, aggregator
from werkzeug.serving import make_server

from lepton_ops.credentials.tokens import token_path
from lepton_ops.errors import BadInput
from lepton_ops.jobs import client as jobs
from lepton_ops.jobs import run
from lepton_ops.jobs.history import JobHistory, job_run_record, predicted_makespan
from lepton_ops.jobs.planner import make_plan
from lepton_ops.telemetry import HistoryStore, history_path
from lepton_ops.telemetry.history import schema as store_schema
from lepton_ops.telemetry.records import JobRunNode, JobRunRecord


def status(job_id: str = "j1", **changes: Any) -> dict[str, Any]:
    """A finished job's status as the aggregator answers it: 8 tasks over a (w1) and b (w3)."""
    base: dict[str, Any] = {
        "job_id": job_id,
        "kind": "sleep",
        "status": "succeeded",
        "strategy": "weighted",
        "tasks": 8,
        "shards": 4,
        "created_at": T0,
        "finished_at": T0 + 2.0,
        "per_node": {
            "a": {"tasks": 2, "shards": 1, "seconds": 1.0},
            "b": {"tasks": 6, "shards": 3, "seconds": 1.5},
        },
        "makespan_s": 2.0,
        "predicted_makespan_units": 2.0,
    }
    return {**base, **changes}


PLAN = make_plan([("a", 1), ("b", 3)], 8)


def record(job_id: str = "j1", finished: float = T0 + 2.0) -> JobRunRecord:
    return job_run_record(status(job_id, finished_at=finished), PLAN, now=finished + 1)


# --------------------------------------------------------------------------- the record


def test_a_finished_job_becomes_its_history_row() -> None:
    job = record()
    # plan: a gets 8 * 1/4 = 2 tasks, b 8 * 3/4 = 6; speeds measured: a 2 tasks / 1.0 s =
    # 2 per s, b 6 / 1.5 = 4 per s. Predicted: max(2 / 2, 6 / 4) = max(1.0, 1.5) = 1.5 s.
    assert job.predicted_makespan_s == pytest.approx(1.5)
    assert job.predicted_from == "planned tasks at each node's measured speed"
    assert job.makespan_s == 2.0 and job.submitted_at == T0 and job.finished_at == T0 + 2
    assert [
        (n.node, n.weight, n.load_share, n.planned_tasks, n.executed_tasks) for n in job.nodes
    ] == [
        ("a", 1, 0.25, 2, 2),
        ("b", 3, 0.75, 6, 6),
    ]
    assert [n.measured_speed for n in job.nodes] == [2.0, 4.0]


def test_a_node_that_ran_nothing_is_predicted_at_its_plan_speed() -> None:
    plan = make_plan([("a", 1), ("b", 3), ("c", 2)], 12)
    assert [node.tasks for node in plan.nodes] == [2, 6, 4]
    per_node = {
        "a": {"tasks": 2, "shards": 1, "seconds": 1.0},
        "b": {"tasks": 10, "shards": 5, "seconds": 2.5},  # b stole c's shards
        "c": {"tasks": 0, "shards": 0, "seconds": 0.0},
    }
    job = job_run_record(status(tasks=12, per_node=per_node), plan)
    # seconds per task at speed 1: (1.0 * 1 + 2.5 * 3) / (2 + 10) = 8.5 / 12 = 0.70833 s.
    # a: 2 / 2 = 1.0 s; b: 6 / (10 / 2.5) = 1.5 s; c: 4 tasks * 0.70833 / speed 2 = 1.4167 s.
    assert job.predicted_makespan_s == pytest.approx(1.5)
    assert "c: plan speed x measured seconds per task" in job.predicted_from
    slow_b = {**per_node, "b": {"tasks": 10, "shards": 5, "seconds": 10.0}}
    # b: 6 / (10 / 10) = 6 s; c: 4 * ((1 + 30) / 12) / 2 = 5.1667 s.
    assert job_run_record(status(tasks=12, per_node=slow_b), plan).predicted_makespan_s == (
        pytest.approx(6.0)
    )


def test_without_a_plan_nothing_is_predicted() -> None:
    job = job_run_record(status(), None)
    assert job.predicted_makespan_s is None and "weights were not known" in job.predicted_from
    assert [(n.node, n.weight, n.planned_tasks, n.executed_tasks) for n in job.nodes] == [
        ("a", None, None, 2),
        ("b", None, None, 6),
    ]
    assert predicted_makespan(PLAN, [JobRunNode("a", 1, 0.25, 2, 0, 0, 0.0)])[0] is None


# --------------------------------------------------------------------------- the store


def test_jobs_are_stored_once_per_id_and_read_back_by_time(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        assert store.schema_version == store_schema.SCHEMA_VERSION
        store.record_job(record("j1", T0 + 10))
        store.record_job(record("j2", T0 + 20))
        store.record_job(record("j1", T0 + 10))  # seen again by 'job result'
        assert [job.job_id for job in store.jobs()] == ["j1", "j2"]
        assert store.jobs() == [record("j1", T0 + 10), record("j2", T0 + 20)]
        assert [job.job_id for job in store.jobs(since=T0 + 15)] == ["j2"]
        assert [job.job_id for job in store.jobs(until=T0 + 15)] == ["j1"]
        store.prune(15, now=T0 + 30)
        assert [job.job_id for job in store.jobs()] == ["j2"]


def test_a_version_2_store_gains_the_jobs_table_keeping_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = history_path(tmp_path)
    monkeypatch.setattr(store_schema, "MIGRATIONS", store_schema.MIGRATIONS[:2])
    with HistoryStore(path) as store:
        collect(store, T0, {"a": UP})
        fault = store.start_fault("a", "kill", {"signal": 9}, started_at=T0)
        assert store.schema_version == 2 and not store.has_table("jobs")
    monkeypatch.undo()
    with HistoryStore(path) as store:
        assert store.schema_version == store_schema.SCHEMA_VERSION
        assert len(store.collections()) == 1 and store.nodes() == ["a"]
        assert [(f.id, f.params) for f in store.faults()] == [(fault, {"signal": 9})]
        assert store.jobs() == []
        store.record_job(record())
        assert [job.job_id for job in store.jobs()] == ["j1"]


def test_tables_of_later_versions_are_read_by_name(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    with HistoryStore(path) as store:
        assert not store.has_table("later_things") and store.table_rows("later_things") == []
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE later_things (id INTEGER PRIMARY KEY, node TEXT, started_at REAL)")
        db.executemany(
            "INSERT INTO later_things (node, started_at) VALUES (?, ?)", [("a", 20.0), ("b", 10.0)]
        )
    with HistoryStore(path) as store:
        assert store.has_table("later_things")
        rows = store.table_rows("later_things", order_by="started_at", since=15.0)
        assert rows == [{"id": 1, "node": "a", "started_at": 20.0}]
        assert len(store.table_rows("later_things")) == 2
        with pytest.raises(BadInput, match="not a table name"):
            store.table_rows('later_things"; DROP TABLE nodes; --')
        with pytest.raises(BadInput, match="has no column"):
            store.table_rows("later_things", order_by="nope")


# --------------------------------------------------------------------------- recording


class FakeClient:
    """Answers a finished job's status and result, and carries a job history."""

    def __init__(self, history: JobHistory | None, answer: dict[str, Any]) -> None:
        self.history = history
        self.answer = answer

    def status(self, job_id: str) -> dict[str, Any]:
        return self.answer

    def result(self, job_id: str) -> dict[str, Any]:
        return {"job_id": job_id, "kind": "sleep", "status": "succeeded", "result": {"tasks": 8}}


def stored(state_dir: Path) -> list[JobRunRecord]:
    with HistoryStore(history_path(state_dir)) as store:
        return store.jobs()


def test_outcome_records_the_job_with_the_plan_the_inventory_gives(tmp_path: Path) -> None:
    asked: list[dict[str, Any]] = []

    def plans(seen: Any) -> Any:
        asked.append(dict(seen))
        return PLAN

    client = FakeClient(JobHistory(tmp_path, plans), status())
    finished = jobs.outcome(client, status())  # type: ignore[arg-type]
    assert finished.succeeded and asked[0]["job_id"] == "j1"
    (job,) = stored(tmp_path)
    assert job.job_id == "j1" and job.predicted_makespan_s == pytest.approx(1.5)
    assert [node.planned_tasks for node in job.nodes] == [2, 6]


def test_the_module_path_records_too(tmp_path: Path) -> None:
    client = FakeClient(JobHistory(tmp_path), status(status="failed", reason="lost"))
    finished = run.wait_for_outcome(client, "j1", timeout_s=5, poll_s=0.01)  # type: ignore[arg-type]
    assert not finished.succeeded
    (job,) = stored(tmp_path)
    assert job.status == "failed" and job.nodes[0].weight is None


def test_a_plan_for_other_nodes_or_a_failing_lookup_is_not_used(tmp_path: Path) -> None:
    other = make_plan([("a", 1), ("z", 3)], 8)
    assert JobHistory(tmp_path, lambda seen: other).plan_of(status()) is None

    def broken(seen: Any) -> Any:
        raise BadInput("no inventory")

    history = JobHistory(tmp_path, broken)
    assert history.plan_of(status()) is None
    assert history.record(status()) is not None
    assert stored(tmp_path)[0].predicted_makespan_s is None
    # a plan the aggregator reports in the status is used first
    assert JobHistory(tmp_path, broken).plan_of(status(plan=PLAN.to_dict())) == PLAN


def test_a_store_error_is_one_warning_not_a_failed_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    client = FakeClient(JobHistory(not_a_dir), status())
    with caplog.at_level(logging.WARNING, logger="lepton_ops.jobs.history"):
        finished = jobs.outcome(client, status())  # type: ignore[arg-type]
    assert finished.succeeded and finished.result is not None
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("job j1 finished but was not written to the job history:")
    assert "\n" not in message


def test_a_running_job_is_not_recorded(tmp_path: Path) -> None:
    assert JobHistory(tmp_path).record(status(status="running")) is None
    assert not history_path(tmp_path).exists()


def test_the_clients_of_both_paths_carry_a_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "secrets" / "service-token"
    token.parent.mkdir(mode=0o700)
    token.write_text("t" * 43 + "\n")
    token.chmod(0o600)
    monkeypatch.setenv(jobs.AGGREGATOR_URL_ENV, "http://127.0.0.1:1")
    with jobs.connect(tmp_path, lambda: tmp_path / "inventory.yml") as made:
        assert made.history is not None and made.history.state_dir == tmp_path
    with run.open_client(tmp_path, "http://127.0.0.1:1") as made:
        assert made.history is not None and made.history.state_dir == tmp_path


# --------------------------------------------------------------------------- end to end

INVENTORY = """
all:
  children:
    aggregator:
      hosts:
        node1: {ansible_host: 127.0.1.1}
    workers:
      hosts:
        node1: {ansible_host: 127.0.1.1, lepton_weight: 1}
        node2: {ansible_host: 127.0.1.2, lepton_weight: 3}
"""


def test_job_run_records_the_job_with_the_inventorys_weights(
    tmp_path: Path,
    token_file: Path,
    make_worker: Callable[..., Worker],
    apps: list[Flask],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a real aggregator and two real workers on 127.0.0.1 (the inventory's addresses are
    # only read: the aggregator's URL comes from the environment)
    app = aggregator(token_file, tmp_path / "jobs.db", [make_worker(), make_worker()], [1, 3])
    apps.append(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(jobs.AGGREGATOR_URL_ENV, f"http://127.0.0.1:{server.server_port}")
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(INVENTORY)
        state = tmp_path / "state"
        token = token_path(state)
        token.parent.mkdir(parents=True, mode=0o700)
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        done = run_cli(
            "job", "run", "--kind", "sleep", "--tasks", "40", "--task-ms", "1", "--json",
            "-i", str(inventory), state_dir=state,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (job,) = stored(state)
    assert job.job_id == json.loads(done.stdout)["job_id"] and job.status == "succeeded"
    assert [(n.node, n.weight, n.load_share, n.planned_tasks) for n in job.nodes] == [
        ("node1", 1, 0.25, 10),
        ("node2", 3, 0.75, 30),
    ]
    assert sum(node.executed_tasks for node in job.nodes) == 40
    assert job.makespan_s is not None and job.makespan_s > 0
    assert job.predicted_makespan_s is not None and job.predicted_makespan_s > 0
