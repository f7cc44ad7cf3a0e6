"""Output for people (rich) and for machines (``--json``)."""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


class _DeferredConsole:
    """A rich ``Console`` made on first use: a command that prints JSON never imports rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    # Special methods are looked up on the type, not through __getattr__ (rich's Live
    # enters its console).
    def __enter__(self) -> Console:
        return self._made().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._made().__exit__(*exc_info)


console = cast("Console", _DeferredConsole(soft_wrap=True))
err_console = cast("Console", _DeferredConsole(stderr=True))


#: Fields that hold a moment (besides those ending in _at or _ts).
_TIME_FIELDS = frozenset({"ts", "since", "until", "now", "cut"})


def is_time_field(name: str) -> bool:
    return name in _TIME_FIELDS or name.endswith(("_at", "_ts"))


def iso_time(ts: float) -> str:
    """``ts`` (Unix seconds) as ISO 8601 in UTC, to the millisecond."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def for_json(data: Any) -> Any:
    """``data`` with every moment as ISO 8601: the library keeps Unix seconds, people and
    machines reading the CLI's JSON get dates (a field named ``*_epoch`` stays a number)."""
    if isinstance(data, dict):
        return {
            key: (
                iso_time(value)
                if is_time_field(str(key)) and _is_moment(value)
                else for_json(value)
            )
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [for_json(item) for item in data]
    return data


def _is_moment(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def json_text(data: Any, *, indent: int | None = 2) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(for_json(data), indent=indent, separators=separators, default=str)


def print_json(data: Any) -> None:
    """Plain JSON on stdout, one document, nothing else: safe to pipe."""
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def human_seconds(seconds: float) -> str:
    """A time span as people read it: 0.250 s, 12.5 s, 2 min 13 s, 4 h 05 min, 1 d 13 h."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 10:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def fail_line(message: str) -> None:
    """The one line an operator sees when something went wrong."""
    sys.stderr.write(f"lepton-ops: error: {message}\n")
    sys.stderr.flush()
