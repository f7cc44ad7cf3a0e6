"""Model files: skops round trips, and the refusal of anything but allowed types."""

from __future__ import annotations

import io
import os
import pickle
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from lepton_ops.errors import BadInput
from lepton_ops.jobs import model_files
from lepton_ops.jobs.model_files import (
    load_model,
    load_model_bytes,
    model_bytes,
    refused_types,
    save_model,
)

RNG = np.random.default_rng(3)
X = RNG.normal(size=(120, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)

EVIL_MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")

class Evil:
    def predict(self, X):
        return X[:, 0]
"""


def test_round_trip_keeps_the_estimator_and_its_metadata(tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    metadata = {"features": ["a", "b", "c", "d"], "window": [0, 3600], "auc": 0.93}
    path = save_model(model, tmp_path / "sub" / "model.skops", metadata=metadata)
    assert path == tmp_path / "sub" / "model.skops"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["model.skops"]  # no temporary left
    loaded = load_model(path)
    assert loaded.metadata == metadata
    np.testing.assert_array_equal(loaded.estimator.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), model.predict_proba(X))


def test_a_bare_skops_estimator_loads_too() -> None:
    import skops.io as sio

    model = LinearRegression().fit(X, X[:, 0] * 2)
    loaded = load_model_bytes(sio.dumps(model))
    assert loaded.metadata == {}
    np.testing.assert_array_equal(loaded.estimator.predict(X), model.predict(X))


def test_sklearn_types_beyond_skops_defaults_are_allowed() -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)
    selected = make_pipeline(SelectKBest(f_classif, k=2), LogisticRegression()).fit(X, Y)
    for model in (forest, selected):
        data = model_bytes(model)
        assert model_files.untrusted_types(data)  # skops alone would refuse these
        loaded = load_model_bytes(data).estimator
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_custom_class_is_refused_and_its_module_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import skops.io as sio

    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_mod.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    import evil_mod  # type: ignore[import-not-found]

    data = sio.dumps(evil_mod.Evil())
    marker.unlink()
    monkeypatch.delitem(sys.modules, "evil_mod")
    path = tmp_path / "evil.skops"
    path.write_bytes(data)
    with pytest.raises(BadInput) as caught:
        load_model(path)
    message = str(caught.value)
    assert "evil_mod.Evil" in message and "not allowed" in message
    assert str(path) in message
    assert "evil_mod" not in sys.modules and not marker.exists()
    with pytest.raises(BadInput, match=r"holds types a model file may not: evil_mod\.Evil"):
        model_bytes(evil_mod.Evil())


def test_a_function_outside_the_allow_list_is_refused() -> None:
    import skops.io as sio

    model = make_pipeline(FunctionTransformer(os.system), LinearRegression())
    with pytest.raises(BadInput, match=r"not allowed: (posix|nt)\.system"):
        load_model_bytes(sio.dumps(model))


def test_refused_types_allow_classes_of_the_scientific_stack_only() -> None:
    names = [
        "sklearn.tree._tree.Tree",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "numpy.testing._private.utils.assert_equal",
        "numpy.testing.clear_and_catch_warnings",
        "sklearn.no_such_module.Thing",
        "sklearn.tree._tree.NoSuchClass",
        "scipy.sparse._csr.csr_matrix",
        "builtins.eval",
        "posix.system",
        "subprocess.Popen",
        "sklearn.utils.estimator_checks.check_estimator",
    ]
    assert refused_types(names) == [
        "numpy.testing._private.utils.assert_equal",
        "numpy.testing.clear_and_catch_warnings",
        "sklearn.no_such_module.Thing",
        "sklearn.tree._tree.NoSuchClass",
        "builtins.eval",
        "posix.system",
        "subprocess.Popen",
        "sklearn.utils.estimator_checks.check_estimator",
    ]


def test_a_pickle_or_garbage_is_not_a_model_file(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X, Y)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(model))
    with pytest.raises(BadInput, match="not a skops model file"):
        load_model(pickled)
    with pytest.raises(BadInput, match="not a skops model file"):
        load_model_bytes(b"\x00" * 100)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("hello.txt", "not a skops file")
    with pytest.raises(BadInput, match="not a readable skops file"):
        load_model_bytes(archive.getvalue())


def test_a_file_that_unpacks_too_large_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    data = model_bytes(LogisticRegression().fit(X, Y))
    monkeypatch.setattr(model_files, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(BadInput, match=r"unpacks to .* bytes: the limit is 1000"):
        load_model_bytes(data)
    monkeypatch.setattr(model_files, "MAX_MODEL_BYTES", 100)
    with pytest.raises(BadInput, match="the limit is 100"):
        load_model_bytes(data)


def test_missing_files_and_non_models_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_model(tmp_path / "nope.skops")
    with pytest.raises(BadInput, match="is a directory"):
        load_model(tmp_path)
    with pytest.raises(BadInput, match="no predict method"):
        model_bytes({"weights": [1, 2]})
    import skops.io as sio

    with pytest.raises(BadInput, match=r"holds a dict, not a scikit-learn model"):
        load_model_bytes(sio.dumps({"weights": [1, 2]}))
    with pytest.raises(BadInput, match="metadata must be plain JSON"):
        model_bytes(KMeans(n_clusters=2, n_init=1).fit(X), metadata={"when": object()})


def test_a_newer_format_version_is_refused() -> None:
    import skops.io as sio

    model = LogisticRegression().fit(X, Y)
    data = sio.dumps({"format": model_files.MODEL_FORMAT, "version": 99, "estimator": model})
    with pytest.raises(BadInput, match=r"format version 99.*upgrade lepton-ops"):
        load_model_bytes(data)
