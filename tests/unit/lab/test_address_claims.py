"""Address blocks: a second lab gets its own, and a block /etc/hosts names is never used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.lab import Lab, LabMode
from lepton_ops.lab.address_claims import AddressClaims
from lepton_ops.lab.topology import address_blocks, lab_nodes


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    return path


def claims(tmp_path: Path, hosts: Path) -> AddressClaims:
    return AddressClaims(tmp_path / "claims", hosts_file=hosts)


def test_blocks_are_five_addresses_apart_by_ten_inside_the_lab_network() -> None:
    blocks = address_blocks()
    assert blocks[:3] == ["127.0.1.1", "127.0.1.11", "127.0.1.21"]
    assert [node.address for node in lab_nodes("127.0.1.11")] == [
        "127.0.1.11", "127.0.1.12", "127.0.1.13", "127.0.1.14", "127.0.1.15"]  # fmt: skip
    with pytest.raises(BadInput, match="does not start a lab address block"):
        lab_nodes("127.0.1.2")


def test_a_second_lab_gets_the_next_block_and_the_first_keeps_its_own(
    tmp_path: Path, hosts: Path
) -> None:
    registry = claims(tmp_path, hosts)
    first = Lab(tmp_path / "a", claims=registry)
    second = Lab(tmp_path / "b", claims=registry)
    first.up(LabMode.LOCAL)
    second.up(LabMode.LOCAL)
    assert first.nodes[0].address == "127.0.1.1"
    assert second.nodes[0].address == "127.0.1.11"
    inventory = second.inventory_path.read_text()
    assert "127.0.1.11" in inventory and "127.0.1.1\n" not in inventory
    first.up(LabMode.LOCAL)  # idempotent: keeps its block
    assert first.nodes[0].address == "127.0.1.1"
    first.down()
    # The freed block goes to the next lab; the second keeps its own.
    third = Lab(tmp_path / "c", claims=registry)
    third.up(LabMode.LOCAL)
    assert third.nodes[0].address == "127.0.1.1"
    assert second.nodes[0].address == "127.0.1.11"
    with pytest.raises(BadInput, match="used by the lab in"):
        Lab(tmp_path / "d", claims=registry, first_address="127.0.1.11").up(LabMode.LOCAL)
    second.down()
    third.down()


def test_a_block_whose_address_etc_hosts_names_is_skipped_or_refused(
    tmp_path: Path, hosts: Path
) -> None:
    """Debian names the machine on 127.0.1.1: partitioning that node would cut it off."""
    hosts.write_text(hosts.read_text() + "127.0.1.1\tdebian-box\n")
    registry = claims(tmp_path, hosts)
    lab = Lab(tmp_path / "a", claims=registry)
    lab.up(LabMode.LOCAL)
    assert lab.nodes[0].address == "127.0.1.11"
    lab.down()
    with pytest.raises(BadInput, match=r"127\.0\.1\.1 \(debian-box\) is named in"):
        Lab(tmp_path / "b", claims=registry, first_address="127.0.1.1").up(LabMode.LOCAL)


def test_a_claim_of_a_lab_that_is_gone_does_not_hold_its_block(tmp_path: Path, hosts: Path) -> None:
    registry = claims(tmp_path, hosts)
    registry.directory.mkdir(parents=True)
    stale = {"state_dir": str(tmp_path / "vanished"), "boot_id": "another-boot"}
    (registry.directory / "127.0.1.1.json").write_text(json.dumps(stale))
    lab = Lab(tmp_path / "a", claims=registry)
    lab.up(LabMode.LOCAL)
    assert lab.nodes[0].address == "127.0.1.1"
    lab.down()


def test_a_users_lab_respects_a_block_roots_lab_holds(tmp_path: Path, hosts: Path) -> None:
    """Every lab shares 127.0.1.0/24: a user's lab skips what a root lab claimed
    machine-wide, and is refused it when asking for it."""
    machine_wide = tmp_path / "machine-wide"
    root_lab = Lab(tmp_path / "root", claims=AddressClaims(machine_wide, hosts_file=hosts))
    root_lab.up(LabMode.LOCAL)
    mine = AddressClaims(tmp_path / "mine", hosts_file=hosts, respected=(machine_wide,))
    lab = Lab(tmp_path / "user", claims=mine)
    lab.up(LabMode.LOCAL)
    assert root_lab.nodes[0].address == "127.0.1.1"
    assert lab.nodes[0].address == "127.0.1.11"
    with pytest.raises(BadInput, match="used by the lab in"):
        Lab(tmp_path / "other", claims=mine, first_address="127.0.1.1").up(LabMode.LOCAL)
    lab.down()
    root_lab.down()
