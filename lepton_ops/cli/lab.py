"""``lepton-ops lab``: the embedded five-node lab (up, status, down)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from lepton_ops.cli.lazy import sub_app
from lepton_ops.cli.options import with_settings
from lepton_ops.cli.render import console, print_json
from lepton_ops.errors import OperationFailed
from lepton_ops.lab import Lab, LabMode, LabStatus
from lepton_ops.lab.topology import DEFAULT_SSH_PORT
from lepton_ops.settings import Settings

app = sub_app(
    "The embedded lab: five nodes on 127.0.1.1-5, or the next free block of five "
    "(127.0.1.11-15, ...) when another lab holds it or /etc/hosts names one of its addresses "
    "(ssh mode: a real sshd per node in its own mount namespace; local mode: one directory "
    "tree per node, no root needed)."
)

ModeOpt = Annotated[
    LabMode | None,
    typer.Option(
        "--mode",
        help="local (no root; Ansible runs locally per node) or ssh (root; an sshd per node). "
        "Default: ssh when root, local otherwise.",
        show_default=False,
    ),
]
PortOpt = Annotated[
    int,
    typer.Option("--ssh-port", min=1, max=65535, help="Port every ssh-mode node listens on."),
]
FirstAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--first-address",
        help="The first of the lab's five addresses: 127.0.1.1, 127.0.1.11, ... 127.0.1.241. "
        "Default: the first free block.",
        show_default=False,
    ),
]
InsecureHttpOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        help="Deploy this lab's services without TLS (plain HTTP), to measure what TLS costs "
        "or to debug: a lab-only option, written into the lab inventory on each 'lab up'.",
    ),
]
PurgeOpt = Annotated[
    bool,
    typer.Option("--purge", help="Also delete the nodes' data, keys and logs (default: keep)."),
]


@app.command("up")
@with_settings
def up_command(
    cfg: Settings,
    mode: ModeOpt = None,
    ssh_port: PortOpt = DEFAULT_SSH_PORT,
    first_address: FirstAddressOpt = None,
    insecure_http: InsecureHttpOpt = False,
) -> None:
    """Bring the lab up (harmless when it is already up) and write its inventory."""
    lab = Lab(cfg.state_dir, ssh_port=ssh_port, first_address=first_address)
    cfg.ensure_state_dir()
    status = lab.up(mode, insecure_http=insecure_http)
    _show(status, json_output=cfg.json, title="lab up")


@app.command("status")
@with_settings
def status_command(
    cfg: Settings,
) -> None:
    """Show each node's reachability (exit 1 when no lab is up).

    ssh mode: the node's sshd answers with an SSH-2.0 banner within 1 s.
    local mode: the node's three directories exist.
    """
    lab = Lab(cfg.state_dir)
    if not lab.is_up():
        message = f"no lab is up (state dir {lab.state_dir}): start one with 'lepton-ops lab up'"
        if not cfg.json:
            raise OperationFailed(message)
        print_json({"up": False, "state_dir": str(lab.state_dir), "message": message})
        raise typer.Exit(1)
    _show(lab.status(), json_output=cfg.json, title="lab status")


@app.command("down")
@with_settings
def down_command(
    cfg: Settings,
    purge: PurgeOpt = False,
) -> None:
    """Stop every process the lab started and remove its own firewall chain (data is kept)."""
    lab = Lab(cfg.state_dir)
    was_up = lab.is_up()
    lab.down(purge=purge)
    if cfg.json:
        print_json({"down": True, "was_up": was_up, "purged": purge})
        return
    what = "the lab is down" if was_up else "no lab was up"
    kept = "; its data was deleted" if purge else f"; node data kept in {lab.layout.nodes_dir}"
    console.print(what + (kept if was_up or purge else ""))


def status_table(status: LabStatus, title: str = "lab") -> Table:
    table = Table(title=f"{title} ({status.mode.value} mode)")
    for column in ("node", "address", "weight", "reachable"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for node in status.nodes:
        mark = "[green]yes[/green]" if node.reachable else "[red]no[/red]"
        table.add_row(node.name, node.address, str(node.weight), mark)
    return table


def _show(status: LabStatus, *, json_output: bool, title: str) -> None:
    if json_output:
        print_json(status.to_dict())
        return
    console.print(status_table(status, title))
    console.print(f"inventory: {status.inventory}")
    if status.ssh_key is not None:
        console.print(f"ssh key:   {status.ssh_key}")
    if status.unreachable:
        console.print(f"[red]unreachable:[/red] {', '.join(status.unreachable)}")
