"""Running one remediation action on one node: playbook runs through the gateway, as
the action's spec says (:class:`~lepton_ops.remediate.ladder.Runs`).

An action that alerts (a cordon) also tells a human: one line in
``<state_dir>/alerts.log`` and, when ``LEPTON_ALERT_COMMAND`` is set, that command run
with the alert as its argument (a pager hook, a mail wrapper - the operator's choice).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lepton_ops.credentials.tls import ca_cert_path
from lepton_ops.credentials.tokens import ensure_token
from lepton_ops.deploy.deploy import deploy
from lepton_ops.gateway import PlaybookResult, PlaybookRun, run_playbook
from lepton_ops.provision.provision import provision
from lepton_ops.remediate.ladder import Action, Runs
from lepton_ops.settings import StateLayout

PLAYBOOK = "remediate"
#: How long a drain by remediation lasts unless renewed (the node is checked again by then).
DRAIN_TTL_S = 300
ALERT_COMMAND_ENV = "LEPTON_ALERT_COMMAND"
ALERT_TIMEOUT_S = 30
SSH_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class ActionOutcome:
    ok: bool
    detail: str
    seconds: float


def run_action(
    action: Action,
    node: str,
    inventory: Path,
    state_dir: Path,
    *,
    reason: str,
    drain_ttl_s: int = DRAIN_TTL_S,
    verbosity: int = 0,
) -> ActionOutcome:
    """Run ``action`` on ``node``; never raises for a failed run (the outcome says it)."""
    started = time.monotonic()
    if action.runs is Runs.PROVISION_AND_DEPLOY:
        provisioned = provision(inventory, state_dir, limit=node, verbosity=verbosity)
        runs = [provisioned.run]
        if provisioned.run.succeeded:
            runs.append(deploy(inventory, state_dir, limit=node, verbosity=verbosity))
        ok = all(run.succeeded for run in runs)
        detail = "; ".join(_describe(run) for run in runs)
        return ActionOutcome(ok, detail, time.monotonic() - started)
    request = PlaybookRun(
        playbook=PLAYBOOK,
        inventory=inventory,
        hosts=(node,),
        limit=node,
        extravars={
            "lepton_remediate_action": action.name,
            "lepton_remediate_hosts": node,
            "lepton_remediate_reason": reason,
            "lepton_remediate_drain_ttl": drain_ttl_s,
            "lepton_service_token_file": str(ensure_token(state_dir)),
            "lepton_tls_ca_file": str(ca_cert_path(state_dir)),
        },
        verbosity=verbosity,
        # A node that does not answer is what remediation meets most: give up on it fast.
        timeout_s=SSH_CONNECT_TIMEOUT_S,
    )
    run = run_playbook(request, state_dir)
    detail = _describe(run)
    if action.alerts:
        detail += "; " + alert(state_dir, node, reason)
    return ActionOutcome(run.succeeded, detail, time.monotonic() - started)


def alert(state_dir: Path, node: str, reason: str) -> str:
    """Tell a human: a line in alerts.log, and the operator's alert command if set."""
    message = f"lepton-ops: {node} is cordoned and needs a person: {reason}"
    line = json.dumps({"ts": time.time(), "node": node, "message": message})
    path = StateLayout(state_dir).alerts_log
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    command = os.environ.get(ALERT_COMMAND_ENV, "").strip()
    if not command:
        return f"alert written to {path}"
    try:
        done = subprocess.run(
            [*shlex.split(command), message],
            capture_output=True,
            text=True,
            timeout=ALERT_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"alert written to {path}; {ALERT_COMMAND_ENV} failed: {exc}"
    if done.returncode != 0:
        return f"alert written to {path}; {ALERT_COMMAND_ENV} exited {done.returncode}"
    return f"alert written to {path} and sent with {ALERT_COMMAND_ENV}"


def _describe(run: PlaybookResult) -> str:
    if run.succeeded:
        return f"{run.playbook}: ok in {run.duration_s:.1f}s"
    problems = "; ".join(msg for host in run.hosts.values() for msg in host.messages)
    return f"{run.playbook}: failed ({problems or run.error or f'exit {run.rc}'})"
