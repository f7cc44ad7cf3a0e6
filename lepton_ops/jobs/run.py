"""Run one job from a program: check it, reach the aggregator, wait for it with a deadline.

What the Ansible module ``lepton.ops.job`` needs besides :mod:`lepton_ops.jobs.client`,
which it shares with ``lepton-ops job run``: the same checks of the parameters and of the
artifact files (:func:`~lepton_ops.jobs.client.job_inputs`, through
:func:`check_job_inputs`), the same uploads and submission (:func:`submit_job`), the same
client, the same :class:`~lepton_ops.jobs.client.Outcome`. Added here: the aggregator's
address given explicitly, the token file checked without handing the token out, and a
deadline for waiting (:class:`JobTimeout`: the job goes on on the aggregator).

Reading an inventory needs Ansible's inventory API, which cannot be imported inside an
Ansible module's process (AnsiballZ ships a partial copy of ``ansible.module_utils`` that
shadows the installed one). The module therefore asks a child Python for what it needs
from the inventory: ``python -m lepton_ops.jobs.run --inventory PATH [--tasks N ...]``
prints :func:`fleet_facts` as JSON (:func:`main`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lepton_ops.credentials.tls import url_verify
from lepton_ops.credentials.tokens import read_token_file, service_token_file
from lepton_ops.errors import BadInput, LeptonError, OperationFailed
from lepton_ops.jobs import client as jobs
from lepton_ops.jobs.fleet import plan_inventory
from lepton_ops.jobs.history import JobHistory
from lepton_ops.jobs.kinds import get_kind
from lepton_ops.jobs.planner import Strategy, parse_strategy

#: Seconds between two status requests while waiting (as ``lepton-ops job run``).
POLL_S = 0.25


class JobTimeout(OperationFailed):
    """The job did not finish within the time given; it goes on on the aggregator."""

    def __init__(self, job_id: str, timeout_s: float, status: Mapping[str, Any] | None) -> None:
        self.job_id = job_id
        self.timeout_s = timeout_s
        #: The job's last status seen, None if none was.
        self.status: dict[str, Any] | None = None if status is None else dict(status)
        progress = (status or {}).get("progress") or {}
        done = ""
        if "shards_done" in progress and "shards_total" in progress:
            done = f" ({progress['shards_done']}/{progress['shards_total']} shards done)"
        super().__init__(
            f"job {job_id} did not finish within {timeout_s:g} s{done}; it goes on on the "
            f"aggregator: follow it with 'lepton-ops job watch {job_id}'"
        )


def check_job(
    kind: str,
    params: Mapping[str, Any],
    tasks: int,
    *,
    strategy: str = "weighted",
    shard_size: int | None = None,
) -> dict[str, Any]:
    """The parameters to submit, once the whole job is checked here; BadInput otherwise.

    The parameters are what :func:`~lepton_ops.jobs.client.job_params` makes of ``params``
    (only those given, coerced: what ``lepton-ops job run`` submits). The kind then
    validates them with ``tasks`` as the aggregator will, so that a missing required
    parameter or a bad task count is reported before anything is submitted. For a job
    without artifacts; :func:`check_job_inputs` checks any job.
    """
    return check_job_inputs(kind, params, tasks, strategy=strategy, shard_size=shard_size).params


def check_job_inputs(
    kind: str,
    params: Mapping[str, Any],
    tasks: int | None,
    artifacts: Mapping[str, object] | None = None,
    *,
    strategy: str = "weighted",
    shard_size: int | None = None,
) -> jobs.JobInputs:
    """What to upload and submit, once the whole job is checked here; BadInput otherwise.

    ``artifacts`` maps the kind's artifact names to files on this machine (paths, ``~``
    and ``$VARS`` expanded as in Ansible's path options; None: not given). The files are
    read and loaded by the kind as by ``lepton-ops job run``
    (:func:`~lepton_ops.jobs.client.job_inputs`), so a missing, oversized or unsafe file
    is one BadInput line before anything is sent. ``tasks`` may be None when the kind's
    artifacts imply it (``predict``: one task per data row); given, it must agree. The
    parameters are then validated with the task count as the aggregator will.
    """
    parse_strategy(strategy)
    if shard_size is not None and (
        isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1
    ):
        raise BadInput(f"the shard size must be 1 or more tasks, got {shard_size!r}")
    inputs = jobs.job_inputs(kind, params, artifact_files(artifacts or {}), tasks)
    get_kind(kind).validate({**inputs.params, "tasks": inputs.tasks})
    return inputs


def artifact_files(artifacts: Mapping[str, object]) -> dict[str, Path | None]:
    """``{name: path}`` from artifact names and file paths as a playbook gives them.

    A path is text (or a path object); ``~`` and environment variables in it are expanded,
    as in Ansible's ``path`` options. None (or no value) means the artifact is not given.
    Anything else is BadInput.
    """
    files: dict[str, Path | None] = {}
    for name, value in artifacts.items():
        if value is None:
            files[str(name)] = None
            continue
        if not isinstance(value, str | os.PathLike):
            raise BadInput(
                f"artifact {name} must be the path of a file, got {type(value).__name__} "
                f"{str(value)[:80]!r}"
            )
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip():
            raise BadInput(f"artifact {name} must be the path of a file, got {str(value)[:80]!r}")
        files[str(name)] = Path(os.path.expandvars(text)).expanduser()
    return files


def submit_job(
    client: jobs.AggregatorClient,
    kind: str,
    inputs: jobs.JobInputs,
    *,
    strategy: str = "weighted",
    shard_size: int | None = None,
) -> str:
    """Upload the job's artifacts (each once: those the aggregator holds are skipped), then
    submit the job naming them by digest, as ``lepton-ops job run`` does; its id."""
    digests = client.upload_artifacts(inputs.artifacts)
    return client.submit(kind, inputs.params, inputs.tasks, strategy, shard_size, artifacts=digests)


def check_timeout(timeout_s: float | None) -> float | None:
    """``timeout_s`` as a number of seconds above 0, or None (no limit); BadInput otherwise."""
    if timeout_s is None:
        return None
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise BadInput(f"the timeout must be a number of seconds, got {timeout_s!r}")
    if math.isnan(timeout_s) or timeout_s <= 0:
        raise BadInput(f"the timeout must be more than 0 seconds, got {timeout_s}")
    return float(timeout_s)


def aggregator_address(url: str | None = None, inventory: Path | None = None) -> str:
    """The aggregator's base URL: ``url`` if given, else ``$LEPTON_OPS_AGGREGATOR_URL``,
    else the inventory's (:func:`~lepton_ops.jobs.client.aggregator_url`)."""
    chosen = url or os.environ.get(jobs.AGGREGATOR_URL_ENV)
    if chosen:
        parts = urlsplit(chosen.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(
                f"aggregator URL {chosen!r} must look like http://HOST:PORT or https://HOST:PORT"
            )
        return chosen.strip().rstrip("/")
    if inventory is None:
        raise BadInput(
            "no aggregator address: give an inventory with an 'aggregator' group, or the "
            f"aggregator's URL (or set {jobs.AGGREGATOR_URL_ENV})"
        )
    return jobs.aggregator_url(inventory)


def open_client(
    state_dir: Path, url: str, timeout_s: float = jobs.DEFAULT_TIMEOUT_S
) -> jobs.AggregatorClient:
    """A client for the aggregator at ``url`` with the token kept in ``state_dir``.

    The jobs it sees finish go to the job history in ``state_dir``, without their plan's
    weights (this process cannot read the inventory: see the module's doc)."""
    path = service_token_file(state_dir)
    return jobs.AggregatorClient(
        url,
        read_token_file(path),
        timeout_s,
        token_file=path,
        history=JobHistory(state_dir),
        verify=url_verify(state_dir, url),
    )


def wait_for_outcome(
    client: jobs.AggregatorClient,
    job_id: str,
    *,
    timeout_s: float | None = None,
    poll_s: float = POLL_S,
    on_status: jobs.Progress | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> jobs.Outcome:
    """Follow the job until it finishes (:func:`~lepton_ops.jobs.client.follow`); its outcome.

    ``timeout_s`` (None: no limit) bounds the wait: the status is asked once more at the
    deadline, and :class:`JobTimeout` is raised if the job is still running then (a status
    request under way at the deadline is allowed to finish). A failed job is an outcome,
    not an error: see :attr:`~lepton_ops.jobs.client.Outcome.succeeded`.
    """
    limit = check_timeout(timeout_s)
    now = clock or time.monotonic
    pause = sleep or time.sleep
    last: dict[str, Any] | None = None

    def seen(status: dict[str, Any]) -> None:
        nonlocal last
        last = status
        if on_status is not None:
            on_status(status)

    # The module reports an aggregator that stops answering at once, with the job's id
    # (the job goes on there): the playbook decides whether to wait for it.
    if limit is None:
        status = jobs.follow(client, job_id, seen, poll_s=poll_s, sleep=pause, reconnect_s=0)
        return jobs.outcome(client, status, reconnect_s=0)

    deadline = now() + limit

    def paced(seconds: float) -> None:
        remaining = deadline - now()
        if remaining <= 0:
            raise JobTimeout(job_id, limit, last)
        pause(min(seconds, remaining))

    status = jobs.follow(client, job_id, seen, poll_s=poll_s, sleep=paced, reconnect_s=0)
    return jobs.outcome(client, status, reconnect_s=0)


# --------------------------------------------------------------------------- the inventory


def fleet_facts(
    inventory: Path,
    tasks: int | None = None,
    *,
    strategy: str = "weighted",
    shard_size: int | None = None,
) -> dict[str, Any]:
    """What a job needs from ``inventory``: ``{"aggregator_url"}``, and with ``tasks`` also
    ``"plan"``, the plan of the job over the inventory's workers (``Plan.to_dict()``)."""
    facts: dict[str, Any] = {"aggregator_url": jobs.aggregator_url(inventory)}
    if tasks is not None:
        plan = plan_inventory(inventory, tasks, strategy=strategy, shard_size=shard_size)
        facts["plan"] = plan.to_dict()
    return facts


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lepton_ops.jobs.run --inventory PATH [--tasks N] [--strategy S]
    [--shard-size K]``: :func:`fleet_facts` as JSON on stdout.

    A LeptonError is printed as ``{"error": one line, "error_kind": class name}`` and
    exits with its exit code (2 bad input, 1 failed operation).
    """
    parser = argparse.ArgumentParser(
        prog="python -m lepton_ops.jobs.run",
        description="Print what a job needs from an inventory (its aggregator's URL, the "
        "plan of a job over its workers) as JSON.",
    )
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--strategy", default=Strategy.WEIGHTED.value)
    parser.add_argument("--shard-size", type=int)
    args = parser.parse_args(argv)
    try:
        facts = fleet_facts(
            args.inventory, args.tasks, strategy=args.strategy, shard_size=args.shard_size
        )
    except LeptonError as error:
        json.dump({"error": str(error), "error_kind": type(error).__name__}, sys.stdout)
        return error.exit_code
    json.dump(facts, sys.stdout)
    return 0


__all__ = [
    "POLL_S",
    "JobTimeout",
    "aggregator_address",
    "artifact_files",
    "check_job",
    "check_job_inputs",
    "check_timeout",
    "fleet_facts",
    "main",
    "open_client",
    "service_token_file",
    "submit_job",
    "wait_for_outcome",
]


if __name__ == "__main__":
    sys.exit(main())
