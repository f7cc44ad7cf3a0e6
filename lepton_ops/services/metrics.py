"""The Prometheus metrics of a service: requests, latency, errors, shards, process RSS."""

from __future__ import annotations

import math
import os
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


def process_rss_bytes() -> float:
    """This process's resident set size from /proc/self/statm (NaN where there is none)."""
    try:
        fields = Path("/proc/self/statm").read_text(encoding="ascii").split()
        return float(int(fields[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return math.nan


class ServiceMetrics:
    """The Prometheus metrics of one app, in the app's own registry."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lepton_http_requests",
            "HTTP requests answered, by endpoint, method and status.",
            ["service", "endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lepton_http_request_seconds",
            "Time to answer an HTTP request, by endpoint and status.",
            ["service", "endpoint", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "lepton_http_errors",
            "HTTP requests answered with an error, by endpoint and class (4xx, 5xx).",
            ["service", "endpoint", "class"],
            registry=self.registry,
        )
        self.shards_done = Counter(
            "lepton_shards_done",
            "Shards done: run by a worker, or accepted by the aggregator.",
            ["service", "kind"],
            registry=self.registry,
        )
        self.duplicate_shards = Counter(
            "lepton_shards_duplicate",
            "Shard results ignored because that shard id already had one.",
            ["service", "kind"],
            registry=self.registry,
        )
        self.rss = Gauge(
            "lepton_process_resident_memory_bytes",
            "Resident set size of the service process (from /proc/self/statm).",
            ["service"],
            registry=self.registry,
        )
        self.rss.labels(service=service).set_function(process_rss_bytes)
        self.service = service

    def shard_done(self, kind: str) -> None:
        self.shards_done.labels(service=self.service, kind=kind).inc()

    def shard_duplicate(self, kind: str) -> None:
        self.duplicate_shards.labels(service=self.service, kind=kind).inc()

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(self.service, endpoint, method, code).inc()
        self.latency.labels(self.service, endpoint, code).observe(seconds)
        if status >= 400:
            self.errors.labels(self.service, endpoint, f"{status // 100}xx").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
