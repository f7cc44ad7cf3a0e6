"""Where the lab keeps its files under ``<state_dir>/lab/``.

::

    <state_dir>/lab/
      lab.json              what is running: mode, nodes, the pids the lab started
      inventory.yml         the lab inventory (plain ``ansible-playbook -i`` accepts it)
      ssh/                  the lab's client key pair and known_hosts (ssh mode)
      nodes/nodeN/
        opt/lepton/         the node's /opt/lepton      } the node's data: kept on
        etc/lepton/         the node's /etc/lepton      } ``lab down``, removed only
        var/lib/lepton/     the node's /var/lib/lepton  } by ``lab down --purge``
        overlay/            ssh mode: the node's private layers over /opt, /etc, /var/lib
        sshd/               ssh mode: host key, sshd_config, pid file, logs
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lepton_ops.lab.topology import LabNode
from lepton_ops.settings import StateLayout

# The node-side directories every node has, and the inventory variable naming each.
NODE_PREFIX = Path("/opt/lepton")
NODE_CONFIG_DIR = Path("/etc/lepton")
NODE_DATA_DIR = Path("/var/lib/lepton")
# The host directories that ssh-mode nodes see through a private overlay.
OVERLAID_DIRS = (Path("/opt"), Path("/etc"), Path("/var/lib"))


@dataclass(frozen=True)
class NodePaths:
    """One node's files on the controller (host) side."""

    root: Path

    @property
    def prefix(self) -> Path:
        """Stands in for the node's /opt/lepton."""
        return self.root / "opt" / "lepton"

    @property
    def config_dir(self) -> Path:
        """Stands in for the node's /etc/lepton."""
        return self.root / "etc" / "lepton"

    @property
    def data_dir(self) -> Path:
        """Stands in for the node's /var/lib/lepton."""
        return self.root / "var" / "lib" / "lepton"

    @property
    def lepton_dirs(self) -> tuple[Path, Path, Path]:
        return (self.prefix, self.config_dir, self.data_dir)

    def bind_pairs(self) -> list[tuple[Path, Path]]:
        """(host directory, node-side mount point) of the lepton dirs bound as they are.

        The data dir is not among them: in ssh mode it is a size-limited tmpfs seeded
        from :attr:`data_dir` (see :mod:`lepton_ops.lab.ssh_mode`).
        """
        return [(self.prefix, NODE_PREFIX), (self.config_dir, NODE_CONFIG_DIR)]

    def overlay_dirs(self, lower: Path) -> tuple[Path, Path]:
        """(upperdir, workdir) of the node's private overlay over host directory ``lower``."""
        slug = "-".join(lower.parts[1:]) or "root"
        base = self.root / "overlay" / slug
        return base / "upper", base / "work"

    @property
    def sshd_dir(self) -> Path:
        return self.root / "sshd"

    @property
    def host_key(self) -> Path:
        return self.sshd_dir / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.sshd_dir / "sshd_config"

    @property
    def pid_file(self) -> Path:
        return self.sshd_dir / "sshd.pid"

    @property
    def sshd_log(self) -> Path:
        return self.sshd_dir / "sshd.log"

    @property
    def start_log(self) -> Path:
        """What the namespace setup script printed (mount errors land here)."""
        return self.sshd_dir / "start.log"


@dataclass(frozen=True)
class LabLayout:
    """The lab's files for one state directory."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return StateLayout(self.state_dir).lab

    @property
    def record(self) -> Path:
        return self.root / "lab.json"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def ssh_public_key(self) -> Path:
        return self.ssh_dir / "id_ed25519.pub"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def nodes_dir(self) -> Path:
        return self.root / "nodes"

    def node(self, node: LabNode | str) -> NodePaths:
        name = node if isinstance(node, str) else node.name
        return NodePaths(self.nodes_dir / name)
