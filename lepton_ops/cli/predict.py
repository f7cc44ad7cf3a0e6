"""``lepton-ops predict``: each node's risk of failing soon, from its latest telemetry."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from lepton_ops.cli.model_train import open_store
from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, print_json
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.settings import Settings
from lepton_ops.telemetry import format_duration

if TYPE_CHECKING:
    from lepton_ops.detect.fleet import SeriesAlarm
    from lepton_ops.predict.predictor import NodePrediction


@with_settings
def predict_command(
    cfg: Settings,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="At risk at or above this (0 to 1) instead of the model's own threshold.",
            show_default=False,
        ),
    ] = None,
    node: Annotated[
        str | None, typer.Option("--node", "-n", help="Only this node.", show_default=False)
    ] = None,
) -> None:
    """Each node's probability of failing within the model's horizon, from its latest telemetry.

    Per node: the calibrated probability (none from a model trained without failures: then
    the anomaly score decides), the anomaly score, the horizon, whether it is at risk (at or
    above the model's threshold, or --threshold), the three features that raised the risk
    most, and how old the telemetry is. Stale telemetry (older than three windows) gives no
    probability: the node is flagged instead.

    The anomaly score is the streaming detector's: the loudest alarm, in the last window, of
    the node's watched series (service memory, disk, CPU, health, latency, reachability),
    which are named. Without a model ('lepton-ops model train'), or with one trained without
    failures, it alone decides, against one fleet threshold (0.8 unless --threshold).
    """
    from lepton_ops.predict.model_store import has_current, load_current, version_warning
    from lepton_ops.predict.predictor import detect_fleet, predict_fleet

    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise BadInput(f"--threshold must be between 0 and 1, got {threshold:g}")
    saved = load_current(cfg.state_dir) if has_current(cfg.state_dir) else None
    predictor = None if saved is None else saved.predictor
    now = time.time()
    with open_store(cfg.state_dir) as store:
        known = store.nodes()
        if not known:
            raise OperationFailed(
                "the telemetry store has no data yet: collect some with "
                "'lepton-ops telemetry collect'"
            )
        if node is not None and node not in known:
            raise BadInput(
                f"no telemetry for node {node!r} (nodes in the store: {', '.join(known)})"
            )
        chosen = None if node is None else [node]
        if predictor is None:
            predictions = detect_fleet(store, now, nodes=chosen, threshold=threshold)
        else:
            predictions = predict_fleet(store, predictor, now, nodes=chosen, threshold=threshold)
    stale = [p.node for p in predictions if p.stale]
    if stale:
        _warn(f"stale telemetry (no probability) for {', '.join(stale)}: is collection running?")
    if predictor is None or saved is None:
        _show_detector(predictions, now, cfg.json)
        return
    warning = version_warning(predictor.info)
    if warning:
        _warn(warning)
    if cfg.json:
        print_json(
            {
                "model": saved.path.name,
                "mode": predictor.mode,
                "horizon_s": predictor.horizon_s,
                "threshold": round(
                    predictions[0].threshold if predictions else predictor.threshold, 4
                ),
                "now": now,
                "nodes": [p.to_dict() for p in predictions],
            }
        )
        return
    limit = predictions[0].threshold if predictions else predictor.threshold
    what = "probability" if predictor.mode == "classifier" else "anomaly score"
    table = Table(
        title=f"failure within {format_duration(predictor.horizon_s)} "
        f"(at risk: {what} >= {limit:.2f}; model {saved.path.name})",
        title_justify="left",
    )
    table.add_column("node", no_wrap=True)
    for column in ("probability", "anomaly", "horizon"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("at risk", no_wrap=True)
    table.add_column("data age", justify="right", no_wrap=True)
    table.add_column("top features: value (+risk)", overflow="fold", ratio=1)
    # a contribution below this says nothing: probability points, or robust z (anomaly only)
    noticeable = 0.005 if predictor.mode == "classifier" else 1.0
    for p in predictions:
        if p.stale:
            verdict = Text("stale", style="yellow")
        elif p.at_risk:
            verdict = Text("YES" + (", failing" if p.failing_now else ""), style="bold red")
        else:
            verdict = Text(
                "failing now" if p.failing_now else "no", style="red" if p.failing_now else "green"
            )
        features = "\n".join(
            [
                f"{c.feature} {'-' if c.value is None else f'{c.value:.4g}'} "
                f"(+{c.contribution:.2f})"
                for c in p.top_features
                if c.contribution >= noticeable
            ]
            + [_alarm_text(alarm) for alarm in p.anomaly_series]
            + [_fleet_wide_text(alarm) for alarm in p.fleet_wide_series]
            + [_far_from_limit_text(alarm) for alarm in p.far_from_limit_series]
        )
        table.add_row(
            p.node,
            "-" if p.probability is None else f"{p.probability:.3f}",
            "-" if p.anomaly_score is None else f"{p.anomaly_score:.2f}",
            format_duration(p.horizon_s),
            verdict,
            "-" if p.data_age_s is None else f"{p.data_age_s:.0f}s",
            "-" if p.stale else features or Text("nothing stands out", style="dim"),
        )
    console.print(table)


def _alarm_text(alarm: SeriesAlarm) -> str:
    above = f" above the fleet's {alarm.fleet:.2f}" if alarm.fleet > 0 else ""
    return f"{alarm.series} {alarm.value:.4g} (alarm {alarm.score:.2f}{above})"


def _fleet_wide_text(alarm: SeriesAlarm) -> str:
    return (
        f"fleet-wide, not this node's: {alarm.series} {alarm.value:.4g} "
        f"(alarm {alarm.score:.2f}, the fleet's {alarm.fleet:.2f})"
    )


def _far_from_limit_text(alarm: SeriesAlarm) -> str:
    return f"new, far from its limit: {alarm.series} {alarm.value:.4g} (alarm {alarm.score:.2f})"


def _show_detector(predictions: list[NodePrediction], now: float, json_output: bool) -> None:
    """Without a model: each node's detector alarms."""
    from lepton_ops.detect.fleet import FLEET_THRESHOLD, RECENT_S

    limit = predictions[0].threshold if predictions else FLEET_THRESHOLD
    if json_output:
        print_json(
            {
                "model": None,
                "mode": "detector",
                "horizon_s": RECENT_S,
                "threshold": round(limit, 4),
                "now": now,
                "nodes": [p.to_dict() for p in predictions],
            }
        )
        return
    table = Table(
        title=f"anomaly alarms in the last {format_duration(RECENT_S)} (no model: at risk "
        f"at an alarm >= {limit:.2f})",
        title_justify="left",
    )
    for column in ("node", "anomaly", "at risk", "data age"):
        table.add_column(column, justify="left" if column == "node" else "right", no_wrap=True)
    table.add_column("alarming series: value (alarm)", overflow="fold", ratio=1)
    for p in predictions:
        if p.stale:
            verdict = Text("stale", style="yellow")
        elif p.at_risk or p.failing_now:
            verdict = Text(
                ("YES" if p.at_risk else "") + (", failing" if p.failing_now else ""),
                style="bold red",
            )
        else:
            verdict = Text("no", style="green")
        table.add_row(
            p.node,
            "-" if p.anomaly_score is None else f"{p.anomaly_score:.2f}",
            verdict,
            "-" if p.data_age_s is None else f"{p.data_age_s:.0f}s",
            "\n".join(
                [_alarm_text(alarm) for alarm in p.anomaly_series]
                + [_fleet_wide_text(alarm) for alarm in p.fleet_wide_series]
                + [_far_from_limit_text(alarm) for alarm in p.far_from_limit_series]
            )
            or Text("nothing stands out", style="dim"),
        )
    console.print(table)


def _warn(message: str) -> None:
    sys.stderr.write(f"lepton-ops: warning: {message}\n")
    sys.stderr.flush()
