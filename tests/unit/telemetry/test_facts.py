"""``lepton_ops.telemetry.facts``: a node's facts -> samples (catalogue metrics, labels,
nulls skipped), malformed facts, and the node outcomes' samples and incidents."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from telemetry_support import T0, make_facts, wrapped

from lepton_ops.errors import BadInput
from lepton_ops.telemetry import (
    CATALOGUE,
    METRICS,
    IncidentKind,
    MetricType,
    NodeOutcome,
    NodeStatus,
    Sample,
    Scope,
    node_samples,
)

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def by_key(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    keyed = {(s.metric, s.labels): s.value for s in samples}
    assert len(keyed) == len(samples), "two samples of one series in one collection"
    return keyed


# --------------------------------------------------------------------------- catalogue


def test_catalogue_names_are_unique_prometheus_names_with_help() -> None:
    assert len(METRICS) == len(CATALOGUE)
    for spec in CATALOGUE:
        assert NAME.match(spec.name), spec.name
        assert spec.name.startswith(("lepton_node_", "lepton_service_"))
        assert spec.help.strip() and "\n" not in spec.help
        assert all(LABEL.match(label) for label in spec.labels)
        assert spec.labels[0] == "node"
        # Prometheus convention: a counter's name ends in _total, a gauge's does not.
        assert spec.name.endswith("_total") == (spec.type is MetricType.COUNTER)


def test_full_facts_give_every_catalogue_metric_and_nothing_else() -> None:
    samples = node_samples("node1", make_facts())
    assert {s.metric for s in samples} == set(METRICS)
    assert {s.ts for s in samples} == {T0}
    assert {s.node for s in samples} == {"node1"}
    for spec in CATALOGUE:
        names = {tuple(name for name, _ in s.labels) for s in samples if s.metric == spec.name}
        assert names == {tuple(sorted(spec.labels[1:]))}, spec.name


def test_values_and_labels() -> None:
    values = by_key(node_samples("node1", make_facts(unhealthy=("worker",))))
    assert values["lepton_node_reachable", ()] == 1.0
    assert values["lepton_node_cpu_util_pct", ()] == 12.5
    assert values["lepton_node_load1", ()] == 1.0
    assert values["lepton_node_load1_per_cpu", ()] == 0.25
    assert values["lepton_node_memory_total_bytes", ()] == float(8 << 30)
    assert values["lepton_node_fds_used_pct", ()] == 25.0
    assert values["lepton_node_facts_errors", ()] == 0.0
    assert values["lepton_node_disk_used_pct", (("path", "/"),)] == 40.0
    assert values["lepton_node_disk_used_pct", (("path", "/var/lib/lepton"),)] == 41.0
    assert values["lepton_node_disk_exists", (("path", "/"),)] == 1.0
    aggregator = (("role", "aggregator"), ("target", "aggregator"))
    assert values["lepton_node_latency_ms", aggregator] == 0.5
    assert values["lepton_node_latency_lost_ratio", aggregator] == 0.25
    assert values["lepton_node_latency_lost_ratio", (("role", "peer"), ("target", "peer2"))] == 0
    assert values["lepton_node_target_reachable", aggregator] == 1.0
    assert values["lepton_service_healthy", (("service", "worker"),)] == 0.0
    assert values["lepton_service_healthy", (("service", "aggregator"),)] == 1.0
    assert values["lepton_service_status_code", (("service", "worker"),)] == 503.0
    assert values["lepton_service_memory_used_pct", (("service", "worker"),)] == 25.0
    assert values["lepton_service_restarts_total", (("service", "worker"),)] == 3.0


def test_nulls_are_skipped_not_stored_as_zero() -> None:
    facts = make_facts(cpu=None)
    facts["uptime_s"] = None
    facts["memory"]["used_pct"] = None
    facts["processes"]["max_fds"] = None
    facts["disks"][0]["used_pct"] = None
    facts["latency"][1].update(latency_ms=None, reachable=False, attempts=0, lost=0)
    facts["services"][0].update(
        memory_limit_bytes=None, rss_bytes=None, status_code=None, restarts=None
    )
    facts["errors"] = ["cannot read /proc/uptime", "cannot read /proc/stat"]
    values = by_key(node_samples("node1", facts))
    for missing in (
        ("lepton_node_cpu_util_pct", ()),
        ("lepton_node_uptime_seconds", ()),
        ("lepton_node_memory_used_pct", ()),
        ("lepton_node_max_fds", ()),
        # derived from a null, or divided by 0
        ("lepton_node_fds_used_pct", ()),
        ("lepton_node_disk_used_pct", (("path", "/"),)),
        ("lepton_node_latency_ms", (("role", "peer"), ("target", "peer1"))),
        ("lepton_node_latency_lost_ratio", (("role", "peer"), ("target", "peer1"))),
        ("lepton_service_rss_bytes", (("service", "worker"),)),
        ("lepton_service_memory_used_pct", (("service", "worker"),)),
        ("lepton_service_status_code", (("service", "worker"),)),
        ("lepton_service_restarts_total", (("service", "worker"),)),
    ):
        assert missing not in values, missing
    assert values["lepton_node_target_reachable", (("role", "peer"), ("target", "peer1"))] == 0
    assert values["lepton_node_facts_errors", ()] == 2.0
    assert values["lepton_node_disk_used_pct", (("path", "/var/lib/lepton"),)] == 41.0
    assert all(not math.isnan(value) for value in values.values())


def test_a_half_broken_node_that_could_read_nothing_still_counts() -> None:
    facts: dict[str, Any] = {
        "schema": 1,
        "timestamp": T0,
        "hostname": None,
        "uptime_s": None,
        "cpu": {"count": None, "util_pct": None, "sample_s": 0.0},
        "load": {"1m": None, "5m": None, "15m": None},
        "memory": {"total_bytes": None, "available_bytes": None, "used_pct": None},
        "swap": {"total_bytes": None, "free_bytes": None, "used_pct": None},
        "disks": [
            {"path": "/", "exists": False, "used_pct": None, "free_bytes": None,
             "inodes_used_pct": None},
        ],
        "processes": {"count": None, "open_fds": None, "max_fds": None},
        "latency": [
            {"name": "aggregator", "address": "127.0.1.3", "port": 22, "role": "aggregator",
             "attempts": 3, "lost": 3, "latency_ms": None, "reachable": False},
        ],
        "services": [
            {"name": "worker", "url": "http://127.0.1.1:9000/healthz", "healthy": False,
             "status_code": None, "latency_ms": None, "pid": None, "running": False,
             "rss_bytes": None, "memory_limit_bytes": None, "restarts": None},
        ],
        "errors": ["cpu: cannot read /proc/stat", "memory: cannot read /proc/meminfo"],
    }  # fmt: skip
    outcome = NodeOutcome.from_facts("node5", facts)
    assert outcome.ok, outcome.error
    aggregator = (("role", "aggregator"), ("target", "aggregator"))
    assert by_key(outcome.samples()) == {
        ("lepton_node_reachable", ()): 1.0,
        ("lepton_node_facts_errors", ()): 2.0,
        ("lepton_node_disk_exists", (("path", "/"),)): 0.0,
        ("lepton_node_latency_lost_ratio", aggregator): 1.0,
        ("lepton_node_target_reachable", aggregator): 0.0,
        ("lepton_service_healthy", (("service", "worker"),)): 0.0,
        ("lepton_service_running", (("service", "worker"),)): 0.0,
    }
    (incident,) = outcome.incidents()
    assert incident.detail.endswith(": no answer, process not running")


def test_facts_wrapped_as_the_module_returns_them_and_unknown_keys_ignored() -> None:
    facts = make_facts()
    facts["gpu"] = {"count": 8}
    facts["cpu"]["steal_pct"] = 1.0
    assert node_samples("node1", wrapped(facts)) == node_samples("node1", make_facts())


def test_no_lists_give_node_metrics_only() -> None:
    facts = make_facts(disks=(), peers=-1)
    facts["services"] = []
    samples = node_samples("node1", facts)
    assert samples and all(METRICS[s.metric].scope is Scope.NODE for s in samples)


# --------------------------------------------------------------------------- malformed facts


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(facts: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = facts
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is KeyError:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return change


MALFORMED = [
    (_set("cpu", KeyError), "cpu: missing"),
    (_set("cpu.util_pct", "12%"), "cpu.util_pct: expected a number or null, got '12%'"),
    (_set("disks.1.used_pct", "abc"), "disks[1].used_pct: expected a number or null"),
    (_set("disks.0.exists", 1), "disks[0].exists: expected true or false, got 1"),
    (_set("load.1m", True), "load.1m: expected a number or null, got True"),
    (_set("memory.used_pct", float("nan")), "memory.used_pct: expected a number or null"),
    (_set("latency.0.role", "boss"), 'latency[0].role: expected "aggregator" or "peer"'),
    (_set("latency.0.port", 22.5), "latency[0].port: expected an integer or null"),
    (_set("latency.0.name", None), "latency[0].name: expected a non-empty string, got None"),
    (_set("services.0.healthy", None), "services[0].healthy: expected true or false"),
    (_set("services.1.name", ""), "services[1].name: expected a non-empty string"),
    (_set("services", {"worker": {}}), "services: expected a list"),
    (_set("errors", [None]), "errors[0]: expected a string, got None"),
    (_set("disks.1.path", "/"), "disks: path '/' appears more than once"),
    (_set("schema", 2), "facts schema 2 is not supported (this lepton-ops reads schema 1)"),
    (_set("timestamp", -5), "timestamp: expected a time after 1970"),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_malformed_facts_are_refused_with_one_line(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    facts = make_facts()
    change(facts)
    with pytest.raises(BadInput) as caught:
        node_samples("node7", facts)
    text = str(caught.value)
    assert text.startswith(f"telemetry facts of node7: {message}"), text
    assert "\n" not in text


@pytest.mark.parametrize("facts", [None, "facts", [], 42, {"lepton_telemetry": "x"}])
def test_facts_that_are_not_an_object(facts: Any) -> None:
    with pytest.raises(BadInput, match=r"^telemetry facts of n: facts: expected an object"):
        node_samples("n", facts)


def test_malformed_facts_become_an_invalid_outcome_not_an_error() -> None:
    facts = make_facts()
    facts["disks"][1]["used_pct"] = "abc"
    outcome = NodeOutcome.from_facts("node7", facts, received_at=T0 + 5)
    assert outcome.status is NodeStatus.INVALID and not outcome.ok
    assert outcome.ts == T0 + 5
    assert outcome.error is not None and "disks[1].used_pct" in outcome.error
    # It answered: reachable, but none of its half-trusted numbers are kept.
    assert outcome.samples() == [Sample("node7", "lepton_node_reachable", (), T0 + 5, 1.0)]
    (incident,) = outcome.incidents()
    assert incident.kind is IncidentKind.FACTS_INVALID
    assert incident.detail == outcome.error and incident.node == "node7"


def test_checked_facts_are_not_changed() -> None:
    facts = make_facts()
    before = copy.deepcopy(facts)
    NodeOutcome.from_facts("node1", facts).samples()
    assert facts == before


# --------------------------------------------------------------------------- outcomes


def test_unreachable_node_is_a_zero_sample_and_an_incident() -> None:
    outcome = NodeOutcome.unreachable(
        "node2", "Failed to connect to the host via ssh:\n  Connection refused", ts=T0
    )
    assert outcome.status is NodeStatus.UNREACHABLE
    assert outcome.samples() == [Sample("node2", "lepton_node_reachable", (), T0, 0.0)]
    (incident,) = outcome.incidents()
    assert incident.kind is IncidentKind.UNREACHABLE
    assert incident.detail == "Failed to connect to the host via ssh: Connection refused"
    assert (incident.node, incident.ts, incident.subject) == ("node2", T0, None)


def test_failed_health_check_is_an_incident_naming_the_service() -> None:
    outcome = NodeOutcome.from_facts("node3", make_facts(unhealthy=("worker",)))
    assert outcome.ok
    (incident,) = outcome.incidents()
    assert incident.kind is IncidentKind.HEALTH_CHECK_FAILED
    assert incident.subject == "worker"
    assert incident.detail == (
        "service worker failed its health check at http://127.0.1.1:9000/healthz: "
        "status 503, process running"
    )
    assert NodeOutcome.from_facts("node3", make_facts()).incidents() == []


@pytest.mark.parametrize("node", ["", "  ", None, 3])
def test_a_node_needs_a_name(node: Any) -> None:
    with pytest.raises(BadInput, match="a node name must be a non-empty string"):
        NodeOutcome.from_facts(node, make_facts())
    with pytest.raises(BadInput, match="a node name must be a non-empty string"):
        NodeOutcome.unreachable(node, "down")
