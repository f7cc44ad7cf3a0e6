"""Anomaly scorer benchmark (``model score-csv``): speed, and detection on labelled series.

No network, no lab. Measures:

- ``score_rows_per_s``: :func:`score_series` on ``--rows`` rows (five-minute samples with a
  daily cycle and noise; best of ``--repeat``), ``score_s`` its time and ``score_cpu_s``
  its CPU time; ``python_loop_5m_cpu_s``, the CPU time of a fixed pure-Python loop, tells
  how fast (or how shared) the machine was (about 0.2 s on a quiet modern core);
- ``csv_rows_per_s``: the whole ``score_csv`` path (read, parse, score, write) on the same
  rows as a ``timestamp,value`` file with ISO timestamps, and ``csv_s``;
- detection on synthetic labelled series, ``--seeds`` of each of 14 families modelled on
  server metrics (spikes with benign daily jobs, a level shift in heavy-tailed noise, a
  jump in a wandering series, a dip at the daily peak, a slow drift, more noise, a count
  burst, a frozen exporter, a spike in irregular samples with gaps, a temperature that
  falls before a failure, latency that doubles, a CPU step, a holiday in seasonal traffic,
  a level shift in a seasonal series), at two strengths (``--strengths``):

  - ``recall_at_1pct_fpr``: the share of anomaly windows whose highest score beats the
    99th percentile of that series' normal rows (outside the windows, after the first
    15 %);
  - ``mean_rank``: the mean share of normal rows scoring below each window's highest score;
  - ``nab_score``: NAB's standard profile (windows of 10 % of the series around each
    label, early detections weigh more, each false positive row costs 0.11, a missed
    window 1; one threshold for all the series, the best of a grid), normalized so that
    0 is a detector that never fires and 100 a perfect one;
  - ``false_alarm_rate``: the share of normal rows scoring >= 0.5.

Progress goes to stderr; one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lepton_ops.predict.score_csv import score_csv
from lepton_ops.predict.series_anomaly import score_series

STEP = 300.0
DAY = int(86_400 / STEP)
T0 = 1_700_000_000.0
#: One labelled series: name, timestamps, values, the rows where anomalies start.
Series = tuple[str, np.ndarray, np.ndarray, list[int]]


def log(message: str) -> None:
    sys.stderr.write(f"[score-csv-bench] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- series


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    noise = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    level = 0.0
    for i in range(n):
        level = phi * level + noise[i]
        out[i] = level
    return out


def labelled_series(seed: int, strength: float, n: int = 4000) -> list[Series]:
    """14 series of ``n`` five-minute rows, each with one or two labelled anomalies."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(n) * STEP
    lo, hi = int(0.3 * n), int(0.9 * n)
    out: list[Series] = []

    def pick() -> int:
        return int(rng.integers(lo, hi))

    x = 10 + rng.normal(0, 1, n)
    x[(np.arange(n) % DAY) < 3] += 3  # a benign daily job
    starts = sorted(int(a) for a in rng.choice(np.arange(lo, hi), 2, replace=False))
    for a in starts:
        x[a] += rng.choice([-1, 1]) * 5.0 * strength
    out.append(("spikes", t, x, starts))

    x = 100 + 3 * rng.standard_t(3, n)
    a = pick()
    x[a:] += 6 * strength
    out.append(("heavy_tailed_shift", t, x, [a]))

    x = 50 + _ar1(rng, n, 0.98, 1.0)
    a = pick()
    x[a:] += 5 * strength
    out.append(("wandering_jump", t, x, [a]))

    x = 50 + 10 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 1, n)
    a = int(rng.choice(np.arange(5 * DAY, n - DAY, DAY))) + DAY // 4 - 12
    x[a : a + 24] -= 6 * strength
    out.append(("seasonal_dip", t, x, [a]))

    x = 20 + rng.normal(0, 1, n)
    a = pick()
    x += np.clip((np.arange(n) - a) / 300, 0, 1) * 3 * strength
    out.append(("slow_drift", t, x, [a]))

    x = 5 + rng.normal(0, 1, n)
    a = pick()
    x[a : a + 200] = 5 + rng.normal(0, 1 + 1.2 * strength, 200)
    out.append(("more_noise", t, x, [a]))

    x = rng.poisson(3, n).astype(float)
    a = pick()
    x[a : a + 10] = rng.poisson(3 + 5 * strength, 10)
    out.append(("count_burst", t, x, [a]))

    x = 40 + _ar1(rng, n, 0.9, 2.0)
    a = pick()
    x[a : a + 100] = x[a - 1]
    out.append(("frozen_exporter", t, x, [a]))

    irregular = T0 + np.cumsum(rng.exponential(STEP, n))
    x = 30 + 3 * np.sin(2 * np.pi * irregular / 20_000) + rng.normal(0, 0.5, n)
    a = pick()
    x[rng.random(n) < 0.05] = np.nan
    x[a] = 30 + 3 * np.sin(2 * np.pi * irregular[a] / 20_000) + 2.5 * strength
    out.append(("irregular_gaps", irregular, x, [a]))

    x = 80 + _ar1(rng, n, 0.995, 0.3) + 0.5 * np.sin(2 * np.pi * t / 86_400)
    a = pick()
    drop = np.clip((np.arange(n) - a) / 60, 0, 1) * 8 * strength
    drop[a + 150 :] = 0
    out.append(("temperature_failure", t, x - drop, [a]))

    x = np.exp(rng.normal(3, 0.4, n))
    x[rng.random(n) < 0.01] *= 4
    a = pick()
    x[a : a + 40] *= 1 + 0.6 * strength
    out.append(("latency_increase", t, x, [a]))

    x = np.clip(20 + _ar1(rng, n, 0.8, 3.0), 0, 100)
    a = pick()
    x[a:] += 12 * strength
    out.append(("cpu_step", t, x, [a]))

    x = 100 + 40 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 5, n)
    a = int(rng.integers(6, n // DAY - 2)) * DAY
    holiday = 40 * np.sin(2 * np.pi * t[a : a + DAY] / 86_400) * (1 - 0.5 * strength)
    x[a : a + DAY] = 100 + holiday + rng.normal(0, 5, DAY)
    out.append(("seasonal_holiday", t, x, [a + DAY // 4]))

    x = 200 + 30 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 3, n)
    a = pick()
    x[a:] += 15 * strength
    out.append(("seasonal_shift", t, x, [a]))
    return out


# --------------------------------------------------------------------------- scoring


def _windows(n: int, starts: list[int]) -> list[tuple[int, int]]:
    width = int(0.1 * n / len(starts))
    return [(max(0, a - width // 2), min(n - 1, a + width // 2)) for a in starts]


def _sigmoid(y: float) -> float:
    return float(2.0 / (1.0 + np.exp(5.0 * y)) - 1.0)


def _nab_raw(scores: np.ndarray, windows: list[tuple[int, int]], threshold: float) -> float:
    """NAB standard profile (A_TP 1, A_FP 0.11, A_FN 1) for one series."""
    probation = int(0.15 * scores.size)
    detected: set[int] = set()
    total = 0.0
    for row in np.flatnonzero(scores >= threshold).tolist():
        if row < probation:
            continue
        inside = [k for k, (a, b) in enumerate(windows) if a <= row <= b]
        if inside:
            k = inside[0]
            if k not in detected:
                a, b = windows[k]
                total += _sigmoid(-(b - row) / (b - a + 1))
                detected.add(k)
            continue
        before = [(a, b) for a, b in windows if b < row]
        if before:
            a, b = max(before, key=lambda window: window[1])
            total += 0.11 * _sigmoid((row - b) / (b - a + 1))
        else:
            total -= 0.11
    return total - (len(windows) - len(detected))


def evaluate(scored: list[tuple[str, np.ndarray, list[int]]]) -> dict[str, Any]:
    recalls, ranks, false_alarms = [], [], []
    families: dict[str, list[float]] = {}
    for name, scores, starts in scored:
        n = scores.size
        windows = _windows(n, starts)
        normal = np.ones(n, dtype=bool)
        normal[: int(0.15 * n)] = False
        for a, b in windows:
            normal[a : b + 1] = False
        threshold = np.quantile(scores[normal], 0.99)
        false_alarms.append(float(np.mean(scores[normal] >= 0.5)))
        for a in starts:
            hit = float(scores[a : a + int(0.05 * n / len(starts)) + 1].max())
            recalls.append(float(hit > threshold))
            rank = float(np.mean(scores[normal] < hit))
            ranks.append(rank)
            families.setdefault(name, []).append(rank)
    windows_total = sum(len(starts) for _, _, starts in scored)
    perfect = windows_total * _sigmoid(-1.0)
    best, best_threshold = -np.inf, 1.0
    for threshold in np.linspace(0.3, 1.0, 29):
        raw = sum(_nab_raw(s, _windows(s.size, st), threshold) for _, s, st in scored)
        if raw > best:
            best, best_threshold = raw, float(threshold)
    nab = 100.0 * (best + windows_total) / (perfect + windows_total)
    return {
        "recall_at_1pct_fpr": round(float(np.mean(recalls)), 4),
        "mean_rank": round(float(np.mean(ranks)), 5),
        "nab_score": round(float(nab), 1),
        "nab_threshold": round(best_threshold, 3),
        "false_alarm_rate": round(float(np.mean(false_alarms)), 5),
        "worst_family_rank": min(
            ((name, round(float(np.mean(v)), 4)) for name, v in families.items()),
            key=lambda item: item[1],
        ),
    }


# --------------------------------------------------------------------------- speed


def _best_of(repeat: int, run: Callable[[], object]) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return float(best)


def _machine_reference() -> float:
    """Seconds of CPU for a fixed pure-Python loop: how fast (or busy) this machine is."""
    start = time.process_time()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.process_time() - start


def speed(rows: int, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    t = T0 + np.arange(rows) * STEP
    x = 50 + 10 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 2, rows)
    x[rows // 2] += 40
    score_s = _best_of(repeat, lambda: score_series(t, x))
    cpu_start = time.process_time()
    score_series(t, x)
    score_cpu_s = time.process_time() - cpu_start
    with tempfile.TemporaryDirectory(prefix="score-csv-bench-") as directory:
        path = Path(directory) / "series.csv"
        with path.open("w", encoding="utf-8") as stream:
            stream.write("timestamp,value\n")
            for stamp, value in zip(t.tolist(), x.tolist(), strict=True):
                when = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
                stream.write(f"{when},{value:.4f}\n")
        csv_s = _best_of(repeat, lambda: score_csv(path, io.StringIO()))
    return {
        "rows": rows,
        "score_s": round(score_s, 3),
        "score_rows_per_s": round(rows / score_s),
        "score_cpu_s": round(score_cpu_s, 3),
        "csv_s": round(csv_s, 3),
        "csv_rows_per_s": round(rows / csv_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--strengths", default="0.6,1.0")
    args = parser.parse_args()

    log(f"speed: {args.rows} rows, best of {args.repeat}")
    result: dict[str, Any] = {"python_loop_5m_cpu_s": round(_machine_reference(), 3)}
    result.update(speed(args.rows, args.repeat))
    for strength in (float(text) for text in args.strengths.split(",")):
        log(f"detection: {args.seeds} seeds x 14 series, strength {strength}")
        scored = []
        for seed in range(args.seeds):
            for name, t, x, starts in labelled_series(seed, strength):
                scores = np.nan_to_num(score_series(t, x), nan=0.0)
                scored.append((name, scores, starts))
        result[f"detection_strength_{strength:g}"] = evaluate(scored)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
