"""How lepton-ops opens its SQLite files (standard library): WAL, foreign keys, a chosen
durability, and the schema brought up to date step by step.

Both stores use it: the fleet's history on the controller
(:mod:`~lepton_ops.telemetry.history`) and the aggregator's job store
(:mod:`~lepton_ops.services.job_store`). The schema version is kept in
``PRAGMA user_version``; a file written by a newer lepton-ops is refused rather than
guessed at, and a failed step changes nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from lepton_ops.errors import LeptonError, OperationFailed

#: version -> (script, the version it leads to)
Steps = Mapping[int, tuple[str, int]]


class Durability(StrEnum):
    #: every commit synced: an acknowledged write survives a power loss
    FULL = "FULL"
    #: commits reach the WAL file before returning: they survive a killed process; the
    #: last ones may be lost on a power loss (the file stays consistent)
    NORMAL = "NORMAL"


def steps_of(migrations: tuple[str, ...]) -> dict[int, tuple[str, int]]:
    """A list of migrations, ``migrations[v]`` taking version ``v`` to ``v + 1``, as steps."""
    return {version: (script, version + 1) for version, script in enumerate(migrations)}


def open_database(
    path: Path, *, what: str, durability: Durability, steps: Steps
) -> sqlite3.Connection:
    """An autocommit connection to ``path`` (created with its directory), migrated.

    ``what`` names the file in errors ("job store"); every failure is one OperationFailed
    line, and a connection that failed half-way is closed.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise OperationFailed(f"{what} {path} cannot be opened: {exc}") from None
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OperationFailed(f"{what} {path}: SQLite refused WAL mode (got {mode!r})")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute(f"PRAGMA synchronous={durability.value}")
        migrate(db, path, what=what, steps=steps)
    except sqlite3.Error as exc:
        db.close()
        raise OperationFailed(f"{what} {path} is not usable: {exc}") from None
    except LeptonError:
        db.close()
        raise
    return db


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def latest_version(steps: Steps) -> int:
    return max((target for _, target in steps.values()), default=0)


def migrate(db: sqlite3.Connection, path: Path, *, what: str, steps: Steps) -> None:
    """Bring the database (an autocommit connection) to the latest version of ``steps``."""
    target = latest_version(steps)
    version = schema_version(db)
    if version > target:
        raise OperationFailed(
            f"{what} {path} has schema version {version}; this lepton-ops "
            f"knows up to {target}: upgrade lepton-ops"
        )
    while version < target:
        db.execute("BEGIN IMMEDIATE")
        leads_to = version + 1
        try:
            # Another process may have migrated while this one waited for the lock.
            version = schema_version(db)
            if version < target:
                script, leads_to = steps[version]
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {leads_to}")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise OperationFailed(
                f"{what} {path}: migrating schema version {version} to {leads_to} failed "
                f"(nothing was changed): {exc}"
            ) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        version = schema_version(db)


@contextmanager
def transaction(
    db: sqlite3.Connection,
    lock: threading.RLock,
    failed: Callable[[sqlite3.Error], Exception],
    *,
    begin: str = "BEGIN IMMEDIATE",
    passthrough: tuple[type[sqlite3.Error], ...] = (),
) -> Iterator[sqlite3.Connection]:
    """One transaction on ``db`` under ``lock``: committed if the block ends, rolled back if
    it raises. A SQLite error becomes ``failed(error)`` (after the rollback), except the
    ``passthrough`` kinds (a constraint the caller handles), which are raised as they are.
    """
    with lock:
        try:
            db.execute(begin)
            try:
                yield db
            except BaseException:
                _rollback(db)
                raise
            db.execute("COMMIT")
        except passthrough:
            raise
        except sqlite3.Error as exc:
            _rollback(db)
            raise failed(exc) from None


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
