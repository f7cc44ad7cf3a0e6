import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lepton_ops.inventory import load_fleet
from lepton_ops.lab.inventory_file import SshSettings, node_python, write_inventory
from lepton_ops.lab.layout import LabLayout
from lepton_ops.lab.status import LabMode

ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def ssh_settings(layout: LabLayout, port: int = 22) -> SshSettings:
    return SshSettings(
        user="root", port=port, private_key=layout.ssh_key, known_hosts=layout.known_hosts
    )


def ansible_inventory_list(path: Path) -> dict:  # type: ignore[type-arg]
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_local_inventory_loads_with_load_fleet(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    path = write_inventory(layout, LabMode.LOCAL)
    fleet = load_fleet(path)
    assert fleet.names == ["node1", "node2", "node3", "node4", "node5"]
    assert [node.weight for node in fleet.nodes] == [100, 200, 300, 400, 500]
    assert [node.address for node in fleet.nodes] == [f"127.0.1.{i}" for i in range(1, 6)]
    assert fleet.aggregator is not None and fleet.aggregator.name == "node5"
    assert [node.name for node in fleet.workers] == fleet.names
    node2 = fleet.node("node2")
    assert node2.vars["lepton_prefix"] == str(layout.node("node2").prefix)
    assert node2.vars["lepton_config_dir"] == str(layout.node("node2").config_dir)
    assert node2.vars["lepton_data_dir"] == str(layout.node("node2").data_dir)


def test_local_inventory_with_ansible_inventory(tmp_path: Path) -> None:
    path = write_inventory(LabLayout(tmp_path), LabMode.LOCAL)
    listing = ansible_inventory_list(path)
    assert listing["aggregator"]["hosts"] == ["node5"]
    assert listing["workers"]["hosts"] == ["node1", "node2", "node3", "node4", "node5"]
    hostvars = listing["_meta"]["hostvars"]
    assert hostvars["node4"]["ansible_connection"] == "local"
    assert hostvars["node4"]["ansible_host"] == "127.0.1.4"
    assert hostvars["node4"]["lepton_weight"] == 400
    assert "ansible_ssh_private_key_file" not in hostvars["node4"]
    python = hostvars["node1"]["ansible_python_interpreter"]
    assert Path(python).is_file() and os.access(python, os.X_OK)


def test_ssh_inventory_with_ansible_inventory(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    path = write_inventory(layout, LabMode.SSH, ssh_settings(layout, port=2222))
    hostvars = ansible_inventory_list(path)["_meta"]["hostvars"]
    node3 = hostvars["node3"]
    assert node3["ansible_host"] == "127.0.1.3"
    assert node3["ansible_user"] == "root"
    assert node3["ansible_port"] == 2222
    assert node3["ansible_ssh_private_key_file"] == str(layout.ssh_key)
    assert node3["ansible_ssh_pipelining"] is True
    args = node3["ansible_ssh_common_args"].split()
    assert f"UserKnownHostsFile={layout.known_hosts}" in args
    assert "StrictHostKeyChecking=yes" in args
    assert "IdentitiesOnly=yes" in args
    # In ssh mode every node sees its own /opt/lepton etc. through its mount namespace.
    assert node3["lepton_prefix"] == "/opt/lepton"
    assert node3["lepton_config_dir"] == "/etc/lepton"
    assert node3["lepton_data_dir"] == "/var/lib/lepton"


def test_ssh_inventory_loads_with_load_fleet(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    fleet = load_fleet(write_inventory(layout, LabMode.SSH, ssh_settings(layout)))
    assert fleet.aggregator is not None and fleet.aggregator.address == "127.0.1.5"
    assert sum(node.weight for node in fleet.nodes) == 1500


def test_inventory_is_plain_yaml_with_the_expected_shape(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    data = yaml.safe_load(write_inventory(layout, LabMode.SSH, ssh_settings(layout)).read_text())
    assert set(data) == {"all"}
    assert set(data["all"]) == {"vars", "hosts", "children"}
    assert set(data["all"]["children"]) == {"aggregator", "workers"}


def test_rewriting_is_idempotent(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    first = write_inventory(layout, LabMode.LOCAL).read_text()
    assert write_inventory(layout, LabMode.LOCAL).read_text() == first
    assert not list(layout.root.glob("*.tmp"))


def test_node_python_prefers_the_system_python(monkeypatch: pytest.MonkeyPatch) -> None:
    if Path("/usr/bin/python3").exists():
        assert node_python() == "/usr/bin/python3"
    monkeypatch.setattr("lepton_ops.lab.inventory_file.SYSTEM_PYTHON", Path("/nonexistent/py"))
    fallback = node_python()
    assert Path(fallback).is_file()
    assert ".venv" not in fallback  # the controller's base interpreter, not the virtualenv


def test_an_insecure_http_lab_says_so_in_its_inventory_and_only_then(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    secure = load_fleet(write_inventory(layout, LabMode.LOCAL))
    assert {node.scheme for node in secure.nodes} == {"https"}
    plain = load_fleet(write_inventory(layout, LabMode.LOCAL, insecure_http=True))
    assert {node.scheme for node in plain.nodes} == {"http"}
    # Written on each 'lab up': without the option, TLS is back.
    again = load_fleet(write_inventory(layout, LabMode.LOCAL))
    assert {node.scheme for node in again.nodes} == {"https"}
