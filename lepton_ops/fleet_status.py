"""The fleet on one screen (``lepton-ops status``): each node's health, weight, drain or
cordon, risk and last remediation, gathered from where each of them lives.

- **Health**: each service's ``/healthz`` (no token needed) asked over HTTP at once, with
  a short timeout; the last telemetry sample says when the node was last seen and
  whether it answered then.
- **Weight and roles**: the inventory.
- **Drained**: the aggregator's drain list (needs the controller's token; left unknown
  when it cannot be asked). **Cordoned**: the remediation audit log.
- **Risk**: the current model's prediction, with the feature that raised it most; with
  no model, nothing is loaded (scikit-learn is imported only when there is a model).
- **Last remediation**: the audit log.

The store is opened read-only: ``status`` writes nothing.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from lepton_ops.errors import BadInput, LeptonError
from lepton_ops.inventory import load_fleet
from lepton_ops.telemetry.catalogue import REACHABLE
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.pull import ServiceTarget, service_targets, targets_verify
from lepton_ops.telemetry.records import RemediationRecord

#: Seconds a service has to answer its /healthz.
PROBE_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class ServiceHealth:
    service: str
    #: True: /healthz answered 200; False: it did not (the error says why)
    healthy: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "healthy": self.healthy, "error": self.error}


@dataclass(frozen=True)
class Risk:
    #: the probability (classifier) or anomaly score the model compares with its threshold
    value: float | None
    at_risk: bool
    top_feature: str | None
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "at_risk": self.at_risk,
            "top_feature": self.top_feature,
            "stale": self.stale,
        }


@dataclass(frozen=True)
class NodeState:
    name: str
    address: str
    weight: int
    roles: tuple[str, ...]
    services: tuple[ServiceHealth, ...] = ()
    #: the last telemetry sample of the node, and whether the node answered it
    last_seen_at: float | None = None
    reachable: bool | None = None
    #: None: the aggregator could not be asked
    drained: bool | None = None
    cordoned: bool = False
    risk: Risk | None = None
    last_action: RemediationRecord | None = None

    @property
    def healthy(self) -> bool | None:
        """True when every service answered its /healthz; None when none was probed."""
        if not self.services:
            return None
        return all(service.healthy for service in self.services)

    def to_dict(self) -> dict[str, Any]:
        action = self.last_action
        return {
            "node": self.name,
            "address": self.address,
            "weight": self.weight,
            "roles": list(self.roles),
            "healthy": self.healthy,
            "services": [service.to_dict() for service in self.services],
            "last_seen_at": self.last_seen_at,
            "reachable": self.reachable,
            "drained": self.drained,
            "cordoned": self.cordoned,
            "risk": None if self.risk is None else self.risk.to_dict(),
            "last_action": None
            if action is None
            else {
                "action": action.action,
                "outcome": action.outcome,
                "trigger": action.trigger,
                "started_at": action.started_at,
                "finished_at": action.finished_at,
            },
        }


@dataclass(frozen=True)
class FleetStatus:
    at: float
    inventory: Path
    nodes: tuple[NodeState, ...]
    #: the current model's file name, None without one
    model: str | None = None
    #: what could not be read, one line each (the rest is shown all the same)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.at,
            "inventory": str(self.inventory),
            "model": self.model,
            "nodes": [node.to_dict() for node in self.nodes],
            "notes": list(self.notes),
        }


Probe = Callable[[Sequence[ServiceTarget], float], dict[ServiceTarget, ServiceHealth]]


def probe_health(
    targets: Sequence[ServiceTarget],
    timeout: float = PROBE_TIMEOUT_S,
    verify: ssl.SSLContext | bool = True,
) -> dict[ServiceTarget, ServiceHealth]:
    """Each service's ``/healthz``, asked at once (no token: the endpoint is public);
    https certificates are checked with ``verify`` (the fleet's CA)."""
    import httpx

    if not targets:
        return {}
    with httpx.Client(timeout=timeout, trust_env=False, verify=verify) as client:

        def ask(target: ServiceTarget) -> ServiceHealth:
            try:
                answer = client.get(f"{target.url}/healthz")
            except httpx.HTTPError as exc:
                return ServiceHealth(target.service, False, type(exc).__name__)
            if answer.status_code != 200:
                return ServiceHealth(target.service, False, f"HTTP {answer.status_code}")
            return ServiceHealth(target.service, True)

        with ThreadPoolExecutor(max_workers=min(len(targets), 32)) as pool:
            return dict(zip(targets, pool.map(ask, targets), strict=True))


def _untrusted(
    targets: Sequence[ServiceTarget], timeout: float
) -> dict[ServiceTarget, ServiceHealth]:
    return {target: ServiceHealth(target.service, False, "no CA certificate") for target in targets}


def fleet_status(
    state_dir: Path,
    inventory: Path,
    *,
    probe: Probe | None = None,
    timeout: float = PROBE_TIMEOUT_S,
    drained: Callable[[Path, Path], set[str]] | None = None,
    now: float | None = None,
) -> FleetStatus:
    """Every node of ``inventory`` as it is now (see the module's description)."""
    from lepton_ops.remediate.run import cordons_in, drained_nodes

    now = time.time() if now is None else now
    fleet = load_fleet(inventory)
    notes: list[str] = []
    targets = service_targets(fleet)
    if probe is None:
        try:
            probe = partial(probe_health, verify=targets_verify(state_dir, targets))
        except BadInput as exc:  # no CA yet (never deployed): no service can be trusted
            notes.append(f"health unknown: {exc}")
            probe = _untrusted
    health = probe(targets, timeout)
    with HistoryStore(history_path(state_dir), read_only=True) as store:
        if not store.exists:
            notes.append("no telemetry yet: run 'lepton-ops telemetry collect'")
        latest = store.latest()
        audit = store.remediations()
    seen = {row.node: row for row in latest if row.metric == REACHABLE.name}
    cordons = cordons_in(audit)
    last_actions = {record.node: record for record in audit}  # oldest first: the last wins
    try:
        drains: set[str] | None = (drained or drained_nodes)(state_dir, inventory)
    except LeptonError as exc:  # no token yet (never deployed)
        drains = None
        notes.append(f"drains unknown: {exc}")
    model, risks = _risks(state_dir, now, notes)
    nodes = []
    for node in fleet.nodes:
        sample = seen.get(node.name)
        nodes.append(
            NodeState(
                name=node.name,
                address=node.address,
                weight=node.weight,
                roles=node.groups,
                services=tuple(health[t] for t in targets if t.node == node.name and t in health),
                last_seen_at=None if sample is None else sample.ts,
                reachable=None if sample is None else sample.value > 0,
                drained=None if drains is None else node.name in drains,
                cordoned=node.name in cordons,
                risk=risks.get(node.name),
                last_action=last_actions.get(node.name),
            )
        )
    return FleetStatus(now, fleet.source, tuple(nodes), model, tuple(notes))


def _risks(state_dir: Path, now: float, notes: list[str]) -> tuple[str | None, dict[str, Risk]]:
    """The current model's name and each node's risk; nothing (and no sklearn) without one."""
    from lepton_ops.predict.model_store import has_current

    if not has_current(state_dir):
        notes.append("no model: 'lepton-ops model install-starter' or 'model train'")
        return None, {}
    from lepton_ops.predict.model_store import load_current
    from lepton_ops.predict.predictor import predict_fleet

    try:
        saved = load_current(state_dir)
        with HistoryStore(history_path(state_dir), read_only=True) as store:
            predictions = predict_fleet(store, saved.predictor, now)
    except LeptonError as exc:
        notes.append(f"risk unknown: {exc}")
        return None, {}
    risks = {}
    for p in predictions:
        value = p.probability if p.probability is not None else p.anomaly_score
        top = max(p.top_features, key=lambda c: c.contribution, default=None)
        risks[p.node] = Risk(
            value=None if value is None else round(value, 4),
            at_risk=p.at_risk,
            top_feature=None if top is None or top.contribution <= 0 else top.feature,
            stale=p.stale,
        )
    return saved.path.name, risks
