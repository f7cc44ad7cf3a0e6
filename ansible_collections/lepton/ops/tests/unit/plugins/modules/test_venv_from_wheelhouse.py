# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for lepton.ops.venv_from_wheelhouse.

Most tests replace AnsibleModule.run_command with a fake node (``FakeNode``) that answers the
import probe and plays uv; the last ones run the module for real with the uv executable of this
environment, on a wheelhouse made of one tiny wheel built here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from unittest import mock

import pytest
import yaml

from ansible.module_utils import basic

from ansible_collections.lepton.ops.plugins.modules import venv_from_wheelhouse as venv_module
from ansible_collections.lepton.ops.tests.unit.plugins.modules.utils import run_module

HOUSE_ID = '4c1f0e9a7d2b6e31'
OLD_ID = '0b5d2e7f9a1c3e48'
OFFLINE = {'UV_NO_CONFIG': '1', 'UV_OFFLINE': '1', 'UV_PYTHON_DOWNLOADS': 'never'}


def make_executable(path, content='#!/bin/sh\nexit 0\n'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(0o755)
    return path


def make_wheelhouse(directory, house_id=HOUSE_ID, pins=('mini==1.0',), uv=True):
    """An unpacked wheelhouse as the role leaves it on a node (the wheels themselves omitted)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / 'requirements.txt').write_text(''.join(pin + '\n' for pin in pins))
    (directory / 'wheelhouse.json').write_text(json.dumps({'id': house_id, 'wheels': []}))
    if uv:
        make_executable(directory / 'uv')
    return directory


def make_venv(directory, marker=None):
    """What ``uv venv`` leaves behind, as far as the module looks."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / 'pyvenv.cfg').write_text('home = /usr/bin\n')
    make_executable(directory / 'bin' / 'python')
    if marker is not None:
        (directory / '.lepton-wheelhouse').write_text(marker + '\n')
    return directory


class FakeNode:
    """Stands in for AnsibleModule.run_command: the venv's Python and uv on a node."""

    def __init__(self, installed=()):
        self.calls = []
        self.installed = set(installed)  # the modules the venv's Python can find
        self.python_runs = True
        self.failures = {}  # uv subcommand ('venv', 'pip') -> (rc, stdout, stderr)

    def run_command(self, module, args, **kwargs):  # pylint: disable=unused-argument
        args = [str(arg) for arg in args]
        self.calls.append((args, kwargs))
        if args[1:3] == ['-I', '-c']:  # the import probe, run by the venv's Python
            if not self.python_runs:
                return 127, '', 'error while loading shared libraries'
            names = args[4:]
            return 0, json.dumps([name for name in names if name not in self.installed]), ''
        subcommand = args[1]
        if subcommand in self.failures:
            return self.failures[subcommand]
        if subcommand == 'venv':
            make_venv(Path(args[-1]))
            self.installed.clear()
            self.python_runs = True
        elif subcommand == 'pip':
            self.installed.update(['mini', 'numpy', 'sklearn'])
        return 0, '', ''

    def uv_calls(self):
        return [args for args, dummy in self.calls if args[1:3] != ['-I', '-c']]

    def uv_environments(self):
        return [kwargs.get('environ_update') for args, kwargs in self.calls
                if args[1:3] != ['-I', '-c']]


@pytest.fixture
def node():
    fake = FakeNode()
    with mock.patch.object(basic.AnsibleModule, 'run_command', autospec=True,
                           side_effect=fake.run_command):
        yield fake


@pytest.fixture
def layout(tmp_path):
    """A node's install prefix: one unpacked wheelhouse, no virtualenv yet."""
    house = make_wheelhouse(tmp_path / 'wheelhouse' / HOUSE_ID)
    return {
        'root': tmp_path,
        'venv': tmp_path / 'venv',
        'house': house,
        'args': {'path': str(tmp_path / 'venv'), 'wheelhouse': str(house)},
    }


def sync_command(layout, *extra):
    house = layout['house']
    return [str(house / 'uv'), 'pip', 'sync', '--quiet', '--python',
            str(layout['venv'] / 'bin' / 'python'), '--no-index', '--find-links', str(house),
            *extra, str(house / 'requirements.txt')]


def marker(venv):
    return (venv / '.lepton-wheelhouse').read_text()


def test_missing_venv_is_created_and_installed(node, layout):
    python = make_executable(layout['root'] / 'usr' / 'python3')
    args = dict(layout['args'], python=str(python), cache_dir=str(layout['root'] / 'cache'),
                reinstall=['lepton-ops'], imports=['mini'])
    result = run_module(venv_module.main, args)

    assert not result.get('failed'), result
    venv = layout['venv']
    assert result == {
        'changed': True,
        'venv': str(venv),
        'python': str(venv / 'bin' / 'python'),
        'wheelhouse_id': HOUSE_ID,
        'created': True,
        'installed': True,
        'missing_imports': ['mini'],
        'pruned': [],
        'unpacked': False,
    }
    assert node.uv_calls() == [
        [str(layout['house'] / 'uv'), 'venv', '--quiet', '--clear', '--python', args['python'],
         str(venv)],
        sync_command(layout, '--reinstall-package', 'lepton-ops'),
    ]
    offline_with_cache = dict(OFFLINE, UV_CACHE_DIR=str(layout['root'] / 'cache'))
    assert node.uv_environments() == [offline_with_cache, offline_with_cache]
    assert marker(venv) == HOUSE_ID + '\n'
    assert stat.S_IMODE((venv / '.lepton-wheelhouse').stat().st_mode) == 0o644
    assert [p.name for p in venv.iterdir() if p.name.startswith('.lepton-wheelhouse.')] == []


def test_python_defaults_to_the_interpreter_running_the_module(node, layout):
    result = run_module(venv_module.main, layout['args'])

    assert result['created'] is True
    venv_call = node.uv_calls()[0]
    assert venv_call[5] == os.path.abspath(sys.executable)
    assert node.uv_environments()[0] == OFFLINE  # no UV_CACHE_DIR unless asked


def test_current_venv_is_left_alone(node, layout):
    make_venv(layout['venv'], marker=HOUSE_ID)
    node.installed.update(['numpy', 'sklearn'])

    result = run_module(venv_module.main, dict(layout['args'], imports=['numpy', 'sklearn']))

    assert not result.get('failed'), result
    assert result['changed'] is False
    assert result['created'] is False
    assert result['installed'] is False
    assert result['missing_imports'] == []
    assert result['wheelhouse_id'] == HOUSE_ID
    assert node.uv_calls() == []
    # One call only: the probe, which looks the modules up without importing them.
    [(probe, dummy)] = node.calls
    assert probe[:4] == [str(layout['venv'] / 'bin' / 'python'), '-I', '-c', venv_module.PROBE]
    assert probe[4:] == ['numpy', 'sklearn']
    assert 'find_spec' in venv_module.PROBE
    assert 'import_module' not in venv_module.PROBE


def test_other_wheelhouse_id_installs_with_reinstall_packages(node, layout):
    make_venv(layout['venv'], marker=OLD_ID)
    node.installed.add('mini')

    args = dict(layout['args'], reinstall=['lepton-ops', 'mini'], imports=['mini'])
    result = run_module(venv_module.main, args)

    assert result['changed'] is True
    assert result['created'] is False
    assert result['installed'] is True
    assert result['missing_imports'] == []
    assert node.uv_calls() == [
        sync_command(layout, '--reinstall-package', 'lepton-ops', '--reinstall-package', 'mini'),
    ]
    assert marker(layout['venv']) == HOUSE_ID + '\n'


def test_venv_without_marker_is_installed(node, layout):
    make_venv(layout['venv'])

    result = run_module(venv_module.main, layout['args'])

    assert result['installed'] is True
    assert node.uv_calls() == [sync_command(layout)]
    assert marker(layout['venv']) == HOUSE_ID + '\n'


def test_missing_import_reinstalls_the_whole_stack(node, layout):
    make_venv(layout['venv'], marker=HOUSE_ID)
    node.installed.add('numpy')

    args = dict(layout['args'], reinstall=['lepton-ops'], imports=['numpy', 'sklearn'])
    result = run_module(venv_module.main, args)

    assert result['changed'] is True
    assert result['created'] is False
    assert result['installed'] is True
    assert result['missing_imports'] == ['sklearn']
    # uv pip sync alone would keep a package whose files are gone: reinstall everything.
    assert node.uv_calls() == [sync_command(layout, '--reinstall')]
    assert marker(layout['venv']) == HOUSE_ID + '\n'


@pytest.mark.parametrize('breakage', ['python_fails', 'python_missing', 'not_a_venv'])
def test_broken_venv_is_recreated(node, layout, breakage):
    venv = make_venv(layout['venv'], marker=HOUSE_ID)
    if breakage == 'python_fails':
        node.python_runs = False
    elif breakage == 'python_missing':
        (venv / 'bin' / 'python').unlink()
    else:
        (venv / 'pyvenv.cfg').unlink()

    result = run_module(venv_module.main, dict(layout['args'], imports=['mini']))

    assert not result.get('failed'), result
    assert result['created'] is True
    assert result['installed'] is True
    assert result['missing_imports'] == ['mini']
    assert [call[1] for call in node.uv_calls()] == ['venv', 'pip']
    assert '--clear' in node.uv_calls()[0]
    assert '--force' not in node.uv_calls()[0]


def test_check_mode_on_a_fresh_node_changes_nothing(node, layout):
    old = make_wheelhouse(layout['root'] / 'wheelhouse' / OLD_ID)
    args = dict(layout['args'], imports=['mini'], prune_wheelhouses=True,
                _ansible_check_mode=True)

    result = run_module(venv_module.main, args)

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert result['created'] is True
    assert result['installed'] is True
    assert result['missing_imports'] == ['mini']
    assert result['pruned'] == [str(old)]
    assert node.uv_calls() == []
    assert not layout['venv'].exists()
    assert old.is_dir()


def test_check_mode_reports_an_install_without_doing_it(node, layout):
    make_venv(layout['venv'], marker=OLD_ID)

    result = run_module(venv_module.main, dict(layout['args'], _ansible_check_mode=True))

    assert result['changed'] is True
    assert result['created'] is False
    assert result['installed'] is True
    assert node.uv_calls() == []
    assert marker(layout['venv']) == OLD_ID + '\n'


def test_check_mode_on_a_current_venv_reports_no_change(node, layout):
    make_venv(layout['venv'], marker=HOUSE_ID)
    node.installed.add('mini')

    args = dict(layout['args'], imports=['mini'], _ansible_check_mode=True)
    result = run_module(venv_module.main, args)

    assert result['changed'] is False
    assert result['installed'] is False


def test_check_mode_tolerates_a_wheelhouse_not_unpacked_yet(node, layout):
    make_venv(layout['venv'], marker=HOUSE_ID)
    args = dict(layout['args'], wheelhouse=str(layout['root'] / 'wheelhouse' / 'next'),
                _ansible_check_mode=True)

    with mock.patch.object(basic.AnsibleModule, 'warn', autospec=True) as warn:
        result = run_module(venv_module.main, args)

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert result['installed'] is True
    assert result['wheelhouse_id'] is None
    [(dummy, warning)] = [call.args for call in warn.call_args_list]
    assert 'does not exist yet' in warning
    assert node.uv_calls() == []


def test_prune_removes_only_other_wheelhouse_directories(node, layout):
    root = layout['root'] / 'wheelhouse'
    make_venv(layout['venv'], marker=HOUSE_ID)
    old = make_wheelhouse(root / OLD_ID)
    partial = root / 'deadbeefdeadbeef'  # an unpack that never finished: no wheelhouse.json
    partial.mkdir()
    (partial / 'numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl').write_bytes(b'')
    renamed = make_wheelhouse(root / 'previous')
    other = root / 'notes'  # not a wheelhouse
    other.mkdir()
    (root / f'{OLD_ID}.tar').write_bytes(b'archive')
    (root / 'README').write_text('files stay\n')
    (root / 'current').symlink_to(layout['house'])

    result = run_module(venv_module.main, dict(layout['args'], prune_wheelhouses=True))

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert result['installed'] is False
    assert result['pruned'] == sorted([str(old), str(partial), str(renamed)])
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [HOUSE_ID, 'notes', f'{OLD_ID}.tar', 'README', 'current'])
    assert (layout['house'] / 'requirements.txt').is_file()


def test_prune_keeps_directories_holding_the_venv_or_uv(node, tmp_path):
    # Everything side by side: the wheelhouse, the venv, the uv cache and uv itself.
    house = make_wheelhouse(tmp_path / HOUSE_ID, uv=False)
    venv = make_venv(tmp_path / 'abcdef', marker=HOUSE_ID)
    cache = tmp_path / 'cafe'
    cache.mkdir()
    uv = make_executable(tmp_path / 'bead' / 'uv')
    old = make_wheelhouse(tmp_path / OLD_ID)

    args = {'path': str(venv), 'wheelhouse': str(house), 'uv': str(uv), 'cache_dir': str(cache),
            'prune_wheelhouses': True}
    result = run_module(venv_module.main, args)

    assert result['pruned'] == [str(old)]
    assert venv.is_dir() and cache.is_dir() and uv.is_file()


def test_prune_reached_through_a_symlink_keeps_the_real_wheelhouse(node, layout):
    make_venv(layout['venv'], marker=HOUSE_ID)
    current = layout['root'] / 'wheelhouse' / 'current'
    current.symlink_to(layout['house'])

    args = dict(layout['args'], wheelhouse=str(current), prune_wheelhouses=True)
    result = run_module(venv_module.main, args)

    assert not result.get('failed'), result
    assert result['pruned'] == []
    assert layout['house'].is_dir()


def test_nothing_to_prune_is_no_change(node, layout):
    make_venv(layout['venv'], marker=HOUSE_ID)

    result = run_module(venv_module.main, dict(layout['args'], prune_wheelhouses=True))

    assert result['changed'] is False
    assert result['pruned'] == []


def test_uv_failure_fails_with_its_stderr(node, layout):
    make_venv(layout['venv'], marker=OLD_ID)
    stderr = '\n'.join(['noise %d' % n for n in range(40)] + [
        'error: No solution found when resolving dependencies',
        '  cause: nope was not found in the provided package locations',
    ])
    node.failures['pip'] = (1, '', stderr)

    result = run_module(venv_module.main, layout['args'])

    assert result['failed'] is True
    assert 'uv failed to install the wheelhouse' in result['msg']
    assert 'exit code 1' in result['msg']
    assert 'nope was not found in the provided package locations' in result['msg']
    assert 'noise 0\n' not in result['msg']  # only the tail
    assert result['rc'] == 1
    assert result['stderr'] == stderr
    assert result['cmd'] == sync_command(layout)
    # The old marker is gone, so the next run installs again.
    assert not (layout['venv'] / '.lepton-wheelhouse').exists()


def test_uv_venv_failure_fails_with_its_stderr(node, layout):
    node.failures['venv'] = (2, '', 'error: Failed to create virtual environment\n'
                                    '  cause: uv will not clear a directory that is not a '
                                    'virtual environment')

    result = run_module(venv_module.main, layout['args'])

    assert result['failed'] is True
    assert 'create the virtualenv' in result['msg']
    assert 'will not clear a directory' in result['msg']
    assert [call[1] for call in node.uv_calls()] == ['venv']


@pytest.mark.parametrize('missing', ['requirements.txt', 'wheelhouse.json'])
def test_incomplete_wheelhouse_fails(node, layout, missing):
    (layout['house'] / missing).unlink()

    result = run_module(venv_module.main, layout['args'])

    assert result['failed'] is True
    assert missing in result['msg']
    assert node.calls == []


@pytest.mark.parametrize('content', ['not json', '{"wheels": []}', '["x"]', '{"id": ""}'])
def test_bad_wheelhouse_json_fails(node, layout, content):
    (layout['house'] / 'wheelhouse.json').write_text(content)

    result = run_module(venv_module.main, layout['args'])

    assert result['failed'] is True
    assert 'wheelhouse.json' in result['msg']


def test_missing_wheelhouse_fails_outside_check_mode(node, layout):
    result = run_module(venv_module.main, dict(layout['args'],
                                               wheelhouse=str(layout['root'] / 'nowhere')))

    assert result['failed'] is True
    assert 'requirements.txt' in result['msg']


@pytest.mark.parametrize('check_mode', [False, True])
def test_uv_not_executable_fails(node, layout, check_mode):
    (layout['house'] / 'uv').chmod(0o644)

    args = dict(layout['args'], _ansible_check_mode=check_mode)
    result = run_module(venv_module.main, args)

    assert result['failed'] is True
    assert 'uv executable' in result['msg']
    assert node.calls == []


def test_uv_missing_fails(node, layout):
    result = run_module(venv_module.main, dict(layout['args'], uv=str(layout['root'] / 'no-uv')))

    assert result['failed'] is True
    assert 'no-uv' in result['msg']
    assert 'missing or not executable' in result['msg']


def test_missing_python_fails_when_the_venv_must_be_created(node, layout):
    result = run_module(venv_module.main, dict(layout['args'],
                                               python=str(layout['root'] / 'python9')))

    assert result['failed'] is True
    assert 'python9' in result['msg']
    assert node.uv_calls() == []


def test_required_options(node):
    result = run_module(venv_module.main, {})

    assert result['failed'] is True
    assert 'path' in result['msg'] and 'wheelhouse' in result['msg']


def test_documentation_matches_argument_spec():
    documented = yaml.safe_load(venv_module.DOCUMENTATION)['options']
    spec = venv_module.argument_spec()

    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]['type'] == option['type'], name
        assert documented[name].get('required', False) == option.get('required', False), name
        assert documented[name].get('default') == option.get('default'), name
        assert documented[name].get('elements') == option.get('elements'), name


def test_return_documents_every_result_key(node, layout):
    returned = yaml.safe_load(venv_module.RETURN)
    result = run_module(venv_module.main, layout['args'])

    assert set(result) - {'changed'} <= set(returned)


# --- end to end, with the real uv --------------------------------------------------------------


def find_uv():
    try:
        from uv import find_uv_bin
    except ImportError:
        find_uv_bin = None
    if find_uv_bin is not None:
        try:
            return find_uv_bin()
        except Exception:  # pylint: disable=broad-exception-caught
            pass
    return shutil.which('uv')


UV = find_uv()
needs_uv = pytest.mark.skipif(UV is None, reason='no uv executable (the uv package or uv on PATH)')


def build_wheel(directory, name='mini', version='1.0', body='VALUE = 1\n'):
    """A minimal pure-Python wheel, as a build backend would write it."""
    dist_info = f'{name}-{version}.dist-info'
    files = {
        f'{name}/__init__.py': body.encode(),
        f'{dist_info}/METADATA': (
            f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n').encode(),
        f'{dist_info}/WHEEL': (
            b'Wheel-Version: 1.0\nGenerator: lepton-ops-tests\nRoot-Is-Purelib: true\n'
            b'Tag: py3-none-any\n'),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
        record.append(f'{path},sha256={digest},{len(data)}')
    record.append(f'{dist_info}/RECORD,,')
    files[f'{dist_info}/RECORD'] = ('\n'.join(record) + '\n').encode()
    wheel = directory / f'{name}-{version}-py3-none-any.whl'
    with zipfile.ZipFile(wheel, 'w', zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def real_wheelhouse(directory, house_id, body='VALUE = 1\n'):
    directory.mkdir(parents=True)
    wheel = build_wheel(directory, body=body)
    (directory / 'requirements.txt').write_text('mini==1.0\n')
    (directory / 'wheelhouse.json').write_text(json.dumps({'id': house_id,
                                                           'wheels': [wheel.name]}))
    try:
        os.link(UV, directory / 'uv')
    except OSError:
        shutil.copy2(UV, directory / 'uv')
    return directory


def venv_says(venv, code):
    done = subprocess.run([str(venv / 'bin' / 'python'), '-I', '-c', code],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@needs_uv
def test_end_to_end_with_the_real_uv(tmp_path):
    house = real_wheelhouse(tmp_path / 'wheelhouse' / HOUSE_ID, HOUSE_ID)
    venv = tmp_path / 'venv'
    args = {'path': str(venv), 'wheelhouse': str(house), 'cache_dir': str(tmp_path / 'cache'),
            'imports': ['mini'], 'reinstall': ['mini'], 'prune_wheelhouses': True}

    check = run_module(venv_module.main, dict(args, _ansible_check_mode=True))
    assert not check.get('failed'), check
    assert check['changed'] is True and check['created'] is True
    assert not venv.exists()

    first = run_module(venv_module.main, args)
    assert not first.get('failed'), first
    assert first['changed'] is True
    assert first['created'] is True and first['installed'] is True
    assert first['missing_imports'] == ['mini']
    assert venv_says(venv, 'import mini; print(mini.VALUE)') == '1'

    second = run_module(venv_module.main, args)
    assert not second.get('failed'), second
    assert second['changed'] is False
    assert second['created'] is False and second['installed'] is False

    # Files of an installed package disappear: the probe notices, the stack is reinstalled.
    shutil.rmtree(venv_says(venv, 'import mini, os; print(os.path.dirname(mini.__file__))'))
    repaired = run_module(venv_module.main, args)
    assert not repaired.get('failed'), repaired
    assert repaired['installed'] is True and repaired['missing_imports'] == ['mini']
    assert venv_says(venv, 'import mini; print(mini.VALUE)') == '1'

    # A new wheelhouse with the same version of mini, rebuilt: reinstalled, the old one pruned.
    newer = real_wheelhouse(tmp_path / 'wheelhouse' / OLD_ID, OLD_ID, body='VALUE = 2\n')
    upgraded = run_module(venv_module.main, dict(args, wheelhouse=str(newer)))
    assert not upgraded.get('failed'), upgraded
    assert upgraded['created'] is False and upgraded['installed'] is True
    assert upgraded['pruned'] == [str(house)]
    assert not house.exists()
    assert venv_says(venv, 'import mini; print(mini.VALUE)') == '2'
    assert (venv / '.lepton-wheelhouse').read_text() == OLD_ID + '\n'


@needs_uv
def test_end_to_end_uv_failure_reports_uv_stderr(tmp_path):
    house = real_wheelhouse(tmp_path / 'wheelhouse' / HOUSE_ID, HOUSE_ID)
    (house / 'requirements.txt').write_text('mini==1.0\nnot-in-the-wheelhouse==2.0\n')

    result = run_module(venv_module.main, {'path': str(tmp_path / 'venv'),
                                           'wheelhouse': str(house),
                                           'cache_dir': str(tmp_path / 'cache')})

    assert result['failed'] is True
    assert 'not-in-the-wheelhouse' in result['msg']
    assert not (tmp_path / 'venv' / '.lepton-wheelhouse').exists()


def pack(source, archive, extra=None):
    """A wheelhouse archive as the controller ships it; ``extra`` adds one raw member."""
    import io
    import tarfile

    with tarfile.open(archive, 'w') as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)
        if extra is not None:
            info = tarfile.TarInfo(extra)
            info.size = 1
            tar.addfile(info, io.BytesIO(b'x'))
    return archive


@pytest.fixture
def shipped(tmp_path):
    """A node that received the archive but has not unpacked it yet."""
    source = make_wheelhouse(tmp_path / 'source')
    root = tmp_path / 'node' / 'wheelhouse'
    root.mkdir(parents=True)
    archive = pack(source, root / f'{HOUSE_ID}.tar')
    house = root / HOUSE_ID
    return {
        'archive': archive,
        'house': house,
        'venv': tmp_path / 'node' / 'venv',
        'args': {'path': str(tmp_path / 'node' / 'venv'), 'wheelhouse': str(house),
                 'archive': str(archive)},
    }


def test_archive_is_unpacked_then_removed(node, shipped):
    result = run_module(venv_module.main, shipped['args'])
    assert not result.get('failed'), result
    assert result['unpacked'] is True and result['installed'] is True
    assert (shipped['house'] / 'wheelhouse.json').is_file()
    assert (shipped['house'] / 'uv').stat().st_mode & stat.S_IXUSR
    assert not shipped['archive'].exists()
    assert marker(shipped['venv']) == HOUSE_ID + '\n'
    again = run_module(venv_module.main, shipped['args'])
    assert again['changed'] is False and again['unpacked'] is False


def test_archive_in_check_mode_is_left_alone(node, shipped):
    result = run_module(venv_module.main, dict(shipped['args'], _ansible_check_mode=True))
    assert not result.get('failed'), result
    assert result['changed'] is True and result['unpacked'] is True
    assert shipped['archive'].is_file()
    assert not shipped['house'].exists()


@pytest.mark.parametrize('member', ['../escape', '/etc/evil'])
def test_unsafe_archive_member_is_refused(node, shipped, tmp_path, member):
    source = make_wheelhouse(tmp_path / 'evil-source')
    pack(source, shipped['archive'], extra=member)
    result = run_module(venv_module.main, shipped['args'])
    assert result['failed'] is True
    assert 'unsafe member' in result['msg']
    assert not shipped['house'].exists()
    assert not (tmp_path / 'node' / 'escape').exists()
    assert not list(shipped['archive'].parent.glob('.unpacking-*'))


def test_missing_archive_and_wheelhouse_fails(node, shipped):
    shipped['archive'].unlink()
    result = run_module(venv_module.main, shipped['args'])
    assert result['failed'] is True
    assert 'is not unpacked and its archive' in result['msg']
