"""The model: training on a simulated campaign (classifier, threshold from out-of-fold
predictions, explanations), anomaly-only training without failures, saving and loading
with the SHA-256 check (a modified byte is refused), and predictions for the fleet now."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from predict_support import NODES, T0, plan_campaign, record

from lepton_ops.errors import OperationFailed
from lepton_ops.predict.anomaly import AnomalyDetector, z_to_score
from lepton_ops.predict.dataset import Dataset, build_dataset
from lepton_ops.predict.features import FEATURE_NAMES, FEATURES
from lepton_ops.predict.model import (
    MODE_ANOMALY,
    MODE_CLASSIFIER,
    Predictor,
    TrainOptions,
    folds_usable,
    learnable_events,
    time_blocks,
    train,
)
from lepton_ops.predict.model_store import (
    CURRENT,
    load_current,
    models_dir,
    save_predictor,
    saved_models,
    sha256_of,
)
from lepton_ops.predict.predictor import current_risk, predict_fleet
from lepton_ops.telemetry import HistoryStore, history_path

KINDS = ["memleak", "diskfill", "kill", "memleak", "diskfill", "hang", "memleak", "diskfill"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dir whose store holds a simulated campaign."""
    directory = tmp_path_factory.mktemp("state")
    with HistoryStore(history_path(directory)) as store:
        record(store, plan_campaign(KINDS, seed=11), seed=11)
    return directory


@pytest.fixture(scope="module")
def dataset(state: Path) -> Iterator[Dataset]:
    with HistoryStore(history_path(state)) as store:
        yield build_dataset(store, since=None, until=None, horizon_s=60.0, window_s=120.0)


@pytest.fixture(scope="module")
def predictor(dataset: Dataset) -> Predictor:
    return train(dataset, TrainOptions())


def test_a_campaign_trains_a_calibrated_classifier(dataset: Dataset, predictor: Predictor) -> None:
    assert predictor.mode == MODE_CLASSIFIER
    assert 0.0 < predictor.threshold < 1.0
    training = predictor.info["training"]
    assert training["failures_by_kind"]["memleak"] == 3
    assert training["learnable_failures"] >= 6
    validation = predictor.info["validation"]
    assert validation["method"].startswith("out-of-fold")
    assert validation["false_alarms_per_node_day"] <= 1.0
    assert validation["by_fault"]["memleak"]["recall"] >= 0.9
    probability = predictor.probability(dataset.X)
    assert probability is not None and ((probability >= 0) & (probability <= 1)).all()
    usable = dataset.trainable
    ahead = probability[usable & (dataset.y == 1)]
    quiet = probability[usable & (dataset.y == 0) & ~dataset.in_fault]
    assert np.median(ahead) > 0.5 > np.quantile(quiet, 0.99)


def test_top_features_name_the_leak(dataset: Dataset, predictor: Predictor) -> None:
    leak = next(e for e in dataset.events if e.kind == "memleak")
    row = (dataset.node_names == leak.node) & (dataset.ts < leak.failed_at - 20)
    row &= dataset.ts >= leak.failed_at - 40
    explained = predictor.explain(dataset.X[row][-1:])[0]
    assert len(explained) == 3
    assert explained[0].contribution > 0.05
    assert explained[0].feature.startswith(("mem_", "exhaustion_", "rss_"))
    assert [c.contribution for c in explained] == sorted(
        (c.contribution for c in explained), reverse=True
    )


def test_time_blocks_each_hold_failures(dataset: Dataset) -> None:
    options = TrainOptions(folds=4)
    learnable = learnable_events(dataset, list(dataset.events))
    blocks = time_blocks(dataset.ts, learnable, options)
    assert sorted(set(blocks.tolist())) == [0, 1, 2, 3]
    # contiguous in time: a later sample never has an earlier block
    order = np.argsort(dataset.ts, kind="stable")
    assert (np.diff(blocks[order]) >= 0).all()
    positives = dataset.trainable & (dataset.y == 1)
    assert all(positives[blocks == block].any() for block in range(4))


def test_folds_must_each_train_on_both_classes() -> None:
    assert folds_usable(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    assert not folds_usable(np.array([0, 1, 0, 1]), np.array([0, 0, 0, 0]))  # one block
    # the fold that holds out block 1 would train on negatives only
    assert not folds_usable(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]))


def test_without_failures_only_the_anomaly_detector_is_trained(tmp_path: Path) -> None:
    with HistoryStore(history_path(tmp_path)) as store:
        record(store, plan_campaign(["cpuhog"], seed=2), seed=2)
        quiet = build_dataset(store, since=None, until=None, horizon_s=60.0, window_s=120.0)
    model = train(quiet, TrainOptions())
    assert model.mode == MODE_ANOMALY
    assert "trained the anomaly detector only" in model.info["notes"][0]
    assert model.probability(quiet.X) is None
    np.testing.assert_array_equal(model.risk(quiet.X), model.anomaly_score(quiet.X))
    assert model.threshold == 0.5
    assert (model.anomaly_score(quiet.X) < 0.5).mean() > 0.98
    # saved and loaded like any other model
    saved = save_predictor(tmp_path, model)
    loaded = load_current(tmp_path).predictor
    assert loaded.mode == MODE_ANOMALY and saved.predictor is model
    np.testing.assert_allclose(loaded.risk(quiet.X), model.risk(quiet.X))


def test_the_anomaly_score_by_hand() -> None:
    healthy = np.zeros((200, len(FEATURES)))
    detector = AnomalyDetector.fit(healthy)
    assert detector.center.tolist() == [0.0] * len(FEATURES)
    assert detector.scale.tolist() == [spec.scale for spec in FEATURES]  # floors: nothing moved
    row = np.zeros((1, len(FEATURES)))
    index = FEATURE_NAMES.index("mem_used_pct_max")  # direction +1, scale 2
    row[0, index] = 12.0  # z = 6
    assert detector.score(row)[0] == pytest.approx(z_to_score(6.0)) == pytest.approx(1 - np.exp(-1))
    row[0, index] = -12.0  # memory dropping is not a risk
    assert detector.score(row)[0] == 0.0
    tte = FEATURE_NAMES.index("mem_tte_s")  # direction -1
    row[0, tte] = -3000.0
    assert detector.z(row)[0, tte] == pytest.approx(10.0)
    assert detector.z(np.full((1, len(FEATURES)), np.nan)).max() == 0.0


# --------------------------------------------------------------------------- saved models


def test_a_saved_model_loads_with_its_metadata(
    tmp_path: Path, dataset: Dataset, predictor: Predictor
) -> None:
    saved = save_predictor(tmp_path, predictor)
    directory = models_dir(tmp_path)
    assert saved.path.parent == directory and saved.path.suffix == ".skops"
    assert saved.sha256 == sha256_of(saved.path.read_bytes())
    assert saved.path.with_name(saved.path.name + ".sha256").read_text() == (
        f"{saved.sha256}  {saved.path.name}\n"
    )
    current = json.loads((directory / CURRENT).read_text())
    assert (current["model"], current["sha256"]) == (saved.path.name, saved.sha256)
    loaded = load_current(tmp_path)
    model = loaded.predictor
    assert (model.mode, model.horizon_s, model.window_s) == (MODE_CLASSIFIER, 60.0, 120.0)
    assert model.features == FEATURE_NAMES
    assert model.threshold == predictor.threshold
    for key in ("sklearn", "numpy", "skops", "python", "lepton_ops"):
        assert key in model.info["versions"]
    assert model.info["training"]["since"] == predictor.info["training"]["since"]
    np.testing.assert_allclose(model.probability(dataset.X), predictor.probability(dataset.X))  # type: ignore[arg-type]


def test_a_modified_byte_is_refused(tmp_path: Path, predictor: Predictor) -> None:
    saved = save_predictor(tmp_path, predictor)
    data = bytearray(saved.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    saved.path.write_bytes(bytes(data))
    with pytest.raises(OperationFailed) as caught:
        load_current(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"model file {saved.path} does not match its recorded SHA-256" in message
    assert "retrain with 'lepton-ops model train'" in message


def test_no_model_yet_says_to_train_one(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match=r"no failure model yet .* 'lepton-ops model train'"):
        load_current(tmp_path)


def test_old_models_are_kept_and_current_is_the_latest(
    tmp_path: Path, predictor: Predictor
) -> None:
    first = save_predictor(tmp_path, predictor)
    second = save_predictor(tmp_path, predictor)
    assert first.path != second.path and first.path.exists()
    listed = saved_models(tmp_path)
    assert [m["model"] for m in listed] == [first.path.name, second.path.name]
    assert [m["current"] for m in listed] == [False, True]
    assert load_current(tmp_path).path == second.path


# --------------------------------------------------------------------------- predictions now


def test_predict_fleet_reports_every_node(
    state: Path, dataset: Dataset, predictor: Predictor
) -> None:
    leak = next(e for e in dataset.events if e.kind == "memleak")
    now = leak.failed_at - 25.0  # a leak is under way on one node
    with HistoryStore(history_path(state)) as store:
        found = predict_fleet(store, predictor, now)
    assert [p.node for p in found] == list(NODES)
    by_node = {p.node: p for p in found}
    leaking = by_node[leak.node]
    assert (
        leaking.at_risk
        and leaking.probability is not None
        and leaking.probability >= predictor.threshold
    )
    assert not leaking.stale and 0 <= leaking.data_age_s < 10  # type: ignore[operator]
    assert leaking.horizon_s == 60.0 and len(leaking.top_features) == 3
    quiet = [p for p in found if p.node != leak.node]
    assert sum(p.at_risk for p in quiet) <= 1
    data = leaking.to_dict()
    assert set(data) >= {
        "node",
        "probability",
        "anomaly_score",
        "horizon_s",
        "top_features",
        "data_age_s",
        "at_risk",
        "stale",
    }


def test_stale_telemetry_is_flagged_not_predicted(
    state: Path, dataset: Dataset, predictor: Predictor
) -> None:
    later = float(dataset.ts.max()) + 3600.0
    with HistoryStore(history_path(state)) as store:
        found = predict_fleet(store, predictor, later)
    assert all(p.stale and p.probability is None and not p.at_risk for p in found)
    assert all(p.data_age_s is not None and p.data_age_s >= 3600.0 for p in found)


def test_current_risk_uses_the_current_model(
    tmp_path: Path, state: Path, predictor: Predictor
) -> None:
    shutil.copytree(state / "telemetry", tmp_path / "telemetry")
    save_predictor(tmp_path, predictor)
    risks = current_risk(tmp_path, now=T0 + 600)
    assert [r.node for r in risks] == list(NODES)
