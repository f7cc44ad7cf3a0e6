"""with_settings: the global options on a command, merged with those before it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from lepton_ops.cli.options import (
    StateDirOpt,
    VerboseOpt,
    remember_global_options,
    with_settings,
)
from lepton_ops.settings import Settings


def make_app(seen: list[Settings]) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(
        ctx: typer.Context,
        state_dir: StateDirOpt = None,
        verbose: VerboseOpt = 0,
    ) -> None:
        remember_global_options(ctx, None, state_dir, False, verbose)

    @app.command("show")
    @with_settings
    def show(cfg: Settings, name: Annotated[str, typer.Option("--name")] = "x") -> None:
        seen.append(cfg)
        typer.echo(name)

    return app


def test_options_after_the_command_and_before_it_are_merged(tmp_path: Path) -> None:
    seen: list[Settings] = []
    result = CliRunner().invoke(
        make_app(seen),
        ["-v", "--state-dir", str(tmp_path), "show", "--name", "n1", "--json", "-i", "inv"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "n1"
    [cfg] = seen
    assert cfg.state_dir == tmp_path.resolve()
    assert cfg.json is True and cfg.verbose == 1 and cfg.inventory == Path("inv")


def test_the_command_keeps_its_own_options_and_help(tmp_path: Path) -> None:
    result = CliRunner().invoke(make_app([]), ["show", "--help"])
    assert result.exit_code == 0
    for flag in ("--name", "--inventory", "--state-dir", "--json", "--verbose"):
        assert flag in result.output


def test_a_command_without_cfg_first_is_refused() -> None:
    def command(name: str) -> None: ...

    with pytest.raises(TypeError, match="cfg: Settings"):
        with_settings(command)
