"""The OpenAPI 3.0 document of a service, generated from its routes and their body models.

Each route says what it is with :func:`documented` (a summary, its body and query models,
its answers by status code, the shared errors it can meet); :func:`openapi_document`
walks the app's URL map and writes one operation per route and method, with the JSON
Schemas of the models (:mod:`lepton_ops.services.bodies`) that the route itself uses to
check what it receives and to build what it answers. Every operation also documents 500,
and, unless the endpoint is public, 401 and 403.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import CoreSchema, core_schema

from lepton_ops.services.bodies import ErrorBody

View = TypeVar("View", bound=Callable[..., Any])

_OPERATION_ATTRIBUTE = "lepton_openapi_operation"
_SCHEMAS = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Answer:
    """One documented answer: its description and its body (a model, or raw content)."""

    description: str
    body: type[BaseModel] | None = None
    #: OpenAPI ``content`` for an answer that is not a JSON model (text, any JSON).
    content: Mapping[str, Any] | None = None
    #: Response headers the answer carries (string values).
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    """What :func:`documented` records about a route."""

    summary: str
    answers: Mapping[int, Answer]
    #: The shared error answers (:data:`ERROR_TEXT`) besides 401, 403 and 500.
    errors: tuple[int, ...] = ()
    #: The JSON request body, checked with ``read_body(body)``.
    body: type[BaseModel] | None = None
    #: A request body that is not JSON: its OpenAPI ``requestBody`` object.
    raw_body: Mapping[str, Any] | None = None
    #: The query string, checked with ``read_query(query)``.
    query: type[BaseModel] | None = None
    #: Path parameters that are more than any string: name -> OpenAPI parameter fields.
    path: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def documented(
    summary: str,
    *,
    answers: Mapping[int, Answer],
    errors: tuple[int, ...] = (),
    body: type[BaseModel] | None = None,
    raw_body: Mapping[str, Any] | None = None,
    query: type[BaseModel] | None = None,
    path: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[View], View]:
    """Record a route's :class:`Operation` on its view function (put it under the route)."""
    operation = Operation(summary, answers, errors, body, raw_body, query, path or {})

    def record(view: View) -> View:
        setattr(view, _OPERATION_ATTRIBUTE, operation)
        return view

    return record


#: The shared error answers, by status code.
ERROR_TEXT = {
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


def openapi_document(
    app: Flask, *, service: str, version: str, public: Collection[str] = ()
) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``app``: every route of its URL map, documented.

    ``public``: the endpoints anyone may call without the token (no security, no 401).
    """
    routes: list[tuple[str, str, Operation, bool]] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda each: each.rule):
        view = app.view_functions[rule.endpoint]
        operation = getattr(view, _OPERATION_ATTRIBUTE, None)
        if not isinstance(operation, Operation):
            raise LookupError(f"route {rule.rule} ({rule.endpoint}) is not @documented")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule.rule, method.lower(), operation, rule.endpoint in public))
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for _, _, operation, _ in routes:
        if operation.body is not None:
            models.append((operation.body, "validation"))
        models += [(body, "serialization") for body in _bodies(operation)]
    schemas = _Schemas(models)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation, is_public in routes:
        described = _operation(path, operation, schemas, is_public)
        paths.setdefault(openapi_path(path), {})[method] = described
    error = schemas.ref(ErrorBody)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"lepton {service}",
            "version": version,
            "description": f"The lepton-ops {service} service.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas.definitions,
            "responses": {
                f"E{code}": {"description": text, "content": json_content(error)}
                for code, text in ERROR_TEXT.items()
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


def openapi_path(rule: str) -> str:
    """A Flask rule (``/v1/jobs/<job_id>``) as an OpenAPI path (``/v1/jobs/{job_id}``)."""
    parts = []
    for part in rule.split("/"):
        if part.startswith("<") and part.endswith(">"):
            part = "{" + part[1:-1].split(":")[-1] + "}"
        parts.append(part)
    return "/".join(parts)


def _bodies(operation: Operation) -> Iterable[type[BaseModel]]:
    return (answer.body for answer in operation.answers.values() if answer.body is not None)


def _operation(rule: str, operation: Operation, schemas: _Schemas, public: bool) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": operation.summary}
    if public:
        described["security"] = []
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        | dict(operation.path.get(name, {}))
        for name in re.findall(r"<(?:[^<>:]+:)?([^<>]+)>", rule)
    ]
    if operation.query is not None:
        parameters += _query_parameters(operation.query)
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        content = json_content(schemas.inline(operation.body, "validation"))
        described["requestBody"] = {"required": True, "content": content}
    elif operation.raw_body is not None:
        described["requestBody"] = dict(operation.raw_body)
    errors = {500, *operation.errors} | (set() if public else {401, 403})
    responses: dict[int, Any] = {
        code: {"$ref": f"#/components/responses/E{code}"} for code in errors
    }
    for code, answer in operation.answers.items():
        responses[code] = _answer(answer, schemas)
    described["responses"] = {str(code): responses[code] for code in sorted(responses)}
    return described


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        described["headers"] = {name: {"schema": {"type": "string"}} for name in answer.headers}
    if answer.body is not None:
        described["content"] = json_content(schemas.inline(answer.body, "serialization"))
    elif answer.content is not None:
        described["content"] = dict(answer.content)
    return described


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(schema_generator=OpenAPI30Schema)
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": property_schema}
        for name, property_schema in schema.get("properties", {}).items()
    ]


class _Schemas:
    """The JSON Schemas of the document's models: top-level ones inline, nested ones in
    ``components/schemas`` (referred to)."""

    def __init__(self, models: list[tuple[type[BaseModel], JsonSchemaMode]]) -> None:
        unique = list(dict.fromkeys(models))
        refs, top = models_json_schema(
            unique, ref_template=_SCHEMAS, schema_generator=OpenAPI30Schema
        )
        self._refs = refs
        self.definitions: dict[str, Any] = top.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> Any:
        return self._refs[(model, mode)]

    def inline(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        name = str(self.ref(model, mode)["$ref"]).rsplit("/", 1)[-1]
        return dict(self.definitions[name])


class OpenAPI30Schema(GenerateJsonSchema):
    """pydantic's JSON Schema, as OpenAPI 3.0 says it: ``nullable`` rather than a null
    type, ``enum`` rather than ``const``, and no generated field titles."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> Any:
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner:
            return {"allOf": [inner], "nullable": True}
        return {**inner, "nullable": True}

    def literal_schema(self, schema: core_schema.LiteralSchema) -> Any:
        generated = dict(super().literal_schema(schema))
        if "const" in generated:
            generated["enum"] = [generated.pop("const")]
        return generated

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False
