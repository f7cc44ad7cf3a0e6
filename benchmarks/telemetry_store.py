"""Telemetry store benchmark: insert rate of whole collections, and one node's last hour.

Records ``--collections`` collections (one per ``--interval`` seconds of simulated time)
of ``--nodes`` nodes, each with ~60 metrics (3 disks, the aggregator and 3 peers, 2
services), into a new store in a temporary directory, then reads one node's last hour
(``series(node=..., since=now - 3600)``) for ``--queries`` random nodes.

- ``insert_samples_per_s``: samples stored / wall time of ``record_collection`` (it
  flattens the checked facts, writes and commits); ``insert_samples_per_cpu_s`` the same
  over the process's CPU time, which a busy machine disturbs less.
- ``check_facts_ms``: checking one collection's facts (``NodeOutcome.from_facts``),
  done before ``record_collection`` and not counted in the insert rate.
- ``query_node_hour_ms``: median and p95 of reading one node's last hour, every series.

Progress goes to stderr; one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lepton_ops.telemetry import HistoryStore, NodeOutcome

T0 = 1_700_000_000.0


def log(message: str) -> None:
    sys.stderr.write(f"[telemetry-bench] {message}\n")
    sys.stderr.flush()


def facts(node: str, ts: float, rng: random.Random) -> dict[str, Any]:
    """One node's facts, shaped as ``lepton.ops.telemetry_facts`` returns them."""
    return {
        "schema": 1,
        "timestamp": ts,
        "hostname": node,
        "uptime_s": ts - T0 + 86_400.0,
        "cpu": {"count": 8, "util_pct": rng.uniform(0, 100), "sample_s": 0.2},
        "load": {"1m": rng.uniform(0, 8), "5m": rng.uniform(0, 8), "15m": rng.uniform(0, 8)},
        "memory": {
            "total_bytes": 32 << 30,
            "available_bytes": rng.randrange(1 << 30, 32 << 30),
            "used_pct": rng.uniform(0, 100),
        },
        "swap": {"total_bytes": 4 << 30, "free_bytes": 3 << 30, "used_pct": 25.0},
        "disks": [
            {
                "path": path,
                "exists": True,
                "used_pct": rng.uniform(0, 100),
                "free_bytes": rng.randrange(1 << 40),
                "inodes_used_pct": rng.uniform(0, 10),
            }
            for path in ("/", "/var/lib/lepton", "/tmp")
        ],
        "processes": {"count": rng.randrange(100, 400), "open_fds": 2048, "max_fds": 65536},
        "latency": [
            {
                "name": name,
                "address": f"127.0.1.{index + 1}",
                "port": 22,
                "role": "aggregator" if index == 0 else "peer",
                "attempts": 3,
                "lost": rng.choice((0, 0, 0, 1)),
                "latency_ms": rng.uniform(0.05, 2.0),
                "reachable": True,
            }
            for index, name in enumerate(("aggregator", "peer1", "peer2", "peer3"))
        ],
        "services": [
            {
                "name": name,
                "url": f"http://127.0.1.1:{port}/healthz",
                "healthy": True,
                "status_code": 200,
                "latency_ms": rng.uniform(0.5, 5.0),
                "pid": 1000 + port,
                "running": True,
                "rss_bytes": rng.randrange(50 << 20, 200 << 20),
                "memory_limit_bytes": 1 << 30,
                "restarts": 0,
            }
            for name, port in (("worker", 9000), ("aggregator", 9100))
        ],
        "errors": [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--collections", type=int, default=60)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between them")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = [f"node{k:03d}" for k in range(args.nodes)]

    with tempfile.TemporaryDirectory(prefix="lepton-telemetry-bench-") as tmp:
        path = Path(tmp) / "telemetry.sqlite3"
        store = HistoryStore(path)
        samples = 0
        wall = cpu = check = 0.0
        per_collection: list[float] = []
        for index in range(args.collections):
            ts = T0 + index * args.interval
            node_facts = [(name, facts(name, ts, rng)) for name in names]
            started = time.perf_counter()
            outcomes = [NodeOutcome.from_facts(name, data) for name, data in node_facts]
            check += time.perf_counter() - started
            started, started_cpu = time.perf_counter(), time.process_time()
            record = store.record_collection(outcomes, "ansible", finished_at=ts + 1)
            elapsed = time.perf_counter() - started
            cpu += time.process_time() - started_cpu
            wall += elapsed
            per_collection.append(elapsed)
            samples += record.samples
            if index % 10 == 0:
                log(f"collection {index + 1}/{args.collections}: {record.samples} samples")
        per_node = samples / args.collections / args.nodes

        now = T0 + (args.collections - 1) * args.interval
        timings: list[float] = []
        points = 0
        for name in rng.choices(names, k=args.queries):
            started = time.perf_counter()
            found = store.series(node=name, since=now - 3600)
            timings.append(time.perf_counter() - started)
            points = sum(len(series.points) for series in found)
        timings.sort()
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        store.close()

    result = {
        "nodes": args.nodes,
        "collections": args.collections,
        "metrics_per_node": round(per_node, 1),
        "samples": samples,
        "insert_samples_per_s": round(samples / wall),
        "insert_samples_per_cpu_s": round(samples / cpu),
        "collection_ms_median": round(statistics.median(per_collection) * 1000, 1),
        "check_facts_ms": round(check / args.collections * 1000, 1),
        "query_node_hour_ms_median": round(statistics.median(timings) * 1000, 2),
        "query_node_hour_ms_p95": round(timings[int(0.95 * (len(timings) - 1))] * 1000, 2),
        "query_node_hour_points": points,
        "database_mb": round(size / 1e6, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
