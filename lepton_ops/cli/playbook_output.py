"""Rendering a playbook run's per-host results, and the exit code that follows from them."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from lepton_ops.cli.render import console, fail_line, print_json
from lepton_ops.gateway import HostStatus, PlaybookResult
from lepton_ops.settings import Settings

_STYLE = {
    HostStatus.OK: "green",
    HostStatus.CHANGED: "yellow",
    HostStatus.SKIPPED: "dim",
    HostStatus.FAILED: "red",
    HostStatus.UNREACHABLE: "red",
}


def finish_playbook(
    result: PlaybookResult, cfg: Settings, extra: dict[str, Any] | None = None
) -> None:
    """Print the results (table or JSON); exit 1 with one line if any host failed."""
    if cfg.json:
        print_json(extra if extra is not None else result.to_dict())
    else:
        console.print(host_table(result))
        mode = " (check mode: nothing was changed)" if result.check else ""
        console.print(
            f"{result.playbook}: {_summary_text(result)} in {result.duration_s:.1f}s{mode}"
        )
    if not result.succeeded:
        fail_line(failure_line(result))
        raise typer.Exit(1)


def host_table(result: PlaybookResult) -> Table:
    table = Table(title=f"{result.playbook}: per host")
    for column in ("host", "status", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="left" if column in ("host", "status") else "right")
    for host in result.hosts.values():
        style = _STYLE[host.status]
        table.add_row(
            host.host,
            f"[{style}]{host.status.value}[/{style}]",
            str(host.ok),
            str(host.changed),
            str(host.failed),
            str(host.unreachable),
            str(host.skipped),
        )
    return table


def failure_line(result: PlaybookResult) -> str:
    parts = []
    for host in result.hosts.values():
        if host.status in (HostStatus.FAILED, HostStatus.UNREACHABLE):
            detail = host.messages[0] if host.messages else host.status.value
            parts.append(f"{host.host} {host.status.value} ({detail})")
    if not parts:
        if result.error:
            return f"{result.playbook} failed: {result.error}"
        return (
            f"{result.playbook} failed (ansible-playbook exit code {result.rc}); "
            f"see {result.artifacts}"
        )
    return f"{result.playbook} failed on {len(parts)} host(s): " + "; ".join(parts)


def _summary_text(result: PlaybookResult) -> str:
    counts = result.summary()
    return ", ".join(f"{count} {status}" for status, count in counts.items() if count)
