"""Streaming anomaly detection for metric series, and how it is measured.

- :mod:`~lepton_ops.detect.scoring` - the field's windowed scoring rules (probation,
  early-detection reward, false-positive cost, three profiles, one corpus threshold);
- :mod:`~lepton_ops.detect.corpus` - a labelled corpus: CSVs and a JSON of anomaly windows;
- :mod:`~lepton_ops.detect.baselines` - never-firing, random, windowed Gaussian detectors;
- :mod:`~lepton_ops.detect.benchmark` - every detector over a corpus, scored;
- :mod:`~lepton_ops.detect.synthetic` - the deterministic synthetic development corpus;
- :mod:`~lepton_ops.detect.telemetry_corpus` - the lab's telemetry and chaos faults as a corpus;
- :mod:`~lepton_ops.detect.score_csv` - ``lepton-ops model score-csv``: CSV files scored;
- :mod:`~lepton_ops.detect.previous_scorer` - the scorer before the detector, kept as a
  benchmark baseline.
"""
