"""The OpenAPI 3.0 document: the shared paths, schemas and responses, and helpers.

Each service describes its own routes in an OpenAPI ``paths`` dict next to the routes;
:func:`openapi_document` merges them with the shared ones (``/healthz``, ``/readyz``,
``/metrics``, ``/openapi.json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lepton_ops.services.service_state import ServiceState


def openapi_document(state: ServiceState) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the app: shared paths plus the service's own."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"lepton {state.service}",
            "version": state.info.get("version", "0.1.0"),
            "description": f"The lepton-ops {state.service} service.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(COMMON_SCHEMAS),
            "responses": dict(COMMON_RESPONSES),
        },
        "security": [{"bearer": []}],
        "paths": state.openapi_paths,
    }


def json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error_responses(*codes: int) -> dict[str, Any]:
    """The shared error responses ``codes`` (plus 401, 403 and 500, which every path has)."""
    return {
        str(code): {"$ref": f"#/components/responses/E{code}"}
        for code in sorted({401, 403, 500, *codes})
    }


COMMON_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    },
}

_ERROR_TEXT = {
    400: "Bad input: malformed JSON, a wrong type or a value out of range.",
    401: "Missing or wrong bearer token.",
    403: "A known token without the right: a worker's token, or the scrape token (only "
    "GET /metrics).",
    404: "No such resource.",
    413: "The body is larger than the configured maximum.",
    415: "The body is not JSON.",
    500: "Unexpected error (details in the service log).",
    503: "Not ready, or the job store cannot be written now (disk full): try again.",
}
COMMON_RESPONSES: dict[str, Any] = {
    f"E{code}": {"description": text, "content": json_content(ref("Error"))}
    for code, text in _ERROR_TEXT.items()
}

COMMON_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness: the process answers.",
            "security": [],
            "responses": {
                "200": {
                    "description": "Alive.",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "string", "enum": ["ok"]},
                                "service": {"type": "string"},
                            },
                        }
                    ),
                },
                "500": {"$ref": "#/components/responses/E500"},
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: the service can do its work.",
            "responses": {
                "200": {
                    "description": "Ready.",
                    "content": json_content(
                        {"type": "object", "properties": {"status": {"type": "string"}}}
                    ),
                },
                "503": {
                    "description": "Not ready, with the reasons.",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "string"},
                                "reasons": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                },
                **error_responses(),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format).",
            "responses": {
                "200": {
                    "description": "The metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **error_responses(),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "responses": {
                "200": {"description": "The OpenAPI document.", "content": json_content({})},
                **error_responses(),
            },
        }
    },
}


def openapi_path(rule: str) -> str:
    """A Flask rule (``/v1/jobs/<job_id>``) as an OpenAPI path (``/v1/jobs/{job_id}``)."""
    parts = []
    for part in rule.split("/"):
        if part.startswith("<") and part.endswith(">"):
            part = "{" + part[1:-1].split(":")[-1] + "}"
        parts.append(part)
    return "/".join(parts)
