"""Lab status and the local-mode lifecycle through the Python API (no root, no network)."""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.lab import (
    Lab,
    LabMode,
    LabStatus,
    NodeStatus,
    current_inventory,
    firewall,
    ssh_mode,
)
from lepton_ops.lab import lab as lab_module
from lepton_ops.lab.record import LabRecord, NodeRecord, read_record, write_record


@pytest.fixture(autouse=True)
def no_real_firewall(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Unit tests never touch the machine's firewall (lab down removes the lab chain)."""
    calls: list[str] = []
    monkeypatch.setattr(firewall.LabFirewall, "remove", lambda self: calls.append("remove"))
    return calls


def test_status_to_dict_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    status = LabStatus(
        mode=LabMode.SSH,
        inventory=tmp_path / "inventory.yml",
        ssh_key=tmp_path / "id_ed25519",
        nodes=[
            NodeStatus("node1", "127.0.1.1", 100, True),
            NodeStatus("node2", "127.0.1.2", 200, False),
        ],
    )
    data = json.loads(json.dumps(status.to_dict()))
    assert list(data) == ["mode", "inventory", "ssh_key", "nodes"]
    assert data["mode"] == "ssh"
    assert data["inventory"] == str(tmp_path / "inventory.yml")
    assert data["ssh_key"] == str(tmp_path / "id_ed25519")
    assert data["nodes"][1] == {
        "name": "node2",
        "address": "127.0.1.2",
        "weight": 200,
        "reachable": False,
    }
    assert list(data["nodes"][0]) == ["name", "address", "weight", "reachable"]
    assert status.reachable == ["node1"] and status.unreachable == ["node2"]


def test_local_status_has_null_ssh_key(tmp_path: Path) -> None:
    status = Lab(tmp_path).up(LabMode.LOCAL)
    data = status.to_dict()
    assert data["mode"] == "local"
    assert data["ssh_key"] is None
    assert [node["weight"] for node in data["nodes"]] == [100, 200, 300, 400, 500]
    assert all(node["reachable"] for node in data["nodes"])


def test_local_up_writes_inventory_record_and_node_dirs(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    assert not lab.is_up() and current_inventory(tmp_path) is None
    status = lab.up(LabMode.LOCAL)
    assert lab.is_up()
    assert status.inventory == lab.inventory_path == tmp_path / "lab" / "inventory.yml"
    assert current_inventory(tmp_path) == lab.inventory_path
    for name in ("node1", "node5"):
        for directory in lab.node_paths(name).lepton_dirs:
            assert directory.is_dir()
    record = json.loads((tmp_path / "lab" / "lab.json").read_text())
    assert record["mode"] == "local"
    assert record["pids"] == []
    assert [node["name"] for node in record["nodes"]] == [f"node{i}" for i in range(1, 6)]


def test_local_reachability_is_the_node_directories(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.up(LabMode.LOCAL)
    lab.node_paths("node2").data_dir.rmdir()
    assert lab.status().unreachable == ["node2"]
    lab.up(LabMode.LOCAL)  # up again repairs it
    assert lab.status().unreachable == []


def test_up_twice_is_harmless_and_keeps_data(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.up(LabMode.LOCAL)
    marker = lab.node_paths("node3").prefix / "marker"
    marker.write_text("kept")
    assert lab.up(LabMode.LOCAL).unreachable == []
    assert marker.read_text() == "kept"


def test_down_keeps_data_unless_purged(tmp_path: Path, no_real_firewall: list[str]) -> None:
    lab = Lab(tmp_path)
    lab.up(LabMode.LOCAL)
    marker = lab.node_paths("node1").config_dir / "marker"
    marker.write_text("kept")
    lab.down()
    assert not lab.is_up() and current_inventory(tmp_path) is None
    assert not lab.inventory_path.exists()
    assert marker.read_text() == "kept"
    assert no_real_firewall == ["remove"]
    lab.up(LabMode.LOCAL)
    assert marker.exists()
    lab.down(purge=True)
    assert not marker.exists()
    assert not (tmp_path / "lab" / "nodes").exists()


def test_down_without_a_lab_is_harmless(tmp_path: Path) -> None:
    Lab(tmp_path).down()
    Lab(tmp_path / "never-created").down(purge=True)
    assert not (tmp_path / "never-created").exists()


def test_status_without_a_lab_fails(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match="no lab is up"):
        Lab(tmp_path).status()


def test_other_mode_while_up_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = Lab(tmp_path)
    lab.up(LabMode.LOCAL)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(ssh_mode, "check_prerequisites", lambda layout: None)
    with pytest.raises(BadInput, match="lab down"):
        lab.up(LabMode.SSH)


def test_ssh_mode_without_root_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(BadInput, match="needs root"):
        Lab(tmp_path).up(LabMode.SSH)
    assert not (tmp_path / "lab" / "lab.json").exists()


def test_ssh_lab_down_without_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = Lab(tmp_path)
    lab.up(LabMode.LOCAL)
    record = read_record(lab.record_path)
    assert record is not None
    write_record(lab.record_path, replace(record, mode=LabMode.SSH))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(BadInput, match="as root"):
        lab.down()
    assert lab.is_up()  # nothing was forgotten


def test_default_mode_follows_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert lab_module.default_mode() is LabMode.LOCAL
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert lab_module.default_mode() is LabMode.SSH


def test_bad_port_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="port"):
        Lab(tmp_path, ssh_port=70000)


def test_record_round_trip(tmp_path: Path) -> None:
    record = LabRecord(
        mode=LabMode.SSH,
        inventory=tmp_path / "inventory.yml",
        ssh_key=tmp_path / "key",
        ssh_port=22,
        boot_id="boot",
        nodes=(NodeRecord("node2", "127.0.1.2", 200, 42, "mnt:[1]"),),
    ).with_node(NodeRecord("node1", "127.0.1.1", 100, 41, "mnt:[2]"))
    path = tmp_path / "lab.json"
    write_record(path, record)
    assert read_record(path) == record
    assert [node.name for node in record.nodes] == ["node1", "node2"]
    assert json.loads(path.read_text())["pids"] == [41, 42]


def test_damaged_record_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text("{not json")
    with pytest.raises(OperationFailed, match="damaged"):
        read_record(path)
