# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for the shared lepton_ops glue of the lepton.ops modules."""

from __future__ import annotations

from unittest import mock

import pytest

from ansible_collections.lepton.ops.plugins.module_utils import lepton


class Failed(Exception):
    pass


def fail_json(**kwargs):
    raise Failed(kwargs)


@pytest.fixture
def module():
    fake = mock.Mock()
    fake.fail_json.side_effect = fail_json
    return fake


def test_require_passes_when_everything_imported(module):
    with mock.patch.object(lepton, 'LEPTON_OPS_IMPORT_ERROR', None):
        lepton.require_lepton_ops(module)
        lepton.require_lepton_ops(module, None)

    module.fail_json.assert_not_called()


@pytest.mark.parametrize(
    'base_error, own_error', [('base traceback', None), (None, 'own traceback')]
)
def test_require_fails_with_missing_required_lib(module, base_error, own_error):
    with mock.patch.object(lepton, 'LEPTON_OPS_IMPORT_ERROR', base_error), \
            pytest.raises(Failed) as failed:
        lepton.require_lepton_ops(module, own_error)

    result = failed.value.args[0]
    assert 'Failed to import the required Python library (lepton-ops)' in result['msg']
    assert 'python -m pip install lepton-ops' in result['msg']
    assert 'ansible_playbook_python' in result['msg']
    assert result['exception'] == (base_error or own_error)


def test_lepton_error_becomes_a_failure_with_its_kind(module):
    error_class = type('OperationFailed', (lepton.LeptonError,), {})

    with pytest.raises(Failed) as failed:
        lepton.fail_from_lepton_error(module, error_class('building failed: disk full'), extra=1)

    assert failed.value.args[0] == {
        'msg': 'building failed: disk full',
        'error_kind': 'OperationFailed',
        'extra': 1,
    }
