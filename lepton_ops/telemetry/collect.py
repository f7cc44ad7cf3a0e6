"""Collect telemetry: run ``lepton.ops.telemetry`` on the fleet through the gateway, turn
each host into a :class:`~lepton_ops.telemetry.facts.NodeOutcome` and store them all as
one collection.

Each host's facts are taken from the gateway's event stream (the module's result holds
them under ``ansible_facts.lepton_telemetry``), as they arrive: nothing is read back from
Ansible's printed output or its fact cache. A host that is unreachable, or whose task
failed or timed out, becomes an ``unreachable`` outcome with the reason (one sample
``lepton_node_reachable`` = 0 and an incident); it never costs the others their samples.

Time: every host runs the one task at once (one fork per host, at most
:data:`MAX_FORKS`). A node that does not answer costs at most about
:data:`TASK_TIMEOUT_S` seconds: the ssh connect gives up after
:data:`SSH_CONNECT_TIMEOUT_S`, and the task itself is stopped after
:data:`TASK_TIMEOUT_S` (this covers an already open ssh master to a node that went away,
which otherwise waits for the keepalives, about 12 s).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.gateway import PlaybookResult, PlaybookRun, run_playbook
from lepton_ops.inventory import Fleet, Node, load_fleet
from lepton_ops.telemetry.facts import NodeOutcome, NodeStatus
from lepton_ops.telemetry.facts_schema import FACTS_KEY
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.records import CollectionRecord, CollectionSource

PLAYBOOK = "telemetry"
#: The module every host runs (its result carries the facts).
MODULE = "lepton.ops.telemetry_facts"
#: ssh ConnectTimeout (ANSIBLE_TIMEOUT) of a collection.
SSH_CONNECT_TIMEOUT_S = 5
#: The task's own time limit: the default of the playbook's ``lepton_telemetry_task_timeout``
#: (an inventory may set another).
TASK_TIMEOUT_S = 8
#: Hosts sampled at once; larger fleets go in rounds of this many.
MAX_FORKS = 50


@dataclass(frozen=True)
class CollectionResult:
    """A stored collection: every node's outcome (in inventory order) and its record."""

    outcomes: tuple[NodeOutcome, ...]
    record: CollectionRecord
    run: PlaybookResult
    duration_s: float

    @property
    def unreachable(self) -> list[str]:
        return [o.node for o in self.outcomes if o.status is NodeStatus.UNREACHABLE]

    @property
    def answered(self) -> list[str]:
        return [o.node for o in self.outcomes if o.status is not NodeStatus.UNREACHABLE]

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            "collection_id": record.id,
            "collection": {
                "id": record.id,
                "source": record.source,
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "nodes_ok": record.nodes_ok,
                "nodes_failed": record.nodes_failed,
                "samples": record.samples,
                "incidents": record.incidents,
            },
            "duration_s": round(self.duration_s, 3),
            "nodes": [_outcome_dict(outcome) for outcome in self.outcomes],
            "unreachable": self.unreachable,
            "incidents": [
                {
                    "node": incident.node,
                    "kind": incident.kind.value,
                    "subject": incident.subject,
                    "detail": incident.detail,
                    "ts": incident.ts,
                }
                for outcome in self.outcomes
                for incident in outcome.incidents()
            ],
        }


def collect(
    inventory: Path,
    state_dir: Path,
    *,
    limit: str | None = None,
    console: Console | None = None,
    verbosity: int = 0,
) -> CollectionResult:
    """Sample every node ``inventory`` (and ``limit``) names and store the samples.

    Raises OperationFailed only when the playbook could not run at all (nothing is stored
    then); unreachable and failing nodes are recorded, not raised.
    """
    fleet = load_fleet(inventory, limit)
    whole = load_fleet(inventory) if limit else fleet
    hosts = tuple(fleet.names)
    request = PlaybookRun(
        playbook=PLAYBOOK,
        inventory=inventory,
        hosts=hosts,
        limit=limit,
        extravars={"lepton_telemetry_fleet": probe_targets(whole)},
        verbosity=verbosity,
        forks=forks_for(len(hosts)),
        timeout_s=SSH_CONNECT_TIMEOUT_S,
    )
    events = FactEvents()
    started_at = time.time()
    started = time.monotonic()
    run = run_playbook(request, state_dir, console=console, on_event=events.on_event)
    duration = time.monotonic() - started
    if not events.answers and not events.problems:
        # The play never reached a host: a broken playbook, collection or interpreter.
        reason = run.error or f"ansible-playbook exit code {run.rc}; see {run.artifacts}"
        raise OperationFailed(f"telemetry collection did not run: {reason}")
    outcomes = tuple(events.outcome(host, run) for host in hosts)
    with HistoryStore(history_path(state_dir)) as store:
        record = store.record_collection(
            outcomes, CollectionSource.ANSIBLE, started_at=started_at, finished_at=time.time()
        )
    return CollectionResult(outcomes, record, run, duration)


def probe_targets(fleet: Fleet) -> list[dict[str, Any]]:
    """Every node of the inventory as a probe target: name, address, port and role.

    Built once here and handed to the playbook: the playbook's own fallback (for plain
    ansible-playbook) looks up every host's variables for every host, which grows with
    the square of the fleet.
    """
    return [
        {
            "name": node.name,
            "address": node.address,
            "port": _probe_port(node),
            "role": "aggregator" if node.is_aggregator else "peer",
        }
        for node in fleet.nodes
    ]


def _probe_port(node: Node) -> int:
    value = node.vars.get("lepton_telemetry_probe_port")
    if value is None:
        return node.port if node.port is not None else 22
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise BadInput(
            f"host {node.name}: lepton_telemetry_probe_port must be a port number (1-65535), "
            f"got {value!r}"
        )
    return int(text)


def forks_for(host_count: int) -> int:
    """One fork per host, so that every node is sampled at the same time (at most MAX_FORKS)."""
    return max(1, min(host_count, MAX_FORKS))


@dataclass
class FactEvents:
    """Per host, from the gateway's events: the facts it sent, or why it sent none."""

    #: host -> (facts, when they arrived)
    answers: dict[str, tuple[Any, float]] = field(default_factory=dict)
    #: host -> (why it sent no facts, when that was seen)
    problems: dict[str, tuple[str, float]] = field(default_factory=dict)

    def on_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        data = event.get("event_data") or {}
        host = data.get("host")
        if not host:
            return
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            facts = (res.get("ansible_facts") or {}).get(FACTS_KEY)
            if facts is not None or data.get("task_action") == MODULE:
                self.answers[host] = (facts, time.time())
        elif kind == "runner_on_unreachable":
            self.problems[host] = (f"unreachable: {_message(res)}", time.time())
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            timed_out = res.get("timedout")
            if isinstance(timed_out, Mapping) and timed_out.get("period"):
                reason = f"no answer within {timed_out['period']} s (the task timed out)"
            else:
                reason = f"telemetry task failed: {_message(res)}"
            self.problems[host] = (reason, time.time())

    def outcome(self, host: str, run: PlaybookResult) -> NodeOutcome:
        if host in self.answers:
            facts, received_at = self.answers[host]
            return NodeOutcome.from_facts(host, facts, received_at=received_at)
        if host in self.problems:
            reason, seen_at = self.problems[host]
            return NodeOutcome.unreachable(host, reason, ts=seen_at)
        result = run.hosts.get(host)
        detail = result.messages[0] if result and result.messages else None
        return NodeOutcome.unreachable(
            host, detail or f"no result from the {PLAYBOOK} playbook (exit code {run.rc})"
        )


def _message(res: Mapping[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or "no answer"
    text = " ".join(str(msg).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _outcome_dict(outcome: NodeOutcome) -> dict[str, Any]:
    return {
        "node": outcome.node,
        "status": outcome.status.value,
        "reachable": outcome.status is not NodeStatus.UNREACHABLE,
        "ts": outcome.ts,
        "error": outcome.error,
        "facts": dict(outcome.facts) if outcome.facts is not None else None,
    }
