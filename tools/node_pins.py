"""Write, or check, lepton_ops/provision/node-pins.txt: uv.lock's versions for the nodes.

    .venv/bin/python tools/node_pins.py           # write it (``make lock`` runs this)
    .venv/bin/python tools/node_pins.py --check   # exit 1 when it differs from uv.lock

The nodes' wheelhouse installs exactly these versions (lepton_ops/provision/wheelhouse.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from lepton_ops.provision.node_pins import EXPORT_ARGS, NODE_PINS  # noqa: E402
from lepton_ops.provision.wheelhouse import uv_binary  # noqa: E402


def exported() -> str:
    """``uv export`` of the lock for the node extra (no index: --frozen reads uv.lock only)."""
    completed = subprocess.run(
        [str(uv_binary()), *EXPORT_ARGS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"uv export failed: {completed.stderr.strip()}")
    return completed.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    wanted = exported()
    current = NODE_PINS.read_text(encoding="utf-8") if NODE_PINS.is_file() else ""
    if not args.check:
        if current != wanted:
            NODE_PINS.write_text(wanted, encoding="utf-8")
            print(f"wrote {NODE_PINS.relative_to(REPO_ROOT)}")
        return 0
    if current != wanted:
        print(
            f"{NODE_PINS.relative_to(REPO_ROOT)} is not uv.lock's node versions: run `make lock`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
