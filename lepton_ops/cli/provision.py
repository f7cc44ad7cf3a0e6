"""``lepton-ops provision``: the Python stack on every node."""

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
from lepton_ops.provision.provision import provision
from lepton_ops.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("provision")(provision_command)


@with_settings
def provision_command(
    cfg: Settings,
    limit: LimitOpt = None,
    check: CheckOpt = False,
) -> None:
    """Give every node a virtualenv with numpy, scikit-learn, Flask, gunicorn and lepton-ops."""
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
