"""``lepton-ops job run --kind predict --model M --data D``: files checked on the controller,
uploaded once, scored by a real aggregator and real workers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_support import one_error_line, run_cli
from flask import Flask
from service_support import TOKEN, Worker, aggregator
from sklearn.linear_model import LogisticRegression
from werkzeug.serving import BaseWSGIServer, make_server

from lepton_ops.credentials.tokens import token_path
from lepton_ops.errors import BadInput
from lepton_ops.jobs import client as jobs
from lepton_ops.jobs.client import AGGREGATOR_URL_ENV, AggregatorClient
from lepton_ops.jobs.model_files import save_model

OUTCOME_KEYS = ["job_id", "status", "kind", "result", "per_node", "makespan_s"]
RNG = np.random.default_rng(8)
X = RNG.normal(size=(200, 3))
MODEL = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rows = RNG.normal(size=(150, 3))
    made = {
        "model": save_model(MODEL, tmp_path / "model.skops"),
        "npy": tmp_path / "rows.npy",
        "csv": tmp_path / "rows.csv",
        "narrow": tmp_path / "narrow.csv",
        "pickle": tmp_path / "model.pkl",
    }
    np.save(made["npy"], rows)
    made["csv"].write_text("f1,f2,f3\n" + "\n".join(",".join(map(repr, r)) for r in rows.tolist()))
    made["narrow"].write_text("1,2\n3,4\n")
    made["pickle"].write_bytes(pickle.dumps(MODEL))
    return made


@pytest.fixture
def served(
    token_file: Path,
    tmp_path: Path,
    make_worker: Callable[..., Worker],
    apps: list[Flask],
) -> Iterator[str]:
    app = aggregator(token_file, tmp_path / "jobs.db", [make_worker(), make_worker()], [1, 1])
    apps.append(app)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    where = tmp_path / "state"
    path = token_path(where)
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_text(TOKEN + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return where


def test_cli_runs_a_predict_job_from_csv_and_npy(
    files: dict[str, Path], served: str, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AGGREGATOR_URL_ENV, served)
    expected = MODEL.predict(np.load(files["npy"])).tolist()
    results = []
    for data in ("csv", "npy"):
        run = run_cli(
            "job", "run", "--kind", "predict", "--model", str(files["model"]),
            "--data", str(files[data]), "--shard-size", "16", "--json", state_dir=state,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outcome = json.loads(run.stdout)
        assert list(outcome) == OUTCOME_KEYS and outcome["kind"] == "predict"
        assert outcome["result"]["rows"] == 150
        assert outcome["result"]["predictions"] == expected
        assert sum(entry["tasks"] for entry in outcome["per_node"].values()) == 150
        assert TOKEN not in run.stdout + run.stderr
        results.append(outcome["result"])
    assert results[0] == results[1]  # the same rows, as CSV text or as .npy
    table = run_cli(
        "job", "run", "-k", "predict", "--model", str(files["model"]), "--data",
        str(files["npy"]), state_dir=state,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "class_counts" in table.stdout and "(150 values)" in table.stdout


def test_the_client_uploads_an_artifact_once(files: dict[str, Path], served: str) -> None:
    data = files["model"].read_bytes()
    with AggregatorClient(served, TOKEN) as client:
        digest = client.upload_artifact(data)
        assert client.has_artifact(digest)
        assert client.upload_artifact(data) == digest
        assert client.upload_artifacts({"model": data}) == {"model": digest}
        assert not client.has_artifact("0" * 64)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--kind", "mean", "--tasks", "5", "--model", "{model}"),
         "job kind mean does not take --model (its options: --task-size, --seed)"),
        (("--kind", "predict", "--seed", "3", "--model", "{model}", "--data", "{csv}"),
         "job kind predict does not take --seed (its options: --model, --data)"),
        (("--kind", "predict", "--model", "{model}"), "job kind predict needs --data"),
        (("--kind", "predict", "--model", "{tmp}/nope.skops", "--data", "{csv}"),
         "--model {tmp}/nope.skops does not exist"),
        (("--kind", "predict", "--model", "{pickle}", "--data", "{csv}"),
         "--model {pickle}: must be a .skops file"),
        (("--kind", "predict", "--model", "{npy}", "--data", "{csv}"),
         "--model {npy}: must be a .skops file"),
        (("--kind", "predict", "--model", "{model}", "--data", "{model}"),
         "--data {model}: must be a .npy or .csv file"),
        (("--kind", "predict", "--model", "{model}", "--data", "{narrow}"),
         "the data has 2 columns; the model (LogisticRegression) expects 3 features"),
        (("--kind", "predict", "--model", "{model}", "--data", "{csv}", "--tasks", "10"),
         "tasks is 10, the data has 150 rows"),
        (("--kind", "mean"), "job kind mean needs --tasks"),
    ],
)  # fmt: skip
def test_cli_bad_predict_input_is_one_line(
    files: dict[str, Path], state: Path, tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    paths = {name: str(path) for name, path in files.items()} | {"tmp": str(tmp_path)}
    result = run_cli("job", "run", *(arg.format(**paths) for arg in args), state_dir=state)
    assert result.returncode == 2, result.stderr
    assert needle.format(**paths) in one_error_line(result)


def test_unsafe_model_file_is_refused_before_anything_is_sent(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    import skops.io as sio

    from lepton_ops.jobs.kinds.sleep import SleepKind

    unsafe = tmp_path / "unsafe.skops"
    unsafe.write_bytes(sio.dumps(SleepKind()))
    with pytest.raises(BadInput, match=r"--model .*unsafe.skops: .*lepton_ops.jobs.kinds.sleep"):
        jobs.job_inputs("predict", {}, {"model": unsafe, "data": files["csv"]}, None)
    inputs = jobs.job_inputs("predict", {}, {"model": files["model"], "data": files["csv"]}, None)
    assert inputs.tasks == 150 and inputs.params == {}
    assert inputs.artifacts == {
        "model": files["model"].read_bytes(),
        "data": files["csv"].read_bytes(),
    }
    plain = jobs.job_inputs("mean", {"seed": 2}, {"model": None, "data": None}, 7)
    assert (plain.params, plain.tasks, plain.artifacts) == ({"seed": 2}, 7, {})


def test_oversized_artifact_file_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.csv"
    big.write_text("1,2\n" * 1000)
    monkeypatch.setattr(jobs, "MAX_ARTIFACT_BYTES", 1024 * 1024 // 2**10)
    with pytest.raises(BadInput, match=r"--data .*big.csv is 0.0 MiB: artifacts are limited to 0"):
        jobs.read_artifact_file(jobs.get_kind("predict"), "data", big)
