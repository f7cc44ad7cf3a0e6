"""Bearer-token auth on the service side: the roles tokens have, the header check.

A token is read from a file (:func:`~lepton_ops.credentials.tokens.read_tokens`) that
must not be readable by group or others; it is never logged and never echoed back.
Requests carry it as ``Authorization: Bearer <token>``, compared in constant time
(:func:`token_matches`).

A token file holds one token, or two during a rotation (one a line): the first is the
one to send, both are accepted. A service reads its files again when they change
(:class:`TokenFile`, at most every :data:`RELOAD_S`), so a rotation needs no restart.

Each file a service accepts gives its tokens a :class:`Role` (:class:`Credentials`):
``full`` (every endpoint), ``scrape`` (only ``GET /metrics``), or ``none`` (known, but
refused: a worker's token presented to the aggregator). A known token without the right
is answered 403, an unknown one 401.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from lepton_ops.credentials.tokens import RELOAD_S, read_tokens
from lepton_ops.errors import BadInput

log = logging.getLogger(__name__)


class TokenFile:
    """A token file, read again when it changes (checked at most every RELOAD_S).

    The first read's errors are BadInput; a later read that fails (the file being
    replaced, or broken) keeps the tokens read before, with a warning in the log.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._tokens = read_tokens(self.path)
        self._stamp = self._stat()
        self._checked = time.monotonic()

    def current(self) -> str:
        """The token to send."""
        return self.tokens()[0]

    def tokens(self) -> tuple[str, ...]:
        """Every token accepted now."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= RELOAD_S:
                self._checked = now
                self._reload()
            return self._tokens

    def _reload(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        try:
            self._tokens = read_tokens(self.path)
        except BadInput as exc:
            log.warning("keeping the tokens read before: %s", exc)
            return
        self._stamp = stamp
        log.info("token file %s changed: read again", self.path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)


class Role(StrEnum):
    """What a token may do on a service."""

    FULL = "full"
    SCRAPE = "scrape"
    NONE = "none"


class Credentials:
    """The token files a service accepts, each with the role of its tokens."""

    def __init__(self, files: Iterable[tuple[TokenFile, Role]]) -> None:
        self.files = tuple(files)
        if not any(role is Role.FULL for _, role in self.files):
            raise BadInput("the service needs a token file with full access")

    def role_of(self, header: str | None) -> Role | None:
        """The role of the token ``header`` carries; None if it carries no known token.

        Every accepted token is compared (in constant time each), whichever matches.
        """
        found: Role | None = None
        for token_file, role in self.files:
            for token in token_file.tokens():
                if token_matches(header, token) and found is None:
                    found = role
        return found


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant-time compare)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
    )
