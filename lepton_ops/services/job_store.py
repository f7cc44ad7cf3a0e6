"""The aggregator's job store: SQLite (standard library), WAL, every write a transaction.

Three tables:

- ``jobs``: one row per job - kind, params (JSON), strategy, status, times, the plan
  (JSON, :meth:`Plan.to_dict`), the last saved queue state (JSON), the result (JSON)
  or the reason it failed, and the digests of its artifacts (JSON ``{name: sha256}``).
- ``shard_results``: one row per ``(job_id, shard_id)`` - the node that ran it, its
  partial result (JSON) and seconds. The primary key makes a result count once per
  shard id: :meth:`JobStore.record_shard` returns False for a duplicate and leaves the
  first result in place.
- ``artifacts``: the jobs' binary inputs (a model, a data set), content-addressed: one
  row per SHA-256 digest, stored once however many jobs use it.
- ``drains`` (version 3): nodes that get no new shards for now - why, since when, until
  when (NULL: until undrained) - see :mod:`lepton_ops.services.drains`.

The schema version is kept in ``PRAGMA user_version``; a database written by a newer
lepton-ops is refused rather than guessed at.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lepton_ops.database import Durability, open_database, schema_version, transaction
from lepton_ops.errors import BadInput, OperationFailed

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    params      TEXT NOT NULL,
    strategy    TEXT NOT NULL,
    tasks       INTEGER NOT NULL,
    shards      INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    reason      TEXT,
    created_at  REAL NOT NULL,
    finished_at REAL,
    plan        TEXT NOT NULL,
    queue_state TEXT,
    result      TEXT,
    artifacts   TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS shard_results (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    shard_id    TEXT NOT NULL,
    node        TEXT NOT NULL,
    partial     TEXT NOT NULL,
    seconds     REAL NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (job_id, shard_id)
);
CREATE TABLE IF NOT EXISTS artifacts (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""
#: From schema version 1: jobs gain their artifacts, and the artifacts table appears.
_MIGRATE_FROM_1 = """
ALTER TABLE jobs ADD COLUMN artifacts TEXT;
CREATE TABLE IF NOT EXISTS artifacts (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""


class StoreWriteError(OperationFailed):
    """A write to the job store failed (disk full, I/O error): nothing of it was kept."""


class JobStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    params: dict[str, Any]
    strategy: str
    tasks: int
    shards: int
    status: JobStatus
    reason: str | None
    created_at: float
    finished_at: float | None
    plan: dict[str, Any]
    queue_state: dict[str, Any] | None
    result: dict[str, Any] | None
    #: The job's artifacts: ``{name: sha256}`` (empty for kinds without artifacts).
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactInfo:
    sha256: str
    size: int
    created_at: float


@dataclass(frozen=True)
class ShardResult:
    job_id: str
    shard_id: str
    node: str
    partial: dict[str, Any]
    seconds: float
    recorded_at: float


#: From schema version 2: the drains table.
_MIGRATE_FROM_2 = """
CREATE TABLE IF NOT EXISTS drains (
    node   TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since  REAL NOT NULL,
    until  REAL
);
"""
#: version -> (script, the version it leads to)
_STEPS = {0: (_SCHEMA, 2), 1: (_MIGRATE_FROM_1, 2), 2: (_MIGRATE_FROM_2, 3)}


class JobStore:
    """One SQLite database, shared by the aggregator's threads (one connection, a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        #: Each job's plan shard ids, read once (a stored plan never changes).
        self._plan_ids: dict[str, frozenset[str]] = {}
        # Every commit is synced (WAL + FULL): a 201/202 or an accepted shard survives a
        # power loss, not only a crash of the process (which NORMAL would survive).
        self._db = open_database(
            self.path, what="job store", durability=Durability.FULL, steps=_STEPS
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction; a failed write (not a constraint) is StoreWriteError."""
        return transaction(
            self._db, self._lock, _write_error, passthrough=(sqlite3.IntegrityError,)
        )

    @property
    def schema_version(self) -> int:
        with self._lock:
            return schema_version(self._db)

    def ping(self) -> str | None:
        """None when the store answers, else why not (a readiness check)."""
        try:
            with self._lock:
                self._db.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            return f"job store: {exc}"
        return None

    # ------------------------------------------------------------------ drains

    def drains(self) -> list[tuple[str, str, float, float | None]]:
        """Every recorded drain: ``(node, reason, since, until)``, expired ones included."""
        with self._lock:
            rows = self._db.execute("SELECT node, reason, since, until FROM drains ORDER BY node")
            return [
                (str(n), str(r), float(s), None if u is None else float(u)) for n, r, s, u in rows
            ]

    def put_drain(self, node: str, reason: str, since: float, until: float | None) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO drains (node, reason, since, until) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (node) DO UPDATE SET reason = excluded.reason, until = excluded.until",
                (node, reason, since, until),
            )

    def delete_drain(self, node: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM drains WHERE node = ?", (node,)).rowcount > 0

    # ------------------------------------------------------------------ jobs

    def create_job(
        self,
        job_id: str,
        *,
        kind: str,
        params: dict[str, Any],
        strategy: str,
        plan: dict[str, Any],
        created_at: float | None = None,
        artifacts: dict[str, str] | None = None,
    ) -> JobRecord:
        created = time.time() if created_at is None else created_at
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO jobs (id, kind, params, strategy, tasks, shards, status, "
                    "created_at, plan, artifacts) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                    (
                        job_id,
                        kind,
                        _dump(params),
                        strategy,
                        int(plan["tasks"]),
                        len(plan["shards"]),
                        created,
                        _dump(plan),
                        _dump(artifacts or {}),
                    ),
                )
        except sqlite3.IntegrityError:
            raise BadInput(f"job {job_id} already exists") from None
        return self.job(job_id)

    def job(self, job_id: str) -> JobRecord:
        """The job ``job_id``; BadInput if there is none."""
        with self._lock:
            row = self._db.execute(f"{_SELECT_JOB} WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise BadInput(f"no job {job_id!r}")
        return _job(row)

    def has_job(self, job_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone()
                is not None
            )

    def jobs(self, status: JobStatus | None = None) -> list[JobRecord]:
        """All jobs (or those with ``status``), newest first."""
        with self._lock:
            if status is None:
                rows = self._db.execute(f"{_SELECT_JOB} ORDER BY created_at DESC, id").fetchall()
            else:
                rows = self._db.execute(
                    f"{_SELECT_JOB} WHERE status = ? ORDER BY created_at, id", (status.value,)
                ).fetchall()
        return [_job(row) for row in rows]

    def save_queue_state(self, job_id: str, state: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET queue_state = ? WHERE id = ?", (_dump(state), job_id))

    def finish_job(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        reason: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Mark a running job finished (a finished job is left as it is)."""
        if status is JobStatus.RUNNING:
            raise BadInput("finish_job needs a final status")
        finished = time.time() if finished_at is None else finished_at
        with self._lock:
            self._plan_ids.pop(job_id, None)
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, result = ?, reason = ?, finished_at = ? "
                "WHERE id = ? AND status = 'running'",
                (
                    status.value,
                    None if result is None else _dump(result),
                    reason,
                    finished,
                    job_id,
                ),
            )

    # ------------------------------------------------------------------ shard results

    def record_shard(
        self,
        job_id: str,
        shard_id: str,
        *,
        node: str,
        partial: dict[str, Any],
        seconds: float,
    ) -> bool:
        """Keep a shard's result: True the first time, False for a duplicate (ignored).

        BadInput if the job's plan has no shard ``shard_id`` (or there is no such job).
        """
        if shard_id not in self.plan_shard_ids(job_id):
            raise BadInput(f"job {job_id} has no shard {shard_id!r} in its plan")
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO shard_results "
                "(job_id, shard_id, node, partial, seconds, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, shard_id, node, _dump(partial), float(seconds), time.time()),
            )
            return cursor.rowcount == 1

    def plan_shard_ids(self, job_id: str) -> frozenset[str]:
        """The shard ids of the job's stored plan (empty if there is no such job)."""
        with self._lock:
            known = self._plan_ids.get(job_id)
            if known is None:
                row = self._db.execute("SELECT plan FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    return frozenset()
                known = frozenset(str(s["id"]) for s in json.loads(row[0])["shards"])
                self._plan_ids[job_id] = known
            return known

    def shard_results(self, job_id: str) -> list[ShardResult]:
        """The job's recorded shard results, in shard id order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, shard_id, node, partial, seconds, recorded_at "
                "FROM shard_results WHERE job_id = ? ORDER BY shard_id",
                (job_id,),
            ).fetchall()
        return [
            ShardResult(
                job_id=row[0],
                shard_id=row[1],
                node=row[2],
                partial=json.loads(row[3]),
                seconds=float(row[4]),
                recorded_at=float(row[5]),
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ artifacts

    def put_artifact(self, sha256: str, data: bytes) -> bool:
        """Keep an artifact under its digest (checked by the caller): True if it is new."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO artifacts (sha256, size, data, created_at) "
                "VALUES (?, ?, ?, ?)",
                (sha256, len(data), sqlite3.Binary(data), time.time()),
            )
            return cursor.rowcount == 1

    def artifact_info(self, sha256: str) -> ArtifactInfo | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256, size, created_at FROM artifacts WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else ArtifactInfo(str(row[0]), int(row[1]), float(row[2]))

    def artifact(self, sha256: str) -> bytes | None:
        """The artifact's bytes, or None if the store has no artifact with that digest."""
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM artifacts WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def recorded_shard_ids(self, job_id: str) -> set[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT shard_id FROM shard_results WHERE job_id = ?", (job_id,)
            ).fetchall()
        return {str(row[0]) for row in rows}

    def count_shards(self, job_id: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM shard_results WHERE job_id = ?", (job_id,)
            ).fetchone()
        return int(row[0])


_SELECT_JOB = (
    "SELECT id, kind, params, strategy, tasks, shards, status, reason, created_at, "
    "finished_at, plan, queue_state, result, artifacts FROM jobs"
)


def _job(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        id=row[0],
        kind=row[1],
        params=json.loads(row[2]),
        strategy=row[3],
        tasks=int(row[4]),
        shards=int(row[5]),
        status=JobStatus(row[6]),
        reason=row[7],
        created_at=float(row[8]),
        finished_at=None if row[9] is None else float(row[9]),
        plan=json.loads(row[10]),
        queue_state=None if row[11] is None else json.loads(row[11]),
        result=None if row[12] is None else json.loads(row[12]),
        artifacts={} if row[13] is None else json.loads(row[13]),
    )


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _write_error(error: sqlite3.Error) -> StoreWriteError:
    return StoreWriteError(f"could not write to the job store: {error}")
