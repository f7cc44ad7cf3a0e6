"""lepton-ops: keeps a small AI compute fleet stable, driving the fleet through Ansible."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lepton-ops")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
