"""``lepton-ops deploy``: the aggregator and the workers, supervised, behind the token."""

from __future__ import annotations

import typer

from lepton_ops.cli.options import (
    CheckOpt,
    LimitOpt,
    require_inventory,
    with_settings,
)
from lepton_ops.cli.playbook_output import finish_playbook
from lepton_ops.cli.render import console
from lepton_ops.deploy.deploy import deploy
from lepton_ops.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)


@with_settings
def deploy_command(
    cfg: Settings,
    limit: LimitOpt = None,
    check: CheckOpt = False,
) -> None:
    """Run the workers (port 8701) and the aggregator (port 8700) under gunicorn, supervised."""
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
