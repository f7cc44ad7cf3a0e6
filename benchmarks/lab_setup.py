"""The lab the lab benchmarks run on: their own, or one already up and deployed.

Every lab benchmark takes the same options (:func:`add_lab_options`): ``--mode``,
``--state-dir`` (use the lab already up and deployed there: no lab up, provision, deploy
or down) and ``--first-address`` (bring its own lab up on another block of addresses, so
that it can run beside another lab on the machine), and ``--insecure-http`` (its own lab
without TLS, to measure what TLS costs). :func:`deployed_lab` gives the lab,
provisioned and deployed, and takes its own lab down (and its state with it) at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lepton_ops.lab import Lab, LabMode


@dataclass(frozen=True)
class BenchLab:
    lab: Lab
    state_dir: Path
    inventory: Path
    mode: str
    #: seconds provisioning took (None for a lab that was already deployed)
    provision_s: float | None


def add_lab_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=[m.value for m in LabMode], default=None)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="use the lab already up and deployed in this state dir (no lab up/down)",
    )
    parser.add_argument(
        "--first-address",
        default=None,
        help="bring the benchmark's own lab up on this block (default: the first free one)",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="bring the benchmark's own lab up without TLS (to measure what TLS costs)",
    )


@contextmanager
def deployed_lab(
    args: argparse.Namespace, name: str, *, deploy_services: bool = True
) -> Iterator[BenchLab]:
    """The lab of ``args`` (see :func:`add_lab_options`), provisioned and deployed.

    ``name`` prefixes the benchmark's log lines and its temporary state directory. A lab
    that fails to provision or deploy ends the benchmark (exit 1, with what failed).
    """
    if args.state_dir is not None:
        lab = Lab(args.state_dir)
        status = lab.status()
        yield BenchLab(lab, args.state_dir, lab.inventory_path, str(status.mode), None)
        return
    state = Path(tempfile.mkdtemp(prefix=f"lepton-{name}-"))
    lab = Lab(state, first_address=args.first_address)
    try:
        status = lab.up(LabMode(args.mode) if args.mode else None, insecure_http=args.insecure_http)
        _log(name, f"lab up in {status.mode} mode, state {state}")
        provision_s = None
        if deploy_services:
            from lepton_ops.deploy.deploy import deploy
            from lepton_ops.provision.provision import provision

            started = time.monotonic()
            provisioned = provision(lab.inventory_path, state).run
            provision_s = time.monotonic() - started
            _log(name, f"provision: {provision_s:.1f} s")
            deployed = deploy(lab.inventory_path, state) if provisioned.succeeded else None
            if deployed is None or not deployed.succeeded:
                failed = deployed if deployed is not None else provisioned
                raise SystemExit(f"[{name}] provision/deploy failed: {failed.to_dict()}")
        yield BenchLab(lab, state, lab.inventory_path, str(status.mode), provision_s)
    finally:
        lab.down(purge=True)
        shutil.rmtree(state, ignore_errors=True)


def _log(name: str, message: str) -> None:
    sys.stderr.write(f"[{name}] {message}\n")
    sys.stderr.flush()
