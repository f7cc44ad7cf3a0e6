"""Prometheus text exposition -> the pulled metrics' values.

Both readers of the services' ``/metrics`` use this: ``telemetry pull``
(:mod:`~lepton_ops.telemetry.pull`) on the text it scraped, and
:mod:`~lepton_ops.telemetry.prometheus_source` on the samples a Prometheus server kept.
Which samples make which metric is the catalogue's (:data:`PULLED_METRICS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from lepton_ops.telemetry.catalogue import (
    PULLED_METRICS,
    SAMPLE_NAMES,
    UP_METRIC,
    MetricType,
    PulledMetric,
)

#: One exposition sample: name, labels, value.
RawSample = tuple[str, Mapping[str, str], float]


def reduce_samples(raw: Iterable[RawSample]) -> dict[str, float]:
    """The pulled metrics of one service from its raw samples (name -> value).

    Non-finite values are skipped. A metric none of whose samples is there is left out,
    except a counter of a service that is up: a counter without series (no request yet,
    no shard) is 0, and the service said so by answering.
    """
    by_sample: dict[str, list[PulledMetric]] = {}
    for entry in PULLED_METRICS:
        by_sample.setdefault(entry.sample, []).append(entry)
    sums: dict[str, float] = {}
    for name, labels, value in raw:
        if not math.isfinite(value):
            continue
        for entry in by_sample.get(name, ()):
            if entry.matches(labels):
                sums[entry.spec.name] = sums.get(entry.spec.name, 0.0) + value
    if sums.get(UP_METRIC) == 1.0:
        for entry in PULLED_METRICS:
            if entry.spec.type is MetricType.COUNTER:
                sums.setdefault(entry.spec.name, 0.0)
    return {
        entry.spec.name: sums[entry.spec.name] * entry.scale
        for entry in PULLED_METRICS
        if entry.spec.name in sums
    }


def parse_exposition(text: str) -> list[RawSample]:
    """The samples of Prometheus text that a pulled metric reads (ValueError if malformed).

    Only the lines of :data:`SAMPLE_NAMES` are handed to the parser: a service's text is
    mostly histogram buckets, and skipping them is most of the parse time.
    """
    wanted = [
        line
        for line in text.splitlines()
        if line[:1] not in ("#", "") and _sample_name(line) in SAMPLE_NAMES
    ]
    if not wanted:
        _check_exposition(text)
        return []
    return [
        (sample.name, sample.labels, float(sample.value))
        for family in text_string_to_metric_families("\n".join(wanted) + "\n")
        for sample in family.samples
    ]


def _sample_name(line: str) -> str:
    end = len(line)
    for stop in ("{", " "):
        index = line.find(stop)
        if 0 <= index < end:
            end = index
    return line[:end]


def _check_exposition(text: str) -> None:
    """Text with none of our samples must still be Prometheus text (ValueError if not)."""
    for _ in text_string_to_metric_families(text):
        pass
