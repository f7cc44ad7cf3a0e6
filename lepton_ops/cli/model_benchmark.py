"""``lepton-ops model benchmark DIR``: the anomaly detector and its baselines on a labelled
corpus, scored with the windowed rules of streaming anomaly benchmarks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, print_json
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.settings import Settings

_BENCHMARK_HELP = """Score the anomaly detector and its baselines on a labelled corpus.

DIR holds timestamp,value CSVs; the labels (default DIR/labels.json) map each
file's path relative to DIR to its anomaly windows, a list of start, end pairs.
Rules: the first 15 % of each file is probation; a window's earliest
detection earns up to 1 (less the later it comes), a missed window costs
A_FN, each detection outside the windows costs up to A_FP (profiles:
standard 1/0.11/1, reward_low_fp 0.22, reward_low_fn A_FN 2). Each
detector gets one threshold for the whole corpus, the best for each
profile; 0 is never firing, 100 perfect. Baselines in the same run: the
previous scorer, a windowed Gaussian, random, never.
"""


_EXPORT_HELP = """Write the stored telemetry as a labelled corpus for 'model benchmark'.

One CSV per node, metric and labels (the metrics a chaos fault shows in:
service memory, disk use, CPU, health, latency, reachability), and
DIR/labels.json with each fault's window (start to end) on the series of
its node that show that kind of fault; the other series have no window.
Run it after 'lepton-ops chaos campaign'.
"""


def register(app: typer.Typer) -> None:
    app.command("benchmark", help=_BENCHMARK_HELP)(benchmark_command)
    app.command("export-corpus", help=_EXPORT_HELP)(export_corpus_command)


@with_settings
def benchmark_command(
    cfg: Settings,
    directory: Annotated[
        Path, typer.Argument(help="The corpus directory.", show_default=False, metavar="DIR")
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="The labels JSON (default DIR/labels.json).", show_default=False
        ),
    ] = None,
) -> None:
    from lepton_ops.detect.benchmark import run_benchmark
    from lepton_ops.detect.corpus import load_corpus

    result = run_benchmark(load_corpus(directory, labels))
    data = result.to_dict()
    if cfg.json:
        print_json(data)
        return
    files = Table(
        title=f"per file: {data['per_file']['detector']} (standard threshold)", title_justify="left"
    )
    for column in ("file", "rows", "windows", "detected", "FP rows", "alarm rows", "raw"):
        files.add_column(column, justify="left" if column == "file" else "right")
    for row in data["per_file"]["files"]:
        files.add_row(
            row["file"],
            str(row["rows"]),
            str(row["windows"]),
            str(row["detected"]),
            str(row["false_positives"]),
            str(row["alarm_rows"]),
            f"{row['raw']:.3f}",
        )
    console.print(files)
    scores = Table(
        title=f"{data['files']} files ({data['files_without_anomaly']} without anomaly), "
        f"{data['windows']} windows, {data['rows']} rows",
        title_justify="left",
    )
    for column in ("detector", "standard", "low FP", "low FN", "threshold", "quiet max", "s"):
        scores.add_column(column, justify="left" if column == "detector" else "right")
    for entry in data["detectors"]:
        profiles = entry["profiles"]
        quiet = entry["quiet_files_max_alarm_share"]
        threshold = profiles["standard"]["threshold"]
        scores.add_row(
            entry["detector"],
            *(
                _points(profiles[name]["score"])
                for name in ("standard", "reward_low_fp", "reward_low_fn")
            ),
            "never" if threshold is None else f"{threshold:.4g}",
            "-" if quiet is None else f"{100 * quiet:.2f} %",
            f"{entry['seconds']:.2f}",
        )
    console.print(scores)


@with_settings
def export_corpus_command(
    cfg: Settings,
    directory: Annotated[
        Path, typer.Argument(help="Where to write it.", show_default=False, metavar="DIR")
    ],
    since: Annotated[str, typer.Option("--since", help="Telemetry this recent: 2h, 1d...")] = "24h",
    campaign: Annotated[
        str | None,
        typer.Option("--campaign", help="Only this chaos campaign's faults.", show_default=False),
    ] = None,
) -> None:
    from lepton_ops.cli.model_train import open_store
    from lepton_ops.detect.corpus import write_corpus
    from lepton_ops.detect.telemetry_corpus import MIN_POINTS, describe, export_corpus
    from lepton_ops.telemetry import parse_duration

    start = time.time() - parse_duration(since)
    with open_store(cfg.state_dir) as store:
        series = export_corpus(store, since=start, campaign=campaign)
    if not series:
        raise OperationFailed(f"no series with {MIN_POINTS} points or more since {since} ago")
    target = directory.expanduser()
    if target.exists() and not target.is_dir():
        raise BadInput(f"{directory} exists and is not a directory")
    target.mkdir(parents=True, exist_ok=True)
    labels = write_corpus(target, series)
    summary = json.loads(describe(series))
    if cfg.json:
        print_json({**summary, "labels": str(labels)})
        return
    console.print(
        f"{summary['series']} series ({summary['without_anomaly']} without anomaly), "
        f"{summary['windows']} fault windows, {summary['rows']} rows: {labels}",
        highlight=False,
    )


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
