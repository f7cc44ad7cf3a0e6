"""The base Flask app of every service: auth, JSON errors, health, readiness, metrics.

:func:`create_base_app` makes a Flask app that already has

- bearer-token auth on every endpoint but ``/healthz`` (``Authorization: Bearer <token>``,
  compared in constant time; 401 with a JSON error for an unknown token, 403 for a known
  one without the right: see :class:`~lepton_ops.services.auth.Credentials`). Tokens are
  read from files that must not be readable by group or others; they are never logged
  and never echoed back;
- JSON errors everywhere: 400 for bad input (malformed JSON, wrong types, values out of
  range), 401, 404, 405, 413 (body over ``max_content_length``), 415 (not JSON) and 500
  (an unexpected exception: logged with its traceback, answered with a generic message);
- ``GET /healthz`` (liveness, no auth), ``GET /readyz`` (readiness), ``GET /metrics``
  (Prometheus exposition from a per-app ``CollectorRegistry``: requests and latency by
  endpoint and status, errors, shards done, process RSS) and ``GET /openapi.json``.

Each route, here and in the services, is described where it is defined
(:func:`~lepton_ops.services.openapi.documented`, with its body models); the OpenAPI
document is generated from the app's routes (:func:`~lepton_ops.services.openapi.openapi_document`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.services.auth import Credentials, Role
from lepton_ops.services.bodies import (
    DEFAULT_MAX_CONTENT_LENGTH,
    Health,
    NotReady,
    Readiness,
    UnsupportedBody,
    error_response,
    reply,
)
from lepton_ops.services.metrics import ServiceMetrics
from lepton_ops.services.openapi import Answer, documented, json_content, openapi_document
from lepton_ops.services.service_state import (
    EXTENSION_KEY,
    ReadinessCheck,
    ServiceState,
)

log = logging.getLogger(__name__)


#: Endpoints anyone may call without the token.
PUBLIC_ENDPOINTS = frozenset({"healthz"})
#: The methods metrics are labelled with; any other (gunicorn accepts any 3 to 20
#: capital letters) counts as "other", so requests cannot grow the series without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def create_base_app(
    service: str,
    *,
    credentials: Credentials,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    version: str = "0.1.0",
) -> Flask:
    """A Flask app with auth, JSON errors, health, readiness, metrics and OpenAPI."""
    app = Flask(f"lepton_ops.services.{service}", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = max_content_length
    app.config["JSON_SORT_KEYS"] = False
    metrics = ServiceMetrics(service)
    state = ServiceState(service=service, metrics=metrics, info={"version": version})
    app.extensions[EXTENSION_KEY] = state

    @app.before_request
    def _start_timer() -> None:
        g.lepton_started = time.perf_counter()

    @app.before_request
    def _authenticate() -> tuple[Response, int] | None:
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        role = credentials.role_of(request.headers.get("Authorization"))
        if role is Role.FULL:
            return None
        if role is None:
            response, status = error_response(401, "missing or wrong bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="lepton"'
            return response, status
        if role is Role.SCRAPE and request.endpoint == "metrics_endpoint":
            return None
        return error_response(403, f"this token ({role.value} role) may not do this here")

    @app.after_request
    def _record(response: Response) -> Response:
        started = g.get("lepton_started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        # The route's rule, never the raw path: label values stay a fixed set.
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "other"
        metrics.observe_request(rule, method, response.status_code, seconds)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(BadInput)
    def _bad_input(exc: BadInput) -> tuple[Response, int]:
        return error_response(400, str(exc))

    @app.errorhandler(UnsupportedBody)
    def _unsupported(exc: UnsupportedBody) -> tuple[Response, int]:
        return error_response(415, str(exc))

    @app.errorhandler(OperationFailed)
    def _failed(exc: OperationFailed) -> tuple[Response, int]:
        log.error("%s %s failed: %s", request.method, request.path, exc)
        return error_response(500, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        if status == 413:
            # A route may raise its own limit (artifacts): report the one in force.
            limit = request.max_content_length or app.config["MAX_CONTENT_LENGTH"]
            return error_response(413, f"the body is larger than {limit} bytes")
        response, code = error_response(status, exc.description or exc.name)
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response, code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # The traceback goes to the log (never the request's headers), not to the client.
        log.exception("%s %s: unexpected error", request.method, request.path)
        return error_response(500, "internal error: see the service log")

    @app.get("/healthz")
    @documented("Liveness: the process answers.", answers={200: Answer("Alive.", Health)})
    def healthz() -> tuple[Response, int]:
        return reply(Health(status="ok", service=service))

    @app.get("/readyz")
    @documented(
        "Readiness: the service can do its work.",
        answers={
            200: Answer("Ready.", Readiness),
            503: Answer("Not ready, with the reasons.", NotReady),
        },
    )
    def readyz() -> tuple[Response, int]:
        reasons = [reason for check in state.readiness if (reason := _run_check(check))]
        if reasons:
            return reply(NotReady(status="not ready", reasons=reasons), 503)
        return reply(Readiness(status="ready", service=service))

    @app.get("/metrics")
    @documented(
        "Prometheus metrics (text exposition format).",
        answers={
            200: Answer("The metrics.", content={"text/plain": {"schema": {"type": "string"}}})
        },
    )
    def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    # Generated once, on first request: every route is defined by then.
    document: dict[str, Any] = {}

    @app.get("/openapi.json")
    @documented(
        "This document.", answers={200: Answer("The OpenAPI document.", content=json_content({}))}
    )
    def openapi() -> Response:
        if not document:
            document.update(
                openapi_document(
                    app, service=service, version=state.info["version"], public=PUBLIC_ENDPOINTS
                )
            )
        return jsonify(document)

    return app


def _run_check(check: ReadinessCheck) -> str | None:
    try:
        return check()
    except Exception as exc:
        log.warning("readiness check failed: %s: %s", exc.__class__.__name__, exc)
        return f"readiness check failed: {exc.__class__.__name__}"
