"""The command tree: loaded lazily, in the loop's order, every command with examples."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "httpx", "ansible", "sklearn", "rich", "lepton_ops.jobs.client")


def imported_after(*argv: str) -> list[str]:
    """The heavy modules imported by ``lepton-ops ARGV`` (run in a fresh interpreter)."""
    script = (
        "import sys\n"
        "from lepton_ops.cli.app import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return [name for name in last.split(",") if name and name in HEAVY]


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["--version"], []),
        (["--help"], []),
        # a command's module may import rich (its tables), never the rest before it runs
        (["job", "plan", "--help"], ["rich"]),
        (["report", "--help"], ["rich"]),
        (["model", "show", "--help"], ["rich"]),
    ],
)
def test_start_up_imports_nothing_heavy(argv: list[str], allowed: list[str]) -> None:
    assert [name for name in imported_after(*argv) if name not in allowed] == []
