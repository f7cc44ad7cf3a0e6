"""Fixtures shared by the unit tests that run real services (see ``service_support``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from service_support import TOKEN, Worker

from lepton_ops.services.aggregator import create_aggregator_app, dispatcher_of
from lepton_ops.services.worker import create_worker_app


@pytest.fixture(autouse=True)
def own_lab_claims(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit tests' labs claim their addresses apart from a real lab on the machine (the
    integration tests' session lab holds 127.0.1.1-5 while unit tests run)."""
    monkeypatch.setenv("LEPTON_OPS_LAB_CLAIMS_DIR", str(tmp_path_factory.mktemp("claims")))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def make_worker(token_file: Path, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def make(**kwargs: Any) -> Worker:
        # Each worker its own cancel directory (a real worker shares one between its
        # processes; tests must not see each other's cancels).
        cancel_dir = tmp_path / f"cancelled-{len(workers)}"
        config = {"token_file": str(token_file), "cancel_dir": str(cancel_dir)}
        worker = Worker(create_worker_app(config), **kwargs)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        if not worker.dead:
            worker.stop()


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        dispatcher_of(app).shutdown(timeout=10)


@pytest.fixture
def idle_app(token_file: Path, tmp_path: Path, apps: list[Flask]) -> Flask:
    """An aggregator whose one worker is on a port nothing listens on: jobs are accepted
    (and fail soon), validation is what is tested."""
    app = create_aggregator_app(
        {
            "token_file": str(token_file),
            "db_path": str(tmp_path / "jobs.db"),
            "workers": [{"name": "n1", "url": "http://127.0.0.1:9", "weight": 1}],
            "resume": False,
        }
    )
    apps.append(app)
    return app
