"""The aggregator's HTTP bodies: jobs, their status and results, drains, stored artifacts.

Each class checks what a route receives (:func:`~lepton_ops.services.bodies.read_body`,
:func:`~lepton_ops.services.bodies.read_query`) or builds what it answers, and is its
JSON Schema in the aggregator's ``/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from lepton_ops.jobs.kinds import MAX_TASKS
from lepton_ops.jobs.planner import Strategy
from lepton_ops.services.artifacts import ArtifactDigests
from lepton_ops.services.bodies import (
    Count,
    KindName,
    OneOf,
    QueryString,
    RequestBody,
    ResponseBody,
    Text,
)
from lepton_ops.services.job_store import JobRecord, JobStatus

#: The longest a drain may be given to expire in (a day); no ttl_s: until undrained.
MAX_DRAIN_TTL_S = 86400


class JobSubmission(RequestBody):
    """A job to plan over the workers and run."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"kind": "sleep", "tasks": 8, "params": {"task_ms": 1.0}}}
    )

    kind: KindName
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters.")
    tasks: Annotated[int, Count(0, MAX_TASKS)]
    # The planner refuses an unknown strategy, naming the choices.
    strategy: Annotated[
        str, Text(20), Field(json_schema_extra={"enum": [item.value for item in Strategy]})
    ] = Strategy.WEIGHTED.value
    shard_size: Annotated[int, Count(1, MAX_TASKS)] | None = None
    artifacts: ArtifactDigests = Field(default_factory=dict)


class JobAccepted(ResponseBody):
    job_id: str
    status: JobStatus


class JobSummary(ResponseBody):
    job_id: str
    kind: str
    status: JobStatus
    strategy: str
    tasks: int
    shards: int
    created_at: float
    finished_at: float | None

    @classmethod
    def fields_of(cls, record: JobRecord) -> dict[str, Any]:
        """The summary's fields of ``record`` (for this class and those extending it)."""
        return {
            "job_id": record.id,
            "kind": record.kind,
            "status": record.status,
            "strategy": record.strategy,
            "tasks": record.tasks,
            "shards": record.shards,
            "created_at": record.created_at,
            "finished_at": record.finished_at,
        }


class JobList(ResponseBody):
    """The jobs, newest first."""

    jobs: list[JobSummary]


class JobFilter(QueryString):
    status: Annotated[str, OneOf(tuple(item.value for item in JobStatus))] | None = None


class Progress(ResponseBody):
    shards_done: int
    shards_total: int
    tasks_done: int
    tasks_total: int


class NodeWork(ResponseBody):
    """What one worker did for a job."""

    tasks: int = 0
    shards: int = 0
    seconds: float = 0.0


class JobState(JobSummary):
    """A job's status, progress and per-node work (makespan once finished)."""

    params: dict[str, Any]
    artifacts: ArtifactDigests
    progress: Progress
    per_node: dict[str, NodeWork]
    lost_nodes: list[str]
    drained_nodes: list[str]
    reason: str | None
    predicted_makespan_units: float | None
    makespan_s: float | None


class CancelledJob(JobSummary):
    reason: str | None


class JobResult(ResponseBody):
    job_id: str
    kind: str
    status: Literal["succeeded"]
    result: dict[str, Any] | None


class StoredArtifact(ResponseBody):
    """An artifact the aggregator holds."""

    sha256: str
    size: int
    created_at: float


class DrainRequest(RequestBody):
    reason: Annotated[str, Text(500)]
    ttl_s: Annotated[int, Count(1, MAX_DRAIN_TTL_S)] | None = None


class Drain(ResponseBody):
    """A drained worker: it gets no new shards (``until``: when it expires, or never)."""

    node: str
    reason: str
    since: float
    until: float | None


class DrainList(ResponseBody):
    drains: list[Drain]


class Undrained(ResponseBody):
    node: str
    undrained: bool
