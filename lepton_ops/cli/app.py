"""The ``lepton-ops`` entry point: the command tree and the error boundary."""

from __future__ import annotations

import sys

import typer

from lepton_ops.cli.lazy import Entry, LazyGroup, Section
from lepton_ops.cli.options import (
    InventoryOpt,
    JsonOpt,
    StateDirOpt,
    VerboseOpt,
    remember_global_options,
)
from lepton_ops.cli.render import fail_line
from lepton_ops.errors import LeptonError

#: The commands in the order of the loop; a command's module is imported when it runs.
SECTIONS = (
    Section(
        "Set up the fleet",
        (
            Entry("lab", "lepton_ops.cli.lab:app", "The embedded five-node lab: up, status, down."),
            Entry("provision", "lepton_ops.cli.fleet:provision_command",
                  "Give every node its Python stack (from the controller's wheelhouse)."),
            Entry("deploy", "lepton_ops.cli.fleet:deploy_command",
                  "Start the aggregator and the workers, supervised, behind a token."),
        ),
    ),
    Section(
        "Run work",
        (
            Entry("job", "lepton_ops.cli.job:app",
                  "Plan jobs by weight, run them on the aggregator, follow them."),
        ),
    ),
    Section(
        "Observe",
        (
            Entry("telemetry", "lepton_ops.cli.telemetry:app",
                  "Collect, pull, show, export and prune the nodes' telemetry."),
            Entry("chaos", "lepton_ops.cli.chaos:app",
                  "Real faults on the lab's nodes: the predictor's labels."),
        ),
    ),
    Section(
        "Predict",
        (
            Entry("model", "lepton_ops.cli.model:app",
                  "The failure predictor's model: train, evaluate, show, install-starter."),
            Entry("predict", "lepton_ops.cli.predict:predict_command",
                  "Each node's risk of failing soon, with the features behind it."),
        ),
    ),
    Section(
        "Remediate",
        (
            Entry("remediate", "lepton_ops.cli.remediate:remediate_command",
                  "Act on the nodes at risk: restart, drain, re-provision, cordon."),
            Entry("cycle", "lepton_ops.cli.remediate:cycle_command",
                  "One pass of the loop: collect, predict, remediate."),
            Entry("watch", "lepton_ops.cli.remediate:watch_command",
                  "Run the loop every --interval until stopped."),
            Entry("audit", "lepton_ops.cli.remediate:audit_command",
                  "The remediation audit log."),
            Entry("uncordon", "lepton_ops.cli.remediate:uncordon_command",
                  "Lift a node's cordon."),
            Entry("schedule", "lepton_ops.cli.remediate:schedule_app",
                  "Run 'cycle' on a schedule (systemd timer or cron)."),
        ),
    ),
    Section(
        "See the whole",
        (
            Entry("status", "lepton_ops.cli.status:status_command",
                  "One screen: each node's health, weight, drain, risk, last action."),
            Entry("report", "lepton_ops.cli.report:report_command",
                  "Load, stability and prediction numbers; an HTML page with charts."),
            Entry("demo", "lepton_ops.cli.demo:demo_command",
                  "The whole loop on the embedded lab, step by step."),
        ),
    ),
)  # fmt: skip

app = typer.Typer(
    name="lepton-ops",
    help="Keep a small AI compute fleet stable: lab, provisioning, jobs, telemetry, "
    "prediction and remediation, driven through Ansible.",
    cls=LazyGroup.with_sections(SECTIONS),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from lepton_ops import __version__

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
