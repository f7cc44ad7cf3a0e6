"""``lepton-ops job``: plan jobs over the fleet's workers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from lepton_ops.cli.options import (
    InventoryOpt,
    JsonOpt,
    StateDirOpt,
    VerboseOpt,
    require_inventory,
    settings,
)
from lepton_ops.cli.render import console, print_json
from lepton_ops.jobs.fleet import plan_inventory
from lepton_ops.jobs.planner import Plan, Strategy

app = typer.Typer(
    help="Jobs: split tasks over the workers in proportion to their weights.",
    no_args_is_help=True,
)


@app.command("plan")
def plan_command(
    ctx: typer.Context,
    tasks: Annotated[
        int, typer.Option("--tasks", "-n", help="How many tasks the job has.", show_default=False)
    ],
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="weighted: tasks in proportion to lepton_weight (largest remainder); "
            "equal: the naive N / nodes split, for comparison.",
        ),
    ] = Strategy.WEIGHTED.value,
    task_ms: Annotated[
        float,
        typer.Option(
            "--task-ms",
            help="Milliseconds one task takes on a speed-1 node (a node's speed is "
            "lepton_speed, else its weight over the smallest weight).",
        ),
    ] = 20.0,
    shard_size: Annotated[
        int | None,
        typer.Option(
            "--shard-size",
            help="Tasks per shard. Default: about 4 shards per worker, 1 to 1000 tasks each.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        str | None, typer.Option("--limit", "-l", help="Only these hosts (an Ansible pattern).")
    ] = None,
    inventory: InventoryOpt = None,
    state_dir: StateDirOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Show how a job's tasks would be split over the workers, and how long it should take."""
    cfg = settings(ctx, inventory, state_dir, json_output, verbose)
    source = require_inventory(cfg)
    plan = plan_inventory(
        source,
        tasks,
        limit=limit,
        strategy=strategy,
        task_s=task_ms / 1000.0,
        shard_size=shard_size,
    )
    if cfg.json:
        print_json(plan.to_dict())
        return
    _show(plan, verbose=cfg.verbose)


def _show(plan: Plan, *, verbose: int) -> None:
    table = Table(
        title=f"job plan: {plan.tasks} tasks, {plan.strategy.value}, "
        f"{len(plan.shards)} shards of up to {plan.shard_size}",
        title_justify="left",
    )
    table.add_column("node")
    table.add_column("weight", justify="right")
    table.add_column("speed", justify="right")
    table.add_column("load share", justify="right")
    table.add_column("tasks", justify="right")
    table.add_column("shards", justify="right")
    table.add_column("predicted s", justify="right")
    if verbose:
        table.add_column("task ranges")
    for node in plan.nodes:
        row = [
            node.name,
            str(node.weight),
            f"{node.speed:g}",
            f"{node.load_share:.2%}",
            str(node.tasks),
            str(len(node.shards)),
            f"{node.predicted_s:.3f}",
        ]
        if verbose:
            row.append(_ranges(plan, node.name))
        table.add_row(*row)
    total = [
        "total",
        str(plan.total_weight),
        f"{sum(node.speed for node in plan.nodes if node.weight > 0):g}",
        "100.00%" if plan.total_weight else "-",
        str(sum(node.tasks for node in plan.nodes)),
        str(len(plan.shards)),
        f"{plan.makespan_s:.3f}",
    ]
    if verbose:
        total.append("")
    table.add_section()
    table.add_row(*total, style="bold")
    console.print(table)
    ideal = plan.ideal_makespan_s
    ratio = f" ({plan.makespan_s / ideal:.3f}x ideal)" if ideal > 0 else ""
    console.print(
        f"predicted makespan {plan.makespan_s:.3f} s{ratio}; "
        f"ideal {ideal:.3f} s (all tasks spread by speed, {plan.task_s * 1000:g} ms per task "
        f"at speed 1)"
    )


def _ranges(plan: Plan, node: str) -> str:
    shards = plan.shards_of(node)
    if not shards:
        return "-"
    return f"[{shards[0].start}, {shards[-1].stop})"
