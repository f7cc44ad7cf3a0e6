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

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import Conflict, NotFound

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds import MAX_TASKS, check_digest, known_kinds
from lepton_ops.services.aggregator_config import AggregatorConfig
from lepton_ops.services.artifacts import (
    ARTIFACTS_FIELD,
    DIGEST_PARAMETER,
    artifact_digests,
    artifact_put,
    read_artifact_body,
)
from lepton_ops.services.auth import Credentials, Role, TokenFile
from lepton_ops.services.base_app import create_base_app
from lepton_ops.services.bodies import (
    check_fields,
    error_response,
    field_int,
    field_object,
    field_str,
    json_body,
)
from lepton_ops.services.config_files import load_config_file
from lepton_ops.services.dispatcher import Dispatcher, JobNotRunning, JobRun
from lepton_ops.services.drains import DrainRefused
from lepton_ops.services.job_store import JobRecord, JobStatus, JobStore, StoreWriteError
from lepton_ops.services.openapi import error_responses, json_content
from lepton_ops.services.service_state import service_state

EXTENSION_KEY = "lepton_aggregator"
JOB_FIELDS = ("kind", "params", "tasks", "strategy", "shard_size", "artifacts")
DRAIN_FIELDS = ("reason", "ttl_s")
#: The longest a drain may be given to expire in (a day); no ttl_s: until undrained.
MAX_DRAIN_TTL_S = 86400
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
    state.openapi_paths.update(AGGREGATOR_PATHS)
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
    def submit_job() -> tuple[Response, int]:
        body = json_body()
        check_fields(body, JOB_FIELDS)
        kind = field_str(body, "kind", max_length=100)
        params = field_object(body, "params", default={})
        tasks = field_int(body, "tasks", minimum=0, maximum=MAX_TASKS)
        strategy = field_str(body, "strategy", default="weighted", max_length=20)
        shard_size = (
            None
            if body.get("shard_size") is None
            else field_int(body, "shard_size", minimum=1, maximum=MAX_TASKS)
        )
        artifacts = artifact_digests(body.get("artifacts"))
        record = dispatcher.submit(kind, params, tasks, strategy, shard_size, artifacts)
        response = jsonify({"job_id": record.id, "status": record.status.value})
        response.headers["Location"] = f"/v1/jobs/{record.id}"
        return response, 202

    @app.put("/v1/artifacts/<digest>")
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
        body = {"sha256": digest, "size": len(data), "created": created}
        return jsonify(body), 201 if created else 200

    @app.get("/v1/artifacts/<digest>")
    def artifact_info(digest: str) -> Response:
        info = store.artifact_info(check_digest(digest))
        if info is None:
            raise NotFound(f"no artifact {digest}: upload it with PUT /v1/artifacts/{digest}")
        return jsonify({"sha256": info.sha256, "size": info.size, "created_at": info.created_at})

    @app.get("/v1/jobs")
    def list_jobs() -> Response:
        wanted = request.args.get("status")
        status = None
        if wanted is not None:
            try:
                status = JobStatus(wanted)
            except ValueError:
                choices = ", ".join(item.value for item in JobStatus)
                raise BadInput(f"status must be one of {choices}, got {wanted!r}") from None
        return jsonify({"jobs": [_summary(record) for record in store.jobs(status)]})

    @app.get("/v1/jobs/<job_id>")
    def job_status(job_id: str) -> Response:
        record = _find(store, job_id)
        return jsonify(_status(record, store, dispatcher.run(job_id)))

    @app.delete("/v1/jobs/<job_id>")
    def cancel_job(job_id: str) -> tuple[Response, int]:
        _find(store, job_id)
        try:
            record = dispatcher.cancel(job_id)
        except JobNotRunning as exc:
            return error_response(409, str(exc))
        return jsonify({**_summary(record), "reason": record.reason}), 200

    @app.get("/v1/jobs/<job_id>/result")
    def job_result(job_id: str) -> Response:
        record = _find(store, job_id)
        if record.status is not JobStatus.SUCCEEDED:
            detail = f": {record.reason}" if record.reason else ""
            raise Conflict(f"job {job_id} has no result: it is {record.status.value}{detail}")
        return jsonify(
            {
                "job_id": record.id,
                "kind": record.kind,
                "status": "succeeded",
                "result": record.result,
            }
        )

    @app.get("/v1/drains")
    def list_drains() -> Response:
        return jsonify({"drains": [drain.to_dict() for drain in dispatcher.drains.active()]})

    @app.put("/v1/drains/<node>")
    def put_drain(node: str) -> tuple[Response, int]:
        body = json_body()
        check_fields(body, DRAIN_FIELDS)
        reason = field_str(body, "reason", max_length=500)
        ttl = body.get("ttl_s")
        ttl_s = (
            None if ttl is None else field_int(body, "ttl_s", minimum=1, maximum=MAX_DRAIN_TTL_S)
        )
        try:
            drain = dispatcher.drains.drain(node, reason, ttl_s)
        except DrainRefused as exc:
            return error_response(409, str(exc))
        return jsonify(drain.to_dict()), 200

    @app.delete("/v1/drains/<node>")
    def delete_drain(node: str) -> Response:
        return jsonify({"node": node, "undrained": dispatcher.drains.undrain(node)})

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


def _summary(record: JobRecord) -> dict[str, Any]:
    return {
        "job_id": record.id,
        "kind": record.kind,
        "status": record.status.value,
        "strategy": record.strategy,
        "tasks": record.tasks,
        "shards": record.shards,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
    }


def _status(record: JobRecord, store: JobStore, run: JobRun | None) -> dict[str, Any]:
    sizes = {str(s["id"]): int(s["stop"]) - int(s["start"]) for s in record.plan["shards"]}
    per_node: dict[str, dict[str, Any]] = {
        str(node["name"]): {"tasks": 0, "shards": 0, "seconds": 0.0}
        for node in record.plan["nodes"]
    }
    results = [result for result in store.shard_results(record.id) if result.shard_id in sizes]
    for result in results:
        entry = per_node.setdefault(result.node, {"tasks": 0, "shards": 0, "seconds": 0.0})
        entry["tasks"] += sizes.get(result.shard_id, 0)
        entry["shards"] += 1
        entry["seconds"] += result.seconds
    status = {
        **_summary(record),
        "params": record.params,
        "artifacts": record.artifacts,
        "progress": {
            "shards_done": len(results),
            "shards_total": record.shards,
            "tasks_done": sum(sizes.get(result.shard_id, 0) for result in results),
            "tasks_total": record.tasks,
        },
        "per_node": per_node,
        "lost_nodes": run.lost_nodes() if run is not None else [],
        "drained_nodes": run.drained_nodes() if run is not None else [],
        "reason": record.reason,
        "predicted_makespan_units": record.plan.get("makespan_s"),
        "makespan_s": None
        if record.finished_at is None
        else max(record.finished_at - record.created_at, 0.0),
    }
    return status


_JOB_SUMMARY = {
    "type": "object",
    "properties": {
        "job_id": {"type": "string"},
        "kind": {"type": "string"},
        "status": {"type": "string", "enum": [item.value for item in JobStatus]},
        "strategy": {"type": "string"},
        "tasks": {"type": "integer"},
        "shards": {"type": "integer"},
        "created_at": {"type": "number"},
        "finished_at": {"type": "number", "nullable": True},
    },
}
_DRAIN = {
    "type": "object",
    "properties": {
        "node": {"type": "string"},
        "reason": {"type": "string"},
        "since": {"type": "number"},
        "until": {"type": "number", "nullable": True},
    },
}
_JOB_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]

AGGREGATOR_PATHS: dict[str, Any] = {
    "/v1/artifacts/{digest}": {
        "put": artifact_put(
            "Upload a job artifact (content-addressed: idempotent).",
            responses={
                "503": {
                    "description": "Too many uploads at once: try again.",
                    "content": json_content({"$ref": "#/components/schemas/Error"}),
                }
            },
        ),
        "get": {
            "summary": "Whether the aggregator holds an artifact, and its size.",
            "parameters": [DIGEST_PARAMETER],
            "responses": {
                "200": {
                    "description": "The artifact is held.",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "sha256": {"type": "string"},
                                "size": {"type": "integer"},
                                "created_at": {"type": "number"},
                            },
                        }
                    ),
                },
                **error_responses(400, 404),
            },
        },
    },
    "/v1/jobs": {
        "post": {
            "summary": "Submit a job: plan it over the workers and start dispatching it.",
            "requestBody": {
                "required": True,
                "content": json_content(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["kind", "tasks"],
                        "example": {"kind": "sleep", "tasks": 8, "params": {"task_ms": 1.0}},
                        "properties": {
                            "kind": {"type": "string", "enum": known_kinds()},
                            "params": {"type": "object", "description": "The kind's parameters."},
                            "tasks": {"type": "integer", "minimum": 0, "maximum": MAX_TASKS},
                            "strategy": {
                                "type": "string",
                                "enum": ["weighted", "equal"],
                                "default": "weighted",
                            },
                            "shard_size": {"type": "integer", "minimum": 1},
                            "artifacts": ARTIFACTS_FIELD,
                        },
                    }
                ),
            },
            "responses": {
                "202": {
                    "description": "Accepted: the job runs in the background.",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "job_id": {"type": "string"},
                                "status": {"type": "string"},
                            },
                        }
                    ),
                },
                **error_responses(400, 413, 415, 503),
            },
        },
        "get": {
            "summary": "The jobs, newest first.",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": [item.value for item in JobStatus]},
                }
            ],
            "responses": {
                "200": {
                    "description": "The jobs.",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {"jobs": {"type": "array", "items": _JOB_SUMMARY}},
                        }
                    ),
                },
                **error_responses(400),
            },
        },
    },
    "/v1/jobs/{job_id}": {
        "get": {
            "summary": "A job's status, progress and per-node work (makespan once finished).",
            "parameters": _JOB_ID,
            "responses": {
                "200": {
                    "description": "The job.",
                    "content": json_content(
                        {
                            "allOf": [
                                _JOB_SUMMARY,
                                {
                                    "type": "object",
                                    "properties": {
                                        "progress": {"type": "object"},
                                        "per_node": {
                                            "type": "object",
                                            "additionalProperties": {
                                                "type": "object",
                                                "properties": {
                                                    "tasks": {"type": "integer"},
                                                    "shards": {"type": "integer"},
                                                    "seconds": {"type": "number"},
                                                },
                                            },
                                        },
                                        "lost_nodes": {
                                            "type": "array",
                                            "items": {"type": "string"},
                                        },
                                        "reason": {"type": "string", "nullable": True},
                                        "makespan_s": {"type": "number", "nullable": True},
                                        "artifacts": ARTIFACTS_FIELD,
                                    },
                                },
                            ]
                        }
                    ),
                },
                **error_responses(404),
            },
        },
        "delete": {
            "summary": "Cancel a running job: it fails (reason: cancelled) and its workers "
            "stop its shards between tasks.",
            "parameters": _JOB_ID,
            "responses": {
                "200": {
                    "description": "Cancelled.",
                    "content": json_content(
                        {
                            "allOf": [
                                _JOB_SUMMARY,
                                {"type": "object", "properties": {"reason": {"type": "string"}}},
                            ]
                        }
                    ),
                },
                "409": {
                    "description": "The job has already finished.",
                    "content": json_content({"$ref": "#/components/schemas/Error"}),
                },
                **error_responses(404, 503),
            },
        },
    },
    "/v1/drains": {
        "get": {
            "summary": "The drained workers: they get no new shards.",
            "responses": {
                "200": {
                    "description": "The drains in force.",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {"drains": {"type": "array", "items": _DRAIN}},
                        }
                    ),
                },
                **error_responses(),
            },
        }
    },
    "/v1/drains/{node}": {
        "put": {
            "summary": "Drain a worker: no new shards; running jobs move its unstarted ones.",
            "parameters": [
                {"name": "node", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": True,
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["reason"],
                        "properties": {
                            "reason": {"type": "string", "maxLength": 500},
                            "ttl_s": {"type": "integer", "minimum": 1, "maximum": MAX_DRAIN_TTL_S},
                        },
                    }
                ),
            },
            "responses": {
                "200": {"description": "Drained.", "content": json_content(_DRAIN)},
                "409": {
                    "description": "It would leave no worker undrained.",
                    "content": json_content({"$ref": "#/components/schemas/Error"}),
                },
                **error_responses(400, 413, 415, 503),
            },
        },
        "delete": {
            "summary": "Lift a worker's drain.",
            "parameters": [
                {"name": "node", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "Whether it was drained.",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "node": {"type": "string"},
                                "undrained": {"type": "boolean"},
                            },
                        }
                    ),
                },
                **error_responses(503),
            },
        },
    },
    "/v1/jobs/{job_id}/result": {
        "get": {
            "summary": "A succeeded job's result.",
            "parameters": _JOB_ID,
            "responses": {
                "200": {
                    "description": "The result.",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "job_id": {"type": "string"},
                                "kind": {"type": "string"},
                                "status": {"type": "string"},
                                "result": {"type": "object"},
                            },
                        }
                    ),
                },
                "409": {
                    "description": "The job is still running, or failed (with the reason).",
                    "content": json_content({"$ref": "#/components/schemas/Error"}),
                },
                **error_responses(404),
            },
        }
    },
}


__all__ = [
    "app_from_config_file",
    "create_aggregator_app",
    "dispatcher_of",
]
