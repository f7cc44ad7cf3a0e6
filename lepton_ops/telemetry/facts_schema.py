"""The shape of one node's telemetry facts, as ``lepton.ops.telemetry_facts`` returns them.

The module runs on the nodes with nothing but the standard library, so it cannot import
this package: this is the controller's copy of its contract, checked at the edge before
anything is stored. Every key is required. Any measured value may be null (the node could
not read it; a half-broken node is what telemetry is for); what may not be null is what
identifies the sample and its series - ``schema``, ``timestamp``, a disk's ``path``, a
target's ``name`` and ``role``, a service's ``name`` - and the booleans, which the module
always sets. Keys this version does not know are ignored (a newer module may add some);
a different ``schema`` number is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.telemetry.catalogue import SCOPE_SOURCES

FACTS_SCHEMA = 1
#: The key under which the module returns its facts (``ansible_facts.lepton_telemetry``).
FACTS_KEY = "lepton_telemetry"


@dataclass(frozen=True)
class _Leaf:
    what: str
    check: Callable[[Any], bool]
    nullable: bool = False

    @property
    def null(self) -> _Leaf:
        return _Leaf(f"{self.what} or null", self.check, nullable=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


NUMBER = _Leaf("a number", _is_number)
INTEGER = _Leaf("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
TEXT = _Leaf("a string", lambda v: isinstance(v, str))
NONEMPTY_TEXT = _Leaf("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
BOOLEAN = _Leaf("true or false", lambda v: isinstance(v, bool))
ROLE = _Leaf('"aggregator" or "peer"', lambda v: v in ("aggregator", "peer"))

#: A shape is a leaf, a dict (an object with at least these keys) or a one-element
#: list (a list of that shape).
Shape = _Leaf | dict[str, Any] | list[Any]

FACTS_SHAPE: dict[str, Any] = {
    "schema": INTEGER,
    "timestamp": NUMBER,
    "hostname": TEXT.null,
    "uptime_s": NUMBER.null,
    "cpu": {"count": INTEGER.null, "util_pct": NUMBER.null, "sample_s": NUMBER.null},
    "load": {"1m": NUMBER.null, "5m": NUMBER.null, "15m": NUMBER.null},
    "memory": {
        "total_bytes": NUMBER.null,
        "available_bytes": NUMBER.null,
        "used_pct": NUMBER.null,
    },
    "swap": {"total_bytes": NUMBER.null, "free_bytes": NUMBER.null, "used_pct": NUMBER.null},
    "disks": [
        {
            "path": NONEMPTY_TEXT,
            "exists": BOOLEAN,
            "used_pct": NUMBER.null,
            "free_bytes": NUMBER.null,
            "inodes_used_pct": NUMBER.null,
        }
    ],
    "processes": {"count": NUMBER.null, "open_fds": NUMBER.null, "max_fds": NUMBER.null},
    "latency": [
        {
            "name": NONEMPTY_TEXT,
            "address": TEXT.null,
            "port": INTEGER.null,
            "role": ROLE,
            "attempts": INTEGER.null,
            "lost": INTEGER.null,
            "latency_ms": NUMBER.null,
            "reachable": BOOLEAN,
        }
    ],
    "services": [
        {
            "name": NONEMPTY_TEXT,
            "url": TEXT.null,
            "healthy": BOOLEAN,
            "status_code": INTEGER.null,
            "latency_ms": NUMBER.null,
            "pid": INTEGER.null,
            "running": BOOLEAN,
            "rss_bytes": NUMBER.null,
            "memory_limit_bytes": NUMBER.null,
            "restarts": NUMBER.null,
        }
    ],
    "errors": [TEXT],
}


def check_facts(facts: Any) -> Mapping[str, Any]:
    """``facts`` if it has the shape of schema :data:`FACTS_SCHEMA`, else BadInput (one line).

    Accepts the facts themselves or a mapping holding them under ``lepton_telemetry``.
    The error names the first bad key by its path, e.g. ``disks[1].used_pct``.
    """
    if isinstance(facts, Mapping) and FACTS_KEY in facts:
        facts = facts[FACTS_KEY]
    if isinstance(facts, Mapping) and "schema" in facts and facts["schema"] != FACTS_SCHEMA:
        raise BadInput(
            f"facts schema {facts['schema']!r} is not supported "
            f"(this lepton-ops reads schema {FACTS_SCHEMA})"
        )
    _check(facts, FACTS_SHAPE, "")
    for source in SCOPE_SOURCES.values():
        seen: set[str] = set()
        for entry in facts[source.facts_key]:
            identity = entry[source.identity]
            if identity in seen:
                raise BadInput(
                    f"{source.facts_key}: {source.identity} {identity!r} appears more than once"
                )
            seen.add(identity)
    if facts["timestamp"] <= 0:
        raise BadInput(f"timestamp: expected a time after 1970, got {facts['timestamp']!r}")
    checked: Mapping[str, Any] = facts
    return checked


def _check(value: Any, shape: Shape, path: str) -> None:
    if isinstance(shape, _Leaf):
        if value is None and shape.nullable:
            return
        if not shape.check(value):
            raise BadInput(f"{path or 'facts'}: expected {shape.what}, got {_show(value)}")
    elif isinstance(shape, dict):
        if not isinstance(value, Mapping):
            raise BadInput(f"{path or 'facts'}: expected an object, got {_show(value)}")
        for key, inner in shape.items():
            where = f"{path}.{key}" if path else key
            if key not in value:
                raise BadInput(f"{where}: missing")
            _check(value[key], inner, where)
    else:
        if not isinstance(value, list):
            raise BadInput(f"{path}: expected a list, got {_show(value)}")
        for index, item in enumerate(value):
            _check(item, shape[0], f"{path}[{index}]")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
