"""The history's database: opening it, its transactions, and what every record family
shares (see :mod:`~lepton_ops.telemetry.history.store`)."""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from lepton_ops.database import (
    Durability,
    migrate,
    open_database,
    schema_version,
    steps_of,
    transaction,
)
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.settings import StateLayout
from lepton_ops.telemetry.history import schema

WHAT = "telemetry store"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _steps() -> dict[int, tuple[str, int]]:
    return steps_of(schema.MIGRATIONS)  # read at each open: tests add steps


def history_path(state_dir: Path) -> Path:
    """Where the controller keeps the fleet's history inside its state directory."""
    return StateLayout(state_dir).history


class HistoryBase:
    """One SQLite database; safe to share between threads (one connection, a lock).

    Other processes may open the same file: SQLite's locks serialise the writers (a
    write waits up to 30 s), and WAL lets readers read while a collection is written.
    Times are unix epoch seconds throughout; a window ``[since, until]`` includes both
    ends, and a missing end is open.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """Open (and create, unless ``read_only``) the store at ``path``.

        ``read_only``: a reader that writes nothing - no directory, no file. A store that
        does not exist yet reads as an empty one (held in memory); an existing one is
        opened with SQLite's ``mode=ro`` (after bringing an older schema up to date).
        """
        self.path = Path(path)
        self.read_only = read_only
        #: False when a read-only store found no file: it is empty, and stays so.
        self.exists = self.path.is_file()
        self._lock = threading.RLock()
        if read_only:
            self._db = self._open_read_only()
            return
        self._db = open_database(self.path, what=WHAT, durability=Durability.NORMAL, steps=_steps())

    def _open_read_only(self) -> sqlite3.Connection:
        try:
            if not self.exists:
                db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                migrate(db, self.path, what=WHAT, steps=_steps())
                return db
            db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
            )
            if schema_version(db) < len(schema.MIGRATIONS):
                db.close()
                type(self)(self.path).close()  # an older file: migrate it once
                return self._open_read_only()
            migrate(db, self.path, what=WHAT, steps=_steps())  # refuses newer ones
            return db
        except sqlite3.Error as exc:
            raise OperationFailed(f"{WHAT} {self.path} cannot be read: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return schema_version(self._db)

    # ------------------------------------------------------------------ plumbing

    def _transaction(
        self, begin: str = "BEGIN IMMEDIATE"
    ) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction; SQLite errors become OperationFailed (after the rollback)."""
        return transaction(self._db, self._lock, self._failed, begin=begin)

    def _failed(self, error: sqlite3.Error) -> OperationFailed:
        return OperationFailed(f"{WHAT} {self.path}: {error}")

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: every query in it sees the same snapshot."""
        return self._transaction("BEGIN DEFERRED")

    def has_table(self, name: str) -> bool:
        """Whether the file holds a table ``name`` (one a later schema version may add)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        return row is not None

    def table_rows(
        self, name: str, *, order_by: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Every row of table ``name`` as ``{column: value}`` (``[]`` if there is no such table).

        For readers of tables this version does not define itself (the report reads the
        remediation audit this way). With ``order_by`` (a column), rows are sorted by it and
        ``since`` keeps those at or after it. Names are checked against the file's schema,
        never pasted in unchecked.
        """
        if not _IDENTIFIER.fullmatch(name):
            raise BadInput(f"not a table name: {name!r}")
        with self._lock:
            if not self.has_table(name):
                return []
            columns = [str(row[1]) for row in self._db.execute(f'PRAGMA table_info("{name}")')]
            if order_by is not None and order_by not in columns:
                raise BadInput(f"table {name} has no column {order_by!r}")
            # name and order_by are identifiers checked against the file's schema above
            sql, params = f'SELECT * FROM "{name}"', []  # noqa: S608
            if order_by is not None:
                if since is not None:
                    sql += f' WHERE "{order_by}" >= ?'
                    params.append(since)
                sql += f' ORDER BY "{order_by}"'
            rows = self._db.execute(sql, params).fetchall()
        return [dict(zip(columns, row, strict=True)) for row in rows]


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """``WHERE`` with the conditions whose value is not None, and their parameters."""
    used = [(clause, value) for clause, value in conditions if value is not None]
    if not used:
        return "", []
    return "WHERE " + " AND ".join(clause for clause, _ in used), [value for _, value in used]
