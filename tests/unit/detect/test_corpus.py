"""The development corpus: the synthetic families (deterministic, enough series and
controls) and the export of the lab's telemetry store with its chaos faults as windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from predict_support import plan_campaign, record

from lepton_ops.cli.app import main
from lepton_ops.detect.corpus import load_corpus, write_corpus
from lepton_ops.detect.synthetic import corpus
from lepton_ops.detect.telemetry_corpus import export_corpus
from lepton_ops.telemetry import HistoryStore, history_path


def test_the_synthetic_parts_are_deterministic_and_large_enough(tmp_path: Path) -> None:
    dev = corpus("dev")
    assert len(dev) >= 40
    assert sum(1 for item in dev if not item.windows) >= 10
    again = corpus("dev")
    for one, two in zip(dev, again, strict=True):
        np.testing.assert_array_equal(one.values, two.values)
        assert one.windows == two.windows
    holdout = corpus("holdout")
    assert len(holdout) >= 20
    assert holdout[0].name == dev[0].name
    assert holdout[0].values.size != dev[0].values.size  # other seeds
    # Written and read back the same (windows to the second).
    write_corpus(tmp_path, dev[:3])
    read = {item.name: item for item in load_corpus(tmp_path)}
    assert sorted(read) == sorted(item.name for item in dev[:3])
    first = read[dev[0].name]
    np.testing.assert_allclose(first.values, dev[0].values, rtol=1e-5)
    np.testing.assert_allclose(first.timestamps, dev[0].timestamps)
    np.testing.assert_allclose(np.array(first.windows), np.array(dev[0].windows))


def test_the_store_exports_per_series_with_fault_windows(tmp_path: Path) -> None:
    campaign = plan_campaign(["memleak", "diskfill", "kill"], seed=3)
    with HistoryStore(history_path(tmp_path)) as store:
        record(store, campaign)
        faults = store.faults()
        series = export_corpus(store)
    names = {item.name for item in series}
    leak = next(f for f in faults if f.fault == "memleak")
    memory = [item for item in series if item.name.startswith(f"{leak.node}/lepton_service_rss")]
    assert memory and any(item.windows for item in memory)
    window = next(item.windows for item in memory if item.windows)[0]
    assert window[0] == leak.started_at
    # The disk of a node without a diskfill is a control; CPU of a node without a hog too.
    fill = next(f for f in faults if f.fault == "diskfill")
    quiet = [n for n in ("node1", "node2", "node3", "node4", "node5") if n != fill.node]
    disks = [i for i in series if i.name.startswith(f"{quiet[0]}/lepton_node_disk_used_pct")]
    assert disks and not any(item.windows for item in disks)
    assert all("/" in name and name.endswith(".csv") for name in names)


def test_model_export_corpus_then_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    campaign = plan_campaign(["memleak", "hang"], seed=1)
    with HistoryStore(history_path(state)) as store:
        record(store, campaign, start=campaign.faults[0].start - 150)
    target = tmp_path / "corpus"
    with pytest.raises(SystemExit) as info:
        main(["model", "export-corpus", str(target), "--since", "100000d",
              "--state-dir", str(state), "--json"])  # fmt: skip
    assert info.value.code in (0, None)
    summary = json.loads(capsys.readouterr().out)
    assert summary["windows"] >= 2 and summary["without_anomaly"] > 0
    labels = json.loads((target / "labels.json").read_text(encoding="utf-8"))
    assert len(labels) == summary["series"]
    loaded = load_corpus(target)
    assert sum(len(item.windows) for item in loaded) == summary["windows"]
