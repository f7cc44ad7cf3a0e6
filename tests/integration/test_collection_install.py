"""The lepton.ops collection as Ansible users get it: built, installed, run from elsewhere.

Nothing here runs from the checkout. The collection is the tarball of
``ansible-galaxy collection build``, installed with ``ansible-galaxy collection install`` (from
the file, and from a requirements.yml) into empty collections paths; the library is the wheel of
``uv build``, installed into a fresh virtualenv at the lock's versions. The playbooks run from a
directory outside the checkout, with no ``ansible.cfg`` of ours and no ``ANSIBLE_*`` variable
but the collections path.

- ``test_installed_collection_syntax_checks_from_outside`` needs no lab.
- ``test_installed_collection_runs_on_the_lab`` runs provision, deploy, telemetry and
  predict_and_remediate --check against the session's ssh lab; provision and deploy again
  change nothing. It leaves the lab as the CLI deployed it (its nodes got the user's
  wheelhouse meanwhile), so the tests after it see the session lab they expect.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from lab_tools import NODES, Deployed, deploy, provision

from lepton_ops.credentials.tls import ca_cert_path, node_cert_paths
from lepton_ops.credentials.tokens import token_path
from lepton_ops.lab import LabMode

if TYPE_CHECKING:
    from conftest import RunningLab

REPO = Path(__file__).resolve().parents[2]
COLLECTION_SOURCE = REPO / "ansible_collections" / "lepton" / "ops"
DEV_BIN = Path(sys.executable).parent
PLAYBOOKS = ("provision", "deploy", "telemetry", "predict_and_remediate", "remediate", "chaos")
RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)
TINY_INVENTORY = """\
all:
  hosts:
    web1: {ansible_host: 127.0.1.250, lepton_weight: 100}
  children:
    aggregator: {hosts: {web1: {}}}
    workers: {hosts: {web1: {}}}
"""


@dataclass(frozen=True)
class UserInstall:
    """What a user has after installing: a venv with the library, collections paths, a cwd."""

    venv_bin: Path
    collections: Path
    collections_from_file: Path
    workdir: Path
    tarball: Path

    def env(self) -> dict[str, str]:
        """The user's environment: their venv first, our Ansible settings gone."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ANSIBLE_", "LEPTON_OPS_"))
            and key not in {"PYTHONPATH", "VIRTUAL_ENV"}
        }
        env["PATH"] = os.pathsep.join((str(self.venv_bin), os.environ.get("PATH", "")))
        env["ANSIBLE_COLLECTIONS_PATH"] = str(self.collections)
        env["ANSIBLE_NOCOLOR"] = "1"
        return env

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command), cwd=self.workdir, env=self.env(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def playbook(self, inventory: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            str(self.venv_bin / "ansible-playbook"), "-i", str(inventory), "-f", "10",
            f"lepton.ops.{name}", *args,
        )  # fmt: skip


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_SYSTEM_CERTS": "1"}
    env.pop("ANSIBLE_CONFIG", None)
    completed = subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert completed.returncode == 0, f"{command}:\n{completed.stdout}\n{completed.stderr}"
    return completed


@pytest.fixture(scope="module")
def user_install(tmp_path_factory: pytest.TempPathFactory) -> UserInstall:
    base = tmp_path_factory.mktemp("collection-user")
    dist = base / "dist"
    # The two artifacts a release ships: the collection tarball and the library's wheel.
    _run(str(DEV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION_SOURCE),
         "--output-path", str(dist))  # fmt: skip
    _run(str(DEV_BIN / "uv"), "build", "--wheel", "--no-build-isolation", "--quiet",
         "--python", sys.executable, "--out-dir", str(dist), str(REPO))  # fmt: skip
    (tarball,) = dist.glob("lepton-ops-*.tar.gz")
    (wheel,) = dist.glob("lepton_ops-*.whl")

    # The library, at the lock's versions, in a fresh venv (with pip: the wheelhouse uses it).
    constraints = base / "constraints.txt"
    exported = _run(str(DEV_BIN / "uv"), "export", "--frozen", "--no-emit-project",
                    "--no-hashes", "--no-header", "--no-annotate", cwd=REPO)  # fmt: skip
    constraints.write_text(exported.stdout)
    venv = base / "venv"
    _run(str(DEV_BIN / "uv"), "venv", "--quiet", "--seed", "--python", sys.executable, str(venv))
    _run(str(DEV_BIN / "uv"), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "--constraint", str(constraints), str(wheel))  # fmt: skip

    workdir = base / "elsewhere"
    workdir.mkdir()
    install = UserInstall(
        venv_bin=venv / "bin",
        collections=base / "collections-from-requirements",
        collections_from_file=base / "collections-from-file",
        workdir=workdir,
        tarball=tarball,
    )
    galaxy = str(install.venv_bin / "ansible-galaxy")
    from_file = install.run(galaxy, "collection", "install", "-p",
                            str(install.collections_from_file), str(tarball))  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    requirements = workdir / "requirements.yml"
    requirements.write_text(
        yaml.safe_dump({"collections": [{"name": str(tarball), "type": "file"}]})
    )
    from_requirements = install.run(galaxy, "collection", "install", "-r", str(requirements),
                                    "-p", str(install.collections))  # fmt: skip
    assert from_requirements.returncode == 0, from_requirements.stderr
    requirements.unlink()
    return install


def _installed(root: Path) -> Path:
    return root / "ansible_collections" / "lepton" / "ops"


@pytest.mark.slow
def test_installed_collection_syntax_checks_from_outside(
    user_install: UserInstall, tmp_path: Path
) -> None:
    installed = _installed(user_install.collections)
    # Both ways of installing give the same files; the roles came with the collection.
    files = json.loads((installed / "FILES.json").read_text())
    assert files == json.loads(
        (_installed(user_install.collections_from_file) / "FILES.json").read_text()
    )
    names = {entry["name"] for entry in files["files"]}
    for role in ("python_stack", "lepton_worker", "lepton_aggregator"):
        assert f"roles/{role}/tasks/main.yml" in names
    assert not any(name.startswith("tests/output") for name in names)
    assert (installed / "requirements.txt").is_file()
    assert (installed / "meta" / "execution-environment.yml").is_file()

    # The user's Python runs the library from its wheel, not from this checkout.
    where = user_install.run(
        str(user_install.venv_bin / "python"), "-c",
        "import lepton_ops.gateway.content as c; print(c.__file__); print(c.project_root())",
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    module_file, project_root = where.stdout.split()
    assert not Path(module_file).is_relative_to(REPO) and project_root == "None"
    listed = user_install.run(str(user_install.venv_bin / "ansible-galaxy"), "collection", "list",
                              "lepton.ops", "--format", "json")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert list(json.loads(listed.stdout)) == [
        str(user_install.collections / "ansible_collections")
    ]

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(TINY_INVENTORY)
    assert not (user_install.workdir / "ansible.cfg").exists()
    for name in PLAYBOOKS:
        checked = user_install.playbook(inventory, name, "--syntax-check")
        assert checked.returncode == 0, f"lepton.ops.{name}:\n{checked.stdout}\n{checked.stderr}"
        assert str(installed / "playbooks" / f"{name}.yml") in checked.stdout


def _recap(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[int, int, int, int]]:
    """host -> (ok, changed, unreachable, failed) from the PLAY RECAP."""
    return {
        host: (int(ok), int(changed), int(unreachable), int(failed))
        for host, ok, changed, unreachable, failed in RECAP.findall(result.stdout)
    }


def _succeeded(
    result: subprocess.CompletedProcess[str], what: str
) -> dict[str, tuple[int, int, int, int]]:
    recap = _recap(result)
    assert result.returncode == 0, f"{what}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert recap, f"{what}: no PLAY RECAP\n{result.stdout[-2000:]}"
    assert all(u == 0 and f == 0 for _, _, u, f in recap.values()), f"{what}: {recap}"
    return recap


@pytest.fixture
def lab_restored(deployed: Deployed) -> Iterator[RunningLab]:
    """The session lab; afterwards provisioned and deployed by the CLI again, as before."""
    lab = deployed.lab
    if lab.mode is not LabMode.SSH:
        pytest.skip("the collection's user path is tested against the ssh lab")
    yield lab
    provisioned, _ = provision(lab)
    assert provisioned.returncode == 0, provisioned.stderr
    redeployed, _ = deploy(lab)
    assert redeployed.returncode == 0, redeployed.stderr


@pytest.mark.slow
@pytest.mark.ssh
def test_installed_collection_runs_on_the_lab(
    user_install: UserInstall, lab_restored: RunningLab
) -> None:
    inventory = lab_restored.inventory
    wheelhouse_cache = user_install.workdir / "wheelhouse-cache"
    provision_vars = ("-e", f"lepton_wheelhouse_cache={wheelhouse_cache}")
    state_dir = lab_restored.state_dir
    deploy_vars = (
        "-e",
        f"lepton_service_token_file={token_path(state_dir)}",
        "-e",
        f"lepton_tls_ca_file={ca_cert_path(state_dir)}",
        "-e",
        f"lepton_tls_node_dir={node_cert_paths(state_dir, NODES[0]).cert.parent}",
    )

    for name, extra in (("provision", provision_vars), ("deploy", deploy_vars)):
        first = _succeeded(user_install.playbook(inventory, name, *extra), name)
        assert set(NODES) <= set(first), first
    for name, extra in (("provision", provision_vars), ("deploy", deploy_vars)):
        again = _succeeded(user_install.playbook(inventory, name, *extra), f"{name} again")
        assert set(NODES) <= set(again), again
        assert {host: counts[1] for host, counts in again.items()} == dict.fromkeys(again, 0)

    telemetry = _succeeded(user_install.playbook(inventory, "telemetry"), "telemetry")
    assert set(telemetry) == set(NODES)

    # predict_and_remediate judges with a model and stored telemetry of its state dir: the
    # user's own, filled with the lepton-ops command their venv has (the library's CLI).
    state_dir = user_install.workdir / "state"
    cli = str(user_install.venv_bin / "lepton-ops")
    for args in (("model", "install-starter"), ("telemetry", "collect", "-i", str(inventory)),
                 ("telemetry", "collect", "-i", str(inventory))):  # fmt: skip
        ran = user_install.run(cli, *args, "--state-dir", str(state_dir))
        assert ran.returncode == 0, f"lepton-ops {' '.join(args)}: {ran.stderr}"
    _succeeded(
        user_install.playbook(inventory, "predict_and_remediate", "--check",
                              "-e", f"lepton_state_dir={state_dir}"),
        "predict_and_remediate --check",
    )  # fmt: skip
