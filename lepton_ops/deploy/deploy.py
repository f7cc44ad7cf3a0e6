"""Deploy the services: run ``lepton.ops.deploy`` on the fleet with the credentials' paths.

Workers listen on ``https://<ansible_host>:8701`` and the aggregator on
``https://<ansible_host>:8700`` (see the roles ``lepton_worker`` and ``lepton_aggregator``),
each with its own certificate from the controller's CA (:mod:`lepton_ops.credentials.tls`:
made here on first use, a node's certificate issued again when its address changes or it
nears expiry). A host whose inventory sets ``lepton_insecure_http`` (the explicit lab
option) serves plain http and gets no certificate.
Only the token, certificate and key files' *paths* reach Ansible (one token per role: see
:mod:`lepton_ops.credentials.tokens`); the roles copy the files with ``no_log``. With
``rotate_tokens`` the deploy runs three times, rolling new tokens out without a failed
request (:func:`~lepton_ops.credentials.tokens.rotation_steps`).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from lepton_ops.credentials.ca import ensure_ca, ensure_node_cert
from lepton_ops.credentials.tls import node_cert_paths
from lepton_ops.credentials.tokens import RELOAD_S, TokenFiles, ensure_tokens, rotation_steps
from lepton_ops.errors import BadInput
from lepton_ops.gateway import PlaybookResult, PlaybookRun, run_playbook
from lepton_ops.inventory import Fleet, load_fleet

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
    extravars = token_extravars(files) | tls_extravars(state_dir, fleet)
    request = PlaybookRun(
        playbook=PLAYBOOK,
        inventory=inventory,
        hosts=tuple(fleet.names),
        limit=limit,
        extravars=extravars,
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


def tls_extravars(state_dir: Path, fleet: Fleet) -> dict[str, str]:
    """The CA certificate's path and the directory of the nodes' certificates and keys,
    each node's issued (or renewed) first; nothing when every host serves plain http."""
    secure = [node for node in fleet.nodes if not node.insecure_http]
    if not secure:
        return {}
    ca_file = ensure_ca(state_dir)
    for node in secure:
        ensure_node_cert(state_dir, node.name, node.address)
    return {
        "lepton_tls_ca_file": str(ca_file),
        "lepton_tls_node_dir": str(node_cert_paths(state_dir, secure[0].name).cert.parent),
    }


def token_extravars(files: TokenFiles) -> dict[str, str]:
    """The token files' paths as the roles take them (never the tokens)."""
    return {
        "lepton_service_token_file": str(files.controller),
        "lepton_dispatch_token_file": str(files.aggregator),
        "lepton_scrape_token_file": str(files.scrape),
    }
