"""Finding and stopping the lab's processes through /proc.

A node's processes are found by mount namespace: the node's sshd runs in a namespace
of its own, and everything it starts (SSH sessions, later the lepton services) inherits
it, so "every process whose /proc/PID/ns/mnt equals the node sshd's" is exactly the
node's processes, whoever their parent is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def boot_id() -> str:
    """This boot's id: pids and namespace ids recorded in another boot mean nothing."""
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def mount_namespace(pid: int) -> str | None:
    """The mount namespace of ``pid`` (e.g. ``mnt:[4026532301]``), None if it is gone."""
    try:
        return str((PROC / str(pid) / "ns" / "mnt").readlink())
    except OSError:
        return None


def host_namespaces() -> set[str]:
    """The namespaces of this process and of init: never the lab's, never to be emptied."""
    found = {mount_namespace(os.getpid()), mount_namespace(1)}
    return {ns for ns in found if ns is not None}


def is_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    # The state is the field after the parenthesised command name, which may hold spaces.
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    return state not in ("Z", "X")


def command_name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def pids_in_namespace(namespace: str) -> list[int]:
    """Every live process whose mount namespace is ``namespace`` (never the host's)."""
    if namespace in host_namespaces():
        return []
    own = os.getpid()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == own:
            continue
        if mount_namespace(pid) == namespace and is_running(pid):
            found.append(pid)
    return sorted(found)


def stop_processes(pids: Iterable[int], grace_seconds: float = 3.0) -> list[int]:
    """SIGTERM ``pids``, SIGKILL whatever is left after the grace period.

    Returns the pids still running afterwards (normally none).
    """
    remaining = [pid for pid in set(pids) if is_running(pid)]
    _signal_all(remaining, signal.SIGTERM)
    remaining = _wait_gone(remaining, grace_seconds)
    if remaining:
        _signal_all(remaining, signal.SIGKILL)
        remaining = _wait_gone(remaining, 2.0)
    return remaining


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    remaining = list(pids)
    while remaining:
        _reap(remaining)
        remaining = [pid for pid in remaining if is_running(pid)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return remaining


def _reap(pids: list[int]) -> None:
    """Collect the exit status of any of ``pids`` that are our own children."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
