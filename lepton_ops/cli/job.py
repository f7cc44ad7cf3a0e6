"""``lepton-ops job``: plan jobs over the fleet's workers, run them and follow them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from lepton_ops.cli.kind_options import KindOptionsCommand, given_kind_options
from lepton_ops.cli.lazy import sub_app
from lepton_ops.cli.options import (
    LimitOpt,
    require_inventory,
    with_settings,
)
from lepton_ops.cli.render import console, err_console, human_seconds, print_json
from lepton_ops.errors import OperationFailed
from lepton_ops.jobs.fleet import plan_inventory
from lepton_ops.jobs.planner import Plan, Strategy
from lepton_ops.settings import Settings

if TYPE_CHECKING:
    from lepton_ops.jobs import client as jobs

app = sub_app(
    "Jobs: split tasks over the workers in proportion to their weights, run them on "
    "the aggregator and follow them. LEPTON_OPS_AGGREGATOR_URL overrides the aggregator's "
    "address from the inventory (for tests and ssh tunnels)."
)


@app.command("plan")
@with_settings
def plan_command(
    cfg: Settings,
    tasks: Annotated[
        int,
        typer.Option(
            "--tasks",
            "-t",
            min=1,
            metavar="N",
            help="How many tasks the job has (1 or more).",
            show_default=False,
        ),
    ],
    strategy: Annotated[
        Strategy,
        typer.Option(
            "--strategy",
            help="weighted: tasks in proportion to lepton_weight (largest remainder); "
            "equal: the naive N / nodes split, for comparison.",
        ),
    ] = Strategy.WEIGHTED,
    task_ms: Annotated[
        float,
        typer.Option(
            "--task-ms",
            min=0.0,
            metavar="MS",
            help="Milliseconds one task takes on a speed-1 node (a node's speed is "
            "lepton_speed, else its weight over the smallest weight).",
        ),
    ] = 20.0,
    shard_size: Annotated[
        int | None,
        typer.Option(
            "--shard-size",
            min=1,
            metavar="N",
            help="Tasks per shard. Default: about 4 shards per worker, 1 to 1000 tasks each.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOpt = None,
) -> None:
    """Show how a job's tasks would be split over the workers, and how long it should take."""
    source = require_inventory(cfg)
    plan = plan_inventory(
        source,
        tasks,
        limit=limit,
        strategy=strategy,
        task_s=task_ms / 1000.0,
        shard_size=shard_size,
    )
    if cfg.json:
        print_json(plan.to_dict())
        return
    _show(plan, verbose=cfg.verbose)


def _show(plan: Plan, *, verbose: int) -> None:
    table = Table(
        title=f"job plan: {plan.tasks} tasks, {plan.strategy.value}, "
        f"{len(plan.shards)} shards of up to {plan.max_shard_size}",
        title_justify="left",
    )
    table.add_column("node")
    table.add_column("weight", justify="right")
    table.add_column("speed", justify="right")
    # the share the strategy gives each node, beside its tasks (equal: 1/n, not L_i)
    equal = plan.strategy is Strategy.EQUAL
    table.add_column("equal share" if equal else "load share L_i", justify="right")
    if equal:
        table.add_column("L_i (by weight)", justify="right", style="dim")
    table.add_column("tasks", justify="right")
    table.add_column("shards", justify="right")
    table.add_column("predicted", justify="right")
    if verbose:
        table.add_column("task ranges")
    for node in plan.nodes:
        row = [
            node.name,
            str(node.weight),
            f"{node.speed:g}",
            f"{float(node.quota / plan.tasks) if plan.tasks else 0.0:.2%}",
            *([f"{node.load_share:.2%}"] if equal else []),
            str(node.tasks),
            str(len(node.shards)),
            human_seconds(node.predicted_s),
        ]
        if verbose:
            row.append(_ranges(plan, node.name))
        table.add_row(*row)
    total = [
        "total",
        str(plan.total_weight),
        f"{sum(node.speed for node in plan.nodes if node.weight > 0):g}",
        "100.00%" if plan.total_weight else "-",
        *(["100.00%" if plan.total_weight else "-"] if equal else []),
        str(sum(node.tasks for node in plan.nodes)),
        str(len(plan.shards)),
        human_seconds(plan.makespan_s),
    ]
    if verbose:
        total.append("")
    table.add_section()
    table.add_row(*total, style="bold")
    console.print(table)
    ideal = plan.ideal_makespan_s
    ratio = f" ({plan.makespan_s / ideal:.3f}x ideal)" if ideal > 0 else ""
    console.print(
        f"predicted makespan {human_seconds(plan.makespan_s)}{ratio}; "
        f"ideal {human_seconds(ideal)} (all tasks spread by speed, {plan.task_s * 1000:g} ms "
        "per task at speed 1)"
    )


def _ranges(plan: Plan, node: str) -> str:
    shards = plan.shards_of(node)
    if not shards:
        return "-"
    return f"[{shards[0].start}, {shards[-1].stop})"


# --------------------------------------------------------------------------- run and follow

JobIdArg = Annotated[
    str, typer.Argument(metavar="JOB_ID", help="The job's id (from 'job run' or 'job list').")
]


def _client(cfg: Settings) -> jobs.AggregatorClient:
    from lepton_ops.jobs import client as jobs  # httpx: only for the commands that talk

    return jobs.connect(cfg.state_dir, lambda: require_inventory(cfg))


@app.command("run", cls=KindOptionsCommand)
@with_settings
def run_command(
    cfg: Settings,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            "-k",
            metavar="KIND",
            help="The job kind (the known kinds are listed by --help).",
        ),
    ],
    tasks: Annotated[
        int | None,
        typer.Option(
            "--tasks",
            "-t",
            min=1,
            metavar="N",
            help="How many tasks the job has, 1 or more (predict: one per data row, the default).",
            show_default=False,
        ),
    ] = None,
    strategy: Annotated[
        Strategy, typer.Option("--strategy", help="weighted (by lepton_weight) or equal.")
    ] = Strategy.WEIGHTED,
    shard_size: Annotated[
        int | None,
        typer.Option(
            "--shard-size", min=1, metavar="N", help="Tasks per shard.", show_default=False
        ),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Submit and return; the job goes on.")
    ] = False,
) -> None:
    """Run a job on the aggregator and follow it (Ctrl-C detaches; the job goes on).

    An aggregator that stops answering while the job runs (a restart) is tried again for
    up to 60 s; the job resumes there and its result is shown.

    A predict job scores each row of --data with --model: both files are checked here,
    uploaded once (by content), and the job has one task per row.

    The options after --tasks are the kinds' parameters and files, each for the kinds
    named in its help.
    """
    from lepton_ops.jobs import client as jobs

    params, files = given_kind_options()
    inputs = jobs.job_inputs(kind, params, files, tasks)
    with _client(cfg) as client:
        digests = client.upload_artifacts(inputs.artifacts)
        job_id = client.submit(
            kind, inputs.params, inputs.tasks, strategy, shard_size, artifacts=digests
        )
        if detach:
            _detached(cfg, job_id, interrupted=False)
            return
        _follow_and_show(cfg, client, job_id)


@app.command("watch")
@with_settings
def watch_command(
    cfg: Settings,
    job_id: JobIdArg,
) -> None:
    """Follow a job until it finishes, then show its result (Ctrl-C detaches). An
    aggregator that stops answering (a restart) is tried again for up to 60 s."""
    with _client(cfg) as client:
        _follow_and_show(cfg, client, job_id)


@app.command("status")
@with_settings
def status_command(
    cfg: Settings,
    job_id: JobIdArg,
) -> None:
    """A job's status, progress and per-node work."""
    with _client(cfg) as client:
        status = client.status(job_id)
    if cfg.json:
        print_json(status)
        return
    progress = status.get("progress") or {}
    console.print(
        f"job {status['job_id']} ({status['kind']}): {status['status']}, "
        f"{progress.get('shards_done', 0)}/{progress.get('shards_total', 0)} shards, "
        f"{progress.get('tasks_done', 0)}/{progress.get('tasks_total', 0)} tasks"
        + (f"; {status['reason']}" if status.get("reason") else "")
    )
    console.print(_per_node_table(status))


@app.command("result")
@with_settings
def result_command(
    cfg: Settings,
    job_id: JobIdArg,
) -> None:
    """A finished job's result (exit 1 with the reason if it failed or still runs)."""
    from lepton_ops.jobs import client as jobs

    with _client(cfg) as client:
        status = client.status(job_id)
        if status.get("status") == "failed":
            raise OperationFailed(jobs.failure_line(status))
        _show_outcome(cfg, jobs.outcome(client, status))


@app.command("cancel")
@with_settings
def cancel_command(
    cfg: Settings,
    job_id: JobIdArg,
) -> None:
    """Cancel a running job: it fails (reason: cancelled) and its workers stop its shards
    between tasks (exit 1 if it has already finished)."""
    with _client(cfg) as client:
        cancelled = client.cancel(job_id)
    if cfg.json:
        print_json(cancelled)
        return
    console.print(f"job {cancelled['job_id']} ({cancelled['kind']}) cancelled", highlight=False)


@app.command("list")
@with_settings
def list_command(
    cfg: Settings,
) -> None:
    """The aggregator's jobs, newest first."""
    with _client(cfg) as client:
        listed = client.list()
    if cfg.json:
        print_json({"jobs": listed})
        return
    table = Table(title=f"{len(listed)} jobs", title_justify="left")
    for column in ("job", "kind", "status", "strategy", "tasks", "shards"):
        table.add_column(column, justify="right" if column in ("tasks", "shards") else "left")
    for job in listed:
        table.add_row(
            str(job["job_id"]), str(job["kind"]), str(job["status"]), str(job["strategy"]),
            str(job["tasks"]), str(job["shards"]),
        )  # fmt: skip
    console.print(table)


class _Reconnects:
    """Says once per outage, on stderr, that the aggregator is being tried again."""

    def __init__(self) -> None:
        self.out = False

    def retrying(self, error: str, left_s: float) -> None:
        if not self.out:
            self.out = True
            err_console.print(
                f"{error}; trying again for up to {left_s:.0f} s (the job goes on there)",
                highlight=False,
            )

    def answered(self) -> None:
        if self.out:
            self.out = False
            err_console.print("the aggregator answers again", highlight=False)


def _follow_and_show(cfg: Settings, client: jobs.AggregatorClient, job_id: str) -> None:
    from lepton_ops.jobs import client as jobs

    reconnects = _Reconnects()
    try:
        status = _follow(cfg, client, job_id, reconnects)
    except KeyboardInterrupt:
        _detached(cfg, job_id, interrupted=True)
        return
    finished = jobs.outcome(client, status, on_retry=reconnects.retrying)
    if not finished.succeeded:
        if cfg.json:
            print_json(finished.to_dict())
        raise OperationFailed(jobs.failure_line(status))
    _show_outcome(cfg, finished)


def _follow(
    cfg: Settings, client: jobs.AggregatorClient, job_id: str, reconnects: _Reconnects
) -> dict[str, Any]:
    """Follow the job with a progress bar; an aggregator that stops answering (a restart)
    is tried again for up to jobs.RECONNECT_S seconds, the bar kept."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from lepton_ops.jobs import client as jobs

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("shards"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[nodes]}"),
        console=err_console,
        disable=cfg.json or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(f"job {job_id}", total=None, nodes="")

        def update(status: dict[str, Any]) -> None:
            reconnects.answered()
            progress = status["progress"]
            bar.update(
                task,
                completed=progress["shards_done"],
                total=progress["shards_total"],
                nodes=_tally(status),
            )

        return jobs.follow(client, job_id, update, on_retry=reconnects.retrying)


def _tally(status: dict[str, Any]) -> str:
    per_node = status.get("per_node") or {}
    return " ".join(f"{node}:{entry['shards']}" for node, entry in per_node.items())


def _detached(cfg: Settings, job_id: str, *, interrupted: bool) -> None:
    why = "detached" if interrupted else "submitted"
    err_console.print(
        f"{why}: job {job_id} goes on on the aggregator; follow it with "
        f"'lepton-ops job watch {job_id}'",
        highlight=False,
    )
    if cfg.json:
        print_json({"job_id": job_id, "status": "running"})


def _show_outcome(cfg: Settings, finished: jobs.Outcome) -> None:
    data = finished.to_dict()
    if cfg.json:
        print_json(data)
        return
    table = Table(
        title=f"job {data['job_id']} ({data['kind']}): {data['status']}", title_justify="left"
    )
    table.add_column("result")
    table.add_column("value", justify="right")
    for key, value in (data["result"] or {}).items():
        table.add_row(str(key), _cell(value))
    console.print(table)
    console.print(_per_node_table(finished.status))
    if data["makespan_s"] is not None:
        console.print(f"makespan {human_seconds(data['makespan_s'])}")


#: Lists longer than this (a predict job's predictions) are shortened in the table.
_SHOWN_ITEMS = 8


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.17g}"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_cell(item)}" for key, item in value.items())
    if isinstance(value, list) and len(value) > _SHOWN_ITEMS:
        shown = ", ".join(_cell(item) for item in value[:_SHOWN_ITEMS])
        return f"{shown}, ... ({len(value)} values)"
    return str(value)


def _per_node_table(status: dict[str, Any]) -> Table:
    table = Table(title="per node", title_justify="left")
    table.add_column("node")
    for column in ("tasks", "shards", "seconds"):
        table.add_column(column, justify="right")
    for node, entry in (status.get("per_node") or {}).items():
        table.add_row(node, str(entry["tasks"]), str(entry["shards"]), f"{entry['seconds']:.3f}")
    return table
