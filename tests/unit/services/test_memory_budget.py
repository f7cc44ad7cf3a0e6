"""The supervisor's memory budget: a service and its attached processes past the budget are
killed together and the service restarts; stopping the service kills what was attached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lepton_ops import process_identity
from lepton_ops.services import memory_budget
from lepton_ops.services.supervise import Files, is_running, stop

MiB = 1024 * 1024
# Grows by 8 MiB every 50 ms, each page touched so it is resident, then sleeps.
LEAK = (
    "import time\nheld = []\nwhile len(held) < 64:\n"
    "    held.append(bytearray(b'x') * (8 * 1024 * 1024))\n    time.sleep(0.05)\n"
    "time.sleep(300)\n"
)


def supervise(files: Files, *extra: str) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "lepton_ops.services.supervise", "start", "--name", files.name,
         "--run-dir", str(files.run_dir), *extra, "--", sys.executable, "-c",
         "import time; time.sleep(300)"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert started.stdout.strip() == "started"


def state(files: Files) -> dict[str, object]:
    data: dict[str, object] = json.loads(files.state.read_text(encoding="utf-8"))
    return data


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    return memory_budget.rss_bytes(pid) > 0


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Files]:
    found = Files(tmp_path, "lepton-test")
    yield found
    if is_running(found):
        stop(found)


def test_an_attached_leak_past_the_budget_kills_the_service_which_restarts(files: Files) -> None:
    supervise(files, "--memory-max-bytes", str(200 * MiB))
    wait_for(lambda: files.state.exists() and state(files).get("child_pid") is not None)
    first_child = state(files)["child_pid"]
    assert state(files)["memory_max_bytes"] == 200 * MiB
    leak = subprocess.Popen([sys.executable, "-c", LEAK])
    memory_budget.attach(files.members, leak.pid)
    # The leak reaches 200 MiB in about 1.3 s; the budget is checked every 0.25 s.
    wait_for(lambda: state(files).get("oom_kills") == 1)
    assert leak.wait(timeout=10) == -9
    wait_for(lambda: state(files)["child_pid"] not in (None, first_child))
    last_exit = state(files)["last_exit"]
    assert isinstance(last_exit, dict)
    assert last_exit["reason"] == "memory limit"
    assert int(last_exit["rss_bytes"]) > 200 * MiB
    assert state(files)["restarts"] == 1
    assert "memory limit hit" in files.log.read_text(encoding="utf-8")


def test_without_a_budget_nothing_is_killed(files: Files) -> None:
    supervise(files)
    wait_for(lambda: files.state.exists() and state(files).get("child_pid") is not None)
    leak = subprocess.Popen([sys.executable, "-c", LEAK])
    try:
        memory_budget.attach(files.members, leak.pid)
        wait_for(lambda: memory_budget.rss_bytes(leak.pid) > 300 * MiB)
        assert state(files)["oom_kills"] == 0 and state(files)["restarts"] == 0
    finally:
        leak.kill()
        leak.wait()


def test_stopping_the_service_kills_its_attached_processes(files: Files) -> None:
    supervise(files, "--memory-max-bytes", str(1024 * MiB))
    wait_for(lambda: files.state.exists() and state(files).get("child_pid") is not None)
    attached = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    memory_budget.attach(files.members, attached.pid)
    assert stop(files) == "stopped"
    assert attached.wait(timeout=10) == -9
    assert not files.members.exists()


def test_accounting_covers_the_tree_and_skips_dead_members(tmp_path: Path) -> None:
    path = memory_budget.members_file(tmp_path, "svc")
    member = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
         "'import time; time.sleep(30)']); time.sleep(30)"],
    )  # fmt: skip
    try:
        memory_budget.attach(path, member.pid)
        path.write_text(path.read_text() + "999999999 5 1 1\nnot-a-pid\n")
        wait_for(lambda: len(process_identity.process_tree(identify_or_fail(member.pid))) == 2)
        processes = memory_budget.accounted(None, path, service_session=None)
        assert processes[0].pid == member.pid and len(processes) == 2
        assert memory_budget.usage_bytes(processes) > memory_budget.rss_bytes(member.pid)
    finally:
        for process in process_identity.process_tree(identify_or_fail(member.pid))[1:]:
            process_identity.send_signal(process, signal.SIGKILL)
        member.kill()
        member.wait()


def identify_or_fail(pid: int) -> process_identity.ProcessIdentity:
    found = process_identity.identify(pid)
    assert found is not None
    return found


def unrelated_process() -> subprocess.Popen[bytes]:
    """A process that has nothing to do with the service: its own session, not attached."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
    )


def test_a_bare_pid_in_the_members_file_is_never_killed(files: Files) -> None:
    """The reported bug: an unrelated pid listed in svc.members was SIGKILLed on stop."""
    supervise(files, "--memory-max-bytes", str(1024 * MiB))
    wait_for(lambda: state(files).get("child_pid") is not None)
    victim = unrelated_process()
    try:
        files.members.write_text(f"{victim.pid}\n1\n")  # the old format: pids alone
        assert stop(files) == "stopped"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_a_reused_pid_and_pid_1_in_the_members_file_are_refused(files: Files) -> None:
    """An entry whose pid now names another process (other start time) is not that process."""
    supervise(files, "--memory-max-bytes", str(50 * MiB))
    wait_for(lambda: state(files).get("child_pid") is not None)
    victim = subprocess.Popen([sys.executable, "-c", LEAK], start_new_session=True)
    try:
        started = identify_or_fail(victim.pid).start_time
        me = identify_or_fail(os.getpid())
        files.members.write_text(
            f"boot {process_identity.boot_id()}\n"
            f"{victim.pid} {started - 1} {me.pid} {me.start_time}\n"  # the pid, reused
            f"1 {identify_or_fail(1).start_time} {me.pid} {me.start_time}\n"
        )
        wait_for(lambda: memory_budget.rss_bytes(victim.pid) > 200 * MiB)
        time.sleep(0.6)  # two budget checks: it is not counted, so nothing trips
        assert state(files)["oom_kills"] == 0
        assert stop(files) == "stopped"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_a_member_outside_the_sessions_of_service_and_registrar_is_refused(
    files: Files,
) -> None:
    """Right pid and start time, but the registrar is gone and it is in a session of its own."""
    supervise(files, "--memory-max-bytes", str(1024 * MiB))
    wait_for(lambda: state(files).get("child_pid") is not None)
    victim = unrelated_process()
    try:
        found = identify_or_fail(victim.pid)
        files.members.write_text(
            f"boot {found.boot_id}\n{found.pid} {found.start_time} {os.getpid()} 1\n"
        )
        assert stop(files) == "stopped"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_the_child_pid_is_cleared_as_soon_as_the_child_exits(files: Files) -> None:
    """During the restart backoff the state file names no child: its pid may be reused."""
    started = subprocess.run(
        [sys.executable, "-m", "lepton_ops.services.supervise", "start", "--name", files.name,
         "--run-dir", str(files.run_dir), "--", sys.executable, "-c",
         "import time; time.sleep(0.3)"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert started.stdout.strip() == "started"
    # Exits after 0.3 s each time; the backoff doubles from 0.1 s, so after a few restarts
    # it waits seconds with no child.
    wait_for(lambda: int(str(state(files).get("restarts") or 0)) >= 4, timeout=30)
    wait_for(lambda: state(files).get("child_pid") is None, timeout=10)
    assert state(files).get("child_start_time") is None


def test_restart_without_a_command_keeps_command_and_budget_and_empties_tmp(
    files: Files,
) -> None:
    supervise(files, "--memory-max-bytes", str(300 * MiB))
    wait_for(lambda: files.state.exists() and state(files).get("child_pid") is not None)
    first = state(files)
    (files.tmp / "runaway").write_bytes(b"x" * 1024)
    restarted = subprocess.run(
        [sys.executable, "-m", "lepton_ops.services.supervise", "restart", "--name", files.name,
         "--run-dir", str(files.run_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert restarted.stdout.strip() == "restarted"
    wait_for(lambda: state(files).get("child_pid") not in (None, first["child_pid"]))
    again = state(files)
    assert again["command"] == first["command"]
    assert again["memory_max_bytes"] == 300 * MiB
    assert files.tmp.is_dir() and list(files.tmp.iterdir()) == []
