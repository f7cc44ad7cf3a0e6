"""The state directory's layout is named in one place: :class:`StateLayout`."""

from __future__ import annotations

import re
from pathlib import Path

from lepton_ops.settings import Settings, StateLayout

LIBRARY = Path(__file__).resolve().parents[2] / "lepton_ops"
# ``state_dir / "x"`` or ``Path(state_dir) / "x"``; a file inside a directory the layout
# names (``secrets_dir(state_dir) / "service-token"``) is its owner's to name.
JOIN = re.compile(r"(?<![\w(])state_dir / ['\"]|Path\(state_dir\) / ['\"]")


def test_every_path_is_inside_the_state_dir_and_distinct(tmp_path: Path) -> None:
    layout = Settings(state_dir=tmp_path, inventory=None).layout
    names = [name for name, value in vars(StateLayout).items() if isinstance(value, property)]
    paths = [getattr(layout, name) for name in names]
    assert len(set(paths)) == len(paths) > 10
    assert all(path.is_relative_to(tmp_path) and path != tmp_path for path in paths)
    assert not any(tmp_path.iterdir())  # naming a path creates nothing


def test_no_module_joins_its_own_path_onto_the_state_dir() -> None:
    joins = [
        f"{path.relative_to(LIBRARY)}:{number}"
        for path in sorted(LIBRARY.rglob("*.py"))
        if path.name != "settings.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if JOIN.search(line)
    ]
    assert joins == [], "name the path in settings.StateLayout instead"
