"""``lepton-ops status``: gathering (with a fake probe and drain list, no lab) and rendering."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from pathlib import Path

from cli_support import static_inventory
from rich.console import Console
from telemetry_support import make_facts

from lepton_ops.cli.render import for_json
from lepton_ops.cli.status import render
from lepton_ops.fleet_status import (
    FleetStatus,
    NodeState,
    Risk,
    ServiceHealth,
    fleet_status,
)
from lepton_ops.telemetry.facts import NodeOutcome
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.pull import ServiceTarget
from lepton_ops.telemetry.records import RemediationRecord


def screen(found: FleetStatus) -> str:
    out = io.StringIO()
    Console(file=out, width=140, color_system=None).print(render(found))
    return out.getvalue()


def record(node: str, action: str, outcome: str, started_at: float) -> RemediationRecord:
    return RemediationRecord(
        1, node, action, "watch", "risk 0.9", started_at, started_at + 3, outcome, {}, {}, ""
    )


NOW = 1_800_000_000.0
FAKE = FleetStatus(
    at=NOW,
    inventory=Path("/x/hosts.yml"),
    model="predictor-1.skops",
    nodes=(
        NodeState(
            "node1", "127.0.3.1", 100, ("aggregator", "workers"),
            (ServiceHealth("lepton-worker", True), ServiceHealth("lepton-aggregator", True)),
            last_seen_at=NOW - 4, reachable=True, drained=False,
            risk=Risk(0.03, False, None),
        ),
        NodeState(
            "node3", "127.0.3.3", 300, ("workers",),
            (ServiceHealth("lepton-worker", False, "ConnectError"),),
            last_seen_at=NOW - 130, reachable=False, drained=True,
            risk=Risk(0.91, True, "mem_used_pct_slope"),
            last_action=record("node3", "restart", "verified", NOW - 3 * 3600),
        ),
        NodeState("node4", "127.0.3.4", 400, ("workers",), cordoned=True, drained=None),
    ),
    notes=("drains unknown: no service token",),
)  # fmt: skip


def test_the_screen_shows_each_nodes_state() -> None:
    text = screen(FAKE)
    assert "fleet status" in text and "3 nodes, model predictor-1.skops" in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ node")}
    assert "100" in lines["node1"] and "ok" in lines["node1"] and "4.000 s ago" in lines["node1"]
    assert "0.03" in lines["node1"]
    assert "DOWN: worker" in lines["node3"] and "unreachable 2 min 10 s ago" in lines["node3"]
    assert "drained" in lines["node3"] and "0.91 (mem_used_pct_slope)" in lines["node3"]
    assert "restart verified, 3 h 00 min ago" in lines["node3"]
    assert "CORDONED" in lines["node4"] and "never" in lines["node4"]
    assert "note: drains unknown: no service token" in text


def test_json_has_every_field_and_iso_moments() -> None:
    data = json.loads(json.dumps(for_json(FAKE.to_dict())))
    assert data["checked_at"].startswith("2027-01-15T") and data["model"] == "predictor-1.skops"
    node3 = data["nodes"][1]
    assert node3["node"] == "node3" and node3["weight"] == 300 and node3["healthy"] is False
    assert node3["services"] == [
        {"service": "lepton-worker", "healthy": False, "error": "ConnectError"}
    ]
    assert node3["drained"] is True and node3["cordoned"] is False
    assert node3["risk"] == {
        "value": 0.91, "at_risk": True, "top_feature": "mem_used_pct_slope", "stale": False
    }  # fmt: skip
    assert node3["last_action"]["action"] == "restart"
    assert (
        node3["last_action"]["started_at"].endswith("Z")
        or "+00:00" in (node3["last_action"]["started_at"])
    )
    assert data["nodes"][2]["healthy"] is None and data["nodes"][2]["cordoned"] is True


def fake_probe(
    targets: Sequence[ServiceTarget], timeout: float
) -> dict[ServiceTarget, ServiceHealth]:
    return {t: ServiceHealth(t.service, t.node != "node2", None) for t in targets}


def test_fleet_status_gathers_from_the_inventory_store_and_audit(tmp_path: Path) -> None:
    inventory = static_inventory(tmp_path / "hosts.yml", 3)
    now = time.time()
    with HistoryStore(history_path(tmp_path)) as store:
        store.record_collection(
            [NodeOutcome.from_facts(f"node{k}", make_facts(f"node{k}", now - 10)) for k in (1, 2)]
        )
        store.start_remediation(
            "node2", "cordon", trigger="watch", reason="r", before={}, started_at=now - 60
        )
        store.start_remediation(
            "node3", "restart", trigger="watch", reason="r", before={}, started_at=now - 30
        )
    found = fleet_status(tmp_path, inventory, probe=fake_probe, drained=lambda s, i: {"node3"})
    by_name = {node.name: node for node in found.nodes}
    assert [node.name for node in found.nodes] == ["node1", "node2", "node3"]
    assert by_name["node1"].healthy is True and len(by_name["node1"].services) == 2
    assert by_name["node2"].healthy is False and by_name["node2"].cordoned
    assert by_name["node3"].drained is True and by_name["node1"].drained is False
    last = by_name["node3"].last_action
    assert last is not None and last.action == "restart"
    assert by_name["node1"].last_seen_at is not None and by_name["node1"].weight == 100
    assert by_name["node1"].reachable is True and by_name["node3"].last_seen_at is None
    assert found.model is None and any("install-starter" in note for note in found.notes)


def test_fleet_status_reads_without_creating_anything(tmp_path: Path) -> None:
    inventory = static_inventory(tmp_path / "hosts.yml", 3)
    state = tmp_path / "state"
    found = fleet_status(state, inventory, probe=fake_probe, drained=lambda s, i: set())
    assert not state.exists()
    assert all(node.last_seen_at is None for node in found.nodes)
    assert any("no telemetry yet" in note for note in found.notes)
