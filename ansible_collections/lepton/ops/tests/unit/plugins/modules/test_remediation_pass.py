# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""lepton.ops.remediation_pass: a thin adapter over lepton_ops.remediate.run.remediate_once."""

from __future__ import annotations

from pathlib import Path

from lepton_ops.errors import OperationFailed
from lepton_ops.remediate.ladder import Action
from lepton_ops.remediate.policy import Decision, Plan
from lepton_ops.remediate.run import ActionResult, RemediationPass

from ansible_collections.lepton.ops.plugins.modules import remediation_pass
from ansible_collections.lepton.ops.tests.unit.plugins.modules.utils import run_module


def test_the_pass_gets_the_options_and_returns_its_decisions(monkeypatch, tmp_path):
    calls = []

    def fake(state_dir, inventory, config, **kwargs):
        calls.append((state_dir, inventory, config, kwargs))
        decision = Decision('node3', Action.RESTART, 'risk 0.91; attempt 1', 0.91, 1)
        done = RemediationPass(Plan([decision]), kwargs['dry_run'], True)
        if not kwargs['dry_run']:
            done.results = [ActionResult(decision, 7, 'verified', 'ok', 3.0)]
        return done

    monkeypatch.setattr(remediation_pass, 'remediate_once', fake)
    args = {'inventory': str(tmp_path / 'inv.yml'), 'state_dir': str(tmp_path),
            'hosts': ['node3'], 'threshold': 0.7, 'max_concurrent': 2, 'cooldown': 30,
            'max_attempts': 2}
    result = run_module(remediation_pass.main, args)
    assert not result.get('failed'), result
    state_dir, inventory, config, kwargs = calls[0]
    assert (state_dir, inventory) == (Path(tmp_path), tmp_path / 'inv.yml')
    assert (config.risk_threshold, config.max_concurrent, config.cooldown_s,
            config.max_attempts) == (0.7, 2, 30.0, 2)
    assert kwargs['only'] == ['node3'] and kwargs['trigger'] == 'playbook'
    assert kwargs['dry_run'] is False and callable(kwargs['refresh'])
    assert result['changed'] is True and result['actions'][0]['outcome'] == 'verified'
    assert result['decisions'][0]['action'] == 'restart' and result['model'] is True


def test_check_mode_is_a_dry_run(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(remediation_pass, 'remediate_once', lambda *a, **k: seen.append(
        k['dry_run']) or RemediationPass(Plan([]), k['dry_run'], False))
    result = run_module(remediation_pass.main, {'inventory': str(tmp_path / 'i.yml'),
                                                '_ansible_check_mode': True})
    assert seen == [True] and result['changed'] is False and result['actions'] == []


def test_guards_and_errors_are_one_line(monkeypatch, tmp_path):
    def locked(*args, **kwargs):
        raise OperationFailed('another remediation pass holds the lock')

    monkeypatch.setattr(remediation_pass, 'remediate_once', locked)
    result = run_module(remediation_pass.main, {'inventory': str(tmp_path / 'i.yml')})
    assert result['failed'] and result['msg'] == 'another remediation pass holds the lock'
    bad = run_module(remediation_pass.main, {'inventory': 'i.yml', 'max_attempts': 9})
    assert bad['failed'] and 'max attempts' in bad['msg']
