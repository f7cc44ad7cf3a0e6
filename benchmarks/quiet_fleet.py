"""Quiet-fleet benchmark: the alarms the predictor would act on in a healthy, busy fleet.

Brings up its own lab (ssh mode as root, local otherwise) in a temporary state directory,
provisions it and deploys the services (or, with ``--state-dir``, uses a lab that is
already up and deployed there, with its model if it has one), then for ``--minutes``
(default 30):

- a steady job load: ``sleep`` jobs of ``--tasks`` tasks of ``--task-ms`` ms, one after
  the other with ``--pause`` seconds between them, on the aggregator;
- the watch loop in dry-run mode: ``lepton_ops.remediate.loop.cycle(dry_run=True)`` every
  ``--interval`` seconds (collect the telemetry, predict, plan remediation, act on
  nothing). No fault is injected.

An *actionable alarm* is a node the plan would have acted on (a decision with an action:
at risk, or failing now). An alarm the predictor keeps up over several passes counts once:
passes in a row with an action for the same node are one alarm. Without a model (the
default: a new lab has none) the streaming detector alone decides, at its fleet
threshold, on each node's alarms above its peers' (a change on most nodes at once is
fleet-wide, not actionable); the first 128 collections of each series are its warm-up, and
none can reach the fleet threshold before collection 384 (its probation: about 32 minutes
at one pass every 5 s). A run shorter than that only checks the warm-up and the probation:
``--minutes 60`` checks about half an hour of calibrated detector.

Target: 0 alarms in 30 minutes on 5 nodes (the goal is at most 1 per node-day).
Progress goes to stderr; one JSON line last on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lab_setup import add_lab_options, deployed_lab

from lepton_ops.errors import LeptonError
from lepton_ops.jobs import client as jobs
from lepton_ops.predict.model_store import has_current
from lepton_ops.remediate.loop import cycle
from lepton_ops.remediate.policy import PolicyConfig
from lepton_ops.telemetry.pull import fleet_targets

DAY_S = 86_400.0


def log(message: str) -> None:
    sys.stderr.write(f"[quiet-fleet] {message}\n")
    sys.stderr.flush()


class JobLoad:
    """Jobs one after the other on the aggregator, until stopped."""

    def __init__(self, state: Path, inventory: Path, tasks: int, task_ms: float, pause_s: float):
        self.state, self.inventory = state, inventory
        self.tasks, self.task_ms, self.pause_s = tasks, task_ms, pause_s
        self.done = 0
        self.failed = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with jobs.connect(self.state, lambda: self.inventory) as client:
            while not self._stop.is_set():
                try:
                    job_id = client.submit("sleep", {"task_ms": self.task_ms}, self.tasks)
                    status = jobs.follow(client, job_id, poll_s=0.2)
                    if jobs.outcome(client, status).succeeded:
                        self.done += 1
                    else:
                        self.failed += 1
                        self.errors.append(jobs.failure_line(status))
                except LeptonError as exc:
                    self.failed += 1
                    self.errors.append(str(exc))
                self._stop.wait(self.pause_s)


def count_alarms(passes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alarms from the passes' actionable nodes: a run of passes in a row is one alarm."""
    alarms: list[dict[str, Any]] = []
    open_alarms: dict[str, dict[str, Any]] = {}
    for number, entry in enumerate(passes):
        acted = {decision["node"]: decision for decision in entry["actions"]}
        for node in list(open_alarms):
            if node not in acted:
                del open_alarms[node]
        for node, decision in acted.items():
            if node in open_alarms:
                open_alarms[node]["passes"] += 1
                continue
            alarm = {
                "node": node,
                "first_pass": number,
                "at_s": entry["at_s"],
                "passes": 1,
                "reason": decision["reason"],
                "evidence": entry["predictions"].get(node, {}),
            }
            open_alarms[node] = alarm
            alarms.append(alarm)
    return alarms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_lab_options(parser)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between passes")
    parser.add_argument("--tasks", type=int, default=100, help="tasks per job")
    parser.add_argument("--task-ms", type=float, default=20.0, help="ms per task at speed 1")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between jobs")
    args = parser.parse_args()

    with deployed_lab(args, "quiet-fleet") as bench:
        state, inventory = bench.state_dir, bench.inventory
        nodes = {target.node for target in fleet_targets(inventory)}
        config = PolicyConfig()
        load = JobLoad(state, inventory, args.tasks, args.task_ms, args.pause)
        load.start()
        log(f"steady job load and dry-run passes every {args.interval:g} s "
            f"for {args.minutes:g} min")  # fmt: skip
        started = time.monotonic()
        deadline = started + 60.0 * args.minutes
        passes: list[dict[str, Any]] = []
        errors: list[str] = []
        try:
            while time.monotonic() < deadline:
                began = time.monotonic()
                try:
                    result = cycle(state, inventory, config, dry_run=True, trigger="quiet-fleet")
                except LeptonError as exc:
                    errors.append(str(exc))
                    log(f"pass failed: {exc}")
                else:
                    actions = [d.to_dict() for d in result.remediation.plan.actions]
                    predictions = predictions_of(state)
                    passes.append(
                        {
                            "at_s": round(began - started, 1),
                            "actions": actions,
                            "predictions": predictions if actions else {},
                        }
                    )
                    if actions:
                        log(f"pass {len(passes)}: would act on {[a['node'] for a in actions]}")
                time.sleep(max(0.0, args.interval - (time.monotonic() - began)))
        finally:
            load.stop()
        elapsed = time.monotonic() - started
        alarms = count_alarms(passes)
        node_count = max(len(nodes), 1)
        by_node: dict[str, int] = {}
        for alarm in alarms:
            by_node[alarm["node"]] = by_node.get(alarm["node"], 0) + 1
        result_line = {
            "mode": bench.mode,
            "model": has_current(state),
            "minutes": round(elapsed / 60.0, 2),
            "passes": len(passes),
            "failed_passes": len(errors),
            "nodes": node_count,
            "jobs_done": load.done,
            "jobs_failed": load.failed,
            "actionable_passes": sum(1 for entry in passes if entry["actions"]),
            "alarms": len(alarms),
            "alarms_by_node": by_node,
            "alarms_per_node_day": round(len(alarms) / (node_count * elapsed / DAY_S), 2),
            "alarm_details": alarms[:10],
            "target_met": len(alarms) == 0,
        }
        print(json.dumps(result_line, default=str))
        return 0


def predictions_of(state: Path) -> dict[str, Any]:
    """Each node's current prediction (the evidence of an alarm)."""
    from lepton_ops.predict import current_risk

    try:
        return {p.node: p.to_dict() for p in current_risk(state)}
    except LeptonError as exc:
        return {"error": str(exc)}


if __name__ == "__main__":
    raise SystemExit(main())
