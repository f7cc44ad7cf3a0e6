"""``lepton-ops schedule``: run ``lepton-ops cycle`` every few minutes, unattended.

Where systemd runs (``/run/systemd/system`` exists) a ``lepton-ops-cycle.service`` and
``.timer`` pair in ``/etc/systemd/system``; otherwise a cron entry - ``/etc/cron.d/lepton-ops``
as root, the user's crontab (``crontab``) otherwise. The command is absolute (this
lepton-ops, its state directory and inventory), its output appended to
``<state_dir>/schedule.log``. The remediation lock keeps a scheduled pass and a person's
from acting at once.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.settings import StateLayout

MARK = "# lepton-ops schedule"
CRON_FILE = Path("/etc/cron.d/lepton-ops")
SYSTEMD_DIR = Path("/etc/systemd/system")
UNIT = "lepton-ops-cycle"


@dataclass(frozen=True)
class ScheduleStatus:
    installed: bool
    kind: str
    where: str
    every_s: int | None
    command: str | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "installed": self.installed,
            "kind": self.kind,
            "where": self.where,
            "every_s": self.every_s,
            "command": self.command,
            "note": self.note,
        }


def systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir()


def cron_expression(every_s: float) -> str:
    """The cron schedule of ``every_s`` seconds (whole minutes dividing an hour, or hours)."""
    minutes = every_s / 60
    if minutes != int(minutes) or minutes < 1:
        raise BadInput(f"cron runs whole minutes: give --every as 1m, 5m, 1h... (got {every_s:g}s)")
    minutes = int(minutes)
    if minutes < 60:
        if 60 % minutes:
            raise BadInput(
                f"--every {minutes}m does not divide an hour: choose 1, 2, 5, 10, 15, 30m"
            )
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    if minutes % 60 or 24 % (minutes // 60):
        raise BadInput("--every in hours must divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h)")
    hours = minutes // 60
    return f"0 */{hours} * * *" if hours > 1 else "0 * * * *"


def cycle_command(state_dir: Path, inventory: Path | None) -> str:
    program = shutil.which("lepton-ops") or str(Path(sys.argv[0]).resolve())
    words = [program, "--state-dir", str(state_dir)]
    if inventory is not None:
        words += ["-i", str(inventory)]
    words.append("cycle")
    log = StateLayout(state_dir).schedule_log
    return f"{shlex.join(words)} >> {shlex.quote(str(log))} 2>&1"


def install(state_dir: Path, inventory: Path | None, every_s: float) -> ScheduleStatus:
    command = cycle_command(state_dir, inventory)
    if systemd_runs() and os.geteuid() == 0:
        return _install_systemd(command, every_s)
    line = f"{cron_expression(every_s)} {'root ' if os.geteuid() == 0 else ''}{command} {MARK}"
    if os.geteuid() == 0:
        CRON_FILE.write_text(
            f"{MARK}: written by 'lepton-ops schedule install'\nSHELL=/bin/sh\n{line}\n",
            encoding="utf-8",
        )
        CRON_FILE.chmod(0o644)
    else:
        lines = [entry for entry in _user_crontab() if MARK not in entry]
        _write_user_crontab([*lines, line])
    return status()


def remove() -> ScheduleStatus:
    if systemd_runs() and os.geteuid() == 0:
        _systemctl("disable", "--now", f"{UNIT}.timer", check=False)
        for suffix in (".service", ".timer"):
            (SYSTEMD_DIR / f"{UNIT}{suffix}").unlink(missing_ok=True)
        _systemctl("daemon-reload", check=False)
    elif os.geteuid() == 0:
        CRON_FILE.unlink(missing_ok=True)
    elif shutil.which("crontab"):
        _write_user_crontab([entry for entry in _user_crontab() if MARK not in entry])
    return status()


def status() -> ScheduleStatus:
    if systemd_runs() and os.geteuid() == 0:
        timer = SYSTEMD_DIR / f"{UNIT}.timer"
        if not timer.exists():
            return ScheduleStatus(False, "systemd", str(timer), None, None)
        text = timer.read_text(encoding="utf-8")
        every = next((int(line.split("=")[1].rstrip("s")) for line in text.splitlines()
                      if line.startswith("OnUnitActiveSec=")), None)  # fmt: skip
        service = (SYSTEMD_DIR / f"{UNIT}.service").read_text(encoding="utf-8")
        command = next((line.split("=", 1)[1] for line in service.splitlines()
                        if line.startswith("ExecStart=")), None)  # fmt: skip
        return ScheduleStatus(True, "systemd", str(timer), every, command)
    if os.geteuid() == 0:
        if not CRON_FILE.exists():
            return ScheduleStatus(False, "cron", str(CRON_FILE), None, None, _cron_note())
        entry = next(
            line
            for line in CRON_FILE.read_text(encoding="utf-8").splitlines()
            if line.endswith(MARK)
        )
        return _from_cron(entry, str(CRON_FILE))
    entries = [entry for entry in _user_crontab() if MARK in entry]
    if not entries:
        return ScheduleStatus(False, "cron", "crontab", None, None, _cron_note())
    return _from_cron(entries[0], "crontab")


def _from_cron(entry: str, where: str) -> ScheduleStatus:
    fields = entry.split()
    minute, hour = fields[0], fields[1]
    if minute.startswith("*/"):
        every = int(minute[2:]) * 60
    elif minute == "*":
        every = 60
    elif hour.startswith("*/"):
        every = int(hour[2:]) * 3600
    else:
        every = 3600
    skip = 6 if fields[5] == "root" else 5
    command = " ".join(fields[skip:]).removesuffix(MARK).strip()
    return ScheduleStatus(True, "cron", where, every, command, _cron_note())


def _cron_note() -> str:
    if shutil.which("cron") or Path("/usr/sbin/cron").exists():
        return ""
    return "cron is not installed here: nothing runs the entry until it is (apt-get install cron)"


def _install_systemd(command: str, every_s: float) -> ScheduleStatus:
    every = int(every_s)
    if every < 10:
        raise BadInput("--every must be at least 10s")
    (SYSTEMD_DIR / f"{UNIT}.service").write_text(
        f"[Unit]\nDescription=lepton-ops cycle: collect, predict, remediate\n\n"
        f"[Service]\nType=oneshot\nExecStart=/bin/sh -c {shlex.quote(command)}\n",
        encoding="utf-8",
    )
    (SYSTEMD_DIR / f"{UNIT}.timer").write_text(
        f"[Unit]\nDescription=Run lepton-ops cycle every {every}s\n\n[Timer]\n"
        f"OnBootSec={every}s\nOnUnitActiveSec={every}s\n\n[Install]\nWantedBy=timers.target\n",
        encoding="utf-8",
    )
    _systemctl("daemon-reload")
    _systemctl("enable", "--now", f"{UNIT}.timer")
    return status()


def _systemctl(*args: str, check: bool = True) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise OperationFailed(f"systemctl {' '.join(args)} failed: {done.stderr.strip()[:200]}")


def _user_crontab() -> list[str]:
    if not shutil.which("crontab"):
        raise OperationFailed("crontab is not installed: install cron (apt-get install cron)")
    done = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines() if done.returncode == 0 else []


def _write_user_crontab(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n" if lines else ""
    done = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OperationFailed(f"crontab - failed: {done.stderr.strip()[:200]}")
