"""What a job kind is: parameters, map over a task range, an exact reduce, finalize.

A kind is a subclass of :class:`JobKind`. The public methods validate what they are
given (parameters and partial results arrive over HTTP from other processes) and then
call the kind's own ``_map`` / ``_reduce`` / ``_finalize``. Partial results are plain
JSON-serialisable dicts; integers that can exceed 2**53 travel as decimal strings so
no JSON reader rounds them.

Rules every kind keeps:

- ``map(params, start, stop)`` depends only on the parameters and the task indices, so
  any node computes the same partial for the same range.
- ``reduce`` is associative, commutative and exact, with ``empty()`` as its identity:
  however the shards are grouped and ordered, the final result is bitwise the same.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from lepton_ops.errors import BadInput

Partial = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """One job parameter: its name (``task_size`` is ``--task-size``), type and bounds."""

    name: str
    type: Literal["int", "float"]
    help: str
    #: None: the parameter is required.
    default: int | float | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is None

    def coerce(self, value: object) -> int | float:
        """``value`` (a number, or its text as it comes from a form or a CLI) checked."""
        number = self._number(value)
        if self.minimum is not None and number < self.minimum:
            raise BadInput(f"{self.flag} must be {self.minimum} or more, got {value}")
        if self.maximum is not None and number > self.maximum:
            raise BadInput(f"{self.flag} must be at most {self.maximum}, got {value}")
        return number

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flag": self.flag,
            "type": self.type,
            "help": self.help,
            "required": self.required,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }

    def _number(self, value: object) -> int | float:
        kind = "a whole number" if self.type == "int" else "a number"
        if isinstance(value, bool):
            raise BadInput(f"{self.flag} must be {kind}, got {value!r}")
        if self.type == "int":
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            raise BadInput(f"{self.flag} must be {kind}, got {value!r}")
        if isinstance(value, int | float | str):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
        raise BadInput(f"{self.flag} must be {kind}, got {value!r}")


TASKS = Param("tasks", "int", "How many tasks the job has (indices 0 to tasks - 1).", minimum=0)
SEED = Param(
    "seed",
    "int",
    "The job's random seed S: task i draws from numpy.random.default_rng([S, i]).",
    default=0,
    minimum=0,
)


class JobKind(ABC):
    """A kind of job. Subclass it and register the class under the entry-point group
    ``lepton_ops.job_kinds`` (the entry point's name is the kind's name)."""

    #: The kind's name, as the entry point registers it.
    name: ClassVar[str]
    #: One line for listings.
    summary: ClassVar[str]
    #: The parameters besides ``tasks`` (which every kind has).
    params: ClassVar[tuple[Param, ...]] = ()

    # ------------------------------------------------------------------ parameters

    def all_params(self) -> tuple[Param, ...]:
        return (TASKS, *self.params)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The job's parameters checked, with defaults filled in; BadInput otherwise."""
        if not isinstance(params, Mapping):
            raise BadInput(f"job parameters must be a mapping, got {type(params).__name__}")
        spec = {param.name: param for param in self.all_params()}
        unknown = sorted(str(key) for key in params if key not in spec)
        if unknown:
            raise BadInput(
                f"job kind {self.name} has no parameter {', '.join(unknown)} "
                f"(parameters: {', '.join(spec)})"
            )
        result: dict[str, Any] = {}
        for name, param in spec.items():
            value = params.get(name)
            if value is None:
                if param.default is None:
                    raise BadInput(f"job kind {self.name} needs {param.flag}")
                value = param.default
            result[name] = param.coerce(value)
        return result

    # ------------------------------------------------------------------ map / reduce

    def map(
        self, params: Mapping[str, Any], start: int, stop: int, *, speed: float = 1.0
    ) -> Partial:
        """The partial result over tasks ``[start, stop)``; ``speed`` is the worker's."""
        checked = self.validate(params)
        for label, value in (("start", start), ("stop", stop)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadInput(f"the shard {label} must be a whole number, got {value!r}")
        if not 0 <= start <= stop <= checked["tasks"]:
            raise BadInput(
                f"the shard [{start}, {stop}) is not inside the job's tasks [0, {checked['tasks']})"
            )
        if (
            isinstance(speed, bool)
            or not isinstance(speed, int | float)
            or not math.isfinite(speed)
            or speed <= 0
        ):
            raise BadInput(f"the worker speed must be a number greater than 0, got {speed!r}")
        return self._map(checked, start, stop, float(speed))

    def reduce(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> Partial:
        """Two partial results merged into one (associative, commutative and exact)."""
        return self._reduce(self.check_partial(a), self.check_partial(b))

    def finalize(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        """The job's result from the partial result over all its tasks."""
        return self._finalize(self.check_partial(partial))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "params": [param.to_dict() for param in self.all_params()],
        }

    @abstractmethod
    def empty(self) -> Partial:
        """The partial result over no task: the identity of ``reduce``."""

    @abstractmethod
    def check_partial(self, partial: Mapping[str, Any]) -> Partial:
        """``partial`` checked and normalised (BadInput when it is not one of ours)."""

    @abstractmethod
    def _map(self, params: dict[str, Any], start: int, stop: int, speed: float) -> Partial: ...

    @abstractmethod
    def _reduce(self, a: Partial, b: Partial) -> Partial: ...

    @abstractmethod
    def _finalize(self, partial: Partial) -> dict[str, Any]: ...


def reduce_partials(kind: JobKind, partials: Iterable[Mapping[str, Any]]) -> Partial:
    """All ``partials`` merged (``kind.empty()`` when there are none)."""
    return functools.reduce(kind.reduce, partials, kind.empty())


# ------------------------------------------------------------------ helpers for partials


def partial_fields(kind: str, partial: Mapping[str, Any], names: Iterable[str]) -> None:
    """BadInput unless ``partial`` is a mapping with exactly the fields ``names``."""
    if not isinstance(partial, Mapping):
        raise BadInput(f"a {kind} partial result must be a mapping, got {type(partial).__name__}")
    expected = set(names)
    present = {str(key) for key in partial}
    if present != expected:
        missing = ", ".join(sorted(expected - present)) or "none"
        extra = ", ".join(sorted(present - expected)) or "none"
        raise BadInput(
            f"not a {kind} partial result (missing fields: {missing}; unknown fields: {extra})"
        )


def exact_int(kind: str, field: str, value: object, *, minimum: int = 0) -> int:
    """An integer field of a partial result: an int, or its decimal text (big values)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    if number is None or number < minimum:
        raise BadInput(
            f"{kind} partial result: {field} must be a whole number of at least {minimum}, "
            f"got {value!r}"
        )
    return number
