"""``cycle`` (collect -> predict -> remediate, once) and ``watch`` (that, in a loop).

``watch`` runs a cycle every ``interval_s`` and, between cycles, checks every service's
``/healthz`` over HTTP each ``health_every_s`` (the fast path: no Ansible): a service
that stops answering starts a cycle at once, so a crashed worker that its supervisor does
not bring back is acted on within seconds, not at the next tick. SIGTERM and SIGINT stop
the loop between steps: the pass in progress finishes, its audit rows are complete.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from lepton_ops.errors import LeptonError
from lepton_ops.gateway.runner import signals_handled_by_caller
from lepton_ops.remediate.policy import PolicyConfig
from lepton_ops.remediate.run import RemediationPass, node_health, remediate_once
from lepton_ops.telemetry.collect import CollectionResult, collect
from lepton_ops.telemetry.pull import fleet_targets


@dataclass
class CycleResult:
    collection: CollectionResult
    remediation: RemediationPass
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "collection": {
                "nodes_ok": self.collection.record.nodes_ok,
                "nodes_failed": self.collection.record.nodes_failed,
                "samples": self.collection.record.samples,
            },
            "remediation": self.remediation.to_dict(),
        }


def cycle(
    state_dir: Path,
    inventory: Path,
    config: PolicyConfig,
    *,
    dry_run: bool = False,
    trigger: str | None = None,
    verbosity: int = 0,
) -> CycleResult:
    """Collect the fleet's telemetry, predict, remediate: one pass."""
    started = time.monotonic()
    collection = collect(inventory, state_dir, verbosity=verbosity)

    def refresh(node: str) -> None:
        collect(inventory, state_dir, limit=node, verbosity=verbosity)

    remediation = remediate_once(
        state_dir, inventory, config, dry_run=dry_run, trigger=trigger, refresh=refresh,
        verbosity=verbosity,
    )  # fmt: skip
    return CycleResult(collection, remediation, time.monotonic() - started)


def all_healthy(state_dir: Path, inventory: Path) -> bool:
    nodes = sorted({target.node for target in fleet_targets(inventory)})
    return all(all(node_health(state_dir, inventory, node).values()) for node in nodes)


def watch(
    state_dir: Path,
    inventory: Path,
    config: PolicyConfig,
    interval_s: float,
    *,
    health_every_s: float = 1.0,
    on_cycle: Callable[[CycleResult], None] | None = None,
    on_error: Callable[[LeptonError], None] | None = None,
    max_cycles: int | None = None,
    verbosity: int = 0,
) -> int:
    """Cycle every ``interval_s`` (sooner when a service stops answering) until SIGTERM,
    SIGINT or ``max_cycles``; the number of cycles run."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    cycles = 0
    try:
        with signals_handled_by_caller():
            while not stop.is_set():
                try:
                    result = cycle(
                        state_dir, inventory, config, trigger="watch", verbosity=verbosity
                    )
                    if on_cycle is not None:
                        on_cycle(result)
                except LeptonError as exc:
                    if on_error is None:
                        raise
                    on_error(exc)
                cycles += 1
                if max_cycles is not None and cycles >= max_cycles:
                    break
                deadline = time.monotonic() + interval_s
                while not stop.is_set() and time.monotonic() < deadline:
                    if stop.wait(min(health_every_s, max(0.0, deadline - time.monotonic()))):
                        break
                    try:
                        if not all_healthy(state_dir, inventory):
                            break  # a service stopped answering: act now
                    except LeptonError:
                        break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return cycles
