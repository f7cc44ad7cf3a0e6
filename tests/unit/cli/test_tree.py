"""The command tree: loaded lazily, in the loop's order, every command with examples."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lepton_ops.cli.app import SECTIONS, app
from lepton_ops.cli.examples import EXAMPLES

HEAVY = ("numpy", "httpx", "ansible", "sklearn", "rich", "lepton_ops.jobs.client")

LOOP_ORDER = [
    "lab", "provision", "deploy", "job", "telemetry", "chaos", "model", "predict", "remediate",
    "cycle", "watch", "audit", "uncordon", "schedule", "status", "report", "demo",
]  # fmt: skip


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


def test_commands_are_listed_in_the_loops_order() -> None:
    names = [entry.name for section in SECTIONS for entry in section.entries]
    assert names == LOOP_ORDER


def all_commands() -> list[tuple[str, object]]:
    import typer

    root = typer.main.get_command(app)
    found: list[tuple[str, object]] = []

    def walk(command: object, path: str) -> None:
        found.append((path, command))
        group = getattr(command, "list_commands", None)
        if group is None:
            return
        ctx = root.make_context("lepton-ops", [], resilient_parsing=True)
        for name in command.list_commands(ctx):  # type: ignore[attr-defined]
            walk(command.get_command(ctx, name), f"{path} {name}".strip())  # type: ignore[attr-defined]

    walk(root, "")
    return found[1:]


def test_every_command_has_examples_and_a_plain_help() -> None:
    missing = [path for path, _ in all_commands() if path not in EXAMPLES]
    assert missing == []
    unknown = set(EXAMPLES) - {path for path, _ in all_commands()}
    assert unknown == set()


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_help_shows_examples_choices_and_no_raw_types(path: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lepton_ops", *path.split(), "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "Examples:" in text
    assert "<bool>" not in text
    assert "{" not in text.split("Examples:")[0]  # arguments are not shown as {node}
    assert "<str>" not in text  # every value has a name or its choices
