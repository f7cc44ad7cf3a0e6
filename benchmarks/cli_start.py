"""CLI start-up benchmark: how long a new user waits for the first commands (no lab).

Each command runs ``--repeat`` times (default 7) as a fresh ``lepton-ops`` process against
a temporary state directory (``LEPTON_OPS_STATE_DIR``), with a static five-node inventory
written next to it; the wall time of each run is measured from the process start to its
exit, and the median is kept:

- ``version_s``: ``lepton-ops --version`` (target <= 0.2 s)
- ``help_s``: ``lepton-ops --help`` (target <= 0.2 s)
- ``job_plan_s``: ``lepton-ops job plan --tasks 1000 -i <inventory>`` (target <= 0.5 s;
  reading the inventory through Ansible's API is most of it)
- ``report_s``: ``lepton-ops report`` on an empty state directory (target <= 1 s)
- ``model_show_s``: ``lepton-ops model show`` without a model (target <= 1 s; with a
  model the file's scikit-learn estimator is loaded and checked, which is not counted)

A command that exits with another code than expected is reported and fails the run;
``created_state`` says whether any of them created the state directory (none may).
``python_s`` is a bare ``python -c pass`` for scale (the interpreter's own start).
Progress goes to stderr; one JSON line last on stdout:
``{"version_s": .., "help_s": .., ..., "targets_met": true, "repeat": 7}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INVENTORY = """\
all:
  children:
    aggregator:
      hosts:
        node1:
    workers:
      hosts:
        node1: {ansible_host: 127.0.3.1, lepton_weight: 100}
        node2: {ansible_host: 127.0.3.2, lepton_weight: 200}
        node3: {ansible_host: 127.0.3.3, lepton_weight: 300}
        node4: {ansible_host: 127.0.3.4, lepton_weight: 400}
        node5: {ansible_host: 127.0.3.5, lepton_weight: 500}
"""

#: name -> (arguments after lepton-ops, expected exit code, target seconds)
COMMANDS: dict[str, tuple[list[str], int, float]] = {
    "version_s": (["--version"], 0, 0.2),
    "help_s": (["--help"], 0, 0.2),
    "job_plan_s": (["job", "plan", "--tasks", "1000", "-i", "{inventory}"], 0, 0.5),
    "report_s": (["report"], 0, 1.0),
    "model_show_s": (["model", "show"], 1, 1.0),
}


def log(message: str) -> None:
    sys.stderr.write(f"cli_start: {message}\n")
    sys.stderr.flush()


def lepton_ops_command() -> list[str]:
    found = Path(sys.executable).with_name("lepton-ops")
    if found.exists():
        return [str(found)]
    on_path = shutil.which("lepton-ops")
    if on_path is None:
        raise SystemExit("cli_start: lepton-ops is not installed (run 'make install')")
    return [on_path]


def timed(argv: list[str], env: dict[str, str], expected: int) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != expected:
        raise SystemExit(
            f"cli_start: {' '.join(argv)} exited {done.returncode} (expected {expected}): "
            f"{done.stderr.strip()[:300]}"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per command")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    program = lepton_ops_command()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="lepton-cli-start-") as scratch:
        state = Path(scratch) / "state"
        inventory = Path(scratch) / "inventory.yml"
        inventory.write_text(INVENTORY, encoding="utf-8")
        env = {**os.environ, "LEPTON_OPS_STATE_DIR": str(state), "NO_COLOR": "1"}
        results["python_s"] = round(
            statistics.median(
                timed([sys.executable, "-c", "pass"], env, 0) for _ in range(args.repeat)
            ),
            4,
        )
        met = True
        for name, (arguments, expected, target) in COMMANDS.items():
            argv = program + [arg.replace("{inventory}", str(inventory)) for arg in arguments]
            runs = [timed(argv, env, expected) for _ in range(args.repeat)]
            median = statistics.median(runs)
            results[name] = round(median, 4)
            met = met and median <= target
            log(f"{' '.join(arguments[:3])}: median {median:.3f} s (target {target} s)")
        results["created_state"] = state.exists()
        if state.exists():
            log(f"a read-only command created {state}")
            met = False
    results["targets"] = {name: target for name, (_, _, target) in COMMANDS.items()}
    results["targets_met"] = met
    results["repeat"] = args.repeat
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    # Without bytecode caches every import compiles its source: 'make install' writes them.
    results["python_dont_write_bytecode"] = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
