"""A simulated lab campaign for the predictor's tests: five nodes on one host, telemetry
every ~4.5 s recorded through the real store (``record_collection`` of facts checked by
``NodeOutcome.from_facts``), faults through ``start_fault`` / ``mark_fault_failed`` /
``end_fault`` - as ``lepton-ops telemetry collect`` and ``lepton-ops chaos`` will.

What it models (the contract of the chaos faults):

- ``memleak``: the worker's memory grows at ``rate`` MiB/s until its 512 MiB limit; then
  the supervisor kills it (failed), it restarts (one unhealthy collection, restarts + 1);
- ``diskfill``: the node's /var/lib/lepton (a 128 MiB tmpfs) fills at ``rate`` MiB/s until
  full (failed); the fault is undone a few seconds later; health checks stay green;
- ``kill``: the worker dies and is restarted within ~2 s (failed at once);
- ``hang``: the worker is stopped for ``duration`` s (health checks fail);
- ``partition``: the node is unreachable for ``duration`` s;
- ``cpuhog``: busy processes on the (shared) host for ``duration`` s; survives.

and the noise an honest test needs: the host numbers (memory, CPU, load, /) are the same
for every node (one machine; a leak on one node moves them for all), ``/opt/lepton`` and
``/etc/lepton`` are on the root file system, workers have short memory bursts while they
run jobs, and jobs write and delete temporary files in the data directory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton_ops.telemetry import HistoryStore, NodeOutcome, history_path

T0 = 1_700_000_000.0
MIB = 1 << 20
NODES = ("node1", "node2", "node3", "node4", "node5")
LIMIT = 512 * MIB
DATA_SIZE = 128 * MIB
HOST_MEMORY = 16 << 30
ROOT_SIZE = 250 << 30
PERIOD_S = 4.5
BASE_RSS = {"lepton-worker": 90 * MIB, "lepton-aggregator": 70 * MIB}
DATA_BASE = 4 * MIB


def services_of(node: str) -> tuple[str, ...]:
    return ("lepton-aggregator", "lepton-worker") if node == "node1" else ("lepton-worker",)


@dataclass(frozen=True)
class Fault:
    node: str
    kind: str
    start: float
    #: MiB/s (memleak, diskfill) or seconds (hang, partition, cpuhog)
    param: float
    #: how it ends if it does not fail: "survived", or "stopped" at start + stop_after_s
    stop_after_s: float | None = None

    @property
    def failed_at(self) -> float | None:
        if self.stop_after_s is not None:
            reach = self._reach()
            if reach is None or reach > self.stop_after_s:
                return None
        if self.kind == "memleak":
            return self.start + (LIMIT - BASE_RSS["lepton-worker"]) / (self.param * MIB)
        if self.kind == "diskfill":
            return self.start + (DATA_SIZE - DATA_BASE) / (self.param * MIB)
        if self.kind == "kill":
            return self.start + 0.3
        if self.kind in ("hang", "partition"):
            return self.start + 1.0
        return None

    def _reach(self) -> float | None:
        if self.kind == "memleak":
            return (LIMIT - BASE_RSS["lepton-worker"]) / (self.param * MIB)
        if self.kind == "diskfill":
            return (DATA_SIZE - DATA_BASE) / (self.param * MIB)
        return 0.0

    @property
    def ended_at(self) -> float:
        failed = self.failed_at
        if self.stop_after_s is not None and failed is None:
            return self.start + self.stop_after_s
        if self.kind == "memleak":
            return failed + 0.5 if failed is not None else self.start
        if self.kind == "diskfill":
            return failed + 8.0 if failed is not None else self.start
        if self.kind == "kill":
            return self.start + 1.0
        return self.start + self.param

    @property
    def outcome(self) -> str:
        if self.failed_at is not None:
            return "failed"
        return "stopped" if self.stop_after_s is not None else "survived"


@dataclass
class Campaign:
    faults: list[Fault]
    end: float
    #: (node, start, MiB, seconds) memory bursts of a worker running a job
    bursts: list[tuple[str, float, float, float]] = field(default_factory=list)
    #: (node, start, MiB, seconds) temporary files written then deleted
    scratch: list[tuple[str, float, float, float]] = field(default_factory=list)


def plan_campaign(
    kinds: list[str],
    *,
    seed: int = 0,
    t0: float = T0,
    gap_s: float = 40.0,
    lead_in_s: float = 150.0,
) -> Campaign:
    """Faults of ``kinds`` one after the other on random nodes, with noise around them."""
    rng = np.random.default_rng(seed)
    faults = []
    at = t0 + lead_in_s
    for kind in kinds:
        node = str(rng.choice(NODES))
        param = {
            "memleak": float(rng.uniform(3.0, 4.0)),
            "diskfill": float(rng.uniform(0.8, 1.2)),
            "hang": 20.0,
            "partition": 20.0,
            "cpuhog": 60.0,
            "kill": 0.0,
        }[kind]
        fault = Fault(node, kind, at, param)
        faults.append(fault)
        at = fault.ended_at + gap_s + float(rng.uniform(0, 20))
    end = at + 60.0
    bursts = []
    scratch = []
    for node in NODES:
        moment = t0 + float(rng.uniform(20, 120))
        while moment < end:
            bursts.append((node, moment, float(rng.uniform(60, 160)), float(rng.uniform(12, 25))))
            moment += float(rng.uniform(120, 300))
        moment = t0 + float(rng.uniform(40, 200))
        while moment < end:
            scratch.append((node, moment, float(rng.uniform(10, 25)), float(rng.uniform(6, 12))))
            moment += float(rng.uniform(200, 400))
    return Campaign(faults, end, bursts, scratch)


def _ramp(now: float, start: float, amount: float, seconds: float) -> float:
    """Up linearly over ``seconds``, held for 10 s, then gone."""
    if now < start or now > start + seconds + 10.0:
        return 0.0
    return amount * min(1.0, (now - start) / seconds)


class Lab:
    """The simulated fleet's state at any time."""

    def __init__(self, campaign: Campaign, seed: int) -> None:
        self.campaign = campaign
        self.rng = np.random.default_rng(seed + 1)

    def active(self, kind: str, node: str | None, now: float) -> Fault | None:
        for fault in self.campaign.faults:
            mine = fault.kind == kind and (node is None or fault.node == node)
            if mine and fault.start <= now < fault.ended_at:
                return fault
        return None

    def restarts(self, node: str, service: str, now: float) -> int:
        if service != "lepton-worker":
            return 0
        return sum(
            1
            for f in self.campaign.faults
            if f.node == node
            and f.kind in ("memleak", "kill")
            and f.failed_at is not None
            and f.failed_at <= now
        )

    def unhealthy(self, node: str, service: str, now: float) -> bool:
        if service != "lepton-worker":
            return False
        for f in self.campaign.faults:
            if f.node != node or f.failed_at is None:
                continue
            if f.kind in ("memleak", "kill") and f.failed_at <= now < f.failed_at + 2.5:
                return True
            if f.kind == "hang" and f.start <= now < f.ended_at:
                return True
        return False

    def leak(self, node: str, now: float) -> float:
        fault = self.active("memleak", node, now)
        if fault is None or now < fault.start:
            return 0.0
        failed = fault.failed_at
        if failed is not None and now >= failed:
            return 0.0
        return fault.param * MIB * (now - fault.start)

    def data_used(self, node: str, now: float) -> float:
        used = DATA_BASE + sum(
            _ramp(now, start, mib * MIB, seconds)
            for where, start, mib, seconds in self.campaign.scratch
            if where == node
        )
        fault = self.active("diskfill", node, now)
        if fault is not None:
            used += fault.param * MIB * (now - fault.start)
        return min(used, float(DATA_SIZE))

    def facts(self, node: str, now: float) -> dict[str, Any]:
        rng = self.rng
        leaks = sum(self.leak(n, now) for n in NODES)
        hog = self.active("cpuhog", None, now) is not None
        rss = {}
        for service in services_of(node):
            rss[service] = BASE_RSS[service] + rng.normal(0, 0.6 * MIB)
            if service == "lepton-worker":
                rss[service] += self.leak(node, now) + sum(
                    _ramp(now, start, mib * MIB, seconds)
                    for where, start, mib, seconds in self.campaign.bursts
                    if where == node
                )
        return node_facts(
            node,
            now,
            rss=rss,
            healthy={s: not self.unhealthy(node, s, now) for s in services_of(node)},
            restarts={s: self.restarts(node, s, now) for s in services_of(node)},
            data_used=self.data_used(node, now),
            cpu=float(np.clip(rng.normal(70 if hog else 18, 5), 0, 100)),
            host_mem_pct=40.0 + leaks / HOST_MEMORY * 100 + float(rng.normal(0, 0.05)),
            root_used=0.33 * ROOT_SIZE + (now - T0) * 1000.0,
            service_latency_ms=float(abs(rng.normal(4, 1.5))) + (15.0 if hog else 0.0),
            peer_latency_ms=float(abs(rng.normal(0.1, 0.03))),
            unreachable_peers={p for p in NODES if self.active("partition", p, now) is not None},
        )

    def outcome(self, node: str, now: float) -> NodeOutcome:
        if self.active("partition", node, now) is not None:
            return NodeOutcome.unreachable(node, "ssh: connect timed out", ts=now)
        return NodeOutcome.from_facts(node, self.facts(node, now))


def node_facts(
    node: str,
    ts: float,
    *,
    rss: dict[str, float] | None = None,
    healthy: dict[str, bool] | None = None,
    restarts: dict[str, int] | None = None,
    limit: float | None = LIMIT,
    data_used: float = DATA_BASE,
    cpu: float = 18.0,
    host_mem_pct: float = 40.0,
    root_used: float = 0.33 * ROOT_SIZE,
    service_latency_ms: float = 4.0,
    peer_latency_ms: float = 0.1,
    unreachable_peers: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """One node's facts as the telemetry module returns them (lab-like defaults)."""
    services = []
    for index, service in enumerate(services_of(node)):
        ok = (healthy or {}).get(service, True)
        services.append(
            {
                "name": service,
                "url": f"http://127.0.1.{NODES.index(node) + 1 if node in NODES else 9}:"
                f"{8700 + index}/healthz",
                "healthy": ok,
                "status_code": 200 if ok else None,
                "latency_ms": service_latency_ms if ok else None,
                "pid": 1000 + index,
                "running": True,
                "rss_bytes": float((rss or {}).get(service, BASE_RSS[service])),
                "memory_limit_bytes": limit,
                "restarts": (restarts or {}).get(service, 0),
            }
        )
    root = {
        "exists": True,
        "used_pct": root_used / ROOT_SIZE * 100,
        "free_bytes": ROOT_SIZE - root_used,
        "inodes_used_pct": 5.0,
    }
    return {
        "schema": 1,
        "timestamp": ts,
        "hostname": node,
        "uptime_s": 5000.0,
        "cpu": {"count": 2, "util_pct": cpu, "sample_s": 0.2},
        "load": {"1m": 0.3 + cpu / 50, "5m": 0.5, "15m": 0.5},
        "memory": {
            "total_bytes": HOST_MEMORY,
            "available_bytes": HOST_MEMORY * (1 - host_mem_pct / 100),
            "used_pct": host_mem_pct,
        },
        "swap": {"total_bytes": 0, "free_bytes": 0, "used_pct": None},
        "disks": [
            {"path": "/", **root},
            {"path": "/opt/lepton", **root},
            {"path": "/etc/lepton", **root},
            {
                "path": "/var/lib/lepton",
                "exists": True,
                "used_pct": data_used / DATA_SIZE * 100,
                "free_bytes": DATA_SIZE - data_used,
                "inodes_used_pct": 1.0,
            },
        ],
        "processes": {"count": 300, "open_fds": 2000, "max_fds": 100000},
        "latency": [
            {
                "name": peer,
                "address": f"127.0.1.{NODES.index(peer) + 1}",
                "port": 22,
                "role": "aggregator" if peer == "node1" else "peer",
                "attempts": 3,
                "lost": 3 if peer in unreachable_peers else 0,
                "latency_ms": None if peer in unreachable_peers else peer_latency_ms,
                "reachable": peer not in unreachable_peers,
            }
            for peer in NODES
            if peer != node
        ],
        "services": services,
        "errors": [],
    }


def collection_times(start: float, end: float, seed: int) -> Iterator[float]:
    rng = np.random.default_rng(seed + 2)
    at = start
    while at < end:
        yield at
        at += PERIOD_S + float(rng.uniform(-0.3, 0.3))


def record(store: HistoryStore, campaign: Campaign, *, seed: int = 0, start: float = T0) -> None:
    """Run the campaign into ``store``: telemetry from ``start`` to its end, and its faults."""
    lab = Lab(campaign, seed)
    for at in collection_times(start, campaign.end, seed):
        outcomes = [lab.outcome(node, at + 0.05 * index) for index, node in enumerate(NODES)]
        store.record_collection(outcomes, "ansible", started_at=at, finished_at=at + 0.5)
    for fault in campaign.faults:
        params = {"rate_mib_s": fault.param} if fault.kind in ("memleak", "diskfill") else {}
        fault_id = store.start_fault(
            fault.node, fault.kind, params, started_at=fault.start, campaign="sim"
        )
        failed = fault.failed_at
        if failed is not None:
            store.mark_fault_failed(fault_id, failed, f"{fault.kind} failure")
        store.end_fault(fault_id, fault.outcome, ended_at=fault.ended_at)


def sample_count(campaign: Campaign, start: float = T0) -> int:
    return math.ceil((campaign.end - start) / PERIOD_S) * len(NODES)


def record_recent(state_dir: Path, kinds: list[str], *, seed: int = 0) -> Campaign:
    """A campaign that ended a few seconds ago, recorded in ``state_dir``'s store."""
    length = plan_campaign(kinds, seed=seed).end - T0
    start = time.time() - length - 5.0
    campaign = plan_campaign(kinds, seed=seed, t0=start)
    with HistoryStore(history_path(state_dir)) as store:
        record(store, campaign, seed=seed, start=start)
    return campaign
