"""Load: clients submitting jobs while pollers hammer status and /metrics, on 127.0.0.1.

Starts its own services on the loopback, as the roles run them (gunicorn gthread: the
aggregator one process of 8 threads, each worker 2 processes of 4 threads), with a
private token file, then:

- ``--clients`` clients (10) each submit ``--jobs`` (50) ``mean`` jobs one after another,
  follow each to its end and compare its result with the same job computed here in one
  process (``kind.map`` over all tasks, then ``finalize``): every job must be exact;
- ``--pollers`` pollers (5) ask for a job's status and for ``/metrics`` in turn, at
  ``--rate`` (50) requests per second altogether, for ``--seconds`` (120).

Every answer is counted by class; a 5xx anywhere is a failure. Reported: submit latency
(p50, p99, max), the aggregator's resident memory before and after (its own
``lepton_process_resident_memory_bytes``), jobs exact, answers by class.

    .venv/bin/python benchmarks/load.py [--clients 10] [--jobs 50] [--pollers 5]
        [--rate 50] [--seconds 120] [--workers 2]

Prints one JSON line last; exits 1 if a job was not exact or anything answered 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from lepton_ops import process_identity
from lepton_ops.jobs.kinds import get_kind

TASKS = 20
TASK_SIZE = 200
RSS = re.compile(r'^lepton_process_resident_memory_bytes\{service="aggregator"\} (\S+)$', re.M)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gunicorn(app: str, env: dict[str, str], port: int, processes: int, threads: int) -> Any:
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
        "--workers", str(processes), "--threads", str(threads), "--log-level", "warning", app,
    ]  # fmt: skip
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL)


def wait_healthy(url: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def expected_result(seed: int) -> dict[str, Any]:
    kind = get_kind("mean")
    params = {"tasks": TASKS, "task_size": TASK_SIZE, "seed": seed}
    return kind.finalize(kind.map(params, 0, TASKS))


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.classes: Counter[str] = Counter()
        self.server_errors: list[str] = []
        self.submit_s: list[float] = []
        self.exact = 0
        self.wrong: list[str] = []
        self.job_ids: list[str] = []

    def answer(self, what: str, response: httpx.Response) -> None:
        with self.lock:
            self.classes[f"{response.status_code // 100}xx"] += 1
            if response.status_code >= 500:
                self.server_errors.append(f"{what}: {response.status_code} {response.text[:200]}")


def client_loop(url: str, headers: dict[str, str], index: int, jobs: int, tally: Tally) -> None:
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for n in range(jobs):
            seed = index * 1000 + n
            body = {
                "kind": "mean",
                "tasks": TASKS,
                "params": {"task_size": TASK_SIZE, "seed": seed},
            }
            began = time.perf_counter()
            response = http.post("/v1/jobs", json=body)
            elapsed = time.perf_counter() - began
            tally.answer("POST /v1/jobs", response)
            if response.status_code != 202:
                with tally.lock:
                    tally.wrong.append(f"seed {seed}: submit answered {response.status_code}")
                continue
            job_id = response.json()["job_id"]
            with tally.lock:
                tally.submit_s.append(elapsed)
                tally.job_ids.append(job_id)
            while True:
                status = http.get(f"/v1/jobs/{job_id}")
                tally.answer("GET /v1/jobs/{id}", status)
                if status.status_code == 200 and status.json()["status"] != "running":
                    break
                time.sleep(0.05)
            result = http.get(f"/v1/jobs/{job_id}/result")
            tally.answer("GET /v1/jobs/{id}/result", result)
            good = result.status_code == 200 and result.json()["result"] == expected_result(seed)
            with tally.lock:
                if good:
                    tally.exact += 1
                else:
                    tally.wrong.append(f"seed {seed}: {result.status_code} {result.text[:200]}")


def poller_loop(
    url: str, headers: dict[str, str], rate: float, until: float, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed)
    interval = 1.0 / rate
    next_at = time.monotonic()
    turn = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        while time.monotonic() < until:
            turn += 1
            if turn % 2:
                with tally.lock:
                    job_id = rng.choice(tally.job_ids) if tally.job_ids else "none-yet"
                response = http.get(f"/v1/jobs/{job_id}")
                if response.status_code != 404:
                    tally.answer("poll status", response)
            else:
                tally.answer("poll /metrics", http.get("/metrics"))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def aggregator_rss(url: str, headers: dict[str, str]) -> float:
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
    found = RSS.search(text)
    return float(found.group(1)) if found else float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=50, help="jobs per client")
    parser.add_argument("--pollers", type=int, default=5)
    parser.add_argument("--rate", type=float, default=50.0, help="poller requests/s in all")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the pollers poll")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    processes: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="lepton-load-") as scratch:
        root = Path(scratch)
        token = os.urandom(24).hex()
        token_file = root / "token"
        token_file.write_text(token, encoding="utf-8")
        token_file.chmod(0o600)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            workers = []
            for i in range(args.workers):
                port = free_port()
                config = root / f"worker{i}.json"
                config.write_text(json.dumps({
                    "token_file": str(token_file), "name": f"node{i + 1}",
                    "cancel_dir": str(root / f"cancelled{i}"),
                }))  # fmt: skip
                processes.append(
                    gunicorn(
                        "lepton_ops.services.worker:app_from_config_file()",
                        {"LEPTON_WORKER_CONFIG": str(config)}, port, 2, 4,
                    )
                )  # fmt: skip
                workers.append({"name": f"node{i + 1}", "url": f"http://127.0.0.1:{port}"})
            port = free_port()
            config = root / "aggregator.json"
            config.write_text(json.dumps({
                "token_file": str(token_file), "db_path": str(root / "jobs.sqlite"),
                "workers": [{**worker, "weight": 1} for worker in workers],
            }))  # fmt: skip
            processes.append(
                gunicorn(
                    "lepton_ops.services.aggregator:app_from_config_file()",
                    {"LEPTON_AGGREGATOR_CONFIG": str(config)}, port, 1, 8,
                )
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            for target in [url, *(worker["url"] for worker in workers)]:
                wait_healthy(target)
            rss_before = aggregator_rss(url, headers)
            tally = Tally()
            began = time.monotonic()
            until = began + args.seconds
            threads = [
                threading.Thread(target=client_loop, args=(url, headers, i, args.jobs, tally))
                for i in range(args.clients)
            ] + [
                threading.Thread(
                    target=poller_loop,
                    args=(url, headers, args.rate / args.pollers, until, tally, i),
                )
                for i in range(args.pollers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.monotonic() - began
            rss_after = aggregator_rss(url, headers)
        finally:
            for process in processes:  # our own children: see lepton_ops.process_identity
                process_identity.signal_child(process, signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)
    submits = tally.submit_s
    result = {
        "benchmark": "load",
        "clients": args.clients,
        "jobs_per_client": args.jobs,
        "jobs": args.clients * args.jobs,
        "jobs_exact": tally.exact,
        "wrong": tally.wrong[:10],
        "pollers": args.pollers,
        "poll_rate_per_s": args.rate,
        "seconds": round(seconds, 1),
        "answers": dict(sorted(tally.classes.items())),
        "server_errors": len(tally.server_errors),
        "server_error_examples": tally.server_errors[:5],
        "submit_p50_ms": round(statistics.median(submits) * 1000, 2) if submits else None,
        "submit_p99_ms": round(percentile(submits, 0.99) * 1000, 2) if submits else None,
        "submit_max_ms": round(max(submits) * 1000, 2) if submits else None,
        "aggregator_rss_before_mb": round(rss_before / 2**20, 1),
        "aggregator_rss_after_mb": round(rss_after / 2**20, 1),
    }
    print(json.dumps(result))
    ok = tally.exact == args.clients * args.jobs and not tally.server_errors
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
