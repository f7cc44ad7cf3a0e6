"""Nodes and the fleet: names, addresses, capacity weights and roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton_ops.errors import BadInput

AGGREGATOR_GROUP = "aggregator"
WORKERS_GROUP = "workers"
#: The explicit lab option: the services serve plain HTTP (no TLS) when this is true.
INSECURE_HTTP_VAR = "lepton_insecure_http"
_TRUE = frozenset({"true", "yes", "on", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "off", "0", "n", "f", ""})


@dataclass(frozen=True)
class Node:
    """One inventory host as lepton-ops sees it."""

    name: str
    address: str
    weight: int
    groups: tuple[str, ...] = ()
    #: The host's variables, without Ansible's own ``ansible_*`` ones (they may hold secrets).
    vars: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: ``ansible_port``, when the inventory sets one.
    port: int | None = None

    @property
    def is_aggregator(self) -> bool:
        return AGGREGATOR_GROUP in self.groups

    @property
    def is_worker(self) -> bool:
        return WORKERS_GROUP in self.groups

    @property
    def insecure_http(self) -> bool:
        """Whether the node's services serve plain HTTP (``lepton_insecure_http``, an
        explicit lab option); they serve HTTPS otherwise."""
        raw = self.vars.get(INSECURE_HTTP_VAR, False)
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise BadInput(f"host {self.name}: {INSECURE_HTTP_VAR} must be true or false, got {raw!r}")

    @property
    def scheme(self) -> str:
        """``https``, or ``http`` where the inventory explicitly sets ``lepton_insecure_http``."""
        return "http" if self.insecure_http else "https"


@dataclass(frozen=True)
class Fleet:
    """The nodes an inventory names (after ``--limit``), in natural name order."""

    source: Path
    nodes: tuple[Node, ...]
    limit: str | None = None

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def aggregator(self) -> Node | None:
        return next((node for node in self.nodes if node.is_aggregator), None)

    @property
    def workers(self) -> list[Node]:
        return [node for node in self.nodes if node.is_worker]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)
