"""``predict``: batch-score the rows of a data set with a scikit-learn model.

The job has two artifacts: ``model`` (a skops file, see :mod:`lepton_ops.jobs.model_files`)
and ``data`` (a 2-D ``.npy`` array, or numeric CSV with an optional header row). Task i
scores row i, so a job has one task per row.

The partial result over rows ``[start, stop)`` is exact, and merging is exact:

- a classifier keeps, per class (in the model's ``classes_`` order), the count of rows
  predicted as that class and, if the model has ``predict_proba``, the exact sum of
  the rows' probabilities of that class;
- a regressor keeps the exact sum, the smallest and the largest prediction.

Exact sums are dyadic numbers (:func:`~lepton_ops.jobs.kinds.base.exact_float_sum`), so
any grouping of shards gives bitwise the same result; means are rounded once, at the
end. Jobs of up to :data:`PREDICTIONS_LIMIT` rows also keep every row's prediction, as
row ranges that merge by disjoint union.

The model is always called on the same aligned blocks of :data:`BLOCK_ROWS` rows (a
shard that starts or ends inside a block scores the whole block and keeps its rows):
BLAS-backed models can give last-bit different answers for different batch sizes, and
this way every row's prediction is the same however the job was cut into shards (on
nodes with the same CPU features; the fleet runs the same wheels).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.jobs.kinds.base import (
    MAX_ARTIFACT_BYTES,
    ArtifactSpec,
    Dyadic,
    JobKind,
    Partial,
    cancel_point,
    dyadic_add,
    dyadic_from_json,
    dyadic_ratio,
    dyadic_to_json,
    exact_float_sum,
    exact_int,
    partial_fields,
)
from lepton_ops.jobs.model_files import load_model_bytes

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Rows = npt.NDArray[np.float64]

Label = str | int | float | bool

#: Jobs of at most this many rows keep each row's prediction in the result.
PREDICTIONS_LIMIT = 10_000
#: The model always scores these aligned blocks of rows (see the module's doc).
BLOCK_ROWS = 256
#: A classifier may have at most this many classes.
MAX_CLASSES = 1000
#: The data, as float64 values, may take at most this much memory.
MAX_DATA_BYTES = 2 * MAX_ARTIFACT_BYTES
NPY_MAGIC = b"\x93NUMPY"

_CLASSIFIER_FIELDS = ("task", "estimator", "rows", "classes", "counts", "proba_sums", "predictions")
_REGRESSOR_FIELDS = ("task", "estimator", "rows", "sum", "min", "max", "predictions")


@dataclass(frozen=True)
class ScoringModel:
    """A loaded model, checked: what it predicts and from how many features."""

    estimator: Any
    name: str
    task: Literal["classifier", "regressor"]
    n_features: int
    #: The classifier's classes (JSON values), in ``classes_`` order; () for a regressor.
    classes: tuple[Label, ...] = ()
    has_proba: bool = False
    metadata: Mapping[str, Any] | None = None


def scoring_model(data: bytes) -> ScoringModel:
    """The model in skops bytes ``data``, checked for batch scoring (BadInput otherwise)."""
    import numpy as np
    from sklearn.base import is_classifier, is_regressor

    loaded = load_model_bytes(data, source="the model file")
    estimator = loaded.estimator
    name = type(estimator).__name__
    features = getattr(estimator, "n_features_in_", None)
    if isinstance(features, bool) or not isinstance(features, int | np.integer) or features < 1:
        raise BadInput(f"the model ({name}) has no n_features_in_: is it fitted?")
    if is_classifier(estimator):
        classes = _classes(estimator, name)
        return ScoringModel(
            estimator=estimator,
            name=name,
            task="classifier",
            n_features=int(features),
            classes=classes,
            has_proba=hasattr(estimator, "predict_proba"),
            metadata=loaded.metadata,
        )
    if is_regressor(estimator):
        return ScoringModel(
            estimator=estimator,
            name=name,
            task="regressor",
            n_features=int(features),
            metadata=loaded.metadata,
        )
    raise BadInput(f"the model ({name}) is neither a classifier nor a regressor")


def _classes(estimator: Any, name: str) -> tuple[Label, ...]:
    import numpy as np

    raw = getattr(estimator, "classes_", None)
    array = np.asarray(raw) if raw is not None else None
    if array is None or array.ndim != 1 or array.size == 0:
        raise BadInput(f"the model ({name}) has no classes_ list: multi-output is not supported")
    if array.size > MAX_CLASSES:
        raise BadInput(f"the model ({name}) has {array.size} classes: the limit is {MAX_CLASSES}")
    labels = tuple(array.tolist())
    for label in labels:
        if not isinstance(label, str | int | float) or (
            isinstance(label, float) and not math.isfinite(label)
        ):
            raise BadInput(f"the model ({name}) has a class label {label!r} that is not a number")
    if len({str(label) for label in labels}) != len(labels):
        raise BadInput(f"the model ({name}) has class labels that read the same as text")
    return labels


# --------------------------------------------------------------------------- data


def parse_rows(data: bytes) -> Rows:
    """Rows from a ``.npy`` array (no pickles) or numeric CSV (optional header row)."""
    import numpy as np

    array = _npy(data) if data.startswith(NPY_MAGIC) else _csv(data)
    if array.ndim != 2:
        raise BadInput(f"the data must be 2-D (rows x features), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise BadInput(f"the data has no values (shape {array.shape})")
    if array.shape[0] * array.shape[1] * 8 > MAX_DATA_BYTES:
        raise BadInput(f"the data has {array.size} values: the limit is {MAX_DATA_BYTES // 8}")
    rows = np.ascontiguousarray(array, dtype=np.float64)
    bad = ~np.isfinite(rows)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise BadInput(f"data row {row} has a NaN or infinite value: only finite numbers score")
    return rows


def _npy(data: bytes) -> npt.NDArray[Any]:
    import numpy as np
    from numpy.lib import format as npy

    stream = io.BytesIO(data)
    try:
        version = npy.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as exc:
        raise BadInput(f"the data is not a readable .npy array: {_line(exc)}") from None
    if dtype.hasobject:
        raise BadInput("the data .npy holds Python objects (a pickle): refused, save numbers")
    if dtype.kind not in "biuf":
        raise BadInput(f"the data .npy must hold numbers, got dtype {dtype}")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - stream.tell() != expected:
        raise BadInput(
            f"the data .npy header says shape {shape} ({expected} bytes) but it holds "
            f"{len(data) - stream.tell()} bytes"
        )
    try:
        array: npt.NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise BadInput(f"the data is not a readable .npy array: {_line(exc)}") from None
    return array


def _csv(data: bytes) -> npt.NDArray[Any]:
    import numpy as np

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(
            "the data is neither a .npy array (no NUMPY header) nor UTF-8 CSV text"
        ) from None
    lines = iter(text.splitlines())
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise BadInput("the data CSV is empty")
    header = not all(_is_number(field) for field in first.split(","))
    # A cheap upper bound of the values, checked before numpy allocates them.
    if text.count(",") + text.count("\n") + 1 > 2 * MAX_DATA_BYTES // 8:
        raise BadInput(f"the data CSV has more than {MAX_DATA_BYTES // 8} values")
    body = text.split(first, 1)[1] if header else text
    if not body.strip():
        raise BadInput("the data CSV has a header row but no rows")
    try:
        array: npt.NDArray[Any] = np.loadtxt(
            io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64, comments=None
        )
    except ValueError as exc:
        # numpy's advice about usecols does not apply: keep what went wrong.
        reason = _line(exc).split("; use `usecols`")[0]
        raise BadInput(f"the data is not numeric CSV: {reason}") from None
    return array


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- the kind


class PredictKind(JobKind):
    name = "predict"
    summary = "Batch-score the rows of a data set with a scikit-learn model (one task per row)."
    artifacts = (
        ArtifactSpec("model", "a scikit-learn model saved with skops", (".skops",)),
        ArtifactSpec(
            "data", "the rows to score: a 2-D .npy array or numeric CSV", (".npy", ".csv")
        ),
    )

    # ------------------------------------------------------------------ artifacts

    def _load_artifact(self, name: str, data: bytes) -> Any:
        if name == "model":
            return scoring_model(data)
        return parse_rows(data)

    def _check_artifacts(self, params: dict[str, Any], artifacts: Mapping[str, Any]) -> None:
        model, rows = _unpack(artifacts)
        if rows.shape[1] != model.n_features:
            raise BadInput(
                f"the data has {rows.shape[1]} columns; the model ({model.name}) expects "
                f"{model.n_features} features"
            )
        if params["tasks"] != rows.shape[0]:
            raise BadInput(
                f"a predict job has one task per data row: tasks is {params['tasks']}, "
                f"the data has {rows.shape[0]} rows"
            )

    def tasks_from_artifacts(self, artifacts: Mapping[str, Any]) -> int | None:
        import numpy as np

        rows = artifacts.get("data")
        return int(rows.shape[0]) if isinstance(rows, np.ndarray) else None

    # ------------------------------------------------------------------ map / reduce

    def empty(self) -> Partial:
        return {"rows": 0}

    def _map(self, params: dict[str, Any], start: int, stop: int, speed: float) -> Partial:
        raise OperationFailed("the predict kind maps with its artifacts (_map_artifacts)")

    def _map_artifacts(
        self,
        params: dict[str, Any],
        start: int,
        stop: int,
        speed: float,
        artifacts: Mapping[str, Any],
    ) -> Partial:
        if start == stop:
            return self.empty()
        model, rows = _unpack(artifacts)
        keep = params["tasks"] <= PREDICTIONS_LIMIT
        if model.task == "classifier":
            return _score_classifier(model, rows, start, stop, keep)
        return _score_regressor(model, rows, start, stop, keep)

    def check_partial(self, partial: Mapping[str, Any]) -> Partial:
        if not isinstance(partial, Mapping):
            raise BadInput(f"a predict partial result must be a mapping, got {type(partial)}")
        if partial.get("rows") == 0:
            partial_fields(self.name, partial, ("rows",))
            return self.empty()
        task = partial.get("task")
        if task == "classifier":
            return _check_classifier(partial)
        if task == "regressor":
            return _check_regressor(partial)
        raise BadInput(
            f"predict partial result: task must be classifier or regressor, got {task!r}"
        )

    def _reduce(self, a: Partial, b: Partial) -> Partial:
        if a["rows"] == 0:
            return b
        if b["rows"] == 0:
            return a
        fields = _CLASSIFIER_FIELDS if a["task"] == "classifier" else _REGRESSOR_FIELDS
        for same in ("task", "estimator", "classes"):
            if a.get(same) != b.get(same):
                raise BadInput(f"predict partial results of different models ({same} differs)")
        for optional in ("proba_sums", "predictions"):
            if optional in fields and (a[optional] is None) != (b[optional] is None):
                raise BadInput(f"predict partial results disagree on keeping {optional}")
        merged: Partial = {
            "task": a["task"],
            "estimator": a["estimator"],
            "rows": a["rows"] + b["rows"],
            "predictions": None
            if a["predictions"] is None
            else _merge_segments(a["predictions"], b["predictions"]),
        }
        if a["task"] == "classifier":
            merged["classes"] = a["classes"]
            merged["counts"] = [x + y for x, y in zip(a["counts"], b["counts"], strict=True)]
            merged["proba_sums"] = (
                None
                if a["proba_sums"] is None
                else [
                    dyadic_to_json(dyadic_add(_dy("proba_sums", x), _dy("proba_sums", y)))
                    for x, y in zip(a["proba_sums"], b["proba_sums"], strict=True)
                ]
            )
        else:
            merged["sum"] = dyadic_to_json(dyadic_add(_dy("sum", a["sum"]), _dy("sum", b["sum"])))
            merged["min"] = min(a["min"], b["min"])
            merged["max"] = max(a["max"], b["max"])
        return {field: merged[field] for field in fields}

    def _finalize(self, partial: Partial) -> dict[str, Any]:
        rows = partial["rows"]
        if rows == 0:
            return {"task": None, "estimator": None, "rows": 0, "predictions": None}
        predictions = _flatten(partial["predictions"], rows)
        if partial["task"] == "classifier":
            classes = partial["classes"]
            sums = partial["proba_sums"]
            return {
                "task": "classifier",
                "estimator": partial["estimator"],
                "rows": rows,
                "class_counts": {
                    str(label): count
                    for label, count in zip(classes, partial["counts"], strict=True)
                },
                "mean_proba": None
                if sums is None
                else {
                    str(label): dyadic_ratio(_dy("proba_sums", total), rows)
                    for label, total in zip(classes, sums, strict=True)
                },
                "predictions": predictions,
            }
        return {
            "task": "regressor",
            "estimator": partial["estimator"],
            "rows": rows,
            "mean": dyadic_ratio(_dy("sum", partial["sum"]), rows),
            "min": partial["min"],
            "max": partial["max"],
            "predictions": predictions,
        }


def _unpack(artifacts: Mapping[str, Any]) -> tuple[ScoringModel, Rows]:
    import numpy as np

    model, rows = artifacts.get("model"), artifacts.get("data")
    if not isinstance(model, ScoringModel) or not isinstance(rows, np.ndarray):
        raise OperationFailed("the predict artifacts must be loaded with load_artifact first")
    return model, rows


# --------------------------------------------------------------------------- scoring


def _blocks(rows: Rows, start: int, stop: int) -> Iterator[tuple[int, Rows, slice]]:
    """The aligned blocks that cover ``[start, stop)``: (first row, block, rows to keep)."""
    for first in range(start - start % BLOCK_ROWS, stop, BLOCK_ROWS):
        cancel_point()
        block = rows[first : first + BLOCK_ROWS]
        keep = slice(max(start, first) - first, min(stop, first + BLOCK_ROWS) - first)
        yield first, block, keep


def _call(model: ScoringModel, method: str, block: Rows, first: int) -> npt.NDArray[Any]:
    import numpy as np

    try:
        answer = getattr(model.estimator, method)(block)
    except Exception as exc:
        raise BadInput(
            f"the model ({model.name}) failed to {method} rows [{first}, "
            f"{first + len(block)}): {_line(exc)}"
        ) from None
    return np.asarray(answer)


def _score_classifier(
    model: ScoringModel, rows: Rows, start: int, stop: int, keep: bool
) -> Partial:
    import numpy as np

    index = {label: i for i, label in enumerate(model.classes)}
    counts = np.zeros(len(model.classes), dtype=np.int64)
    sums: list[Dyadic] = [(0, 0)] * len(model.classes)
    labels: list[Label] = []
    for first, block, kept in _blocks(rows, start, stop):
        predicted = _call(model, "predict", block, first)
        if predicted.shape != (len(block),):
            raise BadInput(f"the model ({model.name}) predicts {predicted.shape}, not one label")
        unique, inverse = np.unique(predicted[kept], return_inverse=True)
        try:
            positions = np.array([index[label] for label in unique.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise BadInput(
                f"the model ({model.name}) predicted {exc} outside its classes_"
            ) from None
        which = positions[inverse.ravel()]
        counts += np.bincount(which, minlength=len(model.classes))
        if keep:
            labels.extend(model.classes[i] for i in which.tolist())
        if model.has_proba:
            proba = _call(model, "predict_proba", block, first)
            if proba.shape != (len(block), len(model.classes)) or not np.all(np.isfinite(proba)):
                raise BadInput(f"the model ({model.name}) gives unusable probabilities")
            for column in range(len(model.classes)):
                sums[column] = dyadic_add(
                    sums[column], exact_float_sum(proba[kept, column].astype(np.float64))
                )
    return {
        "task": "classifier",
        "estimator": model.name,
        "rows": stop - start,
        "classes": list(model.classes),
        "counts": counts.tolist(),
        "proba_sums": [dyadic_to_json(total) for total in sums] if model.has_proba else None,
        "predictions": [[start, labels]] if keep else None,
    }


def _score_regressor(model: ScoringModel, rows: Rows, start: int, stop: int, keep: bool) -> Partial:
    import numpy as np

    total: Dyadic = (0, 0)
    low, high = math.inf, -math.inf
    values: list[float] = []
    for first, block, kept in _blocks(rows, start, stop):
        predicted = _call(model, "predict", block, first)
        if predicted.ndim == 2 and predicted.shape[1] == 1:
            predicted = predicted[:, 0]
        if predicted.shape != (len(block),) or predicted.dtype.kind not in "biuf":
            raise BadInput(f"the model ({model.name}) predicts {predicted.shape}, not one number")
        mine = predicted[kept].astype(np.float64)
        bad = ~np.isfinite(mine)
        if bad.any():
            row = first + kept.start + int(np.argmax(bad))
            raise BadInput(f"the model ({model.name}) predicted a non-finite value for row {row}")
        total = dyadic_add(total, exact_float_sum(mine))
        # + 0.0 makes -0.0 into 0.0: min/max of equal zeros must not depend on the order.
        low = min(low, float(mine.min()) + 0.0)
        high = max(high, float(mine.max()) + 0.0)
        if keep:
            values.extend(mine.tolist())
    return {
        "task": "regressor",
        "estimator": model.name,
        "rows": stop - start,
        "sum": dyadic_to_json(total),
        "min": low,
        "max": high,
        "predictions": [[start, values]] if keep else None,
    }


# --------------------------------------------------------------------------- partials


def _dy(field: str, value: object) -> Dyadic:
    return dyadic_from_json("predict", field, value)


def _check_common(partial: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str, int]:
    partial_fields("predict", partial, fields)
    estimator = partial["estimator"]
    if not isinstance(estimator, str) or not 0 < len(estimator) <= 200:
        raise BadInput("predict partial result: estimator must be a class name")
    return estimator, exact_int("predict", "rows", partial["rows"], minimum=1)


def _check_classifier(partial: Mapping[str, Any]) -> Partial:
    estimator, rows = _check_common(partial, _CLASSIFIER_FIELDS)
    classes = partial["classes"]
    if (
        not isinstance(classes, list)
        or not 0 < len(classes) <= MAX_CLASSES
        or not all(_is_label(label) for label in classes)
        or len({str(label) for label in classes}) != len(classes)
    ):
        raise BadInput("predict partial result: classes must be a list of distinct labels")
    counts = partial["counts"]
    if not isinstance(counts, list) or len(counts) != len(classes):
        raise BadInput("predict partial result: counts must have one count per class")
    counts = [exact_int("predict", "counts", count) for count in counts]
    if sum(counts) != rows:
        raise BadInput(f"predict partial result: the counts add up to {sum(counts)}, not {rows}")
    sums = partial["proba_sums"]
    if sums is not None:
        if not isinstance(sums, list) or len(sums) != len(classes):
            raise BadInput("predict partial result: proba_sums must have one sum per class")
        sums = [dyadic_to_json(_dy("proba_sums", total)) for total in sums]
        if any(total[0].startswith("-") for total in sums):
            raise BadInput("predict partial result: a probability sum is negative")
    known = set(classes)
    return {
        "task": "classifier",
        "estimator": estimator,
        "rows": rows,
        "classes": classes,
        "counts": counts,
        "proba_sums": sums,
        "predictions": _check_segments(partial["predictions"], rows, lambda v: v in known),
    }


def _check_regressor(partial: Mapping[str, Any]) -> Partial:
    estimator, rows = _check_common(partial, _REGRESSOR_FIELDS)
    low, high = _finite("min", partial["min"]) + 0.0, _finite("max", partial["max"]) + 0.0
    if low > high:
        raise BadInput(f"predict partial result: min {low} is above max {high}")

    def inside(value: object) -> bool:
        return _is_finite_number(value) and low <= float(value) <= high  # type: ignore[arg-type]

    return {
        "task": "regressor",
        "estimator": estimator,
        "rows": rows,
        "sum": dyadic_to_json(_dy("sum", partial["sum"])),
        "min": low,
        "max": high,
        "predictions": _check_segments(partial["predictions"], rows, inside),
    }


def _check_segments(
    value: object, rows: int, valid: Callable[[Any], bool]
) -> list[list[Any]] | None:
    """Row ranges ``[[start, [prediction, ...]], ...]``, checked and merged where adjacent."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadInput("predict partial result: predictions must be a list of row ranges")
    segments: list[list[Any]] = []
    for segment in value:
        if (
            not isinstance(segment, list)
            or len(segment) != 2
            or not isinstance(segment[1], list)
            or not segment[1]
        ):
            raise BadInput("predict partial result: a row range must be [start, [predictions]]")
        start = exact_int("predict", "predictions start", segment[0])
        if not all(valid(item) for item in segment[1]):
            raise BadInput("predict partial result: a prediction is not one of the model's")
        segments.append([start, list(segment[1])])
    merged = _merge_segments(segments, [])
    if sum(len(values) for _, values in merged) != rows:
        raise BadInput(f"predict partial result: the predictions do not cover its {rows} rows")
    return merged


def _merge_segments(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
    """The disjoint union of two lists of row ranges, adjacent ranges joined (canonical)."""
    merged: list[list[Any]] = []
    for start, values in sorted(a + b, key=lambda segment: int(segment[0])):
        if merged:
            last_start, last_values = merged[-1]
            end = last_start + len(last_values)
            if start < end:
                raise BadInput(f"predict partial results overlap at row {start}")
            if start == end:
                merged[-1] = [last_start, last_values + values]
                continue
        merged.append([start, list(values)])
    return merged


def _flatten(segments: list[list[Any]] | None, rows: int) -> list[Any] | None:
    if segments is None:
        return None
    if len(segments) != 1 or segments[0][0] != 0 or len(segments[0][1]) != rows:
        raise BadInput(f"predict result: the predictions do not cover rows 0 to {rows - 1}")
    return list(segments[0][1])


def _is_label(value: object) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= 200
    return isinstance(value, bool) or _is_finite_number(value)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _finite(field: str, value: object) -> float:
    if not _is_finite_number(value):
        raise BadInput(f"predict partial result: {field} must be a finite number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]
