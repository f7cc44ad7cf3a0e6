# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A fake node for the telemetry tests: a /proc tree and a cgroup tree in a directory."""

from __future__ import annotations

import contextlib
import json
import socket

import pytest

LOCALHOST = '127.0.0.1'

PROC_STAT = """\
cpu  1000 50 300 8000 150 10 20 5 0 0
cpu0 500 25 150 4000 75 5 10 3 0 0
cpu1 500 25 150 4000 75 5 10 2 0 0
intr 123456 0 0
ctxt 987654
btime 1767225600
processes 4242
procs_running 2
procs_blocked 0
"""

# 100 ticks later: 40 busy (user 25 + system 10 + softirq 5), 60 idle (idle 50 + iowait 10).
PROC_STAT_LATER = PROC_STAT.replace(
    'cpu  1000 50 300 8000 150 10 20 5 0 0', 'cpu  1025 50 310 8050 160 10 25 5 0 0')

MEMINFO = """\
MemTotal:        8000000 kB
MemFree:         1000000 kB
MemAvailable:    6000000 kB
Buffers:          200000 kB
Cached:          3000000 kB
SwapCached:            0 kB
SwapTotal:       2000000 kB
SwapFree:        1500000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def proc_stat_line(pid, comm='gunicorn', state='S', ppid=1):
    # pid (comm) state ppid pgrp session tty_nr tpgid flags ...
    return '%d (%s) %s %d %d %d 0 -1 4194560 100 0 0 0 12 3 0 0 20 0 1 0 500 0 0\n' % (
        pid, comm, state, ppid, pid, pid)


def status_text(name, rss_kb):
    lines = ['Name:\t%s' % name, 'State:\tS (sleeping)', 'VmPeak:\t  200000 kB']
    if rss_kb is not None:
        lines.append('VmRSS:\t %8d kB' % rss_kb)
    lines.append('Threads:\t1')
    return '\n'.join(lines) + '\n'


class FakeNode:
    """Writes the files the telemetry readers look at under ``root``."""

    def __init__(self, root):
        self.root = root
        self.proc = root / 'proc'
        self.cgroup = root / 'cgroup'
        self.proc.mkdir(parents=True, exist_ok=True)
        self.cgroup.mkdir(parents=True, exist_ok=True)

    def write(self, relative, text):
        path = self.proc / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def basics(self, stat=PROC_STAT, meminfo=MEMINFO):
        self.write('stat', stat)
        self.write('meminfo', meminfo)
        self.write('uptime', '86400.52 170000.10\n')
        self.write('sys/fs/file-nr', '2304\t0\t9223372036854775807\n')
        self.write('sys/fs/file-max', '9223372036854775807\n')
        self.process(1, 'systemd', ppid=0, rss_kb=12000, cgroup='0::/init.scope\n')
        return self

    def process(self, pid, name='gunicorn', ppid=1, state='S', rss_kb=1000,
                cgroup='0::/system.slice/lepton-worker.service\n'):
        self.write('%d/stat' % pid, proc_stat_line(pid, name, state, ppid))
        self.write('%d/status' % pid, status_text(name, rss_kb))
        if cgroup is not None:
            self.write('%d/cgroup' % pid, cgroup)
        return pid

    def cgroup_file(self, relative, text):
        path = self.cgroup / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def supervisor_state(child_pid, restarts=0):
    """What lepton_ops.services.supervise writes to ``<name>.supervisor.json``."""
    return json.dumps({
        'command': ['/opt/lepton/venv/bin/gunicorn', '--bind', '10.0.0.12:8701'],
        'child_pid': child_pid,
        'last_exit': {'at': 1767225600.5, 'code': 1, 'uptime_s': 3.2} if restarts else None,
        'name': 'lepton-worker',
        'restarts': restarts,
        'supervisor_pid': 4700,
    }, sort_keys=True) + '\n'


@contextlib.contextmanager
def black_hole():
    """A port on 127.0.0.1 whose connects time out: a listener with a full accept queue.

    Linux drops the SYNs a listener with a full queue receives, so the client keeps waiting.
    """
    held = []
    with socket.socket() as server:
        server.bind((LOCALHOST, 0))
        server.listen(0)
        port = server.getsockname()[1]
        try:
            for _attempt in range(8):
                client = socket.socket()
                client.settimeout(0.2)
                try:
                    client.connect((LOCALHOST, port))
                except socket.timeout:
                    client.close()
                    break
                held.append(client)
            else:
                pytest.skip('cannot fill the accept queue of a listener here')
            yield port
        finally:
            for client in held:
                client.close()
