# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""lepton.ops.failure_predict: a thin adapter over lepton_ops.predict.current_risk."""

from __future__ import annotations

from pathlib import Path

from lepton_ops.detect.fleet import SeriesAlarm
from lepton_ops.errors import OperationFailed
from lepton_ops.predict.model import Contribution
from lepton_ops.predict.predictor import NodePrediction

from ansible_collections.lepton.ops.plugins.modules import failure_predict
from ansible_collections.lepton.ops.tests.unit.plugins.modules.utils import run_module


def prediction(node, probability, *, stale=False, failing=False):
    return NodePrediction(
        node=node, probability=probability, anomaly_score=0.5, horizon_s=60.0, threshold=0.6,
        at_risk=bool(probability is not None and probability >= 0.6), top_features=(
            Contribution('mem_tte_s', 40.0, 0.5),), sample_ts=1.0, data_age_s=2.0, stale=stale,
        failing_now=failing)


def test_hosts_are_judged_and_the_at_risk_fact_is_set(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(failure_predict, 'current_risk', lambda state_dir: seen.append(
        state_dir) or [prediction('node1', 0.1), prediction('node2', 0.55),
                       prediction('node3', 0.9), prediction('node4', 0.2, failing=True)])
    result = run_module(failure_predict.main, {'state_dir': str(tmp_path), 'threshold': 0.5,
                                               'hosts': ['node3', 'node2', 'node1', 'node4',
                                                         'node9']})
    assert not result.get('failed'), result
    assert seen == [Path(tmp_path)]
    assert result['at_risk_hosts'] == ['node2', 'node3', 'node4']
    assert result['ansible_facts'] == {'lepton_at_risk_hosts': ['node2', 'node3', 'node4']}
    by_node = dict((p['node'], p) for p in result['predictions'])
    assert by_node['node3']['top_features'][0]['feature'] == 'mem_tte_s'
    assert by_node['node9']['stale'] is True and by_node['node9']['at_risk'] is False
    assert result['changed'] is False and result['collected'] is False


def test_without_a_classifier_the_detector_decides_and_names_the_series(monkeypatch, tmp_path):
    alarm = SeriesAlarm('lepton_service_rss_bytes{service="lepton-worker"}', 0.93, 1.0, 4e8)
    alarming = NodePrediction(
        node='node2', probability=None, anomaly_score=0.93, horizon_s=120.0, threshold=0.8,
        at_risk=True, top_features=(), sample_ts=1.0, data_age_s=2.0, stale=False,
        failing_now=False, anomaly_series=(alarm,))
    quiet = NodePrediction(
        node='node1', probability=None, anomaly_score=0.0, horizon_s=120.0, threshold=0.8,
        at_risk=False, top_features=(), sample_ts=1.0, data_age_s=2.0, stale=False,
        failing_now=False)
    monkeypatch.setattr(failure_predict, 'current_risk', lambda state_dir: [alarming, quiet])
    result = run_module(failure_predict.main, {'state_dir': str(tmp_path), 'threshold': 0.5})
    assert result['at_risk_hosts'] == ['node2']
    by_node = dict((p['node'], p) for p in result['predictions'])
    assert by_node['node2']['anomaly_series'][0]['series'].startswith('lepton_service_rss')
    assert by_node['node2']['threshold'] == 0.8


def test_the_models_own_threshold_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setattr(failure_predict, 'current_risk',
                        lambda state_dir: [prediction('a', 0.55), prediction('b', 0.7)])
    result = run_module(failure_predict.main, {'state_dir': str(tmp_path)})
    assert result['at_risk_hosts'] == ['b']


def test_collect_first_and_errors_are_one_line(monkeypatch, tmp_path):
    collected = []
    monkeypatch.setattr(failure_predict, 'collect',
                        lambda inventory, state_dir: collected.append(inventory))
    monkeypatch.setattr(failure_predict, 'current_risk', lambda state_dir: [])
    result = run_module(failure_predict.main, {'state_dir': str(tmp_path), 'collect': True,
                                               'inventory': str(tmp_path / 'inv.yml')})
    assert collected == [tmp_path / 'inv.yml'] and result['changed'] is True
    missing = run_module(failure_predict.main, {'collect': True})
    assert missing['failed'] and 'inventory' in missing['msg']

    def no_model(state_dir):
        raise OperationFailed('no model yet: run lepton-ops model train')

    monkeypatch.setattr(failure_predict, 'current_risk', no_model)
    failed = run_module(failure_predict.main, {'state_dir': str(tmp_path)})
    assert failed['failed'] and failed['msg'] == 'no model yet: run lepton-ops model train'
    assert failed['error_kind'] == 'OperationFailed'
    bad = run_module(failure_predict.main, {'state_dir': str(tmp_path), 'threshold': 1.5})
    assert bad['failed'] and 'threshold must be' in bad['msg']
