"""The fleet's bearer tokens: generated once on the controller, kept in 0600 files.

Where each role's token file lives (``<state_dir>/secrets/``), creating it, checking its
mode and reading it happen here and nowhere else; the services only check a presented
token against what they read (:mod:`lepton_ops.services.auth`).

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
from lepton_ops.settings import StateLayout

TOKEN_BYTES = 32
#: A service looks at its token files for a change at most this often (seconds).
RELOAD_S = 1.0
#: A token file holds at most this many tokens (the current one and, while a rotation
#: rolls out, the other one).
MAX_TOKENS = 2


def secrets_dir(state_dir: Path) -> Path:
    """Where the controller keeps its secrets (tokens, the CA's key): mode 0700."""
    return StateLayout(state_dir).secrets


def token_path(state_dir: Path) -> Path:
    """Where the controller keeps its own token: ``<state_dir>/secrets/service-token``."""
    return secrets_dir(state_dir) / "service-token"


@dataclass(frozen=True)
class TokenFiles:
    """The controller's token files, one per role."""

    controller: Path
    aggregator: Path
    scrape: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.controller, self.aggregator, self.scrape)


def token_files(state_dir: Path) -> TokenFiles:
    where = secrets_dir(state_dir)
    return TokenFiles(
        controller=token_path(state_dir),
        aggregator=where / "aggregator-token",
        scrape=where / "scrape-token",
    )


def service_token_file(state_dir: Path) -> Path:
    """The controller's token file in ``state_dir``, checked (present, private, one token).

    BadInput otherwise. The token itself is read and dropped: it is never returned.
    """
    load_token(state_dir)
    return token_path(state_dir)


def load_token(state_dir: Path) -> str:
    """The controller's bearer token; BadInput (one line) if it is not there."""
    path = token_path(state_dir)
    if not path.exists():
        raise BadInput(f"no service token at {path}: deploy first (lepton-ops deploy)")
    return read_token_file(path)


def load_scrape_token(state_dir: Path) -> str:
    """The read-only token for ``/metrics`` (the controller's on a fleet deployed before
    there was one); BadInput (one line) if there is none."""
    scrape = token_files(state_dir).scrape
    return read_token_file(scrape) if scrape.exists() else load_token(state_dir)


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


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The bearer token to send from ``path`` (its first); BadInput if the file is
    missing, empty, malformed or not private (see :func:`read_tokens`)."""
    return read_tokens(path)[0]


def read_tokens(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The bearer tokens in ``path``, one a line (the first is the one to send).

    The file must be a regular file that neither its group nor others can access (mode
    0600 or stricter), and hold one or two tokens without spaces.
    """
    token_path = Path(path)
    try:
        check_private(token_path, "token file", follow_symlinks=True)
    except FileNotFoundError:
        raise BadInput(f"token file {token_path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"token file {token_path} cannot be read: {exc.strerror}") from None
    try:
        text = token_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"token file {token_path} cannot be read: {exc}") from None
    tokens = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not tokens:
        raise BadInput(f"token file {token_path} is empty")
    if len(tokens) > MAX_TOKENS or any(
        any(char.isspace() for char in token) or not token.isprintable() for token in tokens
    ):
        raise BadInput(
            f"token file {token_path} must hold one token without spaces (two, one a line, "
            f"while a rotation rolls out)"
        )
    return tokens


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
    write_private(path, text.encode("utf-8"), replace=True)
    read_tokens(path)


def _create(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` (mode 0600) unless a concurrent caller did first."""
    write_private(path, text.encode("utf-8"), replace=False)


def write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` with mode 0600 atomically (a temporary file opened with
    ``O_EXCL``, renamed or hard-linked into place); ``replace=False`` keeps what a
    concurrent caller put there first."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
    check_private(path, "token file")


def check_private(path: Path, what: str, *, follow_symlinks: bool = False) -> None:
    """BadInput unless ``path`` is a regular file neither its group nor others can access
    (a symbolic link is refused unless ``follow_symlinks``)."""
    info = path.stat(follow_symlinks=follow_symlinks)
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{what} {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise BadInput(
            f"{what} {path} has mode {mode:04o}: group or others can access it "
            f"(run: chmod 600 {path})"
        )
