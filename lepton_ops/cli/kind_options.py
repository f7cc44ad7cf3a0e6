"""``job run``'s options for the job kinds' parameters and artifacts, made from what each
kind declares (:class:`~lepton_ops.jobs.kinds.base.Param`,
:class:`~lepton_ops.jobs.kinds.base.ArtifactSpec`).

They are made when ``job run`` is parsed or its help is shown, never for another command:
the kinds' modules load light (no numpy until a kind computes), and ``job plan`` does not
load them at all. A parameter several kinds declare is one option (``--task-size`` for
``mean`` and ``pi``), its help saying each kind's meaning, default and bounds; its value is
checked by the kind the job is of.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand, TyperOption

if TYPE_CHECKING:
    from lepton_ops.jobs.kinds import ArtifactSpec, Param


#: ``(parameters, artifact files)`` given to the command running in this context.
_given: ContextVar[tuple[dict[str, Any], dict[str, Path | None]]] = ContextVar("kind_options")


def given_kind_options() -> tuple[dict[str, Any], dict[str, Path | None]]:
    """``(parameters, artifact files)`` of the running ``job run`` (None: not given)."""
    return _given.get()


class KindOptionsCommand(TyperCommand):
    """A command that takes every known kind's parameters and artifacts as options, after
    its ``--tasks`` option; its ``--kind`` option's help lists the kinds. Its function reads
    the values given with :func:`given_kind_options`."""

    #: The kinds' options follow this one.
    after = "tasks"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kind_params: tuple[str, ...] | None = None
        self._kind_artifacts: tuple[str, ...] = ()

    def get_params(self, ctx: Any) -> list[Any]:
        if self._kind_params is None:
            self._add_kind_options()
        return super().get_params(ctx)

    def invoke(self, ctx: Any) -> Any:
        # The command's function takes its own options; the kinds' are handed over apart.
        values = ctx.params
        params = {name: values.pop(name, None) for name in self._kind_params or ()}
        files = {name: values.pop(name, None) for name in self._kind_artifacts}
        files = {name: None if path is None else Path(path) for name, path in files.items()}
        token = _given.set((params, files))
        try:
            return super().invoke(ctx)
        finally:
            _given.reset(token)

    def _add_kind_options(self) -> None:
        from lepton_ops.errors import LeptonError
        from lepton_ops.jobs.kinds import get_kind, known_kinds

        names = known_kinds()
        params: dict[str, list[tuple[str, Param]]] = {}
        artifacts: dict[str, list[tuple[str, ArtifactSpec]]] = {}
        for name in names:
            try:
                kind = get_kind(name)
            except LeptonError:
                continue  # a broken plugin: running it says why, it hides no other option
            for param in kind.params:
                params.setdefault(param.name, []).append((name, param))
            for spec in kind.artifacts:
                artifacts.setdefault(spec.name, []).append((name, spec))
        taken = {param.name for param in self.params}
        made: list[TyperOption] = []
        for key, declared in params.items():
            if key not in taken:
                made.append(_param_option(declared))
        for key, specs in artifacts.items():
            if key not in taken and key not in params:
                made.append(_artifact_option(specs))
        self._kind_params = tuple(key for key in params if key not in taken)
        self._kind_artifacts = tuple(k for k in artifacts if k not in taken and k not in params)
        for option in self.params:
            if option.name == "kind" and isinstance(option, TyperOption):
                option.help = f"The job kind: {', '.join(names)}, or one a package registers."
        where = next(
            (i + 1 for i, option in enumerate(self.params) if option.name == self.after),
            len(self.params),
        )
        self.params[where:where] = made


def _sentence(text: str, detail: str) -> str:
    text = text.rstrip(".")
    return f"{text[:1].upper()}{text[1:]}" + (f" ({detail})." if detail else ".")


def _param_option(declared: list[tuple[str, Param]]) -> TyperOption:
    first = declared[0][1]
    kinds = ", ".join(kind for kind, _ in declared)
    if len({(p.help, p.bounds_text()) for _, p in declared}) == 1:
        bounds = first.bounds_text()
        help_text = _sentence(first.help, f"{kinds}; {bounds}" if bounds else kinds)
    else:
        help_text = " ".join(f"{k}: {_sentence(p.help, p.bounds_text())}" for k, p in declared)
    return TyperOption(
        param_decls=[first.flag, first.name],
        type=int if first.type == "int" else float,
        metavar=first.value_name,
        help=help_text,
        default=None,
        show_default=False,
    )


def _artifact_option(specs: list[tuple[str, ArtifactSpec]]) -> TyperOption:
    first = specs[0][1]
    kinds = ", ".join(kind for kind, _ in specs)
    suffixes = list(dict.fromkeys(suffix for _, spec in specs for suffix in spec.suffixes))
    files = f"; a {' or '.join(suffixes)} file" if suffixes else ""
    return TyperOption(
        param_decls=[first.flag, first.name],
        type=str,
        metavar="FILE",
        help=_sentence(first.help, kinds + files),
        default=None,
        show_default=False,
    )


__all__ = ["KindOptionsCommand", "given_kind_options"]
