"""Service config files (YAML or JSON) and the checked values read from them."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lepton_ops.errors import BadInput
from lepton_ops.jobs.kinds.base import MAX_ARTIFACT_BYTES


def config_number(
    data: Mapping[str, Any], key: str, default: float, *, minimum: float = 0.0, strict: bool = True
) -> float:
    """A positive finite number from a config mapping (BadInput otherwise)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(f"config: {key} must be a number, got {value!r}")
    if value < minimum or (strict and value <= minimum):
        bound = "greater than" if strict else "at least"
        raise BadInput(f"config: {key} must be {bound} {minimum}, got {value}")
    return float(value)


def config_int(data: Mapping[str, Any], key: str, default: int, *, minimum: int = 1) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInput(f"config: {key} must be a whole number of at least {minimum}, got {value!r}")
    return value


def config_artifact_limit(data: Mapping[str, Any]) -> int:
    """A config's ``max_artifact_bytes``: it can lower the artifact limit, not raise it."""
    limit = config_int(data, "max_artifact_bytes", MAX_ARTIFACT_BYTES, minimum=1024)
    if limit > MAX_ARTIFACT_BYTES:
        raise BadInput(f"config: max_artifact_bytes must be at most {MAX_ARTIFACT_BYTES}")
    return limit


def config_path(data: Mapping[str, Any], key: str) -> Path:
    value = data.get(key)
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise BadInput(f"config: {key} must be a file path, got {value!r}")
    return Path(value)


def config_optional_path(data: Mapping[str, Any], key: str) -> Path | None:
    """``data[key]`` as a path, or None when it is absent or null."""
    return None if data.get(key) is None else config_path(data, key)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A service config from a JSON or YAML file (never holds the token itself).

    A ``.json`` file is read with the standard library: the nodes' venvs (the ``node``
    extra) have no PyYAML, and ``lepton-ops deploy`` writes JSON configs.
    """
    config_file = Path(path)
    try:
        text = config_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"config file {config_file} cannot be read: {exc.strerror}") from None
    if config_file.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"config file {config_file} is not JSON: {exc}") from None
    else:
        import yaml  # PyYAML: a dependency of lepton-ops, not of the node extra

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInput(f"config file {config_file} is not YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"config file {config_file} must hold a mapping")
    if "token" in data:
        raise BadInput(
            f"config file {config_file} holds a token: give token_file (a mode 0600 file)"
        )
    return data
