"""``lepton-ops model train|evaluate|show``: the failure predictor's model, trained from the
telemetry store, judged on held-out failures, and described."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, print_json
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.settings import Settings
from lepton_ops.telemetry import HistoryStore, format_duration, history_path, parse_duration

if TYPE_CHECKING:
    from lepton_ops.predict.dataset import Dataset
    from lepton_ops.predict.metrics import Score
    from lepton_ops.predict.model import TrainOptions

SinceOpt = Annotated[str, typer.Option("--since", help="Use telemetry this recent: 30m, 1h, 7d...")]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until", help="...up to this long ago (default: now), e.g. 10m.", show_default=False
    ),
]
HorizonOpt = Annotated[
    str, typer.Option("--horizon", help="Predict failures within this long: 60s, 5m...")
]
WindowOpt = Annotated[
    str, typer.Option("--window", help="Each prediction reads this much recent telemetry.")
]

_TRAIN_HELP = """Train the failure predictor on the stored telemetry; save it as the current model.

Labels come from the faults table (chaos runs: the moment each node failed) and from
health-check and unreachable incidents no fault explains. With at least two failures the
telemetry could have announced, a calibrated classifier is trained and its alarm
threshold chosen on out-of-fold predictions; otherwise only the anomaly detector is
(and the output says so). Models are kept under STATE_DIR/models/, with their SHA-256.
"""

_EVALUATE_HELP = """Train on the earlier part of the telemetry, judge on the later part.

The split is by time, never random: the last --held-out share of the failures is held
out, the model trains on what came before them and picks its alarm threshold there. On
the held-out part, the model and two baselines (memory or disk > 90 %; predict_linear-style
extrapolation to 100 % within the horizon) are scored alike: precision, recall and F1 of
alarm episodes, false alarms per node-day, median lead time, per fault type. An alarm
later than --min-lead before the failure is a miss. Nothing is saved.
"""


def register(app: typer.Typer) -> None:
    """Add ``train``, ``evaluate`` and ``show`` to the ``model`` sub-app."""
    app.command("train", help=_TRAIN_HELP)(train_command)
    app.command("evaluate", help=_EVALUATE_HELP)(evaluate_command)
    app.command("show")(show_command)
    app.command("install-starter")(install_starter_command)


@with_settings
def train_command(
    cfg: Settings,
    since: SinceOpt = "1h",
    until: UntilOpt = None,
    horizon: HorizonOpt = "60s",
    window: WindowOpt = "120s",
) -> None:
    from lepton_ops.predict.model import train
    from lepton_ops.predict.model_store import save_predictor

    options = _options(horizon, window)
    dataset = _dataset(cfg, since, until, options)
    predictor = train(dataset, options)
    saved = save_predictor(cfg.state_dir, predictor)
    training = predictor.info.get("training", {})
    validation = predictor.info.get("validation")
    notes = list(predictor.info.get("notes", []))
    if cfg.json:
        print_json(
            {
                "model": str(saved.path),
                "sha256": saved.sha256,
                "mode": predictor.mode,
                "horizon_s": predictor.horizon_s,
                "window_s": predictor.window_s,
                "threshold": round(predictor.threshold, 4),
                "training": training,
                "validation": validation,
                "notes": notes,
            }
        )
        return
    kinds = ", ".join(f"{k} {n}" for k, n in training.get("failures_by_kind", {}).items())
    console.print(
        f"trained {saved.path.name} ({predictor.mode}) on {training.get('trainable')} samples "
        f"of {training.get('nodes')} nodes, {_clock(training.get('since'))} to "
        f"{_clock(training.get('until'))}: {training.get('failures')} failures"
        f"{f' ({kinds})' if kinds else ''}, {training.get('learnable_failures')} that the "
        "telemetry could announce",
        highlight=False,
    )
    what = "probability" if predictor.mode == "classifier" else "anomaly score"
    console.print(
        f"horizon {format_duration(predictor.horizon_s)}, window "
        f"{format_duration(predictor.window_s)}, alarm when the {what} >= "
        f"{predictor.threshold:.3f}",
        highlight=False,
    )
    if isinstance(validation, dict):
        console.print(
            f"validation ({validation.get('method')}): {_score_line(validation)}", highlight=False
        )
    for note in notes:
        console.print(f"note: {note}", style="yellow", highlight=False)
    console.print(f"saved {saved.path} (sha256 {saved.sha256[:16]}...)", highlight=False)


@with_settings
def evaluate_command(
    cfg: Settings,
    since: SinceOpt = "24h",
    until: UntilOpt = None,
    horizon: HorizonOpt = "60s",
    window: WindowOpt = "120s",
    min_lead: Annotated[
        str,
        typer.Option("--min-lead", help="An alarm later than this before the failure is a miss."),
    ] = "10s",
    held_out: Annotated[
        float, typer.Option("--held-out", help="Share of the failures held out (the latest ones).")
    ] = 0.4,
) -> None:
    from lepton_ops.predict.evaluate import evaluate

    if not 0.0 < held_out < 1.0:
        raise BadInput(f"--held-out must be between 0 and 1 (a share), got {held_out:g}")
    options = _options(horizon, window, min_lead)
    dataset = _dataset(cfg, since, until, options)
    result = evaluate(dataset, options, held_out)
    data = result.to_dict()
    if cfg.json:
        print_json(data)
        return
    split = data["split"]
    console.print(
        f"trained on {split['train']['samples']} samples with {split['train']['failures']} "
        f"failures up to {_clock(split['train']['until'])}; judged on "
        f"{split['test']['samples']} later samples with {split['test']['failures']} failures "
        f"({result.model.node_days * 24:.2f} node-hours); alarm threshold "
        f"{data['threshold']:.3f} ({data['mode']})",
        highlight=False,
    )
    console.print(_methods_table(result.model, result.baselines))
    console.print(_fault_table(result.model, result.baselines))
    for note in data["notes"]:
        console.print(f"note: {note}", style="yellow", highlight=False)


@with_settings
def install_starter_command(cfg: Settings) -> None:
    """Make the lab's starter model (shipped with lepton-ops, trained on a chaos campaign in
    the embedded lab) the current model: the lab predicts before it has a history."""
    from lepton_ops.predict.model_store import install_starter

    cfg.ensure_state_dir()
    saved = install_starter(cfg.state_dir)
    if cfg.json:
        print_json({"model": str(saved.path), "sha256": saved.sha256})
        return
    console.print(
        f"installed the lab's starter model as {saved.path} (sha256 {saved.sha256[:16]}...)"
    )


@with_settings
def show_command(cfg: Settings) -> None:
    """The current model: what it was trained on, how it validated, the saved versions."""
    from lepton_ops.predict.model_store import load_current, saved_models, version_warning

    saved = load_current(cfg.state_dir)
    predictor = saved.predictor
    info = predictor.info
    data: dict[str, Any] = {
        "model": str(saved.path),
        "sha256": saved.sha256,
        "mode": predictor.mode,
        "horizon_s": predictor.horizon_s,
        "window_s": predictor.window_s,
        "threshold": predictor.threshold,
        "features": list(predictor.features),
        **{
            key: info.get(key)
            for key in ("created_at", "training", "validation", "options", "versions", "notes")
        },
        "models": saved_models(cfg.state_dir),
    }
    warning = version_warning(info)
    if warning:
        sys.stderr.write(f"lepton-ops: warning: {warning}\n")
    if cfg.json:
        print_json(data)
        return
    table = Table(
        title=f"current model: {saved.path.name}", title_justify="left", show_header=False
    )
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    training = info.get("training") or {}
    rows = [
        ("mode", predictor.mode),
        ("created", _clock(info.get("created_at"))),
        (
            "horizon / window",
            f"{format_duration(predictor.horizon_s)} / {format_duration(predictor.window_s)}",
        ),
        ("threshold", f"{predictor.threshold:.4f}"),
        (
            "trained on",
            f"{_clock(training.get('since'))} to {_clock(training.get('until'))}, "
            f"{training.get('trainable')} samples, {training.get('nodes')} nodes",
        ),
        (
            "failures",
            ", ".join(f"{k} {n}" for k, n in training.get("failures_by_kind", {}).items())
            or "none",
        ),
        ("validation", _score_line(info["validation"]) if info.get("validation") else "none"),
        ("features", ", ".join(predictor.features)),
        ("versions", ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())),
        ("sha256", saved.sha256),
        ("saved models", str(len(data["models"]))),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    for note in info.get("notes") or []:
        table.add_row("note", str(note))
    console.print(table)


# --------------------------------------------------------------------------- helpers


def _options(horizon: str, window: str, min_lead: str | None = None) -> TrainOptions:
    from lepton_ops.predict.model import TrainOptions

    options = TrainOptions(horizon_s=parse_duration(horizon), window_s=parse_duration(window))
    if min_lead is not None:
        options = replace(options, min_lead_s=parse_duration(min_lead))
    options.check()
    return options


def _dataset(cfg: Settings, since: str, until: str | None, options: TrainOptions) -> Dataset:
    from lepton_ops.predict.dataset import build_dataset

    now = time.time()
    start = now - parse_duration(since)
    end = None if until is None else now - parse_duration(until)
    if end is not None and end <= start:
        raise BadInput(f"--until {until} is not after --since {since}: nothing in between")
    with open_store(cfg.state_dir) as store:
        return build_dataset(
            store, since=start, until=end, horizon_s=options.horizon_s, window_s=options.window_s
        )


def open_store(state_dir: Path) -> HistoryStore:
    """The telemetry store of ``state_dir``; OperationFailed if there is none yet."""
    path = history_path(state_dir)
    if not path.is_file():
        raise OperationFailed(
            f"no telemetry store at {path}: collect telemetry first with "
            "'lepton-ops telemetry collect'"
        )
    return HistoryStore(path, read_only=True)


def _clock(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _fmt(value: Any, template: str = "{:.2f}") -> str:
    return "-" if value is None else template.format(value)


def _score_line(score: dict[str, Any]) -> str:
    return (
        f"recall {_fmt(score.get('recall'))}, precision {_fmt(score.get('precision'))}, "
        f"F1 {_fmt(score.get('f1'))}, {_fmt(score.get('false_alarms_per_node_day'))} false "
        f"alarms per node-day, median lead {_fmt(score.get('median_lead_s'), '{:.0f} s')} "
        f"({score.get('detected')} of {score.get('incidents')} failures announced)"
    )


def _methods_table(model: Score, baselines: dict[str, Score]) -> Table:
    table = Table(
        title="held-out failures (hit: announced in time; false: false alarms of all alarms; "
        "FA/day: false alarms per node-day)",
        title_justify="left",
    )
    table.add_column("method", no_wrap=True)
    for column in ("F1", "prec", "recall", "hit", "lead", "false", "FA/day"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, score in (("model", model), *baselines.items()):
        table.add_row(
            name,
            _fmt(score.f1),
            _fmt(score.precision),
            _fmt(score.recall),
            f"{score.detected}/{score.incidents}",
            _fmt(score.median_lead_s, "{:.0f}s"),
            f"{score.false_alarms}/{score.alarm_episodes}",
            _fmt(score.false_alarms_per_node_day, "{:.1f}"),
            style="bold" if name == "model" else None,
        )
    return table


def _fault_table(model: Score, baselines: dict[str, Score]) -> Table:
    table = Table(
        title="the model by fault type (thr, lin: F1 of the two baselines)", title_justify="left"
    )
    table.add_column("fault", no_wrap=True)
    for column in ("n", "hit", "prec", "recall", "F1", "lead", "false", "thr", "lin"):
        table.add_column(column, justify="right", no_wrap=True)
    for kind, score in sorted(model.by_kind.items()):
        others = [baselines[name].by_kind.get(kind) for name in ("threshold", "predict_linear")]
        table.add_row(
            kind,
            str(score.incidents),
            str(score.detected),
            _fmt(score.precision),
            _fmt(score.recall),
            _fmt(score.f1),
            _fmt(score.median_lead_s, "{:.0f}s"),
            str(score.false_alarms),
            *(_fmt(other.f1) if other is not None else "-" for other in others),
        )
    return table
