"""The facts' shape is written three times, because the node side cannot import the library:
the module (what it builds and its RETURN documentation), the controller's check
(:data:`~lepton_ops.telemetry.facts_schema.FACTS_SHAPE`) and the tests' sample facts. These
tests hold the copies to each other, so a key added on one side fails here, not on a node.
"""

from __future__ import annotations

from typing import Any

import yaml
from telemetry_support import make_facts

from ansible_collections.lepton.ops.plugins.module_utils import node_facts
from ansible_collections.lepton.ops.plugins.modules import telemetry_facts as module
from lepton_ops.telemetry.facts_schema import FACTS_KEY, FACTS_SCHEMA, FACTS_SHAPE, check_facts


def shape_keys(shape: Any) -> Any:
    """A shape as nested key sets: dict -> {key: inner}, list -> [inner], leaf -> None."""
    if isinstance(shape, dict):
        return {key: shape_keys(inner) for key, inner in shape.items()}
    if isinstance(shape, list):
        return [shape_keys(shape[0])]
    return None


def documented_keys(entry: dict[str, Any]) -> Any:
    """RETURN documentation as nested key sets, in the same form as :func:`shape_keys`."""
    inner = entry.get("contains")
    if inner is None:
        return [None] if entry["type"] == "list" else None
    keys = {key: documented_keys(value) for key, value in inner.items()}
    return [keys] if entry["type"] == "list" else keys


def value_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: value_keys(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [value_keys(value[0])] if value else []
    return None


def test_the_module_and_the_controller_agree_on_the_schema_number() -> None:
    assert node_facts.SCHEMA == FACTS_SCHEMA
    assert node_facts.empty_facts()["schema"] == FACTS_SCHEMA


def test_the_modules_return_documentation_is_the_controllers_shape() -> None:
    returned = yaml.safe_load(module.RETURN)["ansible_facts"]["contains"][FACTS_KEY]
    assert documented_keys(returned) == shape_keys(FACTS_SHAPE)


def test_what_the_module_builds_has_the_controllers_keys() -> None:
    built = node_facts.empty_facts()
    expected = shape_keys(FACTS_SHAPE)
    assert set(built) == set(expected)
    for key, inner in expected.items():
        if isinstance(inner, dict):
            assert value_keys(built[key]) == inner, key
    service = node_facts.empty_service({"name": "lepton-worker", "url": "http://127.0.1.1/healthz"})
    assert value_keys(service) == expected["services"][0]
    target = {"name": "node2", "address": "127.0.1.2", "port": 22, "role": "peer"}
    entry, _ = node_facts.latency_entry(target, (False, None), attempts=3)
    assert value_keys(entry) == expected["latency"][0]


def test_the_modules_disk_entries_have_the_controllers_keys(tmp_path: Any) -> None:
    facts = node_facts.empty_facts()
    node_facts.read_disks(facts, [str(tmp_path), str(tmp_path / "missing")])
    expected = shape_keys(FACTS_SHAPE)["disks"][0]
    assert [value_keys(entry) for entry in facts["disks"]] == [expected] * 3


def test_the_tests_sample_facts_have_the_controllers_shape() -> None:
    facts = make_facts()
    # (no errors in them: an empty list has no entry shape to compare)
    assert value_keys(facts) == shape_keys(FACTS_SHAPE) | {"errors": []}
    check_facts(facts)
