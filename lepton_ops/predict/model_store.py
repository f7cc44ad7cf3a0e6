"""Saved predictors: ``<state_dir>/models/``, versioned, with a SHA-256 checked on every load.

::

    models/
      predictor-20250101T120000.123456Z.skops         the model (skops: jobs/model_files.py)
      predictor-20250101T120000.123456Z.skops.sha256  its SHA-256 ("sha256sum -c" reads it)
      current.json                             {"model": <file name>, "sha256": <hex>, ...}

A model file holds the classifier (in anomaly-only mode, a ``DummyClassifier`` that
stands in for it: the file format needs an estimator) and, as its metadata, everything
needed to use and judge it: feature list, horizon, window, threshold, anomaly
detector, training window and counts, validation metrics, library versions, creation
time. skops rebuilds only scikit-learn, numpy and scipy types (never a bare pickle).

The file's SHA-256 is recorded apart from it (``current.json``, and the ``.sha256`` file
next to it) when it is saved, and compared with the file's bytes before they are
parsed: a file that was modified or damaged since is refused with one line. (The hash
guards against corruption and accidental edits; someone who can write both files can
replace both.) Old models are kept; ``current.json`` names the latest.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.files import umask_mode
from lepton_ops.jobs.model_files import MAX_MODEL_BYTES, load_model_bytes, save_model
from lepton_ops.predict.anomaly import AnomalyDetector
from lepton_ops.predict.features import FEATURE_NAMES
from lepton_ops.predict.model import MODE_ANOMALY, MODE_CLASSIFIER, Predictor
from lepton_ops.settings import StateLayout

MODEL_KIND = "lepton-ops failure predictor"
METADATA_VERSION = 1
CURRENT = "current.json"
_PREFIX = "predictor-"
_SUFFIX = ".skops"
_RETRAIN = "retrain with 'lepton-ops model train'"


def models_dir(state_dir: Path) -> Path:
    return StateLayout(state_dir).models


@dataclass(frozen=True)
class SavedModel:
    path: Path
    sha256: str
    predictor: Predictor


def save_predictor(state_dir: Path, predictor: Predictor) -> SavedModel:
    """Save ``predictor`` as a new version and make it the current one."""
    directory = models_dir(state_dir)
    path = _new_path(directory)
    save_model(_estimator(predictor), path, metadata=to_metadata(predictor))
    digest = sha256_of(path.read_bytes())
    _write_text(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    current = {
        "model": path.name,
        "sha256": digest,
        "mode": predictor.mode,
        "created_at": predictor.info.get("created_at"),
    }
    _write_text(directory / CURRENT, json.dumps(current, indent=2) + "\n")
    return SavedModel(path, digest, predictor)


#: The lab's starter model, shipped with lepton-ops (see starter/README.md).
STARTER = Path(__file__).resolve().parent / "starter" / "lab-predictor.skops"


def install_starter(state_dir: Path) -> SavedModel:
    """Install the lab's starter model as the current model (checked against its SHA-256)."""
    recorded = STARTER.with_name(STARTER.name + ".sha256").read_text(encoding="utf-8").split()[0]
    data = STARTER.read_bytes()
    if sha256_of(data) != recorded:
        raise OperationFailed(f"the starter model {STARTER} does not match its SHA-256")
    directory = models_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_PREFIX}lab-starter{_SUFFIX}"
    path.write_bytes(data)
    _write_text(path.with_name(path.name + ".sha256"), f"{recorded}  {path.name}\n")
    predictor = load_file(path, recorded)
    current = {
        "model": path.name,
        "sha256": recorded,
        "mode": predictor.mode,
        "created_at": predictor.info.get("created_at"),
        "starter": True,
    }
    _write_text(directory / CURRENT, json.dumps(current, indent=2) + "\n")
    return SavedModel(path, recorded, predictor)


def has_current(state_dir: Path) -> bool:
    return (models_dir(state_dir) / CURRENT).is_file()


def load_current(state_dir: Path) -> SavedModel:
    """The current model, its bytes checked against the recorded SHA-256."""
    directory = models_dir(state_dir)
    pointer = directory / CURRENT
    try:
        current = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OperationFailed(
            f"no failure model yet in {directory}: train one with 'lepton-ops model train' "
            "(it needs telemetry with failures), or use the lab's starter model: "
            "'lepton-ops model install-starter'"
        ) from None
    except (OSError, ValueError) as exc:
        raise OperationFailed(f"{pointer} is not readable ({_line(exc)}): {_RETRAIN}") from None
    name, digest = (
        (current.get("model"), current.get("sha256")) if isinstance(current, dict) else (None, None)
    )
    if not _is_model_name(name) or not isinstance(digest, str) or len(digest) != 64:
        raise OperationFailed(f"{pointer} does not name a model and its SHA-256: {_RETRAIN}")
    path = directory / str(name)
    return SavedModel(path, digest, load_file(path, digest))


def load_file(path: Path, sha256: str) -> Predictor:
    """The predictor in ``path``, refused unless its bytes have SHA-256 ``sha256``."""
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise OperationFailed(
                f"model file {path} is {size} bytes: the limit is {MAX_MODEL_BYTES}"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise OperationFailed(f"model file {path} is missing: {_RETRAIN}") from None
    except OSError as exc:
        raise OperationFailed(f"model file {path} cannot be read: {exc.strerror}") from None
    actual = sha256_of(data)
    if actual != sha256.lower():
        raise OperationFailed(
            f"model file {path} does not match its recorded SHA-256 (recorded "
            f"{sha256[:16]}..., file {actual[:16]}...): it was modified or damaged "
            f"since it was saved; {_RETRAIN}"
        )
    try:
        loaded = load_model_bytes(data, source=f"model file {path}")
    except BadInput as exc:
        raise OperationFailed(f"{exc}; {_RETRAIN}") from None
    try:
        return from_metadata(loaded.estimator, loaded.metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise OperationFailed(
            f"model file {path} is not a usable failure predictor ({_line(exc)}): {_RETRAIN}"
        ) from None


def saved_models(state_dir: Path) -> list[dict[str, Any]]:
    """Every saved model file, oldest first: name, size, recorded SHA-256, current or not."""
    directory = models_dir(state_dir)
    try:
        current = json.loads((directory / CURRENT).read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        current = None
    found = []
    for path in sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}")):
        try:
            recorded = path.with_name(path.name + ".sha256").read_text(encoding="utf-8").split()[0]
        except (OSError, IndexError):
            recorded = None
        found.append(
            {
                "model": path.name,
                "bytes": path.stat().st_size,
                "sha256": recorded,
                "current": path.name == current,
            }
        )
    return found


def version_warning(info: dict[str, Any]) -> str | None:
    """A warning if the model was saved by another scikit-learn (or numpy) release."""
    from lepton_ops.predict.model import library_versions

    saved = info.get("versions") or {}
    running = library_versions()
    differ = [
        f"{name} {saved.get(name)} (running {running[name]})"
        for name in ("sklearn", "numpy")
        if saved.get(name) and _minor(str(saved.get(name))) != _minor(running[name])
    ]
    if not differ:
        return None
    return f"the model was saved with {', '.join(differ)}: {_RETRAIN} if its predictions look off"


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- metadata


def to_metadata(predictor: Predictor) -> dict[str, Any]:
    """The predictor's metadata: plain JSON data (no NaN, no infinity)."""
    return {
        "kind": MODEL_KIND,
        "metadata_version": METADATA_VERSION,
        "mode": predictor.mode,
        "features": list(predictor.features),
        "horizon_s": predictor.horizon_s,
        "window_s": predictor.window_s,
        "threshold": predictor.threshold,
        "medians": [float(v) for v in predictor.medians],
        "anomaly": predictor.anomaly.to_json(),
        **_json_safe(predictor.info),
    }


def from_metadata(estimator: Any, metadata: dict[str, Any]) -> Predictor:
    """The predictor of a loaded model file; ValueError if it is not one this version reads."""
    if metadata.get("kind") != MODEL_KIND:
        raise ValueError(f"its metadata says kind {metadata.get('kind')!r}, not {MODEL_KIND!r}")
    if metadata.get("metadata_version") != METADATA_VERSION:
        raise ValueError(
            f"metadata version {metadata.get('metadata_version')!r} (this lepton-ops reads "
            f"{METADATA_VERSION})"
        )
    features = tuple(metadata["features"])
    if features != FEATURE_NAMES:
        raise ValueError("it was trained on other features than this lepton-ops computes")
    mode = metadata["mode"]
    if mode not in (MODE_CLASSIFIER, MODE_ANOMALY):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == MODE_CLASSIFIER and not callable(getattr(estimator, "predict_proba", None)):
        raise ValueError("its classifier has no predict_proba")
    medians = np.asarray(metadata["medians"], dtype=np.float64)
    if medians.shape != (len(features),):
        raise ValueError("its medians do not match its features")
    own = {
        "kind",
        "metadata_version",
        "mode",
        "features",
        "horizon_s",
        "window_s",
        "threshold",
        "medians",
        "anomaly",
    }
    return Predictor(
        classifier=estimator if mode == MODE_CLASSIFIER else None,
        anomaly=AnomalyDetector.from_json(metadata["anomaly"], len(features)),
        medians=medians,
        threshold=float(metadata["threshold"]),
        horizon_s=float(metadata["horizon_s"]),
        window_s=float(metadata["window_s"]),
        features=features,
        info={key: value for key, value in metadata.items() if key not in own},
    )


def _estimator(predictor: Predictor) -> Any:
    if predictor.classifier is not None:
        return predictor.classifier
    from sklearn.dummy import DummyClassifier

    # Stands in for the classifier an anomaly-only model does not have.
    return DummyClassifier(strategy="prior").fit(np.zeros((1, len(predictor.features))), [0])


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, numpy numbers as Python ones."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- files


def _new_path(directory: Path) -> Path:
    """A new model's path: named by its UTC time to the microsecond (names sort by age)."""
    while True:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        candidate = directory / f"{_PREFIX}{stamp}.{int(now % 1 * 1e6):06d}Z{_SUFFIX}"
        if not candidate.exists():
            return candidate


def _is_model_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and name.startswith(_PREFIX)
        and name.endswith(_SUFFIX)
        and "/" not in name
        and os.sep not in name
    )


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader sees the old file or the new one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            Path(temporary).chmod(umask_mode())
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OperationFailed(f"{path} cannot be written: {exc.strerror}") from None


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
