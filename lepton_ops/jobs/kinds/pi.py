"""``pi``: a Monte Carlo estimate of pi from seeded points in the unit square.

Task i draws ``task_size`` points ``(x, y)`` with
``numpy.random.default_rng([seed, i]).random((task_size, 2))`` and counts those inside
the quarter circle ``x*x + y*y <= 1``. The partial result is two whole numbers
(inside, total): merging adds them, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds.base import (
    SEED,
    JobKind,
    Partial,
    cancel_point,
    exact_int,
    partial_fields,
    task_size,
)


class PiKind(JobKind):
    name = "pi"
    summary = "Monte Carlo estimate of pi: seeded points in the unit square, inside the circle."
    params = (task_size("points", default=10_000), SEED)
    # one shard draws at most MAX_SHARD_DRAWS points (a few seconds of work)
    work_per_task = "task_size"

    def empty(self) -> Partial:
        return {"inside": 0, "total": 0}

    def check_partial(self, partial: Mapping[str, Any]) -> Partial:
        partial_fields(self.name, partial, ("inside", "total"))
        inside = exact_int(self.name, "inside", partial["inside"])
        total = exact_int(self.name, "total", partial["total"])
        if inside > total:
            raise BadInput(f"pi partial result: {inside} points inside out of {total}")
        return {"inside": inside, "total": total}

    def _map(self, params: dict[str, Any], start: int, stop: int, speed: float) -> Partial:
        import numpy as np

        seed = params["seed"]
        size = params["task_size"]
        inside = 0
        for task in range(start, stop):
            cancel_point()
            points = np.random.default_rng([seed, task]).random((size, 2))
            x, y = points[:, 0], points[:, 1]
            inside += int(np.count_nonzero(x * x + y * y <= 1.0))
        return {"inside": inside, "total": (stop - start) * size}

    def _reduce(self, a: Partial, b: Partial) -> Partial:
        return {"inside": a["inside"] + b["inside"], "total": a["total"] + b["total"]}

    def _finalize(self, partial: Partial) -> dict[str, Any]:
        inside, total = partial["inside"], partial["total"]
        if total == 0:
            return {"pi_estimate": None, "std_error": None, "inside": 0, "total": 0}
        fraction = inside / total
        return {
            "pi_estimate": 4 * inside / total,
            # The estimate's standard error: 4 * sqrt(p (1 - p) / n).
            "std_error": 4 * math.sqrt(fraction * (1 - fraction) / total),
            "inside": inside,
            "total": total,
        }
