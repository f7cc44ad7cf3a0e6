"""Nightly fuzz run: schemathesis against both services in-process, 1,000 cases per mode.

Every operation of the worker's and the aggregator's OpenAPI documents gets ``--examples``
positive and ``--examples`` negative cases with the token, and ``--examples-without-token``
of each without it (see ``tests/fuzz_support.py``); any 5xx, undocumented status, content
type or body is a failure. Operations without inputs have fewer distinct cases than asked
(``GET /healthz`` has one): the counts are reported as sent.

    .venv/bin/python benchmarks/fuzz.py [--examples 1000] [--examples-without-token 1000]

Prints progress on stderr and one JSON line last on stdout:
``{"benchmark": "fuzz", "cases": N, "failures": [...], "per_operation": {...}, ...}``;
exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_support import close_apps, fuzz_app, service_apps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="cases per operation and mode")
    parser.add_argument("--examples-without-token", type=int, default=1000)
    args = parser.parse_args()
    began = time.monotonic()
    per_operation: dict[str, int] = {}
    failures: list[str] = []

    def progress(name: str, sent: int, seconds: float) -> None:
        print(f"{name}: {sent} cases in {seconds:.1f} s", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="lepton-fuzz-") as scratch:
        apps = service_apps(Path(scratch))
        try:
            for service, app in apps.items():
                for with_token, examples in ((True, args.examples),
                                             (False, args.examples_without_token)):  # fmt: skip
                    label = f"{service} {'token' if with_token else 'no-token'}"
                    report = fuzz_app(app, examples, with_token=with_token, progress=progress)
                    for name, sent in report.cases.items():
                        per_operation[f"{label} {name}"] = sent
                    failures += [f"{label} {failure}" for failure in report.failures]
        finally:
            close_apps(apps)
    result = {
        "benchmark": "fuzz",
        "examples_per_mode": args.examples,
        "examples_without_token": args.examples_without_token,
        "cases": sum(per_operation.values()),
        "operations": len({name.rsplit(" ", 1)[0] for name in per_operation}),
        "failures": failures,
        "seconds": round(time.monotonic() - began, 1),
        "per_operation": per_operation,
    }
    print(json.dumps(result))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
