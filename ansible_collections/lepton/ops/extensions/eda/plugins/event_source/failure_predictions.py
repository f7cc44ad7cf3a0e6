# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""lepton.ops.failure_predictions: an Event-Driven Ansible source of failure predictions.

It emits one event per node whose predicted probability of failing within the model's
horizon is at or above ``threshold``, every ``interval`` seconds: each pass collects the
fleet's telemetry (``collect: true``, through the lepton.ops.telemetry playbook) and runs
the trained predictor of the lepton-ops state directory. Without a trained model (or with
one trained without failures), the streaming detector decides: an event per node whose
watched series alarmed at the detector's fleet threshold, above what its peers show on the
same series at that time, the series in ``anomaly_series`` (a change on most nodes at once
is in ``fleet_wide_series``, and raises no event). A thin adapter over lepton_ops, which
must be installed where ansible-rulebook runs.

Arguments:
    state_dir:  the lepton-ops state directory (default: lepton-ops' own default).
    inventory:  the inventory to collect from (default: the lab's, when one is up).
    threshold:  probability at or above which a node is reported (default 0.5).
    interval:   seconds between passes (default 10).
    collect:    collect telemetry before each pass (default true).
    once:       one pass, then stop (default false): for tests and cron-like use.

Each event::

    {"lepton": {"node", "probability", "anomaly_score", "horizon_s", "threshold",
                "top_features": [{"name", "value", "contribution"}], "data_age_s",
                "anomaly_series": [{"series", "score", "ts", "value", "fleet"}],
                "fleet_wide_series": [...]},
     "meta": {"hosts": "<node>"}}

Example rulebook: extensions/eda/rulebooks/remediate_predicted_failures.yml.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """Put one event per at-risk node on ``queue`` each pass."""
    try:
        from lepton_ops.remediate.events import prediction_events
    except ImportError as error:
        raise ImportError(
            "lepton.ops.failure_predictions needs the lepton-ops library in the Python that runs "
            "ansible-rulebook: python -m pip install lepton-ops (the version named in the "
            "collection's requirements.txt)"
        ) from error

    interval = float(args.get("interval", 10))
    options = {
        "state_dir": args.get("state_dir"),
        "inventory": args.get("inventory"),
        "threshold": float(args.get("threshold", 0.5)),
        "collect_first": bool(args.get("collect", True)),
    }
    while True:
        events = await asyncio.to_thread(prediction_events, **options)
        for event in events:
            await queue.put(event)
        if args.get("once"):
            return
        await asyncio.sleep(interval)


if __name__ == "__main__":
    # A quick look without ansible-rulebook: print one pass's events.

    class _Printer:
        async def put(self, event: Any) -> None:
            print(event)

    asyncio.run(main(_Printer(), {"once": True}))  # type: ignore[arg-type]
