"""``lepton_ops.jobs.run``: job checks, the aggregator's address and token, waiting with a
deadline; against scripted statuses and against a real aggregator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from service_support import TOKEN, Worker, aggregator, assert_exact_mean
from werkzeug.serving import BaseWSGIServer, make_server

from lepton_ops.credentials.tokens import token_path
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.jobs import client as jobs
from lepton_ops.jobs import run
from lepton_ops.jobs.client import AGGREGATOR_URL_ENV, AggregatorClient
from lepton_ops.jobs.kinds import artifact_digest

INVENTORY = """
all:
  vars: {lepton_insecure_http: true}
  children:
    aggregator:
      hosts:
        node3: {ansible_host: 127.0.1.3, lepton_aggregator_port: 9100}
    workers:
      hosts:
        node1: {ansible_host: 127.0.1.1}
        node2: {ansible_host: 127.0.1.2}
"""


# --------------------------------------------------------------------------- check_job


def test_check_job_gives_what_job_run_submits() -> None:
    assert run.check_job("mean", {"task_size": "100", "seed": 7}, 10) == {
        "task_size": 100,
        "seed": 7,
    }
    assert run.check_job("sleep", {"task_ms": None}, 0, strategy="equal", shard_size=3) == {}
    assert run.check_job("pi", {}, 5) == jobs.job_params("pi", {})


@pytest.mark.parametrize(
    ("kind", "params", "tasks", "extra", "message"),
    [
        ("nope", {}, 10, {}, "unknown job kind 'nope'"),
        ("mean", {"task_ms": 5}, 10, {}, "job kind mean does not take --task-ms"),
        ("mean", {"tasks": 5}, 10, {}, "job kind mean does not take --tasks"),
        ("mean", {"task_size": 0}, 10, {}, "--task-size must be 1 or more"),
        ("mean", {}, -1, {}, "--tasks must be 0 or more"),
        ("mean", {}, 10, {"strategy": "fastest"}, "unknown strategy 'fastest'"),
        ("mean", {}, 10, {"shard_size": 0}, "the shard size must be 1 or more tasks, got 0"),
    ],
)
def test_check_job_bad_input(
    kind: str, params: dict[str, Any], tasks: int, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        run.check_job(kind, params, tasks, **extra)


# --------------------------------------------------------------------------- artifacts


@pytest.fixture
def predict_files(tmp_path: Path) -> dict[str, Path]:
    """A small classifier saved with skops and 30 rows to score (.npy)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from lepton_ops.jobs.model_files import save_model

    rng = np.random.default_rng(5)
    train = rng.normal(size=(80, 3))
    model = LogisticRegression().fit(train, (train[:, 1] > 0).astype(int))
    rows = tmp_path / "rows.npy"
    np.save(rows, rng.normal(size=(30, 3)))
    return {"model": save_model(model, tmp_path / "model.skops"), "data": rows}


def test_check_job_inputs_reads_the_artifacts_and_derives_the_tasks(
    predict_files: dict[str, Path],
) -> None:
    files = {name: str(path) for name, path in predict_files.items()}
    inputs = run.check_job_inputs("predict", {}, None, files, strategy="equal", shard_size=4)
    assert inputs == jobs.job_inputs("predict", {}, dict(predict_files), None)
    assert inputs.tasks == 30 and inputs.params == {}
    assert inputs.artifacts == {name: path.read_bytes() for name, path in predict_files.items()}
    assert run.check_job_inputs("predict", {}, 30, predict_files).tasks == 30
    plain = run.check_job_inputs("mean", {"seed": "3"}, 12, {"model": None, "data": None})
    assert (plain.params, plain.tasks, plain.artifacts) == ({"seed": 3}, 12, {})


def test_artifact_paths_expand_home_and_variables(
    predict_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = predict_files["model"].parent
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("ROWS_DIR", str(folder))
    files = {"model": "~/model.skops", "data": "$ROWS_DIR/rows.npy"}
    assert run.artifact_files(files) == predict_files
    assert run.check_job_inputs("predict", {}, None, files).tasks == 30


@pytest.mark.parametrize(
    ("kind", "tasks", "files", "message"),
    [
        ("predict", None, {"model": "{tmp}/nope.skops", "data": "{data}"}, "does not exist"),
        ("predict", 7, {"model": "{model}", "data": "{data}"}, "tasks is 7, the data has 30"),
        ("predict", None, {"model": "{model}"}, "job kind predict needs --data"),
        ("predict", None, {"model": "{data}", "data": "{data}"}, "must be a .skops file"),
        ("predict", None, {"model": "{model}", "data": 3}, "artifact data must be the path"),
        ("predict", None, {"model": "{model}", "data": " "}, "artifact data must be the path"),
        ("mean", 5, {"model": "{model}"}, "job kind mean does not take --model"),
        ("mean", None, {}, "job kind mean needs --tasks"),
        ("mean", -1, {}, "--tasks must be 0 or more"),
    ],
)
def test_check_job_inputs_bad_input(
    predict_files: dict[str, Path],
    tmp_path: Path,
    kind: str,
    tasks: int | None,
    files: dict[str, object],
    message: str,
) -> None:
    paths = {"tmp": str(tmp_path), **{name: str(path) for name, path in predict_files.items()}}
    given = {
        name: value.format(**paths) if isinstance(value, str) else value
        for name, value in files.items()
    }
    with pytest.raises(BadInput, match=message):
        run.check_job_inputs(kind, {}, tasks, given)


def test_check_job_inputs_checks_strategy_and_shards_before_reading_files(tmp_path: Path) -> None:
    files = {"model": tmp_path / "nope.skops", "data": tmp_path / "nope.npy"}
    with pytest.raises(BadInput, match="unknown strategy 'fastest'"):
        run.check_job_inputs("predict", {}, None, files, strategy="fastest")
    with pytest.raises(BadInput, match="the shard size must be 1 or more tasks"):
        run.check_job_inputs("predict", {}, None, files, shard_size=0)


@pytest.mark.parametrize("value", [None, 0.5, 3, float("inf")])
def test_check_timeout_accepts(value: float | None) -> None:
    assert run.check_timeout(value) == value


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), True, "10"])
def test_check_timeout_refuses(value: Any) -> None:
    with pytest.raises(BadInput, match="timeout must be"):
        run.check_timeout(value)


# --------------------------------------------------------------------------- address, token


def test_address_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    monkeypatch.delenv(AGGREGATOR_URL_ENV, raising=False)
    assert run.aggregator_address(None, inventory) == "http://127.0.1.3:9100"
    monkeypatch.setenv(AGGREGATOR_URL_ENV, "http://127.0.0.1:8800")
    assert run.aggregator_address(None, inventory) == "http://127.0.0.1:8800"
    assert run.aggregator_address(" https://agg.example:8700/ ", inventory) == (
        "https://agg.example:8700"
    )


def test_address_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AGGREGATOR_URL_ENV, raising=False)
    with pytest.raises(BadInput, match="no aggregator address"):
        run.aggregator_address()
    for bad in ("127.0.1.5:8700", "ftp://host", "http://"):
        with pytest.raises(BadInput, match="must look like http://HOST:PORT"):
            run.aggregator_address(bad)
    with pytest.raises(BadInput, match="does not exist"):
        run.aggregator_address(None, tmp_path / "missing.yml")


# --------------------------------------------------------------------------- fleet facts


def test_fleet_facts_give_the_address_and_the_plan(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    assert run.fleet_facts(inventory) == {"aggregator_url": "http://127.0.1.3:9100"}
    facts = run.fleet_facts(inventory, 30, strategy="equal", shard_size=5)
    assert facts["aggregator_url"] == "http://127.0.1.3:9100"
    assert facts["plan"]["strategy"] == "equal"
    assert [(node["name"], node["tasks"]) for node in facts["plan"]["nodes"]] == [
        ("node1", 15),
        ("node2", 15),
    ]


def test_main_prints_the_facts_or_the_error_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    assert run.main(["--inventory", str(inventory), "--tasks", "9"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["aggregator_url"] == "http://127.0.1.3:9100"
    assert sum(node["tasks"] for node in facts["plan"]["nodes"]) == 9
    assert run.main(["--inventory", str(tmp_path / "missing.yml")]) == 2
    error = json.loads(capsys.readouterr().out)
    assert error["error_kind"] == "BadInput"
    assert error["error"].startswith(f"inventory {tmp_path / 'missing.yml'} does not exist")


def test_main_runs_as_a_child_python(tmp_path: Path) -> None:
    """As the Ansible module runs it: ``python -m lepton_ops.jobs.run``."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY.replace("workers:", "others:"), encoding="utf-8")
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "lepton_ops.jobs.run",
            "--inventory",
            str(inventory),
            "--tasks",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 2, child.stderr
    error = json.loads(child.stdout)
    assert error["error_kind"] == "BadInput"
    assert "no host in the 'workers' group" in error["error"]


def install_token(state: Path, mode: int = 0o600, text: str = TOKEN + "\n") -> Path:
    path = token_path(state)
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_token_file_is_checked_and_the_token_kept_inside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.raises(BadInput, match=r"no service token at .*: deploy first"):
        run.service_token_file(state)
    path = install_token(state)
    assert run.service_token_file(state) == path
    with run.open_client(state, "http://127.0.0.1:1") as made:
        assert made.base_url == "http://127.0.0.1:1"
        assert made.token_file == path
    install_token(state, mode=0o644)
    with pytest.raises(BadInput, match="has mode 0644") as caught:
        run.open_client(state, "http://127.0.0.1:1")
    assert TOKEN not in str(caught.value)


# --------------------------------------------------------------------------- waiting, scripted


class ScriptedClient:
    """Answers ``status`` from a script (the last answer repeats) and ``result``."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.asked = 0
        self.results = 0

    def status(self, job_id: str) -> dict[str, Any]:
        state = self.statuses[min(self.asked, len(self.statuses) - 1)]
        self.asked += 1
        return {
            "job_id": job_id,
            "kind": "sleep",
            "status": state,
            "progress": {"shards_done": self.asked, "shards_total": 8},
            "per_node": {"node1": {"tasks": 2, "shards": 1, "seconds": 0.5}},
            "reason": "every worker was lost" if state == "failed" else None,
            "makespan_s": 1.5 if state != "running" else None,
        }

    def result(self, job_id: str) -> dict[str, Any]:
        self.results += 1
        return {"job_id": job_id, "kind": "sleep", "status": "succeeded", "result": {"tasks": 2}}


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def wait(client: ScriptedClient, fake: FakeTime, **kwargs: Any) -> jobs.Outcome:
    return run.wait_for_outcome(
        client,  # type: ignore[arg-type]
        "j1",
        clock=fake.clock,
        sleep=fake.sleep,
        **kwargs,
    )


def test_wait_returns_the_outcome_of_a_finished_job() -> None:
    client, fake = ScriptedClient(["running", "running", "succeeded"]), FakeTime()
    seen: list[str] = []
    finished = wait(
        client, fake, timeout_s=10, poll_s=0.5, on_status=lambda s: seen.append(s["status"])
    )
    assert finished.succeeded
    assert finished.to_dict() == {
        "job_id": "j1",
        "status": "succeeded",
        "kind": "sleep",
        "result": {"tasks": 2},
        "per_node": {"node1": {"tasks": 2, "seconds": 0.5}},
        "makespan_s": 1.5,
    }
    assert seen == ["running", "running", "succeeded"]
    assert fake.slept == [0.5, 0.5]


def test_wait_without_timeout_has_no_deadline() -> None:
    client, fake = ScriptedClient(["running"] * 50 + ["succeeded"]), FakeTime()
    assert wait(client, fake, poll_s=60).succeeded
    assert client.asked == 51 and sum(fake.slept) == 50 * 60


def test_a_failed_job_is_an_outcome_without_result() -> None:
    client, fake = ScriptedClient(["running", "failed"]), FakeTime()
    finished = wait(client, fake, timeout_s=5)
    assert not finished.succeeded
    assert finished.result is None and client.results == 0
    assert jobs.failure_line(finished.status) == "job j1 failed: every worker was lost"


def test_timeout_asks_once_more_at_the_deadline_then_gives_up() -> None:
    client, fake = ScriptedClient(["running"]), FakeTime()
    with pytest.raises(run.JobTimeout) as caught:
        wait(client, fake, timeout_s=1.0, poll_s=0.4)
    assert fake.slept == pytest.approx([0.4, 0.4, 0.2])  # the last pause ends at the deadline
    assert client.asked == 4 and client.results == 0
    error = caught.value
    assert isinstance(error, OperationFailed)
    assert error.job_id == "j1" and error.timeout_s == 1.0
    assert error.status is not None and error.status["status"] == "running"
    assert str(error) == (
        "job j1 did not finish within 1 s (4/8 shards done); it goes on on the aggregator: "
        "follow it with 'lepton-ops job watch j1'"
    )


def test_a_job_finishing_at_the_deadline_is_not_a_timeout() -> None:
    client, fake = ScriptedClient(["running", "succeeded"]), FakeTime()
    assert wait(client, fake, timeout_s=0.1, poll_s=0.25).succeeded
    assert fake.slept == pytest.approx([0.1])


def test_bad_timeout_is_refused_before_asking() -> None:
    client, fake = ScriptedClient(["running"]), FakeTime()
    with pytest.raises(BadInput):
        wait(client, fake, timeout_s=0)
    assert client.asked == 0


# --------------------------------------------------------------------------- a real aggregator


@pytest.fixture
def serve(apps: list[Flask]) -> Iterator[Callable[[Flask], str]]:
    servers: list[BaseWSGIServer] = []

    def start(app: Flask) -> str:
        apps.append(app)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_real_job_times_out_then_finishes(
    tmp_path: Path,
    token_file: Path,
    make_worker: Callable[..., Worker],
    serve: Callable[[Flask], str],
) -> None:
    workers = [make_worker(delay_s=0.05), make_worker(delay_s=0.05)]
    url = serve(aggregator(token_file, tmp_path / "jobs.db", workers, weights=[1, 2]))
    state = tmp_path / "state"
    install_token(state)
    params = run.check_job("mean", {"task_size": 100, "seed": 7}, 200, shard_size=10)
    with run.open_client(state, run.aggregator_address(url)) as client:
        job_id = client.submit("mean", params, 200, "weighted", 10)
        with pytest.raises(run.JobTimeout, match=f"job {job_id} did not finish within 0.05 s"):
            run.wait_for_outcome(client, job_id, timeout_s=0.05, poll_s=0.01)
        finished = run.wait_for_outcome(client, job_id, timeout_s=60, poll_s=0.02)
    data = finished.to_dict()
    assert data["status"] == "succeeded" and data["job_id"] == job_id
    assert_exact_mean(data["result"])
    assert sum(entry["tasks"] for entry in data["per_node"].values()) == 200


def test_real_predict_job_uploads_its_artifacts_once(
    tmp_path: Path,
    token_file: Path,
    make_worker: Callable[..., Worker],
    serve: Callable[[Flask], str],
    predict_files: dict[str, Path],
) -> None:
    import numpy as np

    from lepton_ops.jobs.model_files import load_model

    url = serve(
        aggregator(token_file, tmp_path / "jobs.db", [make_worker(), make_worker()], [1, 2])
    )
    state = tmp_path / "state"
    install_token(state)
    inputs = run.check_job_inputs("predict", {}, None, predict_files)
    digests = {name: artifact_digest(data) for name, data in inputs.artifacts.items()}
    with run.open_client(state, url) as client:
        assert not any(client.has_artifact(digest) for digest in digests.values())
        job_id = run.submit_job(client, "predict", inputs, shard_size=7)
        assert all(client.has_artifact(digest) for digest in digests.values())
        finished = run.wait_for_outcome(client, job_id, timeout_s=60, poll_s=0.02)
        assert client.status(job_id)["artifacts"] == digests
        again = run.submit_job(client, "predict", inputs, strategy="equal")
        assert run.wait_for_outcome(client, again, timeout_s=60, poll_s=0.02).succeeded
    data = finished.to_dict()
    assert data["status"] == "succeeded" and data["kind"] == "predict"
    estimator = load_model(predict_files["model"]).estimator
    expected = estimator.predict(np.load(predict_files["data"])).tolist()
    assert data["result"]["rows"] == 30 and data["result"]["predictions"] == expected
    assert sum(entry["tasks"] for entry in data["per_node"].values()) == 30


def test_real_job_with_a_wrong_token_fails_without_showing_it(
    tmp_path: Path,
    token_file: Path,
    make_worker: Callable[..., Worker],
    serve: Callable[[Flask], str],
) -> None:
    url = serve(aggregator(token_file, tmp_path / "jobs.db", [make_worker()], weights=[1]))
    state = tmp_path / "state"
    install_token(state, text="not-the-token\n")
    with (
        run.open_client(state, url) as client,
        pytest.raises(OperationFailed, match=r"refused the token in .*service-token") as caught,
    ):
        client.submit("pi", {}, 4)
    assert "not-the-token" not in str(caught.value)
    with AggregatorClient(url, TOKEN) as good:
        assert good.list() == []
