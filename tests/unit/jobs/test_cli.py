"""``lepton-ops job plan`` against a small inventory: table, JSON, --limit, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_support import one_error_line, run_cli

INVENTORY = """
all:
  children:
    aggregator:
      hosts:
        node5: {}
    workers:
      hosts:
        node1: {ansible_host: 127.0.1.1, lepton_weight: 100}
        node2: {ansible_host: 127.0.1.2, lepton_weight: 200}
        node3: {ansible_host: 127.0.1.3, lepton_weight: 300}
        node4: {ansible_host: 127.0.1.4, lepton_weight: 400}
        node5: {ansible_host: 127.0.1.5, lepton_weight: 500}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    return path


def job_plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("job", "plan", *args, state_dir=tmp_path / "state")


def test_plan_as_json(tmp_path: Path, inventory: Path) -> None:
    result = job_plan(tmp_path, "-i", str(inventory), "--tasks", "1000", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [node["name"] for node in plan["nodes"]] == [f"node{i}" for i in range(1, 6)]
    assert [node["tasks"] for node in plan["nodes"]] == [67, 133, 200, 267, 333]
    assert plan["strategy"] == "weighted" and plan["task_s"] == 0.02
    assert plan["shards"][0] == {"id": "s0000", "node": "node1", "start": 0, "stop": 17}
    assert [node["shard_size"] for node in plan["nodes"]] == [17, 34, 50, 67, 84]
    assert plan["shards"][-1]["stop"] == 1000
    assert plan["makespan_s"] == pytest.approx(67 * 0.02)
    assert plan["ideal_makespan_s"] == pytest.approx(1000 * 0.02 / 15)


def test_plan_table_equal_strategy_and_limit(tmp_path: Path, inventory: Path) -> None:
    result = job_plan(
        tmp_path, "-i", str(inventory), "--tasks", "90", "--strategy", "equal", "--limit",
        "node1,node3,node5", "--task-ms", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "node2" not in out and "node4" not in out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ node")}
    assert set(rows) == {"node1", "node3", "node5"}
    for line in rows.values():
        assert " 30 " in line  # 90 tasks, 3 nodes, equal
    assert "predicted makespan 0.300 s" in out  # node1: 30 tasks x 10 ms at speed 1


def test_speeds_come_from_lepton_speed(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(
        INVENTORY.replace("lepton_weight: 100}", "lepton_weight: 100, lepton_speed: 2}")
    )
    result = job_plan(tmp_path, "-i", str(path), "--tasks", "1000", "--json")
    assert result.returncode == 0, result.stderr
    node1 = json.loads(result.stdout)["nodes"][0]
    assert node1["speed"] == 2.0
    assert node1["predicted_s"] == pytest.approx(67 * 0.02 / 2)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--tasks", "-1"), "-1 is not in the range x>=1"),
        (("--tasks", "10", "--strategy", "fair"), "'fair' is not one of 'weighted', 'equal'"),
        (("--tasks", "10", "--shard-size", "0"), "0 is not in the range x>=1"),
        (("--tasks", "ten"), "Invalid value for '--tasks'"),
        (("--tasks", "10", "--limit", "nosuch"), "no host or group named nosuch"),
        (("--tasks", "10", "--limit", "aggregator,!node5"), "matches no host"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, inventory: Path, args: tuple[str, ...], needle: str
) -> None:
    result = job_plan(tmp_path, "-i", str(inventory), *args)
    assert result.returncode == 2
    assert needle in one_error_line(result)
    assert result.stdout == ""


def test_bad_lepton_speed_and_no_workers(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(
        INVENTORY.replace("lepton_weight: 200}", "lepton_weight: 200, lepton_speed: 0}")
    )
    result = job_plan(tmp_path, "-i", str(path), "--tasks", "10")
    assert result.returncode == 2
    assert "host node2: lepton_speed must be a number greater than 0" in one_error_line(result)
    result = job_plan(tmp_path, "-i", str(path), "--tasks", "10", "--limit", "aggregator")
    # Only the planned workers' speeds matter: node2 is outside --limit.
    assert result.returncode == 0, result.stderr
    lonely = tmp_path / "lonely.yml"
    lonely.write_text("all:\n  hosts:\n    solo: {ansible_host: 127.0.1.9}\n")
    result = job_plan(tmp_path, "-i", str(lonely), "--tasks", "10")
    assert result.returncode == 2
    assert "no host in the 'workers' group" in one_error_line(result)
