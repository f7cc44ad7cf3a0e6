"""The lab end to end: local mode through the CLI; ssh mode (root) on the session lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cli_support import one_error_line
from lab_tools import VENV_BIN, cli, lab_listeners, node_ssh, requires_root

from lepton_ops.inventory import load_fleet
from lepton_ops.lab import LAB_NODES, Lab, LabMode, current_inventory
from lepton_ops.lab.processes import is_running, pids_in_namespace
from lepton_ops.lab.record import read_record
from lepton_ops.lab.topology import address_blocks, lab_nodes

if TYPE_CHECKING:
    from conftest import RunningLab

# -- local mode through the CLI ----------------------------------------------------------


@pytest.mark.slow
def test_local_lab_through_the_cli(tmp_path: Path) -> None:
    state = tmp_path / "state"
    missing = cli("lab", "status", state_dir=state)
    assert missing.returncode == 1
    assert "no lab is up" in one_error_line(missing)
    assert missing.stdout == ""

    # --json with no lab: still exit 1, and an object a machine can read saying so.
    missing_json = cli("lab", "status", "--json", state_dir=state)
    assert missing_json.returncode == 1
    answer = json.loads(missing_json.stdout)
    assert answer["up"] is False and "no lab is up" in answer["message"]

    up = cli("lab", "up", "--mode", "local", state_dir=state, check=True)
    assert "node5" in up.stdout and "inventory" in up.stdout

    status = json.loads(cli("lab", "status", "--json", state_dir=state, check=True).stdout)
    inventory = state / "lab" / "inventory.yml"
    # The first free address block: 127.0.1.1-5, or the next one while the session's ssh
    # lab holds it.
    first = status["nodes"][0]["address"]
    assert first in address_blocks()
    assert status == {
        "mode": "local",
        "inventory": str(inventory),
        "ssh_key": None,
        "nodes": [
            {"name": node.name, "address": node.address, "weight": node.weight, "reachable": True}
            for node in lab_nodes(first)
        ],
    }
    assert inventory.is_file()
    assert json.loads((state / "lab" / "lab.json").read_text())["mode"] == "local"

    # up again is harmless; the other mode is refused with a hint to run lab down.
    again = json.loads(cli("lab", "up", "--mode", "local", "--json", state_dir=state).stdout)
    assert again == status
    other = cli("lab", "up", "--mode", "ssh", state_dir=state)
    assert other.returncode == 2
    assert "lab down" in one_error_line(other)

    # The inventory works with plain Ansible.
    ansible = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", str(inventory), "workers", "-m", "ping"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ansible.returncode == 0, ansible.stdout + ansible.stderr
    assert ansible.stdout.count("SUCCESS") == 5

    marker = state / "lab" / "nodes" / "node2" / "var" / "lib" / "lepton" / "marker"
    marker.write_text("kept")
    down = cli("lab", "down", state_dir=state, check=True)
    assert "down" in down.stdout
    assert not inventory.exists()
    assert marker.read_text() == "kept"
    assert cli("lab", "status", state_dir=state).returncode == 1
    assert cli("lab", "down", state_dir=state).returncode == 0  # harmless twice

    cli("lab", "up", "--mode", "local", state_dir=state, check=True)
    assert marker.exists()
    cli("lab", "down", "--purge", state_dir=state, check=True)
    assert not marker.exists()


def test_ssh_mode_needs_root_when_not_root(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root")
    result = cli("lab", "up", "--mode", "ssh", state_dir=tmp_path)
    assert result.returncode == 2
    assert "root" in one_error_line(result)


def test_session_lab_fixture(lab: RunningLab) -> None:
    """The fixture other integration tests use: a lab that is up, with a usable inventory."""
    assert lab.lab.is_up()
    assert current_inventory(lab.state_dir) == lab.inventory
    fleet = load_fleet(lab.inventory)
    assert fleet.names == [node.name for node in LAB_NODES]
    assert fleet.aggregator is not None and fleet.aggregator.name == "node5"
    assert lab.refresh().unreachable == []


# -- ssh mode on the session lab ---------------------------------------------------------


@pytest.fixture
def ssh_lab(lab: RunningLab) -> RunningLab:
    if lab.mode is not LabMode.SSH:
        pytest.skip("the session lab is not in ssh mode")
    return lab


@pytest.mark.ssh
@requires_root
def test_ssh_lab_is_up(ssh_lab: RunningLab) -> None:
    status = ssh_lab.refresh()
    assert status.unreachable == []
    assert status.ssh_key == ssh_lab.lab.ssh_key_path
    # one sshd per node (services deployed by other tests listen on other ports)
    assert len([line for line in lab_listeners() if line.split()[3].endswith(":22")]) == 5
    record = read_record(ssh_lab.lab.record_path)
    assert record is not None and len(record.pids) == 5


@pytest.mark.ssh
@requires_root
def test_up_again_is_harmless(ssh_lab: RunningLab) -> None:
    before = read_record(ssh_lab.lab.record_path)
    result = cli("lab", "up", "--json", state_dir=ssh_lab.state_dir, check=True)
    assert json.loads(result.stdout)["mode"] == "ssh"
    after = read_record(ssh_lab.lab.record_path)
    assert before is not None and after is not None
    assert after.pids == before.pids  # nothing was restarted
    other = cli("lab", "up", "--mode", "local", state_dir=ssh_lab.state_dir)
    assert other.returncode == 2 and "lab down" in one_error_line(other)


@pytest.mark.ssh
@requires_root
def test_status_json_through_the_cli(ssh_lab: RunningLab) -> None:
    result = cli("lab", "status", "--json", state_dir=ssh_lab.state_dir, check=True)
    data = json.loads(result.stdout)
    assert list(data) == ["mode", "inventory", "ssh_key", "nodes"]
    assert data["ssh_key"] == str(ssh_lab.lab.ssh_key_path)
    assert [node["reachable"] for node in data["nodes"]] == [True] * 5


@pytest.mark.ssh
@requires_root
@pytest.mark.lab_cycle
def test_two_labs_come_up_and_go_down_in_any_order_without_touching_each_other(
    ssh_lab: RunningLab, tmp_path: Path
) -> None:
    """A second state dir gets the next address block and a chain of its own: taking
    either lab down leaves the other's nodes and partitions as they were."""
    first, second_dir = ssh_lab.lab, tmp_path / "second"
    second = Lab(second_dir)
    mine, theirs = first.firewall(), second.firewall()
    assert mine.chain != theirs.chain
    try:
        up = cli("lab", "up", "--mode", "ssh", "--json", state_dir=second_dir, check=True)
        # The next free block (127.0.1.11-15 unless another lab holds it too).
        block = json.loads(up.stdout)["nodes"][0]["address"]
        assert block in address_blocks() and block != first.nodes[0].address
        theirs = second.firewall()
        node3 = second.node("node3").address
        mine.cut_off("127.0.1.4", "test")
        theirs.cut_off(node3, "test")
        assert first.status().unreachable == ["node4"]
        assert second.status().unreachable == ["node3"]
        # The second goes down first: the first lab's nodes and partition stay.
        cli("lab", "down", state_dir=second_dir, check=True)
        assert mine.is_cut_off("127.0.1.4") and first.status().unreachable == ["node4"]
        mine.restore("127.0.1.4", "test")
        # Up again, then the first goes down: the second's nodes and partition stay.
        cli("lab", "up", "--mode", "ssh", state_dir=second_dir, check=True)
        theirs.cut_off(node3, "test")
        cli("lab", "down", state_dir=ssh_lab.state_dir, check=True)
        assert theirs.is_cut_off(node3)
        assert second.status().unreachable == ["node3"]
        ssh_lab.status = first.up(LabMode.SSH)  # the session lab back, on its own block
        assert first.nodes[0].address == "127.0.1.1" and ssh_lab.status.unreachable == []
    finally:
        mine.restore("127.0.1.4", "test")
        cli("lab", "down", state_dir=second_dir)
    assert first.status().unreachable == []


@pytest.mark.ssh
@requires_root
def test_each_node_has_its_own_lepton_dirs(ssh_lab: RunningLab) -> None:
    result = node_ssh(
        ssh_lab,
        "node3",
        "echo from-node3 > /opt/lepton/marker && echo c > /etc/lepton/marker "
        "&& echo d > /var/lib/lepton/marker && echo $LEPTON_LAB_NODE",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "node3"
    node3 = ssh_lab.lab.node_paths("node3")
    assert (node3.prefix / "marker").read_text() == "from-node3\n"
    assert (node3.config_dir / "marker").read_text() == "c\n"
    assert (ssh_lab.lab.node_data_dir("node3") / "marker").read_text() == "d\n"
    for other in ("node1", "node2", "node4", "node5"):
        assert not (ssh_lab.lab.node_paths(other).prefix / "marker").exists()
    # The host has no lepton dirs at all: the mount points exist only in the namespaces.
    for host_dir in ("/opt/lepton", "/etc/lepton", "/var/lib/lepton"):
        assert not Path(host_dir).exists(), host_dir
    # node1 sees the host's /opt contents but not node3's marker.
    seen = node_ssh(ssh_lab, "node1", "test -d /opt/lepton && ls -A /opt/lepton; ls /etc/hostname")
    assert seen.returncode == 0, seen.stderr
    assert "marker" not in seen.stdout


@pytest.mark.ssh
@requires_root
def test_ansible_reaches_every_node_over_ssh(ssh_lab: RunningLab) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "-i",
            str(ssh_lab.inventory),
            "all",
            "-m",
            "ansible.builtin.command",
            "-a",
            "printenv LEPTON_LAB_NODE",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for node in LAB_NODES:
        assert f"{node.name} | CHANGED | rc=0 >>\n{node.name}" in result.stdout


@pytest.mark.ssh
@requires_root
def test_cut_off_and_restore(ssh_lab: RunningLab) -> None:
    try:
        ssh_lab.lab.firewall().cut_off("127.0.1.3", "test")
        assert ssh_lab.lab.firewall().is_cut_off("127.0.1.3")
        status = ssh_lab.lab.status()
        assert status.unreachable == ["node3"]
        assert status.reachable == ["node1", "node2", "node4", "node5"]
    finally:
        ssh_lab.lab.firewall().restore("127.0.1.3", "test")
    assert ssh_lab.lab.status().unreachable == []


@pytest.mark.ssh
@requires_root
@pytest.mark.lab_cycle
def test_up_restarts_a_node_whose_sshd_died(ssh_lab: RunningLab) -> None:
    lab = ssh_lab.lab
    before = read_record(lab.record_path)
    assert before is not None
    node2 = before.node("node2")
    assert node2 is not None and node2.sshd_pid is not None
    os.kill(node2.sshd_pid, signal.SIGKILL)
    for _ in range(50):
        if not is_running(node2.sshd_pid):
            break
        time.sleep(0.1)
    assert lab.status().unreachable == ["node2"]
    assert lab.up(LabMode.SSH).unreachable == []
    after = read_record(lab.record_path)
    assert after is not None
    restarted = after.node("node2")
    assert restarted is not None and restarted.sshd_pid != node2.sshd_pid
    assert [n.sshd_pid for n in after.nodes if n.name != "node2"] == [
        n.sshd_pid for n in before.nodes if n.name != "node2"
    ]
    assert node_ssh(ssh_lab, "node2", "test -d /opt/lepton").returncode == 0


@pytest.mark.ssh
@requires_root
@pytest.mark.lab_cycle
def test_down_stops_everything_and_up_comes_back(ssh_lab: RunningLab) -> None:
    lab = ssh_lab.lab
    # A session process left running inside node2 (as a service would be).
    started = node_ssh(ssh_lab, "node2", "setsid sleep 600 >/dev/null 2>&1 < /dev/null &")
    assert started.returncode == 0, started.stderr
    lab.firewall().cut_off("127.0.1.4", "test")
    record = read_record(lab.record_path)
    assert record is not None
    namespaces = [node.mount_ns for node in record.nodes if node.mount_ns]
    assert len(namespaces) == 5
    node2_ns = next(node.mount_ns for node in record.nodes if node.name == "node2")
    assert node2_ns is not None and len(pids_in_namespace(node2_ns)) >= 2
    # Written in node5's live data dir (its tmpfs), kept by 'lab down' in the kept copy.
    (lab.node_data_dir("node5") / "kept").write_text("kept")
    marker = lab.node_paths("node5").data_dir / "kept"

    down = cli("lab", "down", state_dir=ssh_lab.state_dir, check=True)
    assert "down" in down.stdout
    assert lab_listeners() == []
    assert all(pids_in_namespace(ns) == [] for ns in namespaces)
    chains = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True)
    assert lab.firewall().chain not in chains.stdout
    assert not lab.is_up() and not lab.inventory_path.exists()
    assert marker.read_text() == "kept"
    assert cli("lab", "down", state_dir=ssh_lab.state_dir).returncode == 0

    # A fresh up works after down, with the nodes' data still there.
    status = lab.up(LabMode.SSH)
    ssh_lab.status = status
    assert status.unreachable == []
    seen = node_ssh(ssh_lab, "node5", "cat /var/lib/lepton/kept")
    assert seen.returncode == 0 and seen.stdout == "kept", seen.stderr
