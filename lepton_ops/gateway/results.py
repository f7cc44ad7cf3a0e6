"""Typed outcome of a playbook run: per host, and for the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class HostStatus(StrEnum):
    """A host's outcome, worst first: what an operator needs to look at."""

    UNREACHABLE = "unreachable"
    FAILED = "failed"
    CHANGED = "changed"
    OK = "ok"
    SKIPPED = "skipped"


@dataclass
class HostResult:
    """What happened on one host, counted per task as ansible-playbook's recap does."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def status(self) -> HostStatus:
        if self.unreachable:
            return HostStatus.UNREACHABLE
        if self.failed:
            return HostStatus.FAILED
        if self.changed:
            return HostStatus.CHANGED
        if self.ok:
            return HostStatus.OK
        return HostStatus.SKIPPED

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status.value,
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "unreachable": self.unreachable,
            "skipped": self.skipped,
            "rescued": self.rescued,
            "ignored": self.ignored,
            "messages": list(self.messages),
        }


@dataclass
class PlaybookResult:
    """The outcome of one playbook run."""

    playbook: str
    rc: int
    runner_status: str
    hosts: dict[str, HostResult]
    duration_s: float
    check: bool
    artifacts: Path
    error: str | None = None
    """ansible-playbook's own error when the run failed before reaching hosts."""

    @property
    def succeeded(self) -> bool:
        bad = {HostStatus.FAILED, HostStatus.UNREACHABLE}
        return self.rc == 0 and not any(host.status in bad for host in self.hosts.values())

    @property
    def unreachable(self) -> list[str]:
        return [h.host for h in self.hosts.values() if h.status is HostStatus.UNREACHABLE]

    @property
    def failed(self) -> list[str]:
        return [h.host for h in self.hosts.values() if h.status is HostStatus.FAILED]

    @property
    def changed_total(self) -> int:
        return sum(host.changed for host in self.hosts.values())

    def summary(self) -> dict[str, int]:
        counts = {status.value: 0 for status in HostStatus}
        for host in self.hosts.values():
            counts[host.status.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "succeeded": self.succeeded,
            "rc": self.rc,
            "status": self.runner_status,
            "check": self.check,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary(),
            "hosts": [self.hosts[name].to_dict() for name in self.hosts],
            "error": self.error if self.rc != 0 else None,
            "artifacts": str(self.artifacts),
        }
