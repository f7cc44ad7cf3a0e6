# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Signal only processes that are provably ours: the one place lepton-ops sends signals.

A pid names a process only until it exits: pids are reused (quickly: pid_max may be
32768), so a pid read from a file may name anybody by now. A process's *identity* is its
pid together with its start time (field 22 of /proc/PID/stat, clock ticks since boot) and
the boot id: no two processes of one boot share both. Every signal lepton-ops sends goes
through :func:`send_signal`, which

* refuses pid 1, the caller and the caller's ancestors, whatever it is asked;
* opens a pidfd first (where the kernel has them), then checks that the process behind the
  pid still has the recorded start time and boot, and signals through the pidfd: a pid
  reused between the check and the signal cannot be hit;
* returns False, sending nothing, when the process is gone or is another one now.

Processes *attached* to a supervised service (a chaos leak, a runaway writer: they count
in the service's memory budget and die with it) are listed in the service's members file,
one line per process: ``pid start_time registrar_pid registrar_start_time`` under a
``boot <boot_id>`` header, rewritten atomically under a lock. A member is only acted on
(:func:`member_is_ours`) when it is still the recorded process and belongs either to the
service's own session or to the session of the live process that registered it; pid 1 and
the supervisor's own ancestors never are.

Standard library only: it runs on nodes (from Ansible modules and the node's supervisor)
and on the controller (the lab), and is written to satisfy both (it is also
``lepton_ops.process_identity``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
BOOT_ID_FILE = PROC / "sys" / "kernel" / "random" / "boot_id"
# Process states of /proc/PID/stat that are no longer a running process.
_DEAD_STATES = ("Z", "X", "x")


def boot_id() -> str:
    """This boot's id ("" when it cannot be read): identities of other boots mean nothing."""
    try:
        return BOOT_ID_FILE.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None if gone."""
    if pid <= 0:
        return None
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    fields = text[text.rfind(")") + 1 :].split()
    return fields if len(fields) > 19 else None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None when there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None else None


def session_id(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields is not None else None


def is_running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in _DEAD_STATES


@dataclass(frozen=True)
class ProcessIdentity:
    """One process for as long as it lives: pid, start time and boot."""

    pid: int
    start_time: int
    boot_id: str

    def matches_now(self) -> bool:
        """The pid still names this very process (it may be a zombie)."""
        return self.boot_id == boot_id() and start_time(self.pid) == self.start_time

    def alive(self) -> bool:
        """This process still runs (not exited, not a zombie)."""
        return self.matches_now() and is_running(self.pid)

    def __str__(self) -> str:
        return f"{self.pid} (started at tick {self.start_time})"


def identify(pid: int) -> ProcessIdentity | None:
    """The identity of the process ``pid`` names now, None when there is none."""
    started = start_time(pid)
    if started is None:
        return None
    return ProcessIdentity(pid=pid, start_time=started, boot_id=boot_id())


def identity_of(pid: object, started: object, boot: object = None) -> ProcessIdentity | None:
    """A recorded identity from stored values (None when they do not make one)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if not isinstance(started, int) or isinstance(started, bool) or started < 0:
        return None
    return ProcessIdentity(
        pid=pid, start_time=started, boot_id=boot_id() if boot is None else str(boot)
    )


def ancestors(pid: int) -> list[int]:
    """``pid``'s parent, its parent's parent... up to (and with) pid 1."""
    found: list[int] = []
    current = parent_pid(pid)
    while current is not None and current > 0 and current not in found:
        found.append(current)
        if current == 1:
            break
        current = parent_pid(current)
    return found


def protected_pids() -> set[int]:
    """Never signalled: pid 1, this process and every ancestor of it."""
    own = os.getpid()
    return {1, own, *ancestors(own)}


def descends_from(pid: int, ancestor: int) -> bool:
    return ancestor in ancestors(pid)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    return children


def process_tree(root: ProcessIdentity) -> list[ProcessIdentity]:
    """``root`` (if it is still that process) and the identities of its descendants now."""
    if not root.matches_now():
        return []
    children = _children()
    found: list[ProcessIdentity] = [root]
    seen = {root.pid}
    pending = list(children.get(root.pid, []))
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        identity = identify(pid)
        if identity is not None:
            found.append(identity)
            pending.extend(children.get(pid, []))
    return found


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def send_signal(identity: ProcessIdentity, signum: int) -> bool:
    """Send ``signum`` to the process ``identity`` names, only if it is still that process.

    True when the signal was sent; False (nothing sent) when the process is gone, is another
    process now, or is pid 1, this process or one of its ancestors.
    """
    if identity.pid in protected_pids():
        return False
    pidfd = _pidfd(identity.pid)
    try:
        # Checked after the pidfd is open: the pidfd pins the process the check saw.
        if not identity.matches_now():
            return False
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, signum)
            else:  # kernels before 5.3: the check above, then the pid
                os.kill(identity.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def signal_all(identities: list[ProcessIdentity], signum: int) -> list[ProcessIdentity]:
    """Signal each of ``identities`` that is still itself; those that were signalled."""
    return [identity for identity in identities if send_signal(identity, signum)]


def signal_child(child: subprocess.Popen[bytes], signum: int) -> bool:
    """Signal our own child process while it runs.

    A child we have not waited for cannot have its pid reused (it stays a zombie until we
    reap it), so ``Popen`` knows exactly who it is; once reaped, nothing is sent.
    """
    if child.poll() is not None:
        return False
    child.send_signal(signum)
    return True


def wait_gone(identities: list[ProcessIdentity], seconds: float) -> list[ProcessIdentity]:
    """Wait up to ``seconds`` for ``identities`` to exit; those still running.

    A zombie counts as exited: reaping is left to the process's parent.
    """
    deadline = time.monotonic() + seconds
    remaining = list(identities)
    while remaining:
        remaining = [identity for identity in remaining if identity.alive()]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return remaining


def stop_processes(
    identities: list[ProcessIdentity], grace_seconds: float = 3.0
) -> list[ProcessIdentity]:
    """SIGTERM ``identities``, SIGKILL those still themselves after the grace period.

    Returns the processes still running afterwards (normally none).
    """
    remaining = [identity for identity in identities if identity.alive()]
    signal_all(remaining, signal.SIGTERM)
    remaining = wait_gone(remaining, grace_seconds)
    if remaining:
        signal_all(remaining, signal.SIGKILL)
        remaining = wait_gone(remaining, 2.0)
    return remaining


# -- members of a supervised service -------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A process attached to a service, and the process that attached it."""

    process: ProcessIdentity
    registrar: ProcessIdentity | None


def members_file(run_dir: Path, name: str) -> Path:
    """The members file of service ``name`` in ``run_dir``."""
    return run_dir / f"{name}.members"


def _parse_members(text: str) -> list[Member]:
    members: list[Member] = []
    boot = ""
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "boot":
            boot = words[1]
            continue
        if len(words) != 4 or not all(word.isdigit() for word in words):
            continue  # not an entry of ours (an old file's bare pid): never trusted
        pid, started, registrar_pid, registrar_started = (int(word) for word in words)
        if not boot or pid <= 1:
            continue
        registrar = None
        if registrar_pid > 1:
            registrar = ProcessIdentity(registrar_pid, registrar_started, boot)
        members.append(Member(ProcessIdentity(pid, started, boot), registrar))
    return members


def read_members(path: Path) -> list[Member]:
    """The entries of a members file ([] when there is none)."""
    try:
        return _parse_members(path.read_text(encoding="utf-8"))
    except OSError:
        return []


@contextlib.contextmanager
def _members_locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    fd = os.open(str(lock), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_members(path: Path, members: list[Member]) -> None:
    if not members:
        with contextlib.suppress(OSError):
            path.unlink()
        return
    lines = [f"boot {boot_id()}"]
    for member in members:
        registrar = member.registrar
        registrar_pid = registrar.pid if registrar is not None else 0
        registrar_start = registrar.start_time if registrar is not None else 0
        lines.append(
            f"{member.process.pid} {member.process.start_time} {registrar_pid} {registrar_start}"
        )
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(path)


def add_member(path: Path, pid: int) -> Member:
    """Attach process ``pid`` (a child of the caller) to the service of ``path``.

    The caller registers itself as the registrar: the member is accepted while the caller
    lives and the member stays in the caller's session (see :func:`member_is_ours`).
    """
    process = identify(pid)
    registrar = identify(os.getpid())
    if process is None or registrar is None:
        raise ProcessLookupError(f"process {pid} is gone: nothing to attach")
    member = Member(process, registrar)
    with _members_locked(path):
        current = [entry for entry in read_members(path) if entry.process.alive()]
        current = [entry for entry in current if entry.process.pid != pid]
        _write_members(path, [*current, member])
    return member


def remove_members(path: Path, pids: list[int]) -> None:
    """Drop the entries of ``pids`` (reaped) and of processes that are gone."""
    with _members_locked(path):
        kept = [
            entry
            for entry in read_members(path)
            if entry.process.pid not in pids and entry.process.alive()
        ]
        _write_members(path, kept)


def member_is_ours(member: Member, service_session: int | None) -> bool:
    """Whether ``member`` may be counted and killed with the service.

    It must still be the recorded process, not pid 1 nor an ancestor of the caller, and be
    in the service's session, or tied to its registrar (which must itself still be the
    recorded, live process): a descendant of it, or in its session. A session shared with
    pid 1 proves nothing (in a container every process may be in it), so there only
    descent counts.
    """
    process = member.process
    if process.pid in protected_pids() or not process.alive():
        return False
    session = session_id(process.pid)
    if session is None:
        return False
    init_session = session_id(1)
    if service_session is not None and session == service_session != init_session:
        return True
    registrar = member.registrar
    if registrar is None or registrar.pid == 1 or not registrar.alive():
        return False
    if descends_from(process.pid, registrar.pid):
        return True
    return session_id(registrar.pid) == session != init_session


def live_members(path: Path, service_session: int | None) -> list[ProcessIdentity]:
    """The processes of a members file that may be counted and killed with the service."""
    return [m.process for m in read_members(path) if member_is_ours(m, service_session)]
