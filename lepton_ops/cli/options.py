"""The global options, accepted both before the command and on every command."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from lepton_ops.errors import BadInput
from lepton_ops.settings import Settings, default_state_dir

InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "-i",
        "--inventory",
        metavar="PATH",
        help="Inventory file or directory (any source Ansible accepts). "
        "Default: the lab's inventory while a lab is up.",
        show_default=False,
    ),
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        help="Where lepton-ops keeps its state. Default: a per-user state directory; "
        "LEPTON_OPS_STATE_DIR overrides it.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
LimitOpt = Annotated[
    str | None,
    typer.Option("--limit", "-l", metavar="PATTERN", help="Only these hosts (an Ansible pattern)."),
]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="Report what would change; change nothing.")
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "-v", "--verbose", count=True, show_default=False, help="More detail (repeat for more)."
    ),
]


def remember_global_options(
    ctx: typer.Context,
    inventory: Path | None,
    state_dir: Path | None,
    json_output: bool,
    verbose: int,
) -> None:
    """Store the options given before the command, for the command to pick up."""
    ctx.obj = {
        "inventory": inventory,
        "state_dir": state_dir,
        "json": json_output,
        "verbose": verbose,
    }


def settings(
    ctx: typer.Context,
    inventory: Path | None,
    state_dir: Path | None,
    json_output: bool,
    verbose: int,
) -> Settings:
    """Merge the options given on the command with those given before it."""
    before: dict[str, Any] = {}
    root = ctx.find_root()
    if isinstance(root.obj, dict):
        before = root.obj
    chosen_state = state_dir or before.get("state_dir")
    return Settings(
        state_dir=(chosen_state.expanduser().resolve() if chosen_state else default_state_dir()),
        inventory=inventory or before.get("inventory"),
        json=json_output or bool(before.get("json")),
        verbose=max(verbose, int(before.get("verbose") or 0)),
    )


_GLOBAL_OPTIONS = (
    inspect.Parameter("inventory", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=InventoryOpt),
    inspect.Parameter("state_dir", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=StateDirOpt),
    inspect.Parameter("json_output", inspect.Parameter.KEYWORD_ONLY, default=False,
                      annotation=JsonOpt),
    inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=0,
                      annotation=VerboseOpt),
)  # fmt: skip


def with_settings(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the global options and call it with the resulting :class:`Settings`.

    ``command`` takes ``cfg: Settings`` first, then its own options. The function typer
    sees takes its own options plus ``-i``, ``--state-dir``, ``--json`` and ``-v``, which
    are merged with the same options given before the command name.
    """
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    if not own or own[0].name != "cfg":
        raise TypeError(f"{command.__name__} must take cfg: Settings as its first parameter")
    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    rest = [param.replace(kind=inspect.Parameter.KEYWORD_ONLY) for param in own[1:]]
    parameters = [context, *rest, *_GLOBAL_OPTIONS]

    @functools.wraps(command)
    def wrapper(
        ctx: typer.Context,
        *,
        inventory: Path | None = None,
        state_dir: Path | None = None,
        json_output: bool = False,
        verbose: int = 0,
        **options: Any,
    ) -> None:
        command(settings(ctx, inventory, state_dir, json_output, verbose), **options)

    # typer reads the parameters from the signature (and their types from the annotations).
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {param.name: param.annotation for param in parameters}
    del wrapper.__wrapped__  # so that typing.get_type_hints reads the annotations above
    return wrapper


def require_inventory(cfg: Settings) -> Path:
    """The inventory to act on: ``-i`` if given, else the running lab's."""
    if cfg.inventory is not None:
        path = cfg.inventory.expanduser()
        if not path.exists():
            raise BadInput(
                f"inventory {path} does not exist: check the path given to -i/--inventory"
            )
        return path.resolve()
    from lepton_ops.lab import current_inventory

    lab_inventory = current_inventory(cfg.state_dir)
    if lab_inventory is None:
        raise BadInput(
            "no inventory: pass -i/--inventory, or start the lab with 'lepton-ops lab up'"
        )
    return lab_inventory
