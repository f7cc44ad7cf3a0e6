"""Running ``lepton-ops`` as a user does, and reading its one-line errors (shared by the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, state_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m lepton_ops ARGS --state-dir STATE_DIR``, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "lepton_ops", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("lepton-ops: error: ")
    return lines[0]


def static_inventory(path: Path, nodes: int, *, network: str = "127.0.3") -> Path:
    """A YAML inventory at ``path``: node1 the aggregator, node1..nodeN workers of weights
    100, 200..., on ``network``.1... (127.0.3.x: loopback addresses no lab uses)."""
    workers = "".join(
        f"        node{k}: {{ansible_host: {network}.{k}, lepton_weight: {100 * k}}}\n"
        for k in range(1, nodes + 1)
    )
    path.write_text(
        "all:\n  children:\n    aggregator:\n      hosts:\n        node1:\n"
        f"    workers:\n      hosts:\n{workers}",
        encoding="utf-8",
    )
    return path
