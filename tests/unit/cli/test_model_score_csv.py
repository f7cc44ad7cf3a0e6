"""``lepton-ops model score-csv``: telemetry exports (many series), two-column CSVs with ISO or
Unix (s, ms) timestamps, missing values, unsorted rows, the JSON summary, the atomic
output, and bad input (one line, exit 2)."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from cli_support import one_error_line, run_cli

from lepton_ops.cli.app import main
from lepton_ops.detect.detector import detect
from lepton_ops.detect.fleet import FLEET_THRESHOLD
from lepton_ops.detect.score_csv import parse_timestamp, parse_value
from lepton_ops.telemetry.export import CSV_HEADER, write_csv

T0 = 1_700_000_000.0
CPU = "lepton_node_cpu_util_pct"
DISK = "lepton_node_disk_used_pct"


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    code = exit_info.value.code
    return code if isinstance(code, int) else 0


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def noisy(n: int, seed: int, spike_at: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = 30 + rng.normal(0, 2, n)
    if spike_at is not None:
        values[spike_at] = 95.0
    return values


def write_two_columns(path: Path, stamps: list[str], values: list[str], header: str) -> None:
    lines = [header] + [f"{a},{b}" for a, b in zip(stamps, values, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- telemetry


@pytest.fixture
def telemetry_csv(tmp_path: Path) -> Path:
    """What 'lepton-ops telemetry export --format csv' writes: 3 nodes x 2 series, 700
    points each a minute apart, node-major; node2's CPU spikes at point 500."""
    rows = []
    for index, node in enumerate(["node1", "node2", "node3"]):
        for metric, labels in [(CPU, "{}"), (DISK, '{"path":"/"}')]:
            spike = 500 if (node, metric) == ("node2", CPU) else None
            values = noisy(700, seed=index * 10 + len(metric), spike_at=spike)
            rows += [(node, metric, labels, T0 + 60 * i, float(v)) for i, v in enumerate(values)]
    path = tmp_path / "telemetry.csv"
    with path.open("w", encoding="utf-8") as stream:
        write_csv(stream, rows)
    return path


def test_telemetry_export_is_scored_per_series(
    telemetry_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scored.csv"
    assert cli("model", "score-csv", str(telemetry_csv), "-o", str(out), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 4200
    assert summary["series"] == 6
    assert summary["series_columns"] == ["node", "metric", "labels"]
    assert (summary["timestamp_column"], summary["value_column"]) == ("ts", "value")
    top = summary["top"][0]
    assert top["series"] == f"node=node2,metric={CPU},labels={{}}"
    assert top["line"] == 2 + 2 * 700 + 500  # header, node1's two series, then point 500
    assert top["value"] == 95.0
    assert top["score"] >= FLEET_THRESHOLD  # 368 rows of history vouch for 0.86 at most

    original = read_csv(telemetry_csv.read_text(encoding="utf-8"))
    scored = read_csv(out.read_text(encoding="utf-8"))
    assert scored[0] == [*CSV_HEADER, "anomaly_score"]
    assert [row[:-1] for row in scored] == original  # every row, unchanged, in order

    # Each series is scored on its own: node3's disk series alone gives the same scores.
    rows = [row for row in original[1:] if row[2] == "node3" and row[3] == DISK]
    alone = detect([float(r[0]) for r in rows], [float(r[5]) for r in rows])
    in_file = [float(row[-1]) for row in scored[1:] if row[2] == "node3" and row[3] == DISK]
    assert np.allclose(in_file, np.round(alone, 6), atol=1e-9)


def test_series_columns_can_be_chosen_or_switched_off(
    telemetry_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.csv"
    command = ["model", "score-csv", str(telemetry_csv), "-o", str(out), "--json"]
    assert cli(*command, "--series-columns", "node") == 0
    assert json.loads(capsys.readouterr().out)["series"] == 3
    assert cli(*command, "--series-columns", "") == 0
    assert json.loads(capsys.readouterr().out)["series"] == 1


# --------------------------------------------------------------------------- two columns


@pytest.mark.parametrize(
    "form", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.000+00:00"]
)
def test_two_column_csv_with_iso_timestamps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    n = 1500
    values = noisy(n, seed=3, spike_at=1200)
    stamps = [datetime.fromtimestamp(T0 + 300 * i, UTC).strftime(form) for i in range(n)]
    path = tmp_path / "nab.csv"
    write_two_columns(path, stamps, [f"{v:.3f}" for v in values], "timestamp,value")

    assert cli("model", "score-csv", str(path)) == 0
    rows = read_csv(capsys.readouterr().out)
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert [row[0] for row in rows[1:]] == stamps
    scores = np.array([float(row[2]) for row in rows[1:]])
    assert np.all((scores >= 0) & (scores <= 1))
    assert int(np.argmax(scores)) == 1200
    assert scores[1200] >= 0.9
    assert np.all(scores[:128] == 0.0)  # warm-up


def test_unix_milliseconds_and_seconds_give_the_same_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 900
    values = [f"{v:.4f}" for v in noisy(n, seed=5, spike_at=700)]
    seconds, millis = tmp_path / "s.csv", tmp_path / "ms.csv"
    write_two_columns(seconds, [f"{T0 + 30 * i:.0f}" for i in range(n)], values, "time,cpu")
    write_two_columns(
        millis, [str(int((T0 + 30 * i) * 1000)) for i in range(n)], values, "time,cpu"
    )
    assert cli("model", "score-csv", str(seconds)) == 0
    from_seconds = read_csv(capsys.readouterr().out)
    assert cli("model", "score-csv", str(millis)) == 0
    from_millis = read_csv(capsys.readouterr().out)
    assert from_seconds[0] == ["time", "cpu", "anomaly_score"]
    assert [row[2] for row in from_seconds] == [row[2] for row in from_millis]
    assert float(from_seconds[701][2]) >= 0.9  # line 701 is point 700


def test_missing_values_keep_their_rows_with_an_empty_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 600
    values = [f"{v:.3f}" for v in noisy(n, seed=8)]
    holes = {100: "", 200: "NaN", 300: "n/a", 400: "oops", 500: "inf"}
    for index, text in holes.items():
        values[index] = text
    path = tmp_path / "holes.csv"
    write_two_columns(path, [str(T0 + 60 * i) for i in range(n)], values, "timestamp,value")
    out = tmp_path / "out.csv"
    assert cli("model", "score-csv", str(path), "--output", str(out), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["scored"], summary["missing"]) == (600, 595, 5)
    rows = read_csv(out.read_text(encoding="utf-8"))[1:]
    assert len(rows) == n
    for index, row in enumerate(rows):
        if index in holes:
            assert row == [str(T0 + 60 * index), holes[index], ""]
        else:
            assert 0.0 <= float(row[2]) <= 1.0


def test_rows_out_of_order_are_scored_in_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 800
    values = [f"{v:.3f}" for v in noisy(n, seed=9, spike_at=650)]
    stamps = [str(T0 + 60 * i) for i in range(n)]
    ordered, shuffled = tmp_path / "ordered.csv", tmp_path / "shuffled.csv"
    write_two_columns(ordered, stamps, values, "ts,value")
    order = np.random.default_rng(1).permutation(n)
    write_two_columns(shuffled, [stamps[i] for i in order], [values[i] for i in order], "ts,value")

    assert cli("model", "score-csv", str(ordered)) == 0
    by_time = {row[0]: row[2] for row in read_csv(capsys.readouterr().out)[1:]}
    assert cli("model", "score-csv", str(shuffled)) == 0
    captured = capsys.readouterr()
    rows = read_csv(captured.out)[1:]
    assert [row[0] for row in rows] == [stamps[i] for i in order]  # the file's order
    assert {row[0]: row[2] for row in rows} == by_time  # the scores of time order
    assert "1 series were not in time order" in captured.err


def test_an_existing_score_column_is_replaced_and_the_output_is_atomic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 300
    path = tmp_path / "in.csv"
    lines = ["timestamp,anomaly_score,value"]
    lines += [f"{T0 + 60 * i},0.5,{v:.3f}" for i, v in enumerate(noisy(n, seed=2))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "scored.csv"
    out.parent.mkdir()
    out.write_text("old\n", encoding="utf-8")
    assert cli("model", "score-csv", str(path), "-o", str(out)) == 0
    assert "scored 300 of 300 rows in 1 series" in capsys.readouterr().out
    rows = read_csv(out.read_text(encoding="utf-8"))
    assert rows[0] == ["timestamp", "anomaly_score", "value"]
    assert all(row[1] == "0.000000" for row in rows[1:65])
    assert [path.name for path in out.parent.iterdir()] == ["scored.csv"]  # no temp file

    path.write_text("timestamp,value\nyesterday,1\n", encoding="utf-8")
    assert cli("model", "score-csv", str(path), "-o", str(out)) == 2
    assert read_csv(out.read_text(encoding="utf-8")) == rows  # a failure changes nothing
    assert [path.name for path in out.parent.iterdir()] == ["scored.csv"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "args", "needle"),
    [
        (None, [], "does not exist"),
        ("", [], "is empty"),
        ("timestamp,value\n", [], "has no rows"),
        ("timestamp,value\n1,2\n", ["--value-column", "nope"], "no column 'nope'"),
        ("timestamp,value\n1,a\n2,\n3,NaN\n", [], "no numeric values in column 'value'"),
        ("timestamp,value\n1,1\n2,2\nnext tuesday,3\n", [], "line 4: cannot read timestamp"),
        ("timestamp,value\n1,1\n,2\n", [], "line 3: empty timestamp"),
        ("a,b,c\n1,2,3\n", [], "no timestamp column"),
        ("timestamp,x,y\n1,2,3\n", [], "no 'value' column"),
        ("timestamp,value\n1,1\n2,2,3\n", [], "line 3: 3 fields, the header has 2"),
        ("timestamp,value\n1,1\n", ["--series-columns", "value"], "--series-columns names"),
        ("timestamp,value\n1,1\n", ["--json"], "--json prints a summary on stdout"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    args: list[str],
    needle: str,
) -> None:
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert cli("model", "score-csv", str(path), *args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("lepton-ops: error: ")
    assert needle in lines[0]
    assert captured.out == ""


def test_output_onto_the_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.csv"
    path.write_text("timestamp,value\n1,1\n", encoding="utf-8")
    assert cli("model", "score-csv", str(path), "-o", str(path)) == 2
    assert "is the input file" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "timestamp,value\n1,1\n"


def test_bad_input_from_the_command_line(tmp_path: Path) -> None:
    result = run_cli("model", "score-csv", str(tmp_path / "nope.csv"), state_dir=tmp_path)
    assert result.returncode == 2
    assert "nope.csv does not exist" in one_error_line(result)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01 12:00:00", 1714564800.0),
        ("2024-05-01T14:00:00+02:00", 1714564800.0),
        ("2024/05/01 12:00:00", 1714564800.0),
        ("2024-05-01T12:00:00.250Z", 1714564800.25),
        ("1714564800", 1714564800.0),
        ("1714564800.5", 1714564800.5),
        ("1714564800000", 1714564800.0),
        ("1714564800000000", 1714564800.0),
        ("1714564800000000000", 1714564800.0),
        (" 42 ", 42.0),
    ],
)
def test_timestamps(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "soon", "nan", "inf", "2024-13-01"])
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_values() -> None:
    assert parse_value(" 3.5 ") == 3.5
    assert parse_value("-1e3") == -1000.0
    for text in ("", "NaN", "null", "None", "-", "inf", "abc"):
        assert np.isnan(parse_value(text))


# --------------------------------------------------------------------------- issue 12


def test_a_file_without_a_header_is_refused_not_shortened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bare.csv"
    write_two_columns(path, [str(T0 + 60 * i) for i in range(1, 300)],
                      [f"{v:.3f}" for v in noisy(299, seed=4)], f"{T0:.0f},30.5")  # fmt: skip
    assert cli("model", "score-csv", str(path)) == 2
    captured = capsys.readouterr()
    assert "has no header row: line 1" in captured.err and captured.out == ""
    iso = tmp_path / "iso.csv"
    iso.write_text("2024-05-01 12:00:00,1\n2024-05-01 12:01:00,2\n", encoding="utf-8")
    assert cli("model", "score-csv", str(iso)) == 2
    assert "add a header" in capsys.readouterr().err


def test_several_value_columns_are_each_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 900
    cpu, mem = noisy(n, seed=11, spike_at=700), noisy(n, seed=12)
    path = tmp_path / "host.csv"
    lines = ["time,cpu,mem"] + [
        f"{T0 + 60 * i:.0f},{a:.3f},{b:.3f}" for i, (a, b) in enumerate(zip(cpu, mem, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert cli("model", "score-csv", str(path), "--value-column", "cpu,mem", "-o", str(out),
               "--json") == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["value_column"] == "cpu,mem" and summary["series"] == 2
    assert summary["top"][0]["series"] == "value=cpu" and summary["top"][0]["line"] == 702
    rows = read_csv(out.read_text(encoding="utf-8"))
    assert rows[0] == ["time", "cpu", "mem", "anomaly_score_cpu", "anomaly_score_mem"]
    alone = detect(T0 + 60 * np.arange(n), np.round(mem, 3))
    np.testing.assert_allclose([float(r[4]) for r in rows[1:]], np.round(alone, 6), atol=1e-9)


def test_a_directory_is_scored_into_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    for name in ("a.csv", "sub/b.csv"):
        write_two_columns(source / name, [str(T0 + 60 * i) for i in range(400)],
                          [f"{v:.3f}" for v in noisy(400, seed=len(name))], "ts,value")  # fmt: skip
    (source / "notes.txt").write_text("not a csv\n", encoding="utf-8")
    target = tmp_path / "out"
    assert cli("model", "score-csv", str(source), "-o", str(target), "--json") == 0
    done = json.loads(capsys.readouterr().out)
    assert sorted(Path(entry["output"]).relative_to(target).as_posix() for entry in done) == [
        "a.csv", "sub/b.csv"
    ]  # fmt: skip
    assert read_csv((target / "sub" / "b.csv").read_text(encoding="utf-8"))[0][-1] == (
        "anomaly_score"
    )
    assert cli("model", "score-csv", str(source)) == 2
    assert "give --output DIR" in capsys.readouterr().err
    assert cli("model", "score-csv", str(source), "-o", str(source / "x")) == 2
    assert "inside" in capsys.readouterr().err


def test_the_output_file_gets_the_users_umask(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    write_two_columns(path, [str(T0 + 60 * i) for i in range(200)],
                      [f"{v:.3f}" for v in noisy(200, seed=1)], "timestamp,value")  # fmt: skip
    out = tmp_path / "out.csv"
    previous = os.umask(0o022)
    try:
        assert cli("model", "score-csv", str(path), "-o", str(out)) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
