"""``lepton_ops.telemetry.collect``: the gateway's events -> node outcomes -> one stored
collection (run_playbook faked: no Ansible runs here), and the node summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from telemetry_support import T0, make_facts

from lepton_ops.errors import OperationFailed
from lepton_ops.gateway import HostResult, PlaybookResult, PlaybookRun
from lepton_ops.telemetry import (
    HistoryStore,
    IncidentKind,
    NodeOutcome,
    NodeStatus,
    history_path,
)
from lepton_ops.telemetry import collect as collect_module
from lepton_ops.telemetry.collect import MAX_FORKS, collect, forks_for
from lepton_ops.telemetry.summary import THRESHOLDS, Level, summarize

NODES = ["node1", "node2", "node3", "node4", "node5"]
INVENTORY = """
all:
  children:
    aggregator:
      hosts:
        node5: {}
    workers:
      hosts:
        node1: {ansible_host: 127.0.1.1}
        node2: {ansible_host: 127.0.1.2}
        node3: {ansible_host: 127.0.1.3}
        node4: {ansible_host: 127.0.1.4}
        node5: {ansible_host: 127.0.1.5}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    return path


def ok_event(host: str, facts: Any) -> dict[str, Any]:
    return {
        "event": "runner_on_ok",
        "event_data": {
            "host": host,
            "task": "Gather the node's telemetry",
            "task_action": "lepton.ops.telemetry_facts",
            "res": {"changed": False, "ansible_facts": {"lepton_telemetry": facts}},
        },
    }


def problem_event(host: str, kind: str, msg: str) -> dict[str, Any]:
    return {
        "event": f"runner_on_{kind}",
        "event_data": {
            "host": host,
            "task": "Gather the node's telemetry",
            "task_action": "lepton.ops.telemetry_facts",
            "res": {"msg": msg, kind: True},
        },
    }


class FakeGateway:
    """Stands in for run_playbook: plays the given events, returns the matching result."""

    def __init__(self, events: list[dict[str, Any]], *, rc: int = 0, error: str | None = None):
        self.events = events
        self.rc = rc
        self.error = error
        self.requests: list[PlaybookRun] = []

    def __call__(
        self,
        request: PlaybookRun,
        state_dir: Path,
        *,
        console: Any = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> PlaybookResult:
        self.requests.append(request)
        hosts = {name: HostResult(host=name) for name in request.hosts}
        for event in self.events:
            if on_event is not None:
                on_event(event)
            data = event["event_data"]
            counter = {"runner_on_ok": "ok", "runner_on_failed": "failed"}.get(
                event["event"], "unreachable"
            )
            result = hosts.setdefault(data["host"], HostResult(host=data["host"]))
            setattr(result, counter, getattr(result, counter) + 1)
        return PlaybookResult(
            playbook="telemetry",
            rc=self.rc,
            runner_status="successful" if self.rc == 0 else "failed",
            hosts=hosts,
            duration_s=0.5,
            check=False,
            artifacts=state_dir / "runs" / "x" / "artifacts" / "run",
            error=self.error,
        )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeGateway]]:
    def install(events: list[dict[str, Any]], **kwargs: Any) -> FakeGateway:
        gateway = FakeGateway(events, **kwargs)
        monkeypatch.setattr(collect_module, "run_playbook", gateway)
        return gateway

    yield install


def stored(state: Path) -> HistoryStore:
    return HistoryStore(history_path(state))


def test_every_node_is_stored_as_one_collection(
    inventory: Path, tmp_path: Path, fake: Callable[..., FakeGateway]
) -> None:
    gateway = fake([ok_event(node, make_facts(node, T0 + i)) for i, node in enumerate(NODES)])
    state = tmp_path / "state"
    result = collect(inventory, state)

    [request] = gateway.requests
    assert request.playbook == "telemetry"
    assert request.hosts == tuple(NODES)
    assert request.forks == 5
    assert request.timeout_s == collect_module.SSH_CONNECT_TIMEOUT_S
    # Only the node list (built once, here); the inventory may tune the other variables.
    assert list(request.extravars) == ["lepton_telemetry_fleet"]
    fleet = request.extravars["lepton_telemetry_fleet"]
    assert [node["name"] for node in fleet] == NODES
    assert fleet[0] == {"name": "node1", "address": "127.0.1.1", "port": 22, "role": "peer"}
    assert fleet[4]["role"] == "aggregator"
    assert [o.node for o in result.outcomes] == NODES
    assert all(o.status is NodeStatus.OK for o in result.outcomes)
    assert result.unreachable == [] and result.answered == NODES
    assert result.record.source == "ansible"
    assert (result.record.nodes_ok, result.record.nodes_failed) == (5, 0)
    assert result.record.incidents == 0
    with stored(state) as store:
        assert store.nodes() == NODES
        [record] = store.collections()
        assert record == result.record
        cpu = store.series(metric="lepton_node_cpu_util_pct")
        assert [(s.node, s.points) for s in cpu] == [
            (node, [(T0 + i, 12.5)]) for i, node in enumerate(NODES)
        ]
    data = result.to_dict()
    assert data["collection_id"] == result.record.id
    assert [n["node"] for n in data["nodes"]] == NODES
    assert data["nodes"][0]["facts"] == make_facts("node1", T0)
    assert data["nodes"][0]["reachable"] is True and data["nodes"][0]["error"] is None


def test_an_unreachable_node_is_a_zero_sample_and_an_incident(
    inventory: Path, tmp_path: Path, fake: Callable[..., FakeGateway]
) -> None:
    message = "Failed to connect to the host via ssh: ssh: connect to host 127.0.1.3: timed out"
    events = [
        ok_event(node, make_facts(node, T0)) if node != "node3" else
        problem_event(node, "unreachable", message)
        for node in NODES
    ]  # fmt: skip
    fake(events, rc=4)
    state = tmp_path / "state"
    result = collect(inventory, state)

    assert result.unreachable == ["node3"]
    node3 = result.outcomes[2]
    assert node3.status is NodeStatus.UNREACHABLE
    assert node3.error == f"unreachable: {message}"
    assert (result.record.nodes_ok, result.record.nodes_failed) == (4, 1)
    with stored(state) as store:
        reachable = {row.node: row.value for row in store.latest(metric="lepton_node_reachable")}
        assert reachable == {"node1": 1.0, "node2": 1.0, "node3": 0.0, "node4": 1.0, "node5": 1.0}
        [incident] = store.incidents()
        assert (incident.node, incident.kind) == ("node3", IncidentKind.UNREACHABLE.value)
        assert message in incident.detail
        assert incident.collection_id == result.record.id
        # the others lost nothing
        assert len(store.series(node="node4")) == len(store.series(node="node1")) > 30
    data = result.to_dict()
    assert data["unreachable"] == ["node3"]
    assert data["nodes"][2] == {
        "node": "node3",
        "status": "unreachable",
        "reachable": False,
        "ts": node3.ts,
        "error": node3.error,
        "facts": None,
    }
    assert [(i["node"], i["kind"]) for i in data["incidents"]] == [("node3", "unreachable")]


def test_failed_malformed_and_silent_hosts_never_cost_the_others(
    inventory: Path, tmp_path: Path, fake: Callable[..., FakeGateway]
) -> None:
    broken = make_facts("node2", T0)
    del broken["memory"]
    fake(
        [
            ok_event("node1", make_facts("node1", T0)),
            ok_event("node2", broken),
            problem_event("node3", "failed", "Task failed: Timed out after 8 second(s)."),
            ok_event("node5", make_facts("node5", T0, unhealthy=("worker",))),
            # node4: no event at all (the run was cut short)
        ],
        rc=2,
    )
    state = tmp_path / "state"
    result = collect(inventory, state)

    status = {o.node: o.status for o in result.outcomes}
    assert status == {
        "node1": NodeStatus.OK,
        "node2": NodeStatus.INVALID,
        "node3": NodeStatus.UNREACHABLE,
        "node4": NodeStatus.UNREACHABLE,
        "node5": NodeStatus.OK,
    }
    errors = {o.node: o.error for o in result.outcomes}
    assert errors["node2"] is not None and "memory: missing" in errors["node2"]
    assert errors["node3"] == "telemetry task failed: Task failed: Timed out after 8 second(s)."
    assert errors["node4"] is not None and "no result" in errors["node4"]
    with stored(state) as store:
        kinds = sorted((i.node, i.kind) for i in store.incidents())
        assert kinds == [
            ("node2", "facts_invalid"),
            ("node3", "unreachable"),
            ("node4", "unreachable"),
            ("node5", "health_check_failed"),
        ]
        assert store.latest(node="node1", metric="lepton_node_cpu_util_pct")[0].value == 12.5


def test_a_playbook_that_reached_no_host_stores_nothing(
    inventory: Path, tmp_path: Path, fake: Callable[..., FakeGateway]
) -> None:
    fake([], rc=4, error="ERROR! couldn't resolve module/action 'lepton.ops.telemetry_facts'")
    state = tmp_path / "state"
    with pytest.raises(OperationFailed, match="did not run: ERROR! couldn't resolve"):
        collect(inventory, state)
    with stored(state) as store:
        assert store.collections() == []


def test_limit_and_forks(inventory: Path, tmp_path: Path, fake: Callable[..., FakeGateway]) -> None:
    gateway = fake([ok_event("node2", make_facts("node2", T0))])
    result = collect(inventory, tmp_path / "state", limit="node2")
    [request] = gateway.requests
    assert request.hosts == ("node2",) and request.limit == "node2" and request.forks == 1
    assert [o.node for o in result.outcomes] == ["node2"]
    assert forks_for(0) == 1
    assert forks_for(7) == 7
    assert forks_for(10_000) == MAX_FORKS


def test_summary_picks_the_worst_and_levels_by_the_thresholds() -> None:
    facts = make_facts("node1", T0, cpu=97.0, unhealthy=("aggregator",))
    facts["latency"][1]["reachable"] = False
    facts["latency"][1]["latency_ms"] = None
    summary = summarize(NodeOutcome.from_facts("node1", facts))
    assert summary.cpu_pct == 97.0 and summary.level("cpu_pct") is Level.BAD
    assert summary.mem_pct == 25.0 and summary.level("mem_pct") is Level.OK
    assert (summary.disk_pct, summary.disk_path) == (41.0, "/var/lib/lepton")
    assert (summary.latency_ms, summary.latency_target) == (2.5, "peer2")
    assert summary.loss == 1.0 and summary.unreached_targets == ("peer1",)
    assert [(s.name, s.healthy) for s in summary.services] == [
        ("worker", True),
        ("aggregator", False),
    ]
    assert not summary.healthy
    down = summarize(NodeOutcome.unreachable("node3", "unreachable: timed out"))
    assert not down.reachable and down.error == "unreachable: timed out"
    assert down.level("cpu_pct") is Level.UNKNOWN
    assert THRESHOLDS["disk_pct"].level(85.0) is Level.WARN


def test_a_timed_out_task_says_so() -> None:
    events = collect_module.FactEvents()
    event = problem_event("node3", "failed", "Task failed: Timed out after 8 second(s).")
    event["event_data"]["res"]["timedout"] = {"frame": "...", "period": 8}
    events.on_event(event)
    assert events.problems["node3"][0] == "no answer within 8 s (the task timed out)"


def test_the_playbook_default_task_timeout_is_the_documented_one() -> None:
    playbook = Path(collect_module.__file__).resolve().parents[2] / (
        "ansible_collections/lepton/ops/playbooks/telemetry.yml"
    )
    text = playbook.read_text()
    default = f"lepton_telemetry_task_timeout | default({collect_module.TASK_TIMEOUT_S}) | int"
    assert default in text
    assert "gather_facts: false" in text
