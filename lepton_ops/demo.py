"""The guided tour on the embedded lab: every step of the loop, timed, with its outcome.

Today it covers lab -> provision -> status; later steps (deploy, jobs, telemetry,
prediction, remediation, report) join as they land.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lepton_ops.errors import LeptonError
from lepton_ops.lab import Lab, LabMode
from lepton_ops.provision.provision import provision


@dataclass
class StepOutcome:
    name: str
    ok: bool
    seconds: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            "detail": self.detail,
        }


@dataclass
class DemoResult:
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [step.to_dict() for step in self.steps]}


def run_demo(
    state_dir: Path,
    *,
    mode: LabMode | None = None,
    console: Console | None = None,
    on_step: Callable[[StepOutcome], None] | None = None,
) -> DemoResult:
    """Run the tour; stop at the first failed step (later steps depend on it)."""
    lab = Lab(state_dir)
    result = DemoResult()

    def step(name: str, action: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = action(), True
        except LeptonError as exc:
            detail, ok = str(exc), False
        outcome = StepOutcome(name, ok, time.monotonic() - started, detail)
        result.steps.append(outcome)
        if on_step is not None:
            on_step(outcome)
        return ok

    def lab_up() -> str:
        status = lab.up(mode)
        return f"{len(status.nodes)} nodes in {status.mode} mode, inventory {status.inventory}"

    def provision_fleet() -> str:
        outcome = provision(lab.inventory_path, state_dir, console=console)
        summary = ", ".join(f"{n} {s}" for s, n in outcome.run.summary().items() if n)
        if not outcome.run.succeeded:
            raise _StepFailed(f"provision: {summary}")
        return f"{summary}; wheelhouse {outcome.wheelhouse.id}"

    def lab_status() -> str:
        status = lab.status()
        down = [node.name for node in status.nodes if not node.reachable]
        if down:
            raise _StepFailed(f"unreachable: {', '.join(down)}")
        return f"all {len(status.nodes)} nodes reachable"

    for name, action in (
        ("lab up", lab_up),
        ("provision", provision_fleet),
        ("status", lab_status),
    ):
        if not step(name, action):
            break
    return result


class _StepFailed(LeptonError):
    pass
