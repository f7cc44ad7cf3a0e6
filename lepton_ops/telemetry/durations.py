"""Durations as operators type them: ``90s``, ``10m``, ``1h30m``, ``30d``, ``2w``, ``1.5h``.

Used by CLI flags such as ``--since 10m`` and ``--older-than 30d``. A bare number is
refused (is ``30`` seconds or days?), and so is zero: a window must have a length.
"""

from __future__ import annotations

import math
import re

from lepton_ops.errors import BadInput

UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (parts of a number and a unit s, m, h, d or w); BadInput if bad."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    if not _WHOLE.fullmatch(cleaned):
        raise BadInput(
            f"bad duration {text!r}: use a number and a unit s, m, h, d or w (e.g. 10m, 30d)"
        )
    seconds = sum(float(number) * UNITS[unit] for number, unit in _PART.findall(cleaned))
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadInput(f"bad duration {text!r}: it must be longer than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """A short text for ``seconds``, the inverse of :func:`parse_duration` for whole units."""
    if not math.isfinite(seconds) or seconds < 0:
        raise BadInput(f"a duration must be 0 seconds or more, got {seconds!r}")
    remaining = round(seconds)
    if remaining == 0:
        return f"{seconds:g}s"
    parts = []
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
