"""Request bodies checked by their models, and the OpenAPI document generated from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from service_support import AUTH, TOKEN

from lepton_ops.jobs.kinds import MAX_TASKS, known_kinds
from lepton_ops.services.aggregator_bodies import JobSubmission
from lepton_ops.services.auth import Credentials, Role, TokenFile
from lepton_ops.services.base_app import create_base_app
from lepton_ops.services.openapi import OpenAPI30Schema, openapi_document


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # null is "required" for a field that may not be null, even one with a default...
        ({"kind": "mean", "tasks": 3, "strategy": None}, "strategy is required"),
        ({"kind": "mean", "tasks": 3, "params": None}, "params is required"),
        ({"kind": None, "tasks": None}, "kind is required"),
        # ...and every unknown field is named, before any other error.
        ({"kind": 1, "b": 1, "a": None}, "unknown field a, b (fields: kind, params, tasks,"),
        ({"kind": "mean", "tasks": 3, "shard_size": "2"}, "shard_size must be a whole number"),
        ({"kind": "mean ", "tasks": 3, "strategy": "x" * 21}, "strategy must be 1 to 20"),
    ],
)
def test_job_fields_are_checked_in_order(idle_app: Flask, body: Any, message: str) -> None:
    response = idle_app.test_client().post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 400
    assert message in response.json["error"]


def test_nullable_fields_take_null(idle_app: Flask) -> None:
    body = {"kind": "mean", "tasks": 0, "shard_size": None, "artifacts": None}
    assert idle_app.test_client().post("/v1/jobs", json=body, headers=AUTH).status_code == 202


def test_the_request_schema_is_the_models(idle_app: Flask) -> None:
    document = idle_app.test_client().get("/openapi.json", headers=AUTH).json
    schema = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    generated = JobSubmission.model_json_schema(schema_generator=OpenAPI30Schema)
    assert schema["schema"] == generated
    assert generated["properties"]["tasks"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_TASKS,
    }
    assert generated["properties"]["kind"]["enum"] == known_kinds()
    assert generated["properties"]["shard_size"]["nullable"] is True
    assert generated["additionalProperties"] is False


def test_an_undocumented_route_is_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    token_file.chmod(0o600)
    app = create_base_app("test", credentials=Credentials([(TokenFile(token_file), Role.FULL)]))

    @app.get("/v1/secret")
    def secret() -> Response:
        return Response("x")

    with pytest.raises(LookupError, match="/v1/secret"):
        openapi_document(app, service="test", version="0")
