"""The versions the nodes' wheelhouse installs: the project's lock, exported for the node extra.

``node-pins.txt`` next to this module is ``uv export --frozen --extra node`` of ``uv.lock``
(written by ``make lock``, checked by ``make lock-check``). It travels inside the lepton-ops
wheel, so a controller that installed lepton-ops from a wheel still builds the wheelhouse
from the versions CI tested.
"""

from __future__ import annotations

from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from lepton_ops.errors import OperationFailed

NODE_PINS = Path(__file__).with_name("node-pins.txt")
#: ``uv export`` arguments that produce node-pins.txt from uv.lock (see tools/node_pins.py).
EXPORT_ARGS = (
    "export",
    "--frozen",
    "--extra",
    "node",
    "--no-dev",
    "--no-emit-project",
    "--no-hashes",
    "--no-annotate",
)


def locked_pins(python_version: str | None = None, pins_file: Path | None = None) -> dict[str, str]:
    """Package name (canonical) -> locked version, for nodes running ``python_version``.

    The lock is universal: a line whose environment marker does not hold for the nodes'
    Python (for example numpy's per-Python versions) is left out.
    """
    path = pins_file or NODE_PINS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OperationFailed(f"the locked node versions are missing ({path}): {exc}") from exc
    environment = _environment(python_version)
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise OperationFailed(f"{path}:{number}: not a pin: {exc}") from exc
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        (spec,) = requirement.specifier
        if spec.operator != "==":
            raise OperationFailed(f"{path}:{number}: {line!r} is not an exact pin (==)")
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def _environment(python_version: str | None) -> dict[str, str]:
    environment = {key: str(value) for key, value in default_environment().items()}
    if python_version:
        major_minor = ".".join(python_version.split(".")[:2])
        full = python_version if python_version.count(".") >= 2 else f"{major_minor}.0"
        environment.update(python_version=major_minor, python_full_version=full)
    return environment
