"""Run ``ansible-test sanity`` on the lepton.ops collection, with no internet access.

    .venv/bin/python tools/ansible_test_sanity.py [--python 3.11] [ANSIBLE-TEST SANITY OPTIONS...]

For example ``--test pep8`` runs one test, ``-v`` shows more. The exit code is ansible-test's:
non-zero when a sanity test fails.

ansible-test runs each sanity test in a virtual environment of its own (cached under
``~/.ansible/test/venv``), and bootstraps pip into it with a get-pip.py that it downloads from
the internet, unless ``~/.ansible/test/cache/get_pip_<version>.py`` already exists. This tool
puts tools/get_pip_offline.py there first, for every pip version this ansible-test asks for;
that script gets pip from the interpreter's own ensurepip. The test requirements themselves
(pylint, yamllint, voluptuous, ...) come from the package index, which is reachable here, and
only on the first run: ansible-test reuses its virtual environments afterwards.

Only the collection (ansible_collections/lepton/ops) is tested: ansible-test must run from its
root. The lepton_ops library at the repository root is not part of the collection; the import
sanity test loads the modules in an environment without it, which is why modules guard that
import.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTION_ROOT = REPO_ROOT / "ansible_collections" / "lepton" / "ops"
OFFLINE_GET_PIP = Path(__file__).resolve().parent / "get_pip_offline.py"
GET_PIP_CACHE = Path("~/.ansible/test/cache").expanduser()
DEFAULT_PYTHON = "3.11"

# Sanity tests skipped, each with its reason. Keep this empty unless a test cannot work here.
SKIPPED_TESTS: dict[str, str] = {}


def ansible_test_root() -> Path:
    """The installed ansible_test package (it ships with ansible-core)."""
    spec = importlib.util.find_spec("ansible_test")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"ansible-test is not installed for {sys.executable}; run this with the project's "
            ".venv/bin/python"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def ansible_test_command() -> list[str]:
    """The ansible-test entry point next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-test"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("ansible-test")
    if found:
        return [found]
    raise SystemExit("ansible-test not found (it ships with ansible-core)")


def pip_versions(python: str) -> set[str]:
    """The pip version(s) ansible-test bootstraps into its virtual environments.

    Asked from ansible-test itself (``get_venv_packages``) for ``python``, plus every pip
    version its source names (per-Python overrides), so the cache is right even if that
    private function moves.
    """
    versions: set[str] = set()
    source = ansible_test_root() / "_internal" / "python_requirements.py"
    if source.is_file():
        text = source.read_text(encoding="utf-8")
        versions.update(re.findall(r"\bpip\s*=\s*['\"]([0-9][0-9.]*)['\"]", text))
        versions.update(re.findall(r"['\"]pip['\"]\s*:\s*['\"]([0-9][0-9.]*)['\"]", text))
    try:
        from ansible_test._internal.python_requirements import (  # type: ignore[import-untyped,unused-ignore]
            get_venv_packages,
        )

        versions.add(get_venv_packages(types.SimpleNamespace(version=python))["pip"])
    except Exception as exc:  # private API: fall back on what the source says
        print(f"note: could not ask ansible-test for its pip version ({exc})", file=sys.stderr)
    if not versions:
        raise SystemExit(f"could not find which pip version ansible-test wants (in {source})")
    return versions


def install_offline_get_pip(versions: set[str]) -> list[Path]:
    """Put the offline get-pip where ansible-test looks for its cached bootstrap script."""
    GET_PIP_CACHE.mkdir(parents=True, exist_ok=True)
    script = OFFLINE_GET_PIP.read_bytes()
    installed = []
    for version in sorted(versions):
        target = GET_PIP_CACHE / f"get_pip_{version.replace('.', '_')}.py"
        if not target.is_file() or target.read_bytes() != script:
            temporary = target.with_name(target.name + ".tmp")
            temporary.write_bytes(script)
            temporary.replace(target)
        installed.append(target)
    return installed


def environment() -> dict[str, str]:
    """ansible-test's environment: this interpreter's bin directory first on PATH.

    With ``--python X.Y`` ansible-test looks up ``pythonX.Y`` on PATH; the project's virtual
    environment must win over other installations (pyenv shims, the system Python).
    """
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    # Other collections on the user's path are not what is tested here.
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    env.pop("ANSIBLE_COLLECTIONS_PATHS", None)
    env.pop("ANSIBLE_CONFIG", None)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run ansible-test sanity on the lepton.ops collection, offline.",
        epilog="Other options are passed to `ansible-test sanity` as they are.",
    )
    parser.add_argument(
        "--python", default=DEFAULT_PYTHON, help=f"Python version to test with ({DEFAULT_PYTHON})"
    )
    args, passthrough = parser.parse_known_args(argv)

    if not (COLLECTION_ROOT / "galaxy.yml").is_file():
        raise SystemExit(f"the collection is not at {COLLECTION_ROOT}")

    for path in install_offline_get_pip(pip_versions(args.python)):
        print(f"offline pip bootstrap: {path}", flush=True)

    command = [*ansible_test_command(), "sanity", "--python", args.python, "--color", "no"]
    for test, reason in SKIPPED_TESTS.items():
        print(f"skipping sanity test {test}: {reason}", flush=True)
        command += ["--skip-test", test]
    command += passthrough

    print(f"running in {COLLECTION_ROOT}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    completed = subprocess.run(command, cwd=COLLECTION_ROOT, env=environment(), check=False)
    elapsed = time.monotonic() - started
    verdict = "passed" if completed.returncode == 0 else f"FAILED (exit {completed.returncode})"
    print(f"ansible-test sanity {verdict} in {elapsed:.0f}s", flush=True)
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
