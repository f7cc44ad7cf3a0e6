"""The predict kind: data parsing, model checks, and exact, associative map/reduce."""

from __future__ import annotations

import io
import itertools
import json
import random
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeRegressor

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds import get_kind
from lepton_ops.jobs.kinds import predict as predict_module
from lepton_ops.jobs.kinds.base import (
    Partial,
    dyadic,
    dyadic_add,
    dyadic_ratio,
    exact_float_sum,
    reduce_partials,
)
from lepton_ops.jobs.kinds.predict import BLOCK_ROWS, PredictKind, parse_rows
from lepton_ops.jobs.model_files import model_bytes

KIND = get_kind("predict")
RNG = np.random.default_rng(11)
ROWS = 700  # a few aligned blocks, the last one partial
# 20 features: enough for BLAS to answer differently for different batch sizes.
X = RNG.normal(size=(ROWS, 20))
SIGNAL = X @ RNG.normal(size=20) + 0.3 * RNG.normal(size=ROWS)


def npy(array: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def models() -> dict[str, Any]:
    labels = np.where(SIGNAL > 1, "high", np.where(SIGNAL < -1, "low", "mid"))
    return {
        "logistic": LogisticRegression().fit(X, (SIGNAL > 0).astype(int)),
        "forest": RandomForestClassifier(n_estimators=4, random_state=0).fit(X, labels),
        "linear": LinearRegression().fit(X, SIGNAL),
        "tree": DecisionTreeRegressor(max_depth=5, random_state=0).fit(X, SIGNAL),
    }


MODELS = models()


def artifacts(name: str, rows: np.ndarray[Any, Any] = X) -> dict[str, Any]:
    return {
        "model": KIND.load_artifact("model", model_bytes(MODELS[name])),
        "data": KIND.load_artifact("data", npy(rows)),
    }


def cut(total: int, rng: random.Random, pieces: int) -> list[tuple[int, int]]:
    points = sorted(rng.randint(0, total) for _ in range(pieces - 1))
    return list(itertools.pairwise([0, *points, total]))


def merge_randomly(partials: list[Partial], rng: random.Random) -> Partial:
    pool = [json.loads(json.dumps(p)) for p in partials]  # as they travel
    rng.shuffle(pool)
    while len(pool) > 1:
        a = pool.pop(rng.randrange(len(pool)))
        b = pool.pop(rng.randrange(len(pool)))
        pool.append(json.loads(json.dumps(KIND.reduce(a, b))))
    return pool[0] if pool else KIND.empty()


def blockwise(method: Any, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What the kind computes: the model on aligned blocks of BLOCK_ROWS rows."""
    return np.concatenate(
        [method(rows[i : i + BLOCK_ROWS]) for i in range(0, len(rows), BLOCK_ROWS)]
    )


# --------------------------------------------------------------------------- exact sums


def test_exact_float_sum_is_the_exact_rational_sum() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, size=500),
            [5e-324, -5e-324, 2.2e-308, 1.7e308, -1.7e308, 0.0, -0.0, 1.0, 1e-16],
        ]
    )
    mantissa, exponent = exact_float_sum(values)
    assert Fraction(mantissa) * Fraction(2) ** exponent == sum(map(Fraction, values.tolist()))
    assert dyadic(mantissa, exponent) == (mantissa, exponent)
    halves = dyadic_add(exact_float_sum(values[:200]), exact_float_sum(values[200:]))
    assert halves == (mantissa, exponent)
    assert exact_float_sum(np.array([])) == (0, 0)
    assert dyadic(12, 3) == (3, 5) and dyadic(-12, 0) == (-3, 2) and dyadic(0, 9) == (0, 0)


def test_dyadic_ratio_rounds_once() -> None:
    values = np.array([0.1, 0.2, 0.3, 1e-20, 7.0])
    exact = sum(map(Fraction, values.tolist())) / 7
    assert dyadic_ratio(exact_float_sum(values), 7) == float(exact)
    assert dyadic_ratio((3, 2), 4) == 3.0


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"1,2,3\n4,5,6\n", [[1, 2, 3], [4, 5, 6]]),
        (b"a,b,c\n1,2,3\n4,5,6.5\n", [[1, 2, 3], [4, 5, 6.5]]),
        (b"\xef\xbb\xbfx,y\r\n1e3,-2\r\n\r\n", [[1000, -2]]),
        (b"7\n8\n", [[7], [8]]),
    ],
)
def test_csv_rows(raw: bytes, expected: list[list[float]]) -> None:
    rows = parse_rows(raw)
    assert rows.dtype == np.float64 and rows.flags.c_contiguous
    assert rows.tolist() == expected


def test_npy_rows_of_any_numeric_dtype() -> None:
    for array in (X, X.astype(np.float32), np.arange(12, dtype=np.int16).reshape(4, 3)):
        rows = parse_rows(npy(array))
        assert rows.dtype == np.float64
        np.testing.assert_array_equal(rows, array.astype(np.float64))
    fortran = np.asfortranarray(X[:5])
    assert parse_rows(npy(fortran)).flags.c_contiguous


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (npy(np.array([{"a": 1}, None], dtype=object)), "Python objects"),
        (npy(np.arange(5.0)), r"must be 2-D \(rows x features\), got shape \(5,\)"),
        (npy(np.zeros((2, 2, 2))), "must be 2-D"),
        (npy(np.zeros((0, 3))), "has no values"),
        (npy(np.array([["a", "b"]])), "must hold numbers"),
        (npy(np.array([[1 + 2j]])), "must hold numbers"),
        (npy(X)[:-8], "holds .* bytes"),
        (npy(np.zeros((2, 2))).replace(b"(2, 2)", b"(9999999999, 9999)"), "header says shape"),
        (b"\x93NUMPY\x09\x00garbage", "not a readable .npy"),
        (npy(np.array([[1.0, np.nan]])), "data row 0 has a NaN or infinite value"),
        (b"1,2\n3,inf\n", "data row 1 has a NaN"),
        (b"", "CSV is empty"),
        (b"\n\n", "CSV is empty"),
        (b"1,2,3\n4,5\n", "number of columns changed from 3 to 2"),
        (b"1,2\n3,x\n", "could not convert string 'x'"),
        (b"\xff\xfe\x00\x01", "neither a .npy array .* nor UTF-8 CSV"),
        (b"x,y\n", "has a header row but no rows"),
    ],
)
def test_bad_data_is_one_line(raw: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        parse_rows(raw)
    assert "\n" not in str(caught.value) and "usecols" not in str(caught.value)


def test_a_pickled_npy_is_never_unpickled(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle.load must not run")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with pytest.raises(BadInput, match="Python objects"):
        KIND.load_artifact("data", npy(np.array([[object()]], dtype=object)))


# --------------------------------------------------------------------------- the model


def test_models_are_checked_for_scoring() -> None:
    with pytest.raises(BadInput, match=r"has no n_features_in_: is it fitted"):
        KIND.load_artifact("model", model_bytes(LogisticRegression()))
    clusters = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X)
    with pytest.raises(BadInput, match="neither a classifier nor a regressor"):
        KIND.load_artifact("model", model_bytes(clusters))
    with pytest.raises(BadInput, match="not a skops model file"):
        KIND.load_artifact("model", npy(X))
    with pytest.raises(BadInput, match="has no artifact 'weights'"):
        KIND.load_artifact("weights", b"x")
    model = KIND.load_artifact("model", model_bytes(MODELS["forest"]))
    assert model.task == "classifier" and model.classes == ("high", "low", "mid")
    assert model.has_proba and model.n_features == 20


def test_artifacts_must_fit_the_model_and_the_tasks() -> None:
    loaded = artifacts("linear")
    with pytest.raises(BadInput, match=r"the data has 3 columns; the model .* expects 20"):
        KIND.check_artifacts(
            {"tasks": ROWS}, {**loaded, "data": KIND.load_artifact("data", npy(X[:, :3]))}
        )
    with pytest.raises(BadInput, match=f"tasks is 5, the data has {ROWS} rows"):
        KIND.check_artifacts({"tasks": 5}, loaded)
    with pytest.raises(BadInput, match=r"needs --data"):
        KIND.map({"tasks": ROWS}, 0, 10, artifacts={"model": loaded["model"]})
    with pytest.raises(BadInput, match=r"needs --model .*, --data"):
        KIND.map({"tasks": ROWS}, 0, 10)
    with pytest.raises(BadInput, match="takes no artifact data, model"):
        get_kind("mean").map({"tasks": 3}, 0, 1, artifacts=loaded)
    assert KIND.tasks_from_artifacts(loaded) == ROWS
    assert KIND.describe()["artifacts"][0]["flag"] == "--model"


# --------------------------------------------------------------------------- map / reduce


@pytest.mark.parametrize("name", sorted(MODELS))
def test_any_grouping_of_shards_gives_the_same_result(name: str) -> None:
    loaded = artifacts(name)
    params = {"tasks": ROWS}
    whole = KIND.finalize(KIND.map(params, 0, ROWS, artifacts=loaded))
    rng = random.Random(name)
    fine = [(0, 1), (1, 5), (5, 17), (17, 300), (300, 699), (699, ROWS)]
    for trial in range(8):
        shards = fine if trial == 0 else cut(ROWS, rng, rng.randint(1, 12))
        partials = [KIND.map(params, a, b, artifacts=loaded) for a, b in shards]
        merged = KIND.finalize(merge_randomly(partials, rng))
        assert json.dumps(merged) == json.dumps(whole), (trial, shards)
        in_order = KIND.finalize(reduce_partials(KIND, partials))
        assert json.dumps(in_order) == json.dumps(whole)


def test_a_classifier_result_matches_the_model() -> None:
    model = MODELS["logistic"]
    result = KIND.finalize(KIND.map({"tasks": ROWS}, 0, ROWS, artifacts=artifacts("logistic")))
    predicted = model.predict(X)
    assert result["task"] == "classifier" and result["estimator"] == "LogisticRegression"
    assert result["rows"] == ROWS
    assert result["predictions"] == predicted.tolist()
    assert result["class_counts"] == {
        "0": int((predicted == 0).sum()),
        "1": int((predicted == 1).sum()),
    }
    proba = blockwise(model.predict_proba, X)
    for column, label in enumerate(["0", "1"]):
        exact = sum(map(Fraction, proba[:, column].tolist())) / ROWS
        assert result["mean_proba"][label] == float(exact)
    assert result["mean_proba"]["1"] == pytest.approx(model.predict_proba(X)[:, 1].mean())


def test_string_labels_are_counted_in_class_order() -> None:
    model = MODELS["forest"]
    result = KIND.finalize(KIND.map({"tasks": ROWS}, 0, ROWS, artifacts=artifacts("forest")))
    predicted = model.predict(X)
    assert list(result["class_counts"]) == ["high", "low", "mid"]
    assert result["class_counts"] == {
        label: int((predicted == label).sum()) for label in ("high", "low", "mid")
    }
    assert result["predictions"] == predicted.tolist()


@pytest.mark.parametrize("name", ["linear", "tree"])
def test_a_regressor_result_is_exact(name: str) -> None:
    model = MODELS[name]
    result = KIND.finalize(KIND.map({"tasks": ROWS}, 0, ROWS, artifacts=artifacts(name)))
    predicted = blockwise(model.predict, X)
    assert result["task"] == "regressor" and result["rows"] == ROWS
    assert result["predictions"] == predicted.tolist()
    np.testing.assert_allclose(result["predictions"], model.predict(X), rtol=1e-12)
    assert result["mean"] == float(sum(map(Fraction, predicted.tolist())) / ROWS)
    assert result["min"] == predicted.min() and result["max"] == predicted.max()


def test_large_jobs_keep_counts_but_not_each_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predict_module, "PREDICTIONS_LIMIT", ROWS - 1)
    loaded = artifacts("logistic")
    partials = [
        KIND.map({"tasks": ROWS}, a, b, artifacts=loaded) for a, b in ((0, 300), (300, ROWS))
    ]
    assert all(p["predictions"] is None for p in partials)
    result = KIND.finalize(reduce_partials(KIND, partials))
    assert result["predictions"] is None
    assert sum(result["class_counts"].values()) == ROWS


def test_empty_shards_are_the_identity() -> None:
    loaded = artifacts("tree")
    part = KIND.map({"tasks": ROWS}, 10, 20, artifacts=loaded)
    empty = KIND.map({"tasks": ROWS}, 5, 5, artifacts=loaded)
    assert empty == KIND.empty() == {"rows": 0}
    assert KIND.reduce(empty, part) == KIND.reduce(part, empty) == KIND.check_partial(part)
    assert KIND.finalize(KIND.empty())["rows"] == 0


# --------------------------------------------------------------------------- partials


def regressor_partial(start: int, values: list[float]) -> dict[str, Any]:
    return {
        "task": "regressor",
        "estimator": "Stub",
        "rows": len(values),
        "sum": [str(exact_float_sum(np.array(values))[0]), exact_float_sum(np.array(values))[1]],
        "min": min(values),
        "max": max(values),
        "predictions": [[start, values]],
    }


def test_signed_zeros_do_not_depend_on_the_order() -> None:
    a = regressor_partial(0, [-0.0, 1.0])
    b = regressor_partial(2, [0.0, 2.0])
    assert json.dumps(KIND.reduce(a, b)) == json.dumps(KIND.reduce(b, a))
    assert KIND.reduce(a, b)["min"] == 0.0 and str(KIND.reduce(a, b)["min"]) == "0.0"


def test_adjacent_ranges_join_and_overlaps_are_refused() -> None:
    a, b, c = (
        regressor_partial(0, [1.0]),
        regressor_partial(1, [2.0]),
        regressor_partial(5, [3.0]),
    )
    merged = KIND.reduce(KIND.reduce(a, c), b)
    assert merged["predictions"] == [[0, [1.0, 2.0]], [5, [3.0]]]
    assert KIND.reduce(a, KIND.reduce(b, c)) == merged
    with pytest.raises(BadInput, match="overlap at row 0"):
        KIND.reduce(a, regressor_partial(0, [1.0]))
    with pytest.raises(BadInput, match="do not cover rows 0 to 2"):
        KIND.finalize(merged)


def good_classifier() -> dict[str, Any]:
    return KIND.map({"tasks": ROWS}, 0, 3, artifacts=artifacts("logistic"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "ranker"}, "task must be classifier or regressor"),
        ({"rows": -1}, "rows must be a whole number"),
        ({"counts": [3, 3]}, "add up to 6, not 3"),
        ({"counts": [3]}, "one count per class"),
        ({"classes": [0, 0]}, "distinct labels"),
        ({"proba_sums": [["2", 0], ["1", 0]]}, "canonical form"),
        ({"proba_sums": [["-1", 0], ["1", 0]]}, "negative"),
        ({"proba_sums": [["1" * 2000, 0], ["1", 0]]}, "exact sum"),
        ({"predictions": [[0, [0, 1]]]}, "do not cover its 3 rows"),
        ({"predictions": [[0, [0, 1, 7]]]}, "not one of the model's"),
        ({"predictions": "all"}, "list of row ranges"),
        ({"extra": 1}, "unknown fields: extra"),
    ],
)
def test_bad_partials_are_refused(change: dict[str, Any], message: str) -> None:
    partial = {**good_classifier(), **change}
    with pytest.raises(BadInput, match=message):
        KIND.check_partial(partial)


def test_partials_of_different_models_do_not_merge() -> None:
    classifier = good_classifier()
    other = KIND.map({"tasks": ROWS}, 3, 6, artifacts=artifacts("forest"))
    with pytest.raises(BadInput, match="different models"):
        KIND.reduce(classifier, other)
    with pytest.raises(BadInput, match="different models"):
        KIND.reduce(classifier, regressor_partial(3, [1.0]))
    assert isinstance(KIND, PredictKind)
