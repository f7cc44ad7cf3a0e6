"""The ``lepton-ops`` entry point: the command tree and the error boundary."""

from __future__ import annotations

import sys

import typer

from lepton_ops import __version__
from lepton_ops.cli import chaos as chaos_cli
from lepton_ops.cli import demo as demo_cli
from lepton_ops.cli import fleet as fleet_cli
from lepton_ops.cli import job as job_cli
from lepton_ops.cli import lab as lab_cli
from lepton_ops.cli import model as model_cli
from lepton_ops.cli import predict as predict_cli
from lepton_ops.cli import remediate as remediate_cli
from lepton_ops.cli import report as report_cli
from lepton_ops.cli import telemetry as telemetry_cli
from lepton_ops.cli.options import (
    InventoryOpt,
    JsonOpt,
    StateDirOpt,
    VerboseOpt,
    remember_global_options,
)
from lepton_ops.cli.render import fail_line
from lepton_ops.errors import LeptonError

app = typer.Typer(
    name="lepton-ops",
    help="Keep a small AI compute fleet stable: lab, provisioning, jobs, telemetry, "
    "prediction and remediation, driven through Ansible.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"lepton-ops {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    state_dir: StateDirOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    remember_global_options(ctx, inventory, state_dir, json_output, verbose)


app.add_typer(lab_cli.app, name="lab")
app.add_typer(job_cli.app, name="job")
app.add_typer(telemetry_cli.app, name="telemetry")
app.add_typer(model_cli.app, name="model")
app.add_typer(chaos_cli.app, name="chaos")
fleet_cli.register(app)
demo_cli.register(app)
report_cli.register(app)
remediate_cli.register(app)
predict_cli.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every known failure into one line and an exit code."""
    try:
        command = typer.main.get_command(app)
        code = command.main(args=argv, prog_name="lepton-ops", standalone_mode=False)
    except LeptonError as exc:
        fail_line(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        fail_line("interrupted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here: one line, exit 2
        usage = _usage_message(exc)
        if usage is None:
            raise
        if usage:  # empty when the help was shown for a group called without a command
            fail_line(usage)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_message(exc: Exception) -> str | None:
    """One line for a command-line usage error (unknown option, bad value...)."""
    format_message = getattr(exc, "format_message", None)
    exit_code = getattr(exc, "exit_code", None)
    if format_message is None or exit_code != 2:
        return None
    if type(exc).__name__ == "NoArgsIsHelpError":
        return ""
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"{format_message()}{where}"
