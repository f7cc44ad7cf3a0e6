"""``lepton-ops telemetry``: collect node telemetry through Ansible, show, export and prune it."""

from __future__ import annotations

import difflib
import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from lepton_ops.cli import telemetry_pull
from lepton_ops.cli.lazy import sub_app
from lepton_ops.cli.options import LimitOpt, require_inventory, with_settings
from lepton_ops.cli.render import console, iso_time, print_json
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.settings import Settings
from lepton_ops.telemetry import (
    METRICS,
    HistoryStore,
    IncidentRecord,
    NodeStatus,
    Series,
    format_duration,
    history_path,
    parse_duration,
)
from lepton_ops.telemetry.collect import SSH_CONNECT_TIMEOUT_S, TASK_TIMEOUT_S, collect
from lepton_ops.telemetry.summary import Level, NodeSummary, summarize, summary_from_latest

app = sub_app(
    "Telemetry: sample every node through Ansible (lepton.ops.telemetry), keep the "
    "samples in the controller's store, show, export and prune them."
)
telemetry_pull.register(app)


class ExportFormat(StrEnum):
    CSV = "csv"
    PROMETHEUS = "prometheus"


_LEVEL_STYLE = {
    Level.OK: "green",
    Level.WARN: "yellow",
    Level.BAD: "bold red",
    Level.UNKNOWN: "dim",
}
NO_TELEMETRY = (
    "no telemetry yet: sample the fleet with 'lepton-ops telemetry collect' (through "
    "Ansible) or 'lepton-ops telemetry pull' (the services' metrics over HTTP)"
)
#: Incidents listed under ``show``'s table (all of them with --json).
_SHOWN_INCIDENTS = 20

NodeOpt = Annotated[
    str | None, typer.Option("--node", "-n", help="Only this node.", show_default=False)
]
MetricOpt = Annotated[
    str | None,
    typer.Option(
        "--metric",
        "-m",
        help="Only this metric (e.g. lepton_node_cpu_util_pct).",
        show_default=False,
    ),
]


_COLLECT_HELP = f"""Sample every node (CPU, memory, disks, latency, service health); store it.

Every node is sampled at once (lepton.ops.telemetry, one fork per node). A node that
cannot be reached is recorded as unreachable (lepton_node_reachable = 0 and an incident)
after at most about {TASK_TIMEOUT_S} s (ssh connect timeout {SSH_CONNECT_TIMEOUT_S} s, task
timeout {TASK_TIMEOUT_S} s), and never stops the others. Exit 0 when the collection was
stored, also with unreachable nodes (listed on stderr); exit 1 when no node answered.
"""


@app.command("collect", help=_COLLECT_HELP)
@with_settings
def collect_command(
    cfg: Settings,
    limit: LimitOpt = None,
) -> None:
    source = require_inventory(cfg)
    cfg.ensure_state_dir()
    result = collect(
        source,
        cfg.state_dir,
        limit=limit,
        verbosity=cfg.verbose,
        console=None if cfg.json else console,
    )
    if cfg.json:
        print_json(result.to_dict())
    else:
        console.print(_summary_table([summarize(o) for o in result.outcomes], "telemetry"))
        record = result.record
        console.print(
            f"collection {record.id}: {len(result.outcomes)} nodes, "
            f"{len(result.answered)} answered, {len(result.unreachable)} unreachable, "
            f"{record.samples} samples, {record.incidents} incidents in "
            f"{result.duration_s:.1f} s",
            highlight=False,
        )
    if not result.unreachable:
        return
    details = "; ".join(
        f"{o.node} ({o.error})" for o in result.outcomes if o.status is NodeStatus.UNREACHABLE
    )
    if not result.answered:
        raise OperationFailed(
            f"no node answered (collection {result.record.id} recorded them as unreachable): "
            f"{details}"
        )
    _warn(f"{len(result.unreachable)} of {len(result.outcomes)} nodes unreachable: {details}")


@app.command("show")
@with_settings
def show_command(
    cfg: Settings,
    node: NodeOpt = None,
    since: Annotated[str, typer.Option("--since", help="How far back: 90s, 10m, 1h, 7d...")] = "1h",
    metric: MetricOpt = None,
) -> None:
    """Stored telemetry: each node's last values and recent incidents, or one metric's series.

    Without --metric, one row per node with the values of its last collection, then the
    incidents of the window. With --metric, one row per series of that metric with its
    points in the window. --json: every point of every matching series, and the incidents.
    """
    window = parse_duration(since)
    start = time.time() - window
    with _open_store(cfg, read_only=True) as store:
        _check_filters(store, node, metric)
        wants_series = cfg.json or metric is not None
        series = store.series(node=node, metric=metric, since=start) if wants_series else []
        incidents = store.incidents(node=node, since=start)
        latest = store.latest(node=node, since=start) if metric is None else []
        empty = not store.nodes()
    if cfg.json:
        print_json(
            {
                "since": start,
                "node": node,
                "metric": metric,
                "series": [_series_dict(entry) for entry in series],
                "incidents": [_incident_dict(incident) for incident in incidents],
            }
        )
        return
    span = format_duration(window)
    if empty:
        console.print(NO_TELEMETRY, highlight=False)
        return
    if not series and not latest and not incidents:
        console.print(
            f"no telemetry in the last {span}: widen --since, or collect fresh samples with "
            "'lepton-ops telemetry collect'",
            highlight=False,
        )
        return
    if metric is not None:
        console.print(_series_table(series, f"{metric}, last {span}"))
        return
    nodes = sorted({row.node for row in latest}, key=_natural)
    summaries = [summary_from_latest(name, latest) for name in nodes]
    console.print(_summary_table(summaries, f"telemetry: last values, last {span}"))
    console.print(_incident_table(incidents, span))


@app.command("export")
@with_settings
def export_command(
    cfg: Settings,
    format_: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="csv: every point (ts,time,node,metric,labels,value); prometheus: the latest "
            "value of each series as text exposition.",
            show_default=False,
        ),
    ],
    node: NodeOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only points (prometheus: series updated) this recent: 10m, 1d...",
            show_default=False,
        ),
    ] = None,
    metric: MetricOpt = None,
) -> None:
    """Write the stored telemetry to stdout as CSV or Prometheus text exposition."""
    if cfg.json:
        raise BadInput(
            f"--json does not apply to export (it writes {format_.value} to stdout): "
            "leave --json out"
        )
    start = time.time() - parse_duration(since) if since is not None else None
    with _open_store(cfg, read_only=True) as store:
        _check_filters(store, node, metric)
        if format_ is ExportFormat.CSV:
            store.export_csv(sys.stdout, node=node, metric=metric, since=start)
        else:
            store.export_prometheus(sys.stdout, node=node, metric=metric, since=start)
    sys.stdout.flush()


@app.command("prune")
@with_settings
def prune_command(
    cfg: Settings,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Remove samples, incidents and collections older than this (e.g. 30d).",
            show_default=False,
        ),
    ],
) -> None:
    """Remove old telemetry, and the series and nodes left without samples."""
    age = parse_duration(older_than)
    with _open_store(cfg) as store:
        counts = store.prune(age)
    data = {
        "older_than_s": age,
        "samples": counts.samples,
        "series": counts.series,
        "nodes": counts.nodes,
        "incidents": counts.incidents,
        "collections": counts.collections,
    }
    if cfg.json:
        print_json(data)
        return
    console.print(
        f"pruned telemetry older than {format_duration(age)}: {counts.samples} samples, "
        f"{counts.series} series, {counts.nodes} nodes, {counts.incidents} incidents, "
        f"{counts.collections} collections",
        highlight=False,
    )


# --------------------------------------------------------------------------- helpers


def _open_store(cfg: Settings, *, read_only: bool = False) -> HistoryStore:
    if read_only:  # a store that does not exist yet reads as empty, and is not created
        return HistoryStore(history_path(cfg.state_dir), read_only=True)
    cfg.ensure_state_dir()
    return HistoryStore(history_path(cfg.state_dir))


def _check_filters(store: HistoryStore, node: str | None, metric: str | None) -> None:
    if node is not None:
        known = store.nodes()
        if node not in known:
            listed = ", ".join(known) if known else "none yet: run 'lepton-ops telemetry collect'"
            raise BadInput(f"no telemetry for node {node!r} (nodes in the store: {listed})")
    if metric is not None and metric not in METRICS and metric not in store.metrics():
        close = difflib.get_close_matches(metric, list(METRICS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise BadInput(f"unknown metric {metric!r}{hint}")


def _warn(message: str) -> None:
    sys.stderr.write(f"lepton-ops: warning: {message}\n")
    sys.stderr.flush()


def _natural(name: str) -> tuple[str, int, str]:
    digits = name.rstrip("0123456789")
    number = name[len(digits) :]
    return (digits, int(number) if number else -1, name)


def _cell(summary: NodeSummary, field: str, text: str) -> Text:
    return Text(text, style=_LEVEL_STYLE[summary.level(field)])


def _number(value: float | None, template: str = "{:.1f}") -> str:
    return "-" if value is None else template.format(value)


def _summary_table(summaries: list[NodeSummary], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("node", no_wrap=True)
    table.add_column("up", no_wrap=True)
    for column in ("cpu%", "mem%", "disk%", "lat ms", "loss"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("health", overflow="fold")
    table.add_column("notes", overflow="fold", min_width=12, ratio=1)
    for summary in summaries:
        table.add_row(
            summary.node,
            _reachable(summary),
            _cell(summary, "cpu_pct", _number(summary.cpu_pct)),
            _cell(summary, "mem_pct", _number(summary.mem_pct)),
            _cell(summary, "disk_pct", _number(summary.disk_pct)),
            _cell(summary, "latency_ms", _number(summary.latency_ms, "{:.2f}")),
            _cell(summary, "loss", _number(summary.loss, "{:.0%}")),
            _health(summary),
            _notes(summary),
        )
    return table


def _reachable(summary: NodeSummary) -> Text:
    if summary.status is NodeStatus.UNREACHABLE:
        return Text("no", style="bold red")
    if summary.status is NodeStatus.INVALID:
        return Text("bad facts", style="yellow")
    return Text("yes", style="green")


def _health(summary: NodeSummary) -> Text:
    if not summary.services:
        return Text("-", style="dim")
    text = Text()
    for index, service in enumerate(summary.services):
        if index:
            text.append(", ")
        name = service.name.removeprefix("lepton-")
        if service.healthy:
            text.append(f"{name} ok", style="green")
        else:
            state = "down" if not service.running else "unhealthy"
            text.append(f"{name} {state}", style="bold red")
    return text


def _notes(summary: NodeSummary) -> Text:
    if summary.error:
        return Text(summary.error, style="red")
    notes = []
    if summary.level("disk_pct") in (Level.WARN, Level.BAD) and summary.disk_path:
        notes.append(f"fullest: {summary.disk_path}")
    if summary.latency_target and summary.level("latency_ms") in (Level.WARN, Level.BAD):
        notes.append(f"slowest: {summary.latency_target}")
    if summary.unreached_targets:
        notes.append(f"cannot reach {', '.join(summary.unreached_targets)}")
    if summary.fact_errors:
        notes.append(f"{summary.fact_errors} values unreadable")
    return Text("; ".join(notes), style="dim")


def _series_table(series: list[Series], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("node")
    table.add_column("labels")
    for column in ("points", "min", "mean", "max", "last"):
        table.add_column(column, justify="right")
    table.add_column("last at")
    for entry in series:
        values = [value for _, value in entry.points]
        last_ts, last = entry.points[-1]
        table.add_row(
            entry.node,
            ",".join(f"{key}={value}" for key, value in sorted(entry.labels.items())) or "-",
            str(len(values)),
            f"{min(values):.6g}",
            f"{sum(values) / len(values):.6g}",
            f"{max(values):.6g}",
            f"{last:.6g}",
            _clock(last_ts),
        )
    return table


def _incident_table(incidents: list[IncidentRecord], span: str) -> Table:
    shown = incidents[-_SHOWN_INCIDENTS:]
    more = f" (last {len(shown)} shown)" if len(shown) < len(incidents) else ""
    table = Table(title=f"{len(incidents)} incidents, last {span}{more}", title_justify="left")
    for column in ("time", "node", "kind", "detail"):
        table.add_column(column, overflow="fold" if column == "detail" else "ellipsis")
    for incident in shown:
        table.add_row(
            _clock(incident.ts),
            incident.node,
            Text(incident.kind, style="red"),
            Text(incident.detail),
        )
    return table


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _series_dict(series: Series) -> dict[str, Any]:
    return {
        "node": series.node,
        "metric": series.metric,
        "labels": series.labels,
        "points": [[iso_time(ts), value] for ts, value in series.points],
    }


def _incident_dict(incident: IncidentRecord) -> dict[str, Any]:
    return {
        "id": incident.id,
        "node": incident.node,
        "kind": incident.kind,
        "subject": incident.subject,
        "detail": incident.detail,
        "ts": incident.ts,
        "collection_id": incident.collection_id,
    }
