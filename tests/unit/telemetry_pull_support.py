"""Shared by the ``telemetry pull`` tests: a small fleet of real services on 127.0.0.1, its
inventory and a state dir holding the services' token, and ``lepton-ops`` with the
``telemetry pull`` command registered (until the real ``telemetry`` sub-app calls it)."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from service_support import TOKEN, Worker

from lepton_ops.cli import app as app_module
from lepton_ops.cli.telemetry_pull import register
from lepton_ops.credentials.tokens import token_path


def state_with_token(state: Path, token: str = TOKEN) -> Path:
    """A state dir whose controller token is ``token`` (as ``lepton-ops deploy`` leaves it)."""
    path = token_path(state)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(token + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return state


def inventory_file(path: Path, hosts: dict[str, dict[str, Any]], aggregator: str | None) -> Path:
    """A YAML inventory: every host in ``workers``, ``aggregator`` in ``aggregator``; its
    services serve plain http (``lepton_insecure_http``), as the test servers do."""
    import yaml

    data: dict[str, Any] = {
        "all": {
            "vars": {"lepton_insecure_http": True},
            "hosts": hosts,
            "children": {"workers": {"hosts": {name: {} for name in hosts}}},
        }
    }
    if aggregator is not None:
        data["all"]["children"]["aggregator"] = {"hosts": {aggregator: {}}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@dataclass
class AuthSpy:
    """Wraps a WSGI app and remembers the ``Authorization`` header of each /metrics request."""

    app: Callable[..., Any]
    seen: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/metrics":
            with self.lock:
                self.seen.append(environ.get("HTTP_AUTHORIZATION"))
        return self.app(environ, start_response)


def spy_on(worker: Worker) -> AuthSpy:
    spy = AuthSpy(worker.app.wsgi_app)
    worker.app.wsgi_app = spy  # type: ignore[method-assign]
    return spy


def port_of(worker: Worker) -> int:
    return int(worker.server.server_port)


def cli_app() -> typer.Typer:
    """``lepton-ops`` with only ``telemetry pull`` (the real root callback, global options)."""
    root = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    root.callback()(app_module._root)
    telemetry = typer.Typer(no_args_is_help=True)
    telemetry.callback()(lambda: None)
    register(telemetry)
    root.add_typer(telemetry, name="telemetry")
    return root


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_pull(monkeypatch: pytest.MonkeyPatch, *args: str) -> CliResult:
    """``lepton-ops telemetry pull ARGS`` in this process, through the CLI's error boundary."""
    monkeypatch.setattr(app_module, "app", cli_app())
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app_module.main(["telemetry", "pull", *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def stopped(worker: Worker) -> Iterator[Worker]:
    """The worker, stopped (its port no longer listens)."""
    worker.stop()
    worker.dead = True
    yield worker


# A script that runs the CLI above as its own process (for the Ctrl-C test).
CLI_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
from telemetry_pull_support import cli_app
from lepton_ops.cli import app as app_module
app_module.app = cli_app()
app_module.main(sys.argv[1:])
"""
