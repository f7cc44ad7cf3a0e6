"""Cut a lab node off the network and bring it back, with iptables.

Everything lives in one lab-owned chain, ``LEPTON-LAB``. INPUT and OUTPUT jump to it
only for packets addressed to the lab network (``-d 127.0.1.0/24``), so no other
traffic on the machine ever passes through a lab rule. Cutting a node off adds two
DROP rules to the chain (traffic to the node and traffic from it); restoring removes
them; ``lab down`` removes the jumps and the chain. Addresses outside 127.0.1.0/24
are refused before iptables is ever called.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from lepton_ops.errors import OperationFailed
from lepton_ops.lab.topology import LAB_NETWORK, lab_address

CHAIN = "LEPTON-LAB"
BUILTIN_CHAINS = ("INPUT", "OUTPUT")


def cut_off(address: str) -> None:
    """Drop every packet to and from lab address ``address`` (idempotent)."""
    node = str(lab_address(address))
    _ensure_chain()
    for rule in _drop_rules(node):
        if not _ok("-C", CHAIN, *rule):
            _run("-A", CHAIN, *rule)


def restore(address: str) -> None:
    """Undo :func:`cut_off` for ``address`` (harmless if it was not cut off)."""
    node = str(lab_address(address))
    if not chain_exists():
        return
    for rule in _drop_rules(node):
        while _ok("-C", CHAIN, *rule):
            _run("-D", CHAIN, *rule)


def is_cut_off(address: str) -> bool:
    """True if :func:`cut_off` rules for ``address`` are in place."""
    node = str(lab_address(address))
    return chain_exists() and any(_ok("-C", CHAIN, *rule) for rule in _drop_rules(node))


def chain_exists() -> bool:
    return _ok("-S", CHAIN)


def remove_chain() -> None:
    """Remove the lab's jumps and chain (``lab down``). A no-op without root or iptables."""
    if os.geteuid() != 0 or _iptables_binary() is None:
        return
    for builtin in BUILTIN_CHAINS:
        while _ok("-C", builtin, *_jump()):
            _run("-D", builtin, *_jump())
    if chain_exists():
        _run("-F", CHAIN)
        _run("-X", CHAIN)


def _drop_rules(address: str) -> list[list[str]]:
    return [["-d", f"{address}/32", "-j", "DROP"], ["-s", f"{address}/32", "-j", "DROP"]]


def _jump() -> list[str]:
    return ["-d", str(LAB_NETWORK), "-j", CHAIN]


def _ensure_chain() -> None:
    if not chain_exists():
        _run("-N", CHAIN)
    for builtin in BUILTIN_CHAINS:
        if not _ok("-C", builtin, *_jump()):
            _run("-I", builtin, "1", *_jump())


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
    return [binary, "-w", "5", *args]


def _ok(*args: str) -> bool:
    """Run an iptables query; True if it exits 0."""
    result = subprocess.run(_command(args), capture_output=True, text=True, check=False)
    return result.returncode == 0


def _run(*args: str) -> None:
    result = subprocess.run(_command(args), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit code {result.returncode}"
        raise OperationFailed(f"iptables {' '.join(args)} failed: {reason}")
