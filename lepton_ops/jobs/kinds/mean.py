"""``mean``: count, mean, population variance, min and max of seeded uniform numbers.

Task i draws ``task_size`` numbers with ``numpy.random.default_rng([seed, i]).random()``.
Those are floats ``k / 2**53`` with ``k`` a whole number in ``[0, 2**53)`` (numpy's
``random()`` keeps the top 53 bits of a 64-bit draw), so the partial result keeps the
exact integer sums ``sum(k)`` and ``sum(k**2)`` as Python ints, plus the count and the
smallest and largest ``k``. Merging is integer addition: exact, associative and
commutative, so any grouping and order of shards gives bitwise the same result. The
mean and variance are computed once, at the end, with exact rational arithmetic and
rounded to float once (correctly rounded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.jobs.kinds.base import (
    SEED,
    JobKind,
    Partial,
    cancel_point,
    exact_int,
    partial_fields,
    task_size,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: numpy's random() floats are k / SCALE with k a whole number below SCALE.
SCALE = 2**53
_FIELDS = ("count", "sum_k", "sum_k2", "min_k", "max_k")
#: The exact sums run over blocks this large: every int64 partial sum below stays < 2**63.
_BLOCK = 2**20
_LIMB_BITS = 18
_LIMB_MASK = (1 << _LIMB_BITS) - 1


class MeanKind(JobKind):
    name = "mean"
    summary = "Count, mean, population variance, min and max of seeded uniform numbers."
    params = (task_size("numbers", default=1000), SEED)
    # one shard draws at most MAX_SHARD_DRAWS numbers (a few seconds of work)
    work_per_task = "task_size"

    def empty(self) -> Partial:
        return {"count": 0, "sum_k": "0", "sum_k2": "0", "min_k": None, "max_k": None}

    def check_partial(self, partial: Mapping[str, Any]) -> Partial:
        partial_fields(self.name, partial, _FIELDS)
        count = exact_int(self.name, "count", partial["count"])
        sum_k = exact_int(self.name, "sum_k", partial["sum_k"])
        sum_k2 = exact_int(self.name, "sum_k2", partial["sum_k2"])
        if count == 0:
            if sum_k or sum_k2 or partial["min_k"] is not None or partial["max_k"] is not None:
                raise BadInput("mean partial result: no numbers, yet sums or a min/max")
            return self.empty()
        min_k = exact_int(self.name, "min_k", partial["min_k"])
        max_k = exact_int(self.name, "max_k", partial["max_k"])
        if not min_k <= max_k < SCALE:
            raise BadInput(f"mean partial result: min_k {min_k} / max_k {max_k} out of range")
        if (
            not count * min_k <= sum_k <= count * max_k
            or not count * min_k * min_k <= sum_k2 <= count * max_k * max_k
            or count * sum_k2 < sum_k * sum_k
        ):
            raise BadInput("mean partial result: the sums do not fit the count and min/max")
        return _partial(count, sum_k, sum_k2, min_k, max_k)

    def _map(self, params: dict[str, Any], start: int, stop: int, speed: float) -> Partial:
        import numpy as np

        seed = params["seed"]
        size = params["task_size"]
        count = sum_k = sum_k2 = 0
        min_k: int | None = None
        max_k: int | None = None
        block: list[npt.NDArray[np.int64]] = []
        held = 0
        for task in range(start, stop):
            cancel_point()
            block.append(_draw_k(seed, task, size))
            held += size
            if held >= _BLOCK or task == stop - 1:
                k = np.concatenate(block)
                block, held = [], 0
                s1, s2 = _exact_sums(k)
                count += int(k.size)
                sum_k += s1
                sum_k2 += s2
                low, high = int(k.min()), int(k.max())
                min_k = low if min_k is None else min(min_k, low)
                max_k = high if max_k is None else max(max_k, high)
        if count == 0:
            return self.empty()
        assert min_k is not None and max_k is not None
        return _partial(count, sum_k, sum_k2, min_k, max_k)

    def _reduce(self, a: Partial, b: Partial) -> Partial:
        if a["count"] == 0:
            return b
        if b["count"] == 0:
            return a
        return _partial(
            a["count"] + b["count"],
            int(a["sum_k"]) + int(b["sum_k"]),
            int(a["sum_k2"]) + int(b["sum_k2"]),
            min(a["min_k"], b["min_k"]),
            max(a["max_k"], b["max_k"]),
        )

    def _finalize(self, partial: Partial) -> dict[str, Any]:
        count = partial["count"]
        if count == 0:
            return {
                "count": 0,
                "sum": 0.0,
                "mean": None,
                "variance": None,
                "std": None,
                "min": None,
                "max": None,
            }
        sum_k = int(partial["sum_k"])
        sum_k2 = int(partial["sum_k2"])
        # var = (n * sum(k^2) - sum(k)^2) / (n^2 * SCALE^2): exact integers, one rounding.
        variance = (count * sum_k2 - sum_k * sum_k) / (count * count * SCALE * SCALE)
        return {
            "count": count,
            "sum": sum_k / SCALE,
            "mean": sum_k / (count * SCALE),
            "variance": variance,
            "std": math.sqrt(variance),
            "min": partial["min_k"] / SCALE,
            "max": partial["max_k"] / SCALE,
        }


def _partial(count: int, sum_k: int, sum_k2: int, min_k: int, max_k: int) -> Partial:
    return {
        "count": count,
        "sum_k": str(sum_k),
        "sum_k2": str(sum_k2),
        "min_k": min_k,
        "max_k": max_k,
    }


def _draw_k(seed: int, task: int, size: int) -> npt.NDArray[np.int64]:
    """Task ``task``'s numbers as the whole numbers k (each number is k / 2**53)."""
    import numpy as np

    numbers = np.random.default_rng([seed, task]).random(size)
    scaled = numbers * float(SCALE)  # exact: a power-of-two scaling
    k = scaled.astype(np.int64)
    if not np.array_equal(k, scaled):
        raise OperationFailed(
            "numpy's random() returned numbers that are not multiples of 2**-53: "
            "the exact mean cannot be computed with this numpy"
        )
    return k


def _exact_sums(k: npt.NDArray[np.int64]) -> tuple[int, int]:
    """``sum(k)`` and ``sum(k**2)`` exactly, for ``0 <= k < 2**54``.

    Each k is split into three 18-bit limbs ``k = a*2**36 + b*2**18 + c``. Products of
    two limbs are below 2**36, so int64 sums of up to 2**27 of them cannot overflow; the
    limb sums are then combined with Python's unbounded ints.
    """
    import numpy as np

    sum_k = 0
    sum_k2 = 0
    for begin in range(0, int(k.size), _BLOCK):
        part = k[begin : begin + _BLOCK]
        a = part >> (2 * _LIMB_BITS)
        b = (part >> _LIMB_BITS) & _LIMB_MASK
        c = part & _LIMB_MASK
        sa, sb, sc = (int(limb.sum(dtype=np.int64)) for limb in (a, b, c))
        aa, ab, ac, bb, bc, cc = (
            int(np.dot(x, y)) for x, y in ((a, a), (a, b), (a, c), (b, b), (b, c), (c, c))
        )
        sum_k += (sa << 36) + (sb << 18) + sc
        sum_k2 += (aa << 72) + (2 * ab << 54) + ((2 * ac + bb) << 36) + (2 * bc << 18) + cc
    return sum_k, sum_k2
