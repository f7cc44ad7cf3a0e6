"""The report's optional sources: the remediation audit, and the failure predictor.

Both are built by other parts of lepton-ops, possibly later than the report, so the
report reads them defensively and says what is missing instead of failing:

- **Remediation**: the store's remediation audit (:class:`RemediationRecord`). Without
  an action in the window: "no remediation recorded".
- **Current risk**: ``lepton_ops.predict.current_risk(state_dir)`` when it exists; it may
  return ``{node: probability}``, ``{node: {...}}`` or a list of objects or dicts with
  ``node`` and ``probability`` (or ``risk``). Absent, or raising: "no model trained yet".
- **Alarms**: the current model's validation (alarm episodes, false alarms, lead times),
  read through ``lepton_ops.predict.model_store`` when there is a model. Otherwise:
  "no predictor data".
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_ops.telemetry.history import HistoryStore
from lepton_ops.telemetry.records import RemediationRecord

NO_REMEDIATION = "no remediation recorded"
NO_MODEL = "no model trained yet"
NO_PREDICTOR = "no predictor data"
#: What a risk object (not a dict) is read for.
_RISK_FIELDS = (
    "node", "probability", "risk", "anomaly_score", "at_risk", "horizon_s", "stale", "failing_now",
)  # fmt: skip
#: What the report shows of a model's validation.
ALARM_KEYS = (
    "method",
    "incidents",
    "detected",
    "alarm_episodes",
    "false_alarms",
    "false_alarms_per_node_day",
    "median_lead_s",
    "precision",
    "recall",
)


# --------------------------------------------------------------------------- remediation


@dataclass(frozen=True)
class RemediationSection:
    actions: tuple[RemediationRecord, ...]
    #: ``{action: {outcome: count}}``
    by_action: dict[str, dict[str, int]]
    message: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "by_action": self.by_action,
            "actions": [action.to_dict() for action in self.actions],
        }


def remediation_section(
    store: HistoryStore, since: float | None, until: float | None
) -> RemediationSection:
    """The remediation actions started in ``[since, until]``, counted by action and outcome."""
    actions = tuple(store.remediations(since=since, until=until))
    counts: dict[str, Counter[str]] = {}
    for action in actions:
        counts.setdefault(action.action, Counter())[action.outcome or "unknown"] += 1
    by_action = {name: dict(sorted(c.items())) for name, c in sorted(counts.items())}
    message = None if actions else f"{NO_REMEDIATION} in the window"
    return RemediationSection(actions, by_action, message)


# --------------------------------------------------------------------------- the predictor


@dataclass(frozen=True)
class NodeRisk:
    node: str
    #: probability of failing within ``horizon_s`` (None: the model gave none, e.g. stale data)
    probability: float | None
    at_risk: bool | None
    horizon_s: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "probability": self.probability,
            "at_risk": self.at_risk,
            "horizon_s": self.horizon_s,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PredictionSection:
    risks: tuple[NodeRisk, ...]
    risk_message: str | None
    #: the current model's alarm figures (see :data:`ALARM_KEYS`), None without
    alarms: dict[str, Any] | None
    alarm_message: str | None

    def risk_of(self, node: str) -> NodeRisk | None:
        return next((risk for risk in self.risks if risk.node == node), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "current_risk": [risk.to_dict() for risk in self.risks],
            "current_risk_message": self.risk_message,
            "alarms": self.alarms,
            "alarms_message": self.alarm_message,
        }


def prediction_section(state_dir: Path) -> PredictionSection:
    risks, risk_message = current_risks(state_dir)
    alarms, alarm_message = alarm_figures(state_dir)
    return PredictionSection(risks, risk_message, alarms, alarm_message)


def current_risks(state_dir: Path) -> tuple[tuple[NodeRisk, ...], str | None]:
    """Each node's current risk from ``lepton_ops.predict.current_risk``, or why there is none."""
    # The predictor is another part of lepton-ops: whatever goes wrong there, even on
    # import, the report goes on without it.
    try:
        predict = importlib.import_module("lepton_ops.predict")
    except Exception as exc:
        return (), f"{NO_MODEL} (the predictor cannot be loaded: {_line(exc)})"
    function = getattr(predict, "current_risk", None)
    if not callable(function):
        return (), NO_MODEL
    try:
        raw = function(state_dir)
        risks = tuple(sorted(_risks(raw), key=lambda risk: risk.node))
    except Exception as exc:
        return (), f"{NO_MODEL} ({_line(exc)})"
    return risks, None if risks else f"{NO_MODEL} (the model judged no node)"


def alarm_figures(state_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The current model's validated alarm figures, or why there are none."""
    try:
        model_store = importlib.import_module("lepton_ops.predict.model_store")
    except Exception as exc:
        return None, f"{NO_PREDICTOR} (the predictor cannot be loaded: {_line(exc)})"
    load_current = getattr(model_store, "load_current", None)
    if not callable(load_current):
        return None, NO_PREDICTOR
    try:
        info = load_current(state_dir).predictor.info
    except Exception as exc:
        return None, f"{NO_PREDICTOR} ({_line(exc)})"
    validation = info.get("validation") if isinstance(info, Mapping) else None
    if not isinstance(validation, Mapping):
        raw = info.get("notes") if isinstance(info, Mapping) else None
        notes = "; ".join(str(note) for note in raw) if isinstance(raw, list) else ""
        return (
            None,
            f"{NO_PREDICTOR} (the current model has no alarm validation"
            f"{': ' if notes else ''}{notes})",
        )
    return {key: validation[key] for key in ALARM_KEYS if key in validation}, None


def _risks(raw: Any) -> Iterable[NodeRisk]:
    if isinstance(raw, Mapping):
        for node, value in raw.items():
            if isinstance(value, Mapping):
                yield _risk({"node": node, **value})
            elif isinstance(value, int | float) and not isinstance(value, bool):
                yield NodeRisk(str(node), _probability(value), None, None, "")
            else:
                yield _risk(_as_mapping(value), default_node=str(node))
        return
    for item in raw or ():
        yield _risk(_as_mapping(item))


def _as_mapping(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    to_dict = getattr(item, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping):
            return data
    return {name: getattr(item, name) for name in _RISK_FIELDS if hasattr(item, name)}


def _risk(data: Mapping[str, Any], default_node: str = "") -> NodeRisk:
    node = str(data.get("node") or default_node)
    if not node:
        raise ValueError("a risk without a node")
    value = data.get("probability", data.get("risk"))
    at_risk = data.get("at_risk")
    details = [
        label
        for label, key in (("stale data", "stale"), ("failing now", "failing_now"))
        if data.get(key)
    ]
    anomaly = _number(data.get("anomaly_score"))
    if anomaly is not None:
        details.append(f"anomaly score {anomaly:.3g}")
    return NodeRisk(
        node,
        _probability(value),
        None if at_risk is None else bool(at_risk),
        _number(data.get("horizon_s")),
        ", ".join(details),
    )


def _probability(value: Any) -> float | None:
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        return None
    return number


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
