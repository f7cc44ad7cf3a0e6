"""The gateway runs real playbooks (local connection) and returns typed per-host results."""

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

from lepton_ops.gateway import HostStatus, PlaybookRun, run_playbook
from lepton_ops.gateway import runner as gateway_runner

FIXTURES = Path(__file__).parents[2] / "fixtures"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: local\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "  hosts:\n"
        "    good: {}\n"
        "    quiet: {}\n"
        "    broken: {}\n"
    )
    return path


def run(inventory: Path, state: Path, **kwargs: object) -> object:
    request = PlaybookRun(
        playbook=FIXTURES / "gateway_probe.yml",
        inventory=inventory,
        hosts=("broken", "good", "quiet"),
        extravars={"probe_value": "s3cr3t-looking-value"},
        **kwargs,  # type: ignore[arg-type]
    )
    return run_playbook(request, state)


def test_per_host_results_and_summary(inventory: Path, tmp_path: Path) -> None:
    result = run(inventory, tmp_path / "state")
    statuses = {name: host.status for name, host in result.hosts.items()}  # type: ignore[attr-defined]
    assert statuses == {
        "broken": HostStatus.FAILED,
        "good": HostStatus.CHANGED,
        "quiet": HostStatus.OK,
    }
    assert not result.succeeded  # type: ignore[attr-defined]
    assert result.failed == ["broken"]  # type: ignore[attr-defined]
    broken = result.hosts["broken"]  # type: ignore[attr-defined]
    assert broken.messages == ["Fail where asked: asked to fail on broken"]
    data = result.to_dict()  # type: ignore[attr-defined]
    assert data["summary"] == {"unreachable": 0, "failed": 1, "changed": 1, "ok": 1, "skipped": 0}
    json.dumps(data)


def test_limit_and_check_mode(inventory: Path, tmp_path: Path) -> None:
    result = run(inventory, tmp_path / "state", limit="good", check=True)
    assert result.succeeded  # type: ignore[attr-defined]
    assert result.check  # type: ignore[attr-defined]
    # command is skipped in check mode: nothing changes
    assert result.hosts["good"].changed == 0  # type: ignore[attr-defined]


def test_extravars_and_environment_do_not_stay_in_artifacts(
    inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_API_TOKEN", "env-secret-value")
    result = run(inventory, tmp_path / "state", limit="good")
    private = result.artifacts.parent.parent  # type: ignore[attr-defined]
    assert not (private / "env").exists()
    command = json.loads((result.artifacts / "command").read_text())  # type: ignore[attr-defined]
    assert "env" not in command
    assert "s3cr3t-looking-value" not in " ".join(command["command"])
    assert any(arg.startswith("@") for arg in command["command"])
    on_disk = "".join(p.read_text(errors="replace") for p in private.rglob("*") if p.is_file())
    assert "env-secret-value" not in on_disk


def test_old_runs_are_rotated(
    inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_runner, "KEEP_RUNS", 2)
    for _ in range(3):
        run(inventory, tmp_path / "state", limit="quiet")
    assert len(list((tmp_path / "state" / "runs").iterdir())) == 2


def test_playbook_error_is_reported(inventory: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("- hosts: all\n  tasks:\n    - name: x\n      no.such.module: {}\n")
    result = run_playbook(
        PlaybookRun(playbook=bad, inventory=inventory, hosts=("good",)), tmp_path / "state"
    )
    assert not result.succeeded
    assert result.error and "no.such.module" in result.error


def test_ansible_environment_is_safe_for_ssh(inventory: Path, tmp_path: Path) -> None:
    """Host keys are checked, ssh masters are ours, keepalives on, no compression."""
    probe = tmp_path / "env.yml"
    probe.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Show the environment\n"
        "      ansible.builtin.debug:\n"
        "        msg: \"{{ lookup('env', 'ANSIBLE_HOST_KEY_CHECKING') }}|"
        "{{ lookup('env', 'ANSIBLE_SSH_ARGS') }}|"
        "{{ lookup('env', 'ANSIBLE_SSH_CONTROL_PATH_DIR') }}\"\n"
    )
    seen: list[dict[str, object]] = []
    run_playbook(
        PlaybookRun(playbook=probe, inventory=inventory, hosts=("good",), limit="good"),
        tmp_path / "state",
        on_event=seen.append,
    )
    messages = [
        e["event_data"]["res"]["msg"]  # type: ignore[index]
        for e in seen
        if e["event"] == "runner_on_ok"
    ]
    checking, ssh_args, control_dir = messages[0].split("|")
    assert checking == "True"
    assert "ServerAliveInterval" in ssh_args
    assert "-C" not in ssh_args.split()
    # In the state dir, or (a state dir whose path is too long for socket paths, as under
    # parallel test workers) the per-user fallback in the temporary directory.
    assert control_dir.startswith(str(tmp_path)) or control_dir == str(
        Path(tempfile.gettempdir()) / f"lepton-ops-cp-{os.getuid()}"
    )
    assert Path(control_dir).is_dir() and Path(control_dir).stat().st_mode & 0o777 == 0o700
