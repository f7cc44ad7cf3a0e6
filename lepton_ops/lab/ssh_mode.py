"""ssh mode: every node is a real sshd in its own mount namespace.

How a node is started (all as root)::

    unshare -m --propagation private -- /bin/sh -c '
      mount -t overlay ... -o lowerdir=/opt,upperdir=U,workdir=W /opt       # and /etc, /var/lib
      mkdir -p /opt/lepton && mount --bind <node>/opt/lepton /opt/lepton  # and /etc/lepton
      mount -t tmpfs -o size=128m lepton-data /var/lib/lepton   # the data dir: a quota
      cp -a <node>/var/lib/lepton/. /var/lib/lepton/            # seeded from its kept copy
      exec /usr/sbin/sshd -f <node>/sshd/sshd_config -E <node>/sshd/sshd.log'

The new mount namespace is private, so nothing mounted in it is seen by the host.
/opt, /etc and /var/lib are covered, inside the namespace only, by an overlay whose
lower layer is the host directory itself (the node sees everything the host has) and
whose upper layer is a per-node directory in the state dir: the lepton mount points,
and anything else the node writes there, land in the node's upper layer and never on
the host. The node's /opt/lepton and /etc/lepton are then bind mounts of the node's own
directories. Its /var/lib/lepton, the data directory, is a tmpfs of
:data:`~lepton_ops.lab.topology.NODE_DATA_QUOTA_MB` - a real quota: writing past it gives
ENOSPC, as a full disk would - seeded from the node's kept copy at start and copied back
to it by ``lab down`` (:func:`save_data`). While the node runs, the controller sees the
live directory through ``/proc/<sshd pid>/root`` (:func:`live_data_dir`).

sshd daemonizes inside the namespace; every SSH session and service it starts inherits
the namespace. ``lab down`` finds them through the node's live sshd (recorded by pid,
start time and boot) or, once that sshd is gone, by the node's random data tag each
process still has mounted - never by a namespace id alone (see
:mod:`lepton_ops.lab.processes`).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from lepton_ops import process_identity
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.lab.layout import NODE_DATA_DIR, OVERLAID_DIRS, LabLayout, NodePaths
from lepton_ops.lab.probe import port_is_free, ssh_banner_reachable
from lepton_ops.lab.processes import (
    boot_id,
    command_name,
    is_running,
    mount_namespace,
    pids_in_namespace,
    stop_processes,
    tagged_in_namespace,
)
from lepton_ops.lab.record import NodeRecord
from lepton_ops.lab.topology import LAB_NODES, NODE_DATA_QUOTA_MB, LabNode

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT = 15.0
# Characters that sshd_config, ssh -o and overlay mount options cannot carry in a path.
_UNSAFE_PATH_CHARS = frozenset(" \t\n,:\"'\\#")


def login_user() -> str:
    """The user Ansible logs in as: whoever runs lepton-ops (root in ssh mode)."""
    return pwd.getpwuid(os.geteuid()).pw_name


def check_prerequisites(layout: LabLayout) -> None:
    """Everything ssh mode needs, checked before anything is started."""
    if os.geteuid() != 0:
        raise BadInput(
            "ssh mode needs root (it starts sshd daemons in mount namespaces): run as root, "
            "or use 'lepton-ops lab up --mode local'"
        )
    for tool, package in (
        (str(SSHD), "openssh-server"),
        ("unshare", "util-linux"),
        ("mount", "mount"),
        ("ssh-keygen", "openssh-client"),
    ):
        if not (os.access(tool, os.X_OK) if tool.startswith("/") else shutil.which(tool)):
            raise OperationFailed(
                f"{tool} is missing: install {package} (make system-deps) or use --mode local"
            )
    root = layout.root.resolve()
    if any(char in _UNSAFE_PATH_CHARS for char in str(root)):
        raise BadInput(
            f"the state dir {layout.state_dir} holds a space, comma, colon or quote, which "
            f"sshd and overlay mounts cannot take: choose another --state-dir for ssh mode"
        )
    for overlaid in OVERLAID_DIRS:
        if not overlaid.is_dir():
            raise OperationFailed(f"{overlaid} does not exist on this machine; ssh mode needs it")
        if root.is_relative_to(overlaid):
            raise BadInput(
                f"the state dir {layout.state_dir} is under {overlaid}, which ssh-mode nodes "
                f"see through an overlay: choose a --state-dir outside /opt, /etc and /var/lib"
            )


def check_addresses_free(nodes: list[LabNode], port: int) -> None:
    """Fail (exit 1) naming the first lab address on which something already listens."""
    for node in nodes:
        if not port_is_free(node.address, port):
            raise OperationFailed(
                f"{node.address}:{port} is already in use by another process (another lab? "
                f"see 'ss -ltnp | grep {node.address}'): stop it and run 'lab up' again"
            )


def ensure_keys(layout: LabLayout, nodes: tuple[LabNode, ...] = LAB_NODES) -> None:
    """The lab's client key pair and one host key per node (kept across up/down)."""
    layout.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _keygen(layout.ssh_key, "lepton-lab")
    for node in nodes:
        paths = layout.node(node)
        paths.sshd_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _keygen(paths.host_key, f"lepton-lab-{node.name}")


def _keygen(path: Path, comment: str) -> None:
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return
    path.unlink(missing_ok=True)
    result = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise OperationFailed(f"ssh-keygen could not create {path}: {result.stderr.strip()}")


def known_hosts_line(node: LabNode, port: int, host_public_key: str) -> str:
    """One known_hosts line: ``127.0.1.N`` (port 22) or ``[127.0.1.N]:PORT``, then the key."""
    key_type, key_data = host_public_key.split()[:2]
    host = node.address if port == 22 else f"[{node.address}]:{port}"
    return f"{host} {key_type} {key_data}"


def write_known_hosts(layout: LabLayout, port: int, nodes: tuple[LabNode, ...] = LAB_NODES) -> None:
    lines = []
    for node in nodes:
        public = layout.node(node).host_key.with_suffix(".pub").read_text(encoding="utf-8")
        lines.append(known_hosts_line(node, port, public))
    layout.known_hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")


def sshd_config_text(layout: LabLayout, node: LabNode, port: int) -> str:
    paths = layout.node(node)
    return "\n".join(
        [
            f"# lepton-ops lab {node.name}: written by 'lepton-ops lab up', do not edit",
            f"ListenAddress {node.address}:{port}",
            f"HostKey {paths.host_key}",
            f"PidFile {paths.pid_file}",
            f"AuthorizedKeysFile {layout.ssh_public_key}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "MaxStartups 64:30:128",
            "MaxSessions 64",
            "Subsystem sftp internal-sftp",
            f"SetEnv LEPTON_LAB_NODE={node.name}",
            "LogLevel INFO",
            "",
        ]
    )


def new_data_tag(node: LabNode) -> str:
    """A fresh source name for the node's data tmpfs: its namespace's proof of identity."""
    return f"lepton-data-{node.name}-{secrets.token_hex(8)}"


def namespace_script(paths: NodePaths, config: Path, log: Path, data_tag: str) -> str:
    """The shell script that runs inside the node's new mount namespace."""
    lines = ["set -eu"]
    for lower in OVERLAID_DIRS:
        upper, work = paths.overlay_dirs(lower)
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mount_point = shlex.quote(str(lower))
        lines.append(f"mount -t overlay lepton-lab -o {shlex.quote(options)} {mount_point}")
    for source, target in paths.bind_pairs():
        lines.append(f"mkdir -p {shlex.quote(str(target))}")
        lines.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}")
    data = shlex.quote(str(NODE_DATA_DIR))
    lines.append(f"mkdir -p {data}")
    options = f"size={NODE_DATA_QUOTA_MB}m,mode=0755"
    lines.append(f"mount -t tmpfs -o {options} {shlex.quote(data_tag)} {data}")
    lines.append(f"cp -a {shlex.quote(str(paths.data_dir))}/. {data}/")
    lines.append(f"exec {SSHD} -f {shlex.quote(str(config))} -E {shlex.quote(str(log))}")
    return "\n".join(lines) + "\n"


def start_node(layout: LabLayout, node: LabNode, port: int) -> NodeRecord:
    """Start ``node``'s sshd in a new mount namespace; return it once it answers."""
    paths = layout.node(node)
    for directory in paths.lepton_dirs:
        directory.mkdir(parents=True, exist_ok=True)
    for lower in OVERLAID_DIRS:
        for directory in paths.overlay_dirs(lower):
            directory.mkdir(parents=True, exist_ok=True)
    paths.sshd_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.sshd_config.write_text(sshd_config_text(layout, node, port), encoding="utf-8")
    paths.pid_file.unlink(missing_ok=True)
    PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    data_tag = new_data_tag(node)
    script = namespace_script(paths, paths.sshd_config, paths.sshd_log, data_tag)
    with paths.start_log.open("w", encoding="utf-8") as start_log:
        # sshd forks into the background once it is set up; the foreground process exits.
        result = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=start_log,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=START_TIMEOUT,
        )
    if result.returncode != 0:
        # Mount errors land in start.log; sshd's own complaints in its log (-E).
        log = paths.start_log if _last_line(paths.start_log) else paths.sshd_log
        raise OperationFailed(
            f"{node.name}: setting up its mount namespace or sshd failed "
            f"(exit {result.returncode}): {_last_line(log) or 'no output'} (see {log})"
        )
    pid = _wait_for_pid(paths)
    namespace = mount_namespace(pid) if pid is not None else None
    record = NodeRecord(
        name=node.name,
        address=node.address,
        weight=node.weight,
        sshd_pid=pid,
        mount_ns=namespace,
        sshd_start_time=process_identity.start_time(pid) if pid is not None else None,
        data_tag=data_tag,
    )
    if pid is None or namespace is None:
        raise StartFailed(
            record,
            f"{node.name}: sshd did not start on {node.address}:{port}: "
            f"{_last_line(paths.sshd_log) or 'no log output'} (see {paths.sshd_log})",
        )
    if not _wait_for_banner(node, port, pid):
        raise StartFailed(
            record,
            f"{node.name}: sshd (pid {pid}) does not answer on {node.address}:{port}: "
            f"{_last_line(paths.sshd_log) or 'no log output'} (see {paths.sshd_log})",
        )
    return record


class StartFailed(OperationFailed):
    """A node's sshd started but is not usable; ``record`` says what to clean up."""

    def __init__(self, record: NodeRecord, message: str) -> None:
        super().__init__(message)
        self.record = record


def _wait_for_pid(paths: NodePaths) -> int | None:
    """The daemon's pid from its PidFile (sshd writes it once it listens)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            text = paths.pid_file.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text.isdigit():
            return int(text)
        time.sleep(0.05)
    return None


def _wait_for_banner(node: LabNode, port: int, pid: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not is_running(pid):
            return False
        if ssh_banner_reachable(node.address, port, timeout=1.0):
            return True
        time.sleep(0.1)
    return False


def _last_line(path: Path) -> str:
    """The last non-empty line of a log ("" when there is none)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


#: Left behind when the data dir is copied back: what chaos writes to fill it.
_NOT_SAVED = ("chaos-fill*",)


def live_data_dir(record: NodeRecord) -> Path | None:
    """The node's /var/lib/lepton as the node sees it now, through its sshd's root."""
    if record.sshd_pid is None:
        return None
    path = Path(f"/proc/{record.sshd_pid}/root") / NODE_DATA_DIR.relative_to("/")
    return path if path.is_dir() else None


def save_data(record: NodeRecord, paths: NodePaths, recorded_boot: str) -> str | None:
    """Copy the node's live data dir back to its kept copy (before ``lab down`` stops it).

    The copy goes to a new directory that then replaces the old one, so a failed copy
    leaves the last kept copy as it was. Returns why nothing was saved, or None.
    """
    if not node_running(record, recorded_boot):
        return "the node is not running"
    live = live_data_dir(record)
    if live is None:
        return "its data directory is not mounted"
    saving = paths.data_dir.with_name(paths.data_dir.name + ".saving")
    shutil.rmtree(saving, ignore_errors=True)
    try:
        shutil.copytree(
            live,
            saving,
            symlinks=True,
            ignore=shutil.ignore_patterns(*_NOT_SAVED),
            ignore_dangling_symlinks=True,
        )
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(saving, ignore_errors=True)
        return f"copying {live} failed: {str(exc)[:200]}"
    previous = paths.data_dir.with_name(paths.data_dir.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if paths.data_dir.exists():
        paths.data_dir.rename(previous)
    saving.rename(paths.data_dir)
    shutil.rmtree(previous, ignore_errors=True)
    return None


def sshd_identity(
    record: NodeRecord, recorded_boot: str
) -> process_identity.ProcessIdentity | None:
    """The node's sshd as recorded (None when the record has no identity for it)."""
    if record.sshd_pid is None or record.sshd_start_time is None:
        return None
    return process_identity.ProcessIdentity(record.sshd_pid, record.sshd_start_time, recorded_boot)


def node_running(record: NodeRecord, recorded_boot: str) -> bool:
    """True if the node's recorded sshd is still that very process, in the node's namespace."""
    sshd = sshd_identity(record, recorded_boot)
    if sshd is None or record.mount_ns is None or not sshd.alive():
        return False
    return mount_namespace(sshd.pid) == record.mount_ns and command_name(sshd.pid) == "sshd"


def node_processes(
    record: NodeRecord, recorded_boot: str
) -> list[process_identity.ProcessIdentity]:
    """The node's processes now, each proven to be the node's (see the module docstring).

    Through the live sshd, every process of its namespace; with the sshd gone, only those
    that still have the node's tagged data dir mounted. Nothing of another boot.
    """
    if record.mount_ns is None or recorded_boot != boot_id():
        return []
    if node_running(record, recorded_boot):
        return pids_in_namespace(record.mount_ns)
    if record.data_tag is None:
        return []  # recorded by an earlier version: no proof of whose the namespace is now
    return tagged_in_namespace(record.mount_ns, NODE_DATA_DIR, record.data_tag)


def stop_node(record: NodeRecord, recorded_boot: str) -> list[int]:
    """Stop the node's sshd and every process proven to be the node's.

    Returns pids that would not die (normally none).
    """
    processes = node_processes(record, recorded_boot)
    # A session may fork while we signal: go round until no process of the node is left.
    for _ in range(3):
        if not processes:
            break
        stop_processes(processes)
        processes = node_processes(record, recorded_boot)
    return sorted(process.pid for process in processes)
