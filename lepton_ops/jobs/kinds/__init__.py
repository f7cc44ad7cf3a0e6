"""Job kinds: the modules of this package, and those registered in the entry-point group
``lepton_ops.job_kinds``.

The built-in kinds are this package's modules (all but ``base``): module ``mean`` holds
the kind called ``mean``. lepton-ops also registers them in the entry-point group (in
``pyproject.toml``, for other tools; a test keeps the two the same). Any installed
distribution can add more::

    [project.entry-points."lepton_ops.job_kinds"]
    histogram = "my_package.kinds:HistogramKind"

The entry point's name is the kind's name; it points at a :class:`JobKind` subclass
(or an instance of one, or a module holding the kind of that name). A kind is only
imported when it is asked for, so a broken third-party kind does not break the others;
a kind's module imports nothing heavy at load (its declarations - name, parameters,
artifacts - are what ``lepton-ops job run --help`` reads).
"""

from __future__ import annotations

import inspect
import pkgutil
import threading
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.jobs.kinds.base import (
    MAX_ARTIFACT_BYTES,
    MAX_TASKS,
    ArtifactSpec,
    CancelCheck,
    JobKind,
    Param,
    Partial,
    ShardCancelled,
    artifact_digest,
    check_digest,
    reduce_partials,
)

ENTRY_POINT_GROUP = "lepton_ops.job_kinds"

#: Modules of this package that hold no kind.
_NOT_KINDS = frozenset({"base"})


def builtin_kinds() -> dict[str, str]:
    """``{name: module}`` of the built-in kinds: this package's modules (no import)."""
    return {
        module.name: f"{__name__}.{module.name}"
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
        if not module.name.startswith("_") and module.name not in _NOT_KINDS
    }


_loaded: dict[tuple[str, str], JobKind] = {}
_lock = threading.Lock()


def kind_entry_points() -> dict[str, EntryPoint]:
    """Every kind's entry point by name: the built-ins, and those registered (which win:
    they also name the built-ins, unless lepton-ops runs from a checkout never installed)."""
    found: dict[str, EntryPoint] = {
        name: EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
        for name, value in builtin_kinds().items()
    }
    registered: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        other = registered.get(entry.name)
        if other is not None and other.value != entry.value:
            raise OperationFailed(
                f"job kind {entry.name!r} is registered twice, as {other.value} and "
                f"{entry.value}: uninstall one of the packages providing it"
            )
        registered[entry.name] = entry
    found.update(registered)
    return found


def known_kinds() -> list[str]:
    """The names of the kinds that can be asked for, sorted."""
    return sorted(kind_entry_points())


def get_kind(name: str) -> JobKind:
    """The job kind called ``name``; BadInput naming the known kinds if there is none."""
    entries = kind_entry_points()
    entry = entries.get(name)
    if entry is None:
        raise BadInput(f"unknown job kind {name!r}: known kinds are {', '.join(sorted(entries))}")
    key = (entry.name, entry.value)
    with _lock:
        kind = _loaded.get(key)
        if kind is None:
            kind = _load(entry)
            _loaded[key] = kind
    return kind


def _load(entry: EntryPoint) -> JobKind:
    try:
        target = entry.load()
    except Exception as exc:
        raise OperationFailed(
            f"job kind {entry.name!r} ({entry.value}) could not be imported: "
            f"{exc.__class__.__name__}: {exc}"
        ) from exc
    if isinstance(target, ModuleType):
        target = _kind_in(target, entry.name)
    kind = target() if isinstance(target, type) and issubclass(target, JobKind) else target
    if not isinstance(kind, JobKind):
        raise OperationFailed(
            f"job kind {entry.name!r} ({entry.value}) is not a lepton_ops JobKind subclass"
        )
    if getattr(kind, "name", None) != entry.name:
        raise OperationFailed(
            f"job kind {entry.name!r} ({entry.value}) calls itself "
            f"{getattr(kind, 'name', None)!r}: the entry point's name must be the kind's name"
        )
    return kind


def _kind_in(module: ModuleType, name: str) -> object:
    """The JobKind subclass called ``name`` that ``module`` defines (None if it has none)."""
    for _, value in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(value, JobKind)
            and value.__module__ == module.__name__
            and getattr(value, "name", None) == name
        ):
            return value
    return None


__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_ARTIFACT_BYTES",
    "MAX_TASKS",
    "ArtifactSpec",
    "CancelCheck",
    "JobKind",
    "Param",
    "Partial",
    "ShardCancelled",
    "artifact_digest",
    "builtin_kinds",
    "check_digest",
    "get_kind",
    "kind_entry_points",
    "known_kinds",
    "reduce_partials",
]
