"""Helpers for the integration tests: the CLI as a user runs it, ssh into a lab node,
provision and deploy the session lab (the fixtures that do it once are in conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lepton_ops.credentials.tls import fleet_ssl_context
from lepton_ops.credentials.tokens import token_path
from lepton_ops.lab import LAB_NODES

if TYPE_CHECKING:
    from conftest import RunningLab

VENV_BIN = Path(sys.executable).parent
CLI = VENV_BIN / "lepton-ops"

NODES = ["node1", "node2", "node3", "node4", "node5"]
PROVISION_TIMEOUT = 600
DEPLOY_TIMEOUT = 300

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="ssh-mode lab needs root")


def cli(
    *args: str, state_dir: Path, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    command = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "lepton_ops"]
    result = subprocess.run(
        [*command, *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


def lab_listeners() -> list[str]:
    """Listening sockets on this lab's node addresses (another lab's are not ours to count)."""
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    ours = {node.address for node in LAB_NODES}
    return [line for line in out.splitlines() if line.split()[3].rsplit(":", 1)[0] in ours]


def node_ssh(lab: RunningLab, node: str, command: str) -> subprocess.CompletedProcess[str]:
    address = next(n.address for n in LAB_NODES if n.name == node)
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(lab.lab.ssh_key_path),
            "-o",
            f"UserKnownHostsFile={lab.lab.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def provision(lab: RunningLab, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    result = cli("provision", "--json", *args, state_dir=lab.state_dir, timeout=PROVISION_TIMEOUT)
    data = json.loads(result.stdout) if result.stdout.strip() else None
    return result, data


def deploy(lab: RunningLab, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    result = cli("deploy", "--json", *args, state_dir=lab.state_dir, timeout=DEPLOY_TIMEOUT)
    data = json.loads(result.stdout) if result.stdout.strip() else None
    return result, data


def statuses(data: Any) -> dict[str, tuple[str, int]]:
    return {host["host"]: (host["status"], host["changed"]) for host in data["hosts"]}


@dataclass
class Deployed:
    lab: RunningLab
    result: subprocess.CompletedProcess[str]
    data: Any

    @property
    def token(self) -> str:
        return token_path(self.lab.state_dir).read_text(encoding="utf-8").strip()

    @property
    def tls(self) -> ssl.SSLContext:
        """Trusts the fleet's CA (what every client of the deployed services verifies with)."""
        return fleet_ssl_context(self.lab.state_dir)


def aggregator_rows(lab: RunningLab, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows of a query on the aggregator's job store (node5's live data dir).

    In ssh mode that dir is a tmpfs seen through ``/proc/<sshd>/root``, where SQLite cannot
    open the database in place (it needs its lock and WAL index files there): the database
    and its WAL are copied and read from the copy.
    """
    live = lab.lab.node_data_dir("node5")
    with tempfile.TemporaryDirectory() as scratch:
        for suffix in ("", "-wal"):
            source = live / f"aggregator.sqlite{suffix}"
            if source.exists():
                shutil.copyfile(source, Path(scratch) / f"aggregator.sqlite{suffix}")
        with sqlite3.connect(Path(scratch) / "aggregator.sqlite") as conn:
            rows = conn.execute(query, params).fetchall()
        conn.close()
    return [tuple(row) for row in rows]
