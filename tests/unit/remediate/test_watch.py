"""``watch``: cycles until SIGTERM, and a service that stops answering starts a cycle early;
playbook runs inside it leave the signals to the loop."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lepton_ops.gateway import runner
from lepton_ops.remediate import loop
from lepton_ops.remediate.policy import PolicyConfig


def test_sigterm_stops_the_loop_between_cycles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cycles: list[bool] = []

    def fake_cycle(*args: Any, **kwargs: Any) -> str:
        # What a playbook run sees: the caller owns the signals.
        cycles.append(runner._caller_handles_signals.is_set())
        return "done"

    monkeypatch.setattr(loop, "cycle", fake_cycle)
    monkeypatch.setattr(loop, "all_healthy", lambda *a: True)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    count = loop.watch(tmp_path, tmp_path / "inv.yml", PolicyConfig(), 0.1, health_every_s=0.02)
    assert time.monotonic() - started < 5
    assert count == len(cycles) >= 2 and all(cycles)
    assert not runner._caller_handles_signals.is_set()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(
        signal.getsignal(signal.SIGTERM)
    )


def test_a_service_that_stops_answering_starts_a_cycle_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    when: list[float] = []
    monkeypatch.setattr(loop, "cycle", lambda *a, **k: when.append(time.monotonic()))
    answers = iter([True, False, True, True, True, True, True, True])
    monkeypatch.setattr(loop, "all_healthy", lambda *a: next(answers, True))
    loop.watch(tmp_path, tmp_path / "i.yml", PolicyConfig(), 60, health_every_s=0.05,
               max_cycles=2)  # fmt: skip
    # The interval is a minute; the second cycle came after two health checks.
    assert len(when) == 2 and when[1] - when[0] < 5
