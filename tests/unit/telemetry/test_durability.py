"""A collection killed with SIGKILL mid-write loses no collection it had committed, and
leaves a database that passes ``PRAGMA integrity_check`` and can be written again.

A child process records large collections in a loop into one store and prints
``begin <n>`` before each and ``done <n> <id> <samples>`` once its commit has returned.
The test kills it at a random point of a collection (a random fraction of how long the
earlier ones took, after a ``begin``), then checks the file, five times over. The child
shrinks SQLite's page cache so that a big transaction spills its uncommitted pages into
the WAL before its commit: a kill then leaves a torn transaction in the file for
recovery to discard.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from telemetry_support import T0, make_facts

from lepton_ops.telemetry import HistoryStore, NodeOutcome, node_samples

NODES = 300
PER_NODE = len(node_samples("x", make_facts()))
ROUNDS = 5
#: Collections each round lets the child commit before it waits for a kill point.
COMMITS_BEFORE_KILL = 2

CHILD = textwrap.dedent(
    """
    import sys

    sys.path.insert(0, sys.argv[1])
    from telemetry_support import T0, fleet

    from lepton_ops.telemetry import HistoryStore

    store = HistoryStore(sys.argv[2])
    store._db.execute("PRAGMA cache_size = 16")  # spill uncommitted pages into the WAL
    first, nodes = int(sys.argv[3]), int(sys.argv[4])
    for n in range(first, first + 100_000):
        outcomes = fleet(nodes, T0 + 60 * n, index=n)
        print(f"begin {n}", flush=True)
        record = store.record_collection(outcomes, "ansible", finished_at=T0 + 60 * n)
        print(f"done {n} {record.id} {record.samples}", flush=True)
    """
)


def run_child_and_kill(path: Path, first: int, rng: random.Random) -> tuple[dict[int, int], str]:
    """Start the child, SIGKILL it mid-collection; ``{n: collection id}`` it reported, and
    the last line it printed."""
    support = str(Path(__file__).parents[1])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, support, str(path), str(first), str(NODES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported: dict[int, int] = {}
    lines: list[str] = []
    durations: list[float] = []
    began = 0.0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
            words = line.split()
            if words[0] == "done":
                n, collection_id, samples = map(int, words[1:])
                assert samples == NODES * PER_NODE
                reported[n] = collection_id
                durations.append(time.monotonic() - began)
            elif len(reported) < COMMITS_BEFORE_KILL:
                began = time.monotonic()
            else:
                # Anywhere in the collection: building its rows, inserting, committing.
                time.sleep(rng.uniform(0.0, 0.9) * min(durations))
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors
    assert len(reported) >= COMMITS_BEFORE_KILL, f"the child did not commit: {errors}"
    # Lines written before the kill are complete: each is one write() to the pipe.
    for line in rest.splitlines(keepends=True):
        lines.append(line)
        words = line.split()
        if line.endswith("\n") and words[0] == "done":
            reported[int(words[1])] = int(words[2])
    return reported, lines[-1].strip()


@pytest.mark.slow
def test_sigkill_mid_collection_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite3"
    rng = random.Random(20240601)
    committed: dict[int, int] = {}
    killed_mid_collection = 0
    for round_ in range(ROUNDS):
        reported, last = run_child_and_kill(path, 1000 * round_, rng)
        committed.update(reported)
        killed_mid_collection += last.startswith("begin")

        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.close()
        with HistoryStore(path) as store:
            stored = {record.id: record for record in store.collections()}
            for n, collection_id in committed.items():
                assert collection_id in stored, f"collection {n} was reported committed"
            for record in stored.values():
                if record.source != "ansible":
                    continue  # written by this test after a kill
                # Every collection is whole: all its samples, at its nodes' timestamp.
                points = store.series(since=record.finished_at, until=record.finished_at)
                assert sum(len(s.points) for s in points) == record.samples == NODES * PER_NODE
            # ... and nothing of a collection that did not commit.
            ansible = sum(r.samples for r in stored.values() if r.source == "ansible")
            others = sum(r.samples for r in stored.values() if r.source != "ansible")
            assert sum(len(s.points) for s in store.series()) == ansible + others
            n, collection_id = max(committed.items())
            when = T0 + 60 * n
            (cpu,) = store.series("node042", "lepton_node_cpu_util_pct", since=when, until=when)
            assert cpu.points == [(when, float((n * 7 + 42) % 100))]
            # ... and it can be written again.
            outcome = NodeOutcome.from_facts("after", make_facts("after", T0 + 60 * n + 1))
            assert store.record_collection([outcome], "pull").samples == PER_NODE
    # Kills landed inside record_collection (between "begin" and "done").
    assert killed_mid_collection >= ROUNDS - 1
