"""How the report writes its numbers for people (the terminal and the HTML page alike)."""

from __future__ import annotations

import time

from lepton_ops.report.stability import Figure


def seconds(value: float | None) -> str:
    """``12.5 s``, ``34.2 min``, ``3.1 h``, ``2.0 d``; ``-`` for None."""
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.3g} s"
    if value < 7200:
        return f"{value / 60:.3g} min"
    if value < 2 * 86_400:
        return f"{value / 3600:.3g} h"
    return f"{value / 86_400:.3g} d"


def percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def figure(value: Figure) -> str:
    """A figure in its unit, ``-`` when it has no value."""
    if value.value is None:
        return "-"
    if value.unit == "s":
        return seconds(value.value)
    if value.unit in ("ratio", "probability"):
        return percent(value.value, 3 if value.unit == "ratio" else 2)
    return f"{value.value:.3g} {value.unit}"


def when(ts: float | None) -> str:
    """A local time, to the second."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def short_id(job_id: str) -> str:
    return job_id[:8]


def rests_on(value: Figure) -> str:
    """``3 failures``, ``1 failure``: the count a figure rests on."""
    basis = value.basis
    if value.count == 1 and basis.endswith("s"):
        basis = basis[:-1]
    return f"{value.count} {basis}"
