"""Output for people (rich) and for machines (``--json``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout, one document, nothing else: safe to pipe."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def fail_line(message: str) -> None:
    """The one line an operator sees when something went wrong."""
    sys.stderr.write(f"lepton-ops: error: {message}\n")
    sys.stderr.flush()
