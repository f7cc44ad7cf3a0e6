from pathlib import Path

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.inventory import load_fleet

GOOD = """
all:
  children:
    aggregator:
      hosts:
        node3: {}
    workers:
      hosts:
        node1: {ansible_host: 127.0.1.1, lepton_weight: 100}
        node2: {ansible_host: 127.0.1.2, lepton_weight: 200}
        node3: {ansible_host: 127.0.1.3, lepton_weight: "300"}
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_nodes_weights_and_roles(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, GOOD))
    assert fleet.names == ["node1", "node2", "node3"]
    assert [n.weight for n in fleet.nodes] == [100, 200, 300]
    assert fleet.aggregator is not None and fleet.aggregator.name == "node3"
    assert [n.address for n in fleet.workers] == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]


def test_ini_inventory_with_group_vars_directory(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "workers.yml").write_text("lepton_weight: 7\n")
    write(tmp_path, "[workers]\nw1 ansible_host=127.0.1.1\nw2 ansible_host=127.0.1.2\n", "hosts")
    fleet = load_fleet(tmp_path)
    assert [(n.name, n.weight) for n in fleet.nodes] == [("w1", 7), ("w2", 7)]


def test_limit_keeps_matching_hosts(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, GOOD), limit="node1,node3")
    assert fleet.names == ["node1", "node3"]
    assert load_fleet(write(tmp_path, GOOD), limit="aggregator").names == ["node3"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace("lepton_weight: 100", "lepton_weight: 0"), "greater than 0"),
        (GOOD.replace("lepton_weight: 100", "lepton_weight: -5"), "greater than 0"),
        (GOOD.replace("lepton_weight: 100", "lepton_weight: heavy"), "whole number"),
        (GOOD.replace("lepton_weight: 100", "lepton_weight: 1.5"), "whole number"),
        (GOOD.replace("127.0.1.2", "127.0.1.1"), "share the address 127.0.1.1"),
    ],
)
def test_bad_inventories_are_bad_input(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(BadInput) as err:
        load_fleet(write(tmp_path, text))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_fleet(tmp_path / "nope.yml")


def test_unparseable_inventory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no hosts"):
        load_fleet(write(tmp_path, "all: [this is: not: an inventory\n"))


def test_unknown_limit_host(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as err:
        load_fleet(write(tmp_path, GOOD), limit="node1,node9")
    assert "node9" in str(err.value)
    assert "no host or group named node9 " in str(err.value)
