"""local mode: no root, ``ansible_connection: local``, one directory tree per node.

Each node's /opt/lepton, /etc/lepton and /var/lib/lepton are directories under
``<state_dir>/lab/nodes/nodeN/`` and the inventory's path variables point there.
Nothing runs, so a node is *reachable* when its three directories exist: that is all
Ansible needs to act on it.
"""

from __future__ import annotations

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
