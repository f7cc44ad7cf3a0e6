"""The causal series anomaly scorer: exact causality, range, calibration on clean noise, and
detection of injected anomalies (spikes, level shifts, variance changes, drifts, a stuck
metric, a seasonal dip) against the scores of the normal rows."""

from __future__ import annotations

import numpy as np
import pytest

from lepton_ops.detect.previous_scorer import ScorerOptions, StreamingScorer, score_series

STEP = 300.0  # five-minute samples, as CloudWatch and the NAB corpus have them
DAY = int(86_400 / STEP)


def times(n: int) -> np.ndarray:
    return 1_700_000_000.0 + np.arange(n) * STEP


def ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    noise = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    level = 0.0
    for i in range(n):
        level = phi * level + noise[i]
        out[i] = level
    return out


def rank_among(scores: np.ndarray, hit: float, normal: np.ndarray) -> float:
    """Share of the normal rows scoring below ``hit``."""
    return float(np.mean(scores[normal] < hit))


def normal_rows(n: int, anomalous: slice, warmup: int = 300) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[:warmup] = False
    mask[anomalous] = False
    return mask


# --------------------------------------------------------------------------- contract


def mixed_series(n: int = 3000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal, noisy, with a spike, a level shift, missing values and an irregular gap."""
    rng = np.random.default_rng(seed)
    t = times(n)
    t[1500:] += 7200.0
    x = 40 + 8 * np.sin(2 * np.pi * t / 86_400) + rng.standard_t(3, n)
    x[900] += 30
    x[2000:] += 12
    x[rng.random(n) < 0.03] = np.nan
    return t, x


def seasonal_series(n: int = 3000, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A strong daily cycle (the seasonal detector is in use from about row 1300), a dip."""
    rng = np.random.default_rng(seed)
    t = times(n)
    x = 50 + 20 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 1, n)
    x[2500:2520] -= 15
    return t, x


@pytest.mark.parametrize("kind", ["mixed", "seasonal"])
@pytest.mark.parametrize("cut", [1, 63, 64, 65, 700, 1499, 1500, 2345, 2510, 2999])
def test_a_rows_score_never_depends_on_later_rows(kind: str, cut: int) -> None:
    t, x = mixed_series() if kind == "mixed" else seasonal_series()
    full = score_series(t, x)
    truncated = score_series(t[:cut], x[:cut])
    assert np.array_equal(truncated, full[:cut], equal_nan=True)

    rng = np.random.default_rng(cut)
    altered = x.copy()
    altered[cut:] = rng.normal(1e6, 1e5, x.size - cut)
    altered[cut::7] = np.nan
    changed = score_series(t, altered)
    assert np.array_equal(changed[:cut], full[:cut], equal_nan=True)
    if cut < x.size - 10:
        assert not np.array_equal(changed[cut:], full[cut:], equal_nan=True)


@pytest.mark.parametrize("kind", ["mixed", "seasonal"])
def test_streaming_row_by_row_and_in_chunks_equals_batch(kind: str) -> None:
    t, x = mixed_series(n=2500, seed=4) if kind == "mixed" else seasonal_series(n=2500)
    batch = score_series(t, x)
    one_by_one = StreamingScorer()
    rows = np.array([one_by_one.update(float(a), float(b)) for a, b in zip(t, x, strict=True)])
    assert np.array_equal(rows, batch, equal_nan=True)

    chunked = StreamingScorer()
    parts, start = [], 0
    for size in (1, 2, 61, 1, 200, 7, 900, 1328):
        parts.append(chunked.update_many(t[start : start + size], x[start : start + size]))
        start += size
    assert start == x.size
    assert np.array_equal(np.concatenate(parts), batch, equal_nan=True)
    assert (chunked.rows, chunked.valid_rows) == (x.size, int(np.sum(np.isfinite(x))))


@pytest.mark.parametrize(
    "kind", ["gauss", "cauchy", "constant", "quantized", "counts", "huge", "tiny", "trend"]
)
def test_scores_are_in_unit_interval_and_nan_only_where_the_value_is_missing(kind: str) -> None:
    rng = np.random.default_rng(7)
    n = 5000
    x = {
        "gauss": rng.normal(size=n),
        "cauchy": rng.standard_cauchy(n),
        "constant": np.full(n, 3.0),
        "quantized": np.round(rng.normal(0, 0.3, n)),
        "counts": rng.poisson(0.05, n).astype(float),
        "huge": rng.normal(1e15, 1e12, n),
        "tiny": rng.normal(1e-12, 1e-15, n),
        "trend": np.arange(n) * 0.5 + rng.normal(size=n),
    }[kind]
    x[rng.random(n) < 0.02] = np.nan
    x[17] = np.inf
    scores = score_series(times(n), x)
    assert scores.shape == x.shape
    missing = ~np.isfinite(x)
    assert np.array_equal(np.isnan(scores), missing)
    assert np.all((scores[~missing] >= 0.0) & (scores[~missing] <= 1.0))
    assert not np.any(np.signbit(scores[~missing]))  # no -0.0 in the output


def test_warm_up_rows_score_zero_and_missing_rows_do_not_count() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    x[:40:3] = np.nan
    x[30] = 1e6  # an outlier inside the warm-up: still 0
    scores = score_series(None, x)
    valid = np.flatnonzero(np.isfinite(x))
    assert np.all(scores[valid[:64]] == 0.0)
    assert np.any(scores[valid[64:]] > 0.0)
    assert scores[30] == 0.0


def test_short_empty_and_all_missing_series() -> None:
    assert score_series(None, []).shape == (0,)
    assert np.all(score_series(None, [1.0, 2.0, 3.0]) == 0.0)
    assert np.all(np.isnan(score_series(None, [np.nan] * 50)))
    assert np.all(score_series(times(100), np.full(100, 5.0)) == 0.0)


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="2 timestamps for 3 values"):
        score_series([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="short_window must be odd"):
        ScorerOptions(short_window=10)
    with pytest.raises(ValueError, match="warmup"):
        ScorerOptions(warmup=5)


# --------------------------------------------------------------------------- calibration


@pytest.mark.parametrize(
    "kind", ["gauss", "student_t3", "quantized", "random_walk", "seasonal", "counter"]
)
def test_normal_noise_rarely_scores_high_whatever_its_shape(kind: str) -> None:
    """The score is a calibrated tail probability: its rate above a level is about the same
    on very different clean series (heavy tails, quantized values, wandering, seasonal, a
    counter that only grows)."""
    rng = np.random.default_rng(11)
    n = 20_000
    t = times(n)
    x = {
        "gauss": rng.normal(size=n),
        "student_t3": rng.standard_t(3, n),
        "quantized": np.round(rng.normal(0, 0.3, n)),
        "random_walk": np.cumsum(rng.normal(size=n)),
        "seasonal": 50 + 20 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 2, n),
        "counter": np.cumsum(rng.poisson(50, n)).astype(float),  # a Prometheus counter
    }[kind]
    scores = score_series(t, x)[500:]
    assert np.mean(scores >= 0.5) < 0.01, np.mean(scores >= 0.5)
    assert np.mean(scores >= 0.9) < 0.001, np.mean(scores >= 0.9)
    assert np.median(scores) < 0.1


# --------------------------------------------------------------------------- detection


def test_spikes_rank_at_the_top() -> None:
    rng = np.random.default_rng(5)
    n = 6000
    x = 20 + rng.normal(0, 1, n)
    spikes = np.sort(rng.choice(np.arange(500, n), 6, replace=False))
    x[spikes] += rng.choice([-1.0, 1.0], spikes.size) * 7.0
    scores = score_series(times(n), x)
    normal = np.ones(n, dtype=bool)
    normal[:500] = False
    normal[spikes] = False
    normal[spikes + 1] = False
    threshold = np.quantile(scores[normal], 0.995)
    assert np.all(scores[spikes] > threshold)
    assert np.all(scores[spikes] >= 0.5)
    # The row after a spike returns to normal: it is not an anomaly itself.
    assert np.median(scores[spikes + 1]) < 0.3


def test_level_shift_scores_high_at_onset_then_the_baseline_follows() -> None:
    rng = np.random.default_rng(6)
    n = 4000
    x = 100 + 3 * rng.standard_t(5, n)
    x[2500:] += 25
    scores = score_series(times(n), x)
    normal = normal_rows(n, slice(2500, 2600))
    onset = scores[2500:2510].max()
    assert onset >= 0.6  # one row 8 robust sigmas out is not rare in t(5) noise: a few are
    assert rank_among(scores, onset, normal) > 0.999
    # One change does not score high forever: the new level is normal soon.
    assert np.quantile(scores[2600:], 0.99) < 0.5
    assert scores[2600:].max() < onset


def test_variance_increase_is_detected() -> None:
    rng = np.random.default_rng(8)
    n = 5000
    x = 5 + rng.normal(0, 1, n)
    x[3000:3200] = 5 + rng.normal(0, 4, 200)
    scores = score_series(times(n), x)
    hit = scores[3000:3200].max()
    assert hit >= 0.7
    assert rank_among(scores, hit, normal_rows(n, slice(3000, 3300))) > 0.999


def test_slow_drift_is_detected_before_it_ends() -> None:
    rng = np.random.default_rng(9)
    n = 5000
    x = 20 + rng.normal(0, 1, n)
    ramp = np.clip((np.arange(n) - 3000) / 300, 0, 1) * 5
    x += ramp
    scores = score_series(times(n), x)
    hit = scores[3000:3300].max()
    assert rank_among(scores, hit, normal_rows(n, slice(3000, 3500))) > 0.998
    assert hit >= 0.5


def test_a_stuck_metric_is_detected() -> None:
    rng = np.random.default_rng(10)
    n = 5000
    x = 40 + ar1(rng, n, 0.9, 2.0)
    x[3000:3150] = x[2999]  # the exporter froze
    scores = score_series(times(n), x)
    hit = scores[3000:3150].max()
    assert hit >= 0.7
    assert rank_among(scores, hit, normal_rows(n, slice(3000, 3200))) > 0.999
    # The frozen stretch does not shrink the scales: the noise after it is normal again.
    assert np.quantile(scores[3155:], 0.99) < 0.5


def test_a_jump_on_a_wandering_series_is_detected() -> None:
    rng = np.random.default_rng(12)
    n = 5000
    x = 60 + ar1(rng, n, 0.99, 0.5)  # wanders over a range much wider than the jump
    x[3500:] += 4
    scores = score_series(times(n), x)
    assert np.ptp(x[:3500]) > 3 * 4
    hit = scores[3500:3505].max()
    assert rank_among(scores, hit, normal_rows(n, slice(3500, 3600))) > 0.999


def test_nab_like_seasonal_series_with_an_in_range_anomaly() -> None:
    """Two weeks of five-minute CPU-like data with a daily cycle, noise and rare benign
    blips; on day 10 the afternoon peak collapses to the nightly level: every value of the
    anomaly is within the series' usual range, only its time of day is wrong."""
    rng = np.random.default_rng(13)
    n = 14 * DAY
    t = times(n)
    hour = (t / 3600.0) % 24
    x = 35 + 25 * np.clip(np.sin(2 * np.pi * (hour - 8) / 24), 0, None) + rng.normal(0, 2, n)
    blips = rng.random(n) < 0.002
    x[blips] += rng.exponential(6, int(blips.sum()))
    day10 = 10 * DAY
    peak = np.flatnonzero((hour[day10 : day10 + DAY] > 12) & (hour[day10 : day10 + DAY] < 16))
    anomaly = day10 + peak
    x[anomaly] = 35 + rng.normal(0, 2, anomaly.size)
    assert x[anomaly].max() < np.quantile(x[: 9 * DAY], 0.9)  # in range

    scores = score_series(t, x)
    normal = normal_rows(n, slice(anomaly[0], anomaly[-1] + 12), warmup=2 * DAY)
    hit = scores[anomaly].max()
    assert hit >= 0.6
    assert rank_among(scores, hit, normal) > 0.999


def test_irregular_sampling_and_missing_values() -> None:
    rng = np.random.default_rng(14)
    n = 4000
    t = np.cumsum(rng.exponential(STEP, n))
    x = 30 + 3 * np.sin(2 * np.pi * t / 20_000) + rng.normal(0, 0.5, n)
    x[rng.random(n) < 0.1] = np.nan
    spike = 3000
    x[spike] = 30 + 3 * np.sin(2 * np.pi * t[spike] / 20_000) + 5
    scores = score_series(t, x)
    assert np.array_equal(np.isnan(scores), np.isnan(x))
    normal = normal_rows(n, slice(spike, spike + 2)) & np.isfinite(x)
    assert rank_among(scores, scores[spike], normal) > 0.999


def test_a_step_after_a_constant_stretch_is_maximal() -> None:
    x = np.full(3000, 7.0)
    x[2000:] = 8.0
    scores = score_series(times(3000), x)
    assert np.all(scores[:2000] == 0.0)
    assert scores[2000] == 1.0
    assert np.all(scores[2100:] == 0.0)  # the new constant level is normal again
