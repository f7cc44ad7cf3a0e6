"""The telemetry history: SQLite (standard library), WAL, one transaction per collection.

The tables are described in :mod:`~lepton_ops.telemetry.store_schema`. The file lives
in the controller's state directory (:func:`store_path`).

Durability: ``synchronous=NORMAL`` in WAL mode. A transaction's pages are written to
the WAL file (``write(2)``) before COMMIT returns; killing the process, SIGKILL
included, cannot undo a write the kernel has accepted, so every collection whose commit
returned survives, and one that was interrupted is rolled back when the file is next
opened. What NORMAL gives up against FULL is the fsync at each commit: the last
transactions on a *power loss* or kernel crash (the database stays consistent even
then). The requirement is a killed collection process, so an fsync per collection would
buy nothing it asks for.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

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
from lepton_ops.telemetry import store_schema
from lepton_ops.telemetry.export import Row, write_csv, write_prometheus
from lepton_ops.telemetry.facts import Labels, NodeOutcome, NodeStatus
from lepton_ops.telemetry.records import (
    CollectionRecord,
    CollectionSource,
    FaultOutcome,
    FaultRecord,
    IncidentRecord,
    JobRunNode,
    JobRunRecord,
    LatestSample,
    PruneCounts,
    RemediationRecord,
    Series,
)

_SeriesKey = tuple[str, str, Labels]
WHAT = "telemetry store"


def _steps() -> dict[int, tuple[str, int]]:
    return steps_of(store_schema.MIGRATIONS)  # read at each open: tests add steps


def store_path(state_dir: Path) -> Path:
    """Where the controller keeps its telemetry history inside its state directory."""
    return StateLayout(state_dir).history


class TelemetryStore:
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
        # name -> id, and (node, metric, labels) -> (node id, series id); see _series_ids
        self._node_ids: dict[str, int] = {}
        self._series_ids_cache: dict[_SeriesKey, tuple[int, int]] = {}
        self._cache_version = -1
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
            if schema_version(db) < len(store_schema.MIGRATIONS):
                db.close()
                TelemetryStore(self.path).close()  # an older file: migrate it once
                return self._open_read_only()
            migrate(db, self.path, what=WHAT, steps=_steps())  # refuses newer ones
            return db
        except sqlite3.Error as exc:
            raise OperationFailed(f"{WHAT} {self.path} cannot be read: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TelemetryStore:
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

    def _forget_ids(self) -> None:
        self._node_ids.clear()
        self._series_ids_cache.clear()

    def _series_ids(
        self, db: sqlite3.Connection, keys: Iterable[_SeriesKey]
    ) -> dict[_SeriesKey, tuple[int, int]]:
        """``(node id, series id)`` of each key, creating the nodes and series not there yet.

        Ids are cached, and a node's series are loaded whole the first time it is seen:
        rows of ``nodes`` and ``series`` are only deleted by a prune, which clears the
        cache on this connection. Any other connection's commit changes
        ``PRAGMA data_version``, checked here under the write lock, and clears it too.
        """
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._cache_version:
            self._forget_ids()
            self._cache_version = version
        cache = self._series_ids_cache
        for key in keys:
            if key in cache:
                continue
            node, metric, labels = key
            node_id = self._node_ids.get(node)
            if node_id is None:
                node_id = self._node_ids[node] = self._load_node(db, node)
            canonical = (node, metric, tuple(sorted(labels)))
            if canonical not in cache:
                cursor = db.execute(
                    "INSERT INTO series (node_id, metric, labels, last_ts, last_value) "
                    "VALUES (?, ?, ?, ?, 0)",
                    (node_id, metric, canonical_labels(dict(labels)), float("-inf")),
                )
                cache[canonical] = (node_id, int(cursor.lastrowid or 0))
            cache[key] = cache[canonical]
        return cache

    def _load_node(self, db: sqlite3.Connection, node: str) -> int:
        """The node's id (created if new), with all its series put in the cache."""
        row = db.execute("SELECT id FROM nodes WHERE name = ?", (node,)).fetchone()
        if row is None:
            return int(db.execute("INSERT INTO nodes (name) VALUES (?)", (node,)).lastrowid or 0)
        node_id = int(row[0])
        for series_id, metric, labels in db.execute(
            "SELECT id, metric, labels FROM series WHERE node_id = ?", (node_id,)
        ):
            self._series_ids_cache[node, metric, _labels_key(labels)] = (node_id, int(series_id))
        return node_id

    # ------------------------------------------------------------------ writing

    def record_collection(
        self,
        outcomes: Iterable[NodeOutcome],
        source: CollectionSource | str = CollectionSource.ANSIBLE,
        *,
        started_at: float | None = None,
        finished_at: float | None = None,
    ) -> CollectionRecord:
        """Store one collection - every node's samples and incidents - in one transaction.

        All of it is stored, or (on an error, or the process being killed) none of it.
        A point a series already has at that time is kept (not counted, not replaced).
        ``started_at`` defaults to the earliest outcome, ``finished_at`` to now.
        """
        outcomes = list(outcomes)
        kind = _source(source)
        nodes = [outcome.node for outcome in outcomes]
        if len(set(nodes)) != len(nodes):
            twice = sorted({node for node in nodes if nodes.count(node) > 1})
            raise BadInput(f"a collection has one outcome per node; twice: {', '.join(twice)}")
        finished = time.time() if finished_at is None else float(finished_at)
        if started_at is None:
            started_at = min((outcome.ts for outcome in outcomes), default=finished)
        started = min(float(started_at), finished)
        ok = sum(1 for outcome in outcomes if outcome.status is NodeStatus.OK)
        failed = len(outcomes) - ok
        samples = [sample for outcome in outcomes for sample in outcome.samples()]
        incidents = [incident for outcome in outcomes for incident in outcome.incidents()]
        try:
            with self._transaction() as db:
                ids = self._series_ids(db, [(s.node, s.metric, s.labels) for s in samples])
                rows = []
                for node, metric, labels, ts, value in samples:
                    node_id, series_id = ids[node, metric, labels]
                    rows.append((node_id, ts, series_id, value))
                # In key order, each insert lands next to the previous one.
                rows.sort()
                stored = db.executemany(
                    "INSERT OR IGNORE INTO samples (node_id, ts, series_id, value) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                ).rowcount
                db.executemany(
                    "UPDATE series SET last_ts = ?, last_value = ? WHERE id = ? AND last_ts < ?",
                    [(ts, value, series_id, ts) for _, ts, series_id, value in rows],
                )
                collection_id = db.execute(
                    "INSERT INTO collections (started_at, finished_at, source, nodes_ok, "
                    "nodes_failed, samples, incidents) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (started, finished, kind, ok, failed, stored, len(incidents)),
                ).lastrowid
                db.executemany(
                    "INSERT INTO incidents (node, kind, subject, detail, ts, collection_id) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (i.node, i.kind.value, i.subject, i.detail, i.ts, collection_id)
                        for i in incidents
                    ],
                )
        except BaseException:
            # The nodes and series this transaction created are gone with it.
            self._forget_ids()
            raise
        return CollectionRecord(
            int(collection_id or 0), started, finished, kind, ok, failed, stored, len(incidents)
        )

    def prune(self, older_than_s: float, *, now: float | None = None) -> PruneCounts:
        """Remove what is older than ``older_than_s`` seconds, and series and nodes left empty."""
        if isinstance(older_than_s, bool) or not isinstance(older_than_s, int | float):
            raise BadInput(f"prune needs an age in seconds, got {older_than_s!r}")
        if not older_than_s > 0:
            raise BadInput(f"prune needs an age of more than 0 seconds, got {older_than_s!r}")
        cutoff = (time.time() if now is None else now) - float(older_than_s)
        with self._transaction() as db:
            self._forget_ids()
            # One range of the key per node: no scan of the whole table.
            samples = db.execute(
                "DELETE FROM samples WHERE node_id IN (SELECT id FROM nodes) AND ts < ?",
                (cutoff,),
            ).rowcount
            # A series' points are all at or before its last_ts: these have none left.
            series = db.execute("DELETE FROM series WHERE last_ts < ?", (cutoff,)).rowcount
            nodes = db.execute(
                "DELETE FROM nodes WHERE NOT EXISTS "
                "(SELECT 1 FROM series WHERE series.node_id = nodes.id)"
            ).rowcount
            incidents = db.execute("DELETE FROM incidents WHERE ts < ?", (cutoff,)).rowcount
            # A fault is a label: kept while it runs, pruned with the rest once it ended.
            db.execute("DELETE FROM faults WHERE ended_at IS NOT NULL AND ended_at < ?", (cutoff,))
            db.execute("DELETE FROM jobs WHERE finished_at < ?", (cutoff,))
            collections = db.execute(
                "DELETE FROM collections WHERE finished_at < ?", (cutoff,)
            ).rowcount
        return PruneCounts(samples, series, nodes, incidents, collections)

    # ------------------------------------------------------------------ reading

    def series(
        self,
        node: str | None = None,
        metric: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Series]:
        """The series matching the filters with their points in ``[since, until]``.

        A series without a point in the window is left out. Ordered by node, metric
        and labels.
        """
        found: list[Series] = []
        with self._read() as db:
            for node_id, wanted in self._select_series(db, node, metric):
                for series_id, ts, value in self._node_points(
                    db, node_id, since, until, list(wanted) if metric else None
                ):
                    entry = wanted.get(series_id)
                    if entry is not None:
                        entry.points.append((ts, value))
                found.extend(entry for entry in wanted.values() if entry.points)
        return found

    def latest(
        self, node: str | None = None, metric: str | None = None, since: float | None = None
    ) -> list[LatestSample]:
        """The latest point of each series (of those whose latest point is not before ``since``)."""
        return [
            LatestSample(row[0], row[1], json.loads(row[2]), row[3], row[4])
            for row in self._latest_rows(node, metric, since)
        ]

    def nodes(self) -> list[str]:
        """Every node that has a series, sorted."""
        with self._lock:
            rows = self._db.execute("SELECT name FROM nodes ORDER BY name").fetchall()
        return [str(row[0]) for row in rows]

    def metrics(self, node: str | None = None) -> list[str]:
        """Every metric stored (for ``node``), sorted."""
        where, params = _where(("n.name = ?", node))
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT_METRICS} {where} ORDER BY s.metric",
                params,
            ).fetchall()
        return [str(row[0]) for row in rows]

    def incidents(
        self,
        node: str | None = None,
        since: float | None = None,
        kind: str | None = None,
        until: float | None = None,
    ) -> list[IncidentRecord]:
        """Incidents matching the filters, oldest first."""
        where, params = _where(
            ("node = ?", node), ("ts >= ?", since), ("ts <= ?", until), ("kind = ?", kind)
        )
        with self._lock:
            rows = self._db.execute(f"{_SELECT_INCIDENT} {where} ORDER BY ts, id", params)
            return [IncidentRecord(*row) for row in rows]

    def collections(self, since: float | None = None) -> list[CollectionRecord]:
        """Collections finished at ``since`` or later, oldest first."""
        where, params = _where(("finished_at >= ?", since))
        with self._lock:
            rows = self._db.execute(f"{_SELECT_COLLECTION} {where} ORDER BY id", params)
            return [CollectionRecord(*row) for row in rows]

    def collection(self, collection_id: int) -> CollectionRecord:
        """The collection ``collection_id``; BadInput if there is none."""
        with self._lock:
            row = self._db.execute(
                f"{_SELECT_COLLECTION} WHERE id = ?", (collection_id,)
            ).fetchone()
        if row is None:
            raise BadInput(f"no telemetry collection {collection_id!r}")
        return CollectionRecord(*row)

    # ------------------------------------------------------------------ faults

    def start_fault(
        self,
        node: str,
        fault: str,
        params: dict[str, Any],
        *,
        started_at: float | None = None,
        campaign: str | None = None,
    ) -> int:
        """Record a fault injected on ``node``; its id."""
        started = time.time() if started_at is None else float(started_at)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO faults (node, fault, params, campaign, started_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (node, fault, json.dumps(params, sort_keys=True), campaign, started),
            )
        return int(cursor.lastrowid or 0)

    def mark_fault_failed(self, fault_id: int, failed_at: float, failure: str) -> bool:
        """Record the moment the fault's node failed; only the first moment counts.

        True if this call recorded it (False: already recorded, or no such fault).
        """
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE faults SET failed_at = ?, failure = ? WHERE id = ? AND failed_at IS NULL",
                (float(failed_at), failure, fault_id),
            ).rowcount
        return changed > 0

    def end_fault(
        self,
        fault_id: int,
        outcome: FaultOutcome | str,
        *,
        ended_at: float | None = None,
        detail: str = "",
    ) -> bool:
        """Record how and when a running fault ended; False if it had already ended."""
        ended = time.time() if ended_at is None else float(ended_at)
        value = FaultOutcome(outcome).value
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE faults SET ended_at = ?, outcome = ?, detail = ? "
                "WHERE id = ? AND ended_at IS NULL",
                (ended, value, detail, fault_id),
            ).rowcount
        return changed > 0

    def faults(
        self,
        node: str | None = None,
        since: float | None = None,
        until: float | None = None,
        fault: str | None = None,
        campaign: str | None = None,
        active: bool | None = None,
    ) -> list[FaultRecord]:
        """Faults that started in ``[since, until]`` (matching the filters), oldest first."""
        where, params = _where(
            ("node = ?", node),
            ("started_at >= ?", since),
            ("started_at <= ?", until),
            ("fault = ?", fault),
            ("campaign = ?", campaign),
        )
        if active is not None:
            clause = "ended_at IS NULL" if active else "ended_at IS NOT NULL"
            where = f"{where} AND {clause}" if where else f"WHERE {clause}"
        with self._lock:
            rows = self._db.execute(f"{_SELECT_FAULT} {where} ORDER BY started_at, id", params)
            return [_fault(row) for row in rows]

    # ------------------------------------------------------------------ jobs

    def record_job(self, job: JobRunRecord) -> None:
        """Store a finished job; a job already stored under its id is replaced.

        ``lepton-ops job result`` or ``job watch`` may see the same job again: its row
        is then rewritten, never doubled.
        """
        nodes = json.dumps([node.to_dict() for node in job.nodes], sort_keys=True)
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs (id, kind, strategy, tasks, status, submitted_at, "
                "finished_at, makespan_s, predicted_makespan_s, predicted_from, nodes, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.job_id, job.kind, job.strategy, job.tasks, job.status,
                    job.submitted_at, job.finished_at, job.makespan_s,
                    job.predicted_makespan_s, job.predicted_from, nodes, job.recorded_at,
                ),
            )  # fmt: skip

    def jobs(self, since: float | None = None, until: float | None = None) -> list[JobRunRecord]:
        """Jobs that finished in ``[since, until]``, oldest first."""
        where, params = _where(("finished_at >= ?", since), ("finished_at <= ?", until))
        with self._lock:
            rows = self._db.execute(f"{_SELECT_JOB} {where} ORDER BY finished_at, id", params)
            return [_job(row) for row in rows]

    # ------------------------------------------------------------------ other tables

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

    # ------------------------------------------------------------------ remediation audit

    def start_remediation(
        self,
        node: str,
        action: str,
        *,
        trigger: str,
        reason: str,
        before: dict[str, Any],
        started_at: float | None = None,
    ) -> int:
        """Record that ``action`` starts on ``node`` (before it runs); its id."""
        started = time.time() if started_at is None else float(started_at)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO remediations (node, action, trigger, reason, started_at, before) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (node, action, trigger, reason, started, json.dumps(before, sort_keys=True)),
            )
        return int(cursor.lastrowid or 0)

    def finish_remediation(
        self,
        remediation_id: int,
        outcome: str,
        *,
        after: dict[str, Any],
        detail: str = "",
        finished_at: float | None = None,
    ) -> bool:
        """Record how a remediation ended; False if it had already ended."""
        finished = time.time() if finished_at is None else float(finished_at)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE remediations SET finished_at = ?, outcome = ?, after = ?, detail = ? "
                "WHERE id = ? AND finished_at IS NULL",
                (finished, outcome, json.dumps(after, sort_keys=True), detail, remediation_id),
            ).rowcount
        return changed > 0

    def remediations(
        self,
        node: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[RemediationRecord]:
        """Remediations started in ``[since, until]`` (on ``node``), oldest first."""
        where, params = _where(
            ("node = ?", node), ("started_at >= ?", since), ("started_at <= ?", until)
        )
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT_REMEDIATION} {where} ORDER BY started_at, id", params
            ).fetchall()
        return [_remediation(row) for row in rows]

    # ------------------------------------------------------------------ exports

    def export_csv(
        self,
        stream: TextIO,
        *,
        node: str | None = None,
        metric: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Every point matching the filters as CSV, by node then time; the rows written.

        The columns are :data:`~lepton_ops.telemetry.export.CSV_HEADER`.
        """
        with self._read() as db:
            return write_csv(stream, self._rows(db, node, metric, since, until))

    def export_prometheus(
        self,
        stream: TextIO,
        *,
        node: str | None = None,
        metric: str | None = None,
        since: float | None = None,
    ) -> int:
        """The latest point of each series as Prometheus text exposition; samples written."""
        return write_prometheus(stream, self._latest_rows(node, metric, since))

    # ------------------------------------------------------------------ queries

    @staticmethod
    def _select_series(
        db: sqlite3.Connection, node: str | None, metric: str | None
    ) -> list[tuple[int, dict[int, Series]]]:
        """Per node id (by name), its series matching the filters (by metric, labels)."""
        where, params = _where(("n.name = ?", node), ("s.metric = ?", metric))
        by_node: dict[int, dict[int, Series]] = {}
        for node_id, name, series_id, metric_, labels in db.execute(
            f"{_SELECT_SERIES} {where} ORDER BY n.name, s.metric, s.labels",
            params,
        ):
            by_node.setdefault(node_id, {})[series_id] = Series(
                name, metric_, json.loads(labels), []
            )
        return list(by_node.items())

    @staticmethod
    def _node_points(
        db: sqlite3.Connection,
        node_id: int,
        since: float | None,
        until: float | None,
        series_ids: list[int] | None,
    ) -> Iterator[tuple[int, float, float]]:
        """``(series_id, ts, value)`` of a node in the window: one range of the key."""
        low = float("-inf") if since is None else float(since)
        high = float("inf") if until is None else float(until)
        only = ""
        if series_ids is not None:
            only = f"AND series_id IN ({', '.join('?' * len(series_ids))})"
        return iter(
            db.execute(
                f"{_SELECT_POINTS} {only} ORDER BY ts, series_id",
                (node_id, low, high, *(series_ids or ())),
            )
        )

    def _rows(
        self,
        db: sqlite3.Connection,
        node: str | None,
        metric: str | None,
        since: float | None,
        until: float | None,
    ) -> Iterator[Row]:
        for node_id, wanted in self._select_series(db, node, metric):
            keys = {
                sid: (s.node, s.metric, canonical_labels(s.labels)) for sid, s in wanted.items()
            }
            for series_id, ts, value in self._node_points(
                db, node_id, since, until, list(wanted) if metric else None
            ):
                key = keys.get(series_id)
                if key is not None:
                    yield (*key, ts, value)

    def _latest_rows(self, node: str | None, metric: str | None, since: float | None) -> list[Row]:
        where, params = _where(
            ("n.name = ?", node), ("s.metric = ?", metric), ("s.last_ts >= ?", since)
        )
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT_LATEST} {where} ORDER BY n.name, s.metric, s.labels",
                params,
            ).fetchall()
        return rows


_SERIES_NODES = "FROM series AS s JOIN nodes AS n ON n.id = s.node_id"
_SELECT_SERIES = f"SELECT n.id, n.name, s.id, s.metric, s.labels {_SERIES_NODES}"
_SELECT_LATEST = f"SELECT n.name, s.metric, s.labels, s.last_ts, s.last_value {_SERIES_NODES}"
_SELECT_METRICS = f"SELECT DISTINCT s.metric {_SERIES_NODES}"
# The order of the key: a node's window is read without a sort.
_SELECT_POINTS = (
    "SELECT series_id, ts, value FROM samples WHERE node_id = ? AND ts >= ? AND ts <= ?"
)
_SELECT_INCIDENT = "SELECT id, node, kind, subject, detail, ts, collection_id FROM incidents"
_SELECT_FAULT = (
    "SELECT id, node, fault, params, campaign, started_at, failed_at, failure, ended_at, "
    "outcome, detail FROM faults"
)
_SELECT_REMEDIATION = (
    "SELECT id, node, action, trigger, reason, started_at, finished_at, outcome, before, "
    "after, detail FROM remediations"
)
_SELECT_COLLECTION = (
    "SELECT id, started_at, finished_at, source, nodes_ok, nodes_failed, samples, incidents "
    "FROM collections"
)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SELECT_JOB = (
    "SELECT id, kind, strategy, tasks, status, submitted_at, finished_at, makespan_s, "
    "predicted_makespan_s, predicted_from, nodes, recorded_at FROM jobs"
)


def _job(row: tuple[Any, ...]) -> JobRunRecord:
    (job_id, kind, strategy, tasks, status, submitted, finished, makespan, predicted, basis,
     nodes, recorded) = row  # fmt: skip
    return JobRunRecord(
        job_id=str(job_id),
        kind=str(kind),
        strategy=str(strategy),
        tasks=int(tasks),
        status=str(status),
        submitted_at=None if submitted is None else float(submitted),
        finished_at=float(finished),
        makespan_s=None if makespan is None else float(makespan),
        predicted_makespan_s=None if predicted is None else float(predicted),
        predicted_from=str(basis),
        nodes=tuple(JobRunNode.from_dict(node) for node in json.loads(nodes)),
        recorded_at=float(recorded),
    )


def _fault(row: tuple[Any, ...]) -> FaultRecord:
    fault_id, node, fault, params, campaign, started, failed, failure, ended, outcome, info = row
    return FaultRecord(
        int(fault_id),
        str(node),
        str(fault),
        json.loads(params),
        campaign,
        float(started),
        None if failed is None else float(failed),
        failure,
        None if ended is None else float(ended),
        outcome,
        str(info),
    )


def _remediation(row: tuple[Any, ...]) -> RemediationRecord:
    return RemediationRecord(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        float(row[5]),
        None if row[6] is None else float(row[6]),
        row[7],
        json.loads(row[8]),
        None if row[9] is None else json.loads(row[9]),
        str(row[10]),
    )


def canonical_labels(labels: dict[str, str]) -> str:
    """The text a label set is stored as: JSON, keys sorted, no spaces."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _labels_key(text: str) -> Labels:
    labels: dict[str, Any] = json.loads(text)
    return tuple(sorted((str(name), str(value)) for name, value in labels.items()))


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """``WHERE`` with the conditions whose value is not None, and their parameters."""
    used = [(clause, value) for clause, value in conditions if value is not None]
    if not used:
        return "", []
    return "WHERE " + " AND ".join(clause for clause, _ in used), [value for _, value in used]


def _source(source: CollectionSource | str) -> str:
    try:
        return CollectionSource(source).value
    except ValueError:
        known = ", ".join(s.value for s in CollectionSource)
        raise BadInput(f"unknown telemetry source {source!r} (known: {known})") from None
