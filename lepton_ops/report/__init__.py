"""``lepton-ops report``: the fleet's numbers computed from what the store measured.

- :mod:`~lepton_ops.report.stability` - failure episodes, failure rate, MTBF, MTTR and
  availability per node and for the fleet (the definitions are there);
- :mod:`~lepton_ops.report.load` - load shares, planned and executed tasks, predicted
  against measured makespan, from the controller's job history;
- :mod:`~lepton_ops.report.sources` - the optional sources: the remediation audit, the
  failure predictor (current risk, alarms);
- :mod:`~lepton_ops.report.timeline` - each node's telemetry, thinned for the charts;
- :mod:`~lepton_ops.report.model` - the :class:`Report`, and its JSON;
- :mod:`~lepton_ops.report.build` - reading the store into a :class:`Report`;
- :mod:`~lepton_ops.report.text` - the terminal's tables;
- :mod:`~lepton_ops.report.html` and :mod:`~lepton_ops.report.svg` - the self-contained
  HTML page and its hand-written SVG charts.
"""

from lepton_ops.report.build import build_report
from lepton_ops.report.model import Report

__all__ = ["Report", "build_report"]
