"""``lepton_ops.telemetry.durations``: ``10m``, ``30d`` and the like, as CLI flags take them."""

from __future__ import annotations

import pytest

from lepton_ops.errors import BadInput
from lepton_ops.telemetry.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("30d", 30 * 86400),
        ("2w", 14 * 86400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (" 10M ", 600),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "-5m", "1 h", "10m5", "1e3s", "h1"])
def test_bad_text_is_one_line_of_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match=r"^bad duration .*: use a number and a unit") as caught:
        parse_duration(text)
    assert "\n" not in str(caught.value)


def test_zero_is_refused() -> None:
    with pytest.raises(BadInput, match="longer than 0 seconds"):
        parse_duration("0m")


@pytest.mark.parametrize("seconds", [1, 59, 60, 3600, 5400, 30 * 86400, 15 * 86400 + 7])
def test_format_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(30 * 86400) == "4w2d"
    assert format_duration(0) == "0s"
