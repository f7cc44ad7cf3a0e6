"""The wheelhouse is content-addressed and built once; downloads and builds are faked here."""

import tarfile
from pathlib import Path

import pytest

from lepton_ops.provision import wheelhouse as wh


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace pip download / uv build by writing placeholder wheel files."""
    calls: list[list[str]] = []

    def fake_run(command: list[str], what: str) -> None:
        calls.append(command)
        if "download" in command:
            dest = Path(command[command.index("--dest") + 1])
            dest.mkdir(parents=True)
            for name in ("flask-3.1.0-py3-none-any.whl", "numpy-2.1.0-cp311-cp311-linux.whl"):
                (dest / name).write_bytes(name.encode())
        else:
            out = Path(command[command.index("--out-dir") + 1])
            out.mkdir(parents=True)
            (out / "lepton_ops-0.1.0-py3-none-any.whl").write_bytes(b"self")

    monkeypatch.setattr(wh, "_run", fake_run)
    return calls


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "lepton_ops").mkdir(parents=True)
    (root / "lepton_ops" / "__init__.py").write_text("x = 1\n")
    (root / "pyproject.toml").write_text("[project]\nname='lepton-ops'\n")
    return root


def test_node_requirements_come_from_the_node_extra() -> None:
    names = {spec.split(">")[0].split("=")[0].lower() for spec in wh.node_requirements()}
    assert {"flask", "gunicorn", "numpy", "scikit-learn"} <= names
    assert "ansible-core" not in names


def test_build_then_reuse(tmp_path: Path, project: Path, fake_tools: list[list[str]]) -> None:
    first = wh.build_wheelhouse(tmp_path / "cache", project_root=project)
    assert first.built
    assert first.requirements.read_text().splitlines() == [
        "flask==3.1.0",
        "lepton-ops==0.1.0",
        "numpy==2.1.0",
    ]
    with tarfile.open(first.archive) as tar:
        assert "requirements.txt" in tar.getnames()
        assert "lepton_ops-0.1.0-py3-none-any.whl" in tar.getnames()
    calls = len(fake_tools)
    again = wh.build_wheelhouse(tmp_path / "cache", project_root=project)
    assert not again.built
    assert again.id == first.id
    assert len(fake_tools) == calls


def test_source_change_rebuilds_only_the_own_wheel(
    tmp_path: Path, project: Path, fake_tools: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = wh.build_wheelhouse(tmp_path / "cache", project_root=project)
    (project / "lepton_ops" / "__init__.py").write_text("x = 2\n")

    def other_wheel(command: list[str], what: str) -> None:
        assert "download" not in command, "third-party wheels must come from the cache"
        out = Path(command[command.index("--out-dir") + 1])
        out.mkdir(parents=True)
        (out / "lepton_ops-0.1.0-py3-none-any.whl").write_bytes(b"self, changed")

    monkeypatch.setattr(wh, "_run", other_wheel)
    second = wh.build_wheelhouse(tmp_path / "cache", project_root=project)
    assert second.built and second.id != first.id
    assert not first.path.exists() and not first.archive.exists()


def test_python_version_selects_another_download(
    tmp_path: Path, project: Path, fake_tools: list[list[str]]
) -> None:
    wh.build_wheelhouse(tmp_path / "cache", project_root=project, python_version="3.12")
    download = next(c for c in fake_tools if "download" in c)
    assert download[download.index("--python-version") + 1] == "3.12"


def test_pin_normalises_names() -> None:
    assert wh._pin("scikit_learn-1.9.1-cp311-cp311-manylinux.whl") == "scikit-learn==1.9.1"
