"""Deploy the services: run ``lepton.ops.deploy`` on the fleet with the token files' paths.

Workers listen on ``http://<ansible_host>:8701`` and the aggregator on
``http://<ansible_host>:8700`` (see the roles ``lepton_worker`` and ``lepton_aggregator``).
Only the token files' *paths* reach Ansible (one per role: see
:mod:`lepton_ops.credentials.tokens`); the roles copy the files with ``no_log``. With
``rotate_tokens`` the deploy runs three times, rolling new tokens out without a failed
request (:func:`~lepton_ops.credentials.tokens.rotation_steps`).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from lepton_ops.credentials.tokens import RELOAD_S, TokenFiles, ensure_tokens, rotation_steps
from lepton_ops.errors import BadInput
from lepton_ops.gateway import PlaybookResult, PlaybookRun, run_playbook
from lepton_ops.inventory import load_fleet

PLAYBOOK = "deploy"
WORKER_PORT = 8701
AGGREGATOR_PORT = 8700


def deploy(
    inventory: Path,
    state_dir: Path,
    *,
    limit: str | None = None,
    check: bool = False,
    rotate_tokens: bool = False,
    verbosity: int = 0,
    console: Console | None = None,
) -> PlaybookResult:
    """Run the workers and the aggregator on every node ``inventory`` (and ``limit``) names.

    ``rotate_tokens``: new tokens for every role, rolled out in three deploys of the whole
    fleet (no ``limit``, no ``check``); a failed deploy stops the rotation there.
    """
    if rotate_tokens and (limit or check):
        raise BadInput(
            "--rotate-tokens rolls new tokens out to the whole fleet: drop --limit and --check"
        )
    fleet = load_fleet(inventory, limit)
    files = ensure_tokens(state_dir)
    request = PlaybookRun(
        playbook=PLAYBOOK,
        inventory=inventory,
        hosts=tuple(fleet.names),
        limit=limit,
        extravars=token_extravars(files),
        check=check,
        verbosity=verbosity,
    )
    if not rotate_tokens:
        return run_playbook(request, state_dir, console=console)
    result: PlaybookResult | None = None
    for step in rotation_steps(state_dir):
        if console is not None:
            console.print(f"token rotation: {step}")
        result = run_playbook(request, state_dir, console=console)
        if not result.succeeded:
            break
        # Every service has read its token files again before the next step.
        time.sleep(2 * RELOAD_S)
    assert result is not None
    return result


def token_extravars(files: TokenFiles) -> dict[str, str]:
    """The token files' paths as the roles take them (never the tokens)."""
    return {
        "lepton_service_token_file": str(files.controller),
        "lepton_dispatch_token_file": str(files.aggregator),
        "lepton_scrape_token_file": str(files.scrape),
    }
