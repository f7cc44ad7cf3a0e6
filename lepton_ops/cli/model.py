"""``lepton-ops model``: the failure predictor's models, and scoring a metric's history."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.table import Table

from lepton_ops.cli import model_benchmark, model_train
from lepton_ops.cli.lazy import sub_app
from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, print_json
from lepton_ops.errors import BadInput
from lepton_ops.settings import Settings

if TYPE_CHECKING:
    from lepton_ops.detect.score_csv import CsvScoreSummary

app = sub_app("The failure predictor: its models, and anomaly scores for a metric's history.")


_SCORE_CSV_HELP = """Write FILE's rows back with an anomaly_score in [0, 1] (CSV).

FILE holds one metric's time series (a timestamp,value CSV, as exported
from Prometheus or CloudWatch), or many: 'lepton-ops telemetry export
--format csv' is scored per node, metric and labels. --value-column a,b
scores several columns (into anomaly_score_a, anomaly_score_b). FILE may
be a directory: every *.csv under it is scored into --output DIR.

No labels needed; the score is causal: a row's score uses only that row
and the rows before it in time. It is the streaming detector's calibrated
surprise (one threshold means the same on every series: 0.5 is a
one-in-10^4 row, 0.8 one in 2.5 million), given only to the row where an
anomaly becomes news, 0 elsewhere. The first 128 rows of a series score 0
(warm-up); a row without a numeric value gets an empty score.

Timestamps: ISO 8601 or Unix seconds (milliseconds when that large). The
first line must be a header. The output keeps the input's rows and their
order, plus anomaly_score; --output writes it atomically (mode from your
umask), otherwise it goes to stdout. --json prints a summary instead
(rows, series, max score, rows >= 0.5 and >= 0.9, the top rows) and
needs --output.
"""


@app.command("score-csv", help=_SCORE_CSV_HELP)
@with_settings
def score_csv_command(
    cfg: Settings,
    file: Annotated[
        Path,
        typer.Argument(
            help="The CSV to score (with a header row), or a directory of them.",
            show_default=False,
        ),
    ],
    timestamp_column: Annotated[
        str | None,
        typer.Option(
            "--timestamp-column",
            help="Timestamp column. Default: timestamp, ts, time, date or datetime, else the "
            "first column of a two-column file.",
            show_default=False,
        ),
    ] = None,
    value_column: Annotated[
        str | None,
        typer.Option(
            "--value-column",
            help="Value column, or comma-separated columns, each scored. Default: value, else "
            "the other column of a two-column file.",
            show_default=False,
        ),
    ] = None,
    series_columns: Annotated[
        str | None,
        typer.Option(
            "--series-columns",
            help="Comma-separated columns that name a series, each scored on its own; '' for "
            "one series. Default: those of node, host, instance, metric, __name__, labels, "
            "series in the header.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the scored CSV here (default: stdout); a directory for a directory.",
            show_default=False,
        ),
    ] = None,
) -> None:
    # Imported here: numpy stays out of the CLI's start-up for the other commands.
    from lepton_ops.detect.score_csv import atomic_output, score_csv, score_csv_directory

    columns = None
    if series_columns is not None:
        columns = [name.strip() for name in series_columns.split(",") if name.strip()]
    values = None
    if value_column is not None:
        values = [name.strip() for name in value_column.split(",") if name.strip()]
        if not values:
            raise BadInput("--value-column names no column")
    if file.expanduser().is_dir():
        if output is None:
            raise BadInput(f"{file} is a directory: give --output DIR for the scored CSVs")
        done = score_csv_directory(
            file, output, timestamp_column=timestamp_column, value_columns=values,
            series_columns=columns,
        )  # fmt: skip
        if cfg.json:
            print_json([{**summary.to_dict(), "output": str(path)} for path, summary in done])
            return
        for path, summary in done:
            _print_summary(summary, path)
        return
    if cfg.json and output is None:
        raise BadInput("--json prints a summary on stdout: give --output FILE for the scored CSV")

    def run(stream: TextIO) -> CsvScoreSummary:
        return score_csv(
            file,
            stream,
            timestamp_column=timestamp_column,
            value_columns=values,
            series_columns=columns,
        )

    if output is None:
        try:
            summary = run(sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # '| head': the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
    else:
        if output.expanduser().resolve() == file.expanduser().resolve():
            raise BadInput(f"--output {output} is the input file: write the scores elsewhere")
        with atomic_output(output) as stream:
            summary = run(stream)
    if summary.unordered_series:
        sys.stderr.write(
            f"lepton-ops: warning: {summary.unordered_series} series were not in time order "
            "in the file: scored in time order, written in the file's order\n"
        )
    if cfg.json:
        print_json({**summary.to_dict(), "output": str(output)})
        return
    if output is None:
        return
    _print_summary(summary, output)


def _print_summary(summary: CsvScoreSummary, output: Path) -> None:
    max_score = "-" if summary.max_score is None else f"{summary.max_score:.3f}"
    console.print(
        f"scored {summary.scored} of {summary.rows} rows in {summary.series} series "
        f"({summary.missing} without a value) into {output}: max {max_score}, "
        f"{summary.above_0_5} rows >= 0.5, {summary.above_0_9} rows >= 0.9",
        highlight=False,
    )
    if summary.top and summary.max_score:
        table = Table(title="highest scores", title_justify="left")
        for column in ("line", "time (UTC)", "series", "value", "score"):
            table.add_column(column, justify="right" if column != "series" else "left")
        for row in summary.top:
            table.add_row(
                str(row.line),
                row.timestamp,
                row.series or "-",
                f"{row.value:.6g}",
                f"{row.score:.3f}",
            )
        console.print(table)


# train, evaluate, show: the failure predictor's own model (lepton_ops/cli/model_train.py)
model_train.register(app)
# benchmark: the anomaly detector on a labelled corpus (lepton_ops/cli/model_benchmark.py)
model_benchmark.register(app)
