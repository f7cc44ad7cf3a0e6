"""A small process supervisor for nodes without systemd (the lab); standard library only.

Run from the node's venv::

    python -m lepton_ops.services.supervise start --name lepton-worker --run-dir /var/lib/lepton \
        -- /opt/lepton/venv/bin/gunicorn ...
    python -m lepton_ops.services.supervise stop|restart|status --name lepton-worker --run-dir ...

``start`` detaches a supervisor (double fork, new session) that runs the command and
starts it again whenever it exits, with a backoff from 0.1 s doubling up to 30 s (back
to 0.1 s once a run lasted 10 s). It prints ``started``, or ``running`` when that
supervisor already runs (an exclusive lock on ``<name>.lock`` says so, whatever a stale
pid file claims). ``restart`` stops it (SIGTERM to the command, SIGKILL after a grace
period) and starts it again. Files in the run directory:

* ``<name>.pid``: the supervisor's pid;
* ``<name>.supervisor.json``: the supervisor's and the running child's identities (pid,
  start time, boot id; the child's are null between runs), restart count, last exit;
* ``<name>.supervisor.log``: one line per start, exit and restart;
* ``<name>.log``: the command's stdout and stderr;
* ``<name>.members``: processes attached to the service's memory budget, by identity
  (see below and :mod:`lepton_ops.process_identity`);
* ``<name>.tmp/``: the service's temporary directory (its ``TMPDIR``), emptied each time the
  command starts, as systemd's ``PrivateTmp=`` does: a restart clears what a runaway
  writer left in it.

``restart`` without a command after ``--`` restarts with the command and memory budget the
running supervisor was started with (from its state file): what remediation does.

``--memory-max-bytes N`` gives the service a memory budget, the way systemd's
``MemoryMax=`` would on a real host but without touching cgroups (the lab must not): the
resident memory of the command's process tree plus the attached processes is checked
every quarter second, and past N they are all killed (SIGKILL, as the OOM killer does in a
cgroup) and the command restarts. See :mod:`lepton_ops.services.memory_budget`. Stopping
the service also kills the attached processes, as stopping a systemd unit kills its cgroup.

Every signal goes through :mod:`lepton_ops.process_identity`: ``stop`` signals the
supervisor only if the pid it finds is still the recorded supervisor (start time and boot),
and attached processes are killed only if they are provably the ones attached.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from lepton_ops import process_identity
from lepton_ops.process_identity import ProcessIdentity
from lepton_ops.services import memory_budget

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 10.0
STOP_GRACE_S = 20.0
START_WAIT_S = 10.0
MEMORY_CHECK_S = 0.25


@dataclass(frozen=True)
class Files:
    run_dir: Path
    name: str

    def path(self, suffix: str) -> Path:
        return self.run_dir / f"{self.name}{suffix}"

    @property
    def lock(self) -> Path:
        return self.path(".lock")

    @property
    def pid(self) -> Path:
        return self.path(".pid")

    @property
    def state(self) -> Path:
        return self.path(".supervisor.json")

    @property
    def log(self) -> Path:
        return self.path(".supervisor.log")

    @property
    def output(self) -> Path:
        return self.path(".log")

    @property
    def members(self) -> Path:
        return memory_budget.members_file(self.run_dir, self.name)

    @property
    def tmp(self) -> Path:
        return self.path(".tmp")


def _try_lock(files: Files) -> int | None:
    """An fd holding the exclusive lock, or None if a supervisor holds it."""
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_running(files: Files) -> bool:
    if not files.lock.exists():
        return False
    fd = _try_lock(files)
    if fd is None:
        return True
    os.close(fd)
    return False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)


def _log(handle: IO[str], message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    handle.write(f"{stamp} {message}\n")
    handle.flush()


class _Supervisor:
    def __init__(
        self, files: Files, command: list[str], memory_max_bytes: int | None = None
    ) -> None:
        self.files = files
        self.command = command
        self.memory_max_bytes = memory_max_bytes
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.child_identity: ProcessIdentity | None = None
        self.restarts = 0
        self.oom_kills = 0
        self.last_exit: dict[str, Any] | None = None
        #: set when the budget check killed the service: why, for last_exit
        self.killed_for: dict[str, Any] | None = None

    def on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None:
            process_identity.signal_child(self.child, signal.SIGTERM)

    def save(self) -> None:
        own = process_identity.identify(os.getpid())
        # The child's identity only while it runs: once it has exited its pid may be reused,
        # so nothing may read a pid to signal from this file between runs.
        child = self.child_identity if self.child is not None else None
        _write_json(
            self.files.state,
            {
                "name": self.files.name,
                "boot_id": process_identity.boot_id(),
                "supervisor_pid": os.getpid(),
                "supervisor_start_time": own.start_time if own is not None else None,
                "child_pid": child.pid if child is not None else None,
                "child_start_time": child.start_time if child is not None else None,
                "restarts": self.restarts,
                "last_exit": self.last_exit,
                "command": self.command,
                "memory_max_bytes": self.memory_max_bytes,
                "oom_kills": self.oom_kills,
            },
        )

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        backoff = FIRST_BACKOFF_S
        with (
            self.files.log.open("a", encoding="utf-8") as log,
            self.files.output.open("ab") as output,
        ):
            _log(log, f"supervisor {os.getpid()} starting: {' '.join(self.command)}")
            self.save()
            while not self.stopping:
                began = time.monotonic()
                self.killed_for = None
                try:
                    _empty_dir(self.files.tmp)
                    self.child = subprocess.Popen(
                        self.command,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=output,
                        env={**os.environ, "TMPDIR": str(self.files.tmp)},
                    )
                except OSError as exc:
                    _log(log, f"cannot start: {exc}")
                    self.child = None
                    code: int | None = None
                else:
                    _log(log, f"started pid {self.child.pid} (restarts so far: {self.restarts})")
                    self.child_identity = process_identity.identify(self.child.pid)
                    self.save()
                    code = self._wait_child(log)
                    self.child = self.child_identity = None
                if self.stopping:
                    break
                uptime = time.monotonic() - began
                if uptime >= STABLE_AFTER_S:
                    backoff = FIRST_BACKOFF_S
                self.last_exit = {"code": code, "uptime_s": round(uptime, 3), "at": time.time()}
                if self.killed_for is not None:
                    self.last_exit.update(self.killed_for)
                self.restarts += 1
                _log(
                    log,
                    f"exited with code {code} after {uptime:.1f}s; "
                    f"restart #{self.restarts} in {backoff:.1f}s",
                )
                self.save()
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            self._stop_child(log)
            self.child = self.child_identity = None
            self._kill_members()
            _log(log, f"supervisor {os.getpid()} stopped")
            self.child = None
            self.save()

    def _wait_child(self, log: IO[str]) -> int:
        assert self.child is not None
        while True:
            try:
                if self.memory_max_bytes is None:
                    return self.child.wait()
                return self.child.wait(timeout=MEMORY_CHECK_S)
            except subprocess.TimeoutExpired:
                self._check_memory(log)
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue

    def _check_memory(self, log: IO[str]) -> None:
        """Kill the service and its attached processes once they pass the budget."""
        assert self.child is not None and self.memory_max_bytes is not None
        processes = memory_budget.accounted(self.child_identity, self.files.members, os.getsid(0))
        used = memory_budget.usage_bytes(processes)
        if used <= self.memory_max_bytes or self.stopping:
            return
        killed = memory_budget.kill_all(processes)
        self.oom_kills += 1
        self.killed_for = {
            "reason": "memory limit",
            "rss_bytes": used,
            "memory_max_bytes": self.memory_max_bytes,
        }
        _log(
            log,
            f"memory limit hit: {used} bytes resident > {self.memory_max_bytes}; "
            f"killed pids {' '.join(str(process.pid) for process in killed)}",
        )

    def _kill_members(self) -> None:
        """Attached processes go with the service (a stopped unit's cgroup is emptied)."""
        memory_budget.kill_all(memory_budget.accounted(None, self.files.members, os.getsid(0)))
        with contextlib.suppress(OSError):
            self.files.members.unlink()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _stop_child(self, log: IO[str]) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        process_identity.signal_child(child, signal.SIGTERM)
        try:
            child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _log(log, f"pid {child.pid} ignored SIGTERM for {STOP_GRACE_S:.0f}s: SIGKILL")
            process_identity.signal_child(child, signal.SIGKILL)
            child.wait()


def _empty_dir(path: Path) -> None:
    """Create ``path`` or empty it (its files and subdirectories go)."""
    path.mkdir(mode=0o700, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def start(files: Files, command: list[str], memory_max_bytes: int | None = None) -> str:
    """Detach a supervisor for ``command``; 'started', or 'running' if one already runs."""
    if not command:
        raise SystemExit("supervise start: give the command after --")
    files.run_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = _try_lock(files)
    if lock_fd is None:
        return "running"
    files.pid.unlink(missing_ok=True)
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        _become_daemon(lock_fd)
        try:
            files.pid.write_text(f"{os.getpid()}\n", encoding="utf-8")
            _Supervisor(files, command, memory_max_bytes).run()
        finally:
            files.pid.unlink(missing_ok=True)
            os._exit(0)
    os.close(lock_fd)
    os.waitpid(first, 0)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if supervisor_identity(files) is not None:  # its pid and state files are written
            return "started"
        time.sleep(0.05)
    raise SystemExit(
        f"supervise start: the supervisor wrote no pid file {files.pid} and state {files.state}"
    )


def _become_daemon(keep_fd: int) -> None:
    os.chdir("/")
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1024)


def stop(files: Files) -> str:
    """Stop the supervisor and its command; 'stopped', or 'not running'."""
    if not is_running(files):
        return "not running"
    supervisor = supervisor_identity(files)
    if supervisor is None:
        raise SystemExit(
            f"supervise stop: {files.name} runs but no process holding {files.lock} is the one "
            f"{files.pid} and {files.state} name: stop it by hand"
        )
    pid = supervisor.pid
    process_identity.send_signal(supervisor, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S + 5
    while time.monotonic() < deadline:
        if not is_running(files):
            return "stopped"
        time.sleep(0.05)
    raise SystemExit(f"supervise stop: {files.name} (pid {pid}) did not stop")


def supervisor_identity(files: Files) -> ProcessIdentity | None:
    """The running supervisor of ``files``, proven: None when it cannot be.

    The pid file's pid must be the supervisor its state file records (same start time and
    boot) and must hold the lock file open - the lock that says a supervisor runs.
    (A state file from an earlier version records no start time: the open lock decides.)
    """
    try:
        pid = int(files.pid.read_text(encoding="utf-8").strip())
        state = json.loads(files.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("supervisor_pid") != pid:
        return None
    found = process_identity.identify(pid)
    if found is None or not found.alive() or not _holds_open(pid, files.lock):
        return None
    if "supervisor_start_time" not in state:
        return found  # written by a supervisor of an earlier version: the open lock proves it
    recorded = process_identity.identity_of(
        pid, state.get("supervisor_start_time"), state.get("boot_id")
    )
    return found if recorded == found else None


def _holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (the supervisor keeps its lock open)."""
    try:
        wanted = path.stat()
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            found = descriptor.stat()
            if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
                return True
    return False


def status(files: Files) -> dict[str, Any]:
    data: dict[str, Any] = {"name": files.name}
    with contextlib.suppress(OSError, ValueError):
        data.update(json.loads(files.state.read_text(encoding="utf-8")))
    data["running"] = is_running(files)
    return data


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_ops.services.supervise")
    parser.add_argument("action", choices=("start", "stop", "restart", "status"))
    parser.add_argument("--name", required=True, help="service name: names the files")
    parser.add_argument("--run-dir", required=True, type=Path, help="pid, state and log files")
    parser.add_argument(
        "--memory-max-bytes",
        type=_positive_int,
        default=None,
        help="kill and restart the service once it and its attached processes use more",
    )
    words = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in words:  # start and restart: the command follows --
        cut = words.index("--")
        words, command = words[:cut], words[cut + 1 :]
    args = parser.parse_args(words)
    files = Files(args.run_dir, args.name)
    if args.action == "start":
        print(start(files, command, args.memory_max_bytes))
    elif args.action == "stop":
        print(stop(files))
    elif args.action == "restart":
        memory_max = args.memory_max_bytes
        if not command:  # the command and budget it runs with now
            previous = status(files)
            command = [str(word) for word in previous.get("command") or []]
            if memory_max is None and isinstance(previous.get("memory_max_bytes"), int):
                memory_max = previous["memory_max_bytes"]
            if not command:
                raise SystemExit(
                    f"supervise restart: no command after -- and none in {files.state}"
                )
        stop(files)
        start(files, command, memory_max)
        print("restarted")
    else:
        print(json.dumps(status(files), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
