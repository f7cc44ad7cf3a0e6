"""The telemetry store's tables, and their migration from one schema version to the next.

- ``nodes``: one row per node name.
- ``series``: one row per time series - its node, ``metric`` and other ``labels``
  (canonical JSON: sorted keys, no spaces; ``{}`` for a node-level metric), unique
  together, and the series' latest point (``last_ts``, ``last_value``) so that "the
  latest value of every series" and "series left empty by a prune" are one read of
  this small table.
- ``samples``: ``(node_id, ts, series_id, value)``, keyed by ``(node_id, ts, series_id)``
  (WITHOUT ROWID: the key is the table). The key holds ``(series_id, ts)`` - a series
  has one point per time - but puts the node first: a node's window, what the predictor
  and ``telemetry show --node`` read, is one contiguous range, and a collection, which
  writes one timestamp per node, touches one or two pages per node. Keyed by
  ``(series_id, ts)`` instead, every collection rewrites the last page of every series
  (~10^4 pages for 200 nodes): measured 4-5x slower to insert, and ~50 MB written to the
  WAL per collection once the series are long, against ~1 MB.
  ``series_id`` is not a declared foreign key: SQLite would then scan ``samples`` for
  each series deleted; the store only deletes a series once its last point is pruned.
- ``collections``: one row per recorded collection - when, from which source, how many
  nodes answered or failed, how many samples and incidents it stored.
- ``incidents``: a node unreachable, a failed health check, malformed facts - with the
  collection that saw it (NULL once that collection is pruned).
- ``faults`` (version 2): faults injected on purpose (``lepton-ops chaos``) - the node,
  the fault and its parameters, the campaign it belongs to, when it started, the moment
  the node actually failed (``failed_at``, NULL if it never did) and how (``failure``),
  when it ended and how (``outcome``). These are the predictor's labels.
- ``jobs`` (version 3): the jobs the controller saw finish (``lepton-ops job run``, the
  ``lepton.ops.job`` module), one row per job id (seeing it again replaces the row) - kind,
  strategy, task count, status, when it was submitted and finished, its measured and
  predicted makespan and, per node (``nodes``, JSON), weight, load share, planned and
  executed tasks, busy seconds and measured speed. The report's load section reads it: the
  aggregator keeps its own jobs, but it may be redeployed, and the controller's history is
  what ``lepton-ops report`` reads offline.
- ``remediations`` (version 4): the remediation audit log - one row per action on a
  node: the action, who or what triggered it, why, when it started and finished, its
  outcome, and the evidence before and after (JSON: risk, top features, health).
- ``points`` (a view): samples with their node name, metric and labels, for reading the
  file with the ``sqlite3`` shell.

The version is kept in ``PRAGMA user_version``. ``MIGRATIONS[v]`` takes a database at
version ``v`` to ``v + 1``; each step runs in one transaction with the version bump.
"""

from __future__ import annotations

_V1 = """
CREATE TABLE nodes (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE series (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id    INTEGER NOT NULL REFERENCES nodes (id),
    metric     TEXT NOT NULL,
    labels     TEXT NOT NULL,
    last_ts    REAL NOT NULL,
    last_value REAL NOT NULL,
    UNIQUE (node_id, metric, labels)
);
CREATE INDEX series_metric ON series (metric);
CREATE INDEX series_last_ts ON series (last_ts);
CREATE TABLE samples (
    node_id   INTEGER NOT NULL,
    ts        REAL NOT NULL,
    series_id INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (node_id, ts, series_id)
) WITHOUT ROWID;
CREATE VIEW points AS
    SELECT n.name AS node, s.metric AS metric, s.labels AS labels, p.ts AS ts, p.value AS value
    FROM samples AS p JOIN series AS s ON s.id = p.series_id JOIN nodes AS n ON n.id = p.node_id;
CREATE TABLE collections (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at   REAL NOT NULL,
    finished_at  REAL NOT NULL,
    source       TEXT NOT NULL,
    nodes_ok     INTEGER NOT NULL,
    nodes_failed INTEGER NOT NULL,
    samples      INTEGER NOT NULL,
    incidents    INTEGER NOT NULL
);
CREATE INDEX collections_finished_at ON collections (finished_at);
CREATE TABLE incidents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    node          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    subject       TEXT,
    detail        TEXT NOT NULL,
    ts            REAL NOT NULL,
    collection_id INTEGER REFERENCES collections (id) ON DELETE SET NULL
);
CREATE INDEX incidents_node_ts ON incidents (node, ts);
CREATE INDEX incidents_ts ON incidents (ts);
CREATE INDEX incidents_collection ON incidents (collection_id)
"""

_V2 = """
CREATE TABLE faults (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    node       TEXT NOT NULL,
    fault      TEXT NOT NULL,
    params     TEXT NOT NULL,
    campaign   TEXT,
    started_at REAL NOT NULL,
    failed_at  REAL,
    failure    TEXT,
    ended_at   REAL,
    outcome    TEXT,
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX faults_node_started ON faults (node, started_at);
CREATE INDEX faults_started ON faults (started_at)
"""

_V3 = """
CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY,
    kind                 TEXT NOT NULL,
    strategy             TEXT NOT NULL,
    tasks                INTEGER NOT NULL,
    status               TEXT NOT NULL,
    submitted_at         REAL,
    finished_at          REAL NOT NULL,
    makespan_s           REAL,
    predicted_makespan_s REAL,
    predicted_from       TEXT NOT NULL DEFAULT '',
    nodes                TEXT NOT NULL,
    recorded_at          REAL NOT NULL
);
CREATE INDEX jobs_finished ON jobs (finished_at)
"""

_V4 = """
CREATE TABLE remediations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node        TEXT NOT NULL,
    action      TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT,
    before      TEXT NOT NULL,
    after       TEXT,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX remediations_node_started ON remediations (node, started_at);
CREATE INDEX remediations_started ON remediations (started_at)
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)
