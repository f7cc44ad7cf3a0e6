"""The report as one self-contained HTML page: tables, and SVG charts drawn by hand.

Self-contained means the file is all there is: styles and script inline, charts as
inline SVG, no ``src``/``href`` to anything, and a Content-Security-Policy that forbids
the browser to fetch anything at all - the page opens the same air-gapped, attached to a
ticket or from a CI artifact. Every string from the store is escaped.

Charts: per node, a timeline of service memory and data disk used (%) and health, with
failure episodes shaded, injected faults as a band on top, failure incidents as ticks at
the bottom, remediation actions as markers and the current risk at the right edge; the
load shares (``L_i`` against the share of tasks each node executed); each job's
predicted against measured makespan.

A small inline script runs once the charts are laid out: for each chart (``.chart``) it
counts the data marks (``.data``) with a non-empty bounding box in an SVG that has a
size, sets ``data-marks`` to that count and ``data-drawn="yes"`` (or ``"no"`` for none)
on the chart, and sets
``data-charts-drawn`` and ``data-charts-total`` on ``<body>``. A headless browser's DOM
dump then tells a test whether the charts were really drawn.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from lepton_ops import __version__
from lepton_ops.remediate.ladder import PREDICTIVE_DRAIN
from lepton_ops.report import fmt
from lepton_ops.report.load import JobShares, LoadSection, makespan_ratio
from lepton_ops.report.model import Report
from lepton_ops.report.sources import NodeRisk
from lepton_ops.report.stability import Figure
from lepton_ops.report.summary import summary_lines
from lepton_ops.report.svg import Scale, element, line, nice_ticks, svg, text, time_ticks, title
from lepton_ops.report.timeline import BUCKETS
from lepton_ops.telemetry.durations import format_duration
from lepton_ops.telemetry.records import JobRunRecord

WIDTH = 960
#: The most jobs the makespan chart shows (the latest); the table lists them all.
MAX_CHART_JOBS = 40
#: The most incident ticks per node timeline (one per pixel column at most anyway).
MAX_TICKS = 600
#: The most jobs the load share chart shows side by side (the latest), and their colours.
MAX_SHARE_JOBS = 4
JOB_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#8c564b")

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1040px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
td small, p.note, .missing { color: #666; }
.missing { color: #8a5a00; }
tr.fleet td { font-weight: bold; background: #f6f6f6; }
figure.chart { margin: 12px 0 20px; }
figcaption { font-weight: bold; margin-bottom: 4px; }
svg text { font-size: 11px; fill: #444; }
.axis { stroke: #999; stroke-width: 1; } .grid { stroke: #eee; stroke-width: 1; }
path.line { fill: none; stroke-linecap: round; }
.memory { stroke: #1f77b4; stroke-width: 1.5; }
.disk { stroke: #9467bd; stroke-width: 1.5; }
.health { stroke: #2ca02c; stroke-width: 1.2; }
.episode { fill: #d62728; fill-opacity: 0.18; }
.fault { fill: #ff7f0e; fill-opacity: 0.55; }
.incident { stroke: #d62728; stroke-width: 1; }
.remediation { fill: #17becf; stroke: #0b6e79; }
.prediction { fill: #e377c2; stroke: #8c2a6d; }
.risk { fill: #e377c2; stroke: #8c2a6d; }
.planned { fill: #7f7f7f; }
.job0 { fill: #1f77b4; } .job1 { fill: #ff7f0e; } .job2 { fill: #2ca02c; }
.job3 { fill: #8c564b; }
.summary { background: #f6f8fa; border: 1px solid #ddd; padding: 8px 14px; }
.summary li { margin: 2px 0; }
.predicted { fill: #bcbd22; } .measured { fill: #1f77b4; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 4px; }
"""

CHECK_SCRIPT = """
(function () {
  var charts = document.querySelectorAll('.chart');
  var drawn = 0;
  for (var c = 0; c < charts.length; c++) {
    var chart = charts[c];
    var picture = chart.querySelector('svg');
    var shown = 0;
    if (picture) {
      var box = picture.getBoundingClientRect();
      var marks = picture.querySelectorAll('.data');
      for (var m = 0; box.width > 0 && box.height > 0 && m < marks.length; m++) {
        var mark = marks[m].getBBox();
        if (mark.width > 0 || mark.height > 0) { shown++; }
      }
    }
    var ok = shown > 0;
    chart.setAttribute('data-drawn', ok ? 'yes' : 'no');
    chart.setAttribute('data-marks', String(shown));
    if (ok) { drawn++; }
  }
  document.body.setAttribute('data-charts-drawn', String(drawn));
  document.body.setAttribute('data-charts-total', String(charts.length));
})();
"""


def page(report: Report) -> str:
    """The whole page."""
    window = format_duration(report.until - report.since)
    parts = [
        f"<h1>lepton-ops report: the {_e(window)} up to {_e(fmt.when(report.until))}</h1>",
        f'<p class="note">{_e(fmt.when(report.since))} to {_e(fmt.when(report.until))}; '
        f"store {_e(report.store)}; generated by lepton-ops {_e(__version__)} at "
        f"{_e(fmt.when(report.generated_at))}.</p>",
        _summary(report),
        *(f'<p class="missing">missing: {_e(line_)}</p>' for line_ in report.missing),
        _stability(report),
        _timelines(report),
        _load(report.load),
        _prediction(report),
        _remediation(report),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>lepton-ops report {_e(fmt.when(report.until))}</title>"
        f"<style>{STYLE}</style></head>\n"
        '<body data-charts-drawn="pending">\n'
        + "\n".join(parts)
        + f"\n<script>{CHECK_SCRIPT}</script>\n</body></html>\n"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _chart(kind: str, caption: str, picture: str, **data: str) -> str:
    attrs = "".join(f' data-{name}="{_e(value)}"' for name, value in data.items())
    return (
        f'<figure class="chart" data-chart="{_e(kind)}"{attrs} data-drawn="no">'
        f"<figcaption>{_e(caption)}</figcaption>{picture}</figure>"
    )


def _legend(items: Iterable[tuple[str, str]]) -> str:
    spans = "".join(
        f'<span><i style="background:{_e(color)}"></i>{_e(label)}</span>' for color, label in items
    )
    return f'<p class="legend">{spans}</p>'


# --------------------------------------------------------------------------- summary


def _summary(report: Report) -> str:
    """The story in a few lines: availability, failures, MTTR, predictions, remediation."""
    return (
        '<ul class="summary">'
        + "".join(f"<li>{_e(item)}</li>" for item in summary_lines(report))
        + "</ul>"
    )


# --------------------------------------------------------------------------- stability

_FIGURES = (
    ("lambda", "failure_rate"),
    ("P(>=1 failure in {h})", "p_failure"),
    ("MTBF", "mtbf"),
    ("MTTR", "mttr"),
    ("availability", "availability"),
    ("measured availability", "measured_availability"),
)


def _stability(report: Report) -> str:
    horizon = format_duration(report.horizon_s)
    heads = ["node", "observed", "failures", "recovered"] + [
        name.format(h=horizon) for name, _ in _FIGURES
    ]
    rows = []
    for entry in [*report.stability, report.fleet]:
        fleet = entry.node is None
        cells = [
            "fleet (pooled)" if fleet else entry.node or "",
            fmt.seconds(entry.observed_s),
            str(entry.failures),
            str(entry.recovered),
        ]
        figures = "".join(_figure_cell(getattr(entry, attribute)) for _, attribute in _FIGURES)
        row = "".join(f"<td>{_e(cell)}</td>" for cell in cells) + figures
        rows.append(f'<tr class="fleet">{row}</tr>' if fleet else f"<tr>{row}</tr>")
    head = "".join(f"<th>{_e(name)}</th>" for name in heads)
    any_node = ""
    if report.fleet.p_any_node is not None and report.fleet.p_any_node.value is not None:
        any_node = (
            f" P(some node fails within {_e(horizon)}) = {_e(fmt.figure(report.fleet.p_any_node))}."
        )
    return (
        "<h2>Stability</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">lambda is a rate - failures per hour of observed time (the fleet: '
        "per node-hour) - not a probability; the probability of at least one failure within "
        f"{_e(horizon)} is P = 1 - exp(-lambda x {_e(horizon)}), for failures at a constant "
        "rate. Availability = MTBF / (MTBF + MTTR); measured availability = uptime / observed "
        "time (they agree when every episode recovered inside the window and no telemetry gap "
        "fell inside one). An episode runs from the first failed observation (fault, "
        "unreachable, failed health check) to the first later observation with the node "
        "reachable and every service healthy; gaps longer than "
        f"{_e(format_duration(report.max_gap_s))} are not observed time.{any_node}</p>"
    )


def _figure_cell(figure: Figure) -> str:
    if figure.value is None:
        reason = _e(figure.reason or "")
        return f'<td title="{reason}">-<br><small>{reason}</small></td>'
    return f"<td>{_e(fmt.figure(figure))}<br><small>{_e(fmt.rests_on(figure))}</small></td>"


# --------------------------------------------------------------------------- timelines

_TIMELINE_LEGEND = (
    ("#1f77b4", "service memory used %"),
    ("#9467bd", "data disk used %"),
    ("#2ca02c", "health (100 up, 0 down)"),
    ("rgba(214,39,40,0.3)", "failure episode"),
    ("#ff7f0e", "injected fault"),
    ("#d62728", "failure incident (tick at the bottom)"),
    ("#17becf", "remediation action (triangle on top)"),
    ("#e377c2", "prediction acted on (diamond); current risk (dot at the right, %)"),
)


def _timelines(report: Report) -> str:
    window = fmt.seconds(report.until - report.since)
    silent = "".join(
        f'<p class="missing">{_e(node)}: no telemetry, fault or action in these {window}</p>'
        for node in report.silent
    )
    if not report.nodes:
        return f'<h2>Timeline</h2><p class="missing">no node observed in the window</p>{silent}'

    charts = [
        _chart(
            "timeline",
            f"{node}: telemetry, failures and remediation",
            _timeline_svg(report, node),
            node=node,
        )
        if _has_data(report, node)
        else f'<p class="missing">{_e(node)}: no telemetry, fault or action in these {window}</p>'
        for node in report.nodes
    ]
    return "<h2>Timeline</h2>" + _legend(_TIMELINE_LEGEND) + "".join(charts) + silent


def _has_data(report: Report, node: str) -> bool:
    timeline = report.timelines.get(node)
    stability = report.node_stability(node)
    return bool(
        (timeline is not None and (timeline.memory or timeline.disk or timeline.health))
        or (stability is not None and stability.episodes)
        or any(fault.node == node for fault in report.faults)
        or any(incident.node == node for incident in report.incidents)
        or any(action.node == node for action in report.remediation.actions)
    )


def _timeline_svg(report: Report, node: str) -> str:
    height, left, right, top, bottom = 230, 40, 96, 16, 24
    xs = Scale(report.since, report.until, left, WIDTH - right)
    ys = Scale(0.0, 100.0, height - bottom, top)
    marks: list[str] = []
    for value in (0.0, 25.0, 50.0, 75.0, 100.0):
        y = ys(value)
        marks.append(
            element("line", {"class": "grid", "x1": left, "x2": WIDTH - right, "y1": y, "y2": y})
        )
        marks.append(text(left - 4, y + 4, f"{value:g}", **{"text-anchor": "end"}))
    for ts, label in time_ticks(report.since, report.until):
        x = xs(ts)
        marks.append(
            element(
                "line",
                {
                    "class": "axis",
                    "x1": x,
                    "x2": x,
                    "y1": height - bottom,
                    "y2": height - bottom + 4,
                },
            )
        )
        marks.append(text(x, height - 6, label, **{"text-anchor": "middle"}))
    marks.append(
        element(
            "line",
            {
                "class": "axis",
                "x1": left,
                "x2": WIDTH - right,
                "y1": height - bottom,
                "y2": height - bottom,
            },
        )
    )
    stability = report.node_stability(node)
    for episode in stability.episodes if stability else ():
        x0, x1 = xs(episode.start), xs(report.until if episode.end is None else episode.end)
        state = (
            "not recovered"
            if episode.end is None
            else f"recovered after {fmt.seconds(episode.duration_s)}"
        )
        marks.append(
            element(
                "rect",
                {
                    "class": "data episode",
                    "x": x0,
                    "y": top,
                    "width": max(x1 - x0, 1.5),
                    "height": height - top - bottom,
                },
                title(
                    f"failure episode from {fmt.when(episode.start)}: {state} "
                    f"({', '.join(episode.sources)})"
                ),
            )
        )
    for fault in report.faults:
        if fault.node != node:
            continue
        end = report.until if fault.ended_at is None else fault.ended_at
        x0, x1 = xs(max(fault.started_at, report.since)), xs(end)
        marks.append(
            element(
                "rect",
                {
                    "class": "data fault",
                    "x": x0,
                    "y": top - 10,
                    "width": max(x1 - x0, 1.5),
                    "height": 7,
                },
                title(
                    f"fault {fault.fault} from {fmt.when(fault.started_at)}, "
                    f"outcome {fault.outcome or 'running'}"
                ),
            )
        )
    marks.extend(_incident_ticks(report, node, xs, height - bottom))
    for action in report.remediation.actions:
        if action.node != node or action.started_at is None:
            continue
        x = xs(action.started_at)
        if action.action == PREDICTIVE_DRAIN:
            marks.append(_prediction_mark(report, node, action.started_at, x, top))
            continue
        marks.append(
            element(
                "polygon",
                {
                    "class": "data remediation",
                    "points": f"{x - 5:.1f},{top - 12} {x + 5:.1f},{top - 12} {x:.1f},{top - 2}",
                },
                title(
                    f"remediation {action.action} at {fmt.when(action.started_at)}: "
                    f"{action.outcome or 'unknown'}"
                ),
            )
        )
    timeline = report.timelines.get(node)
    if timeline is not None:
        # a line is broken where the node sent nothing for longer than the gap limit (or
        # than two of the thinned series' buckets, when those are longer)
        gap = max(report.max_gap_s, 2 * (report.until - report.since) / BUCKETS)
        health = "health: 100 up, 0 down"
        marks.append(line(xs, ys, timeline.health, "health", health, step=True, gap=gap))
        marks.append(line(xs, ys, timeline.disk, "disk", "data disk used %", gap=gap))
        marks.append(line(xs, ys, timeline.memory, "memory", "service memory used %", gap=gap))
    marks.extend(_risk_mark(report.prediction.risk_of(node), WIDTH - right + 14, ys))
    return svg(WIDTH, height, f"timeline of {node}", marks)


def _prediction_mark(report: Report, node: str, at: float, x: float, top: float) -> str:
    """A diamond where the model's prediction was acted on, with its lead time."""
    began = [f.started_at for f in report.faults if f.node == node and f.started_at <= at]
    failed = [
        moment
        for moment in (
            *(f.failed_at for f in report.faults if f.node == node),
            *(e.start for s in report.stability if s.node == node for e in s.episodes),
        )
        if moment is not None and moment >= at
    ]
    acted = [
        a.started_at
        for a in report.remediation.actions
        if a.node == node and a.action != PREDICTIVE_DRAIN
        and a.started_at is not None and a.started_at >= at
    ]  # fmt: skip
    words = [f"failure predicted at {fmt.when(at)} (the node was drained ahead of it)"]
    if began:
        words.append(f"{fmt.seconds(at - max(began))} after the fault began")
    if failed:
        words.append(f"lead time {fmt.seconds(min(failed) - at)} before the failure")
    elif acted:
        words.append(f"{fmt.seconds(min(acted) - at)} before the remediation, no failure")
    # just under the remediation triangles (a restart often follows at once)
    points = f"{x:.1f},{top + 1} {x + 5:.1f},{top + 7} {x:.1f},{top + 13} {x - 5:.1f},{top + 7}"
    return element(
        "polygon", {"class": "data prediction", "points": points}, title("; ".join(words))
    )


def _incident_ticks(report: Report, node: str, xs: Scale, base: float) -> list[str]:
    seen: set[int] = set()
    ticks: list[str] = []
    for incident in report.incidents:
        if incident.node != node:
            continue
        x = xs(incident.ts)
        if int(x) in seen or len(ticks) >= MAX_TICKS:
            continue
        seen.add(int(x))
        ticks.append(
            element(
                "line",
                {"class": "data incident", "x1": x, "x2": x, "y1": base - 8, "y2": base},
                title(f"{incident.kind} at {fmt.when(incident.ts)}"),
            )
        )
    return ticks


def _risk_mark(risk: NodeRisk | None, x: float, ys: Scale) -> list[str]:
    if risk is None or risk.probability is None:
        return [text(x - 8, ys(50.0), "risk: -", **{"text-anchor": "start"})]
    y = ys(risk.probability * 100.0)
    horizon = "" if risk.horizon_s is None else f" in {format_duration(risk.horizon_s)}"
    label = f"current risk {fmt.percent(risk.probability, 1)}{horizon}"
    return [
        element("circle", {"class": "data risk", "cx": x, "cy": y, "r": 5}, title(label)),
        text(x + 8, y + 4, fmt.percent(risk.probability, 0)),
    ]


# --------------------------------------------------------------------------- load


def _load(load: LoadSection) -> str:
    if not load.jobs:
        return f'<h2>Load</h2><p class="missing">{_e(load.message)}</p>'
    parts = ["<h2>Load</h2>"]
    if load.message:
        parts.append(f'<p class="missing">{_e(load.message)}</p>')
    charted = load.explained[-MAX_SHARE_JOBS:]
    jobs = {job.job_id: job for job in load.jobs}
    parts.append(
        _legend(
            [("#7f7f7f", "load share L_i = W_i / sum(W)")]
            + [
                (JOB_COLOURS[index], f"executed share, {_job_name(jobs[entry.job_id])}")
                for index, entry in enumerate(charted)
            ]
        )
    )
    parts.append(
        _chart(
            "load-shares",
            f"each node's share of the work: L_i against what it executed, the last "
            f"{len(charted)} job{'s' if len(charted) != 1 else ''}",
            _shares_svg(load, charted),
        )
    )
    parts.append(
        "<ul>"
        + "".join(
            f"<li>{_e(_job_name(jobs[entry.job_id]))}: {_e(entry.reason)}</li>" for entry in charted
        )
        + "</ul>"
    )
    heads = (
        "node",
        "weight",
        "L_i",
        "planned tasks",
        "executed tasks",
        "executed share",
        "tasks/s",
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(cell)}</td>"
            for cell in (
                node.node,
                "-" if node.weight is None else node.weight,
                fmt.percent(node.load_share),
                "-" if node.planned_tasks is None else node.planned_tasks,
                node.executed_tasks,
                fmt.percent(node.executed_share),
                fmt.number(node.measured_speed),
            )
        )
        + "</tr>"
        for node in load.nodes
    )
    parts.append(_table(heads, rows))
    parts.append(
        _legend((("#bcbd22", "predicted (plan at measured speeds)"), ("#1f77b4", "measured")))
    )
    shown = load.jobs[-MAX_CHART_JOBS:]
    parts.append(
        _chart(
            "makespan",
            f"makespan, predicted and measured: the last {len(shown)} jobs",
            _makespan_svg(shown),
        )
    )
    job_heads = (
        "#",
        "job",
        "kind",
        "status",
        "tasks",
        "finished",
        "predicted",
        "measured",
        "measured / predicted",
        "predicted from",
    )
    offset = len(load.jobs) - len(shown)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(cell)}</td>"
            for cell in (
                "" if index < offset else index - offset + 1,
                fmt.short_id(job.job_id),
                job.kind,
                job.status,
                job.tasks,
                fmt.when(job.finished_at),
                fmt.seconds(job.predicted_makespan_s),
                fmt.seconds(job.makespan_s),
                fmt.number(makespan_ratio(job)),
                job.predicted_from,
            )
        )
        + "</tr>"
        for index, job in enumerate(load.jobs)
    )
    parts.append(_table(job_heads, rows))
    return "".join(parts)


def _table(heads: Sequence[str], rows: str) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _job_name(job: JobRunRecord) -> str:
    return f"job {fmt.short_id(job.job_id)} ({job.kind}, {job.tasks} tasks, {job.strategy})"


def _shares_svg(load: LoadSection, charted: Sequence[JobShares]) -> str:
    """Per node: its L_i, then its share of each charted job's executed tasks."""
    bar_h = 9
    row_h = 8 + bar_h * (1 + len(charted))
    left, right, top, bottom = 90, 30, 10, 24
    height = top + bottom + row_h * len(load.nodes)
    largest = max(
        [node.load_share or 0.0 for node in load.nodes]
        + [share for entry in charted for _, share in entry.shares.values()]
    )
    ticks = nice_ticks(0.0, max(largest, 0.01) * 100.0)
    xs = Scale(0.0, ticks[-1] if ticks[-1] > 0 else 100.0, left, WIDTH - right)
    marks: list[str] = []
    for tick in ticks:
        x = xs(tick)
        marks.append(
            element("line", {"class": "grid", "x1": x, "x2": x, "y1": top, "y2": height - bottom})
        )
        marks.append(text(x, height - 6, f"{tick:g} %", **{"text-anchor": "middle"}))
    for index, node in enumerate(load.nodes):
        y = top + row_h * index
        marks.append(text(left - 6, y + row_h / 2 + 4, node.node, **{"text-anchor": "end"}))
        bars = [("planned", node.load_share, "load share L_i")] + [
            (f"executed job{index}", entry.shares.get(node.node, (None, None))[1],
             f"executed share of job {fmt.short_id(entry.job_id)}")
            for index, entry in enumerate(charted)
        ]  # fmt: skip
        for number, (css, value, label) in enumerate(bars):
            offset = 4 + bar_h * number
            if value is None:
                continue
            width = xs(value * 100.0) - left
            marks.append(
                element(
                    "rect",
                    {
                        "class": f"data {css}",
                        "x": left,
                        "y": y + offset,
                        "width": max(width, 1.0),
                        "height": bar_h - 1,
                    },
                    title(f"{node.node} {label}: {fmt.percent(value)}"),
                )
            )
    marks.append(
        element("line", {"class": "axis", "x1": left, "x2": left, "y1": top, "y2": height - bottom})
    )
    return svg(WIDTH, height, "load shares", marks)


def _makespan_svg(shown: Sequence[JobRunRecord]) -> str:
    height, left, right, top, bottom = 240, 56, 20, 12, 26
    largest = max(
        [job.makespan_s or 0.0 for job in shown]
        + [job.predicted_makespan_s or 0.0 for job in shown]
    )
    ticks = nice_ticks(0.0, largest if largest > 0 else 1.0)
    ys = Scale(0.0, ticks[-1] if ticks[-1] > 0 else 1.0, height - bottom, top)
    marks: list[str] = []
    for tick in ticks:
        y = ys(tick)
        marks.append(
            element("line", {"class": "grid", "x1": left, "x2": WIDTH - right, "y1": y, "y2": y})
        )
        marks.append(text(left - 4, y + 4, fmt.seconds(tick), **{"text-anchor": "end"}))
    slot = (WIDTH - right - left) / max(len(shown), 1)
    bar = min(slot * 0.38, 28.0)
    for index, job in enumerate(shown):
        x = left + slot * index + slot / 2
        for dx, css, value, label in (
            (-bar, "predicted", job.predicted_makespan_s, "predicted"),
            (0.0, "measured", job.makespan_s, "measured"),
        ):
            if value is None:
                continue
            y = ys(value)
            marks.append(
                element(
                    "rect",
                    {
                        "class": f"data {css}",
                        "x": x + dx,
                        "y": y,
                        "width": bar,
                        "height": max(height - bottom - y, 1.0),
                    },
                    title(
                        f"job {fmt.short_id(job.job_id)} ({job.kind}) {label} makespan "
                        f"{fmt.seconds(value)}"
                    ),
                )
            )
        marks.append(text(x, height - 8, str(index + 1), **{"text-anchor": "middle"}))
    marks.append(
        element(
            "line",
            {
                "class": "axis",
                "x1": left,
                "x2": WIDTH - right,
                "y1": height - bottom,
                "y2": height - bottom,
            },
        )
    )
    return svg(WIDTH, height, "makespan predicted and measured", marks)


# ------------------------------------------------------------------- prediction, remediation


def _prediction(report: Report) -> str:
    prediction = report.prediction
    parts = ["<h2>Prediction</h2>"]
    if prediction.risks:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{_e(cell)}</td>"
                for cell in (
                    risk.node,
                    fmt.percent(risk.probability),
                    "-" if risk.horizon_s is None else format_duration(risk.horizon_s),
                    "-" if risk.at_risk is None else ("yes" if risk.at_risk else "no"),
                    risk.detail,
                )
            )
            + "</tr>"
            for risk in prediction.risks
        )
        parts.append(_table(("node", "P(failure)", "horizon", "at risk", "note"), rows))
    else:
        parts.append(f'<p class="missing">current risk: {_e(prediction.risk_message)}</p>')
    if prediction.alarms:
        rows = "".join(
            f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in prediction.alarms.items()
        )
        parts.append(
            "<p>alarms of the current model (its validation):</p>"
            + _table(("figure", "value"), rows)
        )
    else:
        parts.append(f'<p class="missing">alarms: {_e(prediction.alarm_message)}</p>')
    return "".join(parts)


def _remediation(report: Report) -> str:
    remediation = report.remediation
    if not remediation.actions:
        return f'<h2>Remediation</h2><p class="missing">{_e(remediation.message)}</p>'
    outcomes = sorted({o for counts in remediation.by_action.values() for o in counts})
    rows = "".join(
        f"<tr><td>{_e(action)}</td>"
        + "".join(f"<td>{counts.get(outcome, 0)}</td>" for outcome in outcomes)
        + "</tr>"
        for action, counts in remediation.by_action.items()
    )
    detail = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(cell)}</td>"
            for cell in (
                fmt.when(action.started_at),
                action.node,
                action.action,
                action.trigger or "",
                action.outcome or "",
                fmt.seconds(
                    None
                    if action.finished_at is None or action.started_at is None
                    else action.finished_at - action.started_at
                ),
            )
        )
        + "</tr>"
        for action in remediation.actions
    )
    return (
        f"<h2>Remediation</h2><p>{len(remediation.actions)} actions by type and outcome:</p>"
        + _table(("action", *outcomes), rows)
        + _table(("started", "node", "action", "trigger", "outcome", "took"), detail)
    )
