"""Silencing what Ansible prints while it reads an inventory, safely from any thread.

``contextlib.redirect_stdout`` swaps the process-wide ``sys.stdout``: two threads that
read inventories at once (the telemetry sampler of a chaos campaign and its main loop,
the job load and the passes of a benchmark) interleave their swaps, and the last one
out can leave ``sys.stdout`` pointing at a discarded buffer for good - every later line
of the program vanishes. Here one lock keeps the swaps nested, and while a thread is
silenced, writes from every *other* thread still reach the real streams.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_LOCK = threading.RLock()


class _SilentForOneThread(io.TextIOBase):
    """Stands in for ``stream``: drops the writes of one thread, passes on the others'."""

    def __init__(self, stream: TextIO, thread: int) -> None:
        super().__init__()
        self._stream = stream
        self._thread = thread

    def write(self, text: str) -> int:
        if threading.get_ident() == self._thread:
            return len(text)
        return self._stream.write(text)

    def flush(self) -> None:
        if threading.get_ident() != self._thread:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def ansible_silenced() -> Iterator[None]:
    """Drop what the calling thread prints to stdout and stderr inside the block."""
    with _LOCK:
        saved = sys.stdout, sys.stderr
        me = threading.get_ident()
        sys.stdout = _SilentForOneThread(saved[0], me)
        sys.stderr = _SilentForOneThread(saved[1], me)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved
