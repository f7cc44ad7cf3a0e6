"""A worker's cancelled jobs: the shards of a cancelled job stop between tasks.

The aggregator cancels a job on a worker with ``DELETE /v1/shards/{job_id}``. A worker
runs several gunicorn processes and the request reaches one of them, so the cancel is
kept in two places: in the process that got it (seen at once), and as a marker file in
the worker's cancel directory, which every process of the worker checks (at most every
:data:`CHECK_INTERVAL_S` per running shard). A marker is named by the SHA-256 of the job
id (any text is a safe file name then) and is removed after :data:`KEEP_S`: by then
no shard of the job is running or arriving.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lepton_ops.errors import BadInput

#: A running shard looks for a cancel marker at most this often.
CHECK_INTERVAL_S = 0.05
#: Cancel markers older than this are removed (and forgotten in memory).
KEEP_S = 3600.0


def default_cancel_dir(name: str) -> Path:
    """Where a worker keeps its cancel markers when its config names no directory."""
    tag = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lepton-worker-{os.getuid()}-{tag}-cancelled"


class ShardCancels:
    """The jobs cancelled on this worker (shared by its processes through ``directory``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = directory.lstat()
        except OSError as exc:
            raise BadInput(f"cancel directory {directory} cannot be made: {exc}") from None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise BadInput(f"cancel directory {directory} is not a directory of this user")
        if stat.S_IMODE(info.st_mode) & 0o022:
            raise BadInput(
                f"cancel directory {directory} may be written by others (run: chmod 700 "
                f"{directory})"
            )
        self._cancelled: dict[str, float] = {}
        self._lock = threading.Lock()

    def cancel(self, job_id: str) -> None:
        """Mark ``job_id`` cancelled for every process of this worker."""
        now = time.time()
        with self._lock:
            self._cancelled[job_id] = now
        marker = self._marker(job_id)
        marker.touch(mode=0o600, exist_ok=True)
        self._forget_old(now)

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            if job_id in self._cancelled:
                return True
        if self._marker(job_id).exists():
            with self._lock:
                self._cancelled[job_id] = time.time()
            return True
        return False

    def checker(self, job_id: str) -> Callable[[], bool]:
        """What a running shard of ``job_id`` asks between tasks (cheap: the marker is
        looked for at most every CHECK_INTERVAL_S)."""
        next_look = 0.0

        def cancelled() -> bool:
            nonlocal next_look
            with self._lock:
                if job_id in self._cancelled:
                    return True
            now = time.monotonic()
            if now < next_look:
                return False
            next_look = now + CHECK_INTERVAL_S
            return self.is_cancelled(job_id)

        return cancelled

    def _marker(self, job_id: str) -> Path:
        return self.directory / hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest()

    def _forget_old(self, now: float) -> None:
        with self._lock:
            for job_id in [j for j, when in self._cancelled.items() if now - when > KEEP_S]:
                del self._cancelled[job_id]
        try:
            markers = list(self.directory.iterdir())
        except OSError:
            return
        for marker in markers:
            try:
                if now - marker.stat().st_mtime > KEEP_S:
                    marker.unlink(missing_ok=True)
            except OSError:
                continue


__all__ = ["CHECK_INTERVAL_S", "KEEP_S", "ShardCancels", "default_cancel_dir"]
