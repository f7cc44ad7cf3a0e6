"""Run a playbook through ansible-runner and return a typed result.

This is the only place lepton-ops starts Ansible. Extra variables reach
ansible-playbook through a file in the run's private directory (never the
command line, so they do not show in process lists), and that directory's
``env/`` is removed when the run ends, so runner artifacts keep no inputs.
Secrets are never passed as variables at all: pass the path of a 0600 file
and read it on the node side with ``no_log``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from lepton_ops.gateway import content
from lepton_ops.gateway.progress import PlaybookProgress
from lepton_ops.gateway.results import HostResult, PlaybookResult
from lepton_ops.settings import StateLayout

KEEP_RUNS = 20
"""How many runs' artifacts are kept under the state directory."""

SSH_ARGS = (
    "-o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=3 -o ServerAliveCountMax=3"
)
"""Ansible's default ssh arguments, changed in two ways. No -C: zlib over already-compressed
wheels makes a 100 MB copy take seconds per node instead of a fraction of one. Keepalives: a
node cut off while a ControlPersist master is open would otherwise hang every later task on
it until TCP gives up (about 15 minutes); with them it is unreachable within about 10 s."""

EventHandler = Callable[[dict[str, Any]], None]

#: Set while a caller handles SIGTERM and SIGINT itself (``lepton-ops watch``): ansible-runner
#: would otherwise install its own handlers for each run (to cancel it) and leave them in
#: place, so the caller's signal handler would never run again.
_caller_handles_signals = threading.Event()


@contextmanager
def signals_handled_by_caller() -> Iterator[None]:
    """Within this block, playbook runs leave SIGTERM and SIGINT to the caller: a run in
    progress finishes, and the caller decides what a signal means."""
    _caller_handles_signals.set()
    try:
        yield
    finally:
        _caller_handles_signals.clear()


@dataclass(frozen=True)
class PlaybookRun:
    """What to run: a collection playbook by short name, or a playbook file."""

    playbook: str | Path
    inventory: Path
    hosts: tuple[str, ...]
    limit: str | None = None
    extravars: Mapping[str, Any] = field(default_factory=dict)
    check: bool = False
    diff: bool = False
    verbosity: int = 0
    forks: int | None = None
    timeout_s: int = 10


def run_playbook(
    request: PlaybookRun,
    state_dir: Path,
    *,
    console: Console | None = None,
    on_event: EventHandler | None = None,
) -> PlaybookResult:
    """Run one playbook; show progress on ``console`` when given; never raise on host failures."""
    import ansible_runner

    playbook = _resolve_playbook(request.playbook)
    private_dir = _new_private_dir(state_dir, playbook.stem)
    collector = _ResultCollector(request.hosts)
    progress = (
        PlaybookProgress(
            console, len(request.hosts), f"{playbook.stem}: {len(request.hosts)} hosts"
        )
        if console is not None
        else None
    )

    def handle(event: dict[str, Any]) -> bool:
        collector.on_event(event)
        if progress is not None:
            progress.on_event(event)
        if on_event is not None:
            on_event(event)
        return True  # keep the event in the artifacts

    cmdline = " ".join(
        flag for flag, on in (("--check", request.check), ("--diff", request.diff)) if on
    )
    started = time.monotonic()
    try:
        if progress is not None:
            progress.__enter__()
        runner = ansible_runner.run(
            private_data_dir=str(private_dir),
            playbook=str(playbook),
            inventory=str(request.inventory),
            limit=request.limit,
            extravars=dict(request.extravars) or None,
            cmdline=cmdline or None,
            envvars=_ansible_environment(state_dir, request),
            forks=request.forks or _forks_for(len(request.hosts)),
            verbosity=request.verbosity or None,
            event_handler=handle,
            quiet=True,
            cancel_callback=(lambda: False) if _caller_handles_signals.is_set() else None,
            ident="run",
        )
    finally:
        if progress is not None:
            progress.__exit__(None, None, None)
        _scrub(private_dir)
        _rotate(private_dir.parent)
    duration = time.monotonic() - started
    collector.apply_stats(runner.stats)
    result = PlaybookResult(
        playbook=playbook.stem,
        rc=int(runner.rc if runner.rc is not None else 1),
        runner_status=str(runner.status),
        hosts=collector.hosts,
        duration_s=duration,
        check=request.check,
        artifacts=private_dir / "artifacts" / "run",
        error=_last_error_line(private_dir / "artifacts" / "run" / "stdout"),
    )
    (private_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _resolve_playbook(playbook: str | Path) -> Path:
    if isinstance(playbook, Path):
        return playbook.resolve()
    return content.playbook_path(playbook)


def _forks_for(host_count: int) -> int:
    return max(5, min(host_count, 50))


def _ansible_environment(state_dir: Path, request: PlaybookRun) -> dict[str, str]:
    tmp = StateLayout(state_dir).ansible_tmp
    tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    collections = os.pathsep.join(p for p in (str(content.collections_path()), existing) if p)
    # ansible-playbook from lepton-ops' own environment comes first, whatever PATH says.
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    return {
        "PATH": path,
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": os.environ.get("ANSIBLE_SSH_ARGS", SSH_ARGS),
        # Our own ControlPersist masters, made with the keepalives above: a master that some
        # other ansible run left open would be reused and could hang on a lost node.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(_control_path_dir(state_dir)),
        # ansible-runner turns host key checking off unless told; the lab ships a known_hosts.
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
        "ANSIBLE_TIMEOUT": str(request.timeout_s),
        "ANSIBLE_LOCAL_TEMP": str(tmp),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_NOCOLOR": "True",
    }


def _control_path_dir(state_dir: Path) -> Path:
    """A directory for ssh control sockets; their paths must stay under ~100 characters."""
    preferred = StateLayout(state_dir).ssh_control
    if len(str(preferred)) > 80:
        preferred = Path(tempfile.gettempdir()) / f"lepton-ops-cp-{os.getuid()}"
    preferred.mkdir(parents=True, exist_ok=True, mode=0o700)
    return preferred


def _new_private_dir(state_dir: Path, name: str) -> Path:
    runs = StateLayout(state_dir).runs
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    private = runs / f"{stamp}-{name}-{os.getpid()}"
    private.mkdir(mode=0o700)
    return private


def _scrub(private_dir: Path) -> None:
    """Drop the run's inputs, and the process environment runner records with the command."""
    shutil.rmtree(private_dir / "env", ignore_errors=True)
    command_file = private_dir / "artifacts" / "run" / "command"
    try:
        recorded = json.loads(command_file.read_text())
    except (OSError, ValueError):
        return
    recorded.pop("env", None)
    command_file.write_text(json.dumps(recorded))


def _rotate(runs: Path) -> None:
    entries = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in entries[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)


class _ResultCollector:
    """Builds per-host results from the event stream and the final stats."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self.hosts: dict[str, HostResult] = {name: HostResult(host=name) for name in hosts}

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if not host or kind not in ("runner_on_failed", "runner_on_unreachable"):
            return
        if kind == "runner_on_failed" and data.get("ignore_errors"):
            return
        message = _failure_message(data)
        self.hosts.setdefault(host, HostResult(host=host)).messages.append(message)

    def apply_stats(self, stats: Mapping[str, Any] | None) -> None:
        """Counts from the play recap; hosts outside the request show only if they failed."""
        if not stats:
            return
        trouble = set(stats.get("failures") or {}) | set(stats.get("dark") or {})
        for key, attr in (
            ("ok", "ok"),
            ("changed", "changed"),
            ("failures", "failed"),
            ("dark", "unreachable"),
            ("skipped", "skipped"),
            ("rescued", "rescued"),
            ("ignored", "ignored"),
        ):
            for host, count in (stats.get(key) or {}).items():
                if host not in self.hosts and host not in trouble:
                    continue
                result = self.hosts.setdefault(host, HostResult(host=host))
                setattr(result, attr, int(count))


def _last_error_line(stdout: Path) -> str | None:
    """The last ERROR line ansible-playbook printed (syntax errors, missing files...)."""
    try:
        lines = stdout.read_text(errors="replace").splitlines()
    except OSError:
        return None
    errors = [line.strip() for line in lines if line.strip().startswith(("ERROR", "[ERROR]"))]
    return " ".join(errors[-1].split())[:300] if errors else None


def _failure_message(data: Mapping[str, Any]) -> str:
    res = data.get("res") or {}
    task = data.get("task") or "task"
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or "failed"
    text = " ".join(str(msg).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{task}: {text}"
