"""The worker's HTTP bodies: what ``POST /v1/shards/run`` accepts and every answer it gives.

Each class checks the body (:func:`~lepton_ops.services.bodies.read_body`) and is its
JSON Schema in the worker's ``/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds import MAX_TASKS, get_kind
from lepton_ops.services.artifacts import ArtifactDigests
from lepton_ops.services.bodies import (
    Count,
    KindName,
    QueryString,
    RequestBody,
    ResponseBody,
    Text,
    custom_error,
)

#: A shard's bounds: the kind refuses those outside the job's tasks (at most MAX_TASKS).
TaskIndex = Annotated[int, Count(0), Field(json_schema_extra={"maximum": MAX_TASKS})]


class ShardRun(RequestBody):
    """One shard to run: ``kind.map(params, start, stop)``."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "job_id": "0123abcd",
                "shard_id": "s0000",
                "kind": "sleep",
                "params": {"tasks": 4, "task_ms": 1.0},
                "start": 0,
                "stop": 4,
            }
        }
    )

    job_id: Annotated[str, Text()]
    shard_id: Annotated[str, Text()]
    kind: KindName
    params: dict[str, Any]
    start: TaskIndex
    stop: TaskIndex
    artifacts: ArtifactDigests = Field(default_factory=dict)

    @field_validator("stop")
    @classmethod
    def _not_before_start(cls, stop: int, info: ValidationInfo) -> int:
        start = info.data.get("start")
        if start is not None and start > stop:
            raise custom_error(f"start ({start}) must not be after stop ({stop})")
        return stop


class ShardResult(ResponseBody):
    """A shard's partial result, and how long it took here."""

    job_id: str
    shard_id: str
    partial: dict[str, Any]
    seconds: float


class ShardsCancelled(ResponseBody):
    job_id: str
    cancelled: bool


class KindList(ResponseBody):
    """The job kinds this worker runs, each with its parameters."""

    kinds: list[dict[str, Any]]


def _known_kind(name: str) -> str:
    try:
        get_kind(name)
    except BadInput as exc:
        raise custom_error(str(exc)) from None
    return name


class ArtifactTarget(QueryString):
    """Which kind's artifact an upload is (checked first), and under which name."""

    kind: Annotated[str, Text(100), AfterValidator(_known_kind)]
    name: Annotated[str, Text(100)]
