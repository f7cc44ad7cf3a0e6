"""Job artifacts over HTTP: the worker's and the aggregator's routes, and a predict job
run end to end through a real aggregator and two real workers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from flask import Flask
from service_support import AUTH, TOKEN, Worker, aggregator, assert_openapi_covers
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import FunctionTransformer

from lepton_ops.jobs.kinds import get_kind
from lepton_ops.jobs.model_files import model_bytes
from lepton_ops.services.aggregator import create_aggregator_app, dispatcher_of
from lepton_ops.services.artifacts import ArtifactCache
from lepton_ops.services.bodies import DEFAULT_MAX_CONTENT_LENGTH
from lepton_ops.services.job_store import SCHEMA_VERSION, JobStore
from lepton_ops.services.worker import create_worker_app

OCTET = {**AUTH, "Content-Type": "application/octet-stream"}
RNG = np.random.default_rng(21)
X = RNG.normal(size=(300, 5))
LABELS = np.where(X[:, 0] + X[:, 1] > 0.5, "up", "down")
CLASSIFIER = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, LABELS)
MODEL = model_bytes(CLASSIFIER, metadata={"features": ["a", "b", "c", "d", "e"]})


def npy(array: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


DATA = npy(X)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(app: Flask, data: bytes, digest: str | None = None, **query: str) -> Any:
    digest = digest or sha(data)
    return app.test_client().put(
        f"/v1/artifacts/{digest}", data=data, headers=OCTET, query_string=query
    )


# --------------------------------------------------------------------------- the worker


@pytest.fixture
def worker(token_file: Path) -> Flask:
    return create_worker_app({"token_file": str(token_file), "max_artifact_bytes": 256 * 1024})


def shard(**extra: Any) -> dict[str, Any]:
    return {
        "job_id": "job1",
        "shard_id": "s0001",
        "kind": "predict",
        "params": {"tasks": 300},
        "start": 10,
        "stop": 40,
        "artifacts": {"model": sha(MODEL), "data": sha(DATA)},
        **extra,
    }


def test_worker_asks_for_missing_artifacts_then_runs_the_shard(worker: Flask) -> None:
    client = worker.test_client()
    response = client.post("/v1/shards/run", json=shard(), headers=AUTH)
    assert response.status_code == 409
    assert response.json["missing"] == {"model": sha(MODEL), "data": sha(DATA)}
    assert "PUT /v1/artifacts" in response.json["error"]
    assert put(worker, MODEL, kind="predict", name="model").status_code == 201
    response = client.post("/v1/shards/run", json=shard(), headers=AUTH)
    assert response.status_code == 409 and response.json["missing"] == {"data": sha(DATA)}
    created = put(worker, DATA, kind="predict", name="data")
    assert created.status_code == 201
    assert created.json == {"sha256": sha(DATA), "size": len(DATA), "created": True}
    again = put(worker, DATA, kind="predict", name="data")
    assert again.status_code == 200 and again.json["created"] is False
    response = client.post("/v1/shards/run", json=shard(), headers=AUTH)
    assert response.status_code == 200, response.json
    kind = get_kind("predict")
    loaded = {
        "model": kind.load_artifact("model", MODEL),
        "data": kind.load_artifact("data", DATA),
    }
    assert response.json["partial"] == kind.map({"tasks": 300}, 10, 40, artifacts=loaded)


BAD_ARTIFACTS = [
    ({"kind": "predict", "name": "model"}, MODEL, sha(b"other"), 400, "not .* as the URL"),
    ({"kind": "predict", "name": "model"}, MODEL, "abc", 400, "SHA-256 digest"),
    ({"kind": "predict", "name": "model"}, MODEL, sha(MODEL).upper(), 400, "SHA-256 digest"),
    ({"kind": "predict", "name": "weights"}, MODEL, None, 400, "no artifact 'weights'"),
    ({"kind": "predict"}, MODEL, None, 400, "name is required"),
    ({"kind": "nope", "name": "model"}, MODEL, None, 400, "unknown job kind"),
    ({"kind": "predict", "name": "model"}, DATA, None, 400, "not a skops model file"),
    ({"kind": "predict", "name": "data"}, MODEL, None, 400, "neither a .npy"),
    ({"kind": "predict", "name": "model"}, b"", None, 400, "is empty"),
    ({"kind": "predict", "name": "data"}, b"1," * 200_000, None, 413, "larger than 262144"),
]


# Named by the message: the model's bytes (and so their digests) differ from one test
# process to the next, and parallel test workers must collect the same test ids.
@pytest.mark.parametrize(
    ("query", "body", "digest", "status", "message"),
    BAD_ARTIFACTS,
    ids=[case[-1] for case in BAD_ARTIFACTS],
)
def test_worker_refuses_bad_artifacts(
    worker: Flask,
    query: dict[str, str],
    body: bytes,
    digest: str | None,
    status: int,
    message: str,
) -> None:
    response = put(worker, body, digest, **query)
    assert response.status_code == status, response.json
    assert re.search(message, response.json["error"]), response.json["error"]


def test_worker_refuses_an_unsafe_model_in_one_line(worker: Flask) -> None:
    import os

    import skops.io as sio

    unsafe = sio.dumps(FunctionTransformer(os.system))
    response = put(worker, unsafe, kind="predict", name="model")
    assert response.status_code == 400
    assert "not allowed" in response.json["error"] and "system" in response.json["error"]


def test_worker_artifacts_need_the_token_and_raw_bytes(worker: Flask) -> None:
    client = worker.test_client()
    url = f"/v1/artifacts/{sha(MODEL)}?kind=predict&name=model"
    assert client.put(url, data=MODEL).status_code == 401
    wrong = {"Authorization": "Bearer nope", "Content-Type": "application/octet-stream"}
    assert client.put(url, data=MODEL, headers=wrong).status_code == 401
    response = client.put(url, json={"x": 1}, headers=AUTH)
    assert response.status_code == 415 and "application/octet-stream" in response.json["error"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"artifacts": {"model": "nope"}}, "artifacts.model must be a SHA-256"),
        ({"artifacts": ["x"]}, "artifacts must be a JSON object"),
        ({"artifacts": {"bogus": sha(b"x")}}, "takes no artifact bogus"),
        ({"artifacts": {"model": sha(MODEL)}}, "needs --data"),
        ({"kind": "mean", "params": {"tasks": 300}}, "takes no artifact data, model"),
    ],
)
def test_worker_shard_artifact_fields_are_checked(
    worker: Flask, extra: dict[str, Any], message: str
) -> None:
    response = worker.test_client().post("/v1/shards/run", json=shard(**extra), headers=AUTH)
    assert response.status_code == 400
    assert message in response.json["error"]


def test_worker_openapi_covers_the_artifact_route(worker: Flask) -> None:
    paths = assert_openapi_covers(worker)
    assert "409" in paths["/v1/shards/run"]["post"]["responses"]
    assert "artifacts" in str(paths["/v1/shards/run"]["post"]["requestBody"])


def test_oversized_chunked_upload_is_413_without_content_length(token_file: Path) -> None:
    served = Worker(create_worker_app({"token_file": str(token_file), "max_artifact_bytes": 4096}))
    try:

        def chunks() -> Iterator[bytes]:
            for _ in range(64):
                yield b"1," * 512

        response = httpx.put(
            f"{served.url}/v1/artifacts/{sha(b'x')}",
            params={"kind": "predict", "name": "data"},
            content=chunks(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": OCTET["Content-Type"]},
            timeout=10,
        )
        assert response.status_code == 413
        assert "larger than 4096" in response.json()["error"]
    finally:
        served.stop()


def test_the_cache_is_bounded_least_recently_used_out() -> None:
    cache = ArtifactCache(max_bytes=100)
    cache.put("k", "a", "1", "A", 40)
    cache.put("k", "b", "2", "B", 40)
    assert cache.get("k", "a", "1") == "A"  # a is now the most recent
    cache.put("k", "c", "3", np.zeros(5), 40)  # 40 bytes: evicts b
    assert cache.get("k", "b", "2") is None and cache.get("k", "a", "1") == "A"
    assert cache.used_bytes == 80
    cache.put("k", "d", "4", np.zeros(10), 1)  # costs its 80 bytes of values
    assert cache.used_bytes == 80 and cache.get("k", "a", "1") is None
    with pytest.raises(Exception, match="more than this worker's artifact cache"):
        cache.put("k", "e", "5", b"", 101)


# --------------------------------------------------------------------------- the aggregator


@pytest.fixture
def idle(token_file: Path, tmp_path: Path, apps: list[Flask]) -> Flask:
    app = create_aggregator_app(
        {
            "token_file": str(token_file),
            "db_path": str(tmp_path / "jobs.db"),
            "workers": [{"name": "n1", "url": "http://127.0.0.1:9", "weight": 1}],
            "resume": False,
            "max_artifact_bytes": 512 * 1024,
        }
    )
    apps.append(app)
    return app


def predict_job(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "predict",
        "tasks": 300,
        "artifacts": {"model": sha(MODEL), "data": sha(DATA)},
        **extra,
    }


def test_aggregator_stores_artifacts_once_by_content(idle: Flask, tmp_path: Path) -> None:
    client = idle.test_client()
    assert client.get(f"/v1/artifacts/{sha(MODEL)}", headers=AUTH).status_code == 404
    first = put(idle, MODEL)
    assert first.status_code == 201 and first.json["created"] is True
    second = put(idle, MODEL)
    assert second.status_code == 200 and second.json["created"] is False
    info = client.get(f"/v1/artifacts/{sha(MODEL)}", headers=AUTH)
    assert info.status_code == 200 and info.json["size"] == len(MODEL)
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        assert db.execute("SELECT COUNT(*), SUM(size) FROM artifacts").fetchone() == (
            1,
            len(MODEL),
        )


def test_artifacts_may_be_larger_than_the_json_body_limit(
    idle_app: Flask, token_file: Path
) -> None:
    big = npy(RNG.normal(size=(40_000, 5)))  # 1.6 MB, over the 1 MiB limit of JSON bodies
    assert len(big) > DEFAULT_MAX_CONTENT_LENGTH
    app = idle_app
    assert put(app, big).status_code == 201
    too_big = app.test_client().post(
        "/v1/jobs",
        data=b"{" + b" " * DEFAULT_MAX_CONTENT_LENGTH + b"}",
        headers={**AUTH, "Content-Type": "application/json"},
    )  # the JSON routes keep their own, smaller limit
    assert too_big.status_code == 413
    assert f"larger than {DEFAULT_MAX_CONTENT_LENGTH}" in too_big.json["error"]
    worker = create_worker_app({"token_file": str(token_file)})
    assert put(worker, big, kind="predict", name="data").status_code == 201


def test_a_version_1_store_gains_artifacts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        db.execute(
            "INSERT INTO jobs (id, kind, params, strategy, tasks, shards, status, created_at, "
            "plan) VALUES ('j1', 'pi', '{}', 'weighted', 1, 1, 'succeeded', 0, '{}')"
        )
        db.execute("PRAGMA user_version = 1")
    store = JobStore(path)
    assert store.schema_version == SCHEMA_VERSION == 3
    assert store.job("j1").artifacts == {}
    assert store.drains() == []
    assert store.put_artifact(sha(b"abc"), b"abc") and not store.put_artifact(sha(b"abc"), b"abc")
    assert store.artifact(sha(b"abc")) == b"abc" and store.artifact(sha(b"x")) is None
    store.close()


V1_SCHEMA = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, strategy TEXT NOT NULL,
    tasks INTEGER NOT NULL, shards INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT,
    created_at REAL NOT NULL, finished_at REAL, plan TEXT NOT NULL, queue_state TEXT,
    result TEXT
);
CREATE TABLE shard_results (
    job_id TEXT NOT NULL, shard_id TEXT NOT NULL, node TEXT NOT NULL, partial TEXT NOT NULL,
    seconds REAL NOT NULL, recorded_at REAL NOT NULL, PRIMARY KEY (job_id, shard_id)
);
"""


@pytest.mark.parametrize(
    ("body", "digest", "headers", "status", "message"),
    [
        (MODEL, sha(DATA), OCTET, 400, "as the URL says"),
        (MODEL, "x" * 64, OCTET, 400, "SHA-256 digest"),
        (MODEL, None, {}, 401, "bearer token"),
        (MODEL, None, {**AUTH, "Content-Type": "text/csv"}, 415, "octet-stream"),
        (b"0" * (512 * 1024 + 1), None, OCTET, 413, "larger than 524288"),
    ],
)
def test_aggregator_refuses_bad_uploads(
    idle: Flask,
    body: bytes,
    digest: str | None,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = idle.test_client().put(
        f"/v1/artifacts/{digest or sha(body)}", data=body, headers=headers
    )
    assert response.status_code == status
    assert message in response.json["error"]
    assert idle.test_client().get(f"/v1/artifacts/{sha(body)}", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (predict_job(), "is not on the aggregator: upload it first"),
        (predict_job(artifacts=None), "needs --model"),
        (predict_job(artifacts={"model": sha(MODEL)}), "needs --data"),
        (predict_job(tasks=299), "tasks is 299, the data has 300 rows"),
        (predict_job(artifacts={"model": sha(MODEL), "data": sha(MODEL)}), "neither a .npy"),
        (predict_job(artifacts={"model": "x", "data": sha(DATA)}), "artifacts.model must be"),
        ({"kind": "mean", "tasks": 3, "artifacts": {"data": sha(DATA)}}, "takes no artifact"),
    ],
)
def test_aggregator_checks_predict_jobs(idle: Flask, job: dict[str, Any], message: str) -> None:
    if "not on the aggregator" not in message:
        put(idle, MODEL)
        put(idle, DATA)
    response = idle.test_client().post("/v1/jobs", json=job, headers=AUTH)
    assert response.status_code == 400, response.json
    assert message in response.json["error"]


def test_aggregator_refuses_a_data_set_that_does_not_fit_the_model(idle: Flask) -> None:
    narrow = npy(X[:, :3])
    put(idle, MODEL)
    put(idle, narrow)
    job = predict_job(artifacts={"model": sha(MODEL), "data": sha(narrow)})
    response = idle.test_client().post("/v1/jobs", json=job, headers=AUTH)
    assert response.status_code == 400
    assert (
        "the data has 3 columns; the model (RandomForestClassifier) expects 5"
        in (response.json["error"])
    )


def test_aggregator_openapi_covers_the_artifact_routes(idle: Flask) -> None:
    paths = assert_openapi_covers(idle)
    assert {"put", "get"} <= set(paths["/v1/artifacts/{digest}"])
    assert "artifacts" in str(paths["/v1/jobs"]["post"]["requestBody"])


# --------------------------------------------------------------------------- end to end


def artifact_puts(worker: Worker) -> int:
    """How many artifacts the worker accepted (from its own metrics)."""
    text = worker.app.test_client().get("/metrics", headers=AUTH).get_data(as_text=True)
    pattern = r'lepton_http_requests_total\{endpoint="/v1/artifacts/<digest>",method="PUT",service="worker",status="201"\} (\S+)'  # noqa: E501
    return sum(int(float(count)) for count in re.findall(pattern, text))


@pytest.mark.parametrize("estimator", ["classifier", "regressor"])
def test_predict_job_on_two_real_workers_matches_one_process(
    estimator: str,
    token_file: Path,
    tmp_path: Path,
    make_worker: Callable[..., Worker],
    apps: list[Flask],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    model = CLASSIFIER if estimator == "classifier" else LinearRegression().fit(X, X[:, 0])
    model_file = model_bytes(model)
    rows = RNG.normal(size=(1000, 5))
    data = npy(rows)
    workers = [make_worker(), make_worker()]
    app = aggregator(token_file, tmp_path / "jobs.db", workers, weights=[1, 2])
    apps.append(app)
    client = app.test_client()
    assert put(app, model_file).status_code == 201
    assert put(app, data).status_code == 201
    job = {
        "kind": "predict",
        "tasks": 1000,
        "shard_size": 37,
        "artifacts": {"model": sha(model_file), "data": sha(data)},
    }
    response = client.post("/v1/jobs", json=job, headers=AUTH)
    assert response.status_code == 202, response.json
    job_id = response.json["job_id"]
    assert dispatcher_of(app).wait(job_id, 60)
    status = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json
    assert status["status"] == "succeeded", status
    assert status["artifacts"] == job["artifacts"]
    assert {node: entry["tasks"] > 0 for node, entry in status["per_node"].items()} == {
        "node1": True,
        "node2": True,
    }
    result = client.get(f"/v1/jobs/{job_id}/result", headers=AUTH).json["result"]
    expected = model.predict(rows)
    assert result["rows"] == 1000
    if estimator == "classifier":
        assert result["predictions"] == expected.tolist()
        assert result["class_counts"] == {
            label: int((expected == label).sum()) for label in ("down", "up")
        }
        assert result["mean_proba"]["up"] == pytest.approx(
            model.predict_proba(rows)[:, 1].mean(), rel=1e-12
        )
    else:
        np.testing.assert_allclose(result["predictions"], expected, rtol=1e-12)
        assert result["mean"] == pytest.approx(expected.mean(), rel=1e-12)
        assert (result["min"], result["max"]) == (expected.min(), expected.max())
    # Each worker got each artifact once, not once per shard (28 shards).
    assert [artifact_puts(worker) for worker in workers] == [2, 2]
    assert status["shards"] == 28
    assert TOKEN not in caplog.text
