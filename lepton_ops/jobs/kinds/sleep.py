"""``sleep``: tasks that only take time - for measuring the planner and the fleet.

Each task costs ``task_ms`` milliseconds divided by the worker's speed factor (given to
``map``: a node twice as fast sleeps half as long), so a weighted plan should finish
every node at once. A shard sleeps once, for all its tasks (waking early if its job is
cancelled), and sleeps at most :data:`MAX_SHARD_SLEEP_MS` at speed 1: the aggregator
plans no longer shard and a worker refuses one. The partial result counts tasks and the
nanoseconds actually slept, both whole numbers, so merging is exact.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lepton_ops.jobs.kinds.base import (
    JobKind,
    Param,
    Partial,
    cancellable_sleep,
    exact_int,
    partial_fields,
)

#: One shard sleeps at most this long at speed 1 (within the aggregator's first read
#: timeout, 60 s, on a node of speed 0.5), so one task may not take longer either.
MAX_SHARD_SLEEP_MS = 30_000
MAX_TASK_MS = float(MAX_SHARD_SLEEP_MS)


class SleepKind(JobKind):
    name = "sleep"
    summary = "Tasks that sleep task_ms / speed each: measures the plan, computes nothing."
    params = (
        Param(
            "task_ms",
            "float",
            "Milliseconds each task takes on a node of speed 1.",
            default=20.0,
            minimum=0.0,
            maximum=MAX_TASK_MS,
            metavar="MS",
        ),
    )
    work_per_task = "task_ms"
    max_shard_work = MAX_SHARD_SLEEP_MS

    def empty(self) -> Partial:
        return {"tasks": 0, "slept_ns": 0}

    def check_partial(self, partial: Mapping[str, Any]) -> Partial:
        partial_fields(self.name, partial, ("tasks", "slept_ns"))
        return {
            "tasks": exact_int(self.name, "tasks", partial["tasks"]),
            "slept_ns": exact_int(self.name, "slept_ns", partial["slept_ns"]),
        }

    def _map(self, params: dict[str, Any], start: int, stop: int, speed: float) -> Partial:
        tasks = stop - start
        seconds = tasks * params["task_ms"] / 1000.0 / speed
        began = time.perf_counter_ns()
        if seconds > 0:
            cancellable_sleep(seconds)
        slept = time.perf_counter_ns() - began if tasks else 0
        return {"tasks": tasks, "slept_ns": slept}

    def _reduce(self, a: Partial, b: Partial) -> Partial:
        return {"tasks": a["tasks"] + b["tasks"], "slept_ns": a["slept_ns"] + b["slept_ns"]}

    def _finalize(self, partial: Partial) -> dict[str, Any]:
        return {"tasks": partial["tasks"], "slept_s": partial["slept_ns"] / 1e9}
