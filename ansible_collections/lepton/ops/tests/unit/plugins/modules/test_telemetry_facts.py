# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for lepton.ops.telemetry_facts.

Most tests point the module at a fake node (a /proc and a cgroup tree in a temporary directory,
see fake_node.py); the network ones use 127.0.0.1 only: a listening socket, a closed port, a
listener whose connects time out, and a tiny HTTP service.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from unittest import mock

import pytest
import yaml

from ansible.module_utils import basic

from ansible_collections.lepton.ops.plugins.module_utils import node_facts
from ansible_collections.lepton.ops.plugins.module_utils import proc_stats
from ansible_collections.lepton.ops.plugins.modules import telemetry_facts as telemetry_module
from ansible_collections.lepton.ops.tests.unit.plugins.module_utils.fake_node import (
    PROC_STAT,
    PROC_STAT_LATER,
    FakeNode,
    black_hole,
    supervisor_state,
)
from ansible_collections.lepton.ops.tests.unit.plugins.modules.utils import run_module

LOCALHOST = '127.0.0.1'
LINUX = sys.platform.startswith('linux') and os.path.isfile('/proc/stat')

# The fact's structure, as the store that flattens it expects (schema 1).
SCHEMA = {
    'schema': None, 'timestamp': None, 'hostname': None, 'uptime_s': None,
    'cpu': {'count', 'util_pct', 'sample_s'},
    'load': {'1m', '5m', '15m'},
    'memory': {'total_bytes', 'available_bytes', 'used_pct'},
    'swap': {'total_bytes', 'free_bytes', 'used_pct'},
    'disks': {'path', 'exists', 'used_pct', 'free_bytes', 'inodes_used_pct'},
    'processes': {'count', 'open_fds', 'max_fds'},
    'latency': {'name', 'address', 'port', 'role', 'attempts', 'lost', 'latency_ms', 'reachable'},
    'services': {'name', 'url', 'healthy', 'status_code', 'latency_ms', 'pid', 'running',
                 'rss_bytes', 'memory_limit_bytes', 'restarts'},
    'errors': None,
}


def assert_schema(facts):
    assert set(facts) == set(SCHEMA)
    assert facts['schema'] == 1
    assert isinstance(facts['timestamp'], float)
    assert isinstance(facts['errors'], list)
    assert all(isinstance(error, str) for error in facts['errors'])
    for key, keys in SCHEMA.items():
        if keys is None:
            continue
        if isinstance(facts[key], list):
            for entry in facts[key]:
                assert set(entry) == keys, key
        else:
            assert set(facts[key]) == keys, key
    json.dumps(facts)  # plain JSON


def facts_of(result):
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is False
    assert set(result['ansible_facts']) == {'lepton_telemetry'}
    facts = result['ansible_facts']['lepton_telemetry']
    assert_schema(facts)
    return facts


def errors_about(facts, text):
    return [error for error in facts['errors'] if text in error]


@pytest.fixture
def node(tmp_path, monkeypatch):
    """A fake node with readable basics; the module reads it instead of this machine."""
    fake = FakeNode(tmp_path / 'node').basics()
    monkeypatch.setattr(node_facts, 'PROC', str(fake.proc))
    monkeypatch.setattr(node_facts, 'CGROUP_ROOT', str(fake.cgroup))
    return fake


@pytest.fixture
def cpu_samples(monkeypatch):
    """Two readings of /proc/stat 40 % busy apart, whatever the real sample's length."""
    readings = iter([proc_stats.parse_cpu_times(PROC_STAT),
                     proc_stats.parse_cpu_times(PROC_STAT_LATER)])
    monkeypatch.setattr(proc_stats, 'read_cpu_times', lambda proc: next(readings))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        status = 200 if self.path == '/healthz' else 404
        self.send_response(status)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


@pytest.fixture
def health_url():
    server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield 'http://%s:%d/healthz' % (LOCALHOST, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port():
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def listening_port():
    with socket.socket() as server:
        server.bind((LOCALHOST, 0))
        server.listen(16)
        yield server.getsockname()[1]


# Documentation

def test_documentation_matches_the_argument_spec():
    documented = yaml.safe_load(telemetry_module.DOCUMENTATION)['options']
    spec = telemetry_module.argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]['type'] == option['type'], name
        assert documented[name].get('default') == option.get('default'), name
        if 'options' in option:
            assert set(documented[name]['suboptions']) == set(option['options']), name
    yaml.safe_load(telemetry_module.EXAMPLES)
    returned = yaml.safe_load(telemetry_module.RETURN)
    fact = returned['ansible_facts']['contains']['lepton_telemetry']['contains']
    assert set(fact) == set(SCHEMA)
    for key, keys in SCHEMA.items():
        if keys is not None:
            assert set(fact[key]['contains']) == keys, key


# The node itself

def test_facts_of_a_healthy_node(node, cpu_samples):
    facts = facts_of(run_module(telemetry_module.main, {}))
    assert facts['errors'] == []
    assert facts['cpu']['util_pct'] == 40.0
    assert facts['cpu']['count'] == os.cpu_count()
    assert facts['cpu']['sample_s'] >= 0.2
    assert facts['uptime_s'] == 86400.52
    assert facts['memory'] == {'total_bytes': 8000000 * 1024, 'available_bytes': 6000000 * 1024,
                               'used_pct': 25.0}
    assert facts['swap'] == {'total_bytes': 2000000 * 1024, 'free_bytes': 1500000 * 1024,
                             'used_pct': 25.0}
    assert facts['processes'] == {'count': 1, 'open_fds': 2304, 'max_fds': 9223372036854775807}
    assert set(facts['load']) == {'1m', '5m', '15m'}
    assert facts['hostname'] == socket.gethostname()
    assert facts['latency'] == [] and facts['services'] == []
    assert abs(facts['timestamp'] - time.time()) < 60


def test_disks_put_root_first_and_report_missing_paths(node, tmp_path):
    present = tmp_path / 'opt-lepton'
    present.mkdir()
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'paths': [str(present), str(tmp_path / 'missing') + '/', '/', str(present)]}))
    paths = [disk['path'] for disk in facts['disks']]
    assert paths == ['/', str(present), str(tmp_path / 'missing')]
    root, there, missing = facts['disks']
    assert root['exists'] and there['exists']
    assert 0.0 <= there['used_pct'] <= 100.0 and there['free_bytes'] >= 0
    assert missing == {'path': str(tmp_path / 'missing'), 'exists': False, 'used_pct': None,
                       'free_bytes': None, 'inodes_used_pct': None}
    assert facts['errors'] == []  # a path that is not there yet is a fact, not an error


def test_paths_on_one_file_system_are_read_once_and_report_the_same(node, tmp_path):
    """A data dir on the root file system reports exactly what / reports: the controller
    tells it is not a disk of its own by that equality."""
    first, second = tmp_path / 'data', tmp_path / 'etc'
    first.mkdir()
    second.mkdir()
    real = proc_stats.disk_usage
    with mock.patch.object(proc_stats, 'disk_usage', side_effect=real) as usage:
        facts = facts_of(run_module(telemetry_module.main, {
            'sample_interval': 0, 'paths': [str(first), str(second)]}))
    devices = {os.stat(path).st_dev for path in ('/', str(first), str(second))}
    assert usage.call_count == len(devices)
    data, etc = facts['disks'][1:]
    numbers = ('used_pct', 'free_bytes', 'inodes_used_pct')
    assert [data[key] for key in numbers] == [etc[key] for key in numbers]


def test_default_paths(node):
    facts = facts_of(run_module(telemetry_module.main, {'sample_interval': 0}))
    assert [disk['path'] for disk in facts['disks']] == [
        '/', '/opt/lepton', '/etc/lepton', '/var/lib/lepton']


def test_sample_interval_zero_skips_the_cpu_sample(node):
    started = time.monotonic()
    facts = facts_of(run_module(telemetry_module.main, {'sample_interval': 0}))
    assert time.monotonic() - started < 2.0
    assert facts['cpu']['util_pct'] is None
    assert facts['cpu']['sample_s'] == 0.0
    assert facts['errors'] == []


def test_a_half_broken_node_still_returns_facts(tmp_path, monkeypatch):
    """No /proc at all, statvfs failing: every key is there, with errors saying why."""
    monkeypatch.setattr(node_facts, 'PROC', str(tmp_path / 'no-proc'))
    monkeypatch.setattr(node_facts, 'CGROUP_ROOT', str(tmp_path / 'no-cgroup'))
    denied = PermissionError(13, 'Permission denied')
    with mock.patch.object(proc_stats.os, 'statvfs', side_effect=denied), \
            mock.patch.object(node_facts.os, 'getloadavg', side_effect=OSError('no load')):
        facts = facts_of(run_module(telemetry_module.main, {}))
    assert facts['cpu']['util_pct'] is None
    assert facts['uptime_s'] is None
    assert facts['memory'] == {'total_bytes': None, 'available_bytes': None, 'used_pct': None}
    assert facts['swap'] == {'total_bytes': None, 'free_bytes': None, 'used_pct': None}
    assert facts['processes'] == {'count': None, 'open_fds': None, 'max_fds': None}
    assert facts['load'] == {'1m': None, '5m': None, '15m': None}
    assert facts['disks'][0] == {'path': '/', 'exists': True, 'used_pct': None,
                                 'free_bytes': None, 'inodes_used_pct': None}
    for area in ('cpu: cannot read', 'memory: cannot read', 'uptime: cannot read',
                 'processes: cannot list', 'processes: cannot read', 'load: ',
                 'disk /: cannot read its usage: Permission denied'):
        assert errors_about(facts, area), area


def test_meminfo_without_the_usual_lines(node):
    node.write('meminfo', 'MemTotal: 1000 kB\n')
    facts = facts_of(run_module(telemetry_module.main, {'sample_interval': 0}))
    assert facts['memory']['total_bytes'] == 1000 * 1024
    assert facts['memory']['used_pct'] is None
    assert errors_about(facts, 'memory: ') and errors_about(facts, 'has no MemAvailable')
    assert errors_about(facts, 'swap: ') and errors_about(facts, 'has no SwapTotal or SwapFree')


def test_an_unexpected_error_becomes_an_error_line(node, monkeypatch):
    def explode(proc):
        raise RuntimeError('kernel says no')

    monkeypatch.setattr(proc_stats, 'read_meminfo', explode)
    facts = facts_of(run_module(telemetry_module.main, {'sample_interval': 0}))
    assert facts['errors'] == ['memory: unexpected error: kernel says no']
    assert facts['uptime_s'] == 86400.52


# Latency

def test_latency_to_a_listening_and_a_closed_port(node, listening_port, closed_port):
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'targets': [
            {'name': 'node1', 'address': LOCALHOST, 'port': listening_port, 'role': 'aggregator'},
            {'address': LOCALHOST, 'port': closed_port},
        ]}))
    aggregator, peer = facts['latency']
    assert aggregator['name'] == 'node1' and aggregator['role'] == 'aggregator'
    assert aggregator['port'] == listening_port
    assert aggregator['reachable'] is True and aggregator['lost'] == 0
    assert aggregator['attempts'] == 3
    assert isinstance(aggregator['latency_ms'], float)
    assert peer == {'name': LOCALHOST, 'address': LOCALHOST, 'port': closed_port, 'role': 'peer',
                    'attempts': 3, 'lost': 0, 'latency_ms': None, 'reachable': False}
    assert facts['errors'] == ['latency %s: Connection refused' % LOCALHOST]


def test_dropped_targets_are_probed_at_the_same_time(node, cpu_samples):
    """4 peers x 3 attempts x 0.3 s: about 0.9 s in all, not 3.6 s; loss counted."""
    with black_hole() as port:
        started = time.monotonic()
        facts = facts_of(run_module(telemetry_module.main, {
            'sample_interval': 0.2,
            'attempts': 3,
            'connect_timeout': 0.3,
            'targets': [{'name': 'node%d' % index, 'address': LOCALHOST, 'port': port}
                        for index in range(4)]}))
        elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert [entry['lost'] for entry in facts['latency']] == [3, 3, 3, 3]
    assert not any(entry['reachable'] for entry in facts['latency'])
    assert facts['errors'] == []


def test_a_probe_that_hangs_is_given_up(node, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(node_facts, 'WAIT_SLACK_S', 0.2)
    monkeypatch.setattr(node_facts.node_probes, 'probe_tcp',
                        lambda *args: release.wait(10) and None)
    try:
        facts = facts_of(run_module(telemetry_module.main, {
            'sample_interval': 0, 'attempts': 1, 'connect_timeout': 0.1,
            'targets': [{'name': 'stuck', 'address': 'node9.example'}]}))
    finally:
        release.set()
    assert facts['latency'][0]['reachable'] is False
    assert facts['errors'] == ['latency stuck: the probe did not finish in time']


# Services

def test_a_running_supervised_service(node, tmp_path, health_url):
    node.process(4700, 'python', rss_kb=15000)  # the supervisor
    node.process(4711, 'gunicorn', ppid=4700, rss_kb=20000)
    node.process(4712, 'gunicorn', ppid=4711, rss_kb=90000)
    node.process(4713, 'gunicorn', ppid=4711, rss_kb=80000)
    node.cgroup_file('system.slice/lepton-worker.service/memory.max', '1073741824\n')
    state = tmp_path / 'lepton-worker.supervisor.json'
    state.write_text(supervisor_state(4711, restarts=2))
    pid_file = tmp_path / 'lepton-worker.pid'
    pid_file.write_text('4700\n')
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'services': [{'name': 'lepton-worker', 'url': health_url, 'state_file': str(state),
                      'pid_file': str(pid_file)}]}))
    service = facts['services'][0]
    assert service['healthy'] is True and service['status_code'] == 200
    assert isinstance(service['latency_ms'], float)
    assert service['pid'] == 4711  # the service, not its supervisor
    assert service['running'] is True
    assert service['rss_bytes'] == (20000 + 90000 + 80000) * 1024
    assert service['memory_limit_bytes'] == 1073741824
    assert service['restarts'] == 2
    assert facts['errors'] == []


def test_a_supervised_service_with_a_budget_counts_its_attached_processes(
        node, tmp_path, health_url):
    node.process(4711, 'gunicorn', ppid=4700, rss_kb=20000)
    node.process(4712, 'gunicorn', ppid=4711, rss_kb=90000)
    node.process(5000, 'python3', ppid=1, rss_kb=300000)  # attached: a leak
    node.process(5001, 'python3', ppid=5000, rss_kb=1000)  # its child counts too
    node.cgroup_file('system.slice/lepton-worker.service/memory.max', 'max\n')
    state = tmp_path / 'lepton-worker.supervisor.json'
    data = json.loads(supervisor_state(4711, restarts=0))
    data['memory_max_bytes'] = 512 * 1024 * 1024
    state.write_text(json.dumps(data))
    # A dead pid, a pid with another start time (reused), a bare pid and a word that is no
    # pid are ignored, as the supervisor ignores them.
    node.process(5002, 'python3', ppid=1, rss_kb=700000)  # not the process listed
    (tmp_path / 'lepton-worker.members').write_text(
        'boot b\n5000 500 4000 1\n6000 500 4000 1\n5002 499 4000 1\n5001\nnope\n')
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'services': [{'name': 'lepton-worker', 'url': health_url, 'state_file': str(state)}]}))
    service = facts['services'][0]
    assert service['rss_bytes'] == (20000 + 90000 + 300000 + 1000) * 1024
    assert service['memory_limit_bytes'] == 512 * 1024 * 1024
    assert facts['errors'] == []


def test_a_service_on_a_node_not_provisioned_yet(node, tmp_path, closed_port):
    url = 'http://%s:%d/healthz' % (LOCALHOST, closed_port)
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'services': [{'name': 'lepton-worker', 'url': url,
                      'state_file': str(tmp_path / 'missing.supervisor.json'),
                      'pid_file': str(tmp_path / 'missing.pid')}]}))
    assert facts['services'][0] == {
        'name': 'lepton-worker', 'url': url, 'healthy': False, 'status_code': None,
        'latency_ms': None, 'pid': None, 'running': False, 'rss_bytes': None,
        'memory_limit_bytes': None, 'restarts': None}
    assert facts['errors'] == [
        'service lepton-worker: health check: Connection refused',
        'service lepton-worker: state file %s: No such file or directory'
        % (tmp_path / 'missing.supervisor.json'),
        'service lepton-worker: pid file %s: No such file or directory'
        % (tmp_path / 'missing.pid'),
    ]


def test_a_dead_pid(node, tmp_path, health_url):
    node.process(4711, 'gunicorn', state='Z', rss_kb=None)
    pid_file = tmp_path / 'service.pid'
    pid_file.write_text('4711\n')
    state = tmp_path / 'lepton-worker.supervisor.json'
    state.write_text(supervisor_state(4799, restarts=5))  # gone from /proc
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'services': [{'name': 'lepton-worker', 'url': health_url, 'state_file': str(state),
                      'pid_file': str(pid_file)}]}))
    service = facts['services'][0]
    assert service['pid'] is None and service['running'] is False
    assert service['rss_bytes'] is None and service['memory_limit_bytes'] is None
    assert service['restarts'] == 5  # the supervisor's count is known all the same
    assert service['healthy'] is True  # whatever answers the URL
    assert facts['errors'] == [
        'service lepton-worker: pid 4799 from state file %s is not running' % state,
        'service lepton-worker: pid 4711 from pid file %s is not running' % pid_file,
    ]


def test_a_stopped_supervisor(node, tmp_path, health_url):
    state = tmp_path / 'lepton-worker.supervisor.json'
    state.write_text(supervisor_state(None, restarts=0))
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'services': [{'name': 'lepton-worker', 'url': health_url, 'state_file': str(state)}]}))
    assert facts['services'][0]['running'] is False
    assert facts['services'][0]['restarts'] == 0
    assert facts['errors'] == ['service lepton-worker: state file %s names no process' % state]


@pytest.mark.parametrize('content, reason', [
    ('{"child_pid": 4711, "restarts": ', 'Expecting value'),
    ('[1, 2]\n', 'not a JSON object'),
    ('{"child_pid": 4711, "restarts": "three"}\n', "restarts is not a count: 'three'"),
    ('{"child_pid": true, "restarts": 1}\n', 'child_pid is not a count: True'),
    ('', 'Expecting value'),
])
def test_a_malformed_state_file(node, tmp_path, health_url, content, reason):
    node.process(4711)
    state = tmp_path / 'lepton-worker.supervisor.json'
    state.write_text(content)
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'services': [{'name': 'lepton-worker', 'url': health_url, 'state_file': str(state)}]}))
    service = facts['services'][0]
    assert service['pid'] is None and service['restarts'] is None
    assert len(facts['errors']) == 1  # one problem, for both the pid and the count
    assert facts['errors'][0].startswith('service lepton-worker: state file %s: ' % state)
    assert reason in facts['errors'][0]


def test_a_malformed_pid_file(node, tmp_path, health_url):
    pid_file = tmp_path / 'service.pid'
    pid_file.write_text('not-a-pid\n')
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0,
        'services': [{'name': 'svc', 'url': health_url, 'pid_file': str(pid_file)}]}))
    assert facts['services'][0]['pid'] is None
    assert len(facts['errors']) == 1 and 'pid file %s: ' % pid_file in facts['errors'][0]


def test_a_service_with_nothing_to_find_its_process(node, health_url):
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0, 'services': [{'name': 'svc', 'url': health_url}]}))
    assert facts['services'][0]['healthy'] is True
    assert facts['services'][0]['running'] is False
    assert facts['errors'] == ['service svc: no unit, state_file or pid_file to find its process']


class FakeSystemd:
    """Stands in for get_bin_path and run_command: ``systemctl show`` of some units."""

    def __init__(self, units):
        self.units = units
        self.calls = []

    # Bound methods put on the class: called on a module, they do not receive it.
    def get_bin_path(self, name, *args, **kwargs):  # pylint: disable=unused-argument
        return '/usr/bin/' + name

    def run_command(self, args, **kwargs):  # pylint: disable=unused-argument
        self.calls.append(list(args))
        unit = args[-1]
        shown = self.units.get(unit, {'LoadState': 'not-found', 'MainPID': '0', 'NRestarts': '0'})
        return 0, ''.join('%s=%s\n' % item for item in shown.items()), ''

    @property
    def patches(self):
        return mock.patch.multiple(basic.AnsibleModule, get_bin_path=self.get_bin_path,
                                   run_command=self.run_command)


def test_a_service_under_systemd(node, health_url):
    node.process(5000, 'gunicorn', rss_kb=30000)
    node.process(5001, 'gunicorn', ppid=5000, rss_kb=70000)
    systemd = FakeSystemd({'lepton-worker.service': {
        'LoadState': 'loaded', 'MainPID': '5000', 'NRestarts': '4'}})
    with systemd.patches:
        facts = facts_of(run_module(telemetry_module.main, {
            'sample_interval': 0,
            'services': [{'name': 'lepton-worker', 'url': health_url,
                          'unit': 'lepton-worker.service'}]}))
    service = facts['services'][0]
    assert (service['pid'], service['running'], service['restarts']) == (5000, True, 4)
    assert service['rss_bytes'] == (30000 + 70000) * 1024
    assert facts['errors'] == []
    assert systemd.calls == [['/usr/bin/timeout', '5', '/usr/bin/systemctl', 'show',
                              '--property=LoadState,MainPID,NRestarts', '--',
                              'lepton-worker.service']]


def test_a_unit_that_is_not_loaded_falls_back_to_the_supervisor(node, tmp_path, health_url):
    node.process(4711)
    state = tmp_path / 'lepton-worker.supervisor.json'
    state.write_text(supervisor_state(4711, restarts=1))
    with FakeSystemd({}).patches:
        facts = facts_of(run_module(telemetry_module.main, {
            'sample_interval': 0,
            'services': [{'name': 'lepton-worker', 'url': health_url,
                          'unit': 'lepton-worker.service', 'state_file': str(state)}]}))
    service = facts['services'][0]
    assert (service['pid'], service['restarts']) == (4711, 1)
    assert facts['errors'] == []


def test_a_unit_alone_that_is_not_loaded(node, health_url):
    with FakeSystemd({}).patches:
        facts = facts_of(run_module(telemetry_module.main, {
            'sample_interval': 0,
            'services': [{'name': 'w', 'url': health_url, 'unit': 'lepton-worker.service'}]}))
    assert facts['services'][0]['running'] is False
    assert facts['errors'] == ['service w: unit lepton-worker.service: not loaded (not-found)']


def test_systemctl_that_fails(node, health_url):
    def get_bin_path(module, name, *args, **kwargs):  # pylint: disable=unused-argument
        return None if name == 'timeout' else '/bin/' + name

    def run_command(module, args, **kwargs):  # pylint: disable=unused-argument
        return 1, '', 'Failed to connect to bus: Host is down\n'

    with mock.patch.multiple(basic.AnsibleModule, get_bin_path=get_bin_path,
                             run_command=run_command):
        facts = facts_of(run_module(telemetry_module.main, {
            'sample_interval': 0,
            'services': [{'name': 'w', 'url': health_url, 'unit': 'w.service'}]}))
    assert facts['errors'] == ['service w: unit w.service: systemctl show failed (exit code 1): '
                               'Failed to connect to bus: Host is down']


def test_an_unexpected_error_about_a_service(node, health_url, monkeypatch):
    def explode(module, service):
        raise RuntimeError('surprise')

    monkeypatch.setattr(node_facts, 'find_process', explode)
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0, 'services': [{'name': 'w', 'url': health_url}]}))
    assert facts['services'][0]['name'] == 'w'
    assert facts['services'][0]['running'] is False
    assert facts['errors'] == ['service w: unexpected error: surprise']


def test_the_health_check_reports_other_statuses(node, health_url):
    url = health_url.replace('/healthz', '/elsewhere')
    facts = facts_of(run_module(telemetry_module.main, {
        'sample_interval': 0, 'services': [{'name': 'w', 'url': url, 'pid_file': '/nonexistent'}]}))
    service = facts['services'][0]
    assert (service['healthy'], service['status_code']) == (False, 404)
    assert service['latency_ms'] is not None
    assert not errors_about(facts, 'health check')


@pytest.mark.skipif(not LINUX, reason='needs Linux /proc')
def test_a_real_process_of_this_machine(tmp_path, health_url):
    child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                             stdin=subprocess.PIPE)
    try:
        state = tmp_path / 'svc.supervisor.json'
        state.write_text(supervisor_state(child.pid, restarts=3))
        facts = facts_of(run_module(telemetry_module.main, {
            'paths': [str(tmp_path)],
            'services': [{'name': 'svc', 'url': health_url, 'state_file': str(state)}]}))
    finally:
        child.communicate(b'')
    service = facts['services'][0]
    assert (service['pid'], service['running'], service['restarts']) == (child.pid, True, 3)
    assert service['rss_bytes'] > 0
    assert service['memory_limit_bytes'] is None or service['memory_limit_bytes'] > 0
    assert facts['cpu']['util_pct'] is not None
    assert facts['memory']['total_bytes'] > 0
    assert facts['processes']['count'] > 1
    assert facts['errors'] == []


# Options and modes

def test_check_mode_gathers_the_same(node, health_url):
    facts = facts_of(run_module(telemetry_module.main, {
        '_ansible_check_mode': True, 'sample_interval': 0,
        'services': [{'name': 'w', 'url': health_url}]}))
    assert facts['services'][0]['healthy'] is True
    assert facts['memory']['used_pct'] == 25.0


@pytest.mark.parametrize('args, message', [
    ({'sample_interval': 6}, 'sample_interval must be at least 0.0 and at most 5.0, not 6.0'),
    ({'sample_interval': -0.1}, 'sample_interval must be'),
    ({'attempts': 0}, 'attempts must be at least 1 and at most 20, not 0'),
    ({'connect_timeout': 0}, 'connect_timeout must be more than 0.0'),
    ({'health_timeout': 11}, 'health_timeout must be'),
    ({'targets': [{'address': LOCALHOST, 'port': 70000}]}, 'is not a TCP port'),
    ({'targets': [{'address': LOCALHOST, 'role': 'boss'}]}, 'role'),
    ({'targets': [{'name': 'x'}]}, 'address'),
    ({'services': [{'name': 'w', 'url': 'file:///etc/passwd'}]}, 'http:// or https://'),
    ({'services': [{'name': 'w', 'url': 'localhost:8701/healthz'}]}, 'http:// or https://'),
    ({'services': [{'url': 'http://x/healthz'}]}, 'name'),
])
def test_invalid_options_fail(node, args, message):
    result = run_module(telemetry_module.main, args)
    assert result.get('failed'), result
    assert message in result['msg']
