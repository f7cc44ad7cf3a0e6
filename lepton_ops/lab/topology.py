"""The lab's node table: five nodes on a block of the loopback range 127.0.1.0/24.

The default block is 127.0.1.1-5. Other blocks (127.0.1.11-15, .21-25, ... .241-245) let
a second lab run on the same machine, or a lab avoid an address that /etc/hosts gives to
the machine's own name (Debian puts the hostname on 127.0.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address

from lepton_ops.errors import BadInput

LAB_NETWORK = IPv4Network("127.0.1.0/24")
AGGREGATOR_GROUP = "aggregator"
WORKERS_GROUP = "workers"
DEFAULT_SSH_PORT = 22
DEFAULT_FIRST_ADDRESS = "127.0.1.1"
NODE_COUNT = 5
BLOCK_STEP = 10
#: Each node's budgets, so that faults end in real failures (see lepton_ops.chaos): the
#: memory budget of each lepton service (inventory ``lepton_memory_max_mb``), and in ssh
#: mode the size of the node's data directory, a tmpfs in its own mount namespace
#: (``lepton_data_quota_mb``).
NODE_MEMORY_MAX_MB = 640
NODE_DATA_QUOTA_MB = 128


@dataclass(frozen=True)
class LabNode:
    """One lab node: its inventory name, loopback address, capacity weight and groups."""

    name: str
    address: str
    weight: int
    groups: tuple[str, ...]

    @property
    def is_aggregator(self) -> bool:
        return AGGREGATOR_GROUP in self.groups


def address_blocks() -> list[str]:
    """The first address of every block the lab may use, the default first."""
    return [str(LAB_NETWORK.network_address + 1 + BLOCK_STEP * k) for k in range(25)]


def lab_nodes(first_address: str = DEFAULT_FIRST_ADDRESS) -> tuple[LabNode, ...]:
    """The five nodes of the block starting at ``first_address`` (BadInput if no block does)."""
    if first_address not in address_blocks():
        raise BadInput(
            f"{first_address} does not start a lab address block: give one of "
            f"127.0.1.1, 127.0.1.11, 127.0.1.21 ... 127.0.1.241"
        )
    first = IPv4Address(first_address)
    nodes = []
    for index in range(1, NODE_COUNT + 1):
        groups = (AGGREGATOR_GROUP, WORKERS_GROUP) if index == NODE_COUNT else (WORKERS_GROUP,)
        nodes.append(
            LabNode(
                name=f"node{index}",
                address=str(first + index - 1),
                weight=100 * index,
                groups=groups,
            )
        )
    return tuple(nodes)


#: The nodes of the default block (a lab's own nodes: :attr:`Lab.nodes`).
LAB_NODES: tuple[LabNode, ...] = lab_nodes()


def node_named(name: str, nodes: tuple[LabNode, ...] = LAB_NODES) -> LabNode:
    """The lab node called ``name`` among ``nodes`` (BadInput if there is none)."""
    for node in nodes:
        if node.name == name:
            return node
    known = ", ".join(node.name for node in LAB_NODES)
    raise BadInput(f"the lab has no node named {name!r} (nodes: {known})")


def lab_address(address: str) -> IPv4Address:
    """``address`` parsed, if it is inside the lab's 127.0.1.0/24; BadInput otherwise."""
    try:
        parsed = ip_address(address.strip())
    except ValueError:
        raise BadInput(
            f"{address!r} is not an IP address: give a lab node address in {LAB_NETWORK}"
        ) from None
    if not isinstance(parsed, IPv4Address) or parsed not in LAB_NETWORK:
        raise BadInput(
            f"{address} is outside the lab network {LAB_NETWORK}: the lab only touches its "
            f"own addresses"
        )
    return parsed
