"""Service start-up cost: what importing each service app costs a fresh process (no lab).

A gunicorn worker process imports its app when it starts (each process of each node), so
this is paid on every deploy and restart. Each import runs ``--repeat`` times (default 9)
in a fresh interpreter; the CPU time (user + system) of the import alone is measured
inside it, and the median kept (CPU time, not wall time: on a shared machine the wall
time mostly measures the neighbours). ``pydantic`` is the body models' library alone, for
scale; ``flask`` likewise.

Progress goes to stderr; one JSON line last on stdout:
``{"worker_cpu_s": .., "aggregator_cpu_s": .., "pydantic_cpu_s": .., "flask_cpu_s": ..,
"repeat": 9}``. No target is set: it is a number to watch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

IMPORTS = {
    "worker_cpu_s": "import lepton_ops.services.worker",
    "aggregator_cpu_s": "import lepton_ops.services.aggregator",
    "pydantic_cpu_s": "import pydantic.main, pydantic.fields",
    "flask_cpu_s": "import flask",
}
_TIMED = (
    "import resource\n"
    "def cpu():\n"
    "    usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    return usage.ru_utime + usage.ru_stime\n"
    "began = cpu()\n"
    "{statement}\n"
    "print(cpu() - began)\n"
)


def import_cpu_seconds(statement: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _TIMED.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    result: dict[str, float | int] = {}
    for name, statement in IMPORTS.items():
        runs = [import_cpu_seconds(statement) for _ in range(args.repeat)]
        result[name] = round(statistics.median(runs), 3)
        sys.stderr.write(f"service_import: {name} {result[name]} s (min {min(runs):.3f})\n")
    result["repeat"] = args.repeat
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
