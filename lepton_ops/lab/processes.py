"""Finding the lab's processes through /proc, by identity.

A node's processes are found by mount namespace - the node's sshd runs in a namespace of
its own, and everything it starts (SSH sessions, later the lepton services) inherits it -
but a namespace id alone proves nothing: ids are reused as soon as a namespace is gone.
So a namespace is only taken for the node's while it is proven to be:

* through the node's live sshd (its recorded pid, start time and boot), or
* when that sshd is gone, per process: the process must still see the node's data
  directory, a tmpfs whose source name is a random tag made for that node when it started
  (``/proc/PID/mountinfo``) - no other namespace on the machine has that mount.

Signals go through :mod:`lepton_ops.process_identity`, never by bare pid.
"""

from __future__ import annotations

import os
from pathlib import Path

from lepton_ops import process_identity
from lepton_ops.process_identity import ProcessIdentity

PROC = Path("/proc")

boot_id = process_identity.boot_id
is_running = process_identity.is_running
stop_processes = process_identity.stop_processes


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


def command_name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def pids_in_namespace(namespace: str) -> list[ProcessIdentity]:
    """Every live process whose mount namespace is ``namespace`` now (never the host's).

    Only meaningful while the namespace is proven to be the one meant (see the module).
    """
    if namespace in host_namespaces():
        return []
    protected = process_identity.protected_pids()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in protected:
            continue
        pid = int(entry.name)
        if mount_namespace(pid) == namespace and is_running(pid):
            identity = process_identity.identify(pid)
            if identity is not None:
                found.append(identity)
    return sorted(found, key=lambda identity: identity.pid)


def mounts_tagged(pid: int, mount_point: Path, source: str) -> bool:
    """Whether ``pid`` sees a mount of ``source`` (its file system's source name) on
    ``mount_point`` - the proof that it lives in the namespace that mounted it."""
    try:
        lines = (PROC / str(pid) / "mountinfo").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        # id parent major:minor root mount_point options [optional...] - type source super
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if (
            len(fields) >= 5
            and len(tail) >= 2
            and (fields[4], tail[1]) == (str(mount_point), source)
        ):
            return True
    return False


def tagged_in_namespace(namespace: str, mount_point: Path, source: str) -> list[ProcessIdentity]:
    """The processes of ``namespace`` that prove, each by its mounts, to be the node's."""
    return [
        identity
        for identity in pids_in_namespace(namespace)
        if mounts_tagged(identity.pid, mount_point, source)
    ]
