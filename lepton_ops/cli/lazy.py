"""The command tree, loaded lazily: a command's module is imported only when it runs.

``lepton-ops --version`` and ``--help`` import none of the command modules (so neither
numpy, httpx, Ansible nor scikit-learn); ``lepton-ops job plan`` imports only
``lepton_ops.cli.job``. The root's help lists the commands from :data:`COMMANDS` (their
one-line summaries), grouped in the order of the loop.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup

from lepton_ops.cli.examples import EXAMPLES


@dataclass(frozen=True)
class Entry:
    """A top-level command: its name, where it lives, and its line in the root's help."""

    name: str
    #: ``module:attribute``: a ``typer.Typer`` (a group, or an app of one command) or a
    #: command function (its help is its docstring).
    target: str
    summary: str


@dataclass(frozen=True)
class Section:
    title: str
    entries: tuple[Entry, ...]


def sub_app(help_text: str) -> typer.Typer:
    """A command group as every group of lepton-ops is made (plain help, fast to build)."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def _typer_command(target: Any, name: str) -> Any:
    if isinstance(target, typer.Typer):
        return typer.main.get_command(target)
    if not callable(target):
        raise TypeError(f"command {name}: {target!r} is neither a typer.Typer nor a function")
    single = typer.Typer(rich_markup_mode=None, add_completion=False)
    single.command(name)(target)
    return typer.main.get_command(single)


class _Argument(TyperArgument):
    """An argument shown as NODE (or [NODE] when optional) in help, not typer's {node}."""

    def make_metavar(self, ctx: Any, *, usage: bool = False) -> str:
        name = (self.metavar or self.name or "").upper() + ("..." if self.nargs != 1 else "")
        if usage:
            return name if self.required else f"[{name}]"
        choices = self.type.get_metavar(self, ctx=ctx) if self.type.name == "choice" else None
        return f"{name} {choices}" if choices else name


def _finish(command: Any, path: str) -> None:
    """Examples from :data:`EXAMPLES`, and plain value names, for ``command`` and its
    subcommands."""
    examples = EXAMPLES.get(path)
    if examples:
        # "\b": click keeps the lines of this paragraph as they are (no rewrapping).
        command.epilog = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples)
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument
        elif param.metavar is None and param.type.name == "str" and param.opts:
            # --since SINCE rather than --since <str>
            param.metavar = max(param.opts, key=len).lstrip("-").replace("-", "_").upper()
    for name, sub in getattr(command, "commands", {}).items():
        _finish(sub, f"{path} {name}")


class LazyGroup(TyperGroup):
    """The root group: commands from :data:`SECTIONS`, each imported on first use."""

    sections: tuple[Section, ...] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._loaded: dict[str, Any] = {}

    @classmethod
    def with_sections(cls, sections: tuple[Section, ...]) -> type[LazyGroup]:
        return type(cls.__name__, (cls,), {"sections": sections})

    def _entries(self) -> dict[str, Entry]:
        return {entry.name: entry for section in self.sections for entry in section.entries}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self._entries(), *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = self._entries().get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = self._load(entry)
        return self._loaded[cmd_name]

    def _load(self, entry: Entry) -> Any:
        module_name, _, attribute = entry.target.partition(":")
        target: Callable[..., Any] | typer.Typer = getattr(
            importlib.import_module(module_name), attribute
        )
        command = _typer_command(target, entry.name)
        command.name = entry.name
        command.short_help = entry.summary
        _finish(command, entry.name)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """One section of the root's help per stage of the loop (nothing is imported)."""
        width = max(len(entry.name) for entry in self._entries().values())
        for section in self.sections:
            with formatter.section(section.title):
                formatter.write_dl(
                    [(entry.name.ljust(width), entry.summary) for entry in section.entries]
                )


__all__ = ["Entry", "LazyGroup", "Section", "sub_app"]
