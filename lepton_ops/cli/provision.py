"""``lepton-ops provision``: the Python stack on every node."""

from __future__ import annotations

import typer

from lepton_ops.cli.options import (
    CheckOpt,
    InventoryOpt,
    JsonOpt,
    LimitOpt,
    StateDirOpt,
    VerboseOpt,
    require_inventory,
    settings,
)
from lepton_ops.cli.playbook_output import finish_playbook
from lepton_ops.cli.render import console
from lepton_ops.provision.provision import provision


def register(app: typer.Typer) -> None:
    app.command("provision")(provision_command)


def provision_command(
    ctx: typer.Context,
    limit: LimitOpt = None,
    check: CheckOpt = False,
    inventory: InventoryOpt = None,
    state_dir: StateDirOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Give every node a virtualenv with numpy, scikit-learn, Flask, gunicorn and lepton-ops."""
    cfg = settings(ctx, inventory, state_dir, json_output, verbose)
    source = require_inventory(cfg)
    cfg.ensure_state_dir()
    result = provision(
        source,
        cfg.state_dir,
        limit=limit,
        check=check,
        verbosity=cfg.verbose,
        console=None if cfg.json else console,
    )
    finish_playbook(result.run, cfg, extra=result.to_dict())
