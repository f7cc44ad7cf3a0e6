"""Output for people (rich) and for machines (``--json``)."""

from __future__ import annotations

import json
import sys
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


def print_json(data: Any) -> None:
    """Plain JSON on stdout, one document, nothing else: safe to pipe."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def fail_line(message: str) -> None:
    """The one line an operator sees when something went wrong."""
    sys.stderr.write(f"lepton-ops: error: {message}\n")
    sys.stderr.flush()
