"""Chaos on the controller: fault specs, the campaign's schedule, records synced into the
store, and the guards (lab only, ssh-only faults, lab down stops local runners)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lepton_ops.chaos import Chaos, FaultKind, FaultSpec
from lepton_ops.chaos.campaign import schedule
from lepton_ops.chaos.controller import node_fault_id
from lepton_ops.chaos.faults import PROGRESSIVE, MiB, parse_rate
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.lab import Lab, LabMode
from lepton_ops.process_identity import start_time as _start_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4MiB/s", 4 * MiB), ("512KiB", 512 * 1024), ("1048576", 1048576), ("1.5 MB/s", 1500000)],
)
def test_rates_are_read_in_the_units_people_write(text: str, expected: int) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["fast", "4 parsecs", "0", "-1MiB/s"])
def test_a_bad_rate_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput):
        parse_rate(text)


def test_specs_fill_in_defaults_and_refuse_what_does_not_apply() -> None:
    leak = FaultSpec.of("memleak")
    assert leak.rate_bytes_s == 4 * MiB and leak.duration_s == 300
    assert leak.plan_entry("f7") == {"fault": "memleak", "id": "f7", "duration": 300.0,
                                     "rate": 4 * MiB}  # fmt: skip
    assert FaultSpec.of("cpuhog").params == {"duration_s": 40.0, "processes": 1}
    with pytest.raises(BadInput, match="unknown fault 'melt'"):
        FaultSpec.of("melt")
    with pytest.raises(BadInput, match="--rate applies to memleak and diskfill"):
        FaultSpec.of("kill", rate_bytes_s=10)
    with pytest.raises(BadInput, match="at most 1 h"):
        FaultSpec.of("hang", duration_s=7200)


def test_the_schedule_puts_progressive_faults_on_two_nodes_of_every_round() -> None:
    nodes = ["node1", "node2", "node3", "node4", "node5"]
    rounds = schedule(40, nodes, random.Random(1))
    assert sum(len(plan) for plan in rounds) == 40 and len(rounds) == 8
    for plan in rounds:
        kinds = [spec.kind for spec in plan.values()]
        assert sum(kind in PROGRESSIVE for kind in kinds) == 2
    every = {spec.kind for plan in rounds for spec in plan.values()}
    assert every == set(FaultKind)
    # Each node gets each progressive fault over the campaign (rotation).
    for node in nodes:
        kinds = {plan[node].kind for plan in rounds if node in plan}
        assert {FaultKind.MEMLEAK, FaultKind.DISKFILL} <= kinds


@pytest.fixture
def local_lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path / "state")
    lab.up(LabMode.LOCAL)
    return lab


def test_chaos_needs_a_lab(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match="chaos only runs on the lab"):
        Chaos(tmp_path)


def test_ssh_only_faults_and_unknown_nodes_are_refused_before_anything_runs(
    local_lab: Lab,
) -> None:
    chaos = Chaos(local_lab.state_dir)
    with pytest.raises(BadInput, match="diskfill needs the ssh lab"):
        chaos.inject({"node2": FaultSpec.of("diskfill")})
    with pytest.raises(BadInput, match="no node named 'node9'"):
        chaos.inject({"node9": FaultSpec.of("kill")})
    with chaos.store() as store:
        assert store.faults() == []


def test_node_records_become_failures_and_ends_in_the_store(local_lab: Lab) -> None:
    chaos = Chaos(local_lab.state_dir)
    with chaos.store() as store:
        leak = store.start_fault("node2", "memleak", {}, started_at=100.0)
        hang = store.start_fault("node3", "hang", {}, started_at=100.0)
        lost = store.start_fault("node3", "kill", {}, started_at=100.0)
        away = store.start_fault("node4", "kill", {}, started_at=100.0)
        chaos._apply(
            store,
            {
                "node2": [{"id": node_fault_id(leak), "failed_at": 170.0,
                           "failure": "memory limit hit", "ended_at": 170.5,
                           "outcome": "failed", "detail": ""}],
                "node3": [{"id": node_fault_id(hang), "failed_at": None, "ended_at": None,
                           "outcome": "abandoned"},
                          {"id": "not-ours", "outcome": "failed", "ended_at": 1.0}],
            },
        )  # fmt: skip
        by_id = {record.id: record for record in store.faults()}
    assert (by_id[leak].failed_at, by_id[leak].outcome) == (170.0, "failed")
    assert by_id[leak].ended_at == 170.5
    assert by_id[hang].outcome == "stopped" and "runner was gone" in by_id[hang].detail
    # node3 answered without a record of this one: it never started there.
    assert by_id[lost].outcome == "error" and by_id[lost].detail == "no record on the node"
    # node4 did not answer: nothing is known, it still runs.
    assert by_id[away].active


def test_lab_down_stops_a_local_fault_runner(local_lab: Lab) -> None:
    chaos_dir = local_lab.node_paths("node2").prefix / "chaos"
    chaos_dir.mkdir(parents=True)
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    deadline = time.monotonic() + 5
    while _start_time(runner.pid) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    record = {"id": "f1", "pid": runner.pid, "pid_start": _start_time(runner.pid),
              "ended_at": None}  # fmt: skip
    (chaos_dir / "f1.json").write_text(json.dumps(record))
    # A record whose pid was reused by another process is left alone.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    reused = {"id": "f2", "pid": bystander.pid, "pid_start": 1, "ended_at": None}
    (chaos_dir / "f2.json").write_text(json.dumps(reused))
    try:
        local_lab.down()
        assert runner.wait(timeout=10) == -15
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
