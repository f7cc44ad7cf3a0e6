"""Shared integration fixtures: one lab for the whole test session.

``lab`` brings up a lab in a temporary state dir (ssh mode when root, local mode
otherwise; ``LEPTON_TEST_LAB_MODE=local|ssh`` overrides) and always takes it down at
the end of the session, even when tests fail. Only one ssh-mode lab can hold the
addresses 127.0.1.1-5:22 at a time, so every test that needs a running lab uses this
one fixture rather than starting its own.

``provisioned`` and ``deployed`` provision the session lab and deploy the services on
it once per session (several test files use them).

Tests marked ``lab_cycle`` take the session lab down and bring it back up; they are
moved to the end of the session so they never disturb tests that rely on processes
running inside the nodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lab_tools import NODES, Deployed, deploy, provision, statuses

from lepton_ops.lab import Lab, LabMode, LabStatus, local_mode

LAB_CYCLE_MARKER = "lab_cycle"


@dataclass
class RunningLab:
    """The session's lab: where its state lives, the Lab, and its status at start."""

    state_dir: Path
    lab: Lab
    status: LabStatus

    @property
    def mode(self) -> LabMode:
        return self.status.mode

    @property
    def inventory(self) -> Path:
        return self.status.inventory

    def refresh(self) -> LabStatus:
        """Re-read the lab's status (and remember it)."""
        self.status = self.lab.status()
        return self.status


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{LAB_CYCLE_MARKER}: takes the session lab down and up again (runs last)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    cycling = [item for item in items if item.get_closest_marker(LAB_CYCLE_MARKER)]
    if cycling:
        rest = [item for item in items if not item.get_closest_marker(LAB_CYCLE_MARKER)]
        items[:] = rest + cycling


def lab_mode_for_tests() -> LabMode:
    forced = os.environ.get("LEPTON_TEST_LAB_MODE")
    if forced:
        return LabMode(forced)
    return LabMode.SSH if os.geteuid() == 0 else LabMode.LOCAL


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    state_dir = tmp_path_factory.mktemp("lab-state")
    the_lab = Lab(state_dir)
    try:
        status = the_lab.up(lab_mode_for_tests())
        yield RunningLab(state_dir=state_dir, lab=the_lab, status=status)
    finally:
        the_lab.down()


@pytest.fixture(scope="session")
def provisioned(lab: RunningLab) -> RunningLab:
    result, data = provision(lab)
    assert result.returncode == 0, result.stderr
    assert sorted(statuses(data)) == NODES
    assert all(status in ("ok", "changed") for status, _ in statuses(data).values())
    return lab


@pytest.fixture(scope="session")
def deployed(provisioned: RunningLab) -> Iterator[Deployed]:
    try:
        result, data = deploy(provisioned)
        assert result.returncode == 0, result.stderr
        assert sorted(statuses(data)) == NODES
        yield Deployed(provisioned, result, data)
    finally:
        if provisioned.mode is LabMode.LOCAL:
            local_mode.stop_services(provisioned.lab.layout)
