"""``lepton-ops provision`` and ``lepton-ops deploy``: playbooks run on the whole fleet."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, TypeVar

import typer

from lepton_ops.cli.options import CheckOpt, LimitOpt, require_inventory, with_settings
from lepton_ops.cli.playbook_output import finish_playbook
from lepton_ops.cli.render import console
from lepton_ops.deploy.deploy import deploy
from lepton_ops.provision.provision import provision
from lepton_ops.settings import Settings

Result = TypeVar("Result")


@with_settings
def provision_command(cfg: Settings, limit: LimitOpt = None, check: CheckOpt = False) -> None:
    """Give every node a virtualenv with numpy, scikit-learn, Flask, gunicorn and lepton-ops."""
    result = _on_fleet(cfg, provision, limit=limit, check=check)
    finish_playbook(result.run, cfg, extra=result.to_dict())


@with_settings
def deploy_command(
    cfg: Settings,
    limit: LimitOpt = None,
    check: CheckOpt = False,
    rotate_tokens: Annotated[
        bool,
        typer.Option(
            "--rotate-tokens",
            help="New tokens for every role, rolled out in three deploys with no failed "
            "request (the whole fleet).",
        ),
    ] = False,
) -> None:
    """Run the workers (port 8701) and the aggregator (port 8700) under gunicorn, supervised.

    They serve HTTPS with a certificate per node from the CA this makes once in the state
    dir (secrets/tls/); plain http only where the inventory sets lepton_insecure_http.
    """
    action = partial(deploy, rotate_tokens=rotate_tokens)
    finish_playbook(_on_fleet(cfg, action, limit=limit, check=check), cfg)


def _on_fleet(
    cfg: Settings, action: Callable[..., Result], *, limit: str | None, check: bool
) -> Result:
    """``action`` (provision, deploy) on the inventory the options name."""
    source = require_inventory(cfg)
    cfg.ensure_state_dir()
    return action(
        source,
        cfg.state_dir,
        limit=limit,
        check=check,
        verbosity=cfg.verbose,
        console=None if cfg.json else console,
    )
