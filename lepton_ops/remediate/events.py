"""Failure predictions as Event-Driven Ansible events (the ``lepton.ops.failure_predictions``
event source is a thin adapter over :func:`prediction_events`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.lab import current_inventory
from lepton_ops.predict import current_risk
from lepton_ops.settings import default_state_dir
from lepton_ops.telemetry.collect import collect


def prediction_events(
    state_dir: str | Path | None = None,
    inventory: str | Path | None = None,
    threshold: float = 0.5,
    collect_first: bool = True,
) -> list[dict[str, Any]]:
    """One event per node whose probability of failing is at least ``threshold``, or,
    without a classifier, whose watched series alarmed (the streaming detector at its fleet
    threshold; the event names the series in ``anomaly_series``).

    With ``collect_first``, the fleet's telemetry is collected first (the lab's inventory
    when none is given and a lab is up).
    """
    if not 0 < float(threshold) <= 1:
        raise BadInput(f"threshold must be in (0, 1], got {threshold!r}")
    state = Path(state_dir).expanduser() if state_dir else default_state_dir()
    if collect_first:
        source = Path(inventory).expanduser() if inventory else current_inventory(state)
        if source is None:
            raise BadInput("no inventory: give 'inventory', or bring the lab up")
        collect(source, state)
    events = []
    for prediction in current_risk(state):
        probability = prediction.probability
        if prediction.stale:
            continue
        if probability is None:
            # No classifier: the streaming detector's alarms, at its own fleet threshold.
            if not prediction.at_risk:
                continue
        elif probability < threshold:
            continue
        body = prediction.to_dict()
        body["threshold"] = float(threshold)
        events.append({"lepton": body, "meta": {"hosts": prediction.node}})
    return events
