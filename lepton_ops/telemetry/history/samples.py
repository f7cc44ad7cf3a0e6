"""Samples, incidents and collections: what telemetry records (and prunes and exports)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from lepton_ops.errors import BadInput
from lepton_ops.telemetry.export import Row, write_csv, write_prometheus
from lepton_ops.telemetry.facts import Labels, NodeOutcome, NodeStatus
from lepton_ops.telemetry.history.base import HistoryBase, _where
from lepton_ops.telemetry.records import (
    CollectionRecord,
    CollectionSource,
    IncidentRecord,
    LatestSample,
    PruneCounts,
    Series,
)

_SeriesKey = tuple[str, str, Labels]
_SERIES_NODES = "FROM series AS s JOIN nodes AS n ON n.id = s.node_id"
_SELECT_SERIES = f"SELECT n.id, n.name, s.id, s.metric, s.labels {_SERIES_NODES}"
_SELECT_LATEST = f"SELECT n.name, s.metric, s.labels, s.last_ts, s.last_value {_SERIES_NODES}"
_SELECT_METRICS = f"SELECT DISTINCT s.metric {_SERIES_NODES}"
_SELECT_POINTS = (
    "SELECT series_id, ts, value FROM samples WHERE node_id = ? AND ts >= ? AND ts <= ?"
)
_SELECT_INCIDENT = "SELECT id, node, kind, subject, detail, ts, collection_id FROM incidents"
_SELECT_COLLECTION = (
    "SELECT id, started_at, finished_at, source, nodes_ok, nodes_failed, samples, incidents "
    "FROM collections"
)


class SampleHistory(HistoryBase):
    """The telemetry part of the history: one transaction per collection."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        # name -> id, and (node, metric, labels) -> (node id, series id); see _series_ids
        self._node_ids: dict[str, int] = {}
        self._series_ids_cache: dict[_SeriesKey, tuple[int, int]] = {}
        self._cache_version = -1
        super().__init__(path, read_only=read_only)

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


def canonical_labels(labels: dict[str, str]) -> str:
    """The text a label set is stored as: JSON, keys sorted, no spaces."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _labels_key(text: str) -> Labels:
    labels: dict[str, Any] = json.loads(text)
    return tuple(sorted((str(name), str(value)) for name, value in labels.items()))


def _source(source: CollectionSource | str) -> str:
    try:
        return CollectionSource(source).value
    except ValueError:
        known = ", ".join(s.value for s in CollectionSource)
        raise BadInput(f"unknown telemetry source {source!r} (known: {known})") from None
