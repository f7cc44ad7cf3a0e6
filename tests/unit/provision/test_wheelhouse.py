"""The wheelhouse is content-addressed and built once; downloads and builds are faked here."""

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lepton_ops.errors import OperationFailed
from lepton_ops.provision import wheelhouse as wh
from lepton_ops.provision.node_pins import locked_pins

REPO = Path(__file__).resolve().parents[3]


#: What the fake download below writes, as the lock would pin it.
FAKE_PINS = {"flask": "3.1.0", "numpy": "2.1.0"}


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
    monkeypatch.setattr(wh, "locked_pins", lambda python_version: dict(FAKE_PINS))
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


def test_download_is_constrained_to_the_lock(
    tmp_path: Path, project: Path, fake_tools: list[list[str]]
) -> None:
    wh.build_wheelhouse(tmp_path / "cache", project_root=project)
    download = next(c for c in fake_tools if "download" in c)
    constraints = Path(download[download.index("--constraint") + 1])
    kept = next((tmp_path / "cache").glob("deps-*/constraints.txt"))
    assert not constraints.exists()  # moved next to the wheels it produced
    assert kept.read_text().splitlines() == ["flask==3.1.0", "numpy==2.1.0"]


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        ({"flask": "3.1.0", "numpy": "2.0.0"}, "downloaded numpy 2.1.0, but the lock pins 2.0.0"),
        ({"flask": "3.1.0"}, "numpy 2.1.0, which the lock"),
    ],
)
def test_a_wheel_off_the_lock_fails_the_build(
    tmp_path: Path,
    project: Path,
    fake_tools: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
    pins: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setattr(wh, "locked_pins", lambda python_version: pins)
    with pytest.raises(OperationFailed, match=message):
        wh.build_wheelhouse(tmp_path / "cache", project_root=project)
    assert not list((tmp_path / "cache").glob("deps-*/complete.json"))


def test_node_pins_are_the_lock() -> None:
    checked = subprocess.run(
        [sys.executable, str(REPO / "tools" / "node_pins.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("python_version", ["3.11", "3.12"])
def test_every_node_requirement_has_a_locked_version_that_satisfies_it(
    python_version: str,
) -> None:
    pins = locked_pins(python_version)
    for spec in wh.node_requirements():
        requirement = Requirement(spec)
        version = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (spec, version)
