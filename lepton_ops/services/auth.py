"""Bearer-token auth: the token file and the ``Authorization`` header check.

The token is read from a file (:func:`read_token_file`) that must not be readable by
group or others; it is never logged and never echoed back. Requests carry it as
``Authorization: Bearer <token>``, compared in constant time (:func:`token_matches`).
"""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

from lepton_ops.errors import BadInput


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path``; BadInput if the file is missing, empty or not private.

    The file must be a regular file that neither its group nor others can access (mode
    0600 or stricter). The token is the file's text without surrounding whitespace.
    """
    token_path = Path(path)
    try:
        info = token_path.stat()
    except FileNotFoundError:
        raise BadInput(f"token file {token_path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"token file {token_path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"token file {token_path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise BadInput(
            f"token file {token_path} has mode {mode:04o}: group or others can access it; "
            f"refusing to start (run: chmod 600 {token_path})"
        )
    try:
        token = token_path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"token file {token_path} cannot be read: {exc}") from None
    if not token:
        raise BadInput(f"token file {token_path} is empty")
    if any(char.isspace() for char in token) or not token.isprintable():
        raise BadInput(f"token file {token_path} must hold one token without spaces")
    return token


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
