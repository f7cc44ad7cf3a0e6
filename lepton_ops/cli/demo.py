"""``lepton-ops demo``: the guided tour on the embedded lab."""

from __future__ import annotations

from typing import Annotated

import typer

from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, fail_line, print_json
from lepton_ops.demo import StepOutcome, run_demo
from lepton_ops.lab import LabMode
from lepton_ops.settings import Settings


@with_settings
def demo_command(
    cfg: Settings,
    mode: Annotated[
        LabMode | None,
        typer.Option("--mode", help="Lab mode. Default: ssh when root, local otherwise."),
    ] = None,
) -> None:
    """The whole loop on the embedded lab, step by step with outcomes and times: lab up,
    provision, deploy, a weighted mean job checked against numpy, a sleep job on nodes of
    speeds 1:2:3:4:5 whose executed shares must follow L_i (within 5 points), telemetry, a
    memory leak injected on node3, its prediction, remediation and verification, and the
    report (its timelines tell that story)."""
    cfg.ensure_state_dir()

    def show(step: StepOutcome) -> None:
        if cfg.json:
            return
        mark = "[green]ok[/green]" if step.ok else "[red]FAILED[/red]"
        console.print(f"[bold]{step.name:<12}[/bold] {mark} {step.seconds:6.1f}s  {step.detail}")

    result = run_demo(cfg.state_dir, mode=mode, console=None if cfg.json else console, on_step=show)
    if cfg.json:
        print_json(result.to_dict())
    if not result.ok:
        failed = next(step for step in result.steps if not step.ok)
        fail_line(f"demo step '{failed.name}' failed: {failed.detail}")
        raise typer.Exit(1)
    if not cfg.json:
        total = sum(step.seconds for step in result.steps)
        console.print(f"demo done in {total:.0f}s; the report: {result.report}")
