"""The wheelhouse: every wheel a node's virtualenv needs, built once on the controller.

Nodes install from it with no package index, so a fleet does not hit the index
once per node, works air-gapped, and runs exactly the controller's lepton-ops. The
third-party wheels are the versions of the project's lock (``node_pins``): a node runs
what CI tested.

Layout under ``cache_dir``::

    deps-<key>/      third-party wheels for the node extra, at the lock's versions
                     (downloaded once, then frozen)
    self-<hash>/     the wheel of lepton-ops: built from the current checkout, or packed
                     from the installed lepton-ops when it was installed from a wheel
    <id>/            the wheelhouse: links to both, requirements.txt (exact pins),
                     wheelhouse.json (its id) and ``uv``, the installer the nodes run
    <id>.tar         the same, packed for shipping to nodes
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.gateway import content
from lepton_ops.provision.installed_wheel import pack_installed
from lepton_ops.provision.node_pins import NODE_PINS, locked_pins

NODE_EXTRA = "node"
DIST_NAME = "lepton-ops"
_SOURCE_PARTS = ("lepton_ops", "ansible_collections", "pyproject.toml", "README.md")
_SKIP_DIRS = {"__pycache__", "_content", "output", ".pytest_cache", ".mypy_cache"}


@dataclass(frozen=True)
class Wheelhouse:
    """A complete, content-addressed set of wheels for the nodes."""

    path: Path
    id: str
    requirements: Path
    archive: Path
    uv_binary: Path
    wheels: tuple[str, ...]
    built: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "id": self.id,
            "requirements": str(self.requirements),
            "archive": str(self.archive),
            "uv_binary": str(self.uv_binary),
            "wheels": list(self.wheels),
            "built": self.built,
        }


def node_requirements() -> list[str]:
    """The node extra's requirements, read from lepton-ops' own metadata (pyproject.toml)."""
    try:
        requires = metadata.requires(DIST_NAME) or []
    except metadata.PackageNotFoundError as exc:
        raise OperationFailed("lepton-ops is not installed; install it with pip or uv") from exc
    marker = f'extra == "{NODE_EXTRA}"'
    specs = []
    for line in requires:
        spec, _, env_marker = line.partition(";")
        if env_marker.strip().replace("'", '"') == marker:
            specs.append(spec.strip())
    return specs


def build_wheelhouse(
    cache_dir: Path,
    *,
    project_root: Path | None = None,
    python_version: str | None = None,
    platform: str | None = None,
    refresh: bool = False,
) -> Wheelhouse:
    """Build the wheelhouse, reusing every part already in ``cache_dir``.

    lepton-ops' own wheel is built from ``project_root``, else from the checkout lepton-ops
    runs from, else packed from the installed distribution (lepton-ops installed from a wheel).
    """
    root = project_root or content.project_root()
    if project_root is not None and not (project_root / "pyproject.toml").is_file():
        raise BadInput(f"{project_root} is not a lepton-ops source checkout (no pyproject.toml)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / ".lock")):
        specs = node_requirements()
        deps_dir, deps_built = _third_party(cache_dir, specs, python_version, platform, refresh)
        if root is None:
            self_dir, self_built = pack_installed(DIST_NAME, cache_dir)
        else:
            self_dir, self_built = _own_wheel(cache_dir, root)
        return _assemble(cache_dir, deps_dir, self_dir, built=deps_built or self_built)


def _third_party(
    cache_dir: Path,
    specs: list[str],
    python_version: str | None,
    platform: str | None,
    refresh: bool,
) -> tuple[Path, bool]:
    target_python = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    pins = locked_pins(python_version)  # None: the controller's own Python, markers and all
    key = _digest(json.dumps([sorted(specs), target_python, platform or "native", pins]))
    deps_dir = cache_dir / f"deps-{key}"
    if (deps_dir / "complete.json").is_file() and not refresh:
        return deps_dir, False
    partial = cache_dir / f"deps-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    constraints = cache_dir / f"deps-{key}.constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--constraint",
        str(constraints),
        "--dest",
        str(partial),
    ]
    if python_version:
        command += ["--python-version", python_version]
    if platform:
        command += ["--platform", platform]
    _run(command + specs, "downloading the node packages")
    files = sorted(path.name for path in partial.glob("*.whl"))
    _check_locked(files, pins)
    (partial / "complete.json").write_text(json.dumps({"specs": specs, "wheels": files}))
    constraints.replace(partial / "constraints.txt")
    shutil.rmtree(deps_dir, ignore_errors=True)
    partial.rename(deps_dir)
    return deps_dir, True


def _own_wheel(cache_dir: Path, root: Path) -> tuple[Path, bool]:
    source_hash = _source_digest(root)
    self_dir = cache_dir / f"self-{source_hash}"
    if any(self_dir.glob("*.whl")):
        return self_dir, False
    partial = cache_dir / f"self-{source_hash}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        str(uv_binary()),
        "build",
        "--wheel",
        "--no-build-isolation",
        "--quiet",
        "--python",
        sys.executable,
        "--out-dir",
        str(partial),
        str(root),
    ]
    _run(command, "building the lepton-ops wheel")
    for stale in cache_dir.glob("self-*"):
        if stale.is_dir() and stale != partial:
            shutil.rmtree(stale, ignore_errors=True)
    partial.rename(self_dir)
    return self_dir, True


def _assemble(cache_dir: Path, deps_dir: Path, self_dir: Path, *, built: bool) -> Wheelhouse:
    wheels = sorted([*deps_dir.glob("*.whl"), *self_dir.glob("*.whl")], key=lambda p: p.name)
    installer = uv_binary()
    parts = [f"{path.name}:{_file_digest(path)}" for path in (*wheels, installer)]
    house_id = _digest("\n".join(parts))
    house = cache_dir / house_id
    archive = cache_dir / f"{house_id}.tar"
    requirements = house / "requirements.txt"
    if not (archive.is_file() and requirements.is_file()):
        built = True
        shutil.rmtree(house, ignore_errors=True)
        partial = cache_dir / f"{house_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        for wheel in wheels:
            os.link(wheel, partial / wheel.name)
        shutil.copy2(installer, partial / "uv")
        pins = sorted(_pin(wheel.name) for wheel in wheels)
        (partial / "requirements.txt").write_text("\n".join(pins) + "\n")
        (partial / "wheelhouse.json").write_text(
            json.dumps({"id": house_id, "wheels": [w.name for w in wheels]}, indent=2)
        )
        _pack(partial, archive)
        partial.rename(house)
        _remove_old_houses(cache_dir, keep=house_id)
    return Wheelhouse(
        path=house,
        id=house_id,
        requirements=requirements,
        archive=archive,
        uv_binary=installer,
        wheels=tuple(w.name for w in wheels),
        built=built,
    )


def _check_locked(wheels: list[str], pins: dict[str, str]) -> None:
    """Every downloaded wheel is the lock's version of its package."""
    for wheel in wheels:
        try:
            name, version, _, _ = parse_wheel_filename(wheel)
        except InvalidWheelFilename as exc:
            raise OperationFailed(f"downloaded a file that is not a wheel: {wheel}") from exc
        locked = pins.get(canonicalize_name(name))
        if locked is None:
            raise OperationFailed(
                f"the node packages need {name} {version}, which the lock ({NODE_PINS.name}) "
                "does not pin: run `make lock`"
            )
        if str(version) != locked:
            raise OperationFailed(
                f"downloaded {name} {version}, but the lock pins {locked}: run `make lock`"
            )


def uv_binary() -> Path:
    """The uv executable shipped to nodes (the controller's own, from the uv package)."""
    try:
        from uv import find_uv_bin
    except ImportError as exc:  # pragma: no cover - uv is a dependency
        raise OperationFailed("uv is not installed in lepton-ops' environment") from exc
    return Path(find_uv_bin())


def _pin(wheel_name: str) -> str:
    name, version = wheel_name.split("-")[:2]
    return f"{name.replace('_', '-').lower()}=={version}"


def _pack(directory: Path, archive: Path) -> None:
    temporary = archive.with_suffix(".tar.partial")
    with tarfile.open(temporary, "w") as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=path.name)
    temporary.rename(archive)


def _remove_old_houses(cache_dir: Path, keep: str) -> None:
    for path in cache_dir.iterdir():
        stem = path.name.removesuffix(".tar")
        if len(stem) == len(keep) and stem != keep and all(c in "0123456789abcdef" for c in stem):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _source_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for part in _SOURCE_PARTS:
        base = root / part
        files = [base] if base.is_file() else sorted(_walk(base))
        for path in files:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _walk(base: Path) -> list[Path]:
    found: list[Path] = []
    if not base.is_dir():
        return found
    for path in base.iterdir():
        if path.is_dir():
            if path.name not in _SKIP_DIRS:
                found.extend(_walk(path))
        elif path.suffix not in {".pyc", ".pyo"}:
            found.append(path)
    return found


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(command: list[str], what: str) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit code {completed.returncode}"
        raise OperationFailed(f"{what} failed: {last}")
