"""ssh-mode building blocks that need neither root nor a running sshd."""

import os
from pathlib import Path

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.lab import node_named, ssh_mode
from lepton_ops.lab.layout import LabLayout


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_sshd_config(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    text = ssh_mode.sshd_config_text(layout, node_named("node3"), 22)
    lines = set(text.splitlines())
    paths = layout.node("node3")
    for expected in (
        "ListenAddress 127.0.1.3:22",
        f"HostKey {paths.host_key}",
        f"PidFile {paths.pid_file}",
        f"AuthorizedKeysFile {layout.ssh_public_key}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
    ):
        assert expected in lines


def test_known_hosts_lines() -> None:
    key = "ssh-ed25519 AAAAC3Nz lepton-lab-node2\n"
    assert (
        ssh_mode.known_hosts_line(node_named("node2"), 22, key) == "127.0.1.2 ssh-ed25519 AAAAC3Nz"
    )
    assert (
        ssh_mode.known_hosts_line(node_named("node2"), 2222, key)
        == "[127.0.1.2]:2222 ssh-ed25519 AAAAC3Nz"
    )


def test_namespace_script_overlays_then_binds_then_runs_sshd(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    paths = layout.node("node4")
    script = ssh_mode.namespace_script(paths, paths.sshd_config, paths.sshd_log, "tag-1")
    lines = script.splitlines()
    assert lines[0] == "set -eu"
    overlays = [line for line in lines if line.startswith("mount -t overlay")]
    assert [line.split()[-1] for line in overlays] == ["/opt", "/etc", "/var/lib"]
    upper, work = paths.overlay_dirs(Path("/etc"))
    assert f"lowerdir=/etc,upperdir={upper},workdir={work}" in overlays[1]
    binds = [line for line in lines if line.startswith("mount --bind")]
    assert binds == [
        f"mount --bind {paths.prefix} /opt/lepton",
        f"mount --bind {paths.config_dir} /etc/lepton",
    ]
    # The data dir: a tmpfs of the node's quota, seeded from the node's kept copy.
    tmpfs = lines.index("mount -t tmpfs -o size=128m,mode=0755 tag-1 /var/lib/lepton")
    assert lines[tmpfs + 1] == f"cp -a {paths.data_dir}/. /var/lib/lepton/"
    assert tmpfs > lines.index(binds[-1])
    # Mount points are made after the overlays, so they exist only inside the namespace.
    assert lines.index("mkdir -p /opt/lepton") > lines.index(overlays[-1])
    assert lines[-1].startswith("exec /usr/sbin/sshd -f ")


def test_overlay_dirs_are_per_node_and_inside_the_state_dir(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path)
    one = layout.node("node1").overlay_dirs(Path("/var/lib"))
    two = layout.node("node2").overlay_dirs(Path("/var/lib"))
    assert one != two
    assert all(path.is_relative_to(tmp_path) for path in (*one, *two))


@pytest.mark.usefixtures("as_root")
@pytest.mark.parametrize("under", ["/var/lib/lepton-ops", "/etc/lepton-ops", "/opt/x"])
def test_state_dir_under_an_overlaid_dir_is_refused(under: str) -> None:
    with pytest.raises(BadInput, match="outside /opt, /etc and /var/lib"):
        ssh_mode.check_prerequisites(LabLayout(Path(under)))


@pytest.mark.usefixtures("as_root")
@pytest.mark.parametrize("name", ["with space", "with,comma", "with:colon"])
def test_state_dir_sshd_cannot_carry_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadInput, match="another --state-dir"):
        ssh_mode.check_prerequisites(LabLayout(tmp_path / name))


def test_not_root_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(BadInput, match="--mode local"):
        ssh_mode.check_prerequisites(LabLayout(tmp_path))
