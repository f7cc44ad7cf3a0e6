"""Where lepton-ops keeps its state (and what is where in it), and the options every
command shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_ENV = "LEPTON_OPS_STATE_DIR"


def default_state_dir() -> Path:
    """The per-user state directory; ``LEPTON_OPS_STATE_DIR`` overrides it."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    # Imported here: the nodes' services import this module (for StateLayout) and have no
    # platformdirs (a controller-only dependency).
    import platformdirs

    return Path(platformdirs.user_state_dir("lepton-ops", appauthor=False))


@dataclass(frozen=True)
class StateLayout:
    """What is where in a state directory: every path in it is named here, once.

    ``secrets/`` and ``runs/`` are private (0700); nothing here creates a path.
    """

    root: Path

    @property
    def secrets(self) -> Path:
        """Tokens and the TLS authority: 0600 files, only their paths leave this process."""
        return self.root / "secrets"

    @property
    def history(self) -> Path:
        """The fleet's history (SQLite): samples, incidents, faults, jobs, remediations."""
        return self.root / "telemetry" / "telemetry.sqlite3"

    @property
    def runs(self) -> Path:
        """One private directory per playbook run (ansible-runner's artifacts)."""
        return self.root / "runs"

    @property
    def ansible_tmp(self) -> Path:
        return self.root / "ansible" / "tmp"

    @property
    def ssh_control(self) -> Path:
        """ssh ControlPersist sockets (the gateway moves them if this path is too long)."""
        return self.root / "ansible" / "cp"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def wheelhouse(self) -> Path:
        return self.root / "wheelhouse"

    @property
    def lab(self) -> Path:
        return self.root / "lab"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def alerts_log(self) -> Path:
        return self.root / "alerts.log"

    @property
    def schedule_log(self) -> Path:
        return self.root / "schedule.log"

    @property
    def remediation_lock(self) -> Path:
        return self.root / "remediate.lock"


@dataclass(frozen=True)
class Settings:
    """The global options, resolved: what every command works with."""

    state_dir: Path
    inventory: Path | None
    json: bool = False
    verbose: int = 0

    @property
    def layout(self) -> StateLayout:
        return StateLayout(self.state_dir)

    def ensure_state_dir(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.state_dir
