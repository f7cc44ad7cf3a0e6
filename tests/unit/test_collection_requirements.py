"""The lepton.ops collection declares what it needs, in agreement with the library."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from ansible.release import __version__ as ansible_core_version
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "lepton" / "ops"


def _library_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def test_collection_and_library_share_a_version() -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert galaxy["version"] == _library_version()


def test_requirements_name_the_library_in_its_version() -> None:
    lines = [
        line.strip()
        for line in (COLLECTION / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    requirements = [Requirement(line) for line in lines]
    assert [r.name for r in requirements] == ["lepton-ops"]
    assert requirements[0].specifier.contains(_library_version())


def test_execution_environment_metadata_points_at_existing_files() -> None:
    meta = yaml.safe_load((COLLECTION / "meta" / "execution-environment.yml").read_text())
    assert meta["version"] == 1
    for kind in ("python", "system"):
        assert (COLLECTION / meta["dependencies"][kind]).is_file(), kind


def test_runtime_admits_the_ansible_core_lepton_ops_installs() -> None:
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert SpecifierSet(runtime["requires_ansible"]).contains(ansible_core_version)


def _event_source() -> ModuleType:
    path = COLLECTION / "extensions/eda/plugins/event_source/failure_predictions.py"
    spec = importlib.util.spec_from_file_location("failure_predictions_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_event_source_without_the_library_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "lepton_ops.remediate.events", None)
    source = _event_source()
    with pytest.raises(ImportError, match=r"python -m pip install lepton-ops"):
        asyncio.run(source.main(asyncio.Queue(), {"once": True}))
