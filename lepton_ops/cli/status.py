"""``lepton-ops status``: the fleet on one screen, once or refreshed in place (``--watch``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from lepton_ops.cli.options import require_inventory, with_settings
from lepton_ops.cli.render import console, human_seconds, print_json
from lepton_ops.settings import Settings
from lepton_ops.telemetry.durations import parse_duration

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lepton_ops.fleet_status import FleetStatus, NodeState


@with_settings
def status_command(
    cfg: Settings,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh in place until Ctrl-C.")
    ] = False,
    interval: Annotated[
        str,
        typer.Option(
            "--interval", metavar="DURATION", help="With --watch: time between refreshes."
        ),
    ] = "2s",
) -> None:
    """Each node's health, weight, drain or cordon, risk (with the feature behind it) and
    last remediation, on one screen.

    Health is each service's /healthz asked now (0.5 s timeout); "seen" is the node's last
    telemetry sample. Risk comes from the current model, if there is one. --json prints
    the same as one JSON document (with --watch, one line per refresh).
    """
    from lepton_ops.fleet_status import fleet_status

    every = parse_duration(interval)
    inventory = require_inventory(cfg)
    if not watch:
        found = fleet_status(cfg.state_dir, inventory)
        if cfg.json:
            print_json(found.to_dict())
        else:
            console.print(render(found))
        return
    if cfg.json:
        from lepton_ops.cli.render import json_text

        try:
            while True:
                print(json_text(fleet_status(cfg.state_dir, inventory).to_dict(), indent=None))
                time.sleep(every)
        except KeyboardInterrupt:
            return
    from rich.live import Live

    try:
        with Live(render(fleet_status(cfg.state_dir, inventory)), console=console) as live:
            while True:
                time.sleep(every)
                live.update(render(fleet_status(cfg.state_dir, inventory)))
    except KeyboardInterrupt:
        return


def render(found: FleetStatus) -> RenderableType:
    """The screen: a table of the nodes, then what could not be read."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    when = time.strftime("%H:%M:%S", time.localtime(found.at))
    model = f"model {found.model}" if found.model else "no model"
    table = Table(
        title=f"fleet status {when} ({len(found.nodes)} nodes, {model})", title_justify="left"
    )
    for column in ("node", "weight", "health", "seen", "drain", "risk", "last remediation"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for node in found.nodes:
        table.add_row(
            Text(node.name, style="bold"),
            str(node.weight),
            _health(node),
            _seen(node, found.at),
            _drain(node),
            _risk(node),
            _last_action(node, found.at),
        )
    notes = [Text(f"note: {note}", style="dim") for note in found.notes]
    return Group(table, *notes)


def _health(node: NodeState) -> RenderableType:
    from rich.text import Text

    if node.healthy is None:
        return Text("no service", style="dim")
    if node.healthy:
        return Text("ok", style="green")
    down = ", ".join(s.service.removeprefix("lepton-") for s in node.services if not s.healthy)
    return Text(f"DOWN: {down}", style="bold red")


def _seen(node: NodeState, now: float) -> RenderableType:
    from rich.text import Text

    if node.last_seen_at is None:
        return Text("never", style="dim")
    ago = f"{human_seconds(max(0.0, now - node.last_seen_at))} ago"
    return Text(ago) if node.reachable else Text(f"unreachable {ago}", style="red")


def _drain(node: NodeState) -> RenderableType:
    from rich.text import Text

    if node.cordoned:
        return Text("CORDONED", style="bold red")
    if node.drained is None:
        return Text("?", style="dim")
    return Text("drained", style="yellow") if node.drained else Text("-", style="dim")


def _risk(node: NodeState) -> RenderableType:
    from rich.text import Text

    risk = node.risk
    if risk is None:
        return Text("-", style="dim")
    if risk.stale:
        return Text("stale data", style="yellow")
    value = "-" if risk.value is None else f"{risk.value:.2f}"
    why = f" ({risk.top_feature})" if risk.top_feature else ""
    return Text(f"{value}{why}", style="bold red" if risk.at_risk else "green")


def _last_action(node: NodeState, now: float) -> RenderableType:
    from rich.text import Text

    action = node.last_action
    if action is None:
        return Text("-", style="dim")
    outcome = action.outcome or "in progress"
    ago = human_seconds(max(0.0, now - action.started_at))
    return Text(f"{action.action} {outcome}, {ago} ago")
