# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for lepton.ops.wheelhouse; the lepton_ops library is mocked."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from unittest import mock

import pytest
import yaml

from ansible_collections.lepton.ops.plugins.module_utils import lepton as lepton_utils
from ansible_collections.lepton.ops.plugins.modules import wheelhouse as wheelhouse_module
from ansible_collections.lepton.ops.tests.unit.plugins.modules.utils import run_module

MISSING = 'Traceback: No module named lepton_ops'

# Shaped like the library's own errors (lepton_ops.errors), whether or not it is installed.
BadInput = type('BadInput', (lepton_utils.LeptonError,), {})
OperationFailed = type('OperationFailed', (lepton_utils.LeptonError,), {})


@dataclasses.dataclass(frozen=True)
class FakeWheelhouse:
    """Stands in for lepton_ops.provision.wheelhouse.Wheelhouse."""

    path: Path
    id: str
    requirements: Path
    archive: Path
    uv_binary: Path
    wheels: tuple
    built: bool

    def to_dict(self):
        return {
            'path': str(self.path),
            'id': self.id,
            'requirements': str(self.requirements),
            'archive': str(self.archive),
            'uv_binary': str(self.uv_binary),
            'wheels': list(self.wheels),
            'built': self.built,
        }


def make_wheelhouse(cache_dir, built=True):
    house = Path(cache_dir) / 'abc123'
    return FakeWheelhouse(
        path=house,
        id='abc123',
        requirements=house / 'requirements.txt',
        archive=Path(cache_dir) / 'abc123.tar',
        uv_binary=Path('/venv/bin/uv'),
        wheels=('flask-3.1.0-py3-none-any.whl', 'lepton_ops-0.1.0-py3-none-any.whl'),
        built=built,
    )


@pytest.fixture
def library():
    """lepton_ops present, with build_wheelhouse replaced by a mock."""
    with mock.patch.object(lepton_utils, 'LEPTON_OPS_IMPORT_ERROR', None), \
            mock.patch.object(wheelhouse_module, 'WHEELHOUSE_IMPORT_ERROR', None), \
            mock.patch.object(wheelhouse_module, 'build_wheelhouse', create=True) as build:
        yield build


def test_builds_and_reports_changed(library, tmp_path):
    library.return_value = make_wheelhouse(tmp_path, built=True)

    result = run_module(wheelhouse_module.main, {'cache_dir': str(tmp_path)})

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert result['wheelhouse'] == {
        'path': str(tmp_path / 'abc123'),
        'id': 'abc123',
        'requirements': str(tmp_path / 'abc123' / 'requirements.txt'),
        'archive': str(tmp_path / 'abc123.tar'),
        'uv_binary': '/venv/bin/uv',
        'wheels': ['flask-3.1.0-py3-none-any.whl', 'lepton_ops-0.1.0-py3-none-any.whl'],
    }
    library.assert_called_once_with(
        tmp_path, project_root=None, python_version=None, platform=None, refresh=False
    )


def test_reuse_from_cache_is_not_a_change(library, tmp_path):
    library.return_value = make_wheelhouse(tmp_path, built=False)

    result = run_module(wheelhouse_module.main, {'cache_dir': str(tmp_path)})

    assert result['changed'] is False
    assert result['wheelhouse']['id'] == 'abc123'
    assert 'built' not in result['wheelhouse']


def test_passes_every_option_through(library, tmp_path):
    library.return_value = make_wheelhouse(tmp_path)
    project = tmp_path / 'src'

    run_module(wheelhouse_module.main, {
        'cache_dir': str(tmp_path / 'cache'),
        'project_root': str(project),
        'python_version': '3.12',
        'platform': 'manylinux2014_x86_64',
        'refresh': True,
    })

    library.assert_called_once_with(
        tmp_path / 'cache',
        project_root=project,
        python_version='3.12',
        platform='manylinux2014_x86_64',
        refresh=True,
    )
    assert isinstance(library.call_args.args[0], Path)


def test_expands_user_in_paths(library, tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    library.return_value = make_wheelhouse(tmp_path)

    run_module(wheelhouse_module.main, {'cache_dir': '~/cache', 'project_root': '~/src'})

    args, kwargs = library.call_args
    assert args[0] == tmp_path / 'cache'
    assert kwargs['project_root'] == tmp_path / 'src'


def test_check_mode_builds_nothing(library, tmp_path):
    args = {'cache_dir': str(tmp_path), '_ansible_check_mode': True}
    result = run_module(wheelhouse_module.main, args)

    library.assert_not_called()
    assert not result.get('failed'), result
    assert result['changed'] is True
    assert 'wheelhouse' not in result
    assert 'Check mode' in result['msg']


@pytest.mark.parametrize('error_class', [BadInput, OperationFailed])
def test_library_error_fails_with_its_message(library, tmp_path, error_class):
    library.side_effect = error_class('downloading the node packages failed: no network')

    result = run_module(wheelhouse_module.main, {'cache_dir': str(tmp_path)})

    assert result['failed'] is True
    assert result['msg'] == 'downloading the node packages failed: no network'
    assert result['error_kind'] == error_class.__name__


def test_missing_library_fails_with_missing_required_lib(tmp_path):
    with mock.patch.object(wheelhouse_module, 'WHEELHOUSE_IMPORT_ERROR', MISSING), \
            mock.patch.object(wheelhouse_module, 'build_wheelhouse', create=True) as build:
        result = run_module(wheelhouse_module.main, {'cache_dir': str(tmp_path)})

    build.assert_not_called()
    assert result['failed'] is True
    assert 'Failed to import the required Python library (lepton-ops)' in result['msg']
    assert 'No module named lepton_ops' in result['exception']


def test_missing_library_also_fails_in_check_mode(tmp_path):
    args = {'cache_dir': str(tmp_path), '_ansible_check_mode': True}
    with mock.patch.object(lepton_utils, 'LEPTON_OPS_IMPORT_ERROR', MISSING):
        result = run_module(wheelhouse_module.main, args)

    assert result['failed'] is True
    assert 'lepton-ops' in result['msg']


def test_cache_dir_is_required(library):
    result = run_module(wheelhouse_module.main, {})

    library.assert_not_called()
    assert result['failed'] is True
    assert 'cache_dir' in result['msg']


def test_documentation_matches_argument_spec():
    documented = yaml.safe_load(wheelhouse_module.DOCUMENTATION)['options']
    spec = wheelhouse_module.argument_spec()

    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]['type'] == option['type'], name
        assert documented[name].get('required', False) == option.get('required', False), name
        assert documented[name].get('default') == option.get('default'), name


def test_return_documents_every_wheelhouse_key():
    returned = yaml.safe_load(wheelhouse_module.RETURN)['wheelhouse']['contains']

    assert tuple(returned) == wheelhouse_module.WHEELHOUSE_KEYS


def test_contract_with_the_installed_library():
    """Where lepton_ops is installed, the module's calls fit its real interface."""
    library_module = pytest.importorskip('lepton_ops.provision.wheelhouse')

    assert wheelhouse_module.WHEELHOUSE_IMPORT_ERROR is None
    assert lepton_utils.HAS_LEPTON_OPS

    signature = inspect.signature(library_module.build_wheelhouse)
    signature.bind(
        Path('/cache'), project_root=None, python_version=None, platform=None, refresh=False
    )

    fields = {field.name for field in dataclasses.fields(library_module.Wheelhouse)}
    assert set(wheelhouse_module.WHEELHOUSE_KEYS) | {'built'} <= fields

    from lepton_ops.errors import LeptonError
    assert lepton_utils.LeptonError is LeptonError
