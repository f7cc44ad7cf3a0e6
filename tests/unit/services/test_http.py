"""Shared service plumbing: token file, auth, JSON errors, health, metrics, OpenAPI, logs."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask
from service_support import assert_openapi_covers
from werkzeug.serving import make_server

from lepton_ops.credentials.tokens import read_token_file
from lepton_ops.errors import BadInput
from lepton_ops.services.auth import token_matches
from lepton_ops.services.metrics import process_rss_bytes
from lepton_ops.services.openapi import openapi_path
from lepton_ops.services.service_state import service_state
from lepton_ops.services.worker import create_worker_app

TOKEN = "s3cr3t-token-0123456789abcdef"


def write_token(path: Path, token: str = TOKEN, mode: int = 0o600) -> Path:
    path.write_text(token + "\n", encoding="utf-8")
    os.chmod(path, mode)
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return write_token(tmp_path / "token")


@pytest.fixture
def app(token_file: Path) -> Flask:
    return create_worker_app({"token_file": str(token_file), "max_content_length": 4096})


AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --------------------------------------------------------------------------- the token file


def test_token_file_is_read_and_stripped(token_file: Path) -> None:
    assert read_token_file(token_file) == TOKEN


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_token_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_token(tmp_path / "token", mode=mode)
    with pytest.raises(BadInput, match="chmod 600"):
        read_token_file(path)
    with pytest.raises(BadInput, match="group or others"):
        create_worker_app({"token_file": str(path)})


def test_token_file_missing_empty_or_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        read_token_file(tmp_path / "nope")
    with pytest.raises(BadInput, match="empty"):
        read_token_file(write_token(tmp_path / "empty", token="  "))
    with pytest.raises(BadInput, match="without spaces"):
        read_token_file(write_token(tmp_path / "two", token="a b"))
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(BadInput, match="not a regular file"):
        read_token_file(tmp_path / "dir")


def test_token_matches_is_strict() -> None:
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert token_matches(f"bearer {TOKEN}", TOKEN)
    assert not token_matches(None, TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches(TOKEN, TOKEN)
    assert not token_matches(f"Basic {TOKEN}", TOKEN)
    assert not token_matches(f"Bearer {TOKEN}x", TOKEN)
    assert not token_matches("Bearer \u00e9\u00e8", TOKEN)


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("path", ["/readyz", "/metrics", "/openapi.json", "/v1/kinds", "/nope"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"X-Token": TOKEN}],
)
def test_every_endpoint_but_healthz_needs_the_token(
    app: Flask, path: str, headers: dict[str, str]
) -> None:
    response = app.test_client().get(path, headers=headers)
    assert response.status_code == 401
    assert response.json is not None and "bearer token" in response.json["error"]
    assert TOKEN not in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_post_without_token_is_401_before_the_body_is_looked_at(app: Flask) -> None:
    response = app.test_client().post("/v1/shards/run", data=b"{not json")
    assert response.status_code == 401


def test_healthz_needs_no_token(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "service": "worker"}


def test_readyz_with_token(app: Flask) -> None:
    response = app.test_client().get("/readyz", headers=AUTH)
    assert response.status_code == 200
    assert response.json is not None and response.json["status"] == "ready"


def test_readyz_reports_failed_checks(app: Flask) -> None:
    def broken() -> str | None:
        raise RuntimeError("disk gone")

    service_state(app).readiness.extend([lambda: "store unreachable", broken])
    response = app.test_client().get("/readyz", headers=AUTH)
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["reasons"] == [
        "store unreachable",
        "readiness check failed: RuntimeError",
    ]


# --------------------------------------------------------------------------- errors


def test_unknown_path_and_wrong_method_are_json(app: Flask) -> None:
    client = app.test_client()
    missing = client.get("/v1/nothing", headers=AUTH)
    assert missing.status_code == 404 and missing.json is not None and missing.json["error"]
    wrong = client.get("/v1/shards/run", headers=AUTH)
    assert wrong.status_code == 405 and wrong.json is not None
    assert "POST" in wrong.headers["Allow"]


def test_body_over_the_limit_is_413_json(app: Flask) -> None:
    response = app.test_client().post(
        "/v1/shards/run",
        data=b'{"pad": "' + b"x" * 5000 + b'"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json is not None and "4096 bytes" in response.json["error"]


def test_not_json_is_415(app: Flask) -> None:
    response = app.test_client().post(
        "/v1/shards/run", data="a=1", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json is not None and "JSON" in response.json["error"]


def test_unexpected_exception_is_500_without_traceback(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("internal detail: /secret/path")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom", headers=AUTH)
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "/secret/path" not in body
    assert response.json == {"error": "internal error: see the service log", "status": 500}
    assert "RuntimeError" in caplog.text  # the traceback is logged instead


# --------------------------------------------------------------------------- metrics


def test_metrics_count_requests_latency_errors_and_rss(app: Flask) -> None:
    client = app.test_client()
    client.get("/healthz")
    client.get("/readyz")  # 401
    client.get("/readyz", headers=AUTH)
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert (
        'lepton_http_requests_total{endpoint="/healthz",method="GET",service="worker",'
        'status="200"} 1.0' in text
    )
    assert (
        'lepton_http_requests_total{endpoint="/readyz",method="GET",service="worker",'
        'status="401"} 1.0' in text
    )
    assert 'lepton_http_errors_total{class="4xx",endpoint="/readyz",service="worker"} 1.0' in text
    assert "lepton_http_request_seconds_bucket{" in text
    assert 'lepton_process_resident_memory_bytes{service="worker"}' in text
    assert "lepton_shards_done_total" in text or "lepton_shards_done" in text
    assert process_rss_bytes() > 1_000_000


def test_metrics_registry_is_per_app(token_file: Path) -> None:
    one = create_worker_app({"token_file": str(token_file)})
    two = create_worker_app({"token_file": str(token_file)})
    one.test_client().get("/healthz")
    text = two.test_client().get("/metrics", headers=AUTH).get_data(as_text=True)
    assert 'endpoint="/healthz"' not in text


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_path_conversion() -> None:
    assert openapi_path("/v1/jobs/<job_id>") == "/v1/jobs/{job_id}"
    assert openapi_path("/v1/x/<int:n>/y") == "/v1/x/{n}/y"


def test_openapi_documents_every_worker_rule(app: Flask) -> None:
    assert_openapi_covers(app, AUTH)


# --------------------------------------------------------------------------- logs


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_never_reaches_the_logs(
    served: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with httpx.Client(base_url=served, headers=AUTH, timeout=5) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.post("/v1/shards/run", content=b"{bad").status_code == 415
        assert client.post("/v1/shards/run", json={"kind": 1}).status_code == 400
        run = {"job_id": "j", "shard_id": "s0", "kind": "pi", "params": {"tasks": 2}}
        assert client.post("/v1/shards/run", json={**run, "start": 0, "stop": 2}).is_success
        assert client.get("/nope").status_code == 404
    with httpx.Client(base_url=served, timeout=5) as client:
        assert client.get("/readyz", headers={"Authorization": "Bearer nope"}).status_code == 401
    captured = capfd.readouterr()
    assert "/v1/shards/run" in caplog.text + captured.err  # the request log did run
    for text in (caplog.text, captured.out, captured.err):
        assert TOKEN not in text
        assert "Authorization" not in text
