"""The report: one dataclass holding every section, and its JSON (``--json``).

The timelines are left out of the JSON: they are the charts' thinned copy of the store's
series, which ``lepton-ops telemetry export`` gives whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lepton_ops.report.load import LoadSection
from lepton_ops.report.sources import PredictionSection, RemediationSection
from lepton_ops.report.stability import Stability
from lepton_ops.report.timeline import NodeTimeline
from lepton_ops.telemetry.records import FaultRecord, IncidentRecord

#: The version of the report's JSON layout.
REPORT_VERSION = 1


@dataclass(frozen=True)
class Report:
    generated_at: float
    since: float
    until: float
    #: the horizon of "probability of at least one failure within"
    horizon_s: float
    #: the longest interval between two observations that counts as observed time
    max_gap_s: float
    store: str
    nodes: tuple[str, ...]
    stability: tuple[Stability, ...]
    fleet: Stability
    load: LoadSection
    prediction: PredictionSection
    remediation: RemediationSection
    #: the faults that overlap the window, and the failure incidents in it
    faults: tuple[FaultRecord, ...] = ()
    incidents: tuple[IncidentRecord, ...] = ()
    timelines: dict[str, NodeTimeline] = field(default_factory=dict)
    #: what the store lacks for a full report, one line each
    missing: tuple[str, ...] = ()
    #: nodes the store knows that sent nothing in the window
    silent: tuple[str, ...] = ()

    def node_stability(self, node: str) -> Stability | None:
        return next((entry for entry in self.stability if entry.node == node), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_version": REPORT_VERSION,
            "generated_at": self.generated_at,
            "since": self.since,
            "until": self.until,
            "horizon_s": self.horizon_s,
            "max_gap_s": self.max_gap_s,
            "store": self.store,
            "nodes": list(self.nodes),
            "silent_nodes": list(self.silent),
            "missing": list(self.missing),
            "stability": {
                "fleet": self.fleet.to_dict(),
                "nodes": [entry.to_dict() for entry in self.stability],
            },
            "load": self.load.to_dict(),
            "prediction": self.prediction.to_dict(),
            "remediation": self.remediation.to_dict(),
            "faults": [fault.to_dict() for fault in self.faults],
        }
