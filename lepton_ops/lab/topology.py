"""The lab's fixed node table: five nodes on the loopback range 127.0.1.0/24."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address

from lepton_ops.errors import BadInput

LAB_NETWORK = IPv4Network("127.0.1.0/24")
AGGREGATOR_GROUP = "aggregator"
WORKERS_GROUP = "workers"
DEFAULT_SSH_PORT = 22
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


def _make_nodes() -> tuple[LabNode, ...]:
    nodes = []
    for index in range(1, 6):
        groups = (AGGREGATOR_GROUP, WORKERS_GROUP) if index == 5 else (WORKERS_GROUP,)
        nodes.append(
            LabNode(
                name=f"node{index}",
                address=f"127.0.1.{index}",
                weight=100 * index,
                groups=groups,
            )
        )
    return tuple(nodes)


LAB_NODES: tuple[LabNode, ...] = _make_nodes()


def node_named(name: str) -> LabNode:
    """The lab node called ``name`` (BadInput if there is none)."""
    for node in LAB_NODES:
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
