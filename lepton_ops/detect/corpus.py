"""A labelled corpus: a directory of ``timestamp,value`` CSVs and a JSON of anomaly windows.

The labels are the common format of public streaming anomaly benchmarks: a JSON object
mapping each file's path, relative to the directory and with ``/`` separators, to a list
of ``[start, end]`` windows (timestamps as ISO 8601 text or Unix seconds)::

    {"cpu/node1.csv": [["2024-05-01 10:00:00", "2024-05-01 11:30:00"]],
     "disk/node2.csv": []}

Every file the labels name is in the corpus (a file with ``[]`` has no anomaly); a CSV
the labels do not name is left out. Default labels: ``labels.json`` in the directory.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lepton_ops.detect.score_csv import TIMESTAMP_COLUMNS, parse_timestamp, parse_value
from lepton_ops.detect.scoring import FloatArray
from lepton_ops.errors import BadInput

LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class LabelledSeries:
    """One file of the corpus, its rows in time order."""

    name: str
    timestamps: FloatArray
    values: FloatArray
    windows: tuple[tuple[float, float], ...]


def load_corpus(directory: Path, labels: Path | None = None) -> list[LabelledSeries]:
    """The labelled series of ``directory`` (BadInput if it or its labels cannot be read)."""
    root = directory.expanduser()
    if not root.is_dir():
        raise BadInput(f"{directory} is not a directory: give a directory of labelled CSVs")
    labels_path = (labels or root / LABELS_FILE).expanduser()
    windows_by_file = read_labels(labels_path)
    found = []
    for name in sorted(windows_by_file):
        path = root / name
        if not path.is_file():
            raise BadInput(f"{labels_path} names {name}, which is not a file under {directory}")
        stamps, values = read_series(path)
        order = np.argsort(stamps, kind="stable")
        found.append(LabelledSeries(name, stamps[order], values[order], windows_by_file[name]))
    if not found:
        raise BadInput(f"{labels_path} names no file: nothing to score")
    return found


def read_labels(path: Path) -> dict[str, tuple[tuple[float, float], ...]]:
    """The windows of each file named in the labels JSON at ``path``."""
    if not path.is_file():
        raise BadInput(f"no labels at {path}: pass --labels FILE (a JSON of anomaly windows)")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is not a readable JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected an object mapping file names to lists of windows")
    found: dict[str, tuple[tuple[float, float], ...]] = {}
    for name, windows in data.items():
        if not isinstance(windows, list):
            raise BadInput(f"{path}: the windows of {name!r} are not a list")
        spans = []
        for window in windows:
            if not (isinstance(window, list) and len(window) == 2):
                raise BadInput(f"{path}: a window of {name!r} is not [start, end]: {window!r}")
            try:
                start, end = (parse_timestamp(str(edge)) for edge in window)
            except ValueError as exc:
                raise BadInput(f"{path}: a window of {name!r}: {exc}") from None
            if end < start:
                raise BadInput(f"{path}: a window of {name!r} ends before it starts: {window!r}")
            spans.append((start, end))
        found[str(name).replace("\\", "/")] = tuple(spans)
    return found


def read_series(path: Path) -> tuple[FloatArray, FloatArray]:
    """Timestamps (Unix seconds) and values (NaN: missing) of a ``timestamp,value`` CSV."""
    stamps: list[float] = []
    values: list[float] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream)
            header = [cell.strip().lower() for cell in next(reader, [])]
            if len(header) < 2:
                raise BadInput(f"{path}: expected a header row (timestamp,value)")
            t_col = next((header.index(n) for n in TIMESTAMP_COLUMNS if n in header), 0)
            v_col = header.index("value") if "value" in header else (1 if t_col == 0 else 0)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                try:
                    stamps.append(parse_timestamp(row[t_col]))
                except (ValueError, IndexError):
                    raise BadInput(
                        f"{path} line {reader.line_num}: no readable timestamp"
                    ) from None
                values.append(parse_value(row[v_col]) if v_col < len(row) else math.nan)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    return np.asarray(stamps, dtype=np.float64), np.asarray(values, dtype=np.float64)


def write_corpus(
    directory: Path, series: list[LabelledSeries], labels_name: str = LABELS_FILE
) -> Path:
    """Write ``series`` as CSVs (ISO timestamps) and a labels JSON under ``directory``."""
    from datetime import UTC, datetime

    def iso(ts: float) -> str:
        moment = datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)
        return moment.isoformat(sep=" ", timespec="seconds" if ts == int(ts) else "microseconds")

    labels: dict[str, list[list[str]]] = {}
    for item in series:
        path = directory / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(["timestamp", "value"])
            for ts, value in zip(item.timestamps.tolist(), item.values.tolist(), strict=True):
                writer.writerow([iso(ts), "" if math.isnan(value) else f"{value:.6g}"])
        labels[item.name] = [[iso(a), iso(b)] for a, b in item.windows]
    target = directory / labels_name
    target.write_text(json.dumps(labels, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target
