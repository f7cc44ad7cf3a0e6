"""Credentials per role: the controller's token, the aggregator's towards the workers, the
read-only scrape token; a worker's credentials cannot act on the aggregator; a rotation
rolls new tokens out while a job runs, without one refused request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from service_support import Worker

from lepton_ops.credentials.tokens import (
    RELOAD_S,
    TokenFiles,
    ensure_tokens,
    load_scrape_token,
    read_token_file,
    read_tokens,
    rotation_steps,
)
from lepton_ops.deploy.deploy import deploy
from lepton_ops.errors import BadInput
from lepton_ops.jobs import client as jobs
from lepton_ops.jobs.client import AggregatorClient
from lepton_ops.services.aggregator import create_aggregator_app, dispatcher_of
from lepton_ops.services.auth import TokenFile
from lepton_ops.services.openapi import openapi_path
from lepton_ops.services.worker import create_worker_app

WRITE_METHODS = {"POST", "PUT", "DELETE", "PATCH"}


def bearer(path: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {read_token_file(path)}"}


def worker_app(files: TokenFiles, tmp_path: Path, index: int = 0) -> Flask:
    return create_worker_app(
        {
            "token_file": str(files.aggregator),
            "scrape_token_file": str(files.scrape),
            "cancel_dir": str(tmp_path / f"cancelled-{index}"),
        }
    )


def aggregator_app(files: TokenFiles, tmp_path: Path, workers: list[dict[str, Any]]) -> Flask:
    return create_aggregator_app(
        {
            "token_file": str(files.controller),
            "worker_token_file": str(files.aggregator),
            "scrape_token_file": str(files.scrape),
            "db_path": str(tmp_path / "jobs.db"),
            "workers": workers,
            "retry_delay_s": 0.01,
            "poll_s": 0.005,
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> TokenFiles:
    return ensure_tokens(tmp_path / "state")


def write_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & WRITE_METHODS):
            path = openapi_path(rule.rule).replace("{digest}", "0" * 64)
            routes.append((method, path.replace("{", "").replace("}", "")))
    return routes


def test_one_private_token_per_role(files: TokenFiles) -> None:
    tokens = [read_token_file(path) for path in files.all()]
    assert len(set(tokens)) == 3 and all(len(token) >= 40 for token in tokens)
    for path in files.all():
        assert path.stat().st_mode & 0o777 == 0o600
    assert files.controller.parent.stat().st_mode & 0o777 == 0o700


def test_a_workers_credentials_get_403_on_every_aggregator_write(
    files: TokenFiles, tmp_path: Path, apps: list[Flask]
) -> None:
    app = aggregator_app(files, tmp_path, [{"name": "n1", "url": "http://127.0.0.1:9"}])
    apps.append(app)
    client = app.test_client()
    routes = write_routes(app)
    assert {("POST", "/v1/jobs"), ("DELETE", "/v1/jobs/job_id")} <= set(routes)
    assert len(routes) >= 5  # jobs, job cancel, artifacts, drain, undrain
    for headers in (bearer(files.aggregator), bearer(files.scrape)):
        for method, path in routes:
            answer = client.open(path, method=method, json={}, headers=headers)
            assert answer.status_code == 403, (method, path, answer.json)
            assert "may not" in answer.json["error"]
        assert client.get("/v1/jobs", headers=bearer(files.aggregator)).status_code == 403
    assert client.get("/metrics", headers=bearer(files.scrape)).status_code == 200
    assert client.get("/readyz", headers=bearer(files.controller)).status_code == 200
    answer = client.post(
        "/v1/jobs", json={"kind": "pi", "tasks": 0}, headers=bearer(files.controller)
    )
    assert answer.status_code == 202


def test_a_worker_takes_the_aggregators_token_and_the_scrape_token_only_for_metrics(
    files: TokenFiles, tmp_path: Path
) -> None:
    client = worker_app(files, tmp_path).test_client()
    shard = {"job_id": "j", "shard_id": "s0", "kind": "pi", "params": {"tasks": 1},
             "start": 0, "stop": 1}  # fmt: skip
    for path, code in ((files.aggregator, 200), (files.scrape, 403), (files.controller, 401)):
        answer = client.post("/v1/shards/run", json=shard, headers=bearer(path))
        assert answer.status_code == code, path.name
    assert client.get("/metrics", headers=bearer(files.scrape)).status_code == 200
    assert client.get("/readyz", headers=bearer(files.scrape)).status_code == 403


def test_telemetry_pull_scrapes_with_the_scrape_token(files: TokenFiles, tmp_path: Path) -> None:
    assert load_scrape_token(tmp_path / "state") == read_token_file(files.scrape)


def test_the_rotation_rewrites_each_file_in_three_steps(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = {path: read_token_file(path) for path in ensure_tokens(state).all()}
    seen = []
    for step in rotation_steps(state):
        seen.append((step, {path: read_tokens(path) for path in old}))
    assert [step for step, _ in seen] == [
        "accept the new tokens",
        "send the new tokens",
        "drop the old tokens",
    ]
    for path, token in old.items():
        first, second, third = (tokens[path] for _, tokens in seen)
        new = third[0]
        assert first == (token, new) and second == (new, token) and third == (new,)
        assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(BadInput, match="drop --limit"):
        deploy(tmp_path / "nope.yml", state, limit="node1", rotate_tokens=True)


def test_a_rotation_while_a_job_runs_refuses_no_request(tmp_path: Path, apps: list[Flask]) -> None:
    state = tmp_path / "state"
    files = ensure_tokens(state)
    workers = [Worker(worker_app(files, tmp_path, i), delay_s=0.02) for i in range(2)]
    try:
        nodes = [{"name": f"node{i + 1}", "url": w.url, "weight": 1} for i, w in enumerate(workers)]
        app = aggregator_app(files, tmp_path, nodes)
        apps.append(app)
        served = Worker(app)  # the aggregator over HTTP (no hooks are used)
        refused: list[tuple[str, int]] = []

        def watch(response: httpx.Response) -> None:
            if response.status_code in (401, 403):
                refused.append((str(response.request.url), response.status_code))

        follower = AggregatorClient(
            served.url, read_token_file(files.controller), token_file=files.controller
        )
        follower._http.event_hooks["response"] = [watch]
        job_id = follower.submit("pi", {"task_size": 1000}, 400, "weighted", 2)
        for _ in rotation_steps(state):
            # "deploy": the services read the same files; wait until every one re-read them.
            deadline = time.monotonic() + 2 * RELOAD_S + 0.2
            while time.monotonic() < deadline:
                follower.status(job_id)
                time.sleep(0.05)
        status = jobs.follow(follower, job_id, poll_s=0.05)
        follower.close()
        assert status["status"] == "succeeded", status
        assert status["lost_nodes"] == []
        assert status["progress"]["shards_done"] == 200
        assert all(worker.served >= 1 for worker in workers)
        # The follower's old token was dropped by the third step: it read the file again
        # after one 401 and went on; no request of the job itself was refused.
        assert [code for _, code in refused] in ([], [401])
        for worker in workers:
            metrics = worker.app.test_client().get("/metrics", headers=bearer(files.scrape))
            text = metrics.get_data(as_text=True)
            assert 'status="401"' not in text and 'status="403"' not in text
        served.stop()
        dispatcher_of(app).shutdown(timeout=10)
    finally:
        for worker in workers:
            worker.stop()


def test_a_token_file_is_read_again_when_it_changes_and_kept_when_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("first-token-0123456789\n", encoding="utf-8")
    path.chmod(0o600)
    now = [100.0]
    monkeypatch.setattr("lepton_ops.services.auth.time.monotonic", lambda: now[0])
    token = TokenFile(path)
    path.write_text("first-token-0123456789\nsecond-token-0123456789\n", encoding="utf-8")
    assert token.tokens() == ("first-token-0123456789",)  # not looked at within RELOAD_S
    now[0] += RELOAD_S
    assert token.tokens() == ("first-token-0123456789", "second-token-0123456789")
    assert token.current() == "first-token-0123456789"
    path.write_text("a\nb\nc and more\n", encoding="utf-8")
    now[0] += RELOAD_S
    assert token.current() == "first-token-0123456789"  # a broken file: the tokens read before
    with pytest.raises(BadInput, match="one token without spaces"):
        read_tokens(path)
