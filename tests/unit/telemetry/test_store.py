"""``lepton_ops.telemetry.history``: recording collections (unreachable and malformed nodes
included), queries by node and window, incidents, prune, exports, the schema version and
its migrations, and use from several threads and connections."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from telemetry_support import T0, fleet, make_facts

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.telemetry import (
    METRICS,
    HistoryStore,
    IncidentKind,
    NodeOutcome,
    NodeStatus,
    history_path,
    node_samples,
)
from lepton_ops.telemetry.export import CSV_HEADER
from lepton_ops.telemetry.facts import Sample
from lepton_ops.telemetry.history import schema as store_schema

CPU = "lepton_node_cpu_util_pct"
DISK = "lepton_node_disk_used_pct"
REACHABLE = "lepton_node_reachable"
PER_NODE = len(node_samples("x", make_facts()))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(history_path(tmp_path)) as opened:
        yield opened


def record_minutes(store: HistoryStore, minutes: int, nodes: int = 3) -> None:
    for minute in range(minutes):
        store.record_collection(fleet(nodes, T0 + 60 * minute, index=minute), "ansible")


# --------------------------------------------------------------------------- the file


def test_a_new_store_is_wal_at_the_current_schema_version(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    with HistoryStore(path) as store:
        assert store.schema_version == store_schema.SCHEMA_VERSION == 4
    assert path == tmp_path / "telemetry" / "telemetry.sqlite3" and path.is_file()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"nodes", "series", "samples", "collections", "incidents", "faults", "jobs"} <= tables


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    HistoryStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(OperationFailed, match=r"schema version 9; this lepton-ops knows up to 4"):
        HistoryStore(path)


def test_an_older_schema_is_migrated_on_open_keeping_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = history_path(tmp_path)
    with HistoryStore(path) as store:
        record_minutes(store, 2)
    step = "ALTER TABLE collections ADD COLUMN note TEXT; CREATE INDEX by_labels ON series (labels)"
    monkeypatch.setattr(store_schema, "MIGRATIONS", (*store_schema.MIGRATIONS, step))
    with HistoryStore(path) as store:
        assert store.schema_version == 5
        assert len(store.collections()) == 2
        assert len(store.series(node="node001")) == PER_NODE
        store.record_collection(fleet(3, T0 + 600), "pull")
    db = sqlite3.connect(path)
    assert "note" in {row[1] for row in db.execute("PRAGMA table_info(collections)")}


def test_a_failed_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = history_path(tmp_path)
    with HistoryStore(path) as store:
        record_minutes(store, 1)
    step = "ALTER TABLE collections ADD COLUMN note TEXT; CREATE TABLE series (x)"
    monkeypatch.setattr(store_schema, "MIGRATIONS", (*store_schema.MIGRATIONS, step))
    with pytest.raises(OperationFailed, match="migrating schema version 4 to 5 failed"):
        HistoryStore(path)
    monkeypatch.undo()
    with HistoryStore(path) as store:
        assert store.schema_version == 4
        assert len(store.collections()) == 1
    db = sqlite3.connect(path)
    assert "note" not in {row[1] for row in db.execute("PRAGMA table_info(collections)")}


def test_a_version_1_store_gains_the_faults_table_keeping_its_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = history_path(tmp_path)
    monkeypatch.setattr(store_schema, "MIGRATIONS", store_schema.MIGRATIONS[:1])
    with HistoryStore(path) as store:
        record_minutes(store, 2)
        assert store.schema_version == 1
    monkeypatch.undo()
    with HistoryStore(path) as store:
        assert store.schema_version == 4
        assert len(store.collections()) == 2
        assert store.faults() == []
        assert store.jobs() == []


def test_a_remediation_is_audited_from_start_to_outcome(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        first = store.start_remediation(
            "node2", "restart", trigger="cli:root", reason="risk 0.91",
            before={"probability": 0.91}, started_at=T0,
        )  # fmt: skip
        other = store.start_remediation(
            "node3", "drain", trigger="schedule", reason="failing", before={}, started_at=T0 + 5
        )
        assert store.finish_remediation(first, "verified", after={"healthy": True},
                                        detail="ok", finished_at=T0 + 4)  # fmt: skip
        assert not store.finish_remediation(first, "failed", after={})
        done, running = store.remediations()
        assert (done.id, done.outcome, done.after, done.finished_at) == (
            first, "verified", {"healthy": True}, T0 + 4)  # fmt: skip
        assert done.before == {"probability": 0.91} and done.trigger == "cli:root"
        assert running.id == other and running.finished_at is None and running.after is None
        assert [r.id for r in store.remediations(node="node3")] == [other]
        assert store.remediations(since=T0 + 1) == [running]
        assert store.has_table("remediations")


def test_a_fault_is_recorded_from_start_through_failure_to_end(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        first = store.start_fault("node2", "memleak", {"rate_bytes_s": 4096}, started_at=T0)
        other = store.start_fault("node3", "kill", {}, started_at=T0 + 5, campaign="c1")
        assert store.mark_fault_failed(first, T0 + 70, "memory limit hit")
        # Only the first failure counts; a fault ends once.
        assert not store.mark_fault_failed(first, T0 + 80, "again")
        assert store.end_fault(first, "failed", ended_at=T0 + 75)
        assert not store.end_fault(first, "stopped", ended_at=T0 + 90)
        (recorded,) = store.faults(node="node2")
        assert (recorded.failed_at, recorded.failure) == (T0 + 70, "memory limit hit")
        assert (recorded.ended_at, recorded.outcome) == (T0 + 75, "failed")
        assert recorded.params == {"rate_bytes_s": 4096} and not recorded.active
        assert [f.id for f in store.faults(active=True)] == [other]
        assert [f.id for f in store.faults(campaign="c1")] == [other]
        with pytest.raises(ValueError):
            store.end_fault(other, "exploded")
        # Pruning keeps a running fault, and removes an ended one once it is old.
        store.prune(10, now=T0 + 200)
        assert [f.id for f in store.faults()] == [other]


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    path.write_bytes(b"not a database, just some bytes " * 100)
    with pytest.raises(OperationFailed, match=r"telemetry store .* is not usable"):
        HistoryStore(path)


# --------------------------------------------------------------------------- recording


def test_an_unreachable_node_never_stops_the_others(store: HistoryStore) -> None:
    broken = make_facts("node3", T0)
    broken["memory"] = "8G"
    outcomes = [
        NodeOutcome.from_facts("node1", make_facts("node1", T0, unhealthy=("aggregator",))),
        NodeOutcome.unreachable(
            "node2", "ssh: connect to host 127.0.1.2 port 22: timed out", ts=T0
        ),
        NodeOutcome.from_facts("node3", broken, received_at=T0),
        NodeOutcome.from_facts("node4", make_facts("node4", T0)),
    ]
    record = store.record_collection(outcomes, "ansible", finished_at=T0 + 2)
    assert (record.nodes_ok, record.nodes_failed) == (2, 2)
    assert record.samples == 2 * PER_NODE + 2
    assert record.incidents == 3
    assert (record.started_at, record.finished_at, record.source) == (T0, T0 + 2, "ansible")
    assert store.collection(record.id) == record
    assert store.nodes() == ["node1", "node2", "node3", "node4"]

    assert len(store.series(node="node1")) == PER_NODE
    assert len(store.series(node="node4")) == PER_NODE
    (down,) = store.series(node="node2")
    assert (down.metric, down.labels, down.points) == (REACHABLE, {}, [(T0, 0.0)])
    (invalid,) = store.series(node="node3")
    assert (invalid.metric, invalid.points) == (REACHABLE, [(T0, 1.0)])

    incidents = {i.node: i for i in store.incidents()}
    assert incidents["node2"].kind == IncidentKind.UNREACHABLE
    assert incidents["node2"].detail == "ssh: connect to host 127.0.1.2 port 22: timed out"
    assert incidents["node3"].kind == IncidentKind.FACTS_INVALID
    assert "memory: expected an object, got '8G'" in incidents["node3"].detail
    assert incidents["node1"].kind == IncidentKind.HEALTH_CHECK_FAILED
    assert incidents["node1"].subject == "aggregator"
    assert {i.collection_id for i in incidents.values()} == {record.id}


def test_a_point_already_stored_is_kept(store: HistoryStore) -> None:
    store.record_collection([NodeOutcome.from_facts("n", make_facts("n", T0, cpu=10.0))])
    again = store.record_collection([NodeOutcome.from_facts("n", make_facts("n", T0, cpu=99.0))])
    assert again.samples == 0
    (cpu,) = store.series(metric=CPU)
    assert cpu.points == [(T0, 10.0)]
    (latest,) = store.latest(metric=CPU)
    assert latest.value == 10.0


def test_one_outcome_per_node_and_known_sources(store: HistoryStore) -> None:
    twice = [NodeOutcome.unreachable("a", "x", ts=T0), NodeOutcome.unreachable("a", "y", ts=T0)]
    with pytest.raises(BadInput, match="one outcome per node; twice: a"):
        store.record_collection(twice)
    with pytest.raises(BadInput, match=r"unknown telemetry source 'snmp' \(known: ansible, pull"):
        store.record_collection(fleet(1, T0), "snmp")
    assert store.collections() == [] and store.nodes() == []
    assert store.record_collection(fleet(1, T0), "prometheus").source == "prometheus"


def test_a_failed_collection_stores_nothing_and_the_next_one_works(store: HistoryStore) -> None:
    store.record_collection(fleet(2, T0))
    # Facts that bypassed the check: NaN reaches SQLite as NULL and the insert fails.
    bad_facts = make_facts("node009", T0 + 60, cpu=math.nan)
    bad = [*fleet(2, T0 + 60), NodeOutcome("node009", NodeStatus.OK, T0 + 60, bad_facts)]
    with pytest.raises(OperationFailed, match="NOT NULL constraint failed"):
        store.record_collection(bad)
    assert len(store.collections()) == 1
    assert store.nodes() == ["node000", "node001"]
    assert {p for s in store.series() for p, _ in s.points} == {T0}
    record = store.record_collection(fleet(3, T0 + 60))
    assert record.samples == 3 * PER_NODE
    assert store.nodes() == ["node000", "node001", "node002"]


def test_collection_times_default_to_the_outcomes_and_now(store: HistoryStore) -> None:
    record = store.record_collection(fleet(2, T0))
    assert record.started_at == T0 and record.finished_at > T0
    empty = store.record_collection([], "pull")
    assert (empty.nodes_ok, empty.nodes_failed, empty.samples) == (0, 0, 0)
    assert empty.started_at == empty.finished_at


# --------------------------------------------------------------------------- queries


def test_series_by_node_metric_and_window(store: HistoryStore) -> None:
    record_minutes(store, 10)
    window = store.series(node="node001", since=T0 + 120, until=T0 + 300)
    assert len(window) == PER_NODE
    assert all([t for t, _ in s.points] == [T0 + 60 * m for m in range(2, 6)] for s in window)

    (cpu,) = store.series(node="node002", metric=CPU, since=T0 + 480)
    assert cpu.node == "node002" and cpu.labels == {}
    assert cpu.points == [
        (T0 + 480, float((8 * 7 + 2) % 100)),
        (T0 + 540, float((9 * 7 + 2) % 100)),
    ]

    disks = store.series(metric=DISK, until=T0)
    assert [(s.node, s.labels["path"]) for s in disks] == [
        (node, path)
        for node in ("node000", "node001", "node002")
        for path in ("/", "/var/lib/lepton")
    ]
    assert all(s.points == [(T0, s.points[0][1])] for s in disks)

    everything = store.series()
    assert len(everything) == 3 * PER_NODE
    assert sum(len(s.points) for s in everything) == 10 * 3 * PER_NODE
    assert store.series(node="node001", since=T0 + 10_000) == []
    assert store.series(node="nobody") == []
    assert store.series(metric="lepton_no_such_metric") == []


def test_series_are_ordered_by_node_metric_labels(store: HistoryStore) -> None:
    record_minutes(store, 1)
    keys = [(s.node, s.metric, json.dumps(s.labels, sort_keys=True)) for s in store.series()]
    assert keys == sorted(keys)


def test_a_node_window_is_one_range_of_the_samples_key(store: HistoryStore, tmp_path: Path) -> None:
    from lepton_ops.telemetry.history import samples as module

    record_minutes(store, 2)
    plan = (
        sqlite3.connect(history_path(tmp_path))
        .execute(
            f"EXPLAIN QUERY PLAN {module._SELECT_POINTS} ORDER BY ts, series_id", (1, T0, T0 + 60)
        )
        .fetchall()
    )
    details = " | ".join(str(row[3]) for row in plan)
    assert "SEARCH samples USING PRIMARY KEY (node_id=? AND ts>? AND ts<?)" in details
    assert "TEMP B-TREE" not in details and "SCAN" not in details


def test_latest_and_metrics(store: HistoryStore) -> None:
    record_minutes(store, 3, nodes=2)
    store.record_collection(
        [
            NodeOutcome.from_facts("node000", make_facts("node000", T0 + 180, cpu=77.0)),
            NodeOutcome.unreachable("node001", "down", ts=T0 + 181),
        ]
    )
    latest = {(s.node, s.metric, json.dumps(s.labels)): s for s in store.latest()}
    assert len(latest) == 2 * PER_NODE
    assert latest["node000", CPU, "{}"].value == 77.0
    assert latest["node001", REACHABLE, "{}"].value == 0.0
    assert latest["node001", REACHABLE, "{}"].ts == T0 + 181
    # The rest of node001's series: their last value, at the time it was measured.
    assert latest["node001", CPU, "{}"].ts == T0 + 120
    assert [s.node for s in store.latest(node="node001", since=T0 + 180)] == ["node001"]
    assert [s.metric for s in store.latest(metric=CPU)] == [CPU, CPU]
    assert store.metrics() == sorted(METRICS)
    assert store.metrics("node001") == sorted(METRICS)
    assert store.metrics("nobody") == []


def test_incident_filters(store: HistoryStore) -> None:
    for minute in range(4):
        store.record_collection(
            [
                NodeOutcome.unreachable("a", f"down {minute}", ts=T0 + 60 * minute),
                NodeOutcome.from_facts(
                    "b", make_facts("b", T0 + 60 * minute, unhealthy=("worker",))
                ),
            ]
        )
    assert len(store.incidents()) == 8
    assert [i.detail for i in store.incidents(node="a", since=T0 + 120)] == ["down 2", "down 3"]
    assert len(store.incidents(kind="health_check_failed")) == 4
    assert len(store.incidents(kind=IncidentKind.UNREACHABLE, until=T0)) == 1
    assert [i.ts for i in store.incidents()] == sorted(i.ts for i in store.incidents())


# --------------------------------------------------------------------------- prune


def test_prune_removes_old_points_empty_series_nodes_incidents_collections(
    store: HistoryStore,
) -> None:
    for minute in range(10):
        outcomes = fleet(2, T0 + 60 * minute, index=minute)
        if minute < 3:
            # A node gone after minute 2, and a disk node000 no longer has after it.
            outcomes.append(NodeOutcome.unreachable("old", "gone", ts=T0 + 60 * minute))
            outcomes[0] = NodeOutcome.from_facts(
                "node000", make_facts("node000", T0 + 60 * minute, disks=("/", "/data"))
            )
        store.record_collection(outcomes, finished_at=T0 + 60 * minute + 1)
    before = sum(len(s.points) for s in store.series())

    counts = store.prune(60 * 5, now=T0 + 60 * 9 + 30)  # keep from minute 5 on
    kept = store.series()
    assert {t for s in kept for t, _ in s.points} == {T0 + 60 * m for m in range(5, 10)}
    assert counts.samples == before - sum(len(s.points) for s in kept)
    assert counts.nodes == 1 and store.nodes() == ["node000", "node001"]
    # "old"'s one series and node000's /data disk series (4 metrics)
    assert counts.series == 1 + 4
    assert "/data" not in {s.labels.get("path") for s in kept}
    assert counts.incidents == 3 and store.incidents() == []
    assert counts.collections == 5 and len(store.collections()) == 5
    assert store.prune(60 * 5, now=T0 + 60 * 9 + 30).samples == 0

    # Pruned series are made again when they come back.
    back = NodeOutcome.from_facts("old", make_facts("old", T0 + 600))
    assert store.record_collection([back]).samples == PER_NODE
    assert len(store.series(node="old")) == PER_NODE


def test_prune_needs_an_age(store: HistoryStore) -> None:
    for age in (0, -1, float("nan")):
        with pytest.raises(BadInput, match="more than 0 seconds"):
            store.prune(age)
    with pytest.raises(BadInput, match="needs an age in seconds"):
        store.prune("30d")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- exports


def test_export_csv(store: HistoryStore) -> None:
    record_minutes(store, 3, nodes=2)
    out = io.StringIO()
    assert store.export_csv(out) == 3 * 2 * PER_NODE
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 3 * 2 * PER_NODE
    first = rows[0]
    assert first["node"] == "node000" and float(first["ts"]) == T0
    assert first["time"] == "2023-11-14T22:13:20.000+00:00"
    disk = next(r for r in rows if r["metric"] == DISK)
    assert json.loads(disk["labels"]) == {"path": "/"}

    out = io.StringIO()
    assert store.export_csv(out, node="node001", metric=CPU, since=T0 + 60) == 2
    values = [
        (float(r["ts"]), float(r["value"])) for r in csv.DictReader(io.StringIO(out.getvalue()))
    ]
    assert values == [(T0 + 60, float((7 + 1) % 100)), (T0 + 120, float((14 + 1) % 100))]


def test_export_prometheus_parses_with_help_type_labels_and_ms_timestamps(
    store: HistoryStore,
) -> None:
    record_minutes(store, 2)
    odd = make_facts('node-"q"', T0 + 90, disks=('C:\\data "x"',))
    store.record_collection([NodeOutcome.from_facts('node-"q"', odd)])
    out = io.StringIO()
    written = store.export_prometheus(out)
    assert written == 4 * PER_NODE - 4  # one disk fewer on the odd node
    families = {f.name: f for f in text_string_to_metric_families(out.getvalue())}
    restarts = families["lepton_service_restarts"]  # the parser drops a counter's _total
    assert restarts.type == "counter"
    assert restarts.documentation == METRICS["lepton_service_restarts_total"].help
    cpu = families[CPU]
    assert cpu.type == "gauge" and cpu.documentation == METRICS[CPU].help
    samples = {s.labels["node"]: s for s in cpu.samples}
    assert samples["node001"].value == float((7 + 1) % 100)
    assert samples["node001"].timestamp == T0 + 60
    assert samples['node-"q"'].timestamp == T0 + 90
    disks = {s.labels["path"] for s in families[DISK].samples}
    assert disks == {"/", "/var/lib/lepton", 'C:\\data "x"'}
    parsed = sum(len(f.samples) for f in families.values())
    assert parsed == written
    for family in families.values():
        for sample in family.samples:
            assert sample.labels["node"]

    out = io.StringIO()
    assert store.export_prometheus(out, node="node000", metric=CPU) == 1
    last = out.getvalue().splitlines()[-1]
    assert last == f'{CPU}{{node="node000"}} 7.0 {int(T0 * 1000) + 60000}'


def test_export_prometheus_of_an_unknown_metric_is_untyped(
    store: HistoryStore, tmp_path: Path
) -> None:
    outcome = NodeOutcome.unreachable("a", "down", ts=T0)
    store.record_collection([outcome])
    with sqlite3.connect(history_path(tmp_path)) as db:
        db.execute("UPDATE series SET metric = 'lepton_legacy_metric'")
    out = io.StringIO()
    store.export_prometheus(out)
    (family,) = text_string_to_metric_families(out.getvalue())
    assert (family.name, family.type) == ("lepton_legacy_metric", "unknown")


# --------------------------------------------------------------------------- concurrency


def test_threads_share_one_store(store: HistoryStore) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for minute in range(5):
                outcomes = [
                    NodeOutcome.from_facts(f"w{worker}", make_facts(f"w{worker}", T0 + 60 * minute))
                ]
                store.record_collection(outcomes)
                store.series(node=f"w{worker}", since=T0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.collections()) == 20
    assert sum(len(s.points) for s in store.series()) == 20 * PER_NODE


def test_two_connections_writing_and_pruning(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    with HistoryStore(path) as one, HistoryStore(path) as two:
        one.record_collection(fleet(2, T0))
        # Another connection removes every series; one's cached ids must not be reused.
        two.prune(10, now=T0 + 3600)
        assert two.nodes() == []
        two.record_collection([NodeOutcome.unreachable("zz", "down", ts=T0 + 3600)])
        one.record_collection(fleet(2, T0 + 3660))
        assert one.nodes() == ["node000", "node001", "zz"]
        for store in (one, two):
            assert len(store.series(node="node000")) == PER_NODE
            (reachable,) = store.series(node="zz")
            assert reachable.points == [(T0 + 3600, 0.0)]
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_samples_with_labels_in_any_order_are_one_series(store: HistoryStore) -> None:
    class Fixed(NodeOutcome):
        def samples(self) -> list[Sample]:
            labels = (("target", "a"), ("role", "peer"))
            return [Sample(self.node, "lepton_node_latency_ms", labels, self.ts, 1.0)]

    store.record_collection([Fixed("n", NodeStatus.OK, T0, make_facts("n", T0))])
    node_outcome = NodeOutcome.from_facts("n", make_facts("n", T0 + 60, peers=0))
    store.record_collection([node_outcome])
    latency = store.series(node="n", metric="lepton_node_latency_ms")
    assert [(s.labels, len(s.points)) for s in latency] == [
        ({"role": "aggregator", "target": "aggregator"}, 1),
        ({"role": "peer", "target": "a"}, 1),
    ]
