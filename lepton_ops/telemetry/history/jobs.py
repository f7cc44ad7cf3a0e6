"""The jobs the controller saw finish: the report's load data."""

from __future__ import annotations

import json
from typing import Any

from lepton_ops.telemetry.history.base import HistoryBase, _where
from lepton_ops.telemetry.records import JobRunNode, JobRunRecord

_SELECT_JOB = (
    "SELECT id, kind, strategy, tasks, status, submitted_at, finished_at, makespan_s, "
    "predicted_makespan_s, predicted_from, nodes, recorded_at FROM jobs"
)


class JobHistory(HistoryBase):
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
