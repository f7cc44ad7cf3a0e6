"""``lab.json``: what the running lab is made of, so ``status`` and ``down`` can find it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lepton_ops.errors import OperationFailed
from lepton_ops.lab.status import LabMode
from lepton_ops.lab.topology import DEFAULT_FIRST_ADDRESS

RECORD_VERSION = 2


@dataclass(frozen=True)
class NodeRecord:
    """One node as the lab started it (ssh mode: its sshd and mount namespace)."""

    name: str
    address: str
    weight: int
    sshd_pid: int | None = None
    mount_ns: str | None = None  # e.g. "mnt:[4026532301]", from /proc/PID/ns/mnt
    #: the sshd's start time (clock ticks since boot): with the pid and boot, its identity
    sshd_start_time: int | None = None
    #: the source name of the node's data-dir tmpfs, random per start: processes that see
    #: it mounted on /var/lib/lepton are the node's (see lepton_ops.lab.processes)
    data_tag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "weight": self.weight,
            "sshd_pid": self.sshd_pid,
            "mount_ns": self.mount_ns,
            "sshd_start_time": self.sshd_start_time,
            "data_tag": self.data_tag,
        }


@dataclass(frozen=True)
class LabRecord:
    """The contents of lab.json."""

    mode: LabMode
    inventory: Path
    ssh_key: Path | None
    ssh_port: int | None
    boot_id: str
    nodes: tuple[NodeRecord, ...] = field(default_factory=tuple)
    #: the first address of the lab's block (see lepton_ops.lab.topology)
    first_address: str = DEFAULT_FIRST_ADDRESS

    @property
    def pids(self) -> list[int]:
        """The processes the lab started itself (one sshd per node in ssh mode)."""
        return [node.sshd_pid for node in self.nodes if node.sshd_pid is not None]

    def node(self, name: str) -> NodeRecord | None:
        return next((node for node in self.nodes if node.name == name), None)

    def with_node(self, updated: NodeRecord) -> LabRecord:
        """This record with ``updated`` replacing the node of the same name (or added)."""
        nodes = [node for node in self.nodes if node.name != updated.name]
        nodes.append(updated)
        order = {name: index for index, name in enumerate(_sorted_names(nodes))}
        return replace(self, nodes=tuple(sorted(nodes, key=lambda node: order[node.name])))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "mode": self.mode.value,
            "inventory": str(self.inventory),
            "ssh_key": str(self.ssh_key) if self.ssh_key is not None else None,
            "ssh_port": self.ssh_port,
            "boot_id": self.boot_id,
            "first_address": self.first_address,
            "nodes": [node.to_dict() for node in self.nodes],
            "pids": self.pids,
        }


def _sorted_names(nodes: list[NodeRecord]) -> list[str]:
    return sorted((node.name for node in nodes), key=lambda name: (len(name), name))


def write_record(path: Path, record: LabRecord) -> None:
    """Write lab.json atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record.to_dict(), indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def read_record(path: Path) -> LabRecord | None:
    """lab.json's contents, or None when there is none (no lab is up)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        return LabRecord(
            mode=LabMode(data["mode"]),
            inventory=Path(data["inventory"]),
            ssh_key=Path(data["ssh_key"]) if data.get("ssh_key") else None,
            ssh_port=int(data["ssh_port"]) if data.get("ssh_port") is not None else None,
            boot_id=str(data.get("boot_id") or ""),
            first_address=str(data.get("first_address") or DEFAULT_FIRST_ADDRESS),
            nodes=tuple(
                NodeRecord(
                    name=str(node["name"]),
                    address=str(node["address"]),
                    weight=int(node["weight"]),
                    sshd_pid=int(node["sshd_pid"]) if node.get("sshd_pid") else None,
                    mount_ns=str(node["mount_ns"]) if node.get("mount_ns") else None,
                    sshd_start_time=(
                        int(node["sshd_start_time"])
                        if node.get("sshd_start_time") is not None
                        else None
                    ),
                    data_tag=str(node["data_tag"]) if node.get("data_tag") else None,
                )
                for node in data.get("nodes", [])
            ),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise OperationFailed(
            f"{path} is damaged ({exc.__class__.__name__}: {exc}): stop the lab's processes "
            f"by hand if any run, then remove the file"
        ) from None


def remove_record(path: Path) -> None:
    path.unlink(missing_ok=True)
