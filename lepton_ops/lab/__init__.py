"""The embedded lab: five nodes on 127.0.1.1-5 or another free block (local or ssh mode).

Public API (other packages depend on these names)::

    current_inventory(state_dir) -> Path | None
    Lab(state_dir).up(mode) / .status() / .down() / .is_up() / .nodes / .node(name)
    Lab(state_dir).firewall().cut_off(address, owner) / .restore(address, owner)
    LabMode, LabStatus, NodeStatus
"""

from lepton_ops.lab.lab import Lab, current_inventory, default_mode
from lepton_ops.lab.status import LabMode, LabStatus, NodeStatus
from lepton_ops.lab.topology import LAB_NETWORK, LAB_NODES, LabNode, node_named

__all__ = [
    "LAB_NETWORK",
    "LAB_NODES",
    "Lab",
    "LabMode",
    "LabNode",
    "LabStatus",
    "NodeStatus",
    "current_inventory",
    "default_mode",
    "node_named",
]
