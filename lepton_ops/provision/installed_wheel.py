"""A wheel of an installed distribution, packed from its installed files.

When lepton-ops was installed from a wheel there is no source checkout to build one from;
the nodes get the very files the controller runs, packed again as a wheel: the files the
installer recorded (RECORD), minus what installing adds (bytecode, console scripts, the
installer's own metadata). Packing is deterministic, so the same installation always gives
the same wheel, and the wheelhouse stays the same between runs.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath

from lepton_ops.errors import OperationFailed

#: dist-info files that installing writes (RECORD is rewritten for the new wheel).
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def pack_installed(dist_name: str, cache_dir: Path) -> tuple[Path, bool]:
    """``cache_dir/self-<hash>/`` holding the wheel of ``dist_name``; True when packed now."""
    try:
        distribution = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise OperationFailed(f"{dist_name} is not installed; install it with pip or uv") from exc
    return pack_distribution(distribution, cache_dir)


def pack_distribution(distribution: metadata.Distribution, cache_dir: Path) -> tuple[Path, bool]:
    files = _wheel_files(distribution)
    digest = hashlib.sha256()
    for relative, path in files:
        digest.update(relative.encode())
        digest.update(path.read_bytes())
    self_dir = cache_dir / f"self-{digest.hexdigest()[:16]}"
    if any(self_dir.glob("*.whl")):
        return self_dir, False
    partial = cache_dir / f"{self_dir.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    wheel = partial / _wheel_name(distribution, files)
    _write_wheel(wheel, files, _dist_info(files))
    for stale in cache_dir.glob("self-*"):
        if stale.is_dir() and stale != partial:
            shutil.rmtree(stale, ignore_errors=True)
    partial.rename(self_dir)
    return self_dir, True


def _wheel_files(distribution: metadata.Distribution) -> list[tuple[str, Path]]:
    """(path in the wheel, installed file) of every file the wheel had, in a stable order."""
    recorded = distribution.files
    if not recorded:
        raise OperationFailed(
            f"{distribution.metadata['Name']} has no RECORD of its installed files: "
            "reinstall it with pip or uv"
        )
    files = []
    for entry in recorded:
        posix = PurePosixPath(str(entry))
        if posix.parts[0] == ".." or "__pycache__" in posix.parts or posix.suffix == ".pyc":
            continue  # console scripts (installed outside site-packages) and bytecode
        if posix.parent.name.endswith(".dist-info") and posix.name in _INSTALLER_FILES:
            continue
        path = Path(str(entry.locate()))
        if not path.is_file():
            raise OperationFailed(f"an installed file of lepton-ops is missing: {path}")
        files.append((str(posix), path))
    if any(relative.endswith(".pth") for relative, _ in files):
        raise OperationFailed(
            "lepton-ops is an editable install: build its wheel from the checkout"
        )
    return sorted(files)


def _dist_info(files: list[tuple[str, Path]]) -> str:
    names = {PurePosixPath(relative).parts[0] for relative, _ in files}
    found = sorted(name for name in names if name.endswith(".dist-info"))
    if len(found) != 1:
        raise OperationFailed(
            f"expected one .dist-info directory among the installed files: {found}"
        )
    return found[0]


def _wheel_name(distribution: metadata.Distribution, files: list[tuple[str, Path]]) -> str:
    dist_info = _dist_info(files)
    wheel_meta = dict(files)[f"{dist_info}/WHEEL"].read_text(encoding="utf-8")
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")
    ]
    if not tags:
        raise OperationFailed(f"{dist_info}/WHEEL names no tag")
    pythons = ".".join(dict.fromkeys(tag.split("-")[0] for tag in tags))
    abis = ".".join(dict.fromkeys(tag.split("-")[1] for tag in tags))
    platforms = ".".join(dict.fromkeys(tag.split("-")[2] for tag in tags))
    stem = dist_info.removesuffix(".dist-info")  # <name>-<version>, already normalised
    return f"{stem}-{pythons}-{abis}-{platforms}.whl"


def _write_wheel(wheel: Path, files: list[tuple[str, Path]], dist_info: str) -> None:
    record_lines = []
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative, path in files:
            data = path.read_bytes()
            _add(archive, relative, data)
            hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record_lines.append(f"{relative},sha256={hashed},{len(data)}")
        record_lines.append(f"{dist_info}/RECORD,,")
        _add(archive, f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode())


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)
