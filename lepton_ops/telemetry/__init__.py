"""Telemetry: node facts -> samples and incidents -> the history store -> exports.

- :mod:`~lepton_ops.telemetry.catalogue` - every metric, defined once (name, help, unit,
  type, scope and how it is read from the facts);
- :mod:`~lepton_ops.telemetry.facts_schema` - the shape of one node's facts, checked at
  the edge;
- :mod:`~lepton_ops.telemetry.facts` - a node's collection outcome, its samples and incidents;
- :mod:`~lepton_ops.telemetry.history` - the SQLite history (:class:`HistoryStore`), its
  tables in :mod:`~lepton_ops.telemetry.history.schema`, what it returns in
  :mod:`~lepton_ops.telemetry.records`;
- :mod:`~lepton_ops.telemetry.export` - CSV and Prometheus text exposition;
- :mod:`~lepton_ops.telemetry.durations` - ``10m``, ``30d``: durations of CLI flags.
"""

from lepton_ops.telemetry.catalogue import CATALOGUE, METRICS, MetricSpec, MetricType, Scope
from lepton_ops.telemetry.durations import format_duration, parse_duration
from lepton_ops.telemetry.facts import (
    Incident,
    IncidentKind,
    NodeOutcome,
    NodeStatus,
    Sample,
    node_samples,
)
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.records import (
    CollectionRecord,
    CollectionSource,
    IncidentRecord,
    LatestSample,
    PruneCounts,
    Series,
)

__all__ = [
    "CATALOGUE",
    "METRICS",
    "CollectionRecord",
    "CollectionSource",
    "HistoryStore",
    "Incident",
    "IncidentKind",
    "IncidentRecord",
    "LatestSample",
    "MetricSpec",
    "MetricType",
    "NodeOutcome",
    "NodeStatus",
    "PruneCounts",
    "Sample",
    "Scope",
    "Series",
    "format_duration",
    "history_path",
    "node_samples",
    "parse_duration",
]
