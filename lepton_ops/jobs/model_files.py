"""Model files: scikit-learn models saved with skops (``skops.io``), never a bare pickle.

A model file is a skops archive holding ``{"format": "lepton-ops model", "version": 1,
"estimator": <the estimator>, "metadata": {...}}`` (the metadata is plain JSON data: a
feature list, a training window, metrics). A skops file of a bare estimator loads too.

Loading never runs code from the file: skops rebuilds objects only of the types it is
told to trust. Besides skops' own defaults, :func:`load_model_bytes` trusts only

- classes defined in scikit-learn, numpy or scipy (found by importing those packages,
  never the module a file names), outside their testing and vendored modules, and
- the few functions in :data:`SAFE_FUNCTIONS` (score functions models keep a reference to).

Anything else (a custom class, ``os.system``...) is refused with one line naming it.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.files import umask_mode
from lepton_ops.jobs.kinds.base import MAX_ARTIFACT_BYTES

MODEL_FORMAT = "lepton-ops model"
FORMAT_VERSION = 1
MAX_MODEL_BYTES = MAX_ARTIFACT_BYTES
#: A model archive may not unpack to more than this (a zip bomb is refused unread).
MAX_UNPACKED_BYTES = 4 * MAX_MODEL_BYTES
#: Packages whose classes a model file may hold.
ALLOWED_PACKAGES = ("sklearn", "numpy", "scipy")
#: Modules of those packages that are not part of a model (tests, vendored code).
_EXCLUDED_PARTS = frozenset(
    {"testing", "_testing", "tests", "conftest", "externals", "_vendor", "distutils", "f2py"}
)
#: Functions a model file may refer to (sklearn's univariate score functions).
SAFE_FUNCTIONS = frozenset(
    f"sklearn.feature_selection._univariate_selection.{name}"
    for name in ("f_classif", "f_regression", "chi2", "r_regression", "f_oneway")
) | frozenset(
    f"sklearn.feature_selection._mutual_info.{name}"
    for name in ("mutual_info_classif", "mutual_info_regression")
)


@dataclass(frozen=True)
class ModelFile:
    """A loaded model: the estimator and the metadata saved with it."""

    estimator: Any
    metadata: dict[str, Any] = field(default_factory=dict)


def model_bytes(estimator: Any, *, metadata: Mapping[str, Any] | None = None) -> bytes:
    """The skops bytes of ``estimator`` with ``metadata``; BadInput if it would not load."""
    import skops.io as sio

    _check_estimator(estimator, "the estimator")
    meta = dict(metadata or {})
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"model metadata must be plain JSON data: {exc}") from None
    payload = {
        "format": MODEL_FORMAT,
        "version": FORMAT_VERSION,
        "estimator": estimator,
        "metadata": meta,
    }
    try:
        data: bytes = sio.dumps(payload)
    except Exception as exc:
        raise BadInput(f"the estimator cannot be saved with skops: {_line(exc)}") from None
    refused = refused_types(untrusted_types(data, "the estimator"))
    if refused:
        raise BadInput(f"the estimator holds types a model file may not: {', '.join(refused)}")
    return data


def save_model(
    estimator: Any, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save ``estimator`` (and ``metadata``) to ``path`` as a skops file, atomically."""
    data = model_bytes(estimator, metadata=metadata)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            Path(temporary).chmod(umask_mode())
            Path(temporary).replace(target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BadInput(f"model file {target} cannot be written: {exc.strerror}") from None
    return target


def load_model(path: str | os.PathLike[str]) -> ModelFile:
    """The model saved in ``path``; BadInput (one line) if it is missing, unsafe or broken."""
    source = Path(path)
    try:
        size = source.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise BadInput(f"model file {source} is {size} bytes: the limit is {MAX_MODEL_BYTES}")
        data = source.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"model file {source} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"model file {source} is a directory") from None
    except OSError as exc:
        raise BadInput(f"model file {source} cannot be read: {exc.strerror}") from None
    return load_model_bytes(data, source=f"model file {source}")


def load_model_bytes(data: bytes, *, source: str = "the model file") -> ModelFile:
    """The model in skops bytes ``data``, loaded trusting only the allowed types."""
    import skops.io as sio

    if len(data) > MAX_MODEL_BYTES:
        raise BadInput(f"{source} is {len(data)} bytes: the limit is {MAX_MODEL_BYTES}")
    _check_archive(data, source)
    untrusted = untrusted_types(data, source)
    refused = refused_types(untrusted)
    if refused:
        raise BadInput(
            f"{source} holds types that are not allowed: {', '.join(refused)} "
            f"(a model file may hold scikit-learn, numpy and scipy classes only)"
        )
    try:
        loaded = sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise BadInput(f"{source} cannot be loaded: {_line(exc)}") from None
    if isinstance(loaded, dict) and loaded.get("format") == MODEL_FORMAT:
        version = loaded.get("version")
        if version != FORMAT_VERSION:
            raise BadInput(
                f"{source} has format version {version!r}; this lepton-ops reads "
                f"version {FORMAT_VERSION}: upgrade lepton-ops"
            )
        metadata = loaded.get("metadata")
        if not isinstance(metadata, dict):
            raise BadInput(f"{source}: its metadata is not a mapping")
        estimator = loaded.get("estimator")
    else:
        estimator, metadata = loaded, {}
    _check_estimator(estimator, source)
    return ModelFile(estimator=estimator, metadata=metadata)


def untrusted_types(data: bytes, source: str = "the model file") -> list[str]:
    """The types in skops bytes ``data`` that skops does not trust by default."""
    import skops.io as sio

    try:
        return sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:
        raise BadInput(f"{source} is not a readable skops file: {_line(exc)}") from None


def refused_types(names: list[str]) -> list[str]:
    """Those of ``names`` that a model file may not hold (see the module's doc)."""
    return [name for name in names if not _allowed(name)]


def _allowed(name: str) -> bool:
    if name in SAFE_FUNCTIONS:
        return True
    parts = name.split(".")
    if parts[0] not in ALLOWED_PACKAGES or _EXCLUDED_PARTS.intersection(parts):
        return False
    # Only ever imports a module of an allowed package: a file cannot make us import its own.
    for cut in range(len(parts) - 1, 0, -1):
        found: Any = _module(".".join(parts[:cut]))
        if found is None:
            continue
        try:
            for attribute in parts[cut:]:
                found = getattr(found, attribute)
        except AttributeError:
            return False
        return isinstance(found, type)
    return False


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # not a module (ImportError), or one that fails to import
        return None


def _check_archive(data: bytes, source: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BadInput(f"{source} is not a skops model file (not a zip archive)") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise BadInput(f"{source} unpacks to {unpacked} bytes: the limit is {MAX_UNPACKED_BYTES}")


def _check_estimator(estimator: Any, source: str) -> None:
    if not callable(getattr(estimator, "predict", None)):
        raise BadInput(
            f"{source} holds a {type(estimator).__name__}, not a scikit-learn model "
            f"(no predict method)"
        )


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


__all__ = [
    "MAX_MODEL_BYTES",
    "MODEL_FORMAT",
    "ModelFile",
    "load_model",
    "load_model_bytes",
    "model_bytes",
    "refused_types",
    "save_model",
    "untrusted_types",
]
