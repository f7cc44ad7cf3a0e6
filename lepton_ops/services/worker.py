"""The worker service: runs one shard of a job and answers with its partial result.

``POST /v1/shards/run`` with ``{"job_id", "shard_id", "kind", "params", "start", "stop"}``
(and ``"artifacts": {name: sha256}`` for kinds with artifacts) runs
``kind.map(params, start, stop, speed=config.speed)`` and answers
``{"job_id", "shard_id", "partial", "seconds"}``. A shard larger than its kind allows
(:meth:`~lepton_ops.jobs.kinds.base.JobKind.shard_tasks_limit`) is refused with 400.
``DELETE /v1/shards/<job_id>`` cancels a job here: its running shards stop between
tasks and its later shards are refused, both with 410
(:mod:`lepton_ops.services.shard_cancels`). The worker keeps no other job state: the
aggregator owns jobs, and a shard sent twice is simply computed twice. It only caches
the artifacts the aggregator PUT to it (``PUT /v1/artifacts/<sha256>?kind=&name=``,
see :mod:`lepton_ops.services.artifacts`); a shard naming one it lacks gets 409.

Under gunicorn::

    gunicorn 'lepton_ops.services.worker:app_from_config_file("/etc/lepton/worker.yml")'
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds import (
    MAX_ARTIFACT_BYTES,
    ShardCancelled,
    get_kind,
    known_kinds,
)
from lepton_ops.services.artifacts import (
    DEFAULT_ARTIFACT_CACHE_BYTES,
    ArtifactCache,
    ArtifactStored,
    MissingArtifacts,
    MissingArtifactsBody,
    documented_upload,
    read_artifact_body,
)
from lepton_ops.services.auth import Credentials, Role, TokenFile
from lepton_ops.services.base_app import create_base_app
from lepton_ops.services.bodies import (
    DEFAULT_MAX_CONTENT_LENGTH,
    ErrorBody,
    error_response,
    read_body,
    read_query,
    reply,
)
from lepton_ops.services.config_files import (
    config_artifact_limit,
    config_int,
    config_number,
    config_optional_path,
    config_path,
    load_config_file,
)
from lepton_ops.services.openapi import Answer, documented
from lepton_ops.services.service_state import service_state
from lepton_ops.services.shard_cancels import ShardCancels, default_cancel_dir
from lepton_ops.services.worker_bodies import (
    ArtifactTarget,
    KindList,
    ShardResult,
    ShardRun,
    ShardsCancelled,
)

WORKER_SETTINGS = frozenset(
    {"token_file", "speed", "name", "max_content_length", "max_artifact_bytes",
     "artifact_cache_bytes", "cancel_dir", "scrape_token_file"}
)  # fmt: skip


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs: the token files, its speed factor and the body size limits."""

    #: The token the aggregator sends (every endpoint).
    token_file: Path
    #: Relative speed handed to ``kind.map`` (the ``sleep`` kind sleeps task_ms / speed).
    speed: float = 1.0
    name: str = "worker"
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    #: The largest artifact accepted (``PUT /v1/artifacts``); larger is 413.
    max_artifact_bytes: int = MAX_ARTIFACT_BYTES
    #: How much (estimated) the cache of loaded artifacts holds, per process.
    artifact_cache_bytes: int = DEFAULT_ARTIFACT_CACHE_BYTES
    #: Where the worker's processes share cancelled jobs (None: a private temporary
    #: directory named after the worker, see ``default_cancel_dir``).
    cancel_dir: Path | None = None
    #: The read-only token that may scrape ``GET /metrics`` (None: none).
    scrape_token_file: Path | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.speed, bool)
            or not isinstance(self.speed, int | float)
            or not math.isfinite(self.speed)
            or self.speed <= 0
        ):
            raise BadInput(f"config: speed must be a number greater than 0, got {self.speed!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WorkerConfig:
        unknown = sorted(set(data) - WORKER_SETTINGS)
        if unknown:
            raise BadInput(f"config: unknown worker setting {', '.join(unknown)}")
        name = data.get("name", "worker")
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"config: name must be a non-empty string, got {name!r}")
        return cls(
            token_file=config_path(data, "token_file"),
            speed=config_number(data, "speed", 1.0),
            name=name,
            max_content_length=config_int(
                data, "max_content_length", DEFAULT_MAX_CONTENT_LENGTH, minimum=1024
            ),
            max_artifact_bytes=config_artifact_limit(data),
            artifact_cache_bytes=config_int(
                data, "artifact_cache_bytes", DEFAULT_ARTIFACT_CACHE_BYTES, minimum=1024
            ),
            cancel_dir=config_optional_path(data, "cancel_dir"),
            scrape_token_file=config_optional_path(data, "scrape_token_file"),
        )


def create_worker_app(config: WorkerConfig | Mapping[str, Any]) -> Flask:
    """The worker's Flask app (reads the token file now: BadInput if it is not private)."""
    if not isinstance(config, WorkerConfig):
        config = WorkerConfig.from_mapping(config)
    accepted = [(TokenFile(config.token_file), Role.FULL)]
    if config.scrape_token_file is not None:
        accepted.append((TokenFile(config.scrape_token_file), Role.SCRAPE))
    app = create_base_app(
        "worker", credentials=Credentials(accepted), max_content_length=config.max_content_length
    )
    metrics = service_state(app).metrics
    cache = ArtifactCache(config.artifact_cache_bytes)
    cancels = ShardCancels(config.cancel_dir or default_cancel_dir(config.name))

    @app.errorhandler(MissingArtifacts)
    def _missing(exc: MissingArtifacts) -> tuple[Response, int]:
        return reply(MissingArtifactsBody(error=str(exc), status=409, missing=exc.missing), 409)

    @app.post("/v1/shards/run")
    @documented(
        "Run one shard: kind.map(params, start, stop) at this worker's speed.",
        body=ShardRun,
        answers={
            200: Answer("The shard's partial result.", ShardResult),
            409: Answer(
                "This worker does not hold some of the shard's artifacts: PUT them "
                "(missing: {name: sha256}), then send the shard again.",
                MissingArtifactsBody,
            ),
            410: Answer("The shard's job was cancelled on this worker.", ErrorBody),
        },
        errors=(400, 413, 415),
    )
    def run_shard() -> tuple[Response, int]:
        shard = read_body(ShardRun)
        kind = get_kind(shard.kind)
        kind.check_artifact_names(shard.artifacts)
        loaded, missing = cache.lookup(kind.name, shard.artifacts)
        if missing:
            raise MissingArtifacts(missing)
        if cancels.is_cancelled(shard.job_id):
            return _cancelled(shard.job_id)
        began = time.perf_counter()
        try:
            partial = kind.map(
                shard.params,
                shard.start,
                shard.stop,
                speed=config.speed,
                artifacts=loaded,
                cancelled=cancels.checker(shard.job_id),
            )
        except ShardCancelled:
            return _cancelled(shard.job_id)
        seconds = time.perf_counter() - began
        metrics.shard_done(kind.name)
        return reply(
            ShardResult(
                job_id=shard.job_id, shard_id=shard.shard_id, partial=partial, seconds=seconds
            )
        )

    @app.delete("/v1/shards/<job_id>")
    @documented(
        "Cancel a job here: its running shards stop between tasks, its later shards are "
        "refused (410).",
        answers={200: Answer("Cancelled.", ShardsCancelled)},
    )
    def cancel_shards(job_id: str) -> tuple[Response, int]:
        cancels.cancel(job_id)
        return reply(ShardsCancelled(job_id=job_id, cancelled=True))

    @app.put("/v1/artifacts/<digest>")
    @documented_upload(
        "Hold an artifact of a kind (loaded and checked by the kind, cached in memory).",
        query=ArtifactTarget,
    )
    def put_artifact(digest: str) -> tuple[Response, int]:
        target = read_query(ArtifactTarget)
        kind = get_kind(target.kind)
        name = kind.artifact_spec(target.name).name
        data = read_artifact_body(digest, config.max_artifact_bytes)
        created = cache.get(kind.name, name, digest) is None
        if created:
            cache.put(kind.name, name, digest, kind.load_artifact(name, data), len(data))
        stored = ArtifactStored(sha256=digest, size=len(data), created=created)
        return reply(stored, 201 if created else 200)

    @app.get("/v1/kinds")
    @documented(
        "The job kinds this worker can run, with their parameters.",
        answers={200: Answer("The kinds.", KindList)},
    )
    def kinds() -> tuple[Response, int]:
        return reply(KindList(kinds=[get_kind(name).describe() for name in known_kinds()]))

    return app


def _cancelled(job_id: str) -> tuple[Response, int]:
    return error_response(410, f"job {job_id} was cancelled: its shards do not run")


def app_from_config_file(path: str | os.PathLike[str] | None = None) -> Flask:
    """The worker app from a YAML/JSON config file (default: ``$LEPTON_WORKER_CONFIG``)."""
    where = path if path is not None else os.environ.get("LEPTON_WORKER_CONFIG")
    if not where:
        raise BadInput("no worker config file: give a path or set LEPTON_WORKER_CONFIG")
    return create_worker_app(load_config_file(where))


__all__ = ["WorkerConfig", "app_from_config_file", "create_worker_app"]
