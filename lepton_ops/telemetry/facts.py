"""From one node's collection outcome to samples and incidents.

A collection asks every node for its facts; each node ends in one
:class:`NodeOutcome`:

- ``ok``: it answered with facts of the right shape. Every catalogue metric the facts
  hold becomes a sample stamped with the facts' own timestamp; values the node could not
  read (null) are skipped, never stored as 0. Each service whose health check failed
  becomes a ``health_check_failed`` incident naming the service.
- ``unreachable``: it did not answer. It gets one sample ``lepton_node_reachable`` = 0
  and an ``unreachable`` incident with the error text.
- ``invalid``: it answered, but its facts do not have the shape of the schema
  (:mod:`lepton_ops.telemetry.facts_schema`). Half-trusted numbers would mislead the predictor,
  so none are kept: the node gets ``lepton_node_reachable`` = 1 (it did answer) and a
  ``facts_invalid`` incident whose detail is the one-line reason.

Malformed facts are thus *recorded*, not raised (:meth:`NodeOutcome.from_facts`): one
node's bad facts never cost the other nodes their samples. :func:`node_samples` is the
strict form for a caller that holds one node's facts and wants BadInput instead.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from lepton_ops.errors import BadInput
from lepton_ops.telemetry.catalogue import (
    REACHABLE,
    SCOPE_SOURCES,
    MetricSpec,
    Scope,
    by_scope,
)
from lepton_ops.telemetry.facts_schema import check_facts

#: Labels of a series besides ``node``: sorted ``(name, value)`` pairs.
Labels = tuple[tuple[str, str], ...]


class NodeStatus(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    INVALID = "invalid"


class IncidentKind(StrEnum):
    UNREACHABLE = "unreachable"
    HEALTH_CHECK_FAILED = "health_check_failed"
    FACTS_INVALID = "facts_invalid"


class Sample(NamedTuple):
    # A NamedTuple, not a dataclass: a collection makes ~10^4 of them, and the store
    # unpacks them straight into rows.
    node: str
    metric: str
    labels: Labels
    ts: float
    value: float


@dataclass(frozen=True)
class Incident:
    node: str
    kind: IncidentKind
    detail: str
    ts: float
    #: what on the node it is about: the service of a failed health check
    subject: str | None = None


_SCOPES: tuple[tuple[Scope, tuple[MetricSpec, ...]], ...] = tuple(
    (scope, by_scope(scope)) for scope in Scope
)


def flatten(node: str, facts: Mapping[str, Any]) -> list[Sample]:
    """The samples of checked facts (see :func:`~lepton_ops.telemetry.facts_schema.check_facts`)."""
    ts = float(facts["timestamp"])
    samples: list[Sample] = []
    for scope, specs in _SCOPES:
        sections: list[tuple[Mapping[str, Any], Labels]]
        if scope is Scope.NODE:
            sections = [(facts, ())]
        else:
            source = SCOPE_SOURCES[scope]
            sections = [
                (entry, tuple(sorted((label, str(entry[key])) for label, key in source.labels)))
                for entry in facts[source.facts_key]
            ]
        for section, labels in sections:
            for spec in specs:
                value = spec.read(section)
                if value is not None:
                    samples.append(Sample(node, spec.name, labels, ts, value))
    return samples


def node_samples(node: str, facts: Any) -> list[Sample]:
    """The samples of one node's facts; BadInput (one line) if they are malformed."""
    _check_node(node)
    try:
        return flatten(node, check_facts(facts))
    except BadInput as exc:
        raise BadInput(f"telemetry facts of {node}: {exc}") from None


@dataclass(frozen=True)
class NodeOutcome:
    """What one collection got from one node (build it with the class methods)."""

    node: str
    status: NodeStatus
    #: the facts' timestamp when ``ok``, else when the collection saw the failure
    ts: float
    facts: Mapping[str, Any] | None = None
    error: str | None = None

    @classmethod
    def from_facts(cls, node: str, facts: Any, *, received_at: float | None = None) -> NodeOutcome:
        """``ok`` with the facts if they have the schema's shape, else ``invalid``."""
        _check_node(node)
        try:
            checked = check_facts(facts)
        except BadInput as exc:
            when = time.time() if received_at is None else float(received_at)
            return cls(node, NodeStatus.INVALID, when, error=f"telemetry facts of {node}: {exc}")
        return cls(node, NodeStatus.OK, float(checked["timestamp"]), facts=checked)

    @classmethod
    def unreachable(cls, node: str, error: str, *, ts: float | None = None) -> NodeOutcome:
        _check_node(node)
        reason = " ".join(str(error).split()) or "no answer"
        when = time.time() if ts is None else float(ts)
        return cls(node, NodeStatus.UNREACHABLE, when, error=reason)

    @property
    def ok(self) -> bool:
        return self.status is NodeStatus.OK

    def samples(self) -> list[Sample]:
        if self.status is NodeStatus.OK:
            assert self.facts is not None
            return flatten(self.node, self.facts)
        reachable = 0.0 if self.status is NodeStatus.UNREACHABLE else 1.0
        return [Sample(self.node, REACHABLE.name, (), self.ts, reachable)]

    def incidents(self) -> list[Incident]:
        if self.status is NodeStatus.UNREACHABLE:
            return [Incident(self.node, IncidentKind.UNREACHABLE, self.error or "", self.ts)]
        if self.status is NodeStatus.INVALID:
            return [Incident(self.node, IncidentKind.FACTS_INVALID, self.error or "", self.ts)]
        assert self.facts is not None
        return [
            Incident(
                self.node,
                IncidentKind.HEALTH_CHECK_FAILED,
                _health_detail(service),
                self.ts,
                subject=service["name"],
            )
            for service in self.facts["services"]
            if not service["healthy"]
        ]


def _health_detail(service: Mapping[str, Any]) -> str:
    answer = "no answer" if service["status_code"] is None else f"status {service['status_code']}"
    process = "running" if service["running"] else "not running"
    return (
        f"service {service['name']} failed its health check at {service['url']}: "
        f"{answer}, process {process}"
    )


def _check_node(node: Any) -> None:
    if not isinstance(node, str) or not node.strip():
        raise BadInput(f"a node name must be a non-empty string, got {node!r}")
