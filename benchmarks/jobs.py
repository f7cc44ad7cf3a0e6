"""Jobs benchmark: weighted against equal makespan, and tiny-task throughput, on the lab.

Brings up its own lab (ssh mode as root, local otherwise) in a temporary state
directory, provisions it and deploys the services (or, with ``--state-dir``, uses a
lab that is already up and deployed there), then runs on the aggregator:

- heterogeneous makespan: ``--tasks`` ``sleep`` tasks of ``--task-ms`` ms on workers
  whose speeds are 1:2:3:4:5 (the lab's weights 100..500 over the smallest), once with
  the ``weighted`` strategy and once with ``equal``. The makespan is the aggregator's
  (job created to job finished). ``ideal_makespan_s`` is ``N x t / sum(speeds)``.
- tiny-task throughput: ``--tiny-tasks`` ``mean`` tasks of size 1, measured end to end
  on the controller (submit, run, result fetched): ``tiny_tasks_per_s``.
- the reference ``mean`` job (``job run --kind mean --tasks 1000 --task-size 1000 --seed
  7``), end to end on the controller: ``mean_job_s``.

The services are reached over HTTPS (verified against the controller's CA) unless the
inventory sets ``lepton_insecure_http``: run it once on a TLS deploy and once on a deploy
of an inventory with ``lepton_insecure_http: true`` (``--inventory``) to measure what TLS
costs. ``--first-address`` puts the benchmark's own lab on another block of addresses.

Each measurement is repeated ``--repeat`` times and the median is reported. Progress
goes to stderr; one JSON line last on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lab_setup import add_lab_options, deployed_lab

from lepton_ops.jobs import client as jobs
from lepton_ops.jobs.fleet import plan_inventory

POLL_S = 0.05


def log(message: str) -> None:
    sys.stderr.write(f"[jobs-bench] {message}\n")
    sys.stderr.flush()


def run_job(
    client: jobs.AggregatorClient, kind: str, tasks: int, params: dict[str, Any], strategy: str
) -> tuple[dict[str, Any], float]:
    """Run one job to its end; its outcome (as ``job run --json``) and the end-to-end time."""
    started = time.monotonic()
    job_id = client.submit(kind, params, tasks, strategy=strategy)
    status = jobs.follow(client, job_id, poll_s=POLL_S)
    outcome = jobs.outcome(client, status)
    elapsed = time.monotonic() - started
    if not outcome.succeeded:
        raise SystemExit(f"[jobs-bench] {jobs.failure_line(status)}")
    return outcome.to_dict(), elapsed


def client_url(state: Path, inventory: Path) -> str:
    with jobs.connect(state, lambda: inventory) as client:
        return client.base_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_lab_options(parser)
    parser.add_argument(
        "--inventory",
        type=Path,
        default=None,
        help="the inventory deployed (default the lab's own)",
    )
    parser.add_argument("--mean-repeat", type=int, default=5, help="runs of the reference mean job")
    parser.add_argument("--tasks", type=int, default=1000, help="sleep tasks (default 1000)")
    parser.add_argument("--task-ms", type=float, default=20.0, help="ms per sleep task at speed 1")
    parser.add_argument("--tiny-tasks", type=int, default=100_000, help="mean tasks of size 1")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()

    with deployed_lab(args, "jobs-bench") as bench:
        state = bench.state_dir
        inventory = args.inventory or bench.inventory
        plan = plan_inventory(inventory, args.tasks, task_s=args.task_ms / 1000.0)
        speeds = {node.name: node.speed for node in plan.nodes if node.weight > 0}
        ideal_s = args.tasks * args.task_ms / 1000.0 / sum(speeds.values())
        log(f"workers and speeds: {speeds}; ideal makespan {ideal_s:.3f} s")

        result: dict[str, Any] = {
            "mode": bench.mode,
            "workers": len(speeds),
            "speeds": speeds,
            "sleep_tasks": args.tasks,
            "task_ms": args.task_ms,
            "repeat": args.repeat,
            "aggregator_url": client_url(state, inventory),
        }
        with jobs.connect(state, lambda: inventory) as client:
            # One small job first, so that no measurement pays for the first
            # connections and imports on the aggregator and the workers.
            run_job(client, "sleep", len(speeds), {"task_ms": 1.0}, "weighted")
            makespans: dict[str, list[float]] = {"weighted": [], "equal": []}
            for attempt in range(args.repeat):
                for strategy in ("weighted", "equal"):
                    done, _ = run_job(
                        client, "sleep", args.tasks, {"task_ms": args.task_ms}, strategy
                    )
                    makespans[strategy].append(float(done["makespan_s"]))
                    log(
                        f"sleep {strategy} #{attempt + 1}: makespan {done['makespan_s']:.3f} s, "
                        f"per node { {n: e['tasks'] for n, e in done['per_node'].items()} }"
                    )
            weighted_s = statistics.median(makespans["weighted"])
            equal_s = statistics.median(makespans["equal"])

            rates: list[float] = []
            tiny_makespans: list[float] = []
            for attempt in range(args.repeat):
                done, elapsed = run_job(
                    client, "mean", args.tiny_tasks, {"task_size": 1, "seed": attempt}, "weighted"
                )
                if done["result"]["count"] != args.tiny_tasks:
                    raise SystemExit(f"[jobs-bench] the tiny-task job counted {done['result']}")
                rates.append(args.tiny_tasks / elapsed)
                tiny_makespans.append(float(done["makespan_s"]))
                log(
                    f"tiny #{attempt + 1}: {args.tiny_tasks} tasks in {elapsed:.2f} s end to end "
                    f"({args.tiny_tasks / elapsed:.0f}/s; aggregator makespan "
                    f"{done['makespan_s']:.2f} s)"
                )

            mean_runs: list[float] = []
            for attempt in range(args.mean_repeat):
                done, elapsed = run_job(
                    client, "mean", 1000, {"task_size": 1000, "seed": 7}, "weighted"
                )
                mean_runs.append(elapsed)
                log(f"reference mean #{attempt + 1}: {elapsed:.3f} s end to end")

        result.update(
            {
                "mean_job_s": round(statistics.median(mean_runs), 3),
                "mean_job_runs_s": [round(value, 3) for value in mean_runs],
                "weighted_makespan_s": round(weighted_s, 3),
                "equal_makespan_s": round(equal_s, 3),
                "ideal_makespan_s": round(ideal_s, 3),
                "weighted_over_ideal": round(weighted_s / ideal_s, 3),
                "equal_over_weighted": round(equal_s / weighted_s, 3),
                "weighted_runs_s": [round(value, 3) for value in makespans["weighted"]],
                "equal_runs_s": [round(value, 3) for value in makespans["equal"]],
                "tiny_tasks": args.tiny_tasks,
                "tiny_tasks_per_s": round(statistics.median(rates)),
                "tiny_makespan_s": round(statistics.median(tiny_makespans), 3),
            }
        )
        print(json.dumps(result))
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
