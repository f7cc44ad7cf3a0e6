"""Schemathesis against both services in-process (WSGI): the CI fuzz test and benchmarks/fuzz.py.

:func:`fuzz_app` loads the app's own OpenAPI document and, for every operation in it,
generates ``examples`` cases in each of schemathesis' modes - positive (valid by the
document) and negative (each case breaks it somewhere) - sends them to the app through
WSGI (no sockets) and checks every answer: no 5xx, a status code the document lists, the
content type and the body schema it describes. The no-token pass sends the same cases
without the bearer token: every answer but ``/healthz``'s must then be the documented 401.

Jobs the aggregator accepts are dispatched to a worker address where nothing listens
(port 9), so they fail quickly and the run stays in-process.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lepton_ops.services.aggregator import create_aggregator_app, dispatcher_of
from lepton_ops.services.worker import create_worker_app

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzReport:
    """Cases sent per ``"METHOD /path mode"``, and every failure found (one line each)."""

    cases: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cases.values())


def service_apps(directory: Path) -> dict[str, Flask]:
    """A worker and an aggregator app with their token file and data in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    os.chmod(token_file, 0o600)
    worker = create_worker_app(
        {"token_file": str(token_file), "cancel_dir": str(directory / "cancelled")}
    )
    aggregator = create_aggregator_app(
        {
            "token_file": str(token_file),
            "db_path": str(directory / "jobs.db"),
            "workers": [{"name": "n1", "url": "http://127.0.0.1:9", "weight": 1}],
            "resume": False,
            "connect_timeout_s": 0.2,
            "retry_delay_s": 0.01,
        }
    )
    return {"worker": worker, "aggregator": aggregator}


def close_apps(apps: dict[str, Flask]) -> None:
    dispatcher_of(apps["aggregator"]).shutdown(timeout=10)


def fuzz_app(
    app: Flask,
    examples: int,
    *,
    with_token: bool = True,
    derandomize: bool = False,
    progress: Callable[[str, int, float], None] | None = None,
) -> FuzzReport:
    """Fuzz every operation of ``app`` in both modes; what was sent and what failed."""
    headers = AUTH if with_token else {}
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, headers=AUTH)
    report = FuzzReport()
    began = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:
            name = f"{operation.method.upper()} {operation.path} {mode.value}"
            started = time.monotonic()
            sent = _fuzz_operation(operation, mode, examples, headers, derandomize, report, name)
            report.cases[name] = sent
            if progress is not None:
                progress(name, sent, time.monotonic() - started)
    report.seconds = time.monotonic() - began
    return report


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    headers: dict[str, str],
    derandomize: bool,
    report: FuzzReport,
    name: str,
) -> int:
    sent = 0
    public = operation.path == "/healthz"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        nonlocal sent
        sent += 1
        # Negative cases may drop or spoil the Authorization header themselves.
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as exc:  # one line per distinct failure, the run goes on
            _keep(report, f"{name}: {_one_line(exc)}")
        if not headers and not public and response.status_code != 401:
            _keep(report, f"{name}: answered {response.status_code} without the token")

    # Unsatisfiable: nothing of the operation can be made invalid (no parameters, no body).
    with contextlib.suppress(Unsatisfiable):
        run()
    return sent


def _keep(report: FuzzReport, failure: str) -> None:
    if failure not in report.failures:
        report.failures.append(failure)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


__all__ = ["AUTH", "FuzzReport", "close_apps", "fuzz_app", "service_apps"]
