"""The remediation audit log: one record per action on a node."""

from __future__ import annotations

import json
import time
from typing import Any

from lepton_ops.telemetry.history.base import HistoryBase, _where
from lepton_ops.telemetry.records import RemediationRecord

_SELECT_REMEDIATION = (
    "SELECT id, node, action, trigger, reason, started_at, finished_at, outcome, before, "
    "after, detail FROM remediations"
)


class RemediationHistory(HistoryBase):
    def start_remediation(
        self,
        node: str,
        action: str,
        *,
        trigger: str,
        reason: str,
        before: dict[str, Any],
        started_at: float | None = None,
    ) -> int:
        """Record that ``action`` starts on ``node`` (before it runs); its id."""
        started = time.time() if started_at is None else float(started_at)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO remediations (node, action, trigger, reason, started_at, before) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (node, action, trigger, reason, started, json.dumps(before, sort_keys=True)),
            )
        return int(cursor.lastrowid or 0)

    def finish_remediation(
        self,
        remediation_id: int,
        outcome: str,
        *,
        after: dict[str, Any],
        detail: str = "",
        finished_at: float | None = None,
    ) -> bool:
        """Record how a remediation ended; False if it had already ended."""
        finished = time.time() if finished_at is None else float(finished_at)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE remediations SET finished_at = ?, outcome = ?, after = ?, detail = ? "
                "WHERE id = ? AND finished_at IS NULL",
                (finished, outcome, json.dumps(after, sort_keys=True), detail, remediation_id),
            ).rowcount
        return changed > 0

    def remediations(
        self,
        node: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[RemediationRecord]:
        """Remediations started in ``[since, until]`` (on ``node``), oldest first."""
        where, params = _where(
            ("node = ?", node), ("started_at >= ?", since), ("started_at <= ?", until)
        )
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT_REMEDIATION} {where} ORDER BY started_at, id", params
            ).fetchall()
        return [_remediation(row) for row in rows]


def _remediation(row: tuple[Any, ...]) -> RemediationRecord:
    return RemediationRecord(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        float(row[5]),
        None if row[6] is None else float(row[6]),
        row[7],
        json.loads(row[8]),
        None if row[9] is None else json.loads(row[9]),
        str(row[10]),
    )
