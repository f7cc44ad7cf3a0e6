"""The fleet as the inventory describes it, read with Ansible's own inventory API."""

from lepton_ops.inventory.fleet import Fleet, Node
from lepton_ops.inventory.load import load_fleet

__all__ = ["Fleet", "Node", "load_fleet"]
