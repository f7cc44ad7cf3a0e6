"""The streaming detector: exact causality (later rows change no earlier score), the same
scores however the rows are split, warm-up, missing rows, calibration on clean noise,
one alarm per anomaly, and detection of the usual kinds of anomaly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lepton_ops.detect.detector import DetectorOptions, StreamingDetector, detect, surprise

Floats = np.ndarray[Any, np.dtype[np.float64]]
STEP = 300.0


def times(n: int) -> Floats:
    return 1_700_000_000.0 + STEP * np.arange(n, dtype=np.float64)


def daily(n: int, seed: int = 0) -> Floats:
    rng = np.random.default_rng(seed)
    t = times(n)
    values: Floats = 50 + 10 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 2, n)
    return values


def test_later_rows_change_no_earlier_score() -> None:
    n = 3000
    t, x = times(n), daily(n)
    x[2000] += 40
    full = detect(t, x)
    full_surprise = surprise(t, x)
    for cut in (700, 1999, 2000, 2500):
        np.testing.assert_array_equal(detect(t[:cut], x[:cut]), full[:cut])
        np.testing.assert_array_equal(surprise(t[:cut], x[:cut]), full_surprise[:cut])
        altered = x.copy()
        altered[cut:] = np.random.default_rng(cut).normal(0, 100, n - cut)
        np.testing.assert_array_equal(detect(t, altered)[:cut], full[:cut])


def test_the_same_scores_however_the_rows_are_split() -> None:
    n = 1500
    t, x = times(n), daily(n, seed=1)
    x[900:960] = x[899]  # stuck
    batch = detect(t, x)
    one_by_one = StreamingDetector()
    single = np.array([one_by_one.update(ts, v) for ts, v in zip(t, x, strict=True)])
    np.testing.assert_array_equal(single, batch)
    chunked = StreamingDetector()
    parts = [chunked.update_many(t[a:b], x[a:b]) for a, b in [(0, 7), (7, 300), (300, 1500)]]
    np.testing.assert_array_equal(np.concatenate(parts), batch)


def test_warm_up_missing_rows_and_range() -> None:
    n = 2000
    t, x = times(n), daily(n, seed=2)
    x[[5, 300, 1200]] = np.nan
    scores = detect(t, x)
    assert np.isnan(scores[[5, 300, 1200]]).all()
    valid = np.isfinite(x)
    assert np.all(scores[np.flatnonzero(valid)[:128]] == 0.0)
    finite = scores[np.isfinite(scores)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    # A missing row changes nothing: the same as without it.
    np.testing.assert_array_equal(detect(t[valid], x[valid]), scores[valid])
    assert detect(None, []).shape == (0,)
    assert np.all(detect(None, [1.0, 2.0, 3.0]) == 0.0)
    assert np.all(detect(times(500), np.full(500, 7.0)) == 0.0)
    with pytest.raises(ValueError):
        detect([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        DetectorOptions(warmup=4)


def test_the_score_does_not_depend_on_units() -> None:
    n = 2500
    t, x = times(n), daily(n, seed=3)
    x[1700] -= 30
    np.testing.assert_allclose(detect(t, 1000.0 * x - 5.0), detect(t, x), atol=1e-6)


def test_clean_noise_rarely_alarms() -> None:
    rng = np.random.default_rng(4)
    for values in (rng.normal(0, 1, 20_000), np.exp(rng.normal(3, 0.4, 20_000))):
        scores = detect(None, values)
        assert np.mean(scores >= 0.5) < 0.001
        assert np.sum(scores >= 0.7) <= 3


def test_a_spike_alarms_once_at_its_row() -> None:
    n = 3000
    t, x = times(n), daily(n, seed=5)
    x[2000] += 25
    scores = detect(t, x)
    assert scores[2000] >= 0.7
    assert np.sum(scores[2001:2200] >= 0.3) == 0


def test_a_level_shift_alarms_once_and_becomes_normal() -> None:
    rng = np.random.default_rng(6)
    x = np.concatenate((rng.normal(10, 1, 2000), rng.normal(20, 1, 3000)))
    scores = detect(None, x)
    assert scores[2000:2005].max() >= 0.7
    # One alarm, then the new level is normal: only noise alarms after (1 in 10^4 rows).
    assert np.sum(scores[2000:2300] >= 0.3) == 1
    assert np.sum(scores[2300:] >= 0.5) <= 1


def test_a_stuck_sensor_and_a_noise_change_alarm() -> None:
    n = 3000
    t, x = times(n), np.round(daily(n, seed=7), 2)
    x[2000:2300] = x[1999]
    scores = detect(t, x)
    assert scores[2000:2100].max() >= 0.5
    rng = np.random.default_rng(8)
    y = rng.normal(0, 1, 3000)
    y[2000:2300] *= 5
    assert detect(None, y)[2000:2050].max() >= 0.5


def test_right_after_the_warm_up_a_short_history_cannot_vouch_for_a_fleet_alarm() -> None:
    """The first spike a spiky series shows after its warm-up is news, but 112 rows of
    history cannot make it one in a million: it stays under the fleet threshold (0.8),
    while the same spike after a long quiet history reaches it."""
    rng = np.random.default_rng(11)
    x = 0.1 + 0.01 * rng.normal(size=3000)
    early, late = x.copy(), x.copy()
    early[140] += 2.0
    late[2500] += 2.0
    early_scores, late_scores = detect(None, early), detect(None, late)
    assert 0 < early_scores[140] < 0.8
    assert late_scores[2500] >= 0.8


def test_heavy_tailed_noise_alarms_no_more_after_the_warm_up_than_later() -> None:
    early = late = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        values = 0.08 + 0.02 * rng.pareto(2.5, 3000)
        scores = detect(None, values)
        early += int(np.sum(scores[128:512] >= 0.8))
        late += int(np.sum(scores[512:] >= 0.8))
    # Rows 128-512 are 384 of each series, the later ones 2,488.
    assert early / 384 <= max(late, 1) / 2488
