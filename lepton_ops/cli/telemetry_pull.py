"""``lepton-ops telemetry pull``: the services' metrics over HTTP, once or every N seconds.

:func:`register` adds the command to the ``telemetry`` sub-app (``lepton_ops.cli.telemetry``).
"""

from __future__ import annotations

import math
import sys
import time
from enum import StrEnum
from typing import Annotated, Protocol

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from lepton_ops.cli.options import LimitOpt, require_inventory, with_settings
from lepton_ops.cli.render import console, json_text, print_json
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.settings import Settings
from lepton_ops.telemetry import parse_duration
from lepton_ops.telemetry.prometheus_source import (
    DEFAULT_STEP_S,
    DEFAULT_WINDOW_S,
    check_url,
    check_window,
    open_prometheus_source,
)
from lepton_ops.telemetry.pull import (
    DEFAULT_TIMEOUT_S,
    PullResult,
    ServiceReading,
    check_timeout,
    open_puller,
    watch,
)


class Source(StrEnum):
    SERVICES = "services"
    PROMETHEUS = "prometheus"


_HELP = f"""Read the services' metrics over HTTP (no Ansible) and store them; --watch repeats.

--source services (the default) asks every worker (port 8701, hosts of 'workers') and
the aggregator (port 8700) for its /metrics at once, with the controller's token: up,
scrape time, process RSS, requests, request seconds, errors, shards. A service that does
not answer within --timeout is stored as down (lepton_service_up = 0) with an incident;
the others are stored all the same.

--source prometheus --prometheus-url URL reads the same series from a Prometheus server
that scrapes the services (its query_range API), over the last --window (default
{DEFAULT_WINDOW_S / 60:g}m, one point per --step, default {DEFAULT_STEP_S:g}s).

--watch INTERVAL samples every INTERVAL (5s, 1m...) until Ctrl-C (exit 0), printing a
table each time (--json: one JSON line per sample). Exit 0 when the sample was stored,
also with services down; 1 when it could not be (Prometheus not answering); 2 for bad
options.
"""


class Sampler(Protocol):
    def sample(self) -> PullResult: ...

    def close(self) -> None: ...


def register(app: typer.Typer) -> None:
    """Add ``pull`` to the ``telemetry`` sub-app."""
    app.command("pull", help=_HELP)(pull_command)


@with_settings
def pull_command(
    cfg: Settings,
    source: Annotated[
        Source,
        typer.Option("--source", help="services: scrape them; prometheus: ask Prometheus."),
    ] = Source.SERVICES,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            help="The Prometheus server (with --source prometheus), e.g. http://prom:9090.",
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="With --source prometheus: how far back to read (30s, 5m, 1h...). Default 5m.",
            show_default=False,
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="With --source prometheus: one point per this long (15s, 1m...). Default 15s.",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--watch",
            help="Sample every INTERVAL until Ctrl-C: 5s, 1m... (a bare number is seconds).",
            metavar="INTERVAL",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds a service (or Prometheus) has to answer.")
    ] = DEFAULT_TIMEOUT_S,
    limit: LimitOpt = None,
) -> None:
    chosen = source.value
    watch_s = None if every is None else _interval(every)
    check_timeout(timeout)
    if chosen == "services":
        given = (("--prometheus-url", prometheus_url), ("--window", window), ("--step", step))
        for flag, value in given:
            if value is not None:
                raise BadInput(f"{flag} is only read with --source prometheus")
    window_s = parse_duration(window) if window is not None else DEFAULT_WINDOW_S
    step_s = parse_duration(step) if step is not None else DEFAULT_STEP_S
    if chosen == "prometheus":
        if not prometheus_url:
            raise BadInput("--source prometheus needs --prometheus-url URL")
        check_url(prometheus_url)
        check_window(window_s, step_s)
    inventory = require_inventory(cfg)
    cfg.ensure_state_dir()
    sampler: Sampler
    if chosen == "prometheus":
        assert prometheus_url is not None
        sampler = open_prometheus_source(
            prometheus_url,
            inventory,
            cfg.state_dir,
            limit=limit,
            window_s=window_s,
            step_s=step_s,
            timeout=timeout,
        )
    else:
        sampler = open_puller(inventory, cfg.state_dir, limit=limit, timeout=timeout)
    try:
        if watch_s is None:
            result = sampler.sample()
            if cfg.json:
                print_json(result.to_dict())
            else:
                show(result, verbose=cfg.verbose)
            return
        watch(
            sampler.sample,
            watch_s,
            lambda result: _show_watched(result, as_json=cfg.json, verbose=cfg.verbose),
            on_error=_sample_failed,
        )
    finally:
        sampler.close()


def _interval(text: str) -> float:
    """--watch's seconds: a duration (5s, 1m) or, as before units were accepted, a number."""
    try:
        seconds = float(text)
    except ValueError:
        return parse_duration(text)
    if not (math.isfinite(seconds) and seconds > 0):
        raise BadInput(f"--watch needs a number of seconds greater than 0, got {text}")
    return seconds


def _show_watched(result: PullResult, *, as_json: bool, verbose: int) -> None:
    if as_json:
        sys.stdout.write(json_text(result.to_dict(), indent=None) + "\n")
        sys.stdout.flush()
    else:
        show(result, verbose=verbose)


def _sample_failed(exc: OperationFailed) -> None:
    sys.stderr.write(f"lepton-ops: warning: sample failed (watch goes on): {exc}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- rendering


def show(result: PullResult, *, verbose: int = 0) -> None:
    """The sample as a compact table, one row per service, then why a service is down."""
    console.print(table(result))
    for reading in result.readings:
        if reading.error or verbose:
            name = f"{reading.target.node} {reading.target.service.removeprefix('lepton-')}"
            note = reading.error or f"up at {reading.target.url}"
            style = "dim" if reading.up is None or not reading.error else "red"
            console.print(Text(f"  {name}: {note}", style=style))


def table(result: PullResult) -> Table:
    when = time.strftime("%H:%M:%S", time.localtime(result.collection.finished_at))
    counts = f"{result.up}/{len(result.readings)} services up"
    if result.missing:
        counts += f", {result.missing} not in Prometheus"
    title = (
        f"{result.source} {when}: {counts}, {result.seconds * 1000:.0f} ms, "
        f"collection {result.collection.id} ({result.collection.samples} samples)"
    )
    grid = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    grid.add_column("node", no_wrap=True)
    grid.add_column("service", no_wrap=True)
    grid.add_column("up", no_wrap=True)
    for column in ("scrape ms", "RSS MiB", "requests", "errors", "5xx", "shards"):
        grid.add_column(column, justify="right", no_wrap=True)
    for reading in result.readings:
        grid.add_row(
            reading.target.node,
            reading.target.service.removeprefix("lepton-"),
            _up(reading),
            _value(reading, "lepton_service_scrape_ms", "{:.1f}"),
            _value(reading, "lepton_service_process_rss_bytes", "{:.1f}", 1 / 2**20),
            _value(reading, "lepton_service_requests_total", "{:.0f}"),
            _value(reading, "lepton_service_errors_total", "{:.0f}"),
            _value(reading, "lepton_service_server_errors_total", "{:.0f}"),
            _value(reading, "lepton_service_shards_done_total", "{:.0f}"),
        )
    return grid


def _up(reading: ServiceReading) -> Text:
    if reading.up is None:
        return Text("no data", style="dim")
    return Text("up", style="green") if reading.up else Text("down", style="bold red")


def _value(reading: ServiceReading, metric: str, template: str, scale: float = 1.0) -> str:
    value = reading.values.get(metric)
    return "-" if value is None else template.format(value * scale)


__all__ = ["register", "show", "table"]
