"""Progress of a playbook run: on a terminal one live bar per task, advancing per host;
elsewhere (CI logs, pipes) one plain line per finished task."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Column

_HOST_DONE = {
    "runner_on_ok",
    "runner_on_failed",
    "runner_on_unreachable",
    "runner_on_skipped",
}
_COLOURS = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "red"}


class PlaybookProgress:
    """Feeds ansible-runner events into a rich progress display."""

    def __init__(self, console: Console, host_count: int, title: str) -> None:
        self._console = console
        self._live = console.is_terminal
        self._host_count = max(host_count, 1)
        self._progress = Progress(
            TextColumn(
                "{task.description}",
                table_column=Column(ratio=3, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[tally]}", table_column=Column(ratio=2, no_wrap=True)),
            console=console,
            transient=False,
        )
        self._title = title
        self._current: TaskID | None = None
        self._current_name = ""
        self._tally: dict[str, int] = {}

    def __enter__(self) -> PlaybookProgress:
        self._console.print(f"[bold]{self._title}[/bold]")
        if self._live:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish_task()
        if self._live:
            self._progress.stop()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self._finish_task()
            self._start_task(str(data.get("task") or data.get("name") or "task"))
        elif kind in _HOST_DONE and self._current_name and not data.get("loop"):
            outcome = _outcome(kind, data)
            self._tally[outcome] = self._tally.get(outcome, 0) + 1
            if self._current is not None:
                self._progress.update(self._current, advance=1, tally=self._tally_text())

    def _start_task(self, name: str) -> None:
        self._tally = {}
        self._current_name = name
        if self._live:
            self._current = self._progress.add_task(name, total=self._host_count, tally="")

    def _finish_task(self) -> None:
        if not self._current_name:
            return
        if self._current is not None:
            self._progress.update(self._current, completed=self._host_count)
        elif self._tally:
            self._console.print(f"  {self._current_name}: {self._tally_text()}", soft_wrap=True)
        self._current = None
        self._current_name = ""

    def _tally_text(self) -> str:
        parts = []
        for outcome, count in sorted(self._tally.items()):
            colour = _COLOURS.get(outcome, "dim")
            parts.append(f"[{colour}]{outcome}={count}[/{colour}]")
        return " ".join(parts)


def _outcome(kind: str, data: dict[str, Any]) -> str:
    if kind == "runner_on_ok":
        return "changed" if (data.get("res") or {}).get("changed") else "ok"
    return kind.removeprefix("runner_on_")
