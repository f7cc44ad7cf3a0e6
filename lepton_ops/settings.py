"""Where lepton-ops keeps its state, and the options every command shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

STATE_DIR_ENV = "LEPTON_OPS_STATE_DIR"


def default_state_dir() -> Path:
    """The per-user state directory; ``LEPTON_OPS_STATE_DIR`` overrides it."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_state_dir("lepton-ops", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """The global options, resolved: what every command works with."""

    state_dir: Path
    inventory: Path | None
    json: bool = False
    verbose: int = 0

    def ensure_state_dir(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.state_dir
