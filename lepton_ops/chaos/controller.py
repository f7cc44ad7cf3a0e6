"""Inject, stop and follow faults on the lab's nodes, and keep their records in the store.

Faults on a node run there (the ``lepton.ops.chaos`` playbook and its module
``lepton.ops.chaos_fault``), in detached runners that record when the node actually
failed and how the fault ended; :meth:`Chaos.sync` brings those records into the
telemetry store's ``faults`` table, the predictor's labels. A partition is done here, on
the controller: the lab firewall drops the node's address, and a detached timer
(:mod:`lepton_ops.chaos.partition`) restores it when the duration is over.

Chaos only ever runs on the lab (the lab's own inventory, nodes and 127.0.1.x addresses).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from lepton_ops.chaos.faults import ON_NODE, SSH_ONLY, FaultKind, FaultSpec, partition_owner
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.gateway import PlaybookResult, PlaybookRun, run_playbook
from lepton_ops.lab import Lab, LabMode
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.records import FaultOutcome, FaultRecord

PLAYBOOK = "chaos"
MODULE = "lepton.ops.chaos_fault"
PARTITION_FAILURE = "node unreachable: its address is dropped by the lab firewall"


def node_fault_id(fault_id: int) -> str:
    """The id a fault has on its node (its record's name there)."""
    return f"f{fault_id}"


def _store_id(node_id: Any) -> int | None:
    text = str(node_id or "")
    return int(text[1:]) if text.startswith("f") and text[1:].isdigit() else None


class Chaos:
    """Chaos on the lab kept in ``state_dir``."""

    def __init__(
        self, state_dir: Path, *, console: Console | None = None, verbosity: int = 0
    ) -> None:
        self.state_dir = Path(state_dir)
        self.lab = Lab(self.state_dir)
        mode = self.lab.mode()
        if mode is None:
            raise OperationFailed(
                f"no lab is up in {self.state_dir}: chaos only runs on the lab "
                f"('lepton-ops lab up', then 'lepton-ops deploy')"
            )
        self.mode: LabMode = mode
        self.console = console
        self.verbosity = verbosity

    def store(self) -> HistoryStore:
        return HistoryStore(history_path(self.state_dir))

    # -- inject -------------------------------------------------------------------------

    def inject(
        self, plan: Mapping[str, FaultSpec], *, campaign: str | None = None
    ) -> list[FaultRecord]:
        """Start one fault per node of ``plan`` (node name -> fault); their records."""
        for node, spec in plan.items():
            self.lab.node(node)
            if spec.kind in SSH_ONLY and self.mode is not LabMode.SSH:
                raise BadInput(
                    f"{spec.kind.value} needs the ssh lab (a size-limited data dir and a node "
                    f"address of its own): run 'lepton-ops lab up --mode ssh' as root"
                )
        ids: dict[str, int] = {}
        with self.store() as store:
            for node, spec in plan.items():
                ids[node] = store.start_fault(node, spec.kind.value, spec.params,
                                              campaign=campaign)  # fmt: skip
            on_node = {n: s for n, s in plan.items() if s.kind in ON_NODE}
            if on_node:
                entries = {n: s.plan_entry(node_fault_id(ids[n])) for n, s in on_node.items()}
                try:
                    run = self._run("started", hosts=tuple(on_node), plan=entries)
                except BaseException as exc:
                    for node in on_node:
                        store.end_fault(ids[node], FaultOutcome.ERROR, detail=str(exc)[:300])
                    raise
                for node in on_node:
                    problem = _host_problem(run, node)
                    if problem is not None:
                        store.end_fault(ids[node], FaultOutcome.ERROR, detail=problem)
            for node, spec in plan.items():
                if spec.kind is FaultKind.PARTITION:
                    self._partition(store, node, ids[node], spec)
            wanted = set(ids.values())
            return [record for record in store.faults(active=None) if record.id in wanted]

    def _partition(self, store: HistoryStore, node: str, fault_id: int, spec: FaultSpec) -> None:
        address = self.lab.node(node).address
        try:
            self.lab.firewall().cut_off(address, partition_owner(fault_id))
        except OperationFailed as exc:
            store.end_fault(fault_id, FaultOutcome.ERROR, detail=str(exc))
            return
        store.mark_fault_failed(fault_id, time.time(), PARTITION_FAILURE)
        # The timer restores the address and ends the record when the duration is over.
        subprocess.Popen(
            [sys.executable, "-m", "lepton_ops.chaos.partition", "--state-dir",
             str(self.state_dir), "--fault-id", str(fault_id), "--address", address,
             "--duration", str(spec.duration_s)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    # -- follow and stop ----------------------------------------------------------------

    def sync(self) -> list[FaultRecord]:
        """Bring the nodes' records into the store; every fault still running after it."""
        _, records = self._query("query")
        with self.store() as store:
            self._apply(store, records)
            return store.faults(active=True)

    def stop(self, nodes: Iterable[str] | None = None) -> list[FaultRecord]:
        """Stop and undo the faults on ``nodes`` (default all); the faults that were stopped."""
        names = [self.lab.node(name).name for name in nodes] if nodes else None
        hosts = tuple(names or (node.name for node in self.lab.nodes))
        with self.store() as store:
            before = {r.id for r in store.faults(active=True) if r.node in hosts}
        for node in hosts:
            self._end_partitions(node)
        _, records = self._query("stopped", hosts=hosts)
        with self.store() as store:
            self._apply(store, records)
            return [r for r in store.faults() if r.id in before]

    def _end_partitions(self, node: str) -> None:
        if self.mode is not LabMode.SSH or os.geteuid() != 0:
            return
        address = self.lab.node(node).address
        firewall = self.lab.firewall()
        with self.store() as store:
            # Its timer sees the fault ended and leaves the firewall alone.
            for record in store.faults(node=node, fault=FaultKind.PARTITION.value, active=True):
                firewall.restore(address, partition_owner(record.id))
                outcome = FaultOutcome.FAILED if record.failed_at else FaultOutcome.STOPPED
                store.end_fault(record.id, outcome, detail="stopped by chaos stop")

    def _apply(
        self,
        store: HistoryStore,
        records: Mapping[str, list[dict[str, Any]]],
    ) -> None:
        # A fault the store thinks runs on a node that answered but has no record of it
        # never started there (its start failed on the way): end it, so it cannot run forever.
        for record in store.faults(active=True):
            known = {_store_id(data.get("id")) for data in records.get(record.node, [])}
            on_node = FaultKind(record.fault) in ON_NODE
            if on_node and record.node in records and record.id not in known:
                store.end_fault(record.id, FaultOutcome.ERROR, detail="no record on the node")
        for node_records in records.values():
            for data in node_records:
                fault_id = _store_id(data.get("id"))
                if fault_id is None:
                    continue
                if data.get("failed_at") is not None:
                    store.mark_fault_failed(
                        fault_id, float(data["failed_at"]), str(data.get("failure") or "failed")
                    )
                outcome = data.get("outcome")
                if outcome == "abandoned":
                    store.end_fault(
                        fault_id,
                        FaultOutcome.FAILED if data.get("failed_at") else FaultOutcome.STOPPED,
                        detail="its runner was gone (the node was stopped)",
                    )
                elif data.get("ended_at") is not None and outcome:
                    store.end_fault(
                        fault_id,
                        _outcome(str(outcome)),
                        ended_at=float(data["ended_at"]),
                        detail=str(data.get("detail") or ""),
                    )

    # -- the playbook -------------------------------------------------------------------

    def _query(
        self, action: str, hosts: tuple[str, ...] | None = None
    ) -> tuple[PlaybookResult, dict[str, list[dict[str, Any]]]]:
        records: dict[str, list[dict[str, Any]]] = {}

        def on_event(event: dict[str, Any]) -> None:
            data = event.get("event_data") or {}
            if event.get("event") == "runner_on_ok" and data.get("task_action") == MODULE:
                faults = (data.get("res") or {}).get("faults")
                if isinstance(faults, list) and data.get("host"):
                    records[str(data["host"])] = [f for f in faults if isinstance(f, dict)]

        run = self._run(action, hosts=hosts, on_event=on_event)
        return run, records

    def _run(
        self,
        action: str,
        *,
        hosts: tuple[str, ...] | None = None,
        plan: Mapping[str, Any] | None = None,
        on_event: Any = None,
    ) -> PlaybookResult:
        chosen = hosts or tuple(node.name for node in self.lab.nodes)
        extravars: dict[str, Any] = {"lepton_chaos_action": action}
        if plan is not None:
            extravars["lepton_chaos_plan"] = dict(plan)
        request = PlaybookRun(
            playbook=PLAYBOOK,
            inventory=self.lab.inventory_path,
            hosts=chosen,
            limit=",".join(chosen),
            extravars=extravars,
            verbosity=self.verbosity,
            forks=len(chosen),
            timeout_s=5,
        )
        return run_playbook(request, self.state_dir, console=None, on_event=on_event)


def _host_problem(run: PlaybookResult, node: str) -> str | None:
    host = run.hosts.get(node)
    if host is None:
        return f"the chaos playbook did not reach {node}: {run.error or 'no result'}"
    if host.failed or host.unreachable:
        return "; ".join(host.messages) or f"the chaos playbook failed on {node}"
    return None


def _outcome(text: str) -> FaultOutcome:
    try:
        return FaultOutcome(text)
    except ValueError:
        return FaultOutcome.ERROR
