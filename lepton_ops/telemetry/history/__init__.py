"""The fleet's history (SQLite): what telemetry measured, the faults injected, the jobs
seen finishing, the remediation audit - one file, one part per record family."""

from lepton_ops.telemetry.history.base import history_path
from lepton_ops.telemetry.history.store import HistoryStore

__all__ = ["HistoryStore", "history_path"]
