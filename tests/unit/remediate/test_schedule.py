"""``schedule install|remove|status``: the cron entry (a file as root, the user's crontab
otherwise) and the intervals cron can express."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.remediate import schedule


@pytest.mark.parametrize(
    ("seconds", "expression"),
    [(60, "* * * * *"), (300, "*/5 * * * *"), (1800, "*/30 * * * *"), (3600, "0 * * * *"),
     (6 * 3600, "0 */6 * * *")],
)  # fmt: skip
def test_intervals_become_cron_expressions(seconds: float, expression: str) -> None:
    assert schedule.cron_expression(seconds) == expression


@pytest.mark.parametrize("seconds", [30, 90, 420, 5 * 3600])
def test_intervals_cron_cannot_run_are_bad_input(seconds: float) -> None:
    with pytest.raises(BadInput):
        schedule.cron_expression(seconds)


def test_install_status_remove_with_a_cron_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule, "systemd_runs", lambda: False)
    monkeypatch.setattr(schedule.os, "geteuid", lambda: 0)
    cron_file = tmp_path / "cron.d-lepton-ops"
    monkeypatch.setattr(schedule, "CRON_FILE", cron_file)
    state = tmp_path / "state"
    installed = schedule.install(state, tmp_path / "inv.yml", 300)
    assert installed.installed and installed.kind == "cron" and installed.every_s == 300
    assert installed.command is not None and " cycle >> " in installed.command
    assert f"--state-dir {state}" in installed.command and "-i " in installed.command
    line = next(x for x in cron_file.read_text().splitlines() if x.endswith(schedule.MARK))
    assert line.startswith("*/5 * * * * root ")
    assert stat.S_IMODE(cron_file.stat().st_mode) == 0o644
    assert not schedule.remove().installed and not cron_file.exists()


def test_install_in_the_users_crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``crontab`` keeps the table in a file: other entries are kept."""
    table = tmp_path / "table"
    table.write_text("0 3 * * * backup\n")
    fake = tmp_path / "bin" / "crontab"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nif [ "$1" = -l ]; then cat {table}; else cat > {table}; fi\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(schedule, "systemd_runs", lambda: False)
    monkeypatch.setattr(schedule.os, "geteuid", lambda: 1000)
    installed = schedule.install(tmp_path / "state", None, 600)
    assert installed.installed and installed.where == "crontab" and installed.every_s == 600
    lines = table.read_text().splitlines()
    assert lines[0] == "0 3 * * * backup" and lines[1].startswith("*/10 * * * * ")
    schedule.install(tmp_path / "state", None, 300)  # replaced, not added
    assert len(table.read_text().splitlines()) == 2
    assert not schedule.remove().installed
    assert table.read_text().splitlines() == ["0 3 * * * backup"]
