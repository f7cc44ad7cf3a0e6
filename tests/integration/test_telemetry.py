"""``lepton-ops telemetry collect`` on the deployed session lab: every node with every field;
then node3 cut off (iptables): the other four within the documented time, node3 recorded as
unreachable with an incident; and node3 back once its address is restored."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from lab_tools import NODES, Deployed, cli
from prometheus_client.parser import text_string_to_metric_families

from lepton_ops.lab import LAB_NODES, LabMode
from lepton_ops.telemetry.collect import TASK_TIMEOUT_S

ADDRESSES = {node.name: node.address for node in LAB_NODES}
AGGREGATOR = "node5"
CUT = "node3"
#: The documented cost of an unreachable node: the task timeout. A collection with one node
#: cut off takes at most that plus a normal collection (docs/telemetry.md).
SLACK_S = 6.0

TOP_KEYS = {
    "schema", "timestamp", "hostname", "uptime_s", "cpu", "load", "memory", "swap", "disks",
    "processes", "latency", "services", "errors",
}  # fmt: skip


def collect(deployed: Deployed) -> tuple[dict[str, Any], float, str]:
    started = time.monotonic()
    result = cli("telemetry", "collect", "--json", state_dir=deployed.lab.state_dir, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), elapsed, result.stderr


def by_node(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["node"]: node for node in data["nodes"]}


def assert_full_facts(name: str, facts: dict[str, Any], *, missing: str | None = None) -> None:
    assert set(facts) >= TOP_KEYS, name
    assert facts["schema"] == 1
    for value in (
        facts["uptime_s"],
        facts["cpu"]["count"],
        facts["cpu"]["util_pct"],
        facts["load"]["1m"],
        facts["memory"]["used_pct"],
        facts["memory"]["total_bytes"],
        facts["swap"]["used_pct"],
        facts["processes"]["count"],
        facts["processes"]["open_fds"],
    ):
        assert value is not None, (name, facts)
    disks = {disk["path"]: disk for disk in facts["disks"]}
    assert list(disks) == ["/", "/opt/lepton", "/etc/lepton", "/var/lib/lepton"]
    for disk in disks.values():
        assert disk["exists"] and disk["used_pct"] is not None and disk["free_bytes"] > 0, name
    targets = {target["name"]: target for target in facts["latency"]}
    assert set(targets) == set(NODES) - {name}
    for target_name, target in targets.items():
        assert target["address"] == ADDRESSES[target_name]
        assert target["port"] == 22
        assert target["role"] == ("aggregator" if target_name == AGGREGATOR else "peer")
        if target_name == missing:
            assert not target["reachable"] and target["latency_ms"] is None, (name, target)
        else:
            assert target["reachable"] and target["latency_ms"] is not None, (name, target)
            assert target["lost"] == 0, (name, target)
    services = {service["name"]: service for service in facts["services"]}
    expected = ["lepton-worker", "lepton-aggregator"] if name == AGGREGATOR else ["lepton-worker"]
    assert list(services) == expected
    for service in services.values():
        assert service["healthy"] and service["status_code"] == 200, (name, service)
        assert service["running"] and service["pid"] and service["rss_bytes"], (name, service)
        assert service["restarts"] is not None and service["latency_ms"] is not None


@pytest.mark.slow
def test_collect_returns_every_node_with_every_field(deployed: Deployed) -> None:
    data, elapsed, stderr = collect(deployed)
    print(f"\ntelemetry collect, 5 nodes: {elapsed:.1f} s (collection {data['duration_s']} s)")
    nodes = by_node(data)
    assert list(nodes) == NODES
    for name, node in nodes.items():
        assert node["status"] == "ok" and node["reachable"] and node["error"] is None, node
        assert_full_facts(name, node["facts"])
    assert data["unreachable"] == [] and data["incidents"] == []
    record = data["collection"]
    assert record["id"] == data["collection_id"] and record["source"] == "ansible"
    assert (record["nodes_ok"], record["nodes_failed"]) == (5, 0)
    assert record["samples"] > 5 * 40
    assert "warning" not in stderr


@pytest.mark.slow
@pytest.mark.ssh
def test_a_cut_off_node_is_unreachable_and_never_stops_the_others(deployed: Deployed) -> None:
    lab = deployed.lab
    if lab.mode is not LabMode.SSH:
        pytest.skip("cutting a node off needs the ssh-mode lab")
    started = time.time()  # other tests may have cut the node off before: count from here
    _, normal, _ = collect(deployed)  # ssh masters to every node are open now
    deployed.lab.lab.firewall().cut_off(ADDRESSES[CUT], "test")
    try:
        data, elapsed, stderr = collect(deployed)
    finally:
        deployed.lab.lab.firewall().restore(ADDRESSES[CUT], "test")
    print(
        f"\ntelemetry collect, {CUT} cut off: {elapsed:.1f} s (collection {data['duration_s']} s; "
        f"a normal one: {normal:.1f} s); {CUT}: {by_node(data)[CUT]['error']}"
    )
    assert elapsed <= normal + TASK_TIMEOUT_S + SLACK_S

    nodes = by_node(data)
    assert list(nodes) == NODES
    assert data["unreachable"] == [CUT]
    assert nodes[CUT]["status"] == "unreachable" and nodes[CUT]["facts"] is None
    assert nodes[CUT]["error"]
    for name in set(NODES) - {CUT}:
        assert nodes[name]["status"] == "ok", nodes[name]
        assert_full_facts(name, nodes[name]["facts"], missing=CUT)
    [incident] = [i for i in data["incidents"] if i["node"] == CUT]
    assert incident["kind"] == "unreachable"
    assert (data["collection"]["nodes_ok"], data["collection"]["nodes_failed"]) == (4, 1)
    assert f"1 of 5 nodes unreachable: {CUT} (" in stderr

    state = lab.state_dir
    window = f"{int(time.time() - started) + 2}s"
    shown = cli("telemetry", "show", "--node", CUT, "--since", window, "--json", state_dir=state)
    assert shown.returncode == 0, shown.stderr
    incidents = json.loads(shown.stdout)["incidents"]
    assert [i["collection_id"] for i in incidents if i["kind"] == "unreachable"] == [
        data["collection_id"]
    ]
    exported = cli("telemetry", "export", "--format", "prometheus", state_dir=state)
    assert exported.returncode == 0, exported.stderr
    families = {f.name: f for f in text_string_to_metric_families(exported.stdout)}
    reachable = {s.labels["node"]: s.value for s in families["lepton_node_reachable"].samples}
    assert reachable == {name: 0.0 if name == CUT else 1.0 for name in NODES}

    # Its address restored, the node answers again.
    again, recovered, _ = collect(deployed)
    print(f"telemetry collect, {CUT} restored: {recovered:.1f} s")
    assert by_node(again)[CUT]["status"] == "ok"
    assert again["unreachable"] == []
