"""The aggregator's configuration: its token and store files, its workers, its timeouts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds import MAX_ARTIFACT_BYTES
from lepton_ops.services.bodies import DEFAULT_MAX_CONTENT_LENGTH
from lepton_ops.services.config_files import (
    config_artifact_limit,
    config_int,
    config_number,
    config_optional_path,
    config_path,
)


@dataclass(frozen=True)
class WorkerSpec:
    """A worker as the aggregator sees it: name (as in the plan), URL, weight, speed."""

    name: str
    url: str
    weight: int
    #: Relative speed for the plan's predictions; None: weight / smallest weight.
    speed: float | None = None

    @classmethod
    def from_mapping(cls, data: object, index: int) -> WorkerSpec:
        where = f"config: workers[{index}]"
        if not isinstance(data, Mapping):
            raise BadInput(f"{where} must be a mapping with name, url, weight and speed")
        unknown = sorted(set(data) - {"name", "url", "weight", "speed"})
        if unknown:
            raise BadInput(f"{where}: unknown setting {', '.join(map(str, unknown))}")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{where}: name must be a non-empty string, got {name!r}")
        url = data.get("url")
        if not isinstance(url, str):
            raise BadInput(f"{where} ({name}): url must be a string, got {url!r}")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise BadInput(f"{where} ({name}): url {url!r} is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BadInput(f"{where} ({name}): url must be http(s)://host:port, got {url!r}")
        weight = data.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise BadInput(f"{where} ({name}): weight must be a whole number >= 0")
        speed = data.get("speed")
        if speed is not None:
            speed = config_number(data, "speed", 1.0)
        return cls(name=name, url=url.rstrip("/"), weight=weight, speed=speed)


@dataclass(frozen=True)
class AggregatorConfig:
    #: The controller's token (submit, drain, cancel: every endpoint).
    token_file: Path
    db_path: Path
    workers: tuple[WorkerSpec, ...]
    #: The aggregator's token towards the workers (None: ``token_file``, one token for
    #: everything). Presented to the aggregator itself it is refused (403).
    worker_token_file: Path | None = None
    #: The read-only token that may scrape ``GET /metrics`` (None: none).
    scrape_token_file: Path | None = None
    #: The fleet's CA certificate: the workers' https certificates are verified against it
    #: (None: the system's CAs; an https worker then fails verification, never plain http).
    ca_file: Path | None = None
    #: Seconds to wait for a worker to accept a connection.
    connect_timeout_s: float = 1.0
    #: Read timeout before the job has measured any speed (the first shards).
    first_read_timeout_s: float = 60.0
    #: Once speeds are measured: max(min, expected shard seconds * factor), at most max.
    min_read_timeout_s: float = 5.0
    read_timeout_factor: float = 4.0
    max_read_timeout_s: float = 600.0
    #: Consecutive failures (shards, or health probes) after which a worker is lost.
    max_failures: int = 2
    #: A worker whose shard has run this long gets its /healthz probed, this often.
    health_interval_s: float = 1.0
    #: How long a health probe may take before it counts as a miss.
    health_timeout_s: float = 1.0
    retry_delay_s: float = 0.1
    #: How often an idle worker thread looks for work again.
    poll_s: float = 0.02
    #: Resume the store's running jobs when the app starts.
    resume: bool = True
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    #: The largest artifact accepted (``PUT /v1/artifacts``); larger is 413.
    max_artifact_bytes: int = MAX_ARTIFACT_BYTES
    #: Artifact uploads read at once (each holds its body in memory until stored).
    max_artifact_uploads: int = 2

    def __post_init__(self) -> None:
        names = [worker.name for worker in self.workers]
        if not names:
            raise BadInput("config: the aggregator needs at least one worker")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise BadInput(f"config: worker {', '.join(duplicates)} is listed twice")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AggregatorConfig:
        known = {
            "token_file",
            "worker_token_file",
            "scrape_token_file",
            "ca_file",
            "db_path",
            "workers",
            "connect_timeout_s",
            "first_read_timeout_s",
            "min_read_timeout_s",
            "read_timeout_factor",
            "max_read_timeout_s",
            "max_failures",
            "health_interval_s",
            "health_timeout_s",
            "retry_delay_s",
            "poll_s",
            "resume",
            "max_content_length",
            "max_artifact_bytes",
            "max_artifact_uploads",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInput(f"config: unknown aggregator setting {', '.join(unknown)}")
        workers = data.get("workers")
        if not isinstance(workers, list | tuple):
            raise BadInput("config: workers must be a list of {name, url, weight, speed}")
        resume = data.get("resume", True)
        if not isinstance(resume, bool):
            raise BadInput(f"config: resume must be true or false, got {resume!r}")
        return cls(
            token_file=config_path(data, "token_file"),
            worker_token_file=config_optional_path(data, "worker_token_file"),
            scrape_token_file=config_optional_path(data, "scrape_token_file"),
            ca_file=config_optional_path(data, "ca_file"),
            db_path=config_path(data, "db_path"),
            workers=tuple(WorkerSpec.from_mapping(item, i) for i, item in enumerate(workers)),
            connect_timeout_s=config_number(data, "connect_timeout_s", 1.0),
            first_read_timeout_s=config_number(data, "first_read_timeout_s", 60.0),
            min_read_timeout_s=config_number(data, "min_read_timeout_s", 5.0),
            read_timeout_factor=config_number(data, "read_timeout_factor", 4.0),
            max_read_timeout_s=config_number(data, "max_read_timeout_s", 600.0),
            max_failures=config_int(data, "max_failures", 2),
            health_interval_s=config_number(data, "health_interval_s", 1.0),
            health_timeout_s=config_number(data, "health_timeout_s", 1.0),
            retry_delay_s=config_number(data, "retry_delay_s", 0.1, strict=False),
            poll_s=config_number(data, "poll_s", 0.02),
            resume=resume,
            max_content_length=config_int(
                data, "max_content_length", DEFAULT_MAX_CONTENT_LENGTH, minimum=1024
            ),
            max_artifact_bytes=config_artifact_limit(data),
            max_artifact_uploads=config_int(data, "max_artifact_uploads", 2),
        )

    def worker(self, name: str) -> WorkerSpec | None:
        return next((worker for worker in self.workers if worker.name == name), None)


__all__ = ["AggregatorConfig", "WorkerSpec"]
