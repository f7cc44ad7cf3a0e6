"""A chaos campaign: rounds of faults across the lab with telemetry sampled all along.

What it produces is a labelled data set in the telemetry store: the samples of every
node (``telemetry collect`` back to back, every few seconds, in a thread of its own) and
one ``faults`` row per injection, with the moment the node failed. Each round puts one
fault on each node (on the aggregator node, on its worker), progressive faults (memleak,
diskfill) on two of them and a sudden one (kill, hang, cpuhog, partition) on the others,
at rates drawn so that progressive faults reach their failure after about a minute (40 to
80 s), late enough for a predictor to warn well ahead. The round ends when all its faults
have ended; a quiet pause follows, so the data holds recoveries and healthy stretches.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton_ops.chaos.controller import Chaos
from lepton_ops.chaos.faults import FaultKind, FaultSpec, MiB
from lepton_ops.errors import LeptonError
from lepton_ops.telemetry.collect import collect
from lepton_ops.telemetry.records import FaultRecord

SUDDEN = (FaultKind.KILL, FaultKind.HANG, FaultKind.CPUHOG, FaultKind.PARTITION)
#: Bytes a second: memleak against the 640 MiB budget, diskfill against the 128 MiB tmpfs.
MEMLEAK_RATES = (6.0 * MiB, 9.0 * MiB)
DISKFILL_RATES = (1.7 * MiB, 2.8 * MiB)
SUDDEN_DURATION_S = (15.0, 30.0)
ROUND_TIMEOUT_S = 240.0


@dataclass
class CampaignResult:
    campaign: str
    faults: list[FaultRecord] = field(default_factory=list)
    collections: int = 0
    collection_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        by_kind: dict[str, dict[str, int]] = {}
        for fault in self.faults:
            entry = by_kind.setdefault(fault.fault, {"injected": 0, "failed": 0})
            entry["injected"] += 1
            entry["failed"] += fault.failed_at is not None
        return {
            "campaign": self.campaign,
            "seconds": round(self.seconds, 1),
            "faults": len(self.faults),
            "incidents": sum(1 for fault in self.faults if fault.failed_at is not None),
            "by_fault": by_kind,
            "collections": self.collections,
            "collection_errors": self.collection_errors[-5:],
        }


def schedule(runs: int, nodes: list[str], rng: random.Random) -> list[dict[str, FaultSpec]]:
    """Rounds of ``{node: fault}`` with ``runs`` faults in all."""
    rounds: list[dict[str, FaultSpec]] = []
    sudden = list(SUDDEN)
    progressive_given = dict.fromkeys(nodes, 0)
    left = runs
    index = 0
    while left > 0:
        order = nodes[index % len(nodes) :] + nodes[: index % len(nodes)]
        plan: dict[str, FaultSpec] = {}
        for position, node in enumerate(order[: min(left, len(nodes))]):
            if position < 2:
                # Each node alternates between the two progressive faults (offset by its
                # place in the fleet, so a round usually holds one of each).
                turn = progressive_given[node] + nodes.index(node)
                kind = FaultKind.MEMLEAK if turn % 2 == 0 else FaultKind.DISKFILL
                progressive_given[node] += 1
            else:
                kind = sudden[(index * 2 + position) % len(sudden)]
            plan[node] = _spec(kind, rng)
        rounds.append(plan)
        left -= len(plan)
        index += 1
    return rounds


def _spec(kind: FaultKind, rng: random.Random) -> FaultSpec:
    if kind is FaultKind.MEMLEAK:
        return FaultSpec.of(kind, duration_s=200, rate_bytes_s=int(rng.uniform(*MEMLEAK_RATES)))
    if kind is FaultKind.DISKFILL:
        rate = int(rng.uniform(*DISKFILL_RATES))
        return FaultSpec.of(kind, duration_s=200, rate_bytes_s=rate, hold_s=8.0)
    duration = round(rng.uniform(*SUDDEN_DURATION_S))
    if kind is FaultKind.CPUHOG:
        return FaultSpec.of(kind, duration_s=duration, processes=1)
    return FaultSpec.of(kind, duration_s=duration)


def run_campaign(
    state_dir: Path,
    runs: int,
    *,
    interval_s: float = 4.0,
    pause_s: float = 12.0,
    seed: int | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> CampaignResult:
    """Run ``runs`` faults in rounds with telemetry sampled every ``interval_s``."""
    chaos = Chaos(state_dir)
    campaign = time.strftime("campaign-%Y%m%dT%H%M%S")
    result = CampaignResult(campaign)
    say = on_progress or (lambda line: None)
    rng = random.Random(seed)  # noqa: S311 - a schedule, not a secret
    nodes = [node.name for node in chaos.lab.nodes]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                collect(chaos.lab.inventory_path, state_dir)
                result.collections += 1
            except LeptonError as exc:
                result.collection_errors.append(str(exc))
            stop.wait(max(0.0, interval_s - (time.monotonic() - began)))

    started = time.monotonic()
    sampler = threading.Thread(target=sample, name="lepton-campaign-sampler", daemon=True)
    sampler.start()
    try:
        stop.wait(pause_s)  # a healthy stretch first
        for number, plan in enumerate(schedule(runs, nodes, rng), start=1):
            described = ", ".join(f"{node} {spec.kind.value}" for node, spec in plan.items())
            say(f"round {number}: {described}")
            injected = chaos.inject(plan, campaign=campaign)
            wanted = {record.id for record in injected}
            deadline = time.monotonic() + ROUND_TIMEOUT_S
            while time.monotonic() < deadline:
                stop.wait(6.0)
                running = {record.id for record in chaos.sync()} & wanted
                if not running:
                    break
            else:
                chaos.stop(list(plan))
            with chaos.store() as store:
                done = [f for f in store.faults(campaign=campaign) if f.id in wanted]
            say(
                "  "
                + ", ".join(
                    f"{f.node} {f.fault}: {f.outcome}"
                    + (f" after {f.failed_at - f.started_at:.0f}s" if f.failed_at else "")
                    for f in done
                )
            )
            stop.wait(pause_s)
    finally:
        stop.set()
        sampler.join(timeout=60)
        chaos.stop()
    with chaos.store() as store:
        result.faults = store.faults(campaign=campaign)
    result.seconds = time.monotonic() - started
    return result
