"""Packing an installed distribution back into a wheel (lepton-ops installed from a wheel)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from lepton_ops.errors import OperationFailed
from lepton_ops.provision.installed_wheel import pack_distribution

DIST_INFO = "demo_pkg-1.2.0.dist-info"
PACKAGE_FILES = {
    "demo_pkg/__init__.py": b"VALUE = 1\n",
    "demo_pkg/_content/playbook.yml": b"---\n- hosts: all\n",
    f"{DIST_INFO}/METADATA": b"Metadata-Version: 2.4\nName: demo-pkg\nVersion: 1.2.0\n",
    f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    f"{DIST_INFO}/entry_points.txt": b"[console_scripts]\ndemo = demo_pkg:main\n",
}
#: What installing adds, which the packed wheel must not hold.
INSTALLED_ONLY = {
    "demo_pkg/__pycache__/__init__.cpython-311.pyc": b"bytecode",
    f"{DIST_INFO}/INSTALLER": b"uv\n",
    f"{DIST_INFO}/REQUESTED": b"",
    f"{DIST_INFO}/direct_url.json": b"{}",
}


def _install(site: Path, files: dict[str, bytes]) -> metadata.Distribution:
    records = []
    for relative, data in files.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        records.append(f"{relative},,")
    records += ["../../../bin/demo,,", f"{DIST_INFO}/RECORD,,"]
    (site / DIST_INFO / "RECORD").write_text("\n".join(records) + "\n")
    return metadata.PathDistribution(site / DIST_INFO)


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_packs_the_wheel_files_and_a_valid_record(tmp_path: Path) -> None:
    distribution = _install(tmp_path / "site", {**PACKAGE_FILES, **INSTALLED_ONLY})
    self_dir, packed = pack_distribution(distribution, tmp_path / "cache")
    assert packed
    (wheel,) = self_dir.glob("*.whl")
    assert wheel.name == "demo_pkg-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert names == {*PACKAGE_FILES, f"{DIST_INFO}/RECORD"}
        for relative, data in PACKAGE_FILES.items():
            assert archive.read(relative) == data
        record = archive.read(f"{DIST_INFO}/RECORD").decode().splitlines()
    init = PACKAGE_FILES["demo_pkg/__init__.py"]
    assert f"demo_pkg/__init__.py,{_digest(init)},{len(init)}" in record
    assert record[-1] == f"{DIST_INFO}/RECORD,,"


def test_same_installation_same_wheel_and_reused(tmp_path: Path) -> None:
    distribution = _install(tmp_path / "site", PACKAGE_FILES)
    first, _ = pack_distribution(distribution, tmp_path / "one")
    second, _ = pack_distribution(distribution, tmp_path / "two")
    assert first.name == second.name
    wheel_bytes = {next(d.glob("*.whl")).read_bytes() for d in (first, second)}
    assert len(wheel_bytes) == 1
    again, packed = pack_distribution(distribution, tmp_path / "one")
    assert again == first and not packed


def test_a_changed_file_packs_a_new_wheel_and_drops_the_old(tmp_path: Path) -> None:
    distribution = _install(tmp_path / "site", PACKAGE_FILES)
    first, _ = pack_distribution(distribution, tmp_path / "cache")
    (tmp_path / "site" / "demo_pkg" / "__init__.py").write_bytes(b"VALUE = 2\n")
    second, packed = pack_distribution(distribution, tmp_path / "cache")
    assert packed and second != first and not first.exists()


def test_an_editable_install_is_refused(tmp_path: Path) -> None:
    files = {
        "_demo_pkg.pth": b"/src/demo\n",
        **{k: v for k, v in PACKAGE_FILES.items() if ".dist-info" in k},
    }
    distribution = _install(tmp_path / "site", files)
    with pytest.raises(OperationFailed, match="editable install"):
        pack_distribution(distribution, tmp_path / "cache")
