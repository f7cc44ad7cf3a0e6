"""Telemetry facts as ``lepton.ops.telemetry_facts`` returns them, for the telemetry tests
and the durability test's child process."""

from __future__ import annotations

import copy
from typing import Any

from lepton_ops.telemetry import NodeOutcome

T0 = 1_700_000_000.0


def make_facts(
    node: str = "node1",
    ts: float = T0,
    *,
    cpu: float | None = 12.5,
    disks: tuple[str, ...] = ("/", "/var/lib/lepton"),
    peers: int = 2,
    unhealthy: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One node's facts (the inner ``lepton_telemetry`` dict), every value readable."""
    return {
        "schema": 1,
        "timestamp": ts,
        "hostname": node,
        "uptime_s": 3600.0,
        "cpu": {"count": 4, "util_pct": cpu, "sample_s": 0.2},
        "load": {"1m": 1.0, "5m": 0.5, "15m": 0.25},
        "memory": {"total_bytes": 8 << 30, "available_bytes": 6 << 30, "used_pct": 25.0},
        "swap": {"total_bytes": 1 << 30, "free_bytes": 1 << 29, "used_pct": 50.0},
        "disks": [
            {
                "path": path,
                "exists": True,
                "used_pct": 40.0 + index,
                "free_bytes": 10 << 30,
                "inodes_used_pct": 3.0,
            }
            for index, path in enumerate(disks)
        ],
        "processes": {"count": 150, "open_fds": 1024, "max_fds": 4096},
        "latency": [
            {
                "name": "aggregator" if index == 0 else f"peer{index}",
                "address": f"127.0.1.{index + 1}",
                "port": 22,
                "role": "aggregator" if index == 0 else "peer",
                "attempts": 4,
                "lost": 1 if index == 0 else 0,
                "latency_ms": 0.5 + index,
                "reachable": True,
            }
            for index in range(peers + 1)
        ],
        "services": [
            {
                "name": name,
                "url": f"http://127.0.1.1:{port}/healthz",
                "healthy": name not in unhealthy,
                "status_code": 503 if name in unhealthy else 200,
                "latency_ms": 2.0,
                "pid": 4242,
                "running": True,
                "rss_bytes": 64 << 20,
                "memory_limit_bytes": 256 << 20,
                "restarts": 3,
            }
            for name, port in (("worker", 9000), ("aggregator", 9100))
        ],
        "errors": [],
    }


def wrapped(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts as the module's result holds them."""
    return {"lepton_telemetry": copy.deepcopy(facts)}


def fleet(count: int, ts: float, *, index: int = 0) -> list[NodeOutcome]:
    """``count`` nodes that answered at ``ts``; node k's CPU is ``(index * 7 + k) % 100``."""
    return [
        NodeOutcome.from_facts(
            f"node{k:03d}", make_facts(f"node{k:03d}", ts, cpu=float((index * 7 + k) % 100))
        )
        for k in range(count)
    ]
