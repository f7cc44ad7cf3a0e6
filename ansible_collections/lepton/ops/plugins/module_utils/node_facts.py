# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""One node's telemetry facts, read on the node: what ``lepton.ops.telemetry_facts`` returns.

Standard library only (the node may be half broken or not provisioned yet). Every reader
fills its part of :func:`empty_facts` and turns any failure into a line of the ``errors``
list: a node that cannot read one thing still reports everything else. :func:`gather`
runs them all, the network probes and health checks in threads while the CPU is sampled.

The shape built here is the controller's contract too (``lepton_ops.telemetry.facts_schema``,
which cannot be imported on a node); a test holds the two to each other.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import time

from ansible_collections.lepton.ops.plugins.module_utils import node_probes
from ansible_collections.lepton.ops.plugins.module_utils import proc_stats

SCHEMA = 1
DEFAULT_PATHS = ['/opt/lepton', '/etc/lepton', '/var/lib/lepton']

# Where the readers look; tests point these at fixture trees.
PROC = proc_stats.PROC
CGROUP_ROOT = proc_stats.CGROUP_ROOT

# Waiting for the probe threads: their own timeouts plus this, for name resolution and slack.
WAIT_SLACK_S = 2.0
# The longest a `systemctl show` may take on a node whose systemd hangs.
SYSTEMCTL_TIMEOUT_S = 5


def describe(error):
    """A short description of an exception for the errors list."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return node_probes.describe(error)


class Errors(list):
    """The fact's errors list: ``add('memory', 'cannot read x')`` adds ``memory: cannot read x``."""

    def add(self, area, message):
        self.append('%s: %s' % (area, message))


def empty_facts():
    return {
        'schema': SCHEMA,
        'timestamp': None,
        'hostname': None,
        'uptime_s': None,
        'cpu': {'count': None, 'util_pct': None, 'sample_s': 0.0},
        'load': {'1m': None, '5m': None, '15m': None},
        'memory': {'total_bytes': None, 'available_bytes': None, 'used_pct': None},
        'swap': {'total_bytes': None, 'free_bytes': None, 'used_pct': None},
        'disks': [],
        'processes': {'count': None, 'open_fds': None, 'max_fds': None},
        'latency': [],
        'services': [],
        'errors': Errors(),
    }


# The node itself

def sample_cpu(facts, interval):
    cpu, errors = facts['cpu'], facts['errors']
    cpu['count'] = os.cpu_count()
    if cpu['count'] is None:
        errors.add('cpu', 'the number of CPUs is unknown')
    if interval <= 0:
        return
    stat = os.path.join(PROC, 'stat')
    started = time.monotonic()
    try:
        before = proc_stats.read_cpu_times(PROC)
        time.sleep(interval)
        after = proc_stats.read_cpu_times(PROC)
    except (OSError, ValueError) as error:
        errors.add('cpu', 'cannot read %s: %s' % (stat, describe(error)))
        return
    cpu['sample_s'] = round(time.monotonic() - started, 3)
    cpu['util_pct'] = proc_stats.cpu_util_pct(before, after)
    if cpu['util_pct'] is None:
        errors.add('cpu', '%s did not advance during the sample' % stat)


def read_load(facts):
    try:
        averages = os.getloadavg()
    except OSError as error:
        facts['errors'].add('load', 'cannot read the load averages: %s' % describe(error))
        return
    for index, key in enumerate(('1m', '5m', '15m')):
        facts['load'][key] = round(averages[index], 2)


def read_memory(facts):
    errors = facts['errors']
    meminfo = os.path.join(PROC, 'meminfo')
    try:
        info = proc_stats.read_meminfo(PROC)
    except (OSError, ValueError) as error:
        errors.add('memory', 'cannot read %s: %s' % (meminfo, describe(error)))
        return
    facts['memory'] = proc_stats.memory_usage(info)
    facts['swap'] = proc_stats.swap_usage(info)
    expected = (('memory', ('MemTotal', 'MemAvailable')), ('swap', ('SwapTotal', 'SwapFree')))
    for area, keys in expected:
        missing = [key for key in keys if key not in info]
        if missing and None in facts[area].values():
            errors.add(area, '%s has no %s' % (meminfo, ' or '.join(missing)))


def disk_paths(paths):
    """``/`` first, then ``paths`` normalized, without repetitions."""
    ordered = ['/']
    for path in paths:
        path = posixpath.normpath(path) if path else path
        if path and path not in ordered:
            ordered.append(path)
    return ordered


def read_disks(facts, paths):
    """Each path's file system usage, read once per file system (device).

    Paths on one file system (a data dir on the root file system, as in a one-machine
    lab) report the very same numbers: the controller recognises them as not a disk of
    their own by that equality, which two readings a moment apart would break.
    """
    by_device = {}
    for path in disk_paths(paths):
        entry = {'path': path, 'exists': os.path.exists(path), 'used_pct': None,
                 'free_bytes': None, 'inodes_used_pct': None}
        if entry['exists']:
            try:
                device = os.stat(path).st_dev
                if device not in by_device:
                    by_device[device] = proc_stats.disk_usage(path)
                entry.update(by_device[device])
            except OSError as error:
                facts['errors'].add('disk %s' % path, 'cannot read its usage: %s' % describe(error))
        facts['disks'].append(entry)


def read_processes(facts):
    processes, errors = facts['processes'], facts['errors']
    try:
        processes['count'] = len(proc_stats.list_pids(PROC))
    except OSError as error:
        errors.add('processes', 'cannot list %s: %s' % (PROC, describe(error)))
    try:
        processes['open_fds'], processes['max_fds'] = proc_stats.read_file_handles(PROC)
    except (OSError, ValueError) as error:
        errors.add('processes', 'cannot read %s: %s'
                   % (os.path.join(PROC, 'sys', 'fs', 'file-nr'), describe(error)))


def read_uptime(facts):
    try:
        facts['uptime_s'] = round(proc_stats.read_uptime(PROC), 2)
    except (OSError, ValueError) as error:
        facts['errors'].add('uptime', 'cannot read %s: %s'
                            % (os.path.join(PROC, 'uptime'), describe(error)))


def read_hostname(facts):
    try:
        facts['hostname'] = socket.gethostname()
    except OSError as error:
        facts['errors'].add('hostname', describe(error))


# Services

def read_state_file(path):
    """``(child_pid, restarts)`` from the lepton supervisor's JSON state file.

    The supervisor writes ``{"name", "supervisor_pid", "child_pid", "restarts", "last_exit",
    "command", "memory_max_bytes", "oom_kills"}``; ``child_pid`` is null while the service is
    stopped. Raises OSError or ValueError (a file that is not such a JSON object).
    """
    data = read_state(path)
    return data.get('child_pid'), data.get('restarts')


def read_state(path):
    """The supervisor's state file as a dict whose counts are checked (see read_state_file)."""
    with open(path, encoding='utf-8') as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError('not a JSON object')
    for key in ('child_pid', 'restarts', 'memory_max_bytes'):
        value = data.get(key)
        is_count = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        if value is not None and not is_count:
            raise ValueError('%s is not a count: %r' % (key, value))
    return data


def members_path(state_file):
    """The supervisor's ``<name>.members`` file next to ``<name>.supervisor.json``."""
    directory, base = os.path.split(state_file)
    suffix = '.supervisor.json'
    name = base[:-len(suffix)] if base.endswith(suffix) else base
    return os.path.join(directory, name + '.members')


def read_members(path):
    """The live pids a members file lists ([] when there is none).

    Each entry is ``pid start_time registrar_pid registrar_start_time`` (see the
    collection's ``process_identity``): a pid counts only while it still names the process
    that started at that time, as the supervisor counts it.
    """
    try:
        lines = proc_stats.read_text(path).splitlines()
    except OSError:
        return []
    pids = set()
    for line in lines:
        words = line.split()
        if len(words) != 4 or not all(word.isdigit() for word in words) or int(words[0]) <= 1:
            continue
        pid, started = int(words[0]), int(words[1])
        try:
            text = proc_stats.read_text(os.path.join(PROC, str(pid), 'stat'))
            same = proc_stats.parse_start_time(text) == started
        except (OSError, ValueError):
            continue
        if same and proc_stats.pid_alive(pid, PROC):
            pids.add(pid)
    return sorted(pids)


def supervisor_budget(service):
    """``(memory_max_bytes, member pids)`` from the service's supervisor files, if any."""
    if not service.get('state_file'):
        return None, []
    try:
        memory_max = read_state(service['state_file']).get('memory_max_bytes')
    except (OSError, ValueError):
        memory_max = None
    return memory_max, read_members(members_path(service['state_file']))


def read_pid_file(path):
    """The pid in ``path`` (its first word); raises OSError or ValueError."""
    text = proc_stats.read_text(path).split()
    if not text:
        raise ValueError('empty')
    pid = int(text[0])
    if pid <= 0:
        raise ValueError('not a pid: %d' % pid)
    return pid


def systemd_unit(module, unit):
    """``(main_pid, restarts)`` of a loaded systemd unit; raises ValueError saying why not.

    ``main_pid`` is None when the unit has no main process; ``restarts`` when systemd does not
    count restarts (before 235).
    """
    systemctl = module.get_bin_path('systemctl')
    if not systemctl:
        raise ValueError('no systemctl')
    command = [systemctl, 'show', '--property=LoadState,MainPID,NRestarts', '--', unit]
    guard = module.get_bin_path('timeout')
    if guard:
        command = [guard, str(SYSTEMCTL_TIMEOUT_S)] + command
    rc, out, err = module.run_command(command, check_rc=False, expand_user_and_vars=False)
    if rc != 0:
        lines = (err or out or '').strip().splitlines()
        raise ValueError('systemctl show failed (exit code %d)%s'
                         % (rc, ': ' + lines[-1] if lines else ''))
    shown = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    if shown.get('LoadState') != 'loaded':
        raise ValueError('not loaded (%s)' % (shown.get('LoadState') or 'unknown'))
    main_pid = int(shown.get('MainPID') or 0) or None
    restarts = shown.get('NRestarts')
    return main_pid, int(restarts) if restarts not in (None, '', '[not set]') else None


def find_process(module, service):
    """``(pid, restarts, pid_problems, restart_problems)`` of a service.

    The sources (systemd unit, supervisor state file, pid file) are tried in that order: the
    first that names a live process gives the pid, the first that has a restart count gives
    the count. The problems say why each source gave nothing.
    """
    pid, restarts = None, None
    pid_problems, restart_problems = [], []

    def offer(candidate, source):
        if candidate is None:
            pid_problems.append('%s names no process' % source)
            return None
        if not proc_stats.pid_alive(candidate, PROC):
            pid_problems.append('pid %d from %s is not running' % (candidate, source))
            return None
        return candidate

    if service.get('unit'):
        source = 'unit %s' % service['unit']
        try:
            main_pid, unit_restarts = systemd_unit(module, service['unit'])
        except (OSError, ValueError) as error:
            pid_problems.append('%s: %s' % (source, describe(error)))
            restart_problems.append('%s: %s' % (source, describe(error)))
        else:
            pid = offer(main_pid, source)
            if unit_restarts is None:
                restart_problems.append('%s: systemd does not count restarts' % source)
            restarts = unit_restarts
    if service.get('state_file'):
        source = 'state file %s' % service['state_file']
        try:
            child_pid, state_restarts = read_state_file(service['state_file'])
        except (OSError, ValueError) as error:
            pid_problems.append('%s: %s' % (source, describe(error)))
            restart_problems.append('%s: %s' % (source, describe(error)))
        else:
            pid = pid or offer(child_pid, source)
            if restarts is None:
                restarts = state_restarts
                if state_restarts is None:
                    restart_problems.append('%s has no restart count' % source)
    if service.get('pid_file'):
        source = 'pid file %s' % service['pid_file']
        try:
            file_pid = read_pid_file(service['pid_file'])
        except (OSError, ValueError) as error:
            pid_problems.append('%s: %s' % (source, describe(error)))
        else:
            pid = pid or offer(file_pid, source)
    if not (service.get('unit') or service.get('state_file') or service.get('pid_file')):
        pid_problems.append('no unit, state_file or pid_file to find its process')
    return pid, restarts, pid_problems, restart_problems


def empty_service(service):
    return {'name': service['name'], 'url': service['url'], 'healthy': False,
            'status_code': None, 'latency_ms': None, 'pid': None, 'running': False,
            'rss_bytes': None, 'memory_limit_bytes': None, 'restarts': None}


def read_service(module, service, health):
    """The fact entry of one service; ``health`` is the result of its health check."""
    errors = Errors()
    area = 'service %s' % service['name']
    entry = empty_service(service)
    done, value = health
    if not done:
        errors.add(area, 'health check: no answer in time')
    elif isinstance(value, Exception):
        errors.add(area, 'health check: %s' % describe(value))
    else:
        result, problem = value
        entry.update(result)
        if problem:
            errors.add(area, 'health check: %s' % problem)

    pid, restarts, pid_problems, restart_problems = find_process(module, service)
    entry['restarts'] = restarts
    # A source that could not be read is one problem for both the pid and the restart count.
    problems = ((pid_problems if pid is None else [])
                + (restart_problems if restarts is None else []))
    for problem in sorted(set(problems), key=problems.index):
        errors.add(area, problem)
    if pid is None:
        return entry, errors
    entry['pid'], entry['running'] = pid, True
    memory_max, members = supervisor_budget(service)
    try:
        rss = proc_stats.read_tree_rss(pid, PROC)
    except (OSError, ValueError) as error:
        errors.add(area, 'cannot read the memory of pid %d: %s' % (pid, describe(error)))
    else:
        for member in members:
            try:
                rss += proc_stats.read_tree_rss(member, PROC)
            except (OSError, ValueError):
                continue  # it exited meanwhile
        entry['rss_bytes'] = rss
    try:
        limit = proc_stats.read_memory_limit(pid, PROC, CGROUP_ROOT)
    except (OSError, ValueError) as error:
        errors.add(area, 'cannot read the cgroup of pid %d: %s' % (pid, describe(error)))
        limit = None
    limits = [value for value in (limit, memory_max) if value]
    entry['memory_limit_bytes'] = min(limits) if limits else None
    return entry, errors


# Latency

def latency_entry(target, probe, attempts):
    """The fact entry of one target; ``probe`` is the result of its connects."""
    name = target['name'] or target['address']
    entry = {'name': name, 'address': target['address'], 'port': target['port'],
             'role': target['role'], 'attempts': attempts, 'lost': 0, 'latency_ms': None,
             'reachable': False}
    errors = Errors()
    area = 'latency %s' % name
    done, value = probe
    if not done:
        errors.add(area, 'the probe did not finish in time')
    elif isinstance(value, Exception):
        errors.add(area, describe(value))
    else:
        result, problems = value
        entry.update(result)
        for problem in problems:
            errors.add(area, problem)
    return entry, errors


def guarded(facts, area, read, *args):
    """Run one reader; an unexpected exception becomes an error line, never a failed module."""
    try:
        read(facts, *args)
    except Exception as error:  # a half-broken node must still return its facts
        facts['errors'].add(area, 'unexpected error: %s' % describe(error))


def gather(module):
    params = module.params
    facts = empty_facts()
    errors = facts['errors']
    targets, services = params['targets'], params['services']
    attempts, connect_timeout = params['attempts'], params['connect_timeout']
    health_timeout = params['health_timeout']

    # Probes first, in threads, so that they run while the CPU is sampled.
    probes = node_probes.Background([
        (lambda target=target: node_probes.probe_tcp(target['address'], target['port'],
                                                     attempts, connect_timeout))
        for target in targets])
    checks = node_probes.Background([
        (lambda service=service: node_probes.check_health(
            service['url'], health_timeout, service.get('ca_file')))
        for service in services])

    guarded(facts, 'cpu', sample_cpu, params['sample_interval'])
    guarded(facts, 'load', read_load)
    guarded(facts, 'memory', read_memory)
    guarded(facts, 'disks', read_disks, params['paths'])
    guarded(facts, 'processes', read_processes)
    guarded(facts, 'uptime', read_uptime)
    guarded(facts, 'hostname', read_hostname)

    # Both waits count from the start of the probes. A health check waits at most
    # health_timeout to connect and as long for each read.
    health = checks.wait(2 * health_timeout + WAIT_SLACK_S)
    for index, service in enumerate(services):
        result = health[index]
        try:
            entry, service_errors = read_service(module, service, result)
        except Exception as error:  # a half-broken node must still return its facts
            entry, service_errors = empty_service(service), Errors()
            service_errors.add('service %s' % service['name'],
                               'unexpected error: %s' % describe(error))
        facts['services'].append(entry)
        errors.extend(service_errors)

    connects = probes.wait(attempts * connect_timeout + WAIT_SLACK_S)
    for index, target in enumerate(targets):
        entry, target_errors = latency_entry(target, connects[index], attempts)
        facts['latency'].append(entry)
        errors.extend(target_errors)

    facts['timestamp'] = time.time()
    facts['errors'] = list(errors)
    return facts
