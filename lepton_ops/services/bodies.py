"""JSON bodies: each defined once, as a pydantic model that validates it and documents it.

A request body is a :class:`RequestBody` model (strict types, unknown fields refused); an
answer is a :class:`ResponseBody` model. The same classes give the JSON Schemas of the
OpenAPI document (:mod:`lepton_ops.services.openapi`), so the document cannot drift from
what the routes accept and answer.

:func:`read_body` parses the request's body (415 if it is not JSON, 413 past the app's
``MAX_CONTENT_LENGTH``, 400 if it is malformed or nested too deep) and checks it against
its model; :func:`read_query` checks the query string the same way. Every refusal is a
BadInput (answered with 400) whose message names the field as a person would: "tasks
must be a whole number, got a string" (pydantic's own wording, after the field's name, only
for a kind of refusal :func:`_first_message` does not know).
:func:`error_response` is the JSON error every service answers with.

Field constraints that carry their own message: :class:`Text` (a printable, non-blank
string), :class:`Count` (a whole number within bounds) and :class:`OneOf` (one of a few
words). A null field is "required" unless its type says it may be null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic import ValidationError as _ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from lepton_ops.errors import BadInput, LeptonError
from lepton_ops.jobs.kinds import known_kinds

#: Request bodies larger than this are refused with 413 unless the config says otherwise.
DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024
#: JSON nested deeper than this is refused (400) before Python's recursion limit is near.
MAX_JSON_DEPTH = 64

Model = TypeVar("Model", bound=BaseModel)


class RequestBody(BaseModel):
    """A JSON request body: exact JSON types (no "3" for 3), no field it does not name."""

    # defer_build: a service process builds a model's validator on its first use only.
    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)


class QueryString(BaseModel):
    """A request's query string (values are strings; other arguments are ignored)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


class ResponseBody(BaseModel):
    """A JSON answer; :func:`reply` sends it."""

    model_config = ConfigDict(defer_build=True)


class ErrorBody(ResponseBody):
    """Every error answer: the message and the status code."""

    error: str
    status: int


class Health(ResponseBody):
    status: Literal["ok"]
    service: str


class Readiness(ResponseBody):
    status: Literal["ready"]
    service: str


class NotReady(ResponseBody):
    status: Literal["not ready"]
    reasons: list[str]


class UnsupportedBody(LeptonError):
    """The body is not JSON (415)."""


# --------------------------------------------------------------------------- constraints


class _Constraint:
    """A check whose refusal words its own message, and the JSON Schema keywords saying it."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), **self.keywords()}

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def keywords(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(_Constraint):
    """A string of 1 to ``max_length`` printable characters, not only blanks."""

    max_length: int = 200

    def check(self, value: Any) -> Any:
        if not value.strip() or len(value) > self.max_length or not value.isprintable():
            raise PydanticCustomError(
                "text", f"must be 1 to {self.max_length} printable characters"
            )
        return value

    def keywords(self) -> dict[str, Any]:
        return {"minLength": 1, "maxLength": self.max_length}


@dataclass(frozen=True)
class Count(_Constraint):
    """A whole number from ``minimum`` to ``maximum`` (None: no upper bound)."""

    minimum: int = 0
    maximum: int | None = None

    def check(self, value: Any) -> Any:
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            upper = f" and at most {self.maximum}" if self.maximum is not None else ""
            raise PydanticCustomError(
                "count", f"must be at least {self.minimum}{upper}, got {value}"
            )
        return value

    def keywords(self) -> dict[str, Any]:
        if self.maximum is None:
            return {"minimum": self.minimum}
        return {"minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class OneOf(_Constraint):
    """One of ``choices`` (strings)."""

    choices: tuple[str, ...]

    def check(self, value: Any) -> Any:
        if value not in self.choices:
            raise PydanticCustomError(
                "one_of", f"must be one of {', '.join(self.choices)}, got {value!r}"
            )
        return value

    def keywords(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


def _known_kinds(schema: dict[str, Any]) -> None:
    schema["enum"] = known_kinds()


#: A job kind's name; the document lists the installed kinds, and ``get_kind`` refuses
#: any other with a message naming them.
KindName = Annotated[str, Text(100), Field(json_schema_extra=_known_kinds)]


def custom_error(message: str) -> PydanticCustomError:
    """A validator's refusal whose message is used as it is (it names its field)."""
    return PydanticCustomError("bad_input", message)


# --------------------------------------------------------------------------- reading


def read_body(model: type[Model]) -> Model:
    """The request's JSON body checked against ``model``; BadInput (400) / 415 / 413."""
    return check_fields(model, json_body())


def read_query(model: type[Model]) -> Model:
    """The request's query string checked against ``model``; BadInput (400) otherwise."""
    return check_fields(model, request.args.to_dict())


def check_fields(model: type[Model], data: Mapping[str, Any]) -> Model:
    """``data`` as a ``model``; BadInput naming the first wrong field otherwise."""
    try:
        return model.model_validate(data)
    except _ValidationError as exc:
        raise BadInput(_first_message(tuple(model.model_fields), exc)) from None


def _first_message(fields: tuple[str, ...], exc: _ValidationError) -> str:
    errors = exc.errors(include_url=False)
    unknown = sorted(str(error["loc"][0]) for error in errors if error["type"] == "extra_forbidden")
    if unknown:
        return f"unknown field {', '.join(unknown)} (fields: {', '.join(fields)})"
    error = errors[0]  # pydantic reports the fields in the model's order
    name = str(error["loc"][0]) if error["loc"] else "the body"
    value = error["input"]
    match error["type"]:
        case "missing":
            return f"{name} is required"
        case "string_type" | "int_type" | "dict_type" if value is None:
            return f"{name} is required"
        case "string_type":
            return f"{name} must be a string, got {_json_type(value)}"
        case "int_type":
            return f"{name} must be a whole number, got {_json_type(value)}"
        case "dict_type" | "model_type":
            return f"{name} must be a JSON object, got {_json_type(value)}"
        case "bad_input":
            return str(error["msg"])
        case _:
            return f"{name} {error['msg']}"


def json_body() -> dict[str, Any]:
    """The request's JSON object; BadInput (400) / 415 / 413 otherwise."""
    if request.mimetype != "application/json":
        raise UnsupportedBody(
            f"the body must be JSON (Content-Type: application/json), got "
            f"{request.mimetype or 'no content type'!r}"
        )
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise BadInput("the body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"the body must be a JSON object, got {_json_type(data)}")
    if _depth(data) > MAX_JSON_DEPTH:
        raise BadInput(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: object, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level)
    return level


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# --------------------------------------------------------------------------- answering


def reply(body: ResponseBody, status: int = 200) -> tuple[Response, int]:
    """``body`` as the JSON answer, with ``status``."""
    return jsonify(body.model_dump()), status


def error_response(status: int, message: str) -> tuple[Response, int]:
    return reply(ErrorBody(error=message, status=status), status)
