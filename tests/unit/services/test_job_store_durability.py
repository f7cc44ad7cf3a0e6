"""What the aggregator acknowledged is in its job store after a SIGKILL, every time.

A child process serves a real aggregator on 127.0.0.1 and, in a thread, accepts shard
results into the same store, printing ``shard <job> <id>`` once each ``record_shard``
has returned. The test submits jobs (202) and uploads artifacts (201) to it as fast as it
answers, kills it with SIGKILL at a random moment, and checks that every job, artifact
and shard it acknowledged is in the store, that the file passes ``PRAGMA
integrity_check``, and that a new aggregator on it works - three rounds on one file.

A SIGKILL cannot lose what SQLite committed even with ``synchronous=NORMAL`` (the WAL
is in the kernel's page cache); a power loss can. So the store must also run with
``synchronous=FULL`` (every commit reaches the disk before the 201/202), which is
checked here on the connection itself.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from service_support import AUTH

from lepton_ops.jobs.kinds import artifact_digest
from lepton_ops.services.job_store import JobStore

ROUNDS = 3

CHILD = textwrap.dedent(
    """
    import sys
    import threading

    from werkzeug.serving import make_server

    from lepton_ops.jobs.planner import make_plan
    from lepton_ops.services.aggregator import create_aggregator_app, dispatcher_of

    token_file, db_path, round_ = sys.argv[1], sys.argv[2], sys.argv[3]
    app = create_aggregator_app(
        {
            "token_file": token_file,
            "db_path": db_path,
            "workers": [{"name": "n1", "url": "http://127.0.0.1:9", "weight": 1}],
            "connect_timeout_s": 0.2,
            "retry_delay_s": 0.01,
        }
    )
    store = dispatcher_of(app).store
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"port {server.server_port}", flush=True)

    def accept_shards():
        plan = make_plan([("n1", 1)], 5000, shard_size=1).to_dict()
        job = f"shards-{round_}"
        store.create_job(
            job, kind="sleep", params={"tasks": 5000, "task_ms": 0.0}, strategy="weighted",
            plan=plan,
        )
        for shard in plan["shards"]:
            store.record_shard(
                job, shard["id"], node="n1", partial={"tasks": 1, "slept_ns": 0}, seconds=0.0
            )
            print(f"shard {job} {shard['id']}", flush=True)

    threading.Thread(target=accept_shards, daemon=True).start()
    server.serve_forever()
    """
)


def one_round(
    token_file: Path, db: Path, round_: int, rng: random.Random
) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    """Run the child, submit and upload until it is killed; what it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(token_file), str(db), str(round_)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    first = child.stdout.readline().split()
    assert first[0] == "port", first
    url = f"http://127.0.0.1:{first[1]}"
    shards: set[tuple[str, str]] = set()

    def read_shards() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            words = line.split()
            if line.endswith("\n") and len(words) == 3 and words[0] == "shard":
                shards.add((words[1], words[2]))

    reader = threading.Thread(target=read_shards, daemon=True)
    reader.start()
    jobs: set[str] = set()
    artifacts: set[str] = set()
    # The kill comes at a random moment once writes flow (from the first acknowledgement:
    # on a loaded machine the child may take a while to answer at all).
    killer = threading.Timer(rng.uniform(0.5, 1.5), os.kill, (child.pid, 9))
    give_up = time.monotonic() + 20  # a child that acknowledges nothing is killed anyway
    n = 0
    try:
        with httpx.Client(base_url=url, headers=AUTH, timeout=5) as client:
            while child.poll() is None:
                flowing = jobs or artifacts or time.monotonic() > give_up
                if flowing and not killer.is_alive() and not killer.finished.is_set():
                    killer.start()
                n += 1
                try:
                    if n % 5 == 0:
                        data = f"artifact {round_} {n}".encode()
                        digest = artifact_digest(data)
                        answer = client.put(
                            f"/v1/artifacts/{digest}",
                            content=data,
                            headers={"Content-Type": "application/octet-stream"},
                        )
                        if answer.status_code == 201:
                            artifacts.add(digest)
                        continue
                    answer = client.post(
                        "/v1/jobs", json={"kind": "sleep", "tasks": 2, "params": {"task_ms": 0}}
                    )
                    if answer.status_code == 202:
                        jobs.add(answer.json()["job_id"])
                except httpx.HTTPError:
                    break
    finally:
        if not killer.is_alive() and not killer.finished.is_set():
            killer.start()  # nothing was acknowledged: still end the child, and fail below
        killer.join()
        child.wait(timeout=30)
        reader.join(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert jobs and artifacts and shards, "the child acknowledged nothing before the kill"
    return jobs, artifacts, shards


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_job_artifact_or_shard(
    token_file: Path, tmp_path: Path
) -> None:
    db = tmp_path / "jobs.db"
    rng = random.Random(20261205)
    acked_jobs: set[str] = set()
    acked_artifacts: set[str] = set()
    acked_shards: set[tuple[str, str]] = set()
    for round_ in range(ROUNDS):
        jobs, artifacts, shards = one_round(token_file, db, round_, rng)
        acked_jobs |= jobs
        acked_artifacts |= artifacts
        acked_shards |= shards
        check = sqlite3.connect(db)
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        check.close()
        store = JobStore(db)
        try:
            assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            for job_id in acked_jobs:
                assert store.has_job(job_id), f"job {job_id} was acknowledged (202)"
            for digest in acked_artifacts:
                assert store.artifact_info(digest) is not None, "an artifact got 201"
            for job_id in {job for job, _ in acked_shards}:
                kept = store.recorded_shard_ids(job_id)
                assert {s for j, s in acked_shards if j == job_id} <= kept
        finally:
            store.close()
