"""A stand-in for get-pip.py that needs no download of its own.

ansible-test bootstraps pip into each of its sanity-test virtual environments (created with
``--without-pip``) by running a get-pip.py that it downloads from the internet, unless a copy
is cached at ``~/.ansible/test/cache/get_pip_<version>.py``. tools/ansible_test_sanity.py puts
this file there, so the bootstrap works where only the package index is reachable.

It is run the way get-pip.py is (see ansible_test/_util/target/setup/requirements.py
``bootstrap()`` and quiet_pip.py): as ``__main__`` of a module named ``get_pip_<version>``
by the target virtual environment's Python, with the environment variable ``GET_PIP`` naming
this file and the pip options and packages on the command line, for example::

    python quiet_pip.py --disable-pip-version-check pip==24.2 --no-setuptools --no-wheel

Like get-pip.py, it then runs ``pip install --upgrade --force-reinstall <args> pip`` (adding
setuptools and wheel unless ``--no-setuptools`` / ``--no-wheel`` or ``PIP_NO_SETUPTOOLS`` /
``PIP_NO_WHEEL`` say not to, or they are already installed), with every other argument passed
through. The difference: the pip that performs that install comes from the interpreter's own
``ensurepip`` instead of a copy embedded in the script. Whatever ``ensurepip`` brought along
that was not asked for (setuptools, on Python < 3.12) is removed again.

Standard library only: it runs inside an empty virtual environment.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys


def _wanted(skip_flag: bool, env_name: str, module: str) -> bool:
    """What get-pip decides for setuptools and wheel: install unless told not to or present."""
    absent = importlib.util.find_spec(module) is None
    return not skip_flag and not os.environ.get(env_name) and absent


def _installed(module: str) -> bool:
    """Whether ``module`` is importable in a fresh process of this interpreter."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.call([sys.executable, "-c", probe]) == 0


def _run(command: list[str]) -> None:
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def pip_install_arguments(argv: list[str]) -> tuple[list[str], bool, bool]:
    """Split get-pip's command line into the ``pip install`` arguments and its own two flags."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--no-setuptools", action="store_true")
    parser.add_argument("--no-wheel", action="store_true")
    own, passthrough = parser.parse_known_args(argv)

    setuptools = _wanted(own.no_setuptools, "PIP_NO_SETUPTOOLS", "setuptools")
    wheel = _wanted(own.no_wheel, "PIP_NO_WHEEL", "wheel")

    packages = ["pip"]
    if setuptools:
        packages.append("setuptools")
    if wheel:
        packages.append("wheel")
    return ["install", "--upgrade", "--force-reinstall", *passthrough, *packages], setuptools, wheel


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    install_args, setuptools, _wheel = pip_install_arguments(args)
    had_setuptools = importlib.util.find_spec("setuptools") is not None

    # A pip to install pip with: the one bundled with this Python (no network needed).
    _run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])

    # Then the pip (and packages) that were asked for, from the package index.
    _run([sys.executable, "-m", "pip", *install_args])

    # ensurepip installs setuptools on Python < 3.12; get-pip would not have.
    if not setuptools and not had_setuptools and _installed("setuptools"):
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "uninstall", "--yes", "--quiet", "setuptools"])


if __name__ == "__main__":
    main()
