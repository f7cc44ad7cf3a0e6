"""The worker service: POST /v1/shards/run validates everything and runs kind.map."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds import get_kind
from lepton_ops.services.worker import WorkerConfig, app_from_config_file, create_worker_app

TOKEN = "worker-token-abcdef0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def app(token_file: Path) -> Flask:
    return create_worker_app(WorkerConfig(token_file=token_file, speed=2.0))


GOOD: dict[str, Any] = {
    "job_id": "job1",
    "shard_id": "s0001",
    "kind": "mean",
    "params": {"tasks": 20, "task_size": 10, "seed": 7},
    "start": 5,
    "stop": 12,
}


def run(app: Flask, body: object) -> Any:
    return app.test_client().post("/v1/shards/run", json=body, headers=AUTH)


def test_runs_the_shard_like_kind_map(app: Flask) -> None:
    response = run(app, GOOD)
    assert response.status_code == 200
    data = response.json
    kind = get_kind("mean")
    assert data["job_id"] == "job1" and data["shard_id"] == "s0001"
    assert data["partial"] == kind.map(GOOD["params"], 5, 12)
    assert data["seconds"] >= 0
    metrics = app.test_client().get("/metrics", headers=AUTH).get_data(as_text=True)
    assert 'lepton_shards_done_total{kind="mean",service="worker"} 1.0' in metrics


def test_empty_shard_is_fine(app: Flask) -> None:
    response = run(app, {**GOOD, "start": 3, "stop": 3})
    assert response.status_code == 200
    assert response.json["partial"] == get_kind("mean").empty()


def test_speed_comes_from_the_config(token_file: Path) -> None:
    fast = create_worker_app({"token_file": str(token_file), "speed": 4.0})
    body = {**GOOD, "kind": "sleep", "params": {"tasks": 10, "task_ms": 40.0}, "start": 0}
    response = run(fast, {**body, "stop": 4})
    assert response.status_code == 200
    # 4 tasks * 40 ms at speed 4 is 40 ms, not 160 ms.
    assert 0.035 <= response.json["seconds"] < 0.15


BAD_BODIES: list[tuple[object, str]] = [
    ([], "JSON object"),
    ("text", "JSON object"),
    ({}, "job_id is required"),
    ({**GOOD, "job_id": 5}, "job_id must be a string"),
    ({**GOOD, "job_id": ""}, "job_id must be 1 to"),
    ({**GOOD, "job_id": "x" * 201}, "job_id must be 1 to"),
    ({**GOOD, "shard_id": ["s1"]}, "shard_id must be a string"),
    ({**GOOD, "kind": "nope"}, "unknown job kind"),
    ({**GOOD, "kind": None}, "kind is required"),
    ({**GOOD, "params": [1]}, "params must be a JSON object"),
    ({**GOOD, "params": {"tasks": "many"}}, "--tasks must be a whole number"),
    ({**GOOD, "params": {"tasks": 20, "bogus": 1}}, "no parameter bogus"),
    ({**GOOD, "start": -1}, "start must be at least 0"),
    ({**GOOD, "start": 1.5}, "start must be a whole number"),
    ({**GOOD, "start": True}, "start must be a whole number"),
    ({**GOOD, "stop": "12"}, "stop must be a whole number"),
    ({**GOOD, "start": 9, "stop": 4}, "must not be after stop"),
    ({**GOOD, "stop": 21}, "not inside the job's tasks"),
    ({**GOOD, "stop": 10**30}, "not inside the job's tasks"),
    ({**GOOD, "extra": 1}, "unknown field extra"),
    ({**GOOD, "params": {"tasks": 20, "task_size": 10**9}}, "at most"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_bodies_are_400_with_a_message(app: Flask, body: object, message: str) -> None:
    response = run(app, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.json["error"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"42",
        b"{",
        b'{"job_id": "a",}',
        b"\xff\xfe\x00",
        b'{"start": NaN}',
        b'{"start": Infinity}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 100 + b"1" + b"}" * 100,
    ],
)
def test_malformed_json_is_400_never_500(app: Flask, raw: bytes) -> None:
    response = app.test_client().post(
        "/v1/shards/run", data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]


def test_kinds_are_listed(app: Flask) -> None:
    response = app.test_client().get("/v1/kinds", headers=AUTH)
    assert response.status_code == 200
    assert {kind["name"] for kind in response.json["kinds"]} >= {"mean", "pi", "sleep"}


def test_config_is_checked(token_file: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="speed"):
        WorkerConfig(token_file=token_file, speed=0)
    with pytest.raises(BadInput, match="speed"):
        create_worker_app({"token_file": str(token_file), "speed": "fast"})
    with pytest.raises(BadInput, match="unknown worker setting token"):
        create_worker_app({"token_file": str(token_file), "token": TOKEN})
    with pytest.raises(BadInput, match="token_file"):
        create_worker_app({})
    config = tmp_path / "worker.yml"
    config.write_text(f"token_file: {token_file}\nspeed: 1.5\n", encoding="utf-8")
    assert app_from_config_file(config).test_client().get("/healthz").status_code == 200
    config.write_text(f"token_file: {token_file}\ntoken: {TOKEN}\n", encoding="utf-8")
    with pytest.raises(BadInput, match="holds a token"):
        app_from_config_file(config)
