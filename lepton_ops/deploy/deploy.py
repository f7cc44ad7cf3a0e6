"""Deploy the services: run ``lepton.ops.deploy`` on the fleet with the shared token's path.

Workers listen on ``http://<ansible_host>:8701`` and the aggregator on
``http://<ansible_host>:8700`` (see the roles ``lepton_worker`` and ``lepton_aggregator``).
Only the token file's *path* reaches Ansible; the roles copy the file with ``no_log``.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lepton_ops.deploy.token import ensure_token
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
    verbosity: int = 0,
    console: Console | None = None,
) -> PlaybookResult:
    """Run the workers and the aggregator on every node ``inventory`` (and ``limit``) names."""
    fleet = load_fleet(inventory, limit)
    token_file = ensure_token(state_dir)
    request = PlaybookRun(
        playbook=PLAYBOOK,
        inventory=inventory,
        hosts=tuple(fleet.names),
        limit=limit,
        extravars={"lepton_service_token_file": str(token_file)},
        check=check,
        verbosity=verbosity,
    )
    return run_playbook(request, state_dir, console=console)
