"""Cut a lab node off the network and bring it back, with iptables - one lab's rules only.

Every lab has a chain of its own, named from its state directory
(``LEPTON-<hash of the state dir>``). INPUT and OUTPUT jump to it only for packets
addressed to that lab's own node addresses, so no other traffic on the machine - another
lab's included - ever passes through its rules. Cutting a node off adds two DROP rules to
the chain (traffic to the node and from it), each carrying a comment that names who added
them (a fault id, or a test); restoring removes only the rules with that comment, so two
faults on one node, or two labs, never undo each other. ``lab down`` removes this lab's
jumps and chain, nothing else. Addresses outside 127.0.1.0/24 are refused before iptables
is ever called.

iptables runs with ``-w`` (wait for the xtables lock); an answer other than "present"
(exit 0) or "absent" (exit 1) - a lock timeout, say - is an error, never taken for
"absent": a restore must not silently leave a DROP rule behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from lepton_ops.errors import OperationFailed
from lepton_ops.lab.topology import lab_address

CHAIN_PREFIX = "LEPTON-"
BUILTIN_CHAINS = ("INPUT", "OUTPUT")
LOCK_WAIT_S = "5"
# iptables exit codes: 0 the rule/chain is there, 1 it is not; anything else is a failure
# (2: bad parameters, 4: resource problem such as the xtables lock held too long).
_ABSENT = 1


def chain_name(state_dir: Path) -> str:
    """The chain of the lab kept in ``state_dir`` (iptables allows 28 characters)."""
    digest = hashlib.sha256(str(Path(state_dir).expanduser().resolve()).encode()).hexdigest()
    return CHAIN_PREFIX + digest[:12]


class LabFirewall:
    """The firewall rules of the lab in ``state_dir``, whose nodes have ``addresses``."""

    def __init__(self, state_dir: Path, addresses: Iterable[str]) -> None:
        self.chain = chain_name(state_dir)
        self.addresses = tuple(str(lab_address(address)) for address in addresses)

    def cut_off(self, address: str, owner: str) -> None:
        """Drop every packet to and from ``address``, as ``owner`` (idempotent per owner)."""
        node = self._node(address)
        self._ensure_chain()
        for rule in _drop_rules(node, owner):
            if not self._present(self.chain, rule):
                _run("-A", self.chain, *rule)

    def restore(self, address: str, owner: str) -> None:
        """Remove what :meth:`cut_off` added for ``owner`` (harmless if it added nothing)."""
        node = self._node(address)
        if not self.chain_exists():
            return
        for rule in _drop_rules(node, owner):
            while self._present(self.chain, rule):
                _run("-D", self.chain, *rule)

    def is_cut_off(self, address: str) -> bool:
        """True if any owner's DROP rule for ``address`` is in place."""
        node = self._node(address)
        if not self.chain_exists():
            return False
        listing = _run("-S", self.chain)
        return any(f"-d {node}/32" in line and "-j DROP" in line for line in listing.splitlines())

    def chain_exists(self) -> bool:
        return _query("-S", self.chain)

    def remove(self) -> None:
        """Remove this lab's jumps and chain (``lab down``). A no-op without root or iptables."""
        if os.geteuid() != 0 or _iptables_binary() is None or not self.chain_exists():
            return  # without the chain there can be no jump to it
        for builtin in BUILTIN_CHAINS:
            for address in self.addresses:
                jump = self._jump(address)
                while self._present(builtin, jump):
                    _run("-D", builtin, *jump)
        _run("-F", self.chain)
        _run("-X", self.chain)

    def _node(self, address: str) -> str:
        node = str(lab_address(address))
        if node not in self.addresses:
            raise OperationFailed(
                f"{node} is not a node of this lab ({', '.join(self.addresses)}): "
                f"its firewall rules are another lab's"
            )
        return node

    def _jump(self, address: str) -> list[str]:
        return ["-d", f"{address}/32", "-j", self.chain]

    def _present(self, chain: str, rule: list[str]) -> bool:
        return _query("-C", chain, *rule)

    def _ensure_chain(self) -> None:
        if not self.chain_exists():
            _run("-N", self.chain)
        for builtin in BUILTIN_CHAINS:
            for address in self.addresses:
                jump = self._jump(address)
                if not self._present(builtin, jump):
                    _run("-I", builtin, "1", *jump)


def _drop_rules(address: str, owner: str) -> list[list[str]]:
    comment = ["-m", "comment", "--comment", f"lepton-ops {owner}"]
    return [
        ["-d", f"{address}/32", *comment, "-j", "DROP"],
        ["-s", f"{address}/32", *comment, "-j", "DROP"],
    ]


def _iptables_binary() -> str | None:
    return shutil.which("iptables") or next(
        (path for path in ("/usr/sbin/iptables", "/sbin/iptables") if os.access(path, os.X_OK)),
        None,
    )


def _command(args: tuple[str, ...]) -> list[str]:
    binary = _iptables_binary()
    if binary is None:
        raise OperationFailed("iptables is not installed: install it (make system-deps)")
    if os.geteuid() != 0:
        raise OperationFailed("changing the lab firewall needs root: run as root (or sudo)")
    return [binary, "-w", LOCK_WAIT_S, *args]


def _failure(args: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> OperationFailed:
    detail = (result.stderr or result.stdout).strip().splitlines()
    reason = detail[-1] if detail else f"exit code {result.returncode}"
    return OperationFailed(f"iptables {' '.join(args)} failed: {reason}")


def _query(*args: str) -> bool:
    """Run an iptables check: True if present, False if absent; OperationFailed otherwise."""
    result = subprocess.run(_command(args), capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return True
    if result.returncode == _ABSENT and "lock" not in (result.stderr or "").lower():
        return False
    raise _failure(args, result)


def _run(*args: str) -> str:
    result = subprocess.run(_command(args), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise _failure(args, result)
    return result.stdout
