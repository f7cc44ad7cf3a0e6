"""The aggregator service: owns jobs, sends their shards to the workers, reduces results.

``POST /v1/jobs`` checks the job (its kind validates the parameters), plans it over the
configured workers (:func:`lepton_ops.jobs.planner.make_plan`: largest remainder by
weight, or the naive equal split), stores it and starts dispatching in the background
(:class:`~lepton_ops.services.dispatcher.Dispatcher`: one thread per worker, lost
workers' shards go to the others, the job is persisted and resumes after a restart).

Jobs of kinds with artifacts (``predict``: a model and a data set) name them by SHA-256:
the client first uploads each once (``PUT /v1/artifacts/<sha256>``, kept in the job
store), and the dispatcher hands them to each worker that asks for them
(:mod:`lepton_ops.services.artifacts`).

Run it as ONE process (gunicorn ``--workers 1 --threads N``): two processes would both
resume and dispatch the same jobs (the store would still count each shard once).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import Conflict, NotFound

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds import check_digest
from lepton_ops.services.aggregator_bodies import (
    CancelledJob,
    Drain,
    DrainList,
    DrainRequest,
    JobAccepted,
    JobFilter,
    JobList,
    JobResult,
    JobState,
    JobSubmission,
    JobSummary,
    NodeWork,
    Progress,
    StoredArtifact,
    Undrained,
)
from lepton_ops.services.aggregator_config import AggregatorConfig
from lepton_ops.services.artifacts import (
    DIGEST_PARAMETER,
    ArtifactStored,
    documented_upload,
    read_artifact_body,
)
from lepton_ops.services.auth import Credentials, Role, TokenFile
from lepton_ops.services.base_app import create_base_app
from lepton_ops.services.bodies import (
    ErrorBody,
    error_response,
    read_body,
    read_query,
    reply,
)
from lepton_ops.services.config_files import load_config_file
from lepton_ops.services.dispatcher import Dispatcher, JobNotRunning, JobRun
from lepton_ops.services.drains import DrainRefused
from lepton_ops.services.job_store import JobRecord, JobStatus, JobStore, StoreWriteError
from lepton_ops.services.openapi import Answer, documented
from lepton_ops.services.service_state import service_state

EXTENSION_KEY = "lepton_aggregator"
#: Seconds an upload waits for its turn (``max_artifact_uploads`` are read at once).
UPLOAD_WAIT_S = 30.0


def create_aggregator_app(config: AggregatorConfig | Mapping[str, Any]) -> Flask:
    """The aggregator's Flask app; resumes the store's running jobs (``config.resume``)."""
    if not isinstance(config, AggregatorConfig):
        config = AggregatorConfig.from_mapping(config)
    controller = TokenFile(config.token_file)
    towards_workers = (
        controller if config.worker_token_file is None else TokenFile(config.worker_token_file)
    )
    accepted = [(controller, Role.FULL)]
    if towards_workers is not controller:
        accepted.append((towards_workers, Role.NONE))
    if config.scrape_token_file is not None:
        accepted.append((TokenFile(config.scrape_token_file), Role.SCRAPE))
    app = create_base_app(
        "aggregator",
        credentials=Credentials(accepted),
        max_content_length=config.max_content_length,
    )
    state = service_state(app)
    store = JobStore(config.db_path)
    dispatcher = Dispatcher(config, store, towards_workers, state.metrics)
    app.extensions[EXTENSION_KEY] = dispatcher
    state.readiness.append(store.ping)
    uploads = threading.BoundedSemaphore(config.max_artifact_uploads)

    @app.errorhandler(StoreWriteError)
    def _store_full(exc: StoreWriteError) -> tuple[Response, int]:
        # Disk full or an I/O error: nothing was kept; the request may be tried again.
        return error_response(503, f"{exc}: try again later")

    @app.post("/v1/jobs")
    @documented(
        "Submit a job: plan it over the workers and start dispatching it.",
        body=JobSubmission,
        answers={
            202: Answer(
                "Accepted: the job runs in the background.", JobAccepted, headers=("Location",)
            )
        },
        errors=(400, 413, 415, 503),
    )
    def submit_job() -> tuple[Response, int]:
        job = read_body(JobSubmission)
        record = dispatcher.submit(
            job.kind, job.params, job.tasks, job.strategy, job.shard_size, job.artifacts
        )
        response, status = reply(JobAccepted(job_id=record.id, status=record.status), 202)
        response.headers["Location"] = f"/v1/jobs/{record.id}"
        return response, status

    @app.put("/v1/artifacts/<digest>")
    @documented_upload(
        "Upload a job artifact (content-addressed: idempotent).",
        answers={503: Answer("Too many uploads at once: try again.", ErrorBody)},
    )
    def put_artifact(digest: str) -> tuple[Response, int]:
        check_digest(digest)
        # Bounded memory: each upload holds its body until it is stored.
        if not uploads.acquire(timeout=UPLOAD_WAIT_S):
            return error_response(503, "too many artifact uploads at once: try again")
        try:
            data = read_artifact_body(digest, config.max_artifact_bytes)
            created = store.put_artifact(digest, data)
        finally:
            uploads.release()
        stored = ArtifactStored(sha256=digest, size=len(data), created=created)
        return reply(stored, 201 if created else 200)

    @app.get("/v1/artifacts/<digest>")
    @documented(
        "Whether the aggregator holds an artifact, and its size.",
        path={"digest": DIGEST_PARAMETER},
        answers={200: Answer("The artifact is held.", StoredArtifact)},
        errors=(400, 404),
    )
    def artifact_info(digest: str) -> tuple[Response, int]:
        info = store.artifact_info(check_digest(digest))
        if info is None:
            raise NotFound(f"no artifact {digest}: upload it with PUT /v1/artifacts/{digest}")
        return reply(StoredArtifact(sha256=info.sha256, size=info.size, created_at=info.created_at))

    @app.get("/v1/jobs")
    @documented(
        "The jobs, newest first.",
        query=JobFilter,
        answers={200: Answer("The jobs.", JobList)},
        errors=(400,),
    )
    def list_jobs() -> tuple[Response, int]:
        wanted = read_query(JobFilter).status
        records = store.jobs(None if wanted is None else JobStatus(wanted))
        return reply(JobList(jobs=[JobSummary(**JobSummary.fields_of(r)) for r in records]))

    @app.get("/v1/jobs/<job_id>")
    @documented(
        "A job's status, progress and per-node work (makespan once finished).",
        answers={200: Answer("The job.", JobState)},
        errors=(404,),
    )
    def job_status(job_id: str) -> tuple[Response, int]:
        record = _find(store, job_id)
        return reply(_state(record, store, dispatcher.run(job_id)))

    @app.delete("/v1/jobs/<job_id>")
    @documented(
        "Cancel a running job: it fails (reason: cancelled) and its workers stop its shards "
        "between tasks.",
        answers={
            200: Answer("Cancelled.", CancelledJob),
            409: Answer("The job has already finished.", ErrorBody),
        },
        errors=(404, 503),
    )
    def cancel_job(job_id: str) -> tuple[Response, int]:
        _find(store, job_id)
        try:
            record = dispatcher.cancel(job_id)
        except JobNotRunning as exc:
            return error_response(409, str(exc))
        return reply(CancelledJob(**JobSummary.fields_of(record), reason=record.reason))

    @app.get("/v1/jobs/<job_id>/result")
    @documented(
        "A succeeded job's result.",
        answers={
            200: Answer("The result.", JobResult),
            409: Answer("The job is still running, or failed (with the reason).", ErrorBody),
        },
        errors=(404,),
    )
    def job_result(job_id: str) -> tuple[Response, int]:
        record = _find(store, job_id)
        if record.status is not JobStatus.SUCCEEDED:
            detail = f": {record.reason}" if record.reason else ""
            raise Conflict(f"job {job_id} has no result: it is {record.status.value}{detail}")
        return reply(
            JobResult(job_id=record.id, kind=record.kind, status="succeeded", result=record.result)
        )

    @app.get("/v1/drains")
    @documented(
        "The drained workers: they get no new shards.",
        answers={200: Answer("The drains in force.", DrainList)},
    )
    def list_drains() -> tuple[Response, int]:
        drains = [Drain.model_validate(drain.to_dict()) for drain in dispatcher.drains.active()]
        return reply(DrainList(drains=drains))

    @app.put("/v1/drains/<node>")
    @documented(
        "Drain a worker: no new shards; running jobs move its unstarted ones.",
        body=DrainRequest,
        answers={
            200: Answer("Drained.", Drain),
            409: Answer("It would leave no worker undrained.", ErrorBody),
        },
        errors=(400, 413, 415, 503),
    )
    def put_drain(node: str) -> tuple[Response, int]:
        wanted = read_body(DrainRequest)
        try:
            drain = dispatcher.drains.drain(node, wanted.reason, wanted.ttl_s)
        except DrainRefused as exc:
            return error_response(409, str(exc))
        return reply(Drain.model_validate(drain.to_dict()))

    @app.delete("/v1/drains/<node>")
    @documented(
        "Lift a worker's drain.",
        answers={200: Answer("Whether it was drained.", Undrained)},
        errors=(503,),
    )
    def delete_drain(node: str) -> tuple[Response, int]:
        return reply(Undrained(node=node, undrained=dispatcher.drains.undrain(node)))

    if config.resume:
        dispatcher.resume_running()
    return app


def dispatcher_of(app: Flask) -> Dispatcher:
    """The aggregator app's :class:`Dispatcher` (to wait for or shut down its jobs)."""
    dispatcher = app.extensions[EXTENSION_KEY]
    assert isinstance(dispatcher, Dispatcher)
    return dispatcher


def app_from_config_file(path: str | os.PathLike[str] | None = None) -> Flask:
    """The aggregator app from a YAML/JSON config (default: ``$LEPTON_AGGREGATOR_CONFIG``)."""
    where = path if path is not None else os.environ.get("LEPTON_AGGREGATOR_CONFIG")
    if not where:
        raise BadInput("no aggregator config file: give a path or set LEPTON_AGGREGATOR_CONFIG")
    return create_aggregator_app(load_config_file(where))


def _find(store: JobStore, job_id: str) -> JobRecord:
    if not store.has_job(job_id):
        raise NotFound(f"no job {job_id!r}")
    return store.job(job_id)


def _state(record: JobRecord, store: JobStore, run: JobRun | None) -> JobState:
    sizes = {str(s["id"]): int(s["stop"]) - int(s["start"]) for s in record.plan["shards"]}
    per_node = {str(node["name"]): NodeWork() for node in record.plan["nodes"]}
    results = [result for result in store.shard_results(record.id) if result.shard_id in sizes]
    for result in results:
        work = per_node.setdefault(result.node, NodeWork())
        work.tasks += sizes.get(result.shard_id, 0)
        work.shards += 1
        work.seconds += result.seconds
    return JobState(
        **JobSummary.fields_of(record),
        params=record.params,
        artifacts=record.artifacts,
        progress=Progress(
            shards_done=len(results),
            shards_total=record.shards,
            tasks_done=sum(sizes.get(result.shard_id, 0) for result in results),
            tasks_total=record.tasks,
        ),
        per_node=per_node,
        lost_nodes=run.lost_nodes() if run is not None else [],
        drained_nodes=run.drained_nodes() if run is not None else [],
        reason=record.reason,
        predicted_makespan_units=record.plan.get("makespan_s"),
        makespan_s=None
        if record.finished_at is None
        else max(record.finished_at - record.created_at, 0.0),
    )


__all__ = [
    "app_from_config_file",
    "create_aggregator_app",
    "dispatcher_of",
]
