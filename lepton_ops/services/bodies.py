"""JSON request bodies and JSON error answers.

:func:`json_body` parses the request's body (415 if it is not JSON, 413 past the app's
``MAX_CONTENT_LENGTH``, 400 if it is malformed or nested too deep); the ``field_*``
helpers and :func:`check_fields` validate its fields (BadInput, answered with 400);
:func:`error_response` is the JSON error every service answers with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify, request

from lepton_ops.errors import BadInput, LeptonError

#: Request bodies larger than this are refused with 413 unless the config says otherwise.
DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024
#: JSON nested deeper than this is refused (400) before Python's recursion limit is near.
MAX_JSON_DEPTH = 64


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


class UnsupportedBody(LeptonError):
    """The body is not JSON (415)."""


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


def field_str(
    body: Mapping[str, Any], name: str, *, max_length: int = 200, default: str | None = None
) -> str:
    """A non-empty string field of ``body`` (BadInput otherwise)."""
    value = body.get(name, default)
    if value is None:
        raise BadInput(f"{name} is required")
    if not isinstance(value, str):
        raise BadInput(f"{name} must be a string, got {_json_type(value)}")
    if not value.strip() or len(value) > max_length or not value.isprintable():
        raise BadInput(f"{name} must be 1 to {max_length} printable characters")
    return value


def field_int(
    body: Mapping[str, Any],
    name: str,
    *,
    minimum: int = 0,
    maximum: int | None = None,
    default: int | None = None,
) -> int:
    """A whole-number field of ``body`` within bounds (BadInput otherwise)."""
    value = body.get(name, default)
    if value is None:
        raise BadInput(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name} must be a whole number, got {_json_type(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise BadInput(f"{name} must be at least {minimum}{upper}, got {value}")
    return value


def field_object(
    body: Mapping[str, Any], name: str, *, default: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-object field of ``body`` (BadInput otherwise)."""
    value = body.get(name, default)
    if value is None:
        raise BadInput(f"{name} is required")
    if not isinstance(value, dict):
        raise BadInput(f"{name} must be a JSON object, got {_json_type(value)}")
    return value


def check_fields(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """BadInput naming the fields of ``body`` that are not in ``allowed``."""
    unknown = sorted(str(key) for key in body if key not in allowed)
    if unknown:
        raise BadInput(f"unknown field {', '.join(unknown)} (fields: {', '.join(allowed)})")


def error_response(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message, "status": status}), status
