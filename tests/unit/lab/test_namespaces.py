"""A node's processes are found by proof, never by a namespace id alone.

Namespace ids are reused as soon as a namespace is gone, so a lab whose sshd died must not
empty whatever namespace now has the recorded id (another lab's node, a container).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton_ops import process_identity
from lepton_ops.lab import processes, ssh_mode
from lepton_ops.lab.record import NodeRecord

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (mount namespaces)",
)


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class Namespaced:
    """A process in a mount namespace of its own, with a tmpfs of source ``tag`` at ``at``."""

    def __init__(self, at: Path, tag: str) -> None:
        at.mkdir(parents=True, exist_ok=True)
        script = f"mount -t tmpfs -o size=1m {tag} {at} && exec sleep 300"
        self.shell = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", script]
        )
        wait_for(lambda: self.namespace() not in (None, *processes.host_namespaces()))

    @property
    def pid(self) -> int:
        return self.shell.pid  # unshare execs the shell, which execs sleep: one pid

    def namespace(self) -> str | None:
        return processes.mount_namespace(self.pid)

    def close(self) -> None:
        self.shell.kill()
        self.shell.wait()


@pytest.fixture
def bystander(tmp_path: Path) -> Iterator[Namespaced]:
    """Somebody else's namespace that happens to carry an id a dead lab node recorded."""
    process = Namespaced(tmp_path / "theirs", "their-data")
    yield process
    process.close()


@needs_root
def test_a_reused_namespace_id_with_a_dead_sshd_kills_nothing(bystander: Namespaced) -> None:
    """The reported bug: stop_node emptied the recorded namespace although the sshd was gone."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = NodeRecord(
        name="node3",
        address="127.0.1.3",
        weight=300,
        sshd_pid=dead.pid,
        mount_ns=bystander.namespace(),  # the id, reused by someone else's namespace
        sshd_start_time=1,
        data_tag="lepton-data-node3-0123456789abcdef",
    )
    assert ssh_mode.stop_node(record, process_identity.boot_id()) == []
    assert bystander.shell.poll() is None
    # A record of an earlier version (no tag) proves nothing either.
    old = NodeRecord(name="node3", address="127.0.1.3", weight=300, sshd_pid=dead.pid,
                     mount_ns=bystander.namespace())  # fmt: skip
    assert ssh_mode.stop_node(old, process_identity.boot_id()) == []
    assert bystander.shell.poll() is None


@needs_root
def test_leftovers_of_a_dead_node_are_found_by_their_tagged_mount(tmp_path: Path) -> None:
    ours = Namespaced(tmp_path / "data", "lepton-data-node2-feedface")
    try:
        namespace = ours.namespace()
        assert namespace is not None
        # unshare makes the namespace before the shell mounts the tmpfs in it.
        wait_for(
            lambda: processes.mounts_tagged(
                ours.pid, tmp_path / "data", "lepton-data-node2-feedface"
            )
        )
        found = processes.tagged_in_namespace(
            namespace, tmp_path / "data", "lepton-data-node2-feedface"
        )
        assert [identity.pid for identity in found] == [ours.pid]
        assert (
            processes.tagged_in_namespace(namespace, tmp_path / "data", "lepton-data-other") == []
        )
    finally:
        ours.close()


@needs_root
def test_a_live_sshd_with_another_start_time_is_not_the_node(bystander: Namespaced) -> None:
    """A recorded sshd pid that is alive but started at another time is a reused pid."""
    start = process_identity.start_time(bystander.pid)
    assert start is not None
    record = NodeRecord(name="node1", address="127.0.1.1", weight=100, sshd_pid=bystander.pid,
                        mount_ns=bystander.namespace(), sshd_start_time=start + 1)  # fmt: skip
    assert not ssh_mode.node_running(record, process_identity.boot_id())
    assert ssh_mode.stop_node(record, process_identity.boot_id()) == []
    assert bystander.shell.poll() is None
