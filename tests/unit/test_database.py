"""The one way lepton-ops opens SQLite: WAL, foreign keys, the durability asked for, the
schema brought up to date, newer files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_ops.database import Durability, latest_version, open_database, steps_of
from lepton_ops.errors import OperationFailed

STEPS = steps_of(("CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y INTEGER REFERENCES a (x))"))


@pytest.mark.parametrize(("durability", "level"), [(Durability.FULL, 2), (Durability.NORMAL, 1)])
def test_opened_in_wal_with_the_asked_durability(
    tmp_path: Path, durability: Durability, level: int
) -> None:
    db = open_database(
        tmp_path / "d" / "x.sqlite3", what="test store", durability=durability, steps=STEPS
    )
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == level
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA user_version").fetchone()[0] == latest_version(STEPS) == 2
    finally:
        db.close()


def test_a_newer_file_is_refused_and_a_failed_step_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    open_database(path, what="test store", durability=Durability.FULL, steps=STEPS).close()
    with pytest.raises(
        OperationFailed, match=r"test store .* schema version 2; this lepton-ops knows up to 1"
    ):
        open_database(
            path,
            what="test store",
            durability=Durability.FULL,
            steps=steps_of(("CREATE TABLE a (x)",)),
        )
    broken = {**STEPS, 2: ("CREATE TABLE c (z); CREATE TABLE a (x)", 3)}
    with pytest.raises(OperationFailed, match="migrating schema version 2 to 3 failed"):
        open_database(path, what="test store", durability=Durability.FULL, steps=broken)
    db = open_database(path, what="test store", durability=Durability.FULL, steps=STEPS)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"a", "b"}
    finally:
        db.close()
