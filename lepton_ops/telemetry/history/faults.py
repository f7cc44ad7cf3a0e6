"""Faults injected on purpose (``lepton-ops chaos``): the predictor's labels."""

from __future__ import annotations

import json
import time
from typing import Any

from lepton_ops.telemetry.history.base import HistoryBase, _where
from lepton_ops.telemetry.records import FaultOutcome, FaultRecord

_SELECT_FAULT = (
    "SELECT id, node, fault, params, campaign, started_at, failed_at, failure, ended_at, "
    "outcome, detail FROM faults"
)


class FaultHistory(HistoryBase):
    def start_fault(
        self,
        node: str,
        fault: str,
        params: dict[str, Any],
        *,
        started_at: float | None = None,
        campaign: str | None = None,
    ) -> int:
        """Record a fault injected on ``node``; its id."""
        started = time.time() if started_at is None else float(started_at)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO faults (node, fault, params, campaign, started_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (node, fault, json.dumps(params, sort_keys=True), campaign, started),
            )
        return int(cursor.lastrowid or 0)

    def mark_fault_failed(self, fault_id: int, failed_at: float, failure: str) -> bool:
        """Record the moment the fault's node failed; only the first moment counts.

        True if this call recorded it (False: already recorded, or no such fault).
        """
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE faults SET failed_at = ?, failure = ? WHERE id = ? AND failed_at IS NULL",
                (float(failed_at), failure, fault_id),
            ).rowcount
        return changed > 0

    def end_fault(
        self,
        fault_id: int,
        outcome: FaultOutcome | str,
        *,
        ended_at: float | None = None,
        detail: str = "",
    ) -> bool:
        """Record how and when a running fault ended; False if it had already ended."""
        ended = time.time() if ended_at is None else float(ended_at)
        value = FaultOutcome(outcome).value
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE faults SET ended_at = ?, outcome = ?, detail = ? "
                "WHERE id = ? AND ended_at IS NULL",
                (ended, value, detail, fault_id),
            ).rowcount
        return changed > 0

    def faults(
        self,
        node: str | None = None,
        since: float | None = None,
        until: float | None = None,
        fault: str | None = None,
        campaign: str | None = None,
        active: bool | None = None,
    ) -> list[FaultRecord]:
        """Faults that started in ``[since, until]`` (matching the filters), oldest first."""
        where, params = _where(
            ("node = ?", node),
            ("started_at >= ?", since),
            ("started_at <= ?", until),
            ("fault = ?", fault),
            ("campaign = ?", campaign),
        )
        if active is not None:
            clause = "ended_at IS NULL" if active else "ended_at IS NOT NULL"
            where = f"{where} AND {clause}" if where else f"WHERE {clause}"
        with self._lock:
            rows = self._db.execute(f"{_SELECT_FAULT} {where} ORDER BY started_at, id", params)
            return [_fault(row) for row in rows]


def _fault(row: tuple[Any, ...]) -> FaultRecord:
    fault_id, node, fault, params, campaign, started, failed, failure, ended, outcome, info = row
    return FaultRecord(
        int(fault_id),
        str(node),
        str(fault),
        json.loads(params),
        campaign,
        float(started),
        None if failed is None else float(failed),
        failure,
        None if ended is None else float(ended),
        outcome,
        str(info),
    )
