from pathlib import Path

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.lab import LAB_NETWORK, LAB_NODES, node_named
from lepton_ops.lab.layout import LabLayout
from lepton_ops.lab.topology import lab_address


def test_five_nodes_with_addresses_and_weights() -> None:
    assert [node.name for node in LAB_NODES] == ["node1", "node2", "node3", "node4", "node5"]
    assert [node.address for node in LAB_NODES] == [f"127.0.1.{i}" for i in range(1, 6)]
    assert [node.weight for node in LAB_NODES] == [100, 200, 300, 400, 500]
    assert str(LAB_NETWORK) == "127.0.1.0/24"


def test_node5_is_the_aggregator_and_everyone_works() -> None:
    assert [node.name for node in LAB_NODES if node.is_aggregator] == ["node5"]
    assert all("workers" in node.groups for node in LAB_NODES)


def test_node_named() -> None:
    assert node_named("node3").address == "127.0.1.3"
    with pytest.raises(BadInput, match="no node named 'node9'"):
        node_named("node9")


@pytest.mark.parametrize("address", ["127.0.1.1", "127.0.1.5", "127.0.1.254", " 127.0.1.3 "])
def test_lab_addresses_are_accepted(address: str) -> None:
    assert str(lab_address(address)) == address.strip()


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.2.1", "10.0.0.1", "8.8.8.8", "::1", "0.0.0.0", "nonsense", ""]
)
def test_addresses_outside_the_lab_are_refused(address: str) -> None:
    with pytest.raises(BadInput):
        lab_address(address)


def test_layout_puts_everything_under_state_dir_lab(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    node3 = layout.node("node3")
    assert layout.inventory == tmp_path / "lab" / "inventory.yml"
    assert layout.record == tmp_path / "lab" / "lab.json"
    assert node3.prefix == tmp_path / "lab" / "nodes" / "node3" / "opt" / "lepton"
    assert node3.config_dir == tmp_path / "lab" / "nodes" / "node3" / "etc" / "lepton"
    assert node3.data_dir == tmp_path / "lab" / "nodes" / "node3" / "var" / "lib" / "lepton"
    # The data dir is not bound: in ssh mode it is a size-limited tmpfs (see ssh_mode).
    assert [str(target) for _, target in node3.bind_pairs()] == ["/opt/lepton", "/etc/lepton"]
