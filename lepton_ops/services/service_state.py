"""What a service app keeps about itself: its metrics and readiness checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask

from lepton_ops.services.metrics import ServiceMetrics

EXTENSION_KEY = "lepton_service"

ReadinessCheck = Callable[[], str | None]
"""Returns None when the service is ready, else the reason it is not."""


@dataclass
class ServiceState:
    """What :func:`create_base_app` keeps in ``app.extensions``."""

    service: str
    metrics: ServiceMetrics
    readiness: list[ReadinessCheck] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)


def service_state(app: Flask) -> ServiceState:
    state = app.extensions[EXTENSION_KEY]
    assert isinstance(state, ServiceState)
    return state
