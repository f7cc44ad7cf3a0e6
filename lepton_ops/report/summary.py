"""The report's story in a few lines, at the top of the page and of the terminal's report:
fleet availability, failures and MTTR, faults, what was predicted, what remediation did."""

from __future__ import annotations

from lepton_ops.remediate.ladder import PREDICTIVE_DRAIN
from lepton_ops.report import fmt
from lepton_ops.report.model import Report


def summary_lines(report: Report) -> list[str]:
    fleet = report.fleet
    nodes = len(report.nodes)
    availability = fleet.measured_availability
    lines = [
        f"{nodes} node{'s' if nodes != 1 else ''} observed for "
        f"{fmt.seconds(fleet.observed_s)} in all; fleet availability "
        + (fmt.figure(availability) if availability.value is not None else "unknown")
        + "."
    ]
    if fleet.failures:
        mttr = fleet.mttr
        lines.append(
            f"{fleet.failures} failure{'s' if fleet.failures != 1 else ''}, "
            f"{fleet.recovered} recovered"
            + (f", MTTR {fmt.figure(mttr)}" if mttr.value is not None else "")
            + "."
        )
    else:
        lines.append("no failure in the window.")
    faults = [fault for fault in report.faults]
    if faults:
        kinds = ", ".join(sorted({f"{fault.fault} on {fault.node}" for fault in faults}))
        lines.append(f"{len(faults)} injected fault{'s' if len(faults) != 1 else ''}: {kinds}.")
    predicted = [a for a in report.remediation.actions if a.action == PREDICTIVE_DRAIN]
    at_risk = [risk.node for risk in report.prediction.risks if risk.at_risk]
    if predicted:
        lines.append(
            "predicted to fail (and drained ahead of it): "
            + ", ".join(sorted({a.node for a in predicted}))
            + "."
        )
    if at_risk:
        lines.append(f"at risk now: {', '.join(at_risk)}.")
    if not predicted and not at_risk:
        lines.append("no node was predicted to fail.")
    done = [a for a in report.remediation.actions if a.action != PREDICTIVE_DRAIN]
    if done:
        lines.append(
            "remediation: "
            + "; ".join(
                f"{a.action} of {a.node} {a.outcome or 'in progress'}"
                + (f" at {fmt.when(a.started_at)}" if a.started_at is not None else "")
                for a in done[-5:]
            )
            + (f" (and {len(done) - 5} earlier)" if len(done) > 5 else "")
            + "."
        )
    else:
        lines.append("no remediation action.")
    return lines
