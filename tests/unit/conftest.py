"""Fixtures shared by the unit tests that run real services (see ``service_support``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from service_support import TOKEN, Worker

from lepton_ops.services.aggregator import dispatcher_of
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
def make_worker(token_file: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def make(**kwargs: Any) -> Worker:
        worker = Worker(create_worker_app({"token_file": str(token_file)}), **kwargs)
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
