"""The lab: five nodes on a loopback address block (127.0.1.1-5 by default), brought up,
inspected and taken down. Each lab claims its block (see :mod:`lepton_ops.lab.address_claims`)
and has a firewall chain of its own, so labs of different state dirs never touch each other."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from filelock import FileLock, Timeout

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.lab import local_mode, ssh_mode
from lepton_ops.lab.address_claims import AddressClaims
from lepton_ops.lab.firewall import LabFirewall
from lepton_ops.lab.inventory_file import SshSettings, write_inventory
from lepton_ops.lab.layout import LabLayout, NodePaths
from lepton_ops.lab.probe import probe_all
from lepton_ops.lab.processes import boot_id
from lepton_ops.lab.record import (
    LabRecord,
    NodeRecord,
    read_record,
    remove_record,
    write_record,
)
from lepton_ops.lab.status import LabMode, LabStatus, NodeStatus
from lepton_ops.lab.topology import (
    DEFAULT_FIRST_ADDRESS,
    DEFAULT_SSH_PORT,
    LabNode,
    lab_nodes,
    node_named,
)

LOCK_TIMEOUT = 300.0


def default_mode() -> LabMode:
    """ssh when running as root, local otherwise."""
    return LabMode.SSH if os.geteuid() == 0 else LabMode.LOCAL


def current_inventory(state_dir: Path) -> Path | None:
    """The lab inventory's path while a lab is up in ``state_dir``, else None."""
    layout = LabLayout(Path(state_dir).expanduser())
    if layout.record.is_file() and layout.inventory.is_file():
        return layout.inventory.resolve()
    return None


class Lab:
    """The lab kept in ``<state_dir>/lab/``.

    ``up`` is idempotent: nodes already running are left alone and a node whose sshd
    died is started again. ``down`` stops everything the lab started but keeps the
    nodes' data unless ``purge`` is given.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        ssh_port: int = DEFAULT_SSH_PORT,
        first_address: str | None = None,
        claims: AddressClaims | None = None,
    ) -> None:
        if not 1 <= ssh_port <= 65535:
            raise BadInput(f"ssh port {ssh_port} is out of range: give a port from 1 to 65535")
        if first_address is not None:
            lab_nodes(first_address)  # BadInput unless it starts a block
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.layout = LabLayout(self.state_dir)
        self.ssh_port = ssh_port
        self.first_address = first_address
        self._insecure_http = False
        self.claims = claims or AddressClaims()

    @property
    def nodes(self) -> tuple[LabNode, ...]:
        """The lab's nodes: the running lab's block, else the one asked for (or the default)."""
        record = read_record(self.layout.record)
        if record is not None:
            return lab_nodes(record.first_address)
        return lab_nodes(self.first_address or DEFAULT_FIRST_ADDRESS)

    def node(self, name: str) -> LabNode:
        """The lab's node called ``name`` (BadInput if there is none)."""
        return node_named(name, self.nodes)

    def firewall(self) -> LabFirewall:
        """This lab's own firewall rules (ssh mode: cutting nodes off)."""
        return LabFirewall(self.state_dir, [node.address for node in self.nodes])

    @property
    def inventory_path(self) -> Path:
        return self.layout.inventory

    @property
    def ssh_key_path(self) -> Path:
        """The lab's private key (ssh mode): ``ssh -i`` it to log in to any node."""
        return self.layout.ssh_key

    @property
    def known_hosts_path(self) -> Path:
        return self.layout.known_hosts

    @property
    def record_path(self) -> Path:
        return self.layout.record

    def node_paths(self, name: str) -> NodePaths:
        """Where node ``name``'s /opt/lepton, /etc/lepton, /var/lib/lepton live on the host."""
        return self.layout.node(node_named(name))

    def node_data_dir(self, name: str) -> Path:
        """Node ``name``'s /var/lib/lepton as the node sees it now.

        In ssh mode the data dir is a tmpfs inside the node's mount namespace, reached
        through its sshd's ``/proc/PID/root``; the kept copy (:meth:`node_paths`) is only
        written back by ``lab down``. In local mode, or with no lab up, the kept copy.
        """
        paths = self.node_paths(name)
        record = read_record(self.layout.record)
        node = record.node(name) if record is not None else None
        if record is None or record.mode is not LabMode.SSH or node is None:
            return paths.data_dir
        return ssh_mode.live_data_dir(node) or paths.data_dir

    def is_up(self) -> bool:
        return current_inventory(self.state_dir) is not None

    def mode(self) -> LabMode | None:
        """The running lab's mode, None when no lab is up."""
        record = read_record(self.layout.record)
        return record.mode if record is not None else None

    # -- up -------------------------------------------------------------------------------

    def up(self, mode: LabMode | None = None, *, insecure_http: bool = False) -> LabStatus:
        """Bring the lab up (or make sure it is up) and return its status.

        ``insecure_http``: its inventory sets ``lepton_insecure_http`` (the services deploy
        without TLS: for measuring what TLS costs, or debugging). It is written on each
        ``up``, so a later ``up`` without it brings TLS back at the next deploy.
        """
        self._insecure_http = insecure_http
        chosen = LabMode(mode) if mode is not None else default_mode()
        if chosen is LabMode.SSH:
            ssh_mode.check_prerequisites(self.layout)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            record = read_record(self.layout.record)
            if record is not None:
                self._check_compatible(record, chosen)
                block = record.first_address
            else:
                block = self.claims.claim(self.state_dir, self.first_address)
            nodes = lab_nodes(block)
            try:
                if chosen is LabMode.LOCAL:
                    self._up_local(nodes, block)
                else:
                    self._up_ssh(record, nodes, block)
            except BaseException:
                if read_record(self.layout.record) is None:
                    self.claims.release(self.state_dir, block)
                raise
        return self.status()

    def _check_compatible(self, record: LabRecord, chosen: LabMode) -> None:
        if record.mode is not chosen:
            raise BadInput(
                f"the lab in {self.state_dir} is already up in {record.mode.value} mode: run "
                f"'lepton-ops lab down' first to bring it up in {chosen.value} mode"
            )
        if self.first_address is not None and record.first_address != self.first_address:
            raise BadInput(
                f"the lab in {self.state_dir} is up on the addresses from "
                f"{record.first_address}: run 'lepton-ops lab down' first to move it"
            )
        if chosen is LabMode.SSH and record.ssh_port != self.ssh_port:
            raise BadInput(
                f"the lab in {self.state_dir} is up on port {record.ssh_port}, not "
                f"{self.ssh_port}: run 'lepton-ops lab down' first to change the port"
            )

    def _up_local(self, lab: tuple[LabNode, ...], block: str) -> None:
        local_mode.prepare_nodes(self.layout)
        inventory = write_inventory(
            self.layout, LabMode.LOCAL, nodes=lab, insecure_http=self._insecure_http
        )
        nodes = tuple(
            NodeRecord(name=node.name, address=node.address, weight=node.weight) for node in lab
        )
        write_record(
            self.layout.record,
            LabRecord(
                mode=LabMode.LOCAL,
                inventory=inventory,
                ssh_key=None,
                ssh_port=None,
                boot_id=boot_id(),
                nodes=nodes,
                first_address=block,
            ),
        )

    def _up_ssh(self, previous: LabRecord | None, lab: tuple[LabNode, ...], block: str) -> None:
        port = self.ssh_port
        ssh_mode.ensure_keys(self.layout, lab)
        ssh_mode.write_known_hosts(self.layout, port, lab)
        recorded = previous
        if recorded is not None and recorded.boot_id != boot_id():
            recorded = None  # recorded in another boot: nothing of it runs any more
        to_start = []
        for node in lab:
            node_record = recorded.node(node.name) if recorded is not None else None
            if node_record is not None and recorded is not None:
                if ssh_mode.node_running(node_record, recorded.boot_id):
                    continue
                # Its sshd died: stop what is left in its namespace, as a reboot would.
                ssh_mode.stop_node(node_record, recorded.boot_id)
            to_start.append(node)
        if to_start:
            ssh_mode.check_addresses_free(to_start, port)
        inventory = write_inventory(
            self.layout,
            LabMode.SSH,
            SshSettings(
                user=ssh_mode.login_user(),
                port=port,
                private_key=self.layout.ssh_key,
                known_hosts=self.layout.known_hosts,
            ),
            nodes=lab,
            insecure_http=self._insecure_http,
        )
        current = recorded or LabRecord(
            mode=LabMode.SSH,
            inventory=inventory,
            ssh_key=self.layout.ssh_key,
            ssh_port=port,
            boot_id=boot_id(),
            first_address=block,
        )
        current = replace(current, inventory=inventory, ssh_key=self.layout.ssh_key)
        write_record(self.layout.record, current)
        try:
            for node in to_start:
                try:
                    started = ssh_mode.start_node(self.layout, node, port)
                except ssh_mode.StartFailed as failed:
                    current = current.with_node(failed.record)
                    raise
                current = current.with_node(started)
                write_record(self.layout.record, current)
        except BaseException:
            write_record(self.layout.record, current)
            if recorded is None:
                # Nothing of a half-started lab is left behind.
                self._teardown(current)
            raise

    # -- status ---------------------------------------------------------------------------

    def status(self) -> LabStatus:
        """Each node's reachability; OperationFailed when no lab is up."""
        record = read_record(self.layout.record)
        if record is None:
            raise OperationFailed(
                f"no lab is up (state dir {self.state_dir}): start one with 'lepton-ops lab up'"
            )
        nodes = lab_nodes(record.first_address)
        if record.mode is LabMode.SSH:
            port = record.ssh_port or DEFAULT_SSH_PORT
            reachable = probe_all((node.address for node in nodes), port)
        else:
            reachable = [local_mode.node_reachable(self.layout, node) for node in nodes]
        return LabStatus(
            mode=record.mode,
            inventory=record.inventory,
            ssh_key=record.ssh_key if record.mode is LabMode.SSH else None,
            nodes=[
                NodeStatus(name=node.name, address=node.address, weight=node.weight, reachable=ok)
                for node, ok in zip(nodes, reachable, strict=True)
            ],
        )

    # -- down -----------------------------------------------------------------------------

    def down(self, purge: bool = False) -> None:
        """Stop everything the lab started; with ``purge``, delete the nodes' data too."""
        if not self.layout.root.exists():
            return
        with self._locked():
            record = read_record(self.layout.record)
            if record is not None:
                if record.mode is LabMode.SSH and os.geteuid() != 0:
                    # Without root the lab's processes can be neither seen nor stopped.
                    raise BadInput(
                        f"the lab in {self.state_dir} runs in ssh mode (as root): "
                        f"take it down as root"
                    )
                self._teardown(record)
            if purge:
                self._purge()

    def _teardown(self, record: LabRecord) -> None:
        if record.mode is LabMode.LOCAL:
            local_mode.stop_services(self.layout)
        unsaved: list[str] = []
        if record.mode is LabMode.SSH:
            for node_record in record.nodes:
                problem = ssh_mode.save_data(
                    node_record, self.layout.node(node_record.name), record.boot_id
                )
                if problem is not None and ssh_mode.node_running(node_record, record.boot_id):
                    unsaved.append(f"{node_record.name}: {problem}")
        stuck: list[int] = []
        for node_record in record.nodes:
            stuck.extend(ssh_mode.stop_node(node_record, record.boot_id))
        firewall_problem = None
        try:
            LabFirewall(
                self.state_dir, [node.address for node in lab_nodes(record.first_address)]
            ).remove()
        except OperationFailed as exc:
            firewall_problem = str(exc)
        if stuck:
            raise OperationFailed(
                f"could not stop lab processes {', '.join(map(str, stuck))} "
                f"(run 'lab down' as root; see 'ps -p {','.join(map(str, stuck))}')"
            )
        remove_record(self.layout.record)
        self.layout.inventory.unlink(missing_ok=True)
        self.claims.release(self.state_dir, record.first_address)
        if firewall_problem is not None:
            raise OperationFailed(
                f"the lab is down but its firewall chain is left: {firewall_problem}"
            )
        if unsaved:
            raise OperationFailed(
                "the lab is down but the data of some nodes was not copied back (their "
                f"kept copies are as before): {'; '.join(unsaved)}"
            )

    def _purge(self) -> None:
        for entry in self.layout.root.iterdir():
            if entry == self.layout.lock:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise lab commands on one state dir (two 'lab up' at once would race)."""
        lock = FileLock(str(self.layout.lock))
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except Timeout:
            raise OperationFailed(
                f"another 'lepton-ops lab' command holds {self.layout.lock}: wait for it to finish"
            ) from None
        try:
            yield
        finally:
            lock.release()
