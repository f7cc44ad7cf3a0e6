"""The controller's bearer token: created once, private, reused, refused when not private."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_ops.credentials.tokens import ensure_token, token_path
from lepton_ops.errors import BadInput


def test_created_private_and_reused(tmp_path: Path) -> None:
    path = ensure_token(tmp_path)
    assert path == token_path(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    token = path.read_text(encoding="utf-8").strip()
    assert len(token) >= 40
    assert ensure_token(tmp_path).read_text(encoding="utf-8").strip() == token
    assert [p.name for p in path.parent.iterdir()] == ["service-token"]


def test_group_readable_token_is_refused(tmp_path: Path) -> None:
    path = ensure_token(tmp_path)
    path.chmod(0o640)
    with pytest.raises(BadInput, match="0640") as caught:
        ensure_token(tmp_path)
    assert "\n" not in str(caught.value)
    assert path.read_text(encoding="utf-8").strip() not in str(caught.value)
