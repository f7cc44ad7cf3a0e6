"""Nodes and the fleet: names, addresses, capacity weights and roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AGGREGATOR_GROUP = "aggregator"
WORKERS_GROUP = "workers"


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
