"""``remediate``, ``cycle``, ``watch``, ``audit``, ``uncordon`` and ``schedule``."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from lepton_ops.cli.lazy import sub_app
from lepton_ops.cli.options import require_inventory, with_settings
from lepton_ops.cli.render import console, err_console, print_json
from lepton_ops.errors import LeptonError, OperationFailed
from lepton_ops.remediate import schedule as schedule_files
from lepton_ops.remediate.loop import CycleResult, cycle, watch
from lepton_ops.remediate.policy import PolicyConfig
from lepton_ops.remediate.run import RemediationPass, remediate_once, uncordon
from lepton_ops.settings import Settings
from lepton_ops.telemetry.durations import parse_duration
from lepton_ops.telemetry.history import HistoryStore, history_path

schedule_app = sub_app("Run 'lepton-ops cycle' on a schedule (a systemd timer, or cron).")

ThresholdOpt = Annotated[
    float, typer.Option("--threshold", min=0.01, max=1.0, help="Act at this risk or above.")
]
MaxOpt = Annotated[
    int, typer.Option("--max-concurrent", min=1, help="Nodes under remediation at once at most.")
]
CooldownOpt = Annotated[
    str, typer.Option("--cooldown", help="No action on a node this soon again.")
]
AttemptsOpt = Annotated[
    int, typer.Option("--max-attempts", min=1, max=4, help="Cordon after this many attempts.")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]


def _config(threshold: float, max_concurrent: int, cooldown: str, attempts: int) -> PolicyConfig:
    # No cooldown at all is a choice an operator may make (tests, a drill): 0 is allowed.
    cooldown_s = 0.0 if cooldown.strip() in {"0", "0s"} else parse_duration(cooldown)
    return PolicyConfig(
        risk_threshold=threshold,
        cooldown_s=cooldown_s,
        max_attempts=attempts,
        max_concurrent=max_concurrent,
    )


@with_settings
def remediate_command(
    cfg: Settings,
    dry_run: DryRunOpt = False,
    threshold: ThresholdOpt = 0.5,
    max_concurrent: MaxOpt = 1,
    cooldown: CooldownOpt = "60s",
    max_attempts: AttemptsOpt = 3,
) -> None:
    """Predict, choose actions with the policy, run them, verify them, audit them."""
    inventory = require_inventory(cfg)
    result = remediate_once(
        cfg.state_dir, inventory, _config(threshold, max_concurrent, cooldown, max_attempts),
        dry_run=dry_run, verbosity=cfg.verbose,
    )  # fmt: skip
    _show_pass(result, cfg.json)
    if not result.ok:
        raise typer.Exit(1)


@with_settings
def cycle_command(
    cfg: Settings,
    dry_run: DryRunOpt = False,
    threshold: ThresholdOpt = 0.5,
    max_concurrent: MaxOpt = 1,
    cooldown: CooldownOpt = "60s",
    max_attempts: AttemptsOpt = 3,
) -> None:
    """One pass of the loop: collect telemetry, predict, remediate (what a schedule runs)."""
    inventory = require_inventory(cfg)
    result = cycle(
        cfg.state_dir, inventory, _config(threshold, max_concurrent, cooldown, max_attempts),
        dry_run=dry_run, verbosity=cfg.verbose,
    )  # fmt: skip
    if cfg.json:
        print_json(result.to_dict())
    else:
        _show_cycle(result)
    if not result.remediation.ok:
        raise typer.Exit(1)


@with_settings
def watch_command(
    cfg: Settings,
    interval: Annotated[str, typer.Option("--interval", help="Time between cycles.")] = "10s",
    threshold: ThresholdOpt = 0.5,
    max_concurrent: MaxOpt = 1,
    cooldown: CooldownOpt = "60s",
    max_attempts: AttemptsOpt = 3,
    cycles: Annotated[
        int | None, typer.Option("--cycles", min=1, help="Stop after this many cycles.")
    ] = None,
) -> None:
    """Cycle every --interval (at once when a service stops answering) until SIGTERM/Ctrl-C."""
    inventory = require_inventory(cfg)
    config = _config(threshold, max_concurrent, cooldown, max_attempts)

    def shown(result: CycleResult) -> None:
        if cfg.json:
            print_json(result.to_dict())
        else:
            _show_cycle(result)

    def failed(exc: LeptonError) -> None:
        err_console.print(f"[yellow]cycle failed:[/yellow] {exc}")

    count = watch(
        cfg.state_dir, inventory, config, parse_duration(interval), on_cycle=shown,
        on_error=failed, max_cycles=cycles, verbosity=cfg.verbose,
    )  # fmt: skip
    if not cfg.json:
        console.print(f"watch stopped after {count} cycles")


@with_settings
def audit_command(
    cfg: Settings,
    node: Annotated[
        str | None, typer.Option("--node", "-n", help="Only this node.", show_default=False)
    ] = None,
    since: Annotated[str, typer.Option("--since", help="How far back (e.g. 1h, 7d).")] = "24h",
) -> None:
    """The remediation audit log: every action, its trigger, outcome and evidence."""
    window = time.time() - parse_duration(since)
    with HistoryStore(history_path(cfg.state_dir), read_only=True) as store:
        records = store.remediations(node=node, since=window)
    if cfg.json:
        print_json({"remediations": [record.to_dict() for record in records]})
        return
    if not records:
        whose = f" on {node}" if node else ""
        console.print(
            f"no remediation{whose} in the last {since}: actions appear here once "
            "'lepton-ops remediate', 'cycle', 'watch' or a schedule acts on a node at risk "
            "(try 'lepton-ops remediate --dry-run' to see what it would do now)",
            highlight=False,
        )
        return
    table = Table(title=f"remediations since {since} ago")
    for column in ("id", "node", "action", "trigger", "started", "took", "outcome", "reason"):
        table.add_column(column)
    for record in records:
        took = (
            "running"
            if record.finished_at is None
            else f"{record.finished_at - record.started_at:.1f}s"
        )
        table.add_row(
            str(record.id), record.node, record.action, record.trigger,
            time.strftime("%H:%M:%S", time.localtime(record.started_at)), took,
            record.outcome or "-", record.reason[:60],
        )  # fmt: skip
    console.print(table)


@with_settings
def uncordon_command(
    cfg: Settings, node: Annotated[str, typer.Argument(help="The cordoned node.")]
) -> None:
    """Lift a cordon: the node takes shards again and the policy may act on it again."""
    outcome = uncordon(cfg.state_dir, require_inventory(cfg), node)
    if cfg.json:
        print_json({"node": node, "ok": outcome.ok, "detail": outcome.detail})
    else:
        console.print(
            f"{node}: {'uncordoned' if outcome.ok else 'NOT uncordoned'} ({outcome.detail})"
        )
    if not outcome.ok:
        raise OperationFailed(f"uncordoning {node} failed: {outcome.detail}")


@schedule_app.command("install")
@with_settings
def schedule_install(
    cfg: Settings,
    every: Annotated[str, typer.Option("--every", help="How often (e.g. 5m).")] = "5m",
) -> None:
    """Run 'lepton-ops cycle' every --every."""
    cfg.ensure_state_dir()
    inventory = cfg.inventory.expanduser().resolve() if cfg.inventory else None
    _show_schedule(schedule_files.install(cfg.state_dir, inventory, parse_duration(every)), cfg)


@schedule_app.command("remove")
@with_settings
def schedule_remove(cfg: Settings) -> None:
    """Remove the schedule."""
    _show_schedule(schedule_files.remove(), cfg)


@schedule_app.command("status")
@with_settings
def schedule_status(cfg: Settings) -> None:
    """Whether a schedule is installed, where, how often, and what it runs."""
    _show_schedule(schedule_files.status(), cfg)


def _show_schedule(found: schedule_files.ScheduleStatus, cfg: Settings) -> None:
    if cfg.json:
        print_json(found.to_dict())
        return
    if not found.installed:
        console.print(f"no schedule ({found.kind}: {found.where})")
    else:
        console.print(f"every {found.every_s}s via {found.kind} ({found.where}): {found.command}")
    if found.note:
        console.print(f"[yellow]note:[/yellow] {found.note}")


def _show_pass(result: RemediationPass, json_output: bool) -> None:
    if json_output:
        print_json(result.to_dict())
        return
    if not result.model:
        console.print("[yellow]no trained model: acting only on nodes failing now[/yellow]")
    if not result.plan.decisions:
        console.print("no node at risk: nothing to do")
        return
    table = Table(title="remediation plan (dry run)" if result.dry_run else "remediation")
    for column in ("node", "risk", "action", "reason", "outcome"):
        table.add_column(column)
    outcomes = {r.decision.node: f"{r.outcome} ({r.seconds:.1f}s)" for r in result.results}
    for decision in result.plan.decisions:
        table.add_row(
            decision.node,
            "-" if decision.risk is None else f"{decision.risk:.2f}",
            decision.action.value if decision.action else "none",
            decision.reason,
            outcomes.get(decision.node, "-"),
        )
    console.print(table)


def _show_cycle(result: CycleResult) -> None:
    record = result.collection.record
    console.print(
        f"cycle: {record.nodes_ok} nodes sampled, {record.nodes_failed} failed, "
        f"{len(result.remediation.results)} actions in {result.seconds:.1f}s"
    )
    _show_pass(result.remediation, False)
