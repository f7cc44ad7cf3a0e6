"""The report for the terminal: rich tables, one per section, and what is missing.

Every figure is shown with its unit and the count it rests on; a figure without a value
is ``-`` and its reason is written under the table, so that no number is shown without
what it stands on.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lepton_ops.report import fmt
from lepton_ops.report.load import makespan_ratio
from lepton_ops.report.model import Report
from lepton_ops.report.stability import Figure, Stability
from lepton_ops.report.summary import summary_lines
from lepton_ops.telemetry.durations import format_duration

#: The stability tables (two, so that each fits 80 columns): (column, attribute).
_RATE = (("lambda /h", "failure_rate"), ("P(>=1 in {h})", "p_failure"))
_REPAIR = (
    ("MTBF", "mtbf"),
    ("MTTR", "mttr"),
    ("availability", "availability"),
    ("measured", "measured_availability"),
)
_FIGURES = (*_RATE, *_REPAIR)


def render(report: Report, console: Console) -> None:
    """Print every section of ``report``."""
    console.print(
        f"[bold]lepton-ops report[/bold] {fmt.when(report.since)} to {fmt.when(report.until)} "
        f"({format_duration(report.until - report.since)}), store {report.store}",
        highlight=False,
    )
    for line in summary_lines(report):
        console.print(f"  {line}", highlight=False)
    # the sections say what they lack themselves
    said = {
        report.load.message,
        report.remediation.message,
        report.prediction.risk_message,
        report.prediction.alarm_message,
    }
    for line in report.missing:
        if line not in said:
            console.print(f"[yellow]missing:[/yellow] {line}", highlight=False)
    _stability(report, console)
    _load(report, console)
    _prediction(report, console)
    _remediation(report, console)


def _stability(report: Report, console: Console) -> None:
    horizon = format_duration(report.horizon_s)
    rows: list[Stability] = [*report.stability, report.fleet]
    rates = _table("stability: failures", ("observed", "failures", "recovered"), _RATE, horizon)
    repairs = _table("stability: repair", ("uptime",), _REPAIR, horizon)
    for entry in rows:
        pooled = entry.node is None
        if pooled:
            rates.add_section()
            repairs.add_section()
        name = "fleet" if pooled else str(entry.node)
        style = "bold" if pooled else None
        rates.add_row(
            name, fmt.seconds(entry.observed_s), str(entry.failures), str(entry.recovered),
            *(_cell(getattr(entry, attribute)) for _, attribute in _RATE), style=style,
        )  # fmt: skip
        repairs.add_row(
            name, fmt.seconds(entry.uptime_s),
            *(_cell(getattr(entry, attribute)) for _, attribute in _REPAIR), style=style,
        )  # fmt: skip
    console.print(rates)
    console.print(repairs)
    console.print(
        "lambda is a rate - failures per hour of observed time (the fleet's: pooled, per "
        f"node-hour) - not a probability; P(>=1 in {horizon}) = 1 - exp(-lambda * {horizon}). "
        "Availability = MTBF / (MTBF + MTTR); measured = uptime / observed time.",
        highlight=False,
    )
    fleet = report.fleet
    if fleet.p_any_node is not None and fleet.p_any_node.value is not None:
        console.print(
            f"P(some node fails within {horizon}) = {fmt.figure(fleet.p_any_node)}",
            highlight=False,
        )
    for column, attribute in _FIGURES:
        figure: Figure = getattr(fleet, attribute)
        label = column.format(h=horizon).replace(" /h", "")
        label = "measured availability" if label == "measured" else label
        console.print(_rests_on(f"fleet {label}", figure), highlight=False)


def _table(
    title: str, first: tuple[str, ...], figures: tuple[tuple[str, str], ...], horizon: str
) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("node")
    for column in first:
        table.add_column(column, justify="right")
    for column, _ in figures:
        table.add_column(column.format(h=horizon), justify="right")
    return table


def _cell(figure: Figure) -> str:
    """A figure in a table: its number (the unit is in the column's title)."""
    if figure.value is not None and figure.unit.startswith("failures/"):
        return fmt.number(figure.value)
    return fmt.figure(figure)


def _rests_on(label: str, figure: Figure) -> str:
    if figure.value is None:
        return f"  {label}: - ({figure.reason})"
    return f"  {label}: {fmt.figure(figure)} from {fmt.rests_on(figure)}"


def _load(report: Report, console: Console) -> None:
    load = report.load
    if not load.jobs:
        console.print(f"[bold]load[/bold]: {load.message}", highlight=False)
        return
    nodes = Table(title=f"load over {len(load.jobs)} jobs", title_justify="left")
    for column in ("node", "weight", "L_i", "planned", "executed", "executed share", "tasks/s"):
        nodes.add_column(column, justify="left" if column == "node" else "right")
    for node in load.nodes:
        nodes.add_row(
            node.node,
            "-" if node.weight is None else str(node.weight),
            fmt.percent(node.load_share),
            "-" if node.planned_tasks is None else str(node.planned_tasks),
            str(node.executed_tasks),
            fmt.percent(node.executed_share),
            fmt.number(node.measured_speed),
        )
    console.print(nodes)
    if load.message:
        console.print(load.message, highlight=False)
    jobs = Table(title="makespan, and executed shares against L_i", title_justify="left")
    for column in (
        "job", "kind", "status", "tasks", "predicted", "measured", "measured/pred.", "shares",
    ):  # fmt: skip
        jobs.add_column(column, justify="right" if column in ("tasks",) else "left")
    reasons = {entry.job_id: entry.reason for entry in load.explained}
    for job in load.jobs:
        jobs.add_row(
            fmt.short_id(job.job_id),
            job.kind,
            job.status,
            str(job.tasks),
            fmt.seconds(job.predicted_makespan_s),
            fmt.seconds(job.makespan_s),
            fmt.number(makespan_ratio(job)),
            reasons.get(job.job_id, "-"),
        )
    console.print(jobs)


def _prediction(report: Report, console: Console) -> None:
    prediction = report.prediction
    if prediction.risks:
        table = Table(title="current risk", title_justify="left")
        for column in ("node", "P(failure)", "horizon", "at risk", "note"):
            table.add_column(column)
        for risk in prediction.risks:
            table.add_row(
                risk.node,
                fmt.percent(risk.probability),
                "-" if risk.horizon_s is None else format_duration(risk.horizon_s),
                "-" if risk.at_risk is None else ("yes" if risk.at_risk else "no"),
                risk.detail,
            )
        console.print(table)
    else:
        console.print(f"[bold]current risk[/bold]: {prediction.risk_message}", highlight=False)
    if prediction.alarms:
        parts = ", ".join(f"{key} {value}" for key, value in prediction.alarms.items())
        console.print(f"[bold]prediction alarms[/bold]: {parts}", highlight=False)
    else:
        console.print(
            f"[bold]prediction alarms[/bold]: {prediction.alarm_message}", highlight=False
        )


def _remediation(report: Report, console: Console) -> None:
    remediation = report.remediation
    if not remediation.actions:
        console.print(f"[bold]remediation[/bold]: {remediation.message}", highlight=False)
        return
    outcomes = sorted({o for counts in remediation.by_action.values() for o in counts})
    table = Table(title=f"remediation: {len(remediation.actions)} actions", title_justify="left")
    table.add_column("action")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for action, counts in remediation.by_action.items():
        table.add_row(action, *(str(counts.get(outcome, 0)) for outcome in outcomes))
    console.print(table)
