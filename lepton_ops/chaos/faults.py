"""The faults chaos can inject, their parameters and their defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lepton_ops.errors import BadInput

MiB = 1024 * 1024


class FaultKind(StrEnum):
    #: the service's processes SIGKILLed (a crash); its supervisor restarts it
    KILL = "kill"
    #: the service's processes SIGSTOPped for the duration
    HANG = "hang"
    #: a process in the service's memory budget grows until the budget is hit
    MEMLEAK = "memleak"
    #: busy loops on the node
    CPUHOG = "cpuhog"
    #: the node's data directory (a size-limited tmpfs in ssh mode) filled until ENOSPC
    DISKFILL = "diskfill"
    #: the node's address dropped by the lab firewall (iptables; ssh mode)
    PARTITION = "partition"


#: Faults that build up to a failure, which a predictor can see coming.
PROGRESSIVE = frozenset({FaultKind.MEMLEAK, FaultKind.DISKFILL})
#: Faults run on the node by lepton.ops.chaos_fault (partition is done on the controller).
ON_NODE = frozenset(FaultKind) - {FaultKind.PARTITION}
#: Faults that need ssh mode: a size-limited data dir, or the node's own address.
SSH_ONLY = frozenset({FaultKind.DISKFILL, FaultKind.PARTITION})

DEFAULT_DURATION_S: dict[FaultKind, float] = {
    FaultKind.KILL: 20.0,
    FaultKind.HANG: 20.0,
    FaultKind.MEMLEAK: 300.0,
    FaultKind.CPUHOG: 40.0,
    FaultKind.DISKFILL: 300.0,
    FaultKind.PARTITION: 20.0,
}
DEFAULT_RATE_BYTES_S: dict[FaultKind, int] = {
    FaultKind.MEMLEAK: 4 * MiB,
    FaultKind.DISKFILL: 1 * MiB,
}
MAX_DURATION_S = 3600.0

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*(?:/\s*s)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 10**6,
          "mb": 10**6, "mi": MiB, "mib": MiB, "g": 10**9, "gb": 10**9, "gi": 1024**3,
          "gib": 1024**3}  # fmt: skip


def parse_rate(text: str) -> int:
    """Bytes a second from ``4MiB/s``, ``500KiB``, ``1048576``... (BadInput if not)."""
    match = _RATE.match(text)
    if match is None:
        raise BadInput(f"rate {text!r} is not a rate: write it like 4MiB/s, 512KiB/s or 1048576")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if not value >= 1:
        raise BadInput(f"rate {text!r} is less than 1 byte a second")
    return int(value)


@dataclass(frozen=True)
class FaultSpec:
    """One fault to inject: its kind and parameters (defaults filled in by :meth:`of`)."""

    kind: FaultKind
    duration_s: float
    rate_bytes_s: int | None = None
    processes: int | None = None
    hold_s: float | None = None

    @classmethod
    def of(
        cls,
        kind: FaultKind | str,
        *,
        duration_s: float | None = None,
        rate_bytes_s: int | None = None,
        processes: int | None = None,
        hold_s: float | None = None,
    ) -> FaultSpec:
        try:
            fault = FaultKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise BadInput(f"unknown fault {kind!r}: choose one of {known}") from None
        duration = DEFAULT_DURATION_S[fault] if duration_s is None else float(duration_s)
        if not 0 < duration <= MAX_DURATION_S:
            raise BadInput(f"a fault lasts more than 0 s and at most 1 h, got {duration:g} s")
        if rate_bytes_s is not None and fault not in DEFAULT_RATE_BYTES_S:
            raise BadInput(f"--rate applies to memleak and diskfill, not {fault.value}")
        if processes is not None and fault is not FaultKind.CPUHOG:
            raise BadInput(f"--processes applies to cpuhog, not {fault.value}")
        if processes is not None and not 1 <= processes <= 64:
            raise BadInput(f"--processes must be from 1 to 64, got {processes}")
        rate = rate_bytes_s if rate_bytes_s is not None else DEFAULT_RATE_BYTES_S.get(fault)
        return cls(
            fault,
            duration,
            rate,
            (processes or 1) if fault is FaultKind.CPUHOG else None,
            (10.0 if hold_s is None else hold_s) if fault is FaultKind.DISKFILL else None,
        )

    @property
    def params(self) -> dict[str, Any]:
        """What the store keeps about it."""
        found: dict[str, Any] = {"duration_s": self.duration_s}
        for key, value in (
            ("rate_bytes_s", self.rate_bytes_s),
            ("processes", self.processes),
            ("hold_s", self.hold_s),
        ):
            if value is not None:
                found[key] = value
        return found

    def plan_entry(self, fault_id: str) -> dict[str, Any]:
        """The node's entry in the lepton.ops.chaos playbook's ``lepton_chaos_plan``."""
        entry: dict[str, Any] = {"fault": self.kind.value, "id": fault_id,
                                 "duration": self.duration_s}  # fmt: skip
        if self.rate_bytes_s is not None:
            entry["rate"] = self.rate_bytes_s
        if self.processes is not None:
            entry["processes"] = self.processes
        if self.hold_s is not None:
            entry["hold"] = self.hold_s
        return entry


def partition_owner(fault_id: int) -> str:
    """Who the firewall rules of a partition belong to: only its own are restored."""
    return f"fault {fault_id}"
