"""A service's memory budget without cgroups: what systemd's ``MemoryMax=`` does, in user space.

The lab must not create or change the machine's cgroups, yet its faults must end in real
failures. So the lepton supervisor accounts a service's memory itself: the resident
memory (VmRSS) of the service's process tree plus the processes *attached* to the service
(listed in ``<run_dir>/<name>.members`` by identity - the way a pid written to a cgroup's
``cgroup.procs`` joins the cgroup). When the sum passes the budget the supervisor kills
them all, as the kernel's OOM killer does inside a cgroup whose ``memory.max`` is hit, and
the service restarts. Who may be counted and killed is decided by
:mod:`lepton_ops.process_identity` alone: a listed process that is not provably the one
attached (a reused pid, pid 1, someone outside the service's or its registrar's session)
is neither counted nor killed.

Standard library only: the supervisor runs on nodes before anything else works.
"""

from __future__ import annotations

import signal
from pathlib import Path

from lepton_ops import process_identity
from lepton_ops.process_identity import ProcessIdentity

PROC = Path("/proc")


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` in bytes; 0 when it has none or is gone."""
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def members_file(run_dir: Path, name: str) -> Path:
    return process_identity.members_file(run_dir, name)


def attach(path: Path, pid: int) -> None:
    """Attach ``pid`` (a child of the caller) to the service whose members file is ``path``."""
    process_identity.add_member(path, pid)


def accounted(
    child: ProcessIdentity | None, members_path: Path, service_session: int | None
) -> list[ProcessIdentity]:
    """Every process the budget covers: the service's tree and each verified member's tree."""
    roots = [child] if child is not None else []
    roots += process_identity.live_members(members_path, service_session)
    found: list[ProcessIdentity] = []
    for root in roots:
        found.extend(p for p in process_identity.process_tree(root) if p not in found)
    return found


def usage_bytes(processes: list[ProcessIdentity]) -> int:
    return sum(rss_bytes(process.pid) for process in processes)


def kill_all(processes: list[ProcessIdentity]) -> list[ProcessIdentity]:
    """SIGKILL each of ``processes`` that is still itself; those that were killed."""
    return process_identity.signal_all(processes, signal.SIGKILL)
