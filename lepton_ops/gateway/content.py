"""Where the collection (with its roles) lives: the checkout, or the copy inside the wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
COLLECTION = "lepton.ops"


@cache
def content_root() -> Path:
    """The directory holding ``ansible_collections/`` (a collections path)."""
    checkout = _PACKAGE_DIR.parent
    if (checkout / "ansible_collections" / "lepton" / "ops" / "galaxy.yml").is_file():
        return checkout
    bundled = _PACKAGE_DIR / "_content"
    if (bundled / "ansible_collections").is_dir():
        return bundled
    raise FileNotFoundError(
        f"the lepton.ops collection is neither in a checkout ({checkout}) nor bundled ({bundled})"
    )


def project_root() -> Path | None:
    """The source checkout lepton-ops runs from, if it runs from one (for building its wheel)."""
    checkout = _PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "lepton_ops").is_dir():
        return checkout
    return None


def collections_path() -> Path:
    return content_root()


def playbook_path(name: str) -> Path:
    """The file of the collection playbook ``lepton.ops.<name>``."""
    path = content_root() / "ansible_collections" / "lepton" / "ops" / "playbooks" / f"{name}.yml"
    if not path.is_file():
        raise FileNotFoundError(f"no playbook {COLLECTION}.{name} at {path}")
    return path
