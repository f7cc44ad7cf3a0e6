"""Drained nodes: workers that get no new shards for now, held by the aggregator.

A node is drained by remediation (the ladder's second step) or by a prediction that it
will fail within the horizon (a *predictive drain*, with an expiry: it lapses unless the
prediction renews it while the risk stays high). While drained, a worker is given no
shard - new jobs plan it with weight 0, running jobs hand its not-yet-started shards to
the others - and a shard it already runs is left to finish. Drains are kept in the job
store, so an aggregator that restarts keeps them.

A drain that would leave no worker to run shards is refused (:class:`DrainRefused`):
draining every node protects no job, it stops them all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lepton_ops.errors import BadInput, LeptonError
from lepton_ops.services.job_store import JobStore


class DrainRefused(LeptonError):
    """The drain would leave no worker undrained (HTTP 409)."""


@dataclass(frozen=True)
class Drain:
    node: str
    reason: str
    since: float
    #: None: until undrained
    until: float | None

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "reason": self.reason, "since": self.since, "until": self.until}


class DrainRegistry:
    """The aggregator's drains: thread-safe, persisted in the job store."""

    def __init__(
        self,
        store: JobStore,
        workers: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.workers = tuple(workers)
        self.clock = clock
        self._lock = threading.Lock()
        self._drains = {
            node: Drain(node, reason, since, until) for node, reason, since, until in store.drains()
        }

    def is_drained(self, node: str) -> bool:
        drain = self._drains.get(node)
        return drain is not None and drain.active(self.clock())

    def active(self) -> list[Drain]:
        now = self.clock()
        with self._lock:
            return [drain for drain in self._drains.values() if drain.active(now)]

    def drain(self, node: str, reason: str, ttl_s: float | None = None) -> Drain:
        """Drain ``node`` (again: the reason and expiry are replaced, ``since`` kept)."""
        if node not in self.workers:
            known = ", ".join(self.workers) or "none"
            raise BadInput(f"no worker named {node!r} (workers: {known})")
        if ttl_s is not None and not ttl_s > 0:
            raise BadInput(f"ttl_s must be more than 0 seconds, got {ttl_s!r}")
        now = self.clock()
        with self._lock:
            others = [
                name for name in self.workers if name != node and not self._drained_at(name, now)
            ]
            if not others:
                raise DrainRefused(
                    f"draining {node} would leave no worker to run shards: undrain another first"
                )
            previous = self._drains.get(node)
            since = previous.since if previous is not None and previous.active(now) else now
            drain = Drain(node, reason, since, None if ttl_s is None else now + ttl_s)
            self.store.put_drain(node, reason, drain.since, drain.until)
            self._drains[node] = drain
            return drain

    def undrain(self, node: str) -> bool:
        """Lift ``node``'s drain; True if it was drained."""
        with self._lock:
            was = self._drained_at(node, self.clock())
            self._drains.pop(node, None)
            self.store.delete_drain(node)
            return was

    def _drained_at(self, node: str, now: float) -> bool:
        drain = self._drains.get(node)
        return drain is not None and drain.active(now)
