"""The one module that signals processes: only the recorded process, never pid 1, never
the caller or its ancestors, never a pid that now names another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from lepton_ops import process_identity
from lepton_ops.process_identity import ProcessIdentity


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield process
    process.kill()
    process.wait()


def identity(pid: int) -> ProcessIdentity:
    found = process_identity.identify(pid)
    assert found is not None
    return found


def test_identity_is_pid_start_time_and_boot(sleeper: subprocess.Popen[bytes]) -> None:
    found = identity(sleeper.pid)
    assert found.pid == sleeper.pid and found.boot_id == process_identity.boot_id()
    assert found.alive() and found.matches_now()
    assert process_identity.identify(2**22 + 12345) is None


def test_a_pid_that_names_another_process_now_is_not_signalled(
    sleeper: subprocess.Popen[bytes],
) -> None:
    """What a reused pid looks like: the same pid, another start time."""
    reused = replace(identity(sleeper.pid), start_time=identity(sleeper.pid).start_time - 1)
    assert not process_identity.send_signal(reused, signal.SIGKILL)
    assert process_identity.stop_processes([reused], grace_seconds=0.1) == []
    assert sleeper.poll() is None
    other_boot = replace(identity(sleeper.pid), boot_id="another-boot")
    assert not process_identity.send_signal(other_boot, signal.SIGKILL)
    assert sleeper.poll() is None


def test_pid_1_the_caller_and_its_ancestors_are_never_signalled() -> None:
    for pid in (1, os.getpid(), os.getppid(), *process_identity.ancestors(os.getpid())):
        found = process_identity.identify(pid)
        if found is not None:
            assert not process_identity.send_signal(found, 0)


def test_the_recorded_process_is_signalled(sleeper: subprocess.Popen[bytes]) -> None:
    assert process_identity.send_signal(identity(sleeper.pid), signal.SIGTERM)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM


def test_stop_escalates_to_sigkill_only_for_the_same_process() -> None:
    stubborn = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"],
    )  # fmt: skip
    try:
        time.sleep(0.5)  # let it install its handler first
        assert process_identity.stop_processes([identity(stubborn.pid)], grace_seconds=0.5) == []
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def test_members_file_round_trip_and_garbage(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = process_identity.members_file(tmp_path, "svc")
    member = process_identity.add_member(path, sleeper.pid)
    assert member.registrar == identity(os.getpid())
    assert process_identity.read_members(path) == [member]
    path.write_text(path.read_text() + "12345\n1 5 6 7\nnope\n")  # none of them an entry
    assert process_identity.read_members(path) == [member]
    # The registrar (this process) lives and shares the member's session: it is ours.
    assert process_identity.live_members(path, service_session=None) == [member.process]
    process_identity.remove_members(path, [sleeper.pid])
    assert not path.exists()


def test_in_inits_session_only_the_registrars_descendants_are_ours(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container (or CI runner) where every process, pid 1 included, shares one session:
    the session proves nothing, descent from the live registrar does."""
    monkeypatch.setattr(process_identity, "session_id", lambda pid: 0)
    path = process_identity.members_file(tmp_path, "svc")
    member = process_identity.add_member(path, sleeper.pid)  # our child
    assert process_identity.live_members(path, service_session=None) == [member.process]
    # A service left in init's session does not make every process there its own.
    assert process_identity.live_members(path, service_session=0) == [member.process]
    # Registered by a live process that is not its ancestor (a sibling): not ours.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        path.write_text(
            f"boot {process_identity.boot_id()}\n"
            f"{member.process.pid} {member.process.start_time} "
            f"{other.pid} {identity(other.pid).start_time}\n"
        )
        assert process_identity.read_members(path)[0].registrar == identity(other.pid)
        assert process_identity.live_members(path, service_session=None) == []
        assert process_identity.live_members(path, service_session=0) == []
    finally:
        other.kill()
        other.wait()
