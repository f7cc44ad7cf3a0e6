# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""lepton.ops.chaos_fault: real faults on real processes (a tiny HTTP service stands for a
lepton service), their records, and stopping them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.lepton.ops.plugins.module_utils import chaos_runner, process_identity
from ansible_collections.lepton.ops.plugins.modules import chaos_fault
from ansible_collections.lepton.ops.tests.unit.plugins.modules.utils import run_module

LOCALHOST = '127.0.0.1'


def free_port():
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError('condition not met in time')
        time.sleep(0.05)


def process_state(pid):
    with open('/proc/%d/stat' % pid, encoding='utf-8') as handle:
        text = handle.read()
    return text[text.rfind(')') + 1:].split()[0]


@pytest.fixture
def service(tmp_path):
    """A service: an HTTP server (healthy while it answers) and a supervisor state file."""
    port = free_port()
    server = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', LOCALHOST,
                               str(port), '--directory', str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = 'http://%s:%d/' % (LOCALHOST, port)
    wait_for(lambda: chaos_runner.healthy(url, 0.5))
    state = tmp_path / 'lepton-test.supervisor.json'
    # The test process stands for the supervisor: the server is its child.
    state.write_text(json.dumps(supervisor_state(server.pid)))
    yield {'name': 'lepton-test', 'url': url, 'state_file': str(state)}, server
    if server.poll() is None:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()
    server.wait()


def supervisor_state(child_pid, child_start_time=None):
    me = process_identity.identify(os.getpid())
    child = process_identity.identify(child_pid)
    return {'supervisor_pid': me.pid, 'supervisor_start_time': me.start_time,
            'boot_id': me.boot_id, 'child_pid': child_pid,
            'child_start_time': child.start_time if child_start_time is None
            else child_start_time, 'restarts': 0}


def first_member(path):
    return process_identity.read_members(path)[0].process.pid


def start(tmp_path, **args):
    base = {'state': 'started', 'chaos_dir': str(tmp_path / 'chaos'),
            'data_dir': str(tmp_path), 'health_timeout': 0.5}
    base.update(args)
    return run_module(chaos_fault.main, base)


def record(tmp_path, fault_id):
    with open(tmp_path / 'chaos' / ('%s.json' % fault_id), encoding='utf-8') as handle:
        return json.load(handle)


def ended(tmp_path, fault_id):
    return lambda: record(tmp_path, fault_id)['ended_at'] is not None


def test_kill_crashes_the_service_and_records_the_failure(tmp_path, service):
    spec, server = service
    result = start(tmp_path, fault='kill', id='k1', duration=1.5, service=spec)
    assert result['changed'] is True and result['faults'][-1]['id'] == 'k1'
    assert server.wait(timeout=5) == -signal.SIGKILL
    wait_for(ended(tmp_path, 'k1'))
    done = record(tmp_path, 'k1')
    assert done['outcome'] == 'failed' and done['failure'].startswith('service killed')
    assert done['started_at'] <= done['failed_at'] <= done['ended_at']


def test_hang_stops_the_service_fails_its_health_and_continues_it(tmp_path, service):
    spec, server = service
    start(tmp_path, fault='hang', id='h1', duration=2.0, service=spec)
    wait_for(lambda: process_state(server.pid) == 'T')
    wait_for(ended(tmp_path, 'h1'))
    done = record(tmp_path, 'h1')
    assert done['outcome'] == 'failed' and 'health check failing' in done['failure']
    assert process_state(server.pid) != 'T'
    assert chaos_runner.healthy(spec['url'], 2.0)


def test_memleak_grows_attached_to_the_service_until_killed(tmp_path, service):
    spec, dummy = service
    start(tmp_path, fault='memleak', id='m1', duration=30, rate=64 * 1024 * 1024, service=spec)
    members = tmp_path / 'lepton-test.members'
    wait_for(members.exists)
    leak = first_member(members)
    wait_for(lambda: chaos_runner_rss(leak) > 100 * 1024 * 1024)
    # What the supervisor does when the budget is hit: count it, and kill.
    with open(spec['state_file'], encoding='utf-8') as handle:
        state = json.load(handle)
    with open(spec['state_file'], 'w', encoding='utf-8') as handle:
        json.dump(dict(state, oom_kills=1), handle)
    os.kill(leak, signal.SIGKILL)
    wait_for(ended(tmp_path, 'm1'))
    done = record(tmp_path, 'm1')
    assert done['outcome'] == 'failed' and done['failure'].startswith('memory limit hit')


def test_a_leak_killed_by_a_restart_before_the_limit_is_remediated(tmp_path, service):
    spec, dummy = service
    start(tmp_path, fault='memleak', id='m2', duration=30, rate=1024 * 1024, service=spec)
    members = tmp_path / 'lepton-test.members'
    wait_for(members.exists)
    os.kill(first_member(members), signal.SIGKILL)  # the restart's kill
    wait_for(ended(tmp_path, 'm2'))
    done = record(tmp_path, 'm2')
    assert done['outcome'] == 'remediated' and done['failed_at'] is None


def test_diskfill_writes_in_the_service_tmpdir_and_a_restart_remediates_it(tmp_path, service):
    spec, dummy = service
    tmp = tmp_path / 'lepton-test.tmp'
    tmp.mkdir()
    start(tmp_path, fault='diskfill', id='d3', duration=30, rate=1024 * 1024, service=spec)
    wait_for(lambda: list(tmp.glob(chaos_runner.FILL_PREFIX + '*')))
    members = tmp_path / 'lepton-test.members'
    os.kill(first_member(members), signal.SIGKILL)
    wait_for(ended(tmp_path, 'd3'))
    assert record(tmp_path, 'd3')['outcome'] == 'remediated'
    assert not list(tmp.glob(chaos_runner.FILL_PREFIX + '*'))


def test_kill_refuses_a_child_pid_that_is_no_longer_the_service(tmp_path, service):
    """A stale child_pid (the pid reused by another process) is never signalled."""
    spec, server = service
    with open(spec['state_file'], 'w', encoding='utf-8') as handle:
        started = process_identity.start_time(server.pid)
        json.dump(supervisor_state(server.pid, child_start_time=started - 1), handle)
    result = start(tmp_path, fault='kill', id='k9', duration=1.0, service=spec)
    assert result['failed'] and 'the service is not running' in result['msg']
    assert server.poll() is None


def test_kill_refuses_a_child_that_is_not_the_supervisors(tmp_path, service):
    """Right pid and start time, but not a child of the recorded supervisor."""
    spec, dummy = service
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                             start_new_session=True)
    try:
        state = supervisor_state(other.pid)
        state['supervisor_pid'] = 1
        state['supervisor_start_time'] = process_identity.start_time(1)
        with open(spec['state_file'], 'w', encoding='utf-8') as handle:
            json.dump(state, handle)
        result = start(tmp_path, fault='kill', id='k8', duration=1.0, service=spec)
        assert result['failed']
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_reaped_leak_leaves_the_members_file(tmp_path, service):
    """Entries are removed once the runner has reaped its process: the pid may be reused."""
    spec, dummy = service
    start(tmp_path, fault='memleak', id='m5', duration=30, rate=1024 * 1024, service=spec)
    members = tmp_path / 'lepton-test.members'
    wait_for(members.exists)
    os.kill(first_member(members), signal.SIGKILL)
    wait_for(ended(tmp_path, 'm5'))
    assert process_identity.read_members(members) == []


def chaos_runner_rss(pid):
    try:
        with open('/proc/%d/status' % pid, encoding='utf-8') as handle:
            lines = [line for line in handle if line.startswith('VmRSS:')]
    except OSError:
        return 0
    return int(lines[0].split()[1]) * 1024 if lines else 0


def test_diskfill_on_a_full_file_system_fails_and_cleans_up(tmp_path):
    # /dev/full answers every write with ENOSPC, as a full file system does.
    fill = tmp_path / ('%sd1' % chaos_runner.FILL_PREFIX)
    os.symlink('/dev/full', fill)
    start(tmp_path, fault='diskfill', id='d1', duration=10, rate=1024 * 1024, hold=0.2)
    wait_for(ended(tmp_path, 'd1'))
    done = record(tmp_path, 'd1')
    assert done['outcome'] == 'failed' and done['failure'].startswith('disk full (ENOSPC)')
    assert not os.path.lexists(fill)


def test_a_fault_that_never_fails_survives_and_leaves_nothing(tmp_path):
    start(tmp_path, fault='diskfill', id='d2', duration=0.5, rate=1024, hold=0)
    wait_for(ended(tmp_path, 'd2'))
    assert record(tmp_path, 'd2')['outcome'] == 'survived'
    assert not list(tmp_path.glob(chaos_runner.FILL_PREFIX + '*'))


def test_stop_ends_running_faults_and_query_reports_them(tmp_path, service):
    spec, dummy = service
    start(tmp_path, fault='cpuhog', id='c1', duration=120, service=spec)
    hog_runner = record(tmp_path, 'c1')['pid']
    stopped = run_module(chaos_fault.main, {'state': 'stopped',
                                            'chaos_dir': str(tmp_path / 'chaos')})
    assert stopped['changed'] is True and stopped['stopped'] == ['c1']
    done = stopped['faults'][-1]
    assert done['outcome'] == 'stopped' and 'pid_start' not in done
    wait_for(lambda: chaos_runner.process_start_time(hog_runner) is None)
    query = run_module(chaos_fault.main, {'chaos_dir': str(tmp_path / 'chaos')})
    assert query['changed'] is False and [f['id'] for f in query['faults']] == ['c1']


def test_a_record_whose_runner_is_gone_is_reported_abandoned(tmp_path):
    chaos = tmp_path / 'chaos'
    chaos.mkdir()
    chaos_runner.write_record(str(chaos / 'x.json'), {
        'id': 'x', 'fault': 'hang', 'pid': 999999999, 'pid_start': 1, 'started_at': 1.0,
        'ended_at': None, 'outcome': None})
    query = run_module(chaos_fault.main, {'chaos_dir': str(chaos)})
    assert query['faults'][0]['outcome'] == 'abandoned'


@pytest.mark.parametrize('args, message', [
    ({'fault': 'kill'}, 'state=started needs id'),
    ({'id': 'x'}, 'state=started needs fault'),
    ({'fault': 'kill', 'id': 'a b'}, 'may hold only letters'),
    ({'fault': 'kill', 'id': 'a'}, 'fault kill needs service'),
    ({'fault': 'diskfill', 'id': 'a', 'duration': 0}, 'duration must be more than 0'),
    ({'fault': 'diskfill', 'id': 'a', 'rate': 0}, 'rate must be more than 0'),
    ({'fault': 'cpuhog', 'id': 'a', 'processes': 65}, 'processes must be from 1 to 64'),
])
def test_bad_options_fail_with_one_line(tmp_path, args, message):
    result = start(tmp_path, **args)
    assert result['failed'] and message in result['msg']


def test_an_id_is_used_once_and_a_stopped_service_cannot_be_killed(tmp_path, service):
    spec, dummy = service
    start(tmp_path, fault='diskfill', id='same', duration=0.2, rate=1024, hold=0)
    again = start(tmp_path, fault='diskfill', id='same', duration=0.2, rate=1024)
    assert again['failed'] and 'already started' in again['msg']
    with open(spec['state_file'], 'w', encoding='utf-8') as handle:
        json.dump({'child_pid': None, 'restarts': 0}, handle)
    killed = start(tmp_path, fault='kill', id='k9', service=spec)
    assert killed['failed'] and 'the service is not running' in killed['msg']
