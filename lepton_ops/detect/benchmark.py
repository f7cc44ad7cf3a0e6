"""Scoring detectors on a labelled corpus: ``lepton-ops model benchmark DIR``.

Every detector scores every file of the corpus (:mod:`~lepton_ops.detect.corpus`); each
profile of :mod:`~lepton_ops.detect.scoring` then picks the detector's one threshold for
the whole corpus and gives its normalised score. The first detector is the one the
per-file table is about; the others (the baselines) are scored in the same run so that
every figure can be read against them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton_ops.detect import baselines
from lepton_ops.detect.corpus import LabelledSeries
from lepton_ops.detect.scoring import (
    PROFILES,
    STANDARD,
    CorpusScore,
    FloatArray,
    LabelledRows,
    label_rows,
    score_corpus,
)

Detector = Callable[[str, FloatArray, FloatArray], FloatArray]


def _streaming_detector(name: str, timestamps: FloatArray, values: FloatArray) -> FloatArray:
    from lepton_ops.detect.detector import detect

    return detect(timestamps, values)


#: The detectors of a benchmark run: the project's detector first, then the baselines.
DETECTORS: dict[str, Detector] = {
    "detector": _streaming_detector,
    "previous": baselines.previous,
    "windowed_gaussian": baselines.windowed_gaussian,
    "random": baselines.random,
    "never": baselines.never,
}


@dataclass(frozen=True)
class DetectorResult:
    name: str
    seconds: float
    scores: tuple[CorpusScore, ...]  # one per profile

    def by_profile(self, profile: str) -> CorpusScore:
        return next(score for score in self.scores if score.profile.name == profile)

    def quiet_files_max_alarm_share(self, corpus: Sequence[LabelledSeries]) -> float | None:
        """Of the files without a window: the largest share of rows at or above the
        standard profile's threshold (None if every file has a window)."""
        standard = self.by_profile(STANDARD.name)
        shares = [
            f.alarms / max(f.rows, 1)
            for item, f in zip(corpus, standard.files, strict=True)
            if not item.windows
        ]
        return max(shares) if shares else None

    def to_dict(self, corpus: Sequence[LabelledSeries]) -> dict[str, Any]:
        return {
            "detector": self.name,
            "seconds": round(self.seconds, 3),
            "profiles": {
                s.profile.name: {
                    "score": None if s.normalized is None else round(s.normalized, 2),
                    "threshold": None if not np.isfinite(s.threshold) else s.threshold,
                    "raw": round(s.raw, 4),
                    "detected": sum(f.detected for f in s.files),
                    "missed": sum(f.missed for f in s.files),
                    "false_positives": sum(f.false_positives for f in s.files),
                }
                for s in self.scores
            },
            "quiet_files_max_alarm_share": _round(self.quiet_files_max_alarm_share(corpus)),
        }


@dataclass(frozen=True)
class BenchmarkResult:
    corpus: tuple[LabelledSeries, ...]
    results: tuple[DetectorResult, ...]

    @property
    def windows(self) -> int:
        return sum(len(item.windows) for item in self.corpus)

    def file_rows(self) -> list[dict[str, Any]]:
        """The first detector's per-file table, at its standard-profile threshold."""
        standard = self.results[0].by_profile(STANDARD.name)
        return [
            {
                "file": item.name,
                "rows": f.rows,
                "windows": f.detected + f.missed,
                "detected": f.detected,
                "missed": f.missed,
                "false_positives": f.false_positives,
                "alarm_rows": f.alarms,
                "raw": round(f.raw, 4),
            }
            for item, f in zip(self.corpus, standard.files, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.corpus),
            "files_without_anomaly": sum(1 for item in self.corpus if not item.windows),
            "windows": self.windows,
            "rows": int(sum(item.values.size for item in self.corpus)),
            "detectors": [r.to_dict(self.corpus) for r in self.results],
            "per_file": {"detector": self.results[0].name, "files": self.file_rows()},
        }


def run_benchmark(
    corpus: Sequence[LabelledSeries], detectors: dict[str, Detector] | None = None
) -> BenchmarkResult:
    """Score every detector of ``detectors`` (default :data:`DETECTORS`) on ``corpus``."""
    chosen = DETECTORS if detectors is None else detectors
    labelled: list[LabelledRows] = [label_rows(item.timestamps, item.windows) for item in corpus]
    results = []
    for name, detector in chosen.items():
        started = time.perf_counter()
        scores = [
            np.asarray(detector(item.name, item.timestamps, item.values), dtype=np.float64)
            for item in corpus
        ]
        seconds = time.perf_counter() - started
        results.append(
            DetectorResult(
                name, seconds, tuple(score_corpus(labelled, scores, p) for p in PROFILES)
            )
        )
    return BenchmarkResult(tuple(corpus), tuple(results))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
