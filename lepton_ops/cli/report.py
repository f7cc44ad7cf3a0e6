"""``lepton-ops report``: the fleet's load, stability and prediction numbers from the store."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, print_json
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.files import umask_mode
from lepton_ops.report import build_report
from lepton_ops.report.build import fitted_since
from lepton_ops.report.html import page
from lepton_ops.report.text import render
from lepton_ops.settings import Settings
from lepton_ops.telemetry import HistoryStore, history_path, parse_duration
from lepton_ops.telemetry.durations import format_duration


@with_settings
def report_command(
    cfg: Settings,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            metavar="DURATION",
            help="How far back at most: 90m, 24h, 7d... The window starts at the first "
            "observation within it, so that the charts fit the data.",
        ),
    ] = "24h",
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Write the report as one HTML page to FILE.", show_default=False
        ),
    ] = None,
    horizon: Annotated[
        str,
        typer.Option("--horizon", help="Horizon of 'P(at least one failure within)'."),
    ] = "1h",
    max_gap: Annotated[
        str,
        typer.Option(
            "--max-gap",
            help="A longer interval between two samples of a node is not observed time.",
        ),
    ] = "5m",
) -> None:
    """The fleet's numbers from what the store measured, from the first observation within
    the last --since to now.

    Load: each node's share L_i = W_i / sum(W), its planned and executed tasks, each
    job's predicted and measured makespan (a job is recorded when 'job run' sees it
    finish).

    Stability, per node and pooled for the fleet: the failure rate lambda (failures per
    hour of observed time), the probability of at least one failure within --horizon
    (1 - exp(-lambda * horizon)), MTBF, MTTR and availability, each with the count it
    rests on.

    Prediction (alarms, current risk) and remediation (actions by type and outcome)
    when their data exist.

    A store without data gives a report that says what is missing (exit 0). --html
    writes a self-contained page with charts (it needs no network to be viewed) and
    prints its path; --json prints the report as one JSON document (with the page's
    path, if written).
    """
    window = parse_duration(since)
    horizon_s = parse_duration(horizon)
    max_gap_s = parse_duration(max_gap)
    target = _html_target(html) if html is not None else None
    with HistoryStore(history_path(cfg.state_dir), read_only=True) as store:
        now = time.time()
        report = build_report(
            store,
            cfg.state_dir,
            since=fitted_since(store, now - window, now),
            until=now,
            horizon_s=horizon_s,
            max_gap_s=max_gap_s,
        )
    if target is not None:
        write_atomically(target, page(report))
    if cfg.json:
        data = report.to_dict()
        data["html"] = None if target is None else str(target)
        print_json(data)
    elif target is not None:
        span = format_duration(max(1.0, report.until - report.since))
        console.print(f"report of the last {span} written to {target}", highlight=False)
    else:
        render(report, console)


def _html_target(path: Path) -> Path:
    """Where ``--html`` writes, checked before the report is made (BadInput if unusable)."""
    target = path.expanduser()
    if target.is_dir():
        raise BadInput(f"--html {path} is a directory: give a file name")
    if not target.parent.is_dir():
        raise BadInput(f"--html {path}: the directory {target.parent} does not exist")
    return target.resolve()


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a reader never sees half a page)."""
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temporary = Path(name)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            temporary.chmod(umask_mode())
            temporary.replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
    except OSError as exc:
        raise OperationFailed(f"cannot write the report to {path}: {exc.strerror or exc}") from None
