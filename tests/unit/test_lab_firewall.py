"""The firewall helpers, with iptables mocked: nothing here touches the real firewall."""

import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.lab import firewall


class FakeIptables:
    """Records iptables calls and keeps a tiny model of the rules they make."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.chains: dict[str, list[list[str]]] = {"INPUT": [], "OUTPUT": []}

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        assert command[0].endswith("iptables") and command[1:3] == ["-w", "5"]
        action, chain, *rule = command[3:]
        code = 0
        if action == "-S":
            code = 0 if chain in self.chains else 1
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
        return subprocess.CompletedProcess(command, code, "", "")


@pytest.fixture
def iptables(monkeypatch: pytest.MonkeyPatch) -> FakeIptables:
    fake = FakeIptables()
    monkeypatch.setattr(subprocess, "run", fake)
    monkeypatch.setattr(firewall, "_iptables_binary", lambda: "/usr/sbin/iptables")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return fake


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.2.3", "10.1.2.3", "192.168.0.1", "::1", "not-an-address"]
)
@pytest.mark.parametrize("action", [firewall.cut_off, firewall.restore, firewall.is_cut_off])
def test_refuses_addresses_outside_the_lab(
    iptables: FakeIptables, action: Callable[[str], object], address: str
) -> None:
    with pytest.raises(BadInput):
        action(address)
    assert iptables.calls == []  # refused before iptables is ever run


def test_cut_off_adds_drop_rules_in_the_lab_chain(iptables: FakeIptables) -> None:
    firewall.cut_off("127.0.1.3")
    assert iptables.chains["LEPTON-LAB"] == [
        ["-d", "127.0.1.3/32", "-j", "DROP"],
        ["-s", "127.0.1.3/32", "-j", "DROP"],
    ]
    jump = ["-d", "127.0.1.0/24", "-j", "LEPTON-LAB"]
    assert iptables.chains["INPUT"] == [jump]
    assert iptables.chains["OUTPUT"] == [jump]
    assert firewall.is_cut_off("127.0.1.3")
    assert not firewall.is_cut_off("127.0.1.2")


def test_cut_off_is_idempotent(iptables: FakeIptables) -> None:
    firewall.cut_off("127.0.1.3")
    firewall.cut_off("127.0.1.3")
    assert len(iptables.chains["LEPTON-LAB"]) == 2
    assert len(iptables.chains["INPUT"]) == 1


def test_every_rule_names_only_lab_addresses(iptables: FakeIptables) -> None:
    firewall.cut_off("127.0.1.2")
    firewall.restore("127.0.1.2")
    firewall.remove_chain()
    for call in iptables.calls:
        for flag in ("-d", "-s"):
            if flag in call:
                value = call[call.index(flag) + 1]
                assert value.startswith("127.0.1."), call


def test_restore_removes_only_that_node(iptables: FakeIptables) -> None:
    firewall.cut_off("127.0.1.3")
    firewall.cut_off("127.0.1.4")
    firewall.restore("127.0.1.3")
    assert iptables.chains["LEPTON-LAB"] == [
        ["-d", "127.0.1.4/32", "-j", "DROP"],
        ["-s", "127.0.1.4/32", "-j", "DROP"],
    ]
    firewall.restore("127.0.1.3")  # harmless twice


def test_restore_without_chain_is_harmless(iptables: FakeIptables) -> None:
    firewall.restore("127.0.1.1")
    assert "LEPTON-LAB" not in iptables.chains


def test_remove_chain_deletes_jumps_and_chain(iptables: FakeIptables) -> None:
    firewall.cut_off("127.0.1.1")
    firewall.remove_chain()
    assert iptables.chains == {"INPUT": [], "OUTPUT": []}
    firewall.remove_chain()  # harmless when already gone


def test_remove_chain_is_a_noop_without_root(
    iptables: FakeIptables, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    firewall.remove_chain()
    assert iptables.calls == []


def test_cut_off_without_root_is_one_clear_line(
    iptables: FakeIptables, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(OperationFailed, match="needs root"):
        firewall.cut_off("127.0.1.3")


def test_missing_iptables_is_one_clear_line(
    iptables: FakeIptables, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(firewall, "_iptables_binary", lambda: None)
    with pytest.raises(OperationFailed, match="iptables is not installed"):
        firewall.cut_off("127.0.1.3")


def test_iptables_failure_is_reported(
    iptables: FakeIptables, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 4, "", "iptables: Permission denied.\n")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(OperationFailed, match="Permission denied"):
        firewall.cut_off("127.0.1.3")
