"""Reachability probes and process helpers, against listeners this test starts itself."""

import os
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.lab import processes
from lepton_ops.lab.probe import port_is_free, probe_all, ssh_banner_reachable

ADDRESS = "127.0.1.250"  # inside the lab network, not a lab node


def serve(banner: bytes | None) -> Iterator[int]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ADDRESS, 0))
    server.listen()
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    def answer(conn: socket.socket) -> None:
        with conn:
            if banner is not None:
                conn.sendall(banner)
            stop.wait(1.5)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def ssh_like() -> Iterator[int]:
    yield from serve(b"SSH-2.0-OpenSSH_test\r\n")


@pytest.fixture
def silent() -> Iterator[int]:
    yield from serve(None)


def test_banner_means_reachable(ssh_like: int) -> None:
    assert ssh_banner_reachable(ADDRESS, ssh_like)
    assert probe_all([ADDRESS, ADDRESS], ssh_like) == [True, True]


def test_silent_listener_is_unreachable_within_the_timeout(silent: int) -> None:
    assert not ssh_banner_reachable(ADDRESS, silent, timeout=0.3)


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        port = sock.getsockname()[1]
    assert not ssh_banner_reachable(ADDRESS, port, timeout=0.3)


def test_port_is_free(ssh_like: int) -> None:
    assert not port_is_free(ADDRESS, ssh_like)
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        port = sock.getsockname()[1]
    assert port_is_free(ADDRESS, port)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1"])
def test_probes_never_leave_the_lab_network(address: str) -> None:
    with pytest.raises(BadInput):
        ssh_banner_reachable(address, 22)
    with pytest.raises(BadInput):
        port_is_free(address, 22)


def test_host_namespace_is_never_emptied() -> None:
    own = processes.mount_namespace(os.getpid())
    assert own is not None and own.startswith("mnt:[")
    assert processes.pids_in_namespace(own) == []


def test_stop_processes_terminates_and_reports() -> None:
    child = subprocess.Popen(["sleep", "60"])
    assert processes.is_running(child.pid)
    identity = processes.process_identity.identify(child.pid)
    assert identity is not None
    assert processes.stop_processes([identity], grace_seconds=2) == []
    assert not processes.is_running(child.pid)
    child.wait()


def test_is_running_is_false_for_a_missing_pid() -> None:
    assert not processes.is_running(2**22 + 12345)
    assert processes.mount_namespace(2**22 + 12345) is None
