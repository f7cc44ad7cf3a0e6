"""local mode: no root, ``ansible_connection: local``, one directory tree per node.

Each node's /opt/lepton, /etc/lepton and /var/lib/lepton are directories under
``<state_dir>/lab/nodes/nodeN/`` and the inventory's path variables point there.
No daemon stands for a node, so a node is *reachable* when its three directories exist:
that is all Ansible needs to act on it. Services deployed on the nodes run as the user's
own processes; ``lab down`` stops them.
"""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

from lepton_ops import process_identity
from lepton_ops.errors import OperationFailed
from lepton_ops.lab.layout import LabLayout
from lepton_ops.lab.topology import LAB_NODES, LabNode


def prepare_nodes(layout: LabLayout) -> None:
    """Create every node's directory tree (idempotent; existing data is kept)."""
    for node in LAB_NODES:
        for directory in layout.node(node).lepton_dirs:
            directory.mkdir(parents=True, exist_ok=True)


def node_reachable(layout: LabLayout, node: LabNode) -> bool:
    """local-mode reachability: the node's three directories exist."""
    return all(directory.is_dir() for directory in layout.node(node).lepton_dirs)


def stop_services(layout: LabLayout) -> None:
    """Stop the services deployed on the nodes (their supervisors and what they run).

    In ssh mode they die with the node's mount namespace; in local mode they are plain
    processes of the user, found through the supervisors' files in each node's data dir.
    """
    from lepton_ops.services.supervise import Files, stop

    failures = []
    for node in LAB_NODES:
        stop_chaos_runners(layout.node(node).prefix / "chaos")
        data_dir = layout.node(node).data_dir
        for state in sorted(data_dir.glob("*.supervisor.json")):
            name = state.name.removesuffix(".supervisor.json")
            try:
                stop(Files(data_dir, name))
            except SystemExit as exc:  # supervise reports a failed stop this way
                failures.append(f"{node.name}: {exc}")
    if failures:
        raise OperationFailed("could not stop lab services: " + "; ".join(failures))


def stop_chaos_runners(chaos_dir: Path, wait_s: float = 15.0) -> list[int]:
    """SIGTERM the chaos fault runners still running on a local-mode node; their pids.

    A runner undoes its fault on SIGTERM (a stopped service continued, busy loops and
    leaks killed) and ends its record. It is identified by its pid *and* the pid's start
    time (and boot) in its record, so a reused pid is never signalled.
    """
    runners = []
    for path in sorted(chaos_dir.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("ended_at") is not None:
                continue
            runner = process_identity.identity_of(
                record.get("pid"), record.get("pid_start"), record.get("boot_id")
            )
            if runner is not None and process_identity.send_signal(runner, signal.SIGTERM):
                runners.append(runner)
    process_identity.wait_gone(runners, wait_s)
    return [runner.pid for runner in runners]
