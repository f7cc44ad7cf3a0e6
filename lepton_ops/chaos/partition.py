"""The timer that ends a partition: restores the node's address after the duration.

Started detached by :meth:`lepton_ops.chaos.controller.Chaos.inject`::

    python -m lepton_ops.chaos.partition --state-dir S --fault-id N --address A --duration D

``chaos stop`` ends the fault itself; the timer then finds it ended and does nothing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from lepton_ops.chaos.faults import partition_owner
from lepton_ops.lab import Lab
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.records import FaultOutcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_ops.chaos.partition")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--fault-id", type=int, required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args(argv)
    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + args.duration
    while not stopping and time.monotonic() < deadline:
        time.sleep(0.1)
    if stopping:
        return 0
    with HistoryStore(history_path(args.state_dir)) as store:
        # 'chaos stop' may have ended it (and restored the address) already; a later
        # partition of the same node is not this timer's to undo.
        if not any(f.id == args.fault_id for f in store.faults(active=True)):
            return 0
        # Only this fault's rules: another fault's cut of the same node stays.
        Lab(args.state_dir).firewall().restore(args.address, partition_owner(args.fault_id))
        store.end_fault(args.fault_id, FaultOutcome.FAILED, detail="address restored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
