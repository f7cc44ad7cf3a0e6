"""The fleet's bearer token: generated once on the controller, kept in a 0600 file.

The token is never printed, logged or passed to Ansible as a variable: playbooks get the
*path* of :func:`token_path` and copy the file to the nodes with ``no_log``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from lepton_ops.errors import BadInput
from lepton_ops.services.auth import read_token_file

TOKEN_BYTES = 32


def token_path(state_dir: Path) -> Path:
    """Where the controller keeps the token: ``<state_dir>/secrets/service-token``."""
    return state_dir / "secrets" / "service-token"


def ensure_token(state_dir: Path) -> Path:
    """The token file's path, creating the token on first use (reused afterwards).

    The directory is created with mode 0700 and the file with 0600, atomically: the file
    is written under a temporary name opened with ``O_EXCL`` and hard-linked into place,
    so a concurrent caller sees either no token or a whole one. An existing file that its
    group or others can access is refused (BadInput).
    """
    path = token_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        _create(path)
    _check_private(path)
    read_token_file(path)  # BadInput if empty or malformed; the token itself is dropped
    return path


def _create(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(TOKEN_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another caller won: use its token
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _check_private(path: Path) -> None:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"token file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise BadInput(
            f"token file {path} has mode {mode:04o}: group or others can access it "
            f"(run: chmod 600 {path})"
        )
