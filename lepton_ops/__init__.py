"""lepton-ops: keeps a small AI compute fleet stable, driving the fleet through Ansible."""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # Looked up on first use: importlib.metadata costs ~30 ms that most commands never need.
    if name != "__version__":
        raise AttributeError(f"module 'lepton_ops' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("lepton-ops")
    except PackageNotFoundError:  # running from a checkout that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
