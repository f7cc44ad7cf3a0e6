"""Provisioning benchmark: cold, warm, and the naive per-node pip install, in one run.

Brings up its own lab (ssh mode as root, local otherwise) in a temporary state
directory, then:

- cold: fresh node venvs, empty caches (no controller wheelhouse, no pip cache,
  no uv cache on the nodes): build the wheelhouse and provision all five nodes
  (cold_s; split into cold_wheelhouse_s and cold_nodes_s);
- warm: provision again (nothing should change);
- naive: every node pip-installs the same packages from the package index into
  a fresh venv, all five in parallel (benchmarks/naive_provision.yml);
- floor: five parallel ``uv`` installs from the unpacked wheelhouse straight on the
  controller (no Ansible, no SSH, no copy): what writing five venvs costs on this
  machine, so ``speedup_bound`` (naive over wheelhouse build + floor) shows the best
  speedup any wheelhouse install could reach here.

Prints progress on stderr and one JSON line last on stdout:
{"cold_s", "warm_s", "warm_changed", "naive_s", "speedup"} plus context fields
(``install_floor_s``, ``speedup_bound``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lepton_ops.gateway import PlaybookRun, run_playbook
from lepton_ops.inventory import load_fleet
from lepton_ops.lab import Lab, LabMode
from lepton_ops.provision.provision import provision, wheelhouse_dir
from lepton_ops.provision.wheelhouse import Wheelhouse, build_wheelhouse, node_requirements

HERE = Path(__file__).resolve().parent


def log(message: str) -> None:
    sys.stderr.write(f"[provision-bench] {message}\n")
    sys.stderr.flush()


def node_prefixes(lab: Lab) -> list[Path]:
    """The per-node directories standing in for each node's /opt/lepton."""
    return [lab.node_paths(f"node{n}").prefix for n in range(1, 6)]


def empty_nodes(lab: Lab) -> None:
    for prefix in node_prefixes(lab):
        if prefix.exists():
            for child in prefix.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def install_floor(house: Wheelhouse, copies: int) -> float:
    """Seconds for ``copies`` parallel ``uv venv`` + ``uv pip sync`` from the unpacked
    wheelhouse into fresh venvs on the controller, each with its own empty uv cache.

    No Ansible, no SSH, no archive: a lower bound for installing the nodes' venvs on this
    machine (its disk and cores), whatever the transport.
    """
    scratch = Path(tempfile.mkdtemp(prefix="lepton-floor-"))
    python = shutil.which("python3.11", path="/usr/bin") or sys.executable
    try:
        started = time.monotonic()
        running = []
        for n in range(copies):
            env = {
                **os.environ,
                "UV_NO_CONFIG": "1",
                "UV_OFFLINE": "1",
                "UV_CACHE_DIR": str(scratch / f"cache{n}"),
            }
            venv = scratch / f"venv{n}"
            script = (
                f"{house.uv_binary} venv -q -p {python} {venv} && "
                f"{house.uv_binary} pip sync -q --python {venv}/bin/python --no-index "
                f"--find-links {house.path} {house.requirements}"
            )
            running.append(subprocess.Popen(["sh", "-c", script], env=env))
        codes = [process.wait() for process in running]
        elapsed = time.monotonic() - started
        if any(codes):
            raise SystemExit(f"[provision-bench] floor installs failed: exit codes {codes}")
        return elapsed
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=[m.value for m in LabMode], default=None)
    parser.add_argument("--skip-naive", action="store_true", help="only cold and warm")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="lepton-bench-"))
    # "empty caches": pip downloads everything afresh for the controller's wheelhouse.
    os.environ["PIP_NO_CACHE_DIR"] = "1"
    lab = Lab(state)
    try:
        status = lab.up(LabMode(args.mode) if args.mode else None)
        log(f"lab up in {status.mode} mode, state {state}")
        inventory = lab.inventory_path
        hosts = tuple(load_fleet(inventory).names)
        empty_nodes(lab)

        log("cold: empty caches, fresh venvs")
        started = time.monotonic()
        house = build_wheelhouse(wheelhouse_dir(state))
        wheelhouse_s = time.monotonic() - started
        cold = provision(inventory, state)
        cold_s = time.monotonic() - started
        if not cold.run.succeeded:
            log(f"cold provision failed: {cold.run.to_dict()}")
            return 1

        log("warm: provision again")
        started = time.monotonic()
        warm = provision(inventory, state)
        warm_s = time.monotonic() - started
        warm_changed = warm.run.changed_total

        result: dict[str, object] = {
            "mode": str(status.mode),
            "nodes": len(hosts),
            "cold_s": round(cold_s, 2),
            "cold_wheelhouse_s": round(wheelhouse_s, 2),
            "cold_nodes_s": round(cold_s - wheelhouse_s, 2),
            "warm_s": round(warm_s, 2),
            "warm_changed": warm_changed,
        }
        log("floor: five parallel installs on the controller itself (no Ansible, no copy)")
        floor_s = install_floor(house, len(hosts))
        result["install_floor_s"] = round(floor_s, 2)
        if not args.skip_naive:
            log("naive: each node pip-installs from the package index, in parallel")
            request = PlaybookRun(
                playbook=HERE / "naive_provision.yml",
                inventory=inventory,
                hosts=hosts,
                extravars={"naive_packages": node_requirements()},
                timeout_s=30,
            )
            started = time.monotonic()
            naive = run_playbook(request, state)
            naive_s = time.monotonic() - started
            if not naive.succeeded:
                log(f"naive install failed: {naive.to_dict()}")
                return 1
            result["naive_s"] = round(naive_s, 2)
            result["speedup"] = round(naive_s / cold_s, 2)
            # The best any wheelhouse install could do here: the same wheelhouse build plus
            # the floor (what writing the venvs alone costs on this machine).
            result["speedup_bound"] = round(naive_s / (wheelhouse_s + floor_s), 2)
        print(json.dumps(result))
        return 0
    finally:
        lab.down(purge=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
