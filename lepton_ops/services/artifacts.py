"""Job artifacts over HTTP: bounded, digest-checked uploads, and the worker's cache.

An artifact travels as the raw body of ``PUT /v1/artifacts/<sha256>``
(``Content-Type: application/octet-stream``). :func:`read_artifact_body` reads it in
chunks up to the service's ``max_artifact_bytes`` (413 past it, even without a
Content-Length) and checks its SHA-256 against the URL (400 if they differ).

How artifacts reach the workers: the aggregator owns them (in its job store). A shard
request names the job's artifacts by digest; a worker that does not hold one answers
409 with ``{"missing": {name: sha256}}``, and the aggregator PUTs it to that worker
(``?kind=<kind>&name=<name>``) and sends the shard again. The worker loads the bytes
with the kind (a model is checked as it loads) and keeps the loaded object in a
bounded LRU cache (:class:`ArtifactCache`). Each of a worker's processes asks once per
artifact; a worker that restarted or evicted an artifact simply asks again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from flask import request
from pydantic import PlainValidator, WithJsonSchema
from werkzeug.exceptions import RequestEntityTooLarge

from lepton_ops.errors import BadInput, LeptonError
from lepton_ops.jobs.kinds import MAX_ARTIFACT_BYTES, check_digest
from lepton_ops.services.bodies import (
    ErrorBody,
    QueryString,
    ResponseBody,
    UnsupportedBody,
    custom_error,
)
from lepton_ops.services.openapi import Answer, View, documented

ARTIFACT_MIMETYPE = "application/octet-stream"
#: A worker's cache of loaded artifacts holds at most this much (estimated) by default.
DEFAULT_ARTIFACT_CACHE_BYTES = 256 * 1024 * 1024
#: A job names at most this many artifacts.
MAX_JOB_ARTIFACTS = 16
_CHUNK = 1024 * 1024


def read_artifact_body(digest: str, limit: int = MAX_ARTIFACT_BYTES) -> bytes:
    """The request's raw body, at most ``limit`` bytes, whose SHA-256 is ``digest``."""
    check_digest(digest)
    if request.mimetype != ARTIFACT_MIMETYPE:
        raise UnsupportedBody(
            f"an artifact's body must be raw bytes (Content-Type: {ARTIFACT_MIMETYPE}), got "
            f"{request.mimetype or 'no content type'!r}"
        )
    request.max_content_length = limit  # 413 from here on, for this request only
    stream = request.stream
    hasher = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge()
        hasher.update(chunk)
        chunks.append(chunk)
    if size == 0:
        raise BadInput("the artifact is empty")
    found = hasher.hexdigest()
    if found != digest:
        raise BadInput(f"the body's SHA-256 is {found}, not {digest} as the URL says")
    return b"".join(chunks)


class MissingArtifacts(LeptonError):
    """A shard names artifacts this worker (process) does not hold: answered with 409."""

    def __init__(self, missing: dict[str, str]) -> None:
        self.missing = missing
        names = ", ".join(f"{name} ({digest[:12]})" for name, digest in missing.items())
        super().__init__(
            f"this worker does not hold the artifacts {names}: PUT /v1/artifacts/<sha256>"
            f"?kind=<kind>&name=<name> first"
        )


class ArtifactCache:
    """Loaded artifacts by (kind, name, sha256), least recently used out first.

    An entry's cost is its size in bytes, or the loaded array's if that is larger (a CSV
    parses into float64 values that can take more room than its text).
    """

    def __init__(self, max_bytes: int = DEFAULT_ARTIFACT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str, str], tuple[Any, int]] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return self._used

    def get(self, kind: str, name: str, digest: str) -> Any | None:
        key = (kind, name, digest)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, kind: str, name: str, digest: str, value: Any, size: int) -> None:
        cost = max(size, int(getattr(value, "nbytes", 0) or 0))
        if cost > self.max_bytes:
            raise BadInput(
                f"artifact {name} takes {cost} bytes loaded: more than this worker's "
                f"artifact cache ({self.max_bytes} bytes, artifact_cache_bytes)"
            )
        key = (kind, name, digest)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._used -= old[1]
            while self._entries and self._used + cost > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._used -= evicted
            self._entries[key] = (value, cost)
            self._used += cost

    def lookup(self, kind: str, digests: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        """The loaded artifacts of a shard, and those missing (name: digest)."""
        found: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for name, digest in digests.items():
            value = self.get(kind, name, digest)
            if value is None:
                missing[name] = digest
            else:
                found[name] = value
        return found, missing


def _artifact_digests(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_JOB_ARTIFACTS:
        raise custom_error(
            f"artifacts must be a JSON object of at most {MAX_JOB_ARTIFACTS} {{name: sha256}}"
        )
    for name, digest in value.items():
        if not name or len(name) > 100 or not name.isidentifier():
            raise custom_error(f"artifacts: {name[:100]!r} is not an artifact name")
        try:
            check_digest(digest, f"artifacts.{name}")
        except BadInput as exc:
            raise custom_error(str(exc)) from None
    return dict(value)


#: A SHA-256 digest as the OpenAPI document says it.
DIGEST_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}

#: The ``artifacts`` field of a job or a shard: ``{name: sha256}``.
ArtifactDigests = Annotated[
    dict[str, str],
    PlainValidator(_artifact_digests),
    WithJsonSchema(
        {
            "type": "object",
            "description": "The job's artifacts by name: their SHA-256 digests.",
            "maxProperties": MAX_JOB_ARTIFACTS,
            "additionalProperties": DIGEST_SCHEMA,
        }
    ),
]


class ArtifactStored(ResponseBody):
    """The answer to an upload: the artifact, and whether this upload stored it."""

    sha256: str
    size: int
    created: bool


# --------------------------------------------------------------------------- OpenAPI

#: The ``{digest}`` path parameter of the artifact routes.
DIGEST_PARAMETER: dict[str, Any] = {
    "description": "The artifact's SHA-256, 64 lowercase hex digits.",
    "schema": DIGEST_SCHEMA,
}
#: The body of an upload: raw bytes.
ARTIFACT_UPLOAD: dict[str, Any] = {
    "required": True,
    "description": f"The artifact's bytes (at most max_artifact_bytes, {MAX_ARTIFACT_BYTES} "
    "by default); their SHA-256 must be the digest in the path.",
    "content": {ARTIFACT_MIMETYPE: {"schema": {"type": "string", "format": "binary"}}},
}


class MissingArtifactsBody(ErrorBody):
    """The answer to a shard naming artifacts the worker does not hold (409)."""

    missing: ArtifactDigests


def documented_upload(
    summary: str,
    *,
    query: type[QueryString] | None = None,
    answers: Mapping[int, Answer] | None = None,
) -> Callable[[View], View]:
    """:func:`~lepton_ops.services.openapi.documented` for a ``PUT /v1/artifacts/<digest>``."""
    return documented(
        summary,
        raw_body=ARTIFACT_UPLOAD,
        query=query,
        path={"digest": DIGEST_PARAMETER},
        answers={
            200: Answer("Already held.", ArtifactStored),
            201: Answer("Stored.", ArtifactStored),
            **(answers or {}),
        },
        errors=(400, 413, 415),
    )


__all__ = [
    "ARTIFACT_MIMETYPE",
    "DEFAULT_ARTIFACT_CACHE_BYTES",
    "ArtifactCache",
    "ArtifactDigests",
    "ArtifactStored",
    "MissingArtifacts",
    "MissingArtifactsBody",
    "documented_upload",
    "read_artifact_body",
]
