"""A deterministic synthetic corpus of labelled metric series, in families modelled on what
real server metrics do.

Anomalous families (each series has one or two anomalies): a spike on a daily cycle, a
day whose peak is missing (in range, wrong time), a level shift on a weekly cycle that
becomes the new normal, a level shift in a wandering series, a memory-leak ramp ended by
a restart, a stuck sensor, a noise-variance change, a burst in integer counts, a latency
increase in heavy-tailed noise, a drop in irregularly sampled data with gaps, a disk
whose cleanup stops, a temperature that climbs before a crash, a CPU that flatlines at 0,
dips in Student-t noise. Control families (no anomaly at all): a daily cycle, a weekly
cycle with a benign daily job, a random walk, heavy-tailed latency with benign spikes,
integer counts, irregular samples with gaps, a regular disk sawtooth, a quantised gauge.

Windows are placed as in public streaming benchmarks: 10 % of the series' rows, shared
among its anomalies, centred on each anomaly's onset. Two parts come from different
seeds: ``dev`` (the development set, 40 series, 12 without anomaly) and ``holdout``
(a check looked at only at the end, 20 series, 6 without anomaly).

``python tools/make_detection_corpus.py DIR`` writes a part as CSVs and ``labels.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lepton_ops.detect.corpus import LabelledSeries
from lepton_ops.detect.scoring import FloatArray

T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC
DAY = 86_400.0
WEEK = 7 * DAY
PARTS = {"dev": (1000, 2, 2), "holdout": (2000, 1, 1)}  # seed base, variants each

Rng = np.random.Generator
#: A family: (rng, rows) -> timestamps, values, onsets (row numbers).
Family = Callable[[Rng, int], tuple[FloatArray, FloatArray, list[int]]]


def _regular(n: int, step: float) -> FloatArray:
    return T0 + step * np.arange(n, dtype=np.float64)


def _ar1(rng: Rng, n: int, phi: float, sigma: float) -> FloatArray:
    noise = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    level = 0.0
    for i in range(n):
        level = phi * level + float(noise[i])
        out[i] = level
    return out


def _onset(rng: Rng, n: int, low: float = 0.35, high: float = 0.85) -> int:
    return int(rng.integers(int(low * n), int(high * n)))


def _daily(t: FloatArray, amplitude: float) -> FloatArray:
    phase = 2 * np.pi * (t % DAY) / DAY
    return np.asarray(amplitude * np.clip(np.sin(phase - np.pi / 2) + 0.3, -1, 1.3))


# --------------------------------------------------------------------------- anomalous


def daily_spike(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    x = 40 + _daily(t, 15) + _ar1(rng, n, 0.5, 2.0)
    onsets = sorted({_onset(rng, n, 0.3, 0.6), _onset(rng, n, 0.65, 0.9)})
    for a in onsets:
        x[a : a + int(rng.integers(1, 4))] += rng.choice([-1, 1]) * 18
    return t, x, onsets


def daily_pattern_break(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    x = 100 + _daily(t, 40) + rng.normal(0, 3, n)
    day_rows = int(DAY / 300)
    day = int(rng.integers(int(0.4 * n) // day_rows, int(0.85 * n) // day_rows))
    peak = day * day_rows + int(np.argmax(_daily(t[:day_rows], 40))) - 30
    x[peak : peak + 60] = 100 + rng.normal(0, 3, 60)
    return t, x, [peak]


def weekly_shift(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 900.0)
    weekend = ((t - T0) % WEEK) >= 5 * DAY
    x = 60 + _daily(t, 20) - 25 * weekend + rng.normal(0, 2.5, n)
    a = _onset(rng, n, 0.5, 0.8)
    x[a:] += 30
    return t, x, [a]


def wander_shift(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    x = 50 + _ar1(rng, n, 0.95, 1.0)
    a = _onset(rng, n)
    x[a:] += rng.choice([-1, 1]) * 14
    return t, x, [a]


def memory_leak(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 60.0)
    x = 35 + _ar1(rng, n, 0.7, 0.8)
    a = _onset(rng, n, 0.4, 0.8)
    ramp = min(400, n - a - 1)
    x[a : a + ramp] += np.linspace(0, 55, ramp)
    return t, x, [a]


def stuck_sensor(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    x = np.round(20 + _daily(t, 4) + _ar1(rng, n, 0.8, 0.6), 2)
    a = _onset(rng, n)
    x[a : a + 200] = x[a - 1]
    return t, x, [a]


def noise_change(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    x = 10 + rng.normal(0, 1, n)
    a = _onset(rng, n)
    x[a : a + 300] = 10 + rng.normal(0, 4, min(300, n - a))
    return t, x, [a]


def count_burst(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 60.0)
    x = rng.poisson(2.0, n).astype(np.float64)
    a = _onset(rng, n)
    x[a : a + 15] = rng.poisson(14.0, 15)
    return t, x, [a]


def latency_increase(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 60.0)
    x = np.exp(rng.normal(3.0, 0.35, n))
    x[rng.random(n) < 0.01] *= 4
    a = _onset(rng, n)
    x[a : a + 80] *= 2.5
    return t, x, [a]


def irregular_drop(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    gaps = rng.exponential(120.0, n)
    gaps[rng.random(n) < 0.01] *= 30  # collection outages
    t = T0 + np.cumsum(gaps)
    x = 70 + 5 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 1.5, n)
    x[rng.random(n) < 0.03] = np.nan
    a = _onset(rng, n)
    x[a : a + 120] -= 12
    return t, x, [a]


def disk_cleanup_stops(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    period = 144
    a = _onset(rng, n, 0.5, 0.8)
    a -= a % period
    phase = np.arange(n) % period
    x = 40 + 20 * phase / period + rng.normal(0, 0.3, n)
    tail = np.arange(n - a)
    x[a:] = 40 + 20 * tail / period + rng.normal(0, 0.3, n - a)
    x = np.minimum(x, 100.0)
    return t, x, [a + period]


def temperature_crash(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    x = 70 + _daily(t, 2) + _ar1(rng, n, 0.98, 0.3)
    a = _onset(rng, n, 0.4, 0.8)
    climb = min(80, n - a)
    x[a : a + climb] += np.linspace(0, 12, climb)
    x[a + climb : a + climb + 100] = 20 + rng.normal(0, 0.5, min(100, max(0, n - a - climb)))
    return t, x, [a]


def cpu_flatline(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 60.0)
    x = np.clip(35 + _daily(t, 10) + _ar1(rng, n, 0.6, 4.0), 1, 100)
    a = _onset(rng, n)
    x[a : a + 150] = 0.0
    return t, x, [a]


def t_noise_dips(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    x = 500 + 10 * rng.standard_t(3, n)
    onsets = sorted({_onset(rng, n, 0.3, 0.55), _onset(rng, n, 0.65, 0.9)})
    for a in onsets:
        x[a : a + 3] -= 150
    return t, x, onsets


# --------------------------------------------------------------------------- controls


def quiet_daily(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    return t, 40 + _daily(t, 15) + _ar1(rng, n, 0.5, 2.0), []


def quiet_weekly_job(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 900.0)
    weekend = ((t - T0) % WEEK) >= 5 * DAY
    x = 60 + _daily(t, 20) - 25 * weekend + rng.normal(0, 2.5, n)
    x[((t - T0) % DAY) < 1800] += 25  # a nightly job
    return t, x, []


def quiet_random_walk(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    return t, 50 + _ar1(rng, n, 0.995, 0.5), []


def quiet_latency(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 60.0)
    x = np.exp(rng.normal(3.0, 0.35, n))
    x[rng.random(n) < 0.01] *= 4
    return t, x, []


def quiet_counts(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 60.0)
    return t, rng.poisson(2.0, n).astype(np.float64), []


def quiet_irregular(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    gaps = rng.exponential(120.0, n)
    gaps[rng.random(n) < 0.01] *= 30
    t = T0 + np.cumsum(gaps)
    x = 70 + 5 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 1.5, n)
    x[rng.random(n) < 0.03] = np.nan
    return t, x, []


def quiet_sawtooth(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 300.0)
    return t, 40 + 20 * (np.arange(n) % 144) / 144 + rng.normal(0, 0.3, n), []


def quiet_gauge(rng: Rng, n: int) -> tuple[FloatArray, FloatArray, list[int]]:
    t = _regular(n, 60.0)
    x = np.full(n, 4.0)
    x[rng.random(n) < 0.02] = 5.0
    return t, x, []


ANOMALOUS: dict[str, Family] = {
    "daily_spike": daily_spike,
    "daily_pattern_break": daily_pattern_break,
    "weekly_shift": weekly_shift,
    "wander_shift": wander_shift,
    "memory_leak": memory_leak,
    "stuck_sensor": stuck_sensor,
    "noise_change": noise_change,
    "count_burst": count_burst,
    "latency_increase": latency_increase,
    "irregular_drop": irregular_drop,
    "disk_cleanup_stops": disk_cleanup_stops,
    "temperature_crash": temperature_crash,
    "cpu_flatline": cpu_flatline,
    "t_noise_dips": t_noise_dips,
}
CONTROLS: dict[str, Family] = {
    "quiet_daily": quiet_daily,
    "quiet_weekly_job": quiet_weekly_job,
    "quiet_random_walk": quiet_random_walk,
    "quiet_latency": quiet_latency,
    "quiet_counts": quiet_counts,
    "quiet_irregular": quiet_irregular,
    "quiet_sawtooth": quiet_sawtooth,
    "quiet_gauge": quiet_gauge,
}


def windows_around(t: FloatArray, onsets: list[int]) -> tuple[tuple[float, float], ...]:
    """Windows of 10 % of the rows in all, centred on each onset (row numbers)."""
    if not onsets:
        return ()
    half = max(1, math.floor(0.1 * t.size / len(onsets)) // 2)
    return tuple((float(t[max(0, a - half)]), float(t[min(t.size - 1, a + half)])) for a in onsets)


def corpus(part: str = "dev") -> list[LabelledSeries]:
    """The series of ``part`` (``dev`` or ``holdout``), always the same."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}: one of {', '.join(PARTS)}")
    base, variants, control_variants = PARTS[part]
    found = []
    families = [(name, f, variants) for name, f in ANOMALOUS.items()]
    families += [(name, f, control_variants) for name, f in CONTROLS.items()]
    if part == "holdout":  # six controls in the held-out part
        families = families[: len(ANOMALOUS) + 6]
    elif part == "dev":  # twelve in the development part
        families = families[: len(ANOMALOUS)] + [
            (name, f, 2 if index < 4 else 1) for index, (name, f, _) in
            enumerate(families[len(ANOMALOUS) :])
        ]  # fmt: skip
    for number, (name, family, count) in enumerate(families):
        for variant in range(count):
            rng = np.random.default_rng([base, number, variant])
            rows = int(rng.integers(2500, 5000))
            t, x, onsets = family(rng, rows)
            found.append(
                LabelledSeries(
                    f"{name}/{name}_{variant + 1}.csv",
                    np.asarray(t, dtype=np.float64),
                    np.asarray(x, dtype=np.float64),
                    windows_around(t, onsets),
                )
            )
    return found
