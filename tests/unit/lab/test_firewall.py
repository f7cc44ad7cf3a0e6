"""The lab firewall, with iptables mocked: nothing here touches the real firewall.

Each lab has its own chain, jumps for its own addresses only, and rules that carry their
owner, so two labs - or two faults on one node - never undo each other.
"""

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.lab import firewall
from lepton_ops.lab.firewall import LabFirewall, chain_name
from lepton_ops.lab.topology import lab_nodes

LAB_A = [node.address for node in lab_nodes("127.0.1.1")]
LAB_B = [node.address for node in lab_nodes("127.0.1.11")]


class FakeIptables:
    """Records iptables calls and keeps a tiny model of the rules they make."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.chains: dict[str, list[list[str]]] = {"INPUT": [], "OUTPUT": []}
        self.lock_held = False

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        assert command[0].endswith("iptables") and command[1:3] == ["-w", "5"]
        if self.lock_held:
            message = "Another app is currently holding the xtables lock. Stopped waiting.\n"
            return subprocess.CompletedProcess(command, 4, "", message)
        action, chain, *rule = command[3:]
        code, out = 0, ""
        if action == "-S":
            code = 0 if chain in self.chains else 1
            out = "".join(f"-A {chain} {' '.join(r)}\n" for r in self.chains.get(chain, []))
        elif action == "-N":
            self.chains[chain] = []
        elif action == "-C":
            code = 0 if rule in self.chains.get(chain, []) else 1
        elif action == "-A":
            self.chains[chain].append(rule)
        elif action == "-I":
            self.chains[chain].insert(int(rule[0]) - 1, rule[1:])
        elif action == "-D":
            self.chains[chain].remove(rule)
        elif action == "-F":
            self.chains[chain] = []
        elif action == "-X":
            del self.chains[chain]
        return subprocess.CompletedProcess(command, code, out, "")


@pytest.fixture
def iptables(monkeypatch: pytest.MonkeyPatch) -> FakeIptables:
    fake = FakeIptables()
    monkeypatch.setattr(subprocess, "run", fake)
    monkeypatch.setattr(firewall, "_iptables_binary", lambda: "/usr/sbin/iptables")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return fake


@pytest.fixture
def lab_a(tmp_path: Path) -> LabFirewall:
    return LabFirewall(tmp_path / "a", LAB_A)


@pytest.fixture
def lab_b(tmp_path: Path) -> LabFirewall:
    return LabFirewall(tmp_path / "b", LAB_B)


def drops(address: str, owner: str) -> list[list[str]]:
    comment = ["-m", "comment", "--comment", f"lepton-ops {owner}"]
    return [
        ["-d", f"{address}/32", *comment, "-j", "DROP"],
        ["-s", f"{address}/32", *comment, "-j", "DROP"],
    ]


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.2.3", "10.1.2.3", "192.168.0.1", "::1", "not-an-address"]
)
@pytest.mark.parametrize("action", ["cut_off", "restore", "is_cut_off"])
def test_refuses_addresses_outside_the_lab(
    iptables: FakeIptables, lab_a: LabFirewall, action: str, address: str
) -> None:
    args = (address,) if action == "is_cut_off" else (address, "fault 1")
    with pytest.raises(BadInput):
        getattr(lab_a, action)(*args)
    assert iptables.calls == []  # refused before iptables is ever run


def test_refuses_another_labs_address(iptables: FakeIptables, lab_a: LabFirewall) -> None:
    with pytest.raises(OperationFailed, match="another lab"):
        lab_a.cut_off("127.0.1.13", "fault 1")
    assert iptables.calls == []


def test_chain_names_are_per_state_dir_and_fit_iptables(tmp_path: Path) -> None:
    assert chain_name(tmp_path / "a") != chain_name(tmp_path / "b")
    assert chain_name(tmp_path / "a") == chain_name(tmp_path / "x" / ".." / "a")
    assert len(chain_name(tmp_path / "a")) <= 28


def test_cut_off_adds_owned_drop_rules_and_jumps_for_the_labs_addresses_only(
    iptables: FakeIptables, lab_a: LabFirewall
) -> None:
    lab_a.cut_off("127.0.1.3", "fault 7")
    assert iptables.chains[lab_a.chain] == drops("127.0.1.3", "fault 7")
    jumps = [["-d", f"{address}/32", "-j", lab_a.chain] for address in LAB_A]
    assert sorted(iptables.chains["INPUT"]) == sorted(jumps)
    assert sorted(iptables.chains["OUTPUT"]) == sorted(jumps)
    assert lab_a.is_cut_off("127.0.1.3")
    assert not lab_a.is_cut_off("127.0.1.2")


def test_cut_off_is_idempotent(iptables: FakeIptables, lab_a: LabFirewall) -> None:
    lab_a.cut_off("127.0.1.3", "fault 7")
    lab_a.cut_off("127.0.1.3", "fault 7")
    assert len(iptables.chains[lab_a.chain]) == 2
    assert len(iptables.chains["INPUT"]) == len(LAB_A)


def test_restore_removes_only_its_owners_rules(iptables: FakeIptables, lab_a: LabFirewall) -> None:
    """Two partitions of one node: the first one's timer must not lift the second."""
    lab_a.cut_off("127.0.1.3", "fault 1")
    lab_a.cut_off("127.0.1.3", "fault 2")
    lab_a.cut_off("127.0.1.4", "fault 3")
    lab_a.restore("127.0.1.3", "fault 1")
    assert iptables.chains[lab_a.chain] == drops("127.0.1.3", "fault 2") + drops(
        "127.0.1.4", "fault 3"
    )
    assert lab_a.is_cut_off("127.0.1.3")
    lab_a.restore("127.0.1.3", "fault 1")  # harmless twice


def test_restore_without_chain_is_harmless(iptables: FakeIptables, lab_a: LabFirewall) -> None:
    lab_a.restore("127.0.1.1", "fault 1")
    assert lab_a.chain not in iptables.chains


def test_one_labs_down_leaves_the_other_labs_partitions(
    iptables: FakeIptables, lab_a: LabFirewall, lab_b: LabFirewall
) -> None:
    """The reported bug: every 'lab down' flushed the one shared chain."""
    lab_a.cut_off("127.0.1.4", "fault 1")
    lab_b.cut_off("127.0.1.12", "fault 1")
    lab_b.remove()
    assert lab_b.chain not in iptables.chains
    assert iptables.chains[lab_a.chain] == drops("127.0.1.4", "fault 1")
    assert all(rule[-1] == lab_a.chain for rule in iptables.chains["INPUT"])
    assert len(iptables.chains["INPUT"]) == len(LAB_A)
    lab_a.remove()
    assert iptables.chains == {"INPUT": [], "OUTPUT": []}
    lab_a.remove()  # harmless when already gone


def test_a_lock_timeout_is_an_error_never_absent(
    iptables: FakeIptables, lab_a: LabFirewall
) -> None:
    """A restore that cannot check must fail loudly, not leave a DROP rule silently."""
    lab_a.cut_off("127.0.1.3", "fault 1")
    iptables.lock_held = True
    with pytest.raises(OperationFailed, match="xtables lock"):
        lab_a.restore("127.0.1.3", "fault 1")
    with pytest.raises(OperationFailed, match="xtables lock"):
        lab_a.is_cut_off("127.0.1.3")
    iptables.lock_held = False
    assert lab_a.is_cut_off("127.0.1.3")


def test_every_rule_names_only_lab_addresses(iptables: FakeIptables, lab_a: LabFirewall) -> None:
    lab_a.cut_off("127.0.1.2", "fault 1")
    lab_a.restore("127.0.1.2", "fault 1")
    lab_a.remove()
    for call in iptables.calls:
        for flag in ("-d", "-s"):
            if flag in call:
                assert call[call.index(flag) + 1] in {f"{a}/32" for a in LAB_A}, call


def test_remove_is_a_noop_without_root(
    iptables: FakeIptables, lab_a: LabFirewall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    lab_a.remove()
    assert iptables.calls == []


def test_cut_off_without_root_is_one_clear_line(
    iptables: FakeIptables, lab_a: LabFirewall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(OperationFailed, match="needs root"):
        lab_a.cut_off("127.0.1.3", "fault 1")


def test_missing_iptables_is_one_clear_line(
    iptables: FakeIptables, lab_a: LabFirewall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(firewall, "_iptables_binary", lambda: None)
    with pytest.raises(OperationFailed, match="iptables is not installed"):
        lab_a.cut_off("127.0.1.3", "fault 1")


def test_iptables_failure_is_reported(
    iptables: FakeIptables, lab_a: LabFirewall, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 4, "", "iptables: Permission denied.\n")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(OperationFailed, match="Permission denied"):
        lab_a.cut_off("127.0.1.3", "fault 1")
