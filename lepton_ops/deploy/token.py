"""The fleet's bearer tokens: generated once on the controller, kept in 0600 files.

One token per role (:class:`TokenFiles`):

- the controller's (``service-token``): submit, drain, cancel - every aggregator endpoint;
- the aggregator's towards the workers (``aggregator-token``): run shards, push
  artifacts, cancel shards. The workers hold it; presented to the aggregator it gets 403;
- the read-only scrape token (``scrape-token``): only ``GET /metrics``, on every service.

Tokens are never printed, logged or passed to Ansible as variables: playbooks get the
*paths* and copy the files to the nodes with ``no_log``.

A rotation (:func:`rotation_steps`) rolls new tokens out in three deploys without a
failed request: every file first holds ``old`` then ``new`` (both accepted, the old one
sent), then ``new`` then ``old`` (the new one sent, the old one still accepted), then
``new`` alone. The services read their token files again when they change, so no service
restarts for it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lepton_ops.errors import BadInput
from lepton_ops.services.auth import read_token_file, read_tokens
from lepton_ops.settings import StateLayout

TOKEN_BYTES = 32


def token_path(state_dir: Path) -> Path:
    """Where the controller keeps its own token: ``<state_dir>/secrets/service-token``."""
    return StateLayout(state_dir).secrets / "service-token"


@dataclass(frozen=True)
class TokenFiles:
    """The controller's token files, one per role."""

    controller: Path
    aggregator: Path
    scrape: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.controller, self.aggregator, self.scrape)


def token_files(state_dir: Path) -> TokenFiles:
    secrets_dir = token_path(state_dir).parent
    return TokenFiles(
        controller=token_path(state_dir),
        aggregator=secrets_dir / "aggregator-token",
        scrape=secrets_dir / "scrape-token",
    )


def ensure_token(state_dir: Path) -> Path:
    """The controller's token file's path, creating the token on first use."""
    path = token_path(state_dir)
    _ensure(path)
    return path


def ensure_tokens(state_dir: Path) -> TokenFiles:
    """Every role's token file, each created on first use (reused afterwards)."""
    files = token_files(state_dir)
    for path in files.all():
        _ensure(path)
    return files


def _ensure(path: Path) -> None:
    """Create the token file ``path`` unless it exists; BadInput if it is not private.

    The directory is created with mode 0700 and the file with 0600, atomically: the file
    is written under a temporary name opened with ``O_EXCL`` and hard-linked into place,
    so a concurrent caller sees either no token or a whole one. An existing file that its
    group or others can access is refused (BadInput).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        _create(path, new_token() + "\n")
    _check_private(path)
    read_token_file(path)  # BadInput if empty or malformed; the token itself is dropped


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def rotation_steps(state_dir: Path) -> Iterator[str]:
    """Rotate every role's token; yields after each of the three rewrites of the files,
    and the caller deploys them to the fleet before asking for the next (a failed deploy
    stops the rotation: the fleet accepts what the files hold, and a new rotation starts
    from the token each file sends)."""
    files = ensure_tokens(state_dir)
    old = {path: read_token_file(path) for path in files.all()}
    new = {path: new_token() for path in files.all()}
    for step, order in (
        ("accept the new tokens", lambda p: (old[p], new[p])),
        ("send the new tokens", lambda p: (new[p], old[p])),
        ("drop the old tokens", lambda p: (new[p],)),
    ):
        for path in files.all():
            _replace(path, "".join(token + "\n" for token in order(path)))
        yield step


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (mode 0600), replacing what it held."""
    _write_private(path, text, replace=True)
    read_tokens(path)


def _create(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` (mode 0600) unless a concurrent caller did first."""
    _write_private(path, text, replace=False)


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            temporary.replace(path)
        else:
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
