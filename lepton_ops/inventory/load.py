"""Read an inventory through Ansible and check what lepton-ops relies on.

Every inventory source Ansible accepts works (YAML, INI, a directory with
group_vars, a script or plugin), because Ansible itself reads it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.inventory.fleet import Fleet, Node
from lepton_ops.inventory.quiet import ansible_silenced

WEIGHT_VAR = "lepton_weight"
DEFAULT_WEIGHT = 100
_INT_RE = re.compile(r"^[+-]?\d+$")


def load_fleet(source: Path, limit: str | None = None) -> Fleet:
    """The fleet in ``source``, limited to the hosts ``limit`` names (an Ansible pattern)."""
    source = source.expanduser()
    if not source.exists():
        raise BadInput(f"inventory {source} does not exist: check the path given to -i/--inventory")
    hosts = _read_hosts(source)
    if not hosts:
        raise BadInput(
            f"inventory {source} has no hosts, or Ansible could not parse it: "
            f"check it with 'ansible-inventory -i {source} --list'"
        )
    nodes = tuple(
        sorted(
            (_node(name, hostvars, groups) for name, hostvars, groups in hosts),
            key=lambda node: _natural_key(node.name),
        )
    )
    _check_unique_addresses(source, nodes)
    fleet = Fleet(source=source.resolve(), nodes=nodes)
    if limit:
        fleet = _limited(fleet, limit, source)
    return fleet


def _read_hosts(source: Path) -> list[tuple[str, dict[str, Any], tuple[str, ...]]]:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    # Ansible prints parse warnings itself; they would break the one-line error rule.
    with ansible_silenced():
        inventory = InventoryManager(loader=loader, sources=[str(source)])
        variables = VariableManager(loader=loader, inventory=inventory)
        result = []
        for host in inventory.get_hosts("all"):
            hostvars = variables.get_vars(host=host, include_hostvars=False)
            groups = tuple(sorted(group.name for group in host.get_groups() if group.name != "all"))
            result.append((host.name, dict(hostvars), groups))
    return result


def _node(name: str, hostvars: dict[str, Any], groups: tuple[str, ...]) -> Node:
    address = str(hostvars.get("ansible_host") or name)
    weight = _weight(name, hostvars.get(WEIGHT_VAR, DEFAULT_WEIGHT))
    plain_vars = {key: value for key, value in hostvars.items() if not key.startswith("ansible_")}
    port = _port(hostvars.get("ansible_port"))
    return Node(
        name=name, address=address, weight=weight, groups=groups, vars=plain_vars, port=port
    )


def _port(raw: object) -> int | None:
    # None unless the inventory gives a plain number: a templated value ("{{ ... }}") is
    # Ansible's to resolve, and Ansible reports a bad port itself when it connects.
    text = str(raw).strip()
    if raw is None or isinstance(raw, bool) or not text.isdigit():
        return None
    return int(text)


def _weight(host: str, raw: object) -> int:
    text = str(raw).strip()
    if isinstance(raw, bool) or not _INT_RE.match(text):
        raise BadInput(
            f"host {host}: {WEIGHT_VAR} must be a whole number greater than 0, got {raw!r}"
        )
    value = int(text)
    if value <= 0:
        raise BadInput(
            f"host {host}: {WEIGHT_VAR} must be greater than 0, got {value} "
            f"(to take a node out of job plans, drain it instead)"
        )
    return value


def _check_unique_addresses(source: Path, nodes: tuple[Node, ...]) -> None:
    seen: dict[str, str] = {}
    for node in nodes:
        other = seen.get(node.address)
        if other is not None:
            raise BadInput(
                f"inventory {source}: hosts {other} and {node.name} share the address "
                f"{node.address}; give each host its own ansible_host"
            )
        seen[node.address] = node.name


def _limited(fleet: Fleet, limit: str, source: Path) -> Fleet:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    with ansible_silenced():
        inventory = InventoryManager(loader=DataLoader(), sources=[str(source)])
        unknown = [
            part for part in _pattern_parts(limit) if not inventory.get_hosts(part.lstrip("!&"))
        ]
        matched = {host.name for host in inventory.get_hosts(limit)}
    if unknown:
        raise BadInput(
            f"--limit {limit}: no host or group named {', '.join(unknown)} in {source} "
            f"(hosts: {', '.join(fleet.names)})"
        )
    if not matched:
        raise BadInput(f"--limit {limit} matches no host in {source}")
    nodes = tuple(node for node in fleet.nodes if node.name in matched)
    return Fleet(source=fleet.source, nodes=nodes, limit=limit)


def _natural_key(name: str) -> list[int | str]:
    """node2 before node10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _pattern_parts(limit: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,:]", limit) if part.strip()]
