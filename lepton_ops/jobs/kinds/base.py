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

A kind may also declare *artifacts* (:class:`ArtifactSpec`): named binary inputs such as
a model file and a data file. They travel once, content-addressed by their SHA-256
(:func:`artifact_digest`); a job names them by digest. ``load_artifact`` turns an
artifact's bytes into the object ``map`` is given (checking it), ``check_artifacts``
checks the artifacts against the parameters and each other.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from lepton_ops.errors import BadInput, OperationFailed

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Partial = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """One job parameter: its name (``task_size`` is ``--task-size``), type and bounds.

    A kind's parameters are its ``job run`` options (and the ``params`` of the
    ``lepton.ops.job`` module and of the services' job API): declaring one is all it takes.
    """

    name: str
    type: Literal["int", "float"]
    help: str
    #: None: the parameter is required.
    default: int | float | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    #: The value's name in ``--help`` (default: N for a whole number, X for a number).
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def value_name(self) -> str:
        return self.metavar or ("N" if self.type == "int" else "X")

    def bounds_text(self) -> str:
        """Its default and bounds in words (``default 1000, 1 to 1000000``), or ""."""
        low, high = self.minimum, self.maximum
        bounds = (
            f"{low} to {high}"
            if low is not None and high is not None
            else f"{low} or more"
            if low is not None
            else f"at most {high}"
            if high is not None
            else ""
        )
        default = "" if self.default is None else f"default {self.default}"
        return ", ".join(part for part in (default, bounds) if part)

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


#: No job of any kind has more tasks than this.
MAX_TASKS = 10**12
#: A shard holds at most this many tasks, whatever its kind (kinds may allow fewer).
MAX_SHARD_TASKS = 1_000_000
TASKS = Param(
    "tasks",
    "int",
    "How many tasks the job has (indices 0 to tasks - 1).",
    minimum=0,
    maximum=MAX_TASKS,
)
SEED = Param(
    "seed",
    "int",
    "The job's random seed S: task i draws from numpy.random.default_rng([S, i]).",
    default=0,
    minimum=0,
)
#: A task draws at most this many numbers (``task_size``), whatever its kind.
MAX_TASK_SIZE = 1_000_000
#: A shard of a kind that draws ``task_size`` numbers per task draws at most this many.
MAX_SHARD_DRAWS = 100_000_000


def task_size(what: str, default: int) -> Param:
    """The ``task_size`` parameter of a kind whose tasks each draw that many ``what``."""
    return Param(
        "task_size",
        "int",
        f"How many {what} each task draws (M).",
        default=default,
        minimum=1,
        maximum=MAX_TASK_SIZE,
    )


class ShardCancelled(OperationFailed):
    """The shard's job was cancelled while the shard ran: the kind stopped between tasks."""


#: Asked between tasks while a shard runs: True once the shard's job is cancelled.
CancelCheck = Callable[[], bool]
_running = threading.local()


@contextmanager
def cancellable(check: CancelCheck | None) -> Iterator[None]:
    """Run a shard (``kind.map``) in this thread with ``check`` asked at every
    :func:`cancel_point` (None: the shard cannot be cancelled)."""
    previous = getattr(_running, "check", None)
    _running.check = check
    try:
        yield
    finally:
        _running.check = previous


def cancel_point() -> None:
    """ShardCancelled if the shard running in this thread was cancelled (kinds call it
    between tasks; a kind that never calls it runs its shards to the end)."""
    check: CancelCheck | None = getattr(_running, "check", None)
    if check is not None and check():
        raise ShardCancelled("the shard's job was cancelled")


def cancellable_sleep(seconds: float, slice_s: float = 0.05) -> None:
    """Sleep ``seconds`` (finite, at least 0), stopping early if the shard is cancelled."""
    deadline = time.monotonic() + seconds
    while True:
        cancel_point()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, slice_s))


#: Artifacts larger than this are refused (the CLI, and 413 from the services).
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")


def artifact_digest(data: bytes) -> str:
    """An artifact's address: the SHA-256 of its bytes, as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def check_digest(value: object, what: str = "artifact digest") -> str:
    """``value`` if it is a SHA-256 digest (64 lowercase hex digits); BadInput otherwise."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise BadInput(f"{what} must be a SHA-256 digest (64 lowercase hex digits), got {shown!r}")
    return value


@dataclass(frozen=True)
class ArtifactSpec:
    """A named binary input of a kind (``model`` is ``--model PATH`` on the CLI)."""

    name: str
    help: str
    #: The file names the CLI accepts (the content decides how the bytes are read).
    suffixes: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flag": self.flag,
            "help": self.help,
            "suffixes": list(self.suffixes),
            "max_bytes": MAX_ARTIFACT_BYTES,
        }


class JobKind(ABC):
    """A kind of job. Subclass it and register the class under the entry-point group
    ``lepton_ops.job_kinds`` (the entry point's name is the kind's name)."""

    #: The kind's name, as the entry point registers it.
    name: ClassVar[str]
    #: One line for listings.
    summary: ClassVar[str]
    #: The parameters besides ``tasks`` (which every kind has).
    params: ClassVar[tuple[Param, ...]] = ()
    #: Named binary inputs every job of the kind needs (none for most kinds).
    artifacts: ClassVar[tuple[ArtifactSpec, ...]] = ()
    #: The most tasks one shard of this kind may hold (see :meth:`shard_tasks_limit`).
    max_shard_tasks: ClassVar[int] = MAX_SHARD_TASKS
    #: The parameter whose value is one task's work (``task_size``: numbers drawn), when a
    #: task's cost grows with it: a shard then does at most :attr:`max_shard_work` of it.
    work_per_task: ClassVar[str | None] = None
    max_shard_work: ClassVar[int | float] = MAX_SHARD_DRAWS

    # ------------------------------------------------------------------ bounded work

    def shard_tasks_limit(self, params: Mapping[str, Any]) -> int:
        """The most tasks one shard may hold with these (checked) parameters, at least 1.

        A shard's work is bounded so that it ends within the aggregator's read timeout
        and a worker's threads are never held for long: the aggregator plans no larger
        shard, and a worker refuses one (400). Kinds whose tasks cost more with larger
        parameters lower it (:attr:`work_per_task` and :attr:`max_shard_work`, or by
        overriding :meth:`_shard_tasks_limit`).
        """
        return max(1, min(self.max_shard_tasks, self._shard_tasks_limit(params)))

    def _shard_tasks_limit(self, params: Mapping[str, Any]) -> int:
        if self.work_per_task is None:
            return self.max_shard_tasks
        work = float(params[self.work_per_task])
        return self.max_shard_tasks if work <= 0 else int(self.max_shard_work // work)

    def check_shard(self, params: Mapping[str, Any], start: int, stop: int) -> None:
        """BadInput unless a shard ``[start, stop)`` fits :meth:`shard_tasks_limit`."""
        limit = self.shard_tasks_limit(params)
        if stop - start > limit:
            raise BadInput(
                f"a {self.name} shard may hold at most {limit} tasks with these parameters, "
                f"got {stop - start}: cut the job into smaller shards"
            )

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

    # ------------------------------------------------------------------ artifacts

    def artifact_spec(self, name: str) -> ArtifactSpec:
        """The artifact ``name`` of this kind; BadInput if the kind has none of that name."""
        for spec in self.artifacts:
            if spec.name == name:
                return spec
        known = ", ".join(spec.name for spec in self.artifacts) or "none"
        raise BadInput(f"job kind {self.name} has no artifact {name!r} (its artifacts: {known})")

    def check_artifact_names(self, names: Iterable[str]) -> None:
        """BadInput unless ``names`` are exactly the kind's artifacts."""
        given = set(names)
        declared = {spec.name for spec in self.artifacts}
        unknown = sorted(given - declared)
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise BadInput(
                f"job kind {self.name} takes no artifact {', '.join(unknown)} "
                f"(its artifacts: {known})"
            )
        missing = [spec for spec in self.artifacts if spec.name not in given]
        if missing:
            raise BadInput(
                f"job kind {self.name} needs "
                + ", ".join(f"{spec.flag} ({spec.help})" for spec in missing)
            )

    def load_artifact(self, name: str, data: bytes) -> Any:
        """The artifact ``name`` read from its bytes and checked (BadInput otherwise)."""
        spec = self.artifact_spec(name)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BadInput(f"artifact {name} must be bytes, got {type(data).__name__}")
        if len(data) > MAX_ARTIFACT_BYTES:
            raise BadInput(
                f"artifact {name} is {len(data)} bytes: the limit is {MAX_ARTIFACT_BYTES}"
            )
        return self._load_artifact(spec.name, bytes(data))

    def check_artifacts(self, params: Mapping[str, Any], artifacts: Mapping[str, Any]) -> None:
        """BadInput unless the loaded ``artifacts`` fit the parameters and each other."""
        checked = self.validate(params)
        self.check_artifact_names(artifacts)
        if self.artifacts:
            self._check_artifacts(checked, artifacts)

    def tasks_from_artifacts(self, artifacts: Mapping[str, Any]) -> int | None:
        """The task count the loaded artifacts imply (None: they imply none)."""
        return None

    def _load_artifact(self, name: str, data: bytes) -> Any:
        raise OperationFailed(f"job kind {self.name} cannot load its artifact {name}")

    def _check_artifacts(  # noqa: B027 - an optional hook: most kinds have no artifacts
        self, params: dict[str, Any], artifacts: Mapping[str, Any]
    ) -> None:
        """Checks of the loaded artifacts against the checked parameters (kinds override)."""

    # ------------------------------------------------------------------ map / reduce

    def map(
        self,
        params: Mapping[str, Any],
        start: int,
        stop: int,
        *,
        speed: float = 1.0,
        artifacts: Mapping[str, Any] | None = None,
        cancelled: CancelCheck | None = None,
    ) -> Partial:
        """The partial result over tasks ``[start, stop)``; ``speed`` is the worker's.

        ``artifacts`` are the kind's artifacts as :meth:`load_artifact` returned them.
        The shard must fit :meth:`shard_tasks_limit` (BadInput otherwise). ``cancelled``
        is asked between tasks: once it is True the shard stops with ShardCancelled.
        """
        checked = self.validate(params)
        loaded = dict(artifacts or {})
        self.check_artifact_names(loaded)
        if self.artifacts:
            self._check_artifacts(checked, loaded)
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
        self.check_shard(checked, start, stop)
        with cancellable(cancelled):
            return self._map_artifacts(checked, start, stop, float(speed), loaded)

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
            "artifacts": [spec.to_dict() for spec in self.artifacts],
        }

    @abstractmethod
    def empty(self) -> Partial:
        """The partial result over no task: the identity of ``reduce``."""

    @abstractmethod
    def check_partial(self, partial: Mapping[str, Any]) -> Partial:
        """``partial`` checked and normalised (BadInput when it is not one of ours)."""

    @abstractmethod
    def _map(self, params: dict[str, Any], start: int, stop: int, speed: float) -> Partial: ...

    def _map_artifacts(
        self,
        params: dict[str, Any],
        start: int,
        stop: int,
        speed: float,
        artifacts: Mapping[str, Any],
    ) -> Partial:
        """``_map`` with the loaded artifacts (kinds that declare artifacts override it)."""
        return self._map(params, start, stop, speed)

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


# ------------------------------------------------------------------ exact sums of floats

#: An exact dyadic number ``mantissa * 2**exponent``, canonical: the mantissa is odd, or
#: the number is ``(0, 0)``. Sums of any float64 values are exact in this form, and
#: the canonical form makes equal sums bitwise equal however they were grouped.
Dyadic = tuple[int, int]
_LOW_BITS = 26
_LOW_MASK = (1 << _LOW_BITS) - 1
#: float64 exponents lie in [-1074, 971] once the 53-bit mantissa is an integer; a sum of
#: up to 2**60 of them stays well inside these bounds.
_MIN_EXPONENT = -1100
_MAX_EXPONENT = 1100
_MAX_MANTISSA_DIGITS = 1000


def dyadic(mantissa: int, exponent: int) -> Dyadic:
    """``mantissa * 2**exponent`` in canonical form."""
    if mantissa == 0:
        return (0, 0)
    zeros = (mantissa & -mantissa).bit_length() - 1
    return (mantissa >> zeros, exponent + zeros)


def dyadic_add(a: Dyadic, b: Dyadic) -> Dyadic:
    """``a + b``, exactly."""
    if a[0] == 0:
        return b
    if b[0] == 0:
        return a
    low = min(a[1], b[1])
    return dyadic((a[0] << (a[1] - low)) + (b[0] << (b[1] - low)), low)


def exact_float_sum(values: npt.NDArray[np.float64]) -> Dyadic:
    """The exact sum of finite float64 ``values`` (no rounding at all).

    Each value is ``m * 2**(e - 53)`` with ``m`` a 53-bit integer (``numpy.frexp``). Values
    are grouped by exponent; each group's mantissas are summed in int64 as a high and a
    low part (neither sum can overflow below 2**36 values), then the groups are combined
    with Python's unbounded integers.
    """
    import numpy as np

    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        return (0, 0)
    if not np.all(np.isfinite(flat)):
        raise OperationFailed("exact_float_sum: the values must be finite")
    fraction, exponent = np.frexp(flat)
    mantissa = np.ldexp(fraction, 53).astype(np.int64)  # exact: 53-bit integers
    shifted = exponent.astype(np.int64) - 53
    order = np.argsort(shifted, kind="stable")
    shifted, mantissa = shifted[order], mantissa[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(shifted)) + 1))
    high = np.add.reduceat(mantissa >> _LOW_BITS, starts)
    low = np.add.reduceat(mantissa & _LOW_MASK, starts)
    base = int(shifted[0])
    total = 0
    for h, lo, e in zip(high.tolist(), low.tolist(), shifted[starts].tolist(), strict=True):
        total += ((h << _LOW_BITS) + lo) << (e - base)
    return dyadic(total, base)


def dyadic_ratio(value: Dyadic, count: int) -> float:
    """``value / count`` as a float, correctly rounded (one rounding, at the end)."""
    mantissa, exponent = value
    if exponent >= 0:
        return (mantissa << exponent) / count
    return mantissa / (count << -exponent)


def dyadic_to_json(value: Dyadic) -> list[Any]:
    """``[mantissa as decimal text, exponent]``: no JSON reader rounds it."""
    return [str(value[0]), value[1]]


def dyadic_from_json(kind: str, field: str, value: object) -> Dyadic:
    """A dyadic field of a partial result, checked (canonical form, sane bounds)."""
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and 0 < len(value[0]) <= _MAX_MANTISSA_DIGITS
        and value[0].lstrip("-").isdigit()
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
        and _MIN_EXPONENT <= value[1] <= _MAX_EXPONENT
    ):
        number = (int(value[0]), value[1])
        if dyadic(*number) == number:
            return number
    raise BadInput(
        f"{kind} partial result: {field} must be an exact sum [mantissa, exponent] in "
        f"canonical form, got {str(value)[:80]}"
    )
