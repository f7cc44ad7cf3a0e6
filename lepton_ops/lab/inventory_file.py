"""The lab inventory: a YAML file that lepton-ops and plain ``ansible-playbook -i`` read.

Shape::

    all:
      vars:    connection settings shared by every node (ssh or local), the node python
      hosts:   nodeN: ansible_host, lepton_weight, lepton_prefix/config_dir/data_dir
               (and in vars: the nodes' budgets, lepton_memory_max_mb, lepton_data_quota_mb)
      children:
        aggregator: {hosts: {node5: {}}}
        workers:    {hosts: {node1: {}, ..., node5: {}}}
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lepton_ops.inventory.fleet import INSECURE_HTTP_VAR
from lepton_ops.lab.layout import (
    NODE_CONFIG_DIR,
    NODE_DATA_DIR,
    NODE_PREFIX,
    LabLayout,
)
from lepton_ops.lab.status import LabMode
from lepton_ops.lab.topology import (
    AGGREGATOR_GROUP,
    LAB_NODES,
    NODE_DATA_QUOTA_MB,
    NODE_MEMORY_MAX_MB,
    WORKERS_GROUP,
    LabNode,
)

SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class SshSettings:
    """How Ansible logs in to ssh-mode nodes."""

    user: str
    port: int
    private_key: Path
    known_hosts: Path


def node_python() -> str:
    """A real python3 on this machine for the nodes: /usr/bin/python3, else the base python."""
    if os.access(SYSTEM_PYTHON, os.X_OK):
        return str(SYSTEM_PYTHON)
    base = getattr(sys, "_base_executable", None) or sys.executable
    return str(Path(base).resolve())


def ssh_common_args(known_hosts: Path) -> str:
    """The ssh options that pin the lab's host keys and only offer the lab's key."""
    return " ".join(
        shlex.quote(arg)
        for arg in (
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        )
    )


def node_path_vars(layout: LabLayout, node: LabNode, mode: LabMode) -> dict[str, str]:
    """lepton_prefix, lepton_config_dir and lepton_data_dir as the node sees them."""
    if mode is LabMode.SSH:
        return {
            "lepton_prefix": str(NODE_PREFIX),
            "lepton_config_dir": str(NODE_CONFIG_DIR),
            "lepton_data_dir": str(NODE_DATA_DIR),
        }
    paths = layout.node(node)
    return {
        "lepton_prefix": str(paths.prefix),
        "lepton_config_dir": str(paths.config_dir),
        "lepton_data_dir": str(paths.data_dir),
    }


def inventory_data(
    layout: LabLayout,
    mode: LabMode,
    ssh: SshSettings | None = None,
    nodes: tuple[LabNode, ...] = LAB_NODES,
    *,
    insecure_http: bool = False,
) -> dict[str, Any]:
    """The inventory as plain data (what :func:`write_inventory` dumps)."""
    shared: dict[str, Any] = {
        "ansible_python_interpreter": node_python(),
        "lepton_lab_mode": mode.value,
        "lepton_memory_max_mb": NODE_MEMORY_MAX_MB,
    }
    if insecure_http:
        shared[INSECURE_HTTP_VAR] = True
    if mode is LabMode.SSH:
        shared["lepton_data_quota_mb"] = NODE_DATA_QUOTA_MB
    if mode is LabMode.SSH:
        if ssh is None:
            raise ValueError("an ssh-mode inventory needs SshSettings")
        shared.update(
            {
                "ansible_connection": "ssh",
                "ansible_user": ssh.user,
                "ansible_port": ssh.port,
                "ansible_ssh_private_key_file": str(ssh.private_key),
                "ansible_ssh_common_args": ssh_common_args(ssh.known_hosts),
                "ansible_ssh_pipelining": True,
            }
        )
    else:
        shared["ansible_connection"] = "local"
    hosts: dict[str, Any] = {}
    for node in nodes:
        hosts[node.name] = {
            "ansible_host": node.address,
            "lepton_weight": node.weight,
            **node_path_vars(layout, node, mode),
        }
    children: dict[str, Any] = {}
    for group in (AGGREGATOR_GROUP, WORKERS_GROUP):
        members: dict[str, dict[str, Any]] = {
            node.name: {} for node in nodes if group in node.groups
        }
        children[group] = {"hosts": members}
    return {"all": {"vars": shared, "hosts": hosts, "children": children}}


def write_inventory(
    layout: LabLayout,
    mode: LabMode,
    ssh: SshSettings | None = None,
    nodes: tuple[LabNode, ...] = LAB_NODES,
    *,
    insecure_http: bool = False,
) -> Path:
    """Write ``<state_dir>/lab/inventory.yml`` atomically; return its path."""
    path = layout.inventory
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# The lepton-ops lab inventory ({mode.value} mode), written by 'lepton-ops lab up'.\n"
        f"# Regenerated on every 'lab up': edits here are overwritten.\n"
    )
    data = inventory_data(layout, mode, ssh, nodes, insecure_http=insecure_http)
    body = yaml.safe_dump(data, sort_keys=False, width=1000)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(header + body, encoding="utf-8")
    temporary.replace(path)
    return path
