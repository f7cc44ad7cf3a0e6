"""The aggregator client and ``lepton-ops job run|status|watch|result|list``, against a real
aggregator and real workers served over HTTP on 127.0.0.1 (ephemeral ports)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import one_error_line, run_cli
from flask import Flask
from service_support import TOKEN, Worker, aggregator, assert_exact_mean
from werkzeug.serving import BaseWSGIServer, make_server

from lepton_ops.cli import app as cli_app
from lepton_ops.credentials.tokens import token_path
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.jobs import client as jobs
from lepton_ops.jobs.client import AGGREGATOR_URL_ENV, AggregatorClient
from lepton_ops.jobs.run import wait_for_outcome

MEAN = {"task_size": 100, "seed": 7}
OUTCOME_KEYS = ["job_id", "status", "kind", "result", "per_node", "makespan_s"]


class Served:
    """A Flask app served over real HTTP on 127.0.0.1 (ephemeral port)."""

    def __init__(self, app: Flask) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve(apps: list[Flask]) -> Iterator[Callable[[Flask], str]]:
    served: list[Served] = []

    def start(app: Flask) -> str:
        apps.append(app)
        server = Served(app)
        served.append(server)
        return server.url

    yield start
    for server in served:
        server.stop()


@pytest.fixture
def url(
    token_file: Path,
    tmp_path: Path,
    make_worker: Callable[..., Worker],
    serve: Callable[[Flask], str],
) -> str:
    workers = [make_worker(), make_worker()]
    return serve(aggregator(token_file, tmp_path / "jobs.db", workers, weights=[1, 2]))


@pytest.fixture
def client(url: str) -> Iterator[AggregatorClient]:
    with AggregatorClient(url, TOKEN, 10.0) as made:
        yield made


# --------------------------------------------------------------------------- the client


def test_submit_follow_result_is_exact(client: AggregatorClient) -> None:
    job_id = client.submit("mean", MEAN, 200, "weighted", 10)
    seen: list[dict[str, Any]] = []
    status = jobs.follow(client, job_id, seen.append, poll_s=0.05)
    assert status["status"] == "succeeded", status
    assert seen[-1] is status and all(s["job_id"] == job_id for s in seen)
    assert status["progress"]["shards_done"] == status["progress"]["shards_total"] == 21  # 7 + 14
    finished = jobs.outcome(client, status)
    data = finished.to_dict()
    assert list(data) == OUTCOME_KEYS
    assert data["job_id"] == job_id and data["kind"] == "mean" and data["status"] == "succeeded"
    assert_exact_mean(data["result"])
    assert sorted(data["per_node"]) == ["node1", "node2"]
    assert all(list(entry) == ["tasks", "seconds"] for entry in data["per_node"].values())
    assert sum(entry["tasks"] for entry in data["per_node"].values()) == 200
    assert data["makespan_s"] >= 0
    assert [job["job_id"] for job in client.list()] == [job_id]
    assert TOKEN not in json.dumps(data)


def test_wrong_token_names_the_token_file_not_the_token(url: str, tmp_path: Path) -> None:
    where = tmp_path / "secrets" / "service-token"
    with (
        AggregatorClient(url, "wrong-token-xyz", token_file=where) as bad,
        pytest.raises(OperationFailed) as caught,
    ):
        bad.list()
    message = str(caught.value)
    assert "401" in message and str(where) in message
    assert "wrong-token-xyz" not in message and TOKEN not in message


def test_bad_job_is_bad_input_with_the_servers_message(client: AggregatorClient) -> None:
    with pytest.raises(BadInput, match="unknown job kind 'nope'"):
        client.submit("nope", {}, 10)
    with pytest.raises(BadInput, match="has no parameter task_ms"):
        client.submit("mean", {"task_ms": 5}, 10)


def test_unknown_job_is_bad_input(client: AggregatorClient) -> None:
    with pytest.raises(BadInput, match=r"^no job nosuch$"):
        client.status("nosuch")
    with pytest.raises(BadInput, match=r"^no job nosuch$"):
        client.result("nosuch")


def test_silent_aggregator_is_one_clear_failure() -> None:
    server = Served(Flask("closed"))
    server.stop()  # the port is free again: connection refused
    with (
        AggregatorClient(server.url, TOKEN, 2.0) as gone,
        pytest.raises(OperationFailed, match="is not answering: is it deployed"),
    ):
        gone.list()


# --------------------------------------------------------------------------- lookup


INVENTORY = """
all:
  vars: {{lepton_insecure_http: true}}
  children:
    aggregator:
      hosts:
{aggregators}
    workers:
      hosts:
        node1: {{ansible_host: 127.0.1.1}}
        node2: {{ansible_host: 127.0.1.2}}
"""


def write_inventory(tmp_path: Path, aggregators: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.format(aggregators=aggregators))
    return path


def test_aggregator_url_from_the_inventory(tmp_path: Path) -> None:
    plain = write_inventory(tmp_path, "        node2: {}")
    assert jobs.aggregator_url(plain) == "http://127.0.1.2:8700"
    ported = write_inventory(tmp_path, "        node1: {lepton_aggregator_port: 9100}")
    assert jobs.aggregator_url(ported) == "http://127.0.1.1:9100"


@pytest.mark.parametrize(
    ("aggregators", "message"),
    [
        ("        {}", "exactly one host in the 'aggregator' group, has 0"),
        ("        node1: {}\n        node2: {}", r"has 2 \(node1, node2\)"),
        ("        node1: {lepton_aggregator_port: web}", "must be a port number"),
    ],
)
def test_aggregator_url_bad_inventory(tmp_path: Path, aggregators: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        jobs.aggregator_url(write_inventory(tmp_path, aggregators))


def test_env_overrides_the_inventory_lookup(
    tmp_path: Path, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    install_token(state)
    monkeypatch.setenv(AGGREGATOR_URL_ENV, "http://127.0.0.1:1")

    def no_inventory() -> Path:
        raise AssertionError("the inventory must not be read")

    with jobs.connect(state, no_inventory) as made:
        assert made.base_url == "http://127.0.0.1:1"
        assert made.token_file == token_path(state)
    with pytest.raises(BadInput, match="no service token"):
        jobs.connect(tmp_path / "elsewhere", no_inventory)


# --------------------------------------------------------------------------- options


def test_job_params_map_the_kinds_options() -> None:
    assert jobs.job_params("mean", {"task_size": 1000, "seed": 7, "task_ms": None}) == {
        "task_size": 1000,
        "seed": 7,
    }
    assert jobs.job_params("sleep", {"task_ms": 5.0}) == {"task_ms": 5.0}
    assert jobs.job_params("pi", {}) == {}


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("mean", {"task_ms": 5.0}, "job kind mean does not take --task-ms"),
        ("sleep", {"seed": 1, "task_size": 3}, "does not take --seed, --task-size"),
        ("mean", {"task_size": 0}, "--task-size must be 1 or more"),
        ("nope", {}, "unknown job kind 'nope'"),
    ],
)
def test_job_params_bad_input(kind: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        jobs.job_params(kind, options)


# --------------------------------------------------------------------------- the CLI


def install_token(state: Path) -> None:
    path = token_path(state)
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_text(TOKEN + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


@pytest.fixture
def cli_state(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    install_token(state)
    monkeypatch.setenv(AGGREGATOR_URL_ENV, url)
    return state


def test_cli_run_status_result_list(cli_state: Path) -> None:
    run = run_cli(
        "job", "run", "--kind", "mean", "--tasks", "200", "--task-size", "100", "--seed", "7",
        "--json", state_dir=cli_state,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert list(data) == OUTCOME_KEYS
    assert_exact_mean(data["result"])
    job_id = data["job_id"]
    status = run_cli("job", "status", job_id, "--json", state_dir=cli_state)
    assert json.loads(status.stdout)["progress"]["tasks_done"] == 200
    result = run_cli("job", "result", job_id, "--json", state_dir=cli_state)
    assert json.loads(result.stdout)["result"] == data["result"]
    watch = run_cli("job", "watch", job_id, state_dir=cli_state)
    assert watch.returncode == 0 and "count" in watch.stdout and "node2" in watch.stdout
    listed = run_cli("job", "list", "--json", state_dir=cli_state)
    assert [job["job_id"] for job in json.loads(listed.stdout)["jobs"]] == [job_id]
    for output in (run, status, result, watch, listed):
        assert TOKEN not in output.stdout + output.stderr


def test_cli_bad_input_is_one_line(cli_state: Path) -> None:
    wrong = run_cli(
        "job", "run", "--kind", "mean", "--tasks", "10", "--task-ms", "5", state_dir=cli_state
    )
    assert wrong.returncode == 2
    assert "job kind mean does not take --task-ms" in one_error_line(wrong)
    missing = run_cli("job", "status", "nosuch", state_dir=cli_state)
    assert missing.returncode == 2
    assert one_error_line(missing).endswith("no job nosuch")


def test_cli_failed_job_exits_1_with_its_reason(
    tmp_path: Path,
    token_file: Path,
    make_worker: Callable[..., Worker],
    serve: Callable[[Flask], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers = [make_worker(die_after=0), make_worker(die_after=0)]
    monkeypatch.setenv(
        AGGREGATOR_URL_ENV, serve(aggregator(token_file, tmp_path / "j.db", workers, [1, 1]))
    )
    state = tmp_path / "state"
    install_token(state)
    failed = run_cli("job", "run", "--kind", "mean", "--tasks", "20", state_dir=state)
    assert failed.returncode == 1
    assert "failed: every worker was lost" in one_error_line(failed)


def test_ctrl_c_detaches_and_the_job_goes_on(
    cli_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "follow", interrupted)
    with pytest.raises(SystemExit) as exited:
        cli_app.main(
            ["job", "run", "--kind", "sleep", "--tasks", "4", "--task-ms", "1",
             "--state-dir", str(cli_state)]
        )  # fmt: skip
    assert exited.value.code == 0
    err = capsys.readouterr().err
    assert "detached: job " in err and "goes on" in err and "lepton-ops job watch " in err
    job_id = err.split("lepton-ops job watch ")[1].split("'")[0]
    url = os.environ[AGGREGATOR_URL_ENV]
    monkeypatch.undo()  # the real follow again
    with AggregatorClient(url, TOKEN) as made:
        assert jobs.follow(made, job_id, poll_s=0.05)["status"] == "succeeded"


def test_cli_cancel_stops_a_running_job(cli_state: Path) -> None:
    url = os.environ[AGGREGATOR_URL_ENV]
    with AggregatorClient(url, TOKEN) as made:
        job_id = made.submit("sleep", {"task_ms": 10_000.0}, 6, shard_size=1)
    cancelled = run_cli("job", "cancel", job_id, "--json", state_dir=cli_state)
    assert cancelled.returncode == 0, cancelled.stderr
    data = json.loads(cancelled.stdout)
    assert data["job_id"] == job_id and data["status"] == "failed"
    assert data["reason"] == "cancelled"
    again = run_cli("job", "cancel", job_id, state_dir=cli_state)
    assert again.returncode == 1
    assert f"job {job_id} has already finished: it failed (cancelled)" in one_error_line(again)
    missing = run_cli("job", "cancel", "nosuch", state_dir=cli_state)
    assert missing.returncode == 2 and one_error_line(missing).endswith("no job nosuch")
    for output in (cancelled, again, missing):
        assert TOKEN not in output.stdout + output.stderr


# --------------------------------------------------------------------------- restarts


RESTARTED_RESULT = {"count": 3, "mean": 0.5}


class RestartingAggregator:
    """A fake aggregator on 127.0.0.1 that goes away (its port closed, as after a kill -9)
    at its ``outage_at``-th status request, comes back on the same port ``down_s`` later,
    and then reports the job succeeded."""

    def __init__(self, outage_at: int = 3, down_s: float = 2.0) -> None:
        self.outage_at = outage_at
        self.down_s = down_s
        self.polls = 0
        self.came_back = threading.Event()
        app = Flask("restarting")

        @app.post("/v1/jobs")
        def submit() -> tuple[Any, int]:
            return {"job_id": "job-r", "status": "running"}, 202

        @app.get("/v1/jobs/<job_id>")
        def status(job_id: str) -> Any:
            self.polls += 1
            if self.polls == self.outage_at:
                threading.Thread(target=self._restart, daemon=True).start()
            done = self.came_back.is_set()
            return {
                "job_id": job_id,
                "kind": "mean",
                "status": "succeeded" if done else "running",
                "progress": {"shards_done": 4 if done else 1, "shards_total": 4},
                "per_node": {"node1": {"tasks": 3, "shards": 4, "seconds": 0.1}},
                "makespan_s": 1.5 if done else None,
                "reason": None,
            }

        @app.get("/v1/jobs/<job_id>/result")
        def result(job_id: str) -> Any:
            return {
                "job_id": job_id,
                "kind": "mean",
                "status": "succeeded",
                "result": RESTARTED_RESULT,
            }

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _restart(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        time.sleep(self.down_s)
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.came_back.set()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("command", [["run", "--kind", "mean", "--tasks", "3"], ["watch", "job-r"]])
def test_job_run_and_watch_outlive_an_aggregator_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    fake = RestartingAggregator()
    try:
        monkeypatch.setenv(AGGREGATOR_URL_ENV, fake.url)
        state = tmp_path / "state"
        install_token(state)
        began = time.monotonic()
        done = run_cli("job", *command, "--json", state_dir=state)
        assert done.returncode == 0, done.stderr
        assert fake.came_back.is_set() and time.monotonic() - began >= fake.down_s
        data = json.loads(done.stdout)
        assert data["status"] == "succeeded" and data["result"] == RESTARTED_RESULT
        assert "is not answering" in done.stderr and "trying again for up to" in done.stderr
        assert "the aggregator answers again" in done.stderr
    finally:
        fake.stop()


def test_following_gives_up_after_the_reconnect_bound() -> None:
    server = Served(Flask("closed"))
    server.stop()  # nothing listens there any more
    now = [0.0]
    slept: list[float] = []
    retries: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with (
        AggregatorClient(server.url, TOKEN, 2.0) as gone,
        pytest.raises(OperationFailed, match="still not answering after 60 s of retrying"),
    ):
        jobs.follow(
            gone,
            "j",
            sleep=sleep,
            clock=lambda: now[0],
            on_retry=lambda error, left: retries.append(left),
        )
    assert jobs.RECONNECT_S == 60.0
    assert sum(slept) == pytest.approx(60.0)
    assert slept[:4] == [0.25, 0.5, 1.0, 2.0] and max(slept) == 2.0
    assert retries[0] == 60.0 and len(retries) == len(slept)


def test_the_module_path_still_reports_a_lost_aggregator_at_once() -> None:
    server = Served(Flask("closed"))
    server.stop()
    began = time.monotonic()
    with (
        AggregatorClient(server.url, TOKEN, 2.0) as gone,
        pytest.raises(OperationFailed, match="is not answering") as caught,
    ):
        wait_for_outcome(gone, "j", timeout_s=30)
    assert type(caught.value) is OperationFailed  # error_kind stays OperationFailed
    assert time.monotonic() - began < 5
