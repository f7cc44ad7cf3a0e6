"""A service's memory budget without cgroups: what systemd's ``MemoryMax=`` does, in user space.

The lab must not create or change the machine's cgroups, yet its faults must end in real
failures. So the lepton supervisor accounts a service's memory itself: the resident
memory (VmRSS) of the service's process tree plus the processes *attached* to the service
(their pids listed in ``<run_dir>/<name>.members``, one per line - the way a pid written
to a cgroup's ``cgroup.procs`` joins the cgroup). When the sum passes the budget the
supervisor kills them all, as the kernel's OOM killer does inside a cgroup whose
``memory.max`` is hit, and the service restarts.

Standard library only: the supervisor runs on nodes before anything else works.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

PROC = Path("/proc")


def _parent(pid: int) -> int | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    fields = text[text.rfind(")") + 1 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        if pid in found:
            continue
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


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
    return run_dir / f"{name}.members"


def read_members(path: Path) -> list[int]:
    """The live pids attached to a service (dead ones are ignored, the file is kept)."""
    try:
        words = path.read_text(encoding="utf-8").split()
    except OSError:
        return []
    pids = {int(word) for word in words if word.isdigit() and int(word) > 0}
    return sorted(pid for pid in pids if _parent(pid) is not None)


def attach(path: Path, pid: int) -> None:
    """Attach ``pid`` to the service whose members file is ``path``."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{pid}\n")


def accounted_pids(child: int | None, members: list[int]) -> list[int]:
    """Every process the budget covers: the service's tree and each member's tree."""
    pids: list[int] = []
    for root in ([child] if child is not None else []) + members:
        pids.extend(pid for pid in process_tree(root) if pid not in pids)
    return pids


def usage_bytes(pids: list[int]) -> int:
    return sum(rss_bytes(pid) for pid in pids)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
