"""The windowed scoring rules on tiny series, against scores computed by hand, and
``lepton-ops model benchmark`` on a small corpus.

Every series below has 20 rows at t = 0..19: the probation is floor(0.15 * 20) = 3 rows,
and the window [10, 13] covers rows 10..13 (width 4). sigma(p) = 2 / (1 + e^(5p)) - 1:
sigma(-1) = 0.986614, sigma(-0.5) = 0.848284, sigma(-0.25) = 0.554600, and a row two
rows past the window is q = 2 / 3 widths past it: sigma(2/3) = -0.931110.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_ops.cli.app import main
from lepton_ops.detect.benchmark import run_benchmark
from lepton_ops.detect.corpus import LabelledSeries, load_corpus, write_corpus
from lepton_ops.detect.scoring import (
    LOW_FN,
    LOW_FP,
    STANDARD,
    best_threshold,
    label_rows,
    normalize,
    scaled_sigmoid,
    score_corpus,
    score_file,
)

T = np.arange(20.0)
WINDOW = [(10.0, 13.0)]
START, HALF, LATE, PAST2 = 0.986614298, 0.848283640, 0.554599722, -0.931109609


def fire(*rows: int) -> np.ndarray:
    scores = np.zeros(20)
    scores[list(rows)] = 1.0
    return scores


def raw(scores: np.ndarray, profile=STANDARD, windows=WINDOW) -> float:  # type: ignore[no-untyped-def]
    return score_file(label_rows(T, windows), scores, 0.5, profile).raw


def test_the_scaled_sigmoid() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(START)
    assert scaled_sigmoid(-0.5) == pytest.approx(HALF)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0


def test_the_earliest_detection_in_a_window_counts_and_later_ones_add_nothing() -> None:
    assert raw(fire(10)) == pytest.approx(START)
    assert raw(fire(12)) == pytest.approx(HALF)
    assert raw(fire(12, 13)) == pytest.approx(HALF)
    assert raw(fire(10, 11, 12, 13)) == pytest.approx(START)


def test_a_missed_window_costs_a_fn_and_the_profiles_weigh_it() -> None:
    assert raw(fire()) == -1.0
    assert raw(fire(), LOW_FN) == -2.0
    assert raw(fire(13), LOW_FN) == pytest.approx(scaled_sigmoid(-0.25))
    assert raw(fire(13)) == pytest.approx(LATE)


def test_false_positives_cost_per_detection_row() -> None:
    # Before the first window: A_FP each.
    assert raw(fire(5, 12)) == pytest.approx(HALF - 0.11)
    assert raw(fire(4, 5, 6, 12)) == pytest.approx(HALF - 3 * 0.11)
    assert raw(fire(5, 12), LOW_FP) == pytest.approx(HALF - 0.22)
    # Just after a window it costs less: two rows past a width-4 window.
    assert raw(fire(15, 12)) == pytest.approx(HALF + 0.11 * PAST2)
    # Two widths (of 3 rows) past it: sigma(2) = -0.999909, nearly the full cost.
    assert raw(fire(12, 19)) == pytest.approx(HALF - 0.11 * 0.999909, abs=1e-7)


def test_the_probation_is_not_scored() -> None:
    assert raw(fire(0, 1, 2, 12)) == pytest.approx(HALF)
    assert raw(fire(3, 12)) == pytest.approx(HALF - 0.11)
    # A window inside the probation is left out: no window, nothing to miss.
    early = label_rows(T, [(0.0, 2.0)])
    assert early.windows == 0
    assert score_file(early, fire(), 0.5, STANDARD).raw == 0.0


def test_the_normalised_score_is_0_for_never_and_100_for_perfect() -> None:
    rows = [label_rows(T, WINDOW), label_rows(T, [])]
    never = score_corpus(rows, [fire(), fire()], STANDARD)
    assert never.normalized == 0.0
    assert math.isinf(never.threshold)
    perfect = score_corpus(rows, [fire(10), fire()], STANDARD)
    assert perfect.normalized == pytest.approx(100.0)
    # Half-way through the window, and one false positive in the quiet file:
    # 100 * (0.848284 - 0.11 + 1) / (0.986614 + 1).
    mixed = score_corpus(rows, [fire(12), fire(8)], STANDARD)
    assert mixed.normalized == pytest.approx(100 * (HALF - 0.11 + 1) / (START + 1))
    assert normalize(-2.0, 1, LOW_FN) == 0.0


def test_one_threshold_for_the_corpus_maximises_the_total() -> None:
    a = np.zeros(20)
    a[12], a[5] = 0.9, 0.8  # the window at 0.9, a false positive at 0.8
    b = np.zeros(20)
    b[7] = 0.95  # a false positive above everything
    rows = [label_rows(T, WINDOW), label_rows(T, [])]
    threshold, total = best_threshold(rows, [a, b], STANDARD)
    # 0.95: -0.11 - 1 (worse than never); 0.9: -0.11 + HALF; 0.8: one more FP.
    assert threshold == 0.9
    assert total == pytest.approx(HALF - 0.11)
    chosen = score_corpus(rows, [a, b], STANDARD)
    assert chosen.raw == pytest.approx(total)
    assert [f.false_positives for f in chosen.files] == [0, 1]
    # Expensive false positives: firing is not worth it in the low-FP profile? It still is.
    assert best_threshold(rows, [a, b], LOW_FP)[0] == 0.9


def test_the_threshold_sweep_agrees_with_scoring_every_candidate() -> None:
    rng = np.random.default_rng(3)
    rows = [label_rows(T, WINDOW), label_rows(T, [(4.0, 6.0), (15.0, 16.0)]), label_rows(T, [])]
    scores = [rng.random(20) for _ in rows]
    for profile in (STANDARD, LOW_FP, LOW_FN):
        threshold, total = best_threshold(rows, scores, profile)
        brute = max(
            sum(score_file(r, s, c, profile).raw for r, s in zip(rows, scores, strict=True))
            for c in [math.inf, *np.concatenate(scores).tolist()]
        )
        assert total == pytest.approx(brute)
        at = sum(
            score_file(r, s, threshold, profile).raw for r, s in zip(rows, scores, strict=True)
        )
        assert at == pytest.approx(total)


def small_corpus(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    t = 1_700_000_000.0 + 300.0 * np.arange(600, dtype=np.float64)
    spiky: np.ndarray[Any, np.dtype[np.float64]] = 10 + rng.normal(0, 1, 600)
    spiky[400] = 60.0
    quiet: np.ndarray[Any, np.dtype[np.float64]] = 10 + rng.normal(0, 1, 600)
    return write_corpus(
        directory,
        [
            LabelledSeries("a/spike.csv", t, spiky, ((t[390], t[420]),)),
            LabelledSeries("quiet.csv", t, quiet, ()),
        ],
    )


def test_the_benchmark_scores_the_baselines_on_a_corpus(tmp_path: Path) -> None:
    small_corpus(tmp_path)
    corpus = load_corpus(tmp_path)
    assert [item.name for item in corpus] == ["a/spike.csv", "quiet.csv"]
    result = run_benchmark(corpus).to_dict()
    scores = {d["detector"]: d["profiles"]["standard"]["score"] for d in result["detectors"]}
    assert scores["never"] == 0.0
    # The spike is found early in its window by the Gaussian tail, without a false positive.
    assert scores["windowed_gaussian"] > 90.0
    assert result["windows"] == 1 and result["files_without_anomaly"] == 1


def test_model_benchmark_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = small_corpus(tmp_path / "corpus")
    moved = tmp_path / "elsewhere.json"
    labels.rename(moved)
    with pytest.raises(SystemExit) as info:
        main(["model", "benchmark", str(tmp_path / "corpus"), "--labels", str(moved), "--json"])
    assert info.value.code in (0, None)
    data = json.loads(capsys.readouterr().out)
    assert {d["detector"] for d in data["detectors"]} >= {"never", "random", "windowed_gaussian"}
    assert [row["file"] for row in data["per_file"]["files"]] == ["a/spike.csv", "quiet.csv"]
    with pytest.raises(SystemExit) as info:
        main(["model", "benchmark", str(tmp_path / "corpus")])
    assert info.value.code == 2
    assert "no labels at" in capsys.readouterr().err
