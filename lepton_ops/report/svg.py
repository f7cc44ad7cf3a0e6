"""Just enough SVG, by hand, for the report's charts: scales, marks, axes.

The page must be one file that draws with no network and no library (no CDN, no
matplotlib): SVG written as text does that, and a browser lays it out like the rest of
the page. Every attribute value and text is escaped here (:func:`element`), so the
callers can pass strings from the store as they are.

Marks that show data carry the class ``data``: the page's check script counts those
(axes and labels do not prove that a chart shows anything).
"""

from __future__ import annotations

import html
import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Attr = str | float | int | None


def element(tag: str, attrs: dict[str, Attr] | None = None, content: str = "") -> str:
    """``<tag a="v">content</tag>`` with every value escaped; None values are left out.

    ``content`` is markup (already escaped); text goes through :func:`text`.
    """
    parts = [tag]
    for name, value in (attrs or {}).items():
        if value is None:
            continue
        shown = _number(value) if isinstance(value, float) else str(value)
        parts.append(f'{name}="{html.escape(shown, quote=True)}"')
    opening = " ".join(parts)
    if not content:
        return f"<{opening}/>"
    return f"<{opening}>{content}</{tag}>"


def text(x: float, y: float, words: str, **attrs: Attr) -> str:
    return element("text", {"x": x, "y": y, **attrs}, html.escape(words))


def title(words: str) -> str:
    """A tooltip for the enclosing mark."""
    return f"<title>{html.escape(words)}</title>"


def svg(width: int, height: int, label: str, body: Iterable[str]) -> str:
    return element(
        "svg",
        {
            # no xmlns: the HTML parser puts inline <svg> in the SVG namespace itself
            "viewBox": f"0 0 {width} {height}",
            "width": width,
            "height": height,
            "role": "img",
            "aria-label": label,
        },
        "".join(body),
    )


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


@dataclass(frozen=True)
class Scale:
    """Maps ``[low, high]`` of the data onto ``[start, end]`` pixels (linear, clamped)."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low
        share = 0.5 if span <= 0 else (value - self.low) / span
        share = min(max(share, 0.0), 1.0)
        return self.start + share * (self.end - self.start)


def segments(
    data: Sequence[tuple[float, float]], gap: float | None
) -> list[list[tuple[float, float]]]:
    """``data`` cut wherever two consecutive times are more than ``gap`` apart."""
    runs: list[list[tuple[float, float]]] = []
    for point in data:
        if not runs or (gap is not None and point[0] - runs[-1][-1][0] > gap):
            runs.append([])
        runs[-1].append(point)
    return runs


def line(
    xs: Scale, ys: Scale, data: Sequence[tuple[float, float]], css: str, label: str, *,
    step: bool = False, gap: float | None = None,
) -> str:  # fmt: skip
    """A path through ``data``, broken where there is no data for more than ``gap``.

    ``step``: each value holds until the next one. A lone point is a short dash (a path
    of one point draws nothing).
    """
    commands = []
    for run in segments(data, gap):
        shown = list(run)
        if step:
            shown = [run[0]]
            for (_, before), (x, y) in itertools.pairwise(run):
                shown += [(x, before), (x, y)]
        first, *rest = shown
        commands.append(f"M{_number(xs(first[0]))},{_number(ys(first[1]))}")
        commands.extend(f"L{_number(xs(x))},{_number(ys(y))}" for x, y in rest)
        if not rest:
            commands.append("h2")
    if not commands:
        return ""
    return element("path", {"class": f"data line {css}", "d": " ".join(commands)}, title(label))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values between ``low`` and ``high``."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def time_ticks(since: float, until: float, count: int = 6) -> list[tuple[float, str]]:
    """About ``count`` evenly spaced times with a local-time label fitting the span."""
    span = until - since
    fmt = "%H:%M:%S" if span <= 600 else "%H:%M" if span <= 2 * 86_400 else "%m-%d %H:%M"
    return [
        (ts, time.strftime(fmt, time.localtime(ts)))
        for ts in (since + span * index / count for index in range(count + 1))
    ]
