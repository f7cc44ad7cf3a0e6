"""Provision nodes: build the wheelhouse once, then run ``lepton.ops.provision`` on the fleet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from lepton_ops.gateway import PlaybookResult, PlaybookRun, run_playbook
from lepton_ops.inventory import load_fleet
from lepton_ops.provision.wheelhouse import Wheelhouse, build_wheelhouse
from lepton_ops.settings import StateLayout

PLAYBOOK = "provision"


@dataclass(frozen=True)
class ProvisionResult:
    wheelhouse: Wheelhouse
    run: PlaybookResult

    def to_dict(self) -> dict[str, Any]:
        data = self.run.to_dict()
        data["wheelhouse"] = {"id": self.wheelhouse.id, "built": self.wheelhouse.built}
        return data


def wheelhouse_dir(state_dir: Path) -> Path:
    return StateLayout(state_dir).wheelhouse


def provision(
    inventory: Path,
    state_dir: Path,
    *,
    limit: str | None = None,
    check: bool = False,
    verbosity: int = 0,
    console: Console | None = None,
) -> ProvisionResult:
    """Install the Python stack on every node ``inventory`` (and ``limit``) names."""
    fleet = load_fleet(inventory, limit)
    if console is not None:
        with console.status("Building the wheelhouse (cached after the first run)"):
            wheelhouse = build_wheelhouse(wheelhouse_dir(state_dir))
    else:
        wheelhouse = build_wheelhouse(wheelhouse_dir(state_dir))
    request = PlaybookRun(
        playbook=PLAYBOOK,
        inventory=inventory,
        hosts=tuple(fleet.names),
        limit=limit,
        extravars={
            "lepton_wheelhouse": {
                "id": wheelhouse.id,
                "archive": str(wheelhouse.archive),
            }
        },
        check=check,
        verbosity=verbosity,
    )
    return ProvisionResult(wheelhouse, run_playbook(request, state_dir, console=console))
