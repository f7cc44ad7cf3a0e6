"""Real services on 127.0.0.1 for the unit tests: workers with kill/slow hooks, aggregators.

Shared by ``test_services_aggregator.py`` and ``test_jobs_client.py`` (the fixtures that
use them are in ``conftest.py``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from lepton_ops.services.aggregator import create_aggregator_app
from lepton_ops.services.openapi import openapi_path

TOKEN = "aggregator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


class Worker:
    """A real worker on 127.0.0.1 (ephemeral port), with hooks to slow it down or kill it."""

    def __init__(
        self,
        app: Flask,
        *,
        delay_s: float = 0.0,
        die_after: int | None = None,
        gate: threading.Event | None = None,
        hang: threading.Event | None = None,
    ) -> None:
        self.app = app
        self.delay_s = delay_s
        #: When given, every shard waits for it to be set (at most 30 s) before it runs.
        self.gate = gate
        #: While set, every request (health checks too) hangs, like a stopped process
        #: whose kernel still accepts connections; cleared, requests go on.
        self.hang = hang
        self.die_after = die_after
        self.served = 0
        self.dead = False
        self._lock = threading.Lock()
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        while self.hang is not None and self.hang.is_set():
            time.sleep(0.01)
        if environ.get("PATH_INFO") == "/v1/shards/run":
            with self._lock:
                if self.die_after is not None and self.served >= self.die_after:
                    self._die(environ)
                    start_response("503 Service Unavailable", [("Content-Length", "0")])
                    return []
                self.served += 1
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.gate is not None:
                self.gate.wait(30.0)
        return self.app.wsgi_app(environ, start_response)

    def _die(self, environ: dict[str, Any]) -> None:
        """Like a killed process: the connection drops, the port stops listening."""
        if not self.dead:
            self.dead = True
            threading.Thread(target=self.stop, daemon=True).start()
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def aggregator(
    token_file: Path,
    db: Path,
    workers: list[Worker],
    weights: list[int] | None = None,
    **extra: Any,
) -> Flask:
    weights = weights or [1, 2, 3]
    config = {
        "token_file": str(token_file),
        "db_path": str(db),
        "workers": [
            {"name": f"node{i + 1}", "url": worker.url, "weight": weight}
            for i, (worker, weight) in enumerate(zip(workers, weights, strict=True))
        ],
        "connect_timeout_s": 1.0,
        "first_read_timeout_s": 10.0,
        "retry_delay_s": 0.01,
        "poll_s": 0.005,
        **extra,
    }
    return create_aggregator_app(config)


def expected_mean() -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.concatenate([np.random.default_rng([7, i]).random(100) for i in range(200)])


def assert_exact_mean(result: dict[str, Any]) -> None:
    values = expected_mean()
    assert result["count"] == values.size == 20_000
    assert result["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert result["variance"] == pytest.approx(values.var(), rel=1e-12)
    assert result["min"] == values.min()
    assert result["max"] == values.max()


def assert_openapi_covers(app: Flask, headers: dict[str, str] = AUTH) -> dict[str, Any]:
    """Every route and method of ``app`` is in its OpenAPI document, and every operation
    documents the errors any request can meet: 401 (all but /healthz) and 500."""
    document = app.test_client().get("/openapi.json", headers=headers).json
    assert document is not None and document["openapi"].startswith("3.0")
    paths = document["paths"]
    rules = list(app.url_map.iter_rules())
    assert rules
    for rule in rules:
        path = openapi_path(rule.rule)
        assert path in paths, f"{rule.rule} is not in the OpenAPI document"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {rule.rule} is not documented"
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "500" in responses, f"{method.upper()} {path} does not document 500"
            if path != "/healthz":
                assert "401" in responses, f"{method.upper()} {path} does not document 401"
    assert paths["/healthz"]["get"]["security"] == []
    return dict(paths)
