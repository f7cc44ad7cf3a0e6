"""Job kinds, found through the entry-point group ``lepton_ops.job_kinds``.

lepton-ops registers its own kinds (``mean``, ``pi``, ``predict``, ``sleep``) in that
group; any installed distribution can add more::

    [project.entry-points."lepton_ops.job_kinds"]
    histogram = "my_package.kinds:HistogramKind"

The entry point's name is the kind's name; it points at a :class:`JobKind` subclass
(or an instance of one). A kind is only imported when it is asked for, so a broken
third-party kind does not break the others.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points

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

#: The built-in kinds, also used when lepton-ops runs from a checkout that was never
#: installed (no entry points are registered then).
BUILTIN_KINDS = {
    "mean": "lepton_ops.jobs.kinds.mean:MeanKind",
    "pi": "lepton_ops.jobs.kinds.pi:PiKind",
    "predict": "lepton_ops.jobs.kinds.predict:PredictKind",
    "sleep": "lepton_ops.jobs.kinds.sleep:SleepKind",
}

_loaded: dict[tuple[str, str], JobKind] = {}
_lock = threading.Lock()


def kind_entry_points() -> dict[str, EntryPoint]:
    """Every registered kind's entry point by name (the built-ins when none is)."""
    found: dict[str, EntryPoint] = {
        name: EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
        for name, value in BUILTIN_KINDS.items()
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


__all__ = [
    "BUILTIN_KINDS",
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
    "check_digest",
    "get_kind",
    "kind_entry_points",
    "known_kinds",
    "reduce_partials",
]
