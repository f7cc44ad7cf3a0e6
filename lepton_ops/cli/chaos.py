"""``lepton-ops chaos``: real faults on the lab's nodes (inject, stop, status, campaign)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from lepton_ops.chaos import Chaos, FaultKind, FaultSpec
from lepton_ops.chaos.campaign import run_campaign
from lepton_ops.chaos.faults import parse_rate
from lepton_ops.cli.lazy import sub_app
from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, print_json
from lepton_ops.errors import OperationFailed
from lepton_ops.settings import Settings
from lepton_ops.telemetry.durations import parse_duration
from lepton_ops.telemetry.records import FaultRecord

app = sub_app(
    "Chaos on the lab: kill, hang, memleak, cpuhog, diskfill and partition faults that end "
    "in real failures, recorded in the telemetry store as the predictor's labels."
)


@app.command("inject")
@with_settings
def inject_command(
    cfg: Settings,
    node: Annotated[str, typer.Argument(help="Lab node, e.g. node2.")],
    fault: Annotated[FaultKind, typer.Argument(help="The fault.")],
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="How long it may run (e.g. 60s, 5m). Default per fault."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option("--rate", help="memleak/diskfill growth, e.g. 4MiB/s (default 4 / 1 MiB/s)."),
    ] = None,
    processes: Annotated[
        int | None, typer.Option("--processes", help="cpuhog: busy processes (default 1).")
    ] = None,
) -> None:
    """Start FAULT on NODE; it ends by itself (at the failure, or after the duration)."""
    spec = FaultSpec.of(
        fault,
        duration_s=parse_duration(duration) if duration is not None else None,
        rate_bytes_s=parse_rate(rate) if rate is not None else None,
        processes=processes,
    )
    records = Chaos(cfg.state_dir, verbosity=cfg.verbose).inject({node: spec})
    _show(records, cfg.json, "chaos inject")
    if any(record.outcome == "error" for record in records):
        raise OperationFailed(f"{fault.value} on {node} did not start: {records[0].detail}")


@app.command("stop")
@with_settings
def stop_command(
    cfg: Settings,
    nodes: Annotated[
        list[str] | None, typer.Argument(help="Nodes to stop faults on (default all).")
    ] = None,
) -> None:
    """Stop and undo running faults (all nodes unless some are named)."""
    records = Chaos(cfg.state_dir, verbosity=cfg.verbose).stop(nodes or None)
    _show(records, cfg.json, "chaos stop")


@app.command("status")
@with_settings
def status_command(
    cfg: Settings,
    since: Annotated[
        str, typer.Option("--since", help="Show faults started in this window (e.g. 1h).")
    ] = "1h",
) -> None:
    """Bring the nodes' fault records into the store and show them."""
    chaos = Chaos(cfg.state_dir, verbosity=cfg.verbose)
    chaos.sync()
    with chaos.store() as store:
        records = store.faults(since=time.time() - parse_duration(since))
    _show(records, cfg.json, "chaos status")


@app.command("campaign")
@with_settings
def campaign_command(
    cfg: Settings,
    runs: Annotated[int, typer.Option("--runs", min=1, max=500, help="Faults to inject.")] = 40,
    interval: Annotated[
        str, typer.Option("--interval", help="Telemetry sampling interval.")
    ] = "4s",
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the schedule.")] = None,
) -> None:
    """Run faults in rounds across the lab with telemetry sampled all along: a labelled data set."""
    interval_s = parse_duration(interval)
    result = run_campaign(
        cfg.state_dir,
        runs,
        interval_s=interval_s,
        seed=seed,
        on_progress=None if cfg.json else console.print,
    )
    if cfg.json:
        print_json(result.to_dict())
        return
    summary = result.to_dict()
    console.print(
        f"{result.campaign}: {summary['faults']} faults, {summary['incidents']} ended in a "
        f"failure, {result.collections} telemetry collections in {result.seconds:.0f}s"
    )
    _show(result.faults, False, "campaign")


def _show(records: list[FaultRecord], json_output: bool, title: str) -> None:
    if json_output:
        print_json({"faults": [record.to_dict() for record in records]})
        return
    table = Table(title=title)
    for column in ("id", "node", "fault", "started", "failed after", "outcome", "detail"):
        table.add_column(column)
    for record in records:
        failed = (
            f"{record.failed_at - record.started_at:.1f}s" if record.failed_at is not None else "-"
        )
        table.add_row(
            str(record.id),
            record.node,
            record.fault,
            time.strftime("%H:%M:%S", time.localtime(record.started_at)),
            failed,
            record.outcome or "running",
            (record.failure or record.detail or "")[:70],
        )
    console.print(table)
