"""The fleet's history: SQLite (standard library), WAL, one transaction per collection.

The tables are described in :mod:`~lepton_ops.telemetry.history.schema`. The file lives
in the controller's state directory (:func:`history_path`).

Durability: ``synchronous=NORMAL`` in WAL mode. A transaction's pages are written to
the WAL file (``write(2)``) before COMMIT returns; killing the process, SIGKILL
included, cannot undo a write the kernel has accepted, so every collection whose commit
returned survives, and one that was interrupted is rolled back when the file is next
opened. What NORMAL gives up against FULL is the fsync at each commit: the last
transactions on a *power loss* or kernel crash (the database stays consistent even
then). The requirement is a killed collection process, so an fsync per collection would
buy nothing it asks for.
"""

from __future__ import annotations

from lepton_ops.telemetry.history.faults import FaultHistory
from lepton_ops.telemetry.history.jobs import JobHistory
from lepton_ops.telemetry.history.remediations import RemediationHistory
from lepton_ops.telemetry.history.samples import SampleHistory


class HistoryStore(SampleHistory, FaultHistory, JobHistory, RemediationHistory):
    """The fleet's history in one SQLite file, one record family per part: samples,
    incidents and collections (:class:`SampleHistory`), faults (:class:`FaultHistory`),
    finished jobs (:class:`JobHistory`) and the remediation audit
    (:class:`RemediationHistory`). Open it once and use every part through it."""
