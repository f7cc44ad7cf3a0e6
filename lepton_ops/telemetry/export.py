"""Writing stored telemetry out: CSV (every point) and Prometheus text exposition (latest).

The Prometheus output is the text format 0.0.4: for each metric a ``# HELP`` and a
``# TYPE`` line from the catalogue, then one line per series with its labels (``node``
first), its latest value and that value's timestamp in milliseconds.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import groupby
from typing import TextIO

from lepton_ops.telemetry.catalogue import metric as catalogue_metric

CSV_HEADER = ("ts", "time", "node", "metric", "labels", "value")

#: One stored point: node, metric, labels (canonical JSON), timestamp, value.
Row = tuple[str, str, str, float, float]


def write_csv(stream: TextIO, rows: Iterable[Row]) -> int:
    """Write ``rows`` as CSV under :data:`CSV_HEADER`; the number of rows written."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    count = 0
    for node, metric, labels, ts, value in rows:
        writer.writerow((repr(ts), _iso(ts), node, metric, labels, repr(value)))
        count += 1
    return count


def write_prometheus(stream: TextIO, latest: Iterable[Row]) -> int:
    """Write the latest point of each series as text exposition; the number of samples."""
    count = 0
    ordered = sorted(latest, key=lambda row: (row[1], row[0], row[2]))
    for name, rows in groupby(ordered, key=lambda row: row[1]):
        spec = catalogue_metric(name)
        help_text = spec.help if spec else "Telemetry metric without a catalogue entry."
        kind = spec.type.value if spec else "untyped"
        stream.write(f"# HELP {name} {_escape_help(help_text)}\n# TYPE {name} {kind}\n")
        for node, _, labels, ts, value in rows:
            pairs = [("node", node), *sorted(json.loads(labels).items())]
            text = ",".join(f'{key}="{_escape_label(str(val))}"' for key, val in pairs)
            stream.write(f"{name}{{{text}}} {_value(value)} {round(ts * 1000)}\n")
            count += 1
    return count


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
