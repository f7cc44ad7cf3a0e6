"""What the lab reports: its mode and each node's reachability."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class LabMode(StrEnum):
    """How Ansible reaches the lab's nodes."""

    LOCAL = "local"  # ansible_connection=local, one directory tree per node, no root needed
    SSH = "ssh"  # a real sshd per node, each in its own mount namespace (root only)


@dataclass(frozen=True)
class NodeStatus:
    """One node: where it is, what it weighs, and whether it answers."""

    name: str
    address: str
    weight: int
    reachable: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "weight": self.weight,
            "reachable": self.reachable,
        }


@dataclass(frozen=True)
class LabStatus:
    """The running lab: its mode, inventory, SSH key (ssh mode only) and nodes."""

    mode: LabMode
    inventory: Path
    ssh_key: Path | None
    nodes: list[NodeStatus] = field(default_factory=list)

    @property
    def reachable(self) -> list[str]:
        """Names of the nodes that answer."""
        return [node.name for node in self.nodes if node.reachable]

    @property
    def unreachable(self) -> list[str]:
        """Names of the nodes that do not answer."""
        return [node.name for node in self.nodes if not node.reachable]

    def node(self, name: str) -> NodeStatus:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "inventory": str(self.inventory),
            "ssh_key": str(self.ssh_key) if self.ssh_key is not None else None,
            "nodes": [node.to_dict() for node in self.nodes],
        }
