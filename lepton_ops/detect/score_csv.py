"""Scoring a CSV of metric series: the rows come back with an ``anomaly_score`` column.

The input is any CSV with a header row, a timestamp column and one or more value columns:
a two-column ``timestamp,value`` file (as exported from Prometheus or CloudWatch), or
``lepton-ops telemetry export --format csv`` (``ts,time,node,metric,labels,value``), which
holds many series. Scores come from the streaming detector
(:mod:`~lepton_ops.detect.detector`): a calibrated surprise, in [0, 1], that is news only
once per anomaly.

- **Header.** The first line must name the columns: a first line whose cells are all
  numbers or times is data, and such a file is refused (rather than losing that row).
- **Columns.** ``timestamp_column`` defaults to the first of ``timestamp``, ``ts``,
  ``time``, ``date``, ``datetime`` in the header (any case), else the first column of a
  two-column file; ``value_columns`` to ``value``, else the other column of a two-column
  file. Several value columns are each scored, into ``anomaly_score_<column>``.
  ``series_columns`` (the columns whose values name a series) defaults to those of
  ``node``, ``host``, ``instance``, ``metric``, ``__name__``, ``labels``, ``series``
  present in the header: telemetry exports are scored per node, metric and labels, a
  two-column file is one series. Each series is scored on its own.
- **Timestamps**: ISO 8601 (``2024-05-01T12:00:00Z``, ``+02:00``, a space instead of
  ``T``, ``/`` instead of ``-``; no zone means UTC), or numbers: Unix seconds, or
  milliseconds, microseconds, nanoseconds when they are that large (>= 1e11, 1e14, 1e17).
  A timestamp that cannot be read is bad input, with its line number.
- **Order.** Each series is scored in time order (a stable sort: rows with equal
  timestamps keep their order), so the score is causal in time even when the file is not
  sorted; the output keeps the input's row order.
- **Values** that are empty, ``NaN``, infinite or not numbers are missing: the row is
  written with an empty ``anomaly_score``, and does not move the detector's state.
- **Output**: every input row, unchanged, plus ``anomaly_score`` (6 decimals) as the last
  column; an existing ``anomaly_score`` column is overwritten in place. A file written by
  :func:`atomic_output` gets the mode a new file would (the user's umask).
- **A directory** (:func:`score_csv_directory`): every ``*.csv`` under it, into the same
  relative paths under another directory.

The file is read twice (first the timestamps and values, then the rows to write), so
memory holds numbers, not rows, and nothing is written until the whole file was read
and checked.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from lepton_ops.detect.detector import DetectorOptions, FloatArray, StreamingDetector
from lepton_ops.errors import BadInput

SCORE_COLUMN = "anomaly_score"
TIMESTAMP_COLUMNS = ("timestamp", "ts", "time", "date", "datetime")
VALUE_COLUMNS = ("value",)
SERIES_COLUMNS = ("node", "host", "instance", "metric", "__name__", "labels", "series")
#: Rows listed in the summary's ``top``.
TOP_ROWS = 5
_MISSING_TEXT = frozenset({"", "nan", "null", "none", "na", "n/a", "-"})


@dataclass
class ScoredRow:
    """One of the highest-scoring rows, for the summary."""

    line: int
    timestamp: str
    series: str
    value: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "timestamp": self.timestamp,
            "series": self.series,
            "value": self.value,
            "score": round(self.score, 6),
        }


@dataclass
class CsvScoreSummary:
    """What :func:`score_csv` did."""

    rows: int
    scored: int
    missing: int
    series: int
    timestamp_column: str
    value_column: str
    series_columns: list[str]
    max_score: float | None
    above_0_5: int
    above_0_9: int
    #: Series whose rows were not in time order in the file (scored in time order).
    unordered_series: int
    top: list[ScoredRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "scored": self.scored,
            "missing": self.missing,
            "series": self.series,
            "timestamp_column": self.timestamp_column,
            "value_column": self.value_column,
            "series_columns": self.series_columns,
            "max_score": None if self.max_score is None else round(self.max_score, 6),
            "above_0_5": self.above_0_5,
            "above_0_9": self.above_0_9,
            "unordered_series": self.unordered_series,
            "top": [row.to_dict() for row in self.top],
        }


IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class _Layout:
    header: list[str]
    timestamp: int
    values: list[int]
    series: list[int]
    scores: list[int]  # index of each value's score column in the output rows

    @property
    def score_names(self) -> list[str]:
        return score_columns([self.header[index] for index in self.values])


def score_columns(values: Sequence[str]) -> list[str]:
    """``anomaly_score`` for one value column, ``anomaly_score_<column>`` for each of many."""
    if len(values) == 1:
        return [SCORE_COLUMN]
    return [f"{SCORE_COLUMN}_{name}" for name in values]


def score_csv(
    source: Path,
    output: TextIO,
    *,
    timestamp_column: str | None = None,
    value_columns: Sequence[str] | None = None,
    series_columns: Sequence[str] | None = None,
    options: DetectorOptions | None = None,
) -> CsvScoreSummary:
    """Score ``source`` and write it, with ``anomaly_score``, to ``output``.

    ``value_columns``: ``None`` for the default (``value``, else the other column of a
    two-column file), or the columns to score, each a series of its own with its own
    ``anomaly_score_<column>`` when there are several. ``series_columns``: ``None`` for
    the default, an empty sequence for one series. Raises :class:`BadInput` (nothing
    written) for a file that cannot be scored.
    """
    table = _read(source, timestamp_column, value_columns, series_columns)
    scores = np.full(table.values.shape, np.nan)
    unordered = 0
    by_series = np.argsort(table.keys, kind="stable")
    starts = np.searchsorted(table.keys[by_series], np.arange(len(table.series_names) + 1))
    for key in range(len(table.series_names)):
        rows = by_series[starts[key] : starts[key + 1]]
        order = np.argsort(table.stamps[rows], kind="stable")
        if np.any(np.diff(order) < 0):
            unordered += 1
        ordered = rows[order]
        for column in range(table.values.shape[1]):
            detector = StreamingDetector(options)
            scores[ordered, column] = detector.update_many(
                table.stamps[ordered], table.values[ordered, column]
            )
    _write(source, output, table.layout, scores)
    return _summary(table, scores, unordered)


def score_csv_directory(
    source: Path,
    target: Path,
    *,
    timestamp_column: str | None = None,
    value_columns: Sequence[str] | None = None,
    series_columns: Sequence[str] | None = None,
) -> list[tuple[Path, CsvScoreSummary]]:
    """Score every ``*.csv`` under ``source`` into the same relative path under ``target``.

    Every file is checked before any is written: one that cannot be scored is bad input
    and nothing is written.
    """
    root = source.expanduser().resolve()
    out = target.expanduser().resolve()
    if out == root or root in out.parents:
        raise BadInput(f"--output {target} is inside {source}: write the scores elsewhere")
    files = sorted(path for path in root.rglob("*.csv") if path.is_file())
    if not files:
        raise BadInput(f"{source} holds no *.csv file")
    for path in files:  # read and check them all first
        _read(path, timestamp_column, value_columns, series_columns)
    done = []
    for path in files:
        destination = out / path.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(destination) as stream:
            summary = score_csv(
                path,
                stream,
                timestamp_column=timestamp_column,
                value_columns=value_columns,
                series_columns=series_columns,
            )
        done.append((destination, summary))
    return done


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A text stream that replaces ``path`` when the block ends without an error.

    The text goes to a temporary file next to ``path``, flushed and synced, then renamed
    over it: a reader never sees half a file, and a failure leaves ``path`` as it was.
    """
    target = path.expanduser()
    directory = target.parent
    if not directory.is_dir():
        raise BadInput(f"cannot write {target}: directory {directory} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise BadInput(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # as open() would have made it, not 0600
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def parse_timestamp(text: str) -> float:
    """Unix seconds from ISO 8601 text or a number (s, ms, us or ns); ValueError if bad."""
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("empty timestamp")
    try:
        number = float(cleaned)
    except ValueError:
        return _parse_iso(cleaned)
    if not math.isfinite(number):
        raise ValueError(f"timestamp {cleaned!r} is not finite")
    size = abs(number)
    if size >= 1e17:
        return number / 1e9
    if size >= 1e14:
        return number / 1e6
    if size >= 1e11:
        return number / 1e3
    return number


def parse_value(text: str) -> float:
    """The number in ``text``, or NaN when it is missing or not a finite number."""
    cleaned = text.strip()
    if cleaned.lower() in _MISSING_TEXT:
        return math.nan
    try:
        number = float(cleaned)
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


# --------------------------------------------------------------------------- reading


def _parse_iso(text: str) -> float:
    candidate = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        try:
            moment = datetime.fromisoformat(candidate.replace("/", "-"))
        except ValueError:
            raise ValueError(f"cannot read timestamp {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@contextlib.contextmanager
def _open_csv(source: Path) -> Iterator[Any]:
    path = source.expanduser()
    if not path.exists():
        raise BadInput(f"{source} does not exist")
    if not path.is_file():
        raise BadInput(f"{source} is not a file")
    try:
        stream = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInput(f"cannot read {source}: {exc.strerror or exc}") from exc
    with stream:
        yield csv.reader(stream)


@dataclass(frozen=True)
class _Table:
    """The file's data rows as numbers (blank lines skipped), in file order."""

    layout: _Layout
    stamps: FloatArray
    values: FloatArray
    keys: IntArray  # series number of each row
    lines: IntArray  # file line of each row
    series_names: list[str]


def _read(
    source: Path,
    timestamp_column: str | None,
    value_columns: Sequence[str] | None,
    series_columns: Sequence[str] | None,
) -> _Table:
    stamps: list[float] = []
    values: list[list[float]] = []
    keys: list[int] = []
    lines: list[int] = []
    names: dict[tuple[str, ...], int] = {}
    with _open_csv(source) as reader:
        try:
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise BadInput(f"{source} is empty: expected a header row (e.g. timestamp,value)")
            if _is_data(header):
                shown = ",".join(header)[:60]
                raise BadInput(
                    f"{source} has no header row: line 1 ({shown}) is data; add a header such "
                    "as 'timestamp,value' as its first line"
                )
            layout = _layout(source, [cell.strip() for cell in header], timestamp_column,
                             value_columns, series_columns)  # fmt: skip
            width = len(layout.header)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                line = reader.line_num
                if len(row) > width:
                    raise BadInput(
                        f"{source} line {line}: {len(row)} fields, the header has {width}"
                    )
                if len(row) < width:
                    row = row + [""] * (width - len(row))
                try:
                    stamps.append(parse_timestamp(row[layout.timestamp]))
                except ValueError as exc:
                    raise BadInput(
                        f"{source} line {line}: {exc} in column "
                        f"{layout.header[layout.timestamp]!r} (use ISO 8601 or Unix seconds)"
                    ) from None
                values.append([parse_value(row[index]) for index in layout.values])
                key = tuple(row[index] for index in layout.series)
                keys.append(names.setdefault(key, len(names)))
                lines.append(line)
        except csv.Error as exc:
            raise BadInput(f"{source} line {reader.line_num}: not valid CSV ({exc})") from None
        except UnicodeDecodeError:
            raise BadInput(f"{source} is not UTF-8 text: expected a CSV file") from None
    value_array = np.array(values, dtype=np.float64).reshape(-1, len(layout.values))
    for number, index in enumerate(layout.values):
        if not np.any(np.isfinite(value_array[:, number])):
            what = "no rows" if not values else "no numeric values"
            raise BadInput(
                f"{source} has {what} in column {layout.header[index]!r}: nothing to score"
            )
    series_names = [
        ",".join(f"{layout.header[i]}={text}" for i, text in zip(layout.series, key, strict=True))
        for key in names
    ]
    return _Table(
        layout=layout,
        stamps=np.array(stamps, dtype=np.float64),
        values=value_array,
        keys=np.array(keys, dtype=np.int64),
        lines=np.array(lines, dtype=np.int64),
        series_names=series_names,
    )


def _layout(
    source: Path,
    header: list[str],
    timestamp_column: str | None,
    value_columns: Sequence[str] | None,
    series_columns: Sequence[str] | None,
) -> _Layout:
    listed = ", ".join(header)
    if timestamp_column is not None:
        timestamp = _find(source, header, timestamp_column, "--timestamp-column")
    else:
        found = _first(header, TIMESTAMP_COLUMNS)
        if found is None and len(header) == 2:
            found = 0
        if found is None:
            raise BadInput(
                f"{source}: no timestamp column ({', '.join(TIMESTAMP_COLUMNS)}) among "
                f"{listed}: pass --timestamp-column"
            )
        timestamp = found
    if value_columns:
        values: list[int] = []
        for name in value_columns:
            index = _find(source, header, name, "--value-column")
            if index not in values:
                values.append(index)
    else:
        found = _first(header, VALUE_COLUMNS)
        if found is None and len(header) == 2:
            found = 1 - timestamp
        if found is None:
            raise BadInput(f"{source}: no 'value' column among {listed}: pass --value-column")
        values = [found]
    if timestamp in values:
        raise BadInput(f"{source}: the timestamp and value columns are both {header[timestamp]!r}")
    if series_columns is None:
        series = [
            index
            for index, name in enumerate(header)
            if name.lower() in SERIES_COLUMNS and index != timestamp and index not in values
        ]
    else:
        series = []
        for name in series_columns:
            index = _find(source, header, name, "--series-columns")
            if index == timestamp or index in values:
                raise BadInput(
                    f"{source}: --series-columns names {header[index]!r}, which is the "
                    "timestamp or value column"
                )
            if index not in series:
                series.append(index)
    scores = []
    appended = len(header)
    for name in score_columns([header[index] for index in values]):
        if name in header:
            scores.append(header.index(name))
        else:
            scores.append(appended)
            appended += 1
        if scores[-1] == timestamp or scores[-1] in values or scores[-1] in series:
            raise BadInput(f"{source}: column {name!r} cannot be an input column")
    return _Layout(header, timestamp, values, series, scores)


def _is_data(first: list[str]) -> bool:
    """Whether a first line is data rather than a header: every cell a number or a time."""
    cells = [cell.strip() for cell in first]
    if len(cells) < 2 or any(not cell for cell in cells):
        return False
    for cell in cells:
        try:
            parse_timestamp(cell)
        except ValueError:
            return False
    return True


def _first(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [name.lower() for name in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _find(source: Path, header: list[str], name: str, option: str) -> int:
    wanted = name.strip()
    if wanted in header:
        return header.index(wanted)
    lowered = [column.lower() for column in header]
    if wanted.lower() in lowered:
        return lowered.index(wanted.lower())
    raise BadInput(
        f"{source}: no column {wanted!r} ({option}); the columns are {', '.join(header)}"
    )


# --------------------------------------------------------------------------- writing


def _write(source: Path, output: TextIO, layout: _Layout, scores: FloatArray) -> None:
    writer = csv.writer(output, lineterminator="\n")
    texts = [[_score_text(score) for score in row] for row in scores.tolist()]
    width = len(layout.header)
    with _open_csv(source) as reader:
        header = next(reader)
        writer.writerow(_with_scores(header, width, layout.scores, layout.score_names))
        index = 0
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            writer.writerow(_with_scores(row, width, layout.scores, texts[index]))
            index += 1


def _with_scores(row: list[str], width: int, columns: list[int], texts: list[str]) -> list[str]:
    cells = row + [""] * (width - len(row)) if len(row) < width else list(row)
    for column, text in zip(columns, texts, strict=True):
        if column < width:
            cells[column] = text
        else:
            cells.append(text)
    return cells


def _score_text(score: float) -> str:
    return "" if math.isnan(score) else f"{score:.6f}"


def _summary(table: _Table, scores: FloatArray, unordered: int) -> CsvScoreSummary:
    layout = table.layout
    names = [layout.header[index] for index in layout.values]
    flat = scores.reshape(-1)  # row-major: row * columns + column
    scored = np.isfinite(flat)
    top: list[ScoredRow] = []
    candidates = np.flatnonzero(scored)
    best = candidates[np.argsort(-flat[candidates], kind="stable")[:TOP_ROWS]]
    for cell in best.tolist():
        index, column = divmod(cell, len(names))
        series = table.series_names[int(table.keys[index])]
        if len(names) > 1:
            series = ",".join(part for part in (series, f"value={names[column]}") if part)
        top.append(
            ScoredRow(
                line=int(table.lines[index]),
                timestamp=datetime.fromtimestamp(float(table.stamps[index]), UTC).isoformat(),
                series=series,
                value=float(table.values[index, column]),
                score=float(flat[cell]),
            )
        )
    return CsvScoreSummary(
        rows=int(scores.shape[0]),
        scored=int(np.isfinite(scores).any(axis=1).sum()),
        missing=int(scores.shape[0] - np.isfinite(scores).any(axis=1).sum()),
        series=len(table.series_names) * len(names),
        timestamp_column=layout.header[layout.timestamp],
        value_column=",".join(names),
        series_columns=[layout.header[index] for index in layout.series],
        max_score=float(np.max(flat[scored])) if candidates.size else None,
        above_0_5=int(np.sum(flat[scored] >= 0.5)),
        above_0_9=int(np.sum(flat[scored] >= 0.9)),
        unordered_series=unordered,
        top=top,
    )
