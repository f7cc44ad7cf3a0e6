"""``lepton-ops telemetry``: show, export and prune over a filled store, bad input (one line,
exit 2), and one real ``collect`` through Ansible (local connection, one unreachable host)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import one_error_line, run_cli
from prometheus_client.parser import text_string_to_metric_families
from telemetry_support import make_facts

from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

NODES = ["node1", "node2", "node3", "node4", "node5"]
CPU = "lepton_node_cpu_util_pct"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A store with two collections of five nodes, 5 and 2 minutes ago; node3 unreachable
    in the second."""
    state_dir = tmp_path / "state"
    now = time.time()
    with HistoryStore(history_path(state_dir)) as store:
        for minutes_ago in (5, 2):
            ts = now - minutes_ago * 60
            outcomes = [
                NodeOutcome.unreachable(node, "unreachable: timed out", ts=ts)
                if node == "node3" and minutes_ago == 2
                else NodeOutcome.from_facts(
                    node, make_facts(node, ts, cpu=10.0 * index + minutes_ago)
                )
                for index, node in enumerate(NODES, start=1)
            ]
            store.record_collection(outcomes, "ansible", started_at=ts, finished_at=ts + 1)
    return state_dir


def telemetry(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("telemetry", *args, state_dir=state)


def test_show_json_filters_by_node_metric_and_window(state: Path) -> None:
    result = telemetry(state, "show", "--node", "node2", "--metric", CPU, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["node"], data["metric"]) == ("node2", CPU)
    [series] = data["series"]
    assert (series["node"], series["metric"], series["labels"]) == ("node2", CPU, {})
    assert [value for _, value in series["points"]] == [25.0, 22.0]
    assert data["incidents"] == []

    recent = json.loads(telemetry(state, "show", "--since", "3m", "--metric", CPU, "--json").stdout)
    assert {s["node"]: len(s["points"]) for s in recent["series"]} == {
        "node1": 1,
        "node2": 1,
        "node4": 1,
        "node5": 1,
    }
    [incident] = recent["incidents"]
    assert (incident["node"], incident["kind"]) == ("node3", "unreachable")


def test_show_table_has_every_node_and_the_incident(state: Path) -> None:
    result = telemetry(state, "show")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line[:6] == "│ node"}
    assert set(rows) == set(NODES)
    assert " no " in rows["node3"] and "unreachable" in rows["node3"]
    assert " yes " in rows["node1"] and "12.0" in rows["node1"]
    assert "1 incidents" in result.stdout

    by_metric = telemetry(state, "show", "--metric", CPU, "--node", "node4")
    assert by_metric.returncode == 0, by_metric.stderr
    assert "node4" in by_metric.stdout and "node1" not in by_metric.stdout


def test_export_prometheus_parses_with_prometheus_client(state: Path) -> None:
    result = telemetry(state, "export", "--format", "prometheus")
    assert result.returncode == 0, result.stderr
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    reachable = {s.labels["node"]: s.value for s in families["lepton_node_reachable"].samples}
    assert reachable == {"node1": 1.0, "node2": 1.0, "node3": 0.0, "node4": 1.0, "node5": 1.0}
    cpu = {s.labels["node"]: s.value for s in families[CPU].samples}
    assert cpu == {"node1": 12.0, "node2": 22.0, "node3": 35.0, "node4": 42.0, "node5": 52.0}
    assert families[CPU].type == "gauge"
    latency = families["lepton_node_latency_ms"].samples
    assert {s.labels["role"] for s in latency} == {"aggregator", "peer"}

    one = telemetry(state, "export", "--format", "prometheus", "--node", "node1", "--since", "3m")
    names = {f.name for f in text_string_to_metric_families(one.stdout)}
    assert CPU in names
    assert all('node="node1"' in line for line in one.stdout.splitlines() if line[:1] != "#")


def test_export_csv(state: Path) -> None:
    result = telemetry(state, "export", "--format", "csv", "--metric", CPU)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 9  # 5 nodes twice, node3 once
    assert {row["metric"] for row in rows} == {CPU}
    assert [row["value"] for row in rows if row["node"] == "node3"] == ["35.0"]


def test_prune(state: Path) -> None:
    result = telemetry(state, "prune", "--older-than", "3m", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["older_than_s"] == 180.0
    assert data["collections"] == 1 and data["samples"] > 100 and data["incidents"] == 0
    table = telemetry(state, "prune", "--older-than", "30d")
    assert table.returncode == 0 and "0 samples" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "--since", "10"), "bad duration '10'"),
        (("show", "--since", "0m"), "longer than 0 seconds"),
        (("export", "--format", "prometheus", "--since", "soon"), "bad duration 'soon'"),
        (("prune", "--older-than", "30 days"), "bad duration '30 days'"),
        (("export", "--format", "xml"), "'xml' is not one of 'csv', 'prometheus'"),
        (("show", "--node", "node9"), "no telemetry for node 'node9'"),
        (("export", "--format", "csv", "--node", "node9"), "no telemetry for node 'node9'"),
        (("show", "--metric", "lepton_node_cpu"), "did you mean lepton_node_cpu"),
        (("prune",), "Missing option '--older-than'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(state: Path, args: tuple[str, ...], message: str) -> None:
    result = telemetry(state, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in one_error_line(result)
    assert result.stdout == ""


def test_collect_without_an_inventory_is_bad_input(tmp_path: Path) -> None:
    result = telemetry(tmp_path / "state", "collect")
    assert result.returncode == 2
    assert "no inventory" in one_error_line(result)


def test_collect_through_ansible_records_an_unreachable_host(tmp_path: Path) -> None:
    """Two hosts on the local connection answer; one ssh host on a closed port is
    unreachable. The collection is stored and exits 0, with the host named on stderr."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n"
        "  vars:\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "    lepton_insecure_http: true\n"
        "  hosts:\n"
        "    here1: {ansible_connection: local, ansible_host: 127.0.0.1}\n"
        "    here2: {ansible_connection: local, ansible_host: 127.0.0.2}\n"
        "    gone: {ansible_connection: ssh, ansible_host: 127.0.0.3, ansible_port: 1}\n"
        "  children:\n"
        "    workers: {hosts: {here1: {}, here2: {}}}\n"
    )
    state = tmp_path / "state"
    result = run_cli("telemetry", "collect", "-i", str(inventory), "--json", state_dir=state)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    nodes = {node["node"]: node for node in data["nodes"]}
    assert list(nodes) == ["gone", "here1", "here2"]
    for name in ("here1", "here2"):
        facts = nodes[name]["facts"]
        assert nodes[name]["status"] == "ok"
        assert facts["schema"] == 1 and facts["memory"]["used_pct"] is not None
        ports = {target["name"]: target["port"] for target in facts["latency"]}
        assert set(ports) == {"gone", "here1", "here2"} - {name}
        assert ports["gone"] == 1  # its ansible_port
        [service] = facts["services"]
        assert service["name"] == "lepton-worker"
        address = "127.0.0.1" if name == "here1" else "127.0.0.2"
        assert service["url"] == f"http://{address}:8701/healthz"
    assert nodes["gone"]["status"] == "unreachable" and nodes["gone"]["facts"] is None
    assert "Connection refused" in nodes["gone"]["error"]
    assert data["unreachable"] == ["gone"]
    assert ("gone", "unreachable") in {(i["node"], i["kind"]) for i in data["incidents"]}
    assert data["collection"]["nodes_ok"] == 2 and data["collection"]["nodes_failed"] == 1
    warning = result.stderr.strip().splitlines()[-1]
    assert warning.startswith("lepton-ops: warning: 1 of 3 nodes unreachable: gone (")

    with HistoryStore(history_path(state)) as store:
        assert [c.id for c in store.collections()] == [data["collection_id"]]
        assert store.latest(node="gone", metric="lepton_node_reachable")[0].value == 0.0


def test_collect_exits_1_with_one_line_when_no_node_answers(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    gone: {ansible_connection: ssh, ansible_host: 127.0.0.3, ansible_port: 1}\n"
    )
    state = tmp_path / "state"
    result = run_cli("telemetry", "collect", "-i", str(inventory), "--json", state_dir=state)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "no node answered" in line and "gone (unreachable: " in line
    assert json.loads(result.stdout)["unreachable"] == ["gone"]
    with HistoryStore(history_path(state)) as store:
        [incident] = store.incidents()
        assert (incident.node, incident.kind) == ("gone", "unreachable")


def test_each_node_probes_the_aggregator_and_its_next_four_peers(tmp_path: Path) -> None:
    """Eight local hosts: every node probes the aggregator plus the next four nodes in the
    inventory's order (a ring), so the probes grow with the fleet, not with its square."""
    names = [f"n{i}" for i in range(1, 9)]
    hosts = "".join(
        f"    {name}: {{ansible_connection: local, ansible_host: 127.0.0.{10 + i}}}\n"
        for i, name in enumerate(names)
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n"
        "  vars:\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "    lepton_telemetry_probe_port: 1\n"
        "    lepton_telemetry_attempts: 1\n"
        f"  hosts:\n{hosts}"
        "  children:\n"
        "    aggregator: {hosts: {n8: {}}}\n"
    )
    result = run_cli(
        "telemetry", "collect", "-i", str(inventory), "--json", state_dir=tmp_path / "state"
    )
    assert result.returncode == 0, result.stderr
    nodes = {node["node"]: node for node in json.loads(result.stdout)["nodes"]}
    for i, name in enumerate(names):
        targets = [(t["name"], t["role"]) for t in nodes[name]["facts"]["latency"]]
        ring = [names[(i + step) % len(names)] for step in range(1, len(names))]
        peers = [peer for peer in ring if peer != "n8"][:4]
        expected = ([] if name == "n8" else [("n8", "aggregator")]) + [(p, "peer") for p in peers]
        assert targets == expected, name
