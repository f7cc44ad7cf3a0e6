"""The inventories under inventories/: each loads, plans by weight, and documents what it should."""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import run_cli

from lepton_ops.lab.topology import LAB_NODES, NODE_DATA_QUOTA_MB, NODE_MEMORY_MAX_MB

REPO = Path(__file__).resolve().parents[3]
INVENTORIES = REPO / "inventories"
COLLECTION = REPO / "ansible_collections" / "lepton" / "ops"
#: RFC 5737 TEST-NET-1: addresses for documentation, which no real host has.
DOCUMENTATION_NETWORK = IPv4Network("192.0.2.0/24")


def _hosts(name: str) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((INVENTORIES / name / "hosts.yml").read_text())
    return dict(data["all"]["hosts"])


@pytest.mark.parametrize(
    ("name", "tasks", "expected"),
    [
        ("lab", 1500, {"node1": 100, "node2": 200, "node3": 300, "node4": 400, "node5": 500}),
        (
            "example",
            1500,
            {"gpu-small-1": 100, "gpu-small-2": 200, "gpu-mid-1": 300, "gpu-large-1": 400,
             "gpu-large-2": 500},
        ),
        (
            "production",
            1000,
            {"compute1.example.com": 250, "compute2.example.com": 250,
             "compute3.example.com": 500},
        ),
    ],
)  # fmt: skip
def test_job_plan_splits_by_weight(
    tmp_path: Path, name: str, tasks: int, expected: dict[str, int]
) -> None:
    result = run_cli(
        "job", "plan", "-i", str(INVENTORIES / name), "--tasks", str(tasks), "--json",
        state_dir=tmp_path / "state",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {node["name"]: node["tasks"] for node in plan["nodes"]} == expected
    assert sum(node["tasks"] for node in plan["nodes"]) == tasks


def test_lab_example_is_the_lab_topology() -> None:
    data = yaml.safe_load((INVENTORIES / "lab" / "hosts.yml").read_text())["all"]
    hosts = data["hosts"]
    assert list(hosts) == [node.name for node in LAB_NODES]
    for node in LAB_NODES:
        assert hosts[node.name]["ansible_host"] == node.address
        assert hosts[node.name]["lepton_weight"] == node.weight
        groups = tuple(
            g for g, members in data["children"].items() if node.name in members["hosts"]
        )
        assert sorted(groups) == sorted(node.groups)
    assert data["vars"]["lepton_memory_max_mb"] == NODE_MEMORY_MAX_MB
    assert data["vars"]["lepton_data_quota_mb"] == NODE_DATA_QUOTA_MB


def test_reference_fleet_is_documentation_only() -> None:
    hosts = _hosts("example")
    assert sorted(host["lepton_weight"] for host in hosts.values()) == [100, 200, 300, 400, 500]
    for host in hosts.values():
        assert IPv4Address(host["ansible_host"]) in DOCUMENTATION_NETWORK


def _variables_with_defaults() -> set[str]:
    """Every lepton_* variable the collection gives a default: role defaults and | default()."""
    names: set[str] = set()
    for defaults in COLLECTION.glob("roles/*/defaults/main.yml"):
        names.update(k for k in yaml.safe_load(defaults.read_text()) if k.startswith("lepton_"))
    used = re.compile(r"\b(lepton_[a-z_]+)\s*\|\s*default\(")
    # (roles' tasks default only their own loop accumulators: their knobs are in defaults/)
    for path in [*COLLECTION.glob("playbooks/*.yml"),
                 *COLLECTION.glob("extensions/eda/rulebooks/*.yml")]:  # fmt: skip
        names.update(used.findall(path.read_text()))
    read_by_code = re.compile(r'^[A-Z_]+_VAR = "(lepton_[a-z_]+)"', re.MULTILINE)
    for path in (REPO / "lepton_ops").rglob("*.py"):
        names.update(read_by_code.findall(path.read_text()))
    return names


def test_production_template_documents_every_variable() -> None:
    template = (INVENTORIES / "production" / "group_vars" / "all.yml").read_text()
    documented = set(re.findall(r"^# (lepton_[a-z_]+):", template, re.MULTILINE))
    wanted = _variables_with_defaults()
    assert {"lepton_weight", "lepton_worker_port", "lepton_telemetry_peers"} <= wanted
    assert wanted - documented == set()
