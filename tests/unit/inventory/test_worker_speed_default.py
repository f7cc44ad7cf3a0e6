"""The worker role's speed default (weight / smallest weight) reads a host without
``lepton_weight`` as the library does: weight :data:`DEFAULT_WEIGHT`, so one host left
unweighted does not make every other host a hundred times faster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from lepton_ops.inventory.load import DEFAULT_WEIGHT

DEFAULTS = Path(__file__).parents[3] / "roles" / "lepton_worker" / "defaults" / "main.yml"


def speed(host: str, weights: dict[str, int | None]) -> float:
    expression = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))["lepton_worker_speed"]
    hostvars = {h: ({} if w is None else {"lepton_weight": w}) for h, w in weights.items()}
    variables = {
        "hostvars": hostvars,
        "groups": {"workers": list(weights)},
        "inventory_hostname": host,
        **hostvars[host],
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    return float(templar.template(trust_as_template(expression)))


@pytest.mark.parametrize(
    ("weights", "speeds"),
    [
        ({"a": 100, "b": 300}, {"a": 1.0, "b": 3.0}),
        ({"a": None, "b": 3 * DEFAULT_WEIGHT}, {"a": 1.0, "b": 3.0}),
        ({"a": None, "b": None}, {"a": 1.0, "b": 1.0}),
        ({"a": 50, "b": None}, {"a": 1.0, "b": DEFAULT_WEIGHT / 50}),
    ],
)
def test_an_unweighted_host_has_the_librarys_default_weight(
    weights: dict[str, int | None], speeds: dict[str, float]
) -> None:
    assert {host: speed(host, weights) for host in weights} == speeds
