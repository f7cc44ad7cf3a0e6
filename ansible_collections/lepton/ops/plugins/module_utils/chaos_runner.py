# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Faults run on a node, for the lab's chaos: standard library only.

A fault runs in a detached *runner* process (started by the ``lepton.ops.chaos_fault``
module, which returns at once) that injects the fault, watches for the moment the node
actually fails, undoes the fault and writes what happened to its *record*, a JSON file in
the chaos directory::

    {"id", "fault", "params", "pid", "started_at", "failed_at", "failure",
     "ended_at", "outcome", "detail"}

``outcome`` is ``failed`` (the node failed), ``remediated`` (a restart of the service
killed the fault's process before the failure), ``survived`` (the duration passed without
a failure), ``stopped`` (SIGTERM: ``chaos stop``) or ``error``. A failure is what an operator
would call one: the service's health check failing, its memory budget hit (the supervisor
killed it), its data directory full (ENOSPC).

Faults, all on one service of the node (its process tree from the supervisor's state file,
only while the supervisor and its child there are still the recorded processes):

* ``kill``: SIGKILL of the service's processes, as a crash; the supervisor restarts it.
* ``hang``: SIGSTOP of the service's processes for the duration, then SIGCONT.
* ``memleak``: a child process attached to the service's memory budget (its pid in the
  supervisor's ``<name>.members``) whose resident memory grows at ``rate`` bytes/s until the
  supervisor kills it with the service (the budget hit), or the duration ends.
* ``cpuhog``: ``processes`` busy loops for the duration.
* ``diskfill``: a runaway temporary file of the service - in its ``TMPDIR`` under the data
  directory (``<name>.tmp/``, emptied by the supervisor when the service starts), written by
  a process attached to the service - growing at ``rate`` bytes/s until the file system is
  full (ENOSPC); it is kept ``hold`` seconds, then removed.

A progressive fault (memleak, diskfill) whose process is killed by a restart of the
service before the failure ends ``remediated``: the restart is what fixed it.

Every signal goes through ``process_identity``: a process is signalled only while it is
still the one recorded (pid, start time, boot), so a pid reused by someone else is never
hit - undoing a hang continues only the processes it stopped, if they are still them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path
from urllib.error import HTTPError

from ansible_collections.lepton.ops.plugins.module_utils import process_identity
from ansible_collections.lepton.ops.plugins.module_utils.node_probes import direct_opener

FAULTS = ('kill', 'hang', 'memleak', 'cpuhog', 'diskfill')
FILL_PREFIX = 'chaos-fill-'
CHUNK = 1024 * 1024
# The leak never grows past this, budget or not: the lab shares one machine.
MAX_LEAK_BYTES = 4 * 1024 * 1024 * 1024
PROBE_EVERY_S = 0.5


class Stop(Exception):
    """SIGTERM arrived: undo the fault and end as 'stopped'."""


def record_path(chaos_dir, fault_id):
    return os.path.join(chaos_dir, '%s.json' % fault_id)


def write_record(path, record):
    temporary = path + '.tmp'
    with open(temporary, 'w', encoding='utf-8') as handle:
        json.dump(record, handle, sort_keys=True)
    os.replace(temporary, path)


def read_records(chaos_dir):
    """Every record in ``chaos_dir``, oldest first (unreadable files are skipped)."""
    records = []
    try:
        names = sorted(os.listdir(chaos_dir))
    except OSError:
        return records
    for name in names:
        if not name.endswith('.json'):
            continue
        try:
            with open(os.path.join(chaos_dir, name), encoding='utf-8') as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            records.append(data)
    records.sort(key=lambda record: (record.get('started_at') or 0, str(record.get('id'))))
    return records


def process_start_time(pid):
    """Field 22 of /proc/PID/stat (clock ticks since boot): tells a reused pid apart."""
    return process_identity.start_time(pid)


def oom_kills(state_file):
    """The supervisor's count of memory-budget kills (0 when it cannot be read)."""
    try:
        with open(state_file, encoding='utf-8') as handle:
            return int(json.load(handle).get('oom_kills') or 0)
    except (OSError, ValueError, TypeError):
        return 0


def runner_identity(record):
    """The identity of a record's runner (None when the record names none)."""
    return process_identity.identity_of(record.get('pid'), record.get('pid_start'),
                                        record.get('boot_id'))


def runner_alive(record):
    runner = runner_identity(record)
    return runner is not None and runner.alive()


def service_tree(state_file):
    """The service's process and its descendants, proven to be the supervisor's child now.

    The supervisor's state file records its own identity and its running child's (null
    between runs); both must still be those processes and the child the supervisor's.
    """
    with open(state_file, encoding='utf-8') as handle:
        state = json.load(handle)
    boot = state.get('boot_id')
    supervisor = process_identity.identity_of(state.get('supervisor_pid'),
                                              state.get('supervisor_start_time'), boot)
    child = process_identity.identity_of(state.get('child_pid'), state.get('child_start_time'),
                                         boot)
    if supervisor is None or child is None:
        raise ValueError('the service is not running (no running child recorded in %s)'
                         % state_file)
    if not (supervisor.alive() and child.alive()
            and process_identity.parent_pid(child.pid) == supervisor.pid):
        raise ValueError('the service is not running (the processes %s records are gone)'
                         % state_file)
    return process_identity.process_tree(child)


def signal_all(processes, signum):
    """Signal each of ``processes`` (identities) that is still itself; those signalled."""
    return process_identity.signal_all(processes, signum)


def healthy(url, timeout, ca_file=None):
    """Whether the service answers its health check with a 2xx in ``timeout`` seconds (an
    https certificate verified against ``ca_file``, the fleet's CA, when given)."""
    opener = direct_opener(ca_file)
    try:
        with opener.open(url, timeout=timeout) as answer:
            return 200 <= answer.status < 300
    except HTTPError:
        return False
    except (OSError, ValueError):
        return False


class Runner:
    """One fault, from injection to its record's end."""

    def __init__(self, spec, path):
        self.spec = spec
        self.path = path
        self.stopping = False
        self.record = {
            'id': spec['id'], 'fault': spec['fault'], 'params': spec['params'],
            'node': spec.get('node'), 'pid': os.getpid(),
            'pid_start': process_start_time(os.getpid()),
            'boot_id': process_identity.boot_id(), 'started_at': time.time(),
            'failed_at': None, 'failure': None, 'ended_at': None, 'outcome': None,
            'detail': '',
        }

    # -- bookkeeping ------------------------------------------------------------------

    def save(self):
        write_record(self.path, self.record)

    def failed(self, failure, when=None):
        if self.record['failed_at'] is None:
            self.record['failed_at'] = time.time() if when is None else when
            self.record['failure'] = failure
            self.save()

    def on_term(self, signum, frame):
        self.stopping = True

    def sleep(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stopping:
                raise Stop()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def deadline(self):
        return time.monotonic() + float(self.spec['params']['duration_s'])

    def health_failed(self):
        return not healthy(self.spec['url'], float(self.spec.get('health_timeout', 1.0)),
                           self.spec.get('ca_file'))

    # -- main ---------------------------------------------------------------------------

    def run(self):
        signal.signal(signal.SIGTERM, self.on_term)
        self.save()
        outcome, detail = None, ''
        try:
            getattr(self, 'run_' + self.spec['fault'])()
        except Stop:
            outcome = 'stopped'
        except Exception as error:  # the record must say what went wrong, not vanish
            outcome, detail = 'error', '%s: %s' % (type(error).__name__, error)
        finally:
            self.undo()
        if outcome is None or (outcome == 'stopped' and self.record['failed_at'] is not None):
            if self.record['failed_at'] is not None:
                outcome = 'failed'
            elif self.record.pop('remediated', False):
                outcome = 'remediated'
            else:
                outcome = 'survived'
        self.record.update(ended_at=time.time(), outcome=outcome, detail=detail
                           or self.record['detail'])
        self.save()

    def undo(self):
        """Undo whatever the fault left (each fault sets its own undo)."""
        undo = getattr(self, '_undo', None)
        if undo is not None:
            try:
                undo()
            except Exception as error:  # pylint: disable=broad-except
                self.record['detail'] = 'undo failed: %s' % error
            self._undo = None

    # -- faults -----------------------------------------------------------------------------

    def run_kill(self):
        killed = signal_all(service_tree(self.spec['state_file']), signal.SIGKILL)
        self.failed('service killed (pids %s)' % ' '.join(str(p.pid) for p in killed))
        self.record['detail'] = 'killed %d processes' % len(killed)
        # Watch it come back (the supervisor restarts it) for the rest of the duration.
        end = self.deadline()
        while time.monotonic() < end:
            if not self.health_failed():
                self.record['detail'] += '; healthy again after %.1fs' % (
                    time.time() - self.record['failed_at'])
                return
            self.sleep(PROBE_EVERY_S)

    def run_hang(self):
        stopped = signal_all(service_tree(self.spec['state_file']), signal.SIGSTOP)
        # Only what was stopped, and only while each is still the process that was stopped.
        self._undo = lambda: signal_all(stopped, signal.SIGCONT)
        end = self.deadline()
        while time.monotonic() < end:
            if self.health_failed():
                self.failed('health check failing (service stopped with SIGSTOP)')
            self.sleep(PROBE_EVERY_S)

    def run_cpuhog(self):
        hogs = []
        for _unused in range(int(self.spec['params'].get('processes', 1))):
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                while True:
                    pass
            hogs.append(process_identity.identify(pid))
        self._undo = lambda: self._reap([hog for hog in hogs if hog is not None])
        misses = 0
        end = self.deadline()
        while time.monotonic() < end:
            misses = misses + 1 if self.health_failed() else 0
            if misses >= 2:
                self.failed('health check failing under CPU load')
            self.sleep(PROBE_EVERY_S)

    def run_memleak(self):
        rate = int(self.spec['params']['rate_bytes_s'])
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._leak(rate)
            os._exit(0)
        os.close(write_end)
        leak = process_identity.identify(pid)  # our unreaped child: its pid is still its own
        self._undo = lambda: self._reap([p for p in (leak,) if p is not None])
        kills_before = oom_kills(self.spec['state_file'])
        self.attach(pid)
        end = self.deadline()
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self._undo = None
                self.detach([pid])
                if oom_kills(self.spec['state_file']) > kills_before:
                    self.failed('memory limit hit: the supervisor killed the service and the '
                                'leak')
                elif os.WIFSIGNALED(status):
                    self.remediated('the leak was killed with the service (signal %d) before '
                                    'the memory limit' % os.WTERMSIG(status))
                else:
                    self.record['detail'] = 'the leak ended by itself (status %d)' % status
                return
            self.sleep(0.1)

    @staticmethod
    def _leak(rate):
        held, size, started = [], 0, time.monotonic()
        while size < MAX_LEAK_BYTES:
            due = int((time.monotonic() - started) * rate)
            if due > size:
                step = min(due - size, 16 * CHUNK)
                held.append(bytearray(b'\x5a') * step)  # every page written: resident
                size += step
            time.sleep(0.05)
        while True:
            time.sleep(60)

    def run_diskfill(self):
        rate = int(self.spec['params']['rate_bytes_s'])
        hold = float(self.spec['params'].get('hold_s', 10))
        directory = self.spec.get('tmp_dir') or self.spec['data_dir']
        if not os.path.isdir(directory):
            directory = self.spec['data_dir']
        path = os.path.join(directory, '%s%s' % (FILL_PREFIX, self.spec['id']))
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os._exit(self._fill(path, rate, self.deadline()))
        writer = process_identity.identify(pid)  # our unreaped child: its pid is still its own
        self._undo = lambda: (self._reap([p for p in (writer,) if p is not None]),
                              os.path.lexists(path) and os.unlink(path))
        if self.spec.get('members_file'):
            self.attach(pid)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                self.sleep(0.1)
                continue
            self._undo = lambda: os.path.lexists(path) and os.unlink(path)
            self.detach([pid])
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == errno.ENOSPC:
                size = os.path.getsize(path) if os.path.exists(path) else 0
                self.failed('disk full (ENOSPC) in %s after %d bytes'
                            % (self.spec['data_dir'], size))
                self.record['detail'] = 'filled %d bytes' % size
                self.sleep(hold)
            elif os.WIFSIGNALED(status):
                self.remediated('the writer was killed with the service (signal %d) before '
                                'the disk was full' % os.WTERMSIG(status))
            elif os.WEXITSTATUS(status) != 0:
                raise RuntimeError('the writer failed (exit %d)' % os.WEXITSTATUS(status))
            return

    @staticmethod
    def _fill(path, rate, end):
        """The writer's body: its exit code is ENOSPC when the file system filled up."""
        chunk = bytes(CHUNK)
        written, started = 0, time.monotonic()
        try:
            with open(path, 'wb', buffering=0) as handle:
                while time.monotonic() < end:
                    due = int((time.monotonic() - started) * rate)
                    while written < due:
                        written += handle.write(chunk[:min(CHUNK, due - written)])
                    time.sleep(0.1)
        except OSError as error:
            return errno.ENOSPC if error.errno == errno.ENOSPC else 1
        return 0

    def attach(self, pid):
        """Count ``pid`` (our child) in the service's memory budget and kill it with the
        service: listed by identity, with this runner as the process that registered it."""
        process_identity.add_member(Path(self.spec['members_file']), pid)

    def detach(self, pids):
        """Our children ``pids`` were reaped: their entries go (their pids may be reused)."""
        if self.spec.get('members_file'):
            process_identity.remove_members(Path(self.spec['members_file']), pids)

    def remediated(self, detail):
        self.record['remediated'] = True
        self.record['detail'] = detail

    def _reap(self, children):
        """Kill and reap our own children (identities), and drop them from the members."""
        signal_all(children, signal.SIGKILL)
        for child in children:
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                continue
        self.detach([child.pid for child in children])


def detach_and_run(spec, path):
    """Run the fault in a detached process; returns (in the caller) once it has started.

    Double fork and a new session: the runner outlives the module and its SSH session,
    and holds none of the session's file descriptors (so the session can end).
    """
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1024)
        code = 0
        try:
            Runner(spec, path).run()
        except BaseException:  # pylint: disable=broad-except
            code = 1
        os._exit(code)
    os.waitpid(first, 0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(path, encoding='utf-8') as handle:
                return json.load(handle)
        except (OSError, ValueError):
            time.sleep(0.02)
    raise RuntimeError('the fault runner wrote no record %s' % path)


def stop_runners(chaos_dir, wait_s=15.0):
    """SIGTERM every live runner in ``chaos_dir`` and wait for their records to end."""
    stopped = []
    for record in read_records(chaos_dir):
        runner = runner_identity(record)
        live = record.get('ended_at') is None and runner is not None
        if live and process_identity.send_signal(runner, signal.SIGTERM):
            stopped.append(record['id'])
    deadline = time.monotonic() + wait_s
    while stopped and time.monotonic() < deadline:
        by_id = dict((r.get('id'), r) for r in read_records(chaos_dir))
        if all(by_id.get(i, {}).get('ended_at') is not None for i in stopped):
            break
        time.sleep(0.1)
    return stopped


def abandoned(record):
    """A record whose runner is gone without ending it (killed with its node)."""
    return record.get('ended_at') is None and not runner_alive(record)
