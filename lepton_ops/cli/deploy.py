"""``lepton-ops deploy``: the aggregator and the workers, supervised, behind the token."""

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
from lepton_ops.deploy.deploy import deploy


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)


def deploy_command(
    ctx: typer.Context,
    limit: LimitOpt = None,
    check: CheckOpt = False,
    inventory: InventoryOpt = None,
    state_dir: StateDirOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Run the workers (port 8701) and the aggregator (port 8700) under gunicorn, supervised."""
    cfg = settings(ctx, inventory, state_dir, json_output, verbose)
    source = require_inventory(cfg)
    cfg.ensure_state_dir()
    result = deploy(
        source,
        cfg.state_dir,
        limit=limit,
        check=check,
        verbosity=cfg.verbose,
        console=None if cfg.json else console,
    )
    finish_playbook(result, cfg)
