# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for the /proc, cgroup and file system readers of the telemetry module."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from unittest import mock

import pytest

from ansible_collections.lepton.ops.plugins.module_utils import proc_stats
from ansible_collections.lepton.ops.tests.unit.plugins.module_utils.fake_node import (
    MEMINFO,
    PROC_STAT,
    PROC_STAT_LATER,
    FakeNode,
    proc_stat_line,
    status_text,
)

LINUX = sys.platform.startswith('linux') and os.path.isfile('/proc/stat')

StatVfs = collections.namedtuple('StatVfs', 'f_bsize f_frsize f_blocks f_bfree f_bavail f_files '
                                            'f_ffree f_favail f_flag f_namemax')


@pytest.fixture
def node(tmp_path):
    return FakeNode(tmp_path)


# CPU

def test_cpu_times_sum_the_first_eight_fields():
    busy, total = proc_stats.parse_cpu_times(PROC_STAT)
    # user nice system idle iowait irq softirq steal; guest fields left out
    assert total == 1000 + 50 + 300 + 8000 + 150 + 10 + 20 + 5
    assert busy == total - 8000 - 150


def test_cpu_util_over_a_sample():
    before = proc_stats.parse_cpu_times(PROC_STAT)
    after = proc_stats.parse_cpu_times(PROC_STAT_LATER)
    assert proc_stats.cpu_util_pct(before, after) == 40.0


def test_cpu_util_is_none_when_no_time_passed():
    sample = proc_stats.parse_cpu_times(PROC_STAT)
    assert proc_stats.cpu_util_pct(sample, sample) is None
    assert proc_stats.cpu_util_pct((10, 100), (5, 90)) is None


def test_cpu_times_of_an_old_kernel_with_four_fields():
    assert proc_stats.parse_cpu_times('cpu 10 0 10 80\n') == (20, 100)


@pytest.mark.parametrize('text', ['', 'intr 1 2 3\n', 'cpu 1 2\n', 'cpu a b c d\n'])
def test_cpu_times_reject_nonsense(text):
    with pytest.raises(ValueError):
        proc_stats.parse_cpu_times(text)


# Memory

def test_meminfo_in_bytes():
    info = proc_stats.parse_meminfo(MEMINFO + 'garbage line\nNoValue:\n')
    assert info['MemTotal'] == 8000000 * 1024
    assert info['HugePages_Total'] == 0  # no unit: taken as is
    assert 'NoValue' not in info


def test_memory_usage():
    usage = proc_stats.memory_usage(proc_stats.parse_meminfo(MEMINFO))
    assert usage == {'total_bytes': 8000000 * 1024, 'available_bytes': 6000000 * 1024,
                     'used_pct': 25.0}


def test_memory_available_of_an_old_kernel():
    info = proc_stats.parse_meminfo(MEMINFO.replace('MemAvailable:    6000000 kB\n', ''))
    usage = proc_stats.memory_usage(info)
    assert usage['available_bytes'] == (1000000 + 200000 + 3000000) * 1024
    assert usage['used_pct'] == 47.5


def test_memory_usage_with_nothing_known():
    assert proc_stats.memory_usage({}) == {'total_bytes': None, 'available_bytes': None,
                                           'used_pct': None}


def test_swap_usage():
    usage = proc_stats.swap_usage(proc_stats.parse_meminfo(MEMINFO))
    assert usage == {'total_bytes': 2000000 * 1024, 'free_bytes': 1500000 * 1024,
                     'used_pct': 25.0}


def test_no_swap_is_zero_percent_used():
    assert proc_stats.swap_usage({'SwapTotal': 0, 'SwapFree': 0})['used_pct'] == 0.0
    assert proc_stats.swap_usage({})['used_pct'] is None


# Uptime, file handles, processes

def test_uptime():
    assert proc_stats.parse_uptime('350735.47 234388.90\n') == 350735.47
    with pytest.raises(ValueError):
        proc_stats.parse_uptime('')


def test_file_nr():
    assert proc_stats.parse_file_nr('2304\t0\t9223372036854775807\n') == (2304, 9223372036854775807)
    with pytest.raises(ValueError):
        proc_stats.parse_file_nr('2304\n')


def test_file_handles_prefer_file_max(node):
    node.write('sys/fs/file-nr', '100\t0\t5000\n')
    assert proc_stats.read_file_handles(str(node.proc)) == (100, 5000)
    node.write('sys/fs/file-max', '7000\n')
    assert proc_stats.read_file_handles(str(node.proc)) == (100, 7000)


def test_list_pids_only_counts_processes(node):
    node.basics()
    node.process(42)
    node.write('self/stat', 'not a pid\n')
    node.write('net/dev', '')
    assert proc_stats.list_pids(str(node.proc)) == [1, 42]


# One process

def test_stat_with_a_command_name_holding_spaces_and_parentheses():
    text = proc_stat_line(77, 'weird) (name', 'R', 12)
    assert proc_stats.parse_proc_stat(text) == ('R', 12)
    with pytest.raises(ValueError):
        proc_stats.parse_proc_stat('77 no parentheses')


def test_vm_rss():
    assert proc_stats.parse_vm_rss(status_text('gunicorn', 2048)) == 2048 * 1024
    assert proc_stats.parse_vm_rss(status_text('kthreadd', None)) is None


def test_pid_alive(node):
    node.basics()
    node.process(10, state='S')
    node.process(11, state='Z', rss_kb=None)
    assert proc_stats.pid_alive(10, str(node.proc))
    assert not proc_stats.pid_alive(11, str(node.proc))  # a zombie
    assert not proc_stats.pid_alive(12, str(node.proc))  # gone
    assert not proc_stats.pid_alive(None, str(node.proc))
    assert not proc_stats.pid_alive(0, str(node.proc))


def test_pid_alive_without_proc_knows_nothing_alive(tmp_path):
    """No /proc, no identity: nothing is taken for alive (no signal is sent to find out)."""
    missing = str(tmp_path / 'no-proc')
    with mock.patch.object(proc_stats.os, 'kill') as kill:
        assert not proc_stats.pid_alive(os.getpid(), missing)
    kill.assert_not_called()


def test_descendants_and_tree_rss(node):
    node.basics()
    node.process(100, 'gunicorn', ppid=1, rss_kb=20000)
    node.process(101, 'gunicorn', ppid=100, rss_kb=90000)
    node.process(102, 'gunicorn', ppid=100, rss_kb=80000)
    node.process(103, 'helper', ppid=101, rss_kb=1000)
    node.process(200, 'other', ppid=1, rss_kb=5000)
    node.write('300/status', 'Name:\tvanished\n')  # exited while /proc was scanned: no stat
    assert proc_stats.descendants(100, str(node.proc)) == [101, 102, 103]
    assert proc_stats.descendants(103, str(node.proc)) == []
    assert proc_stats.read_tree_rss(100, str(node.proc)) == (20000 + 90000 + 80000 + 1000) * 1024
    assert proc_stats.read_rss(103, str(node.proc)) == 1000 * 1024


def test_tree_rss_of_a_missing_process_raises(node):
    node.basics()
    with pytest.raises(OSError):
        proc_stats.read_tree_rss(999, str(node.proc))


# cgroups

def test_parse_cgroup_v2():
    assert proc_stats.parse_cgroup('0::/system.slice/lepton-worker.service\n') == {
        '': '/system.slice/lepton-worker.service'}


def test_parse_cgroup_v1_and_hybrid():
    text = ('12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x:y\n'
            '0::/docker/abc\nnonsense\n')
    groups = proc_stats.parse_cgroup(text)
    assert groups['memory'] == '/docker/abc'
    assert groups['cpuacct'] == '/docker/abc'
    assert groups['name=systemd'] == '/x:y'
    assert groups[''] == '/docker/abc'


def test_cgroup_directories_stay_under_the_root():
    assert proc_stats.cgroup_directories('/sys/fs/cgroup', '/a/b') == [
        '/sys/fs/cgroup/a/b', '/sys/fs/cgroup/a', '/sys/fs/cgroup']
    assert proc_stats.cgroup_directories('/sys/fs/cgroup', '/../..') == ['/sys/fs/cgroup']
    assert proc_stats.cgroup_directories('/sys/fs/cgroup', '/') == ['/sys/fs/cgroup']
    assert proc_stats.cgroup_directories('/sys/fs/cgroup', '//a//b/') == [
        '/sys/fs/cgroup/a/b', '/sys/fs/cgroup/a', '/sys/fs/cgroup']


@pytest.mark.parametrize('text, limit', [
    ('max\n', None),
    ('1073741824\n', 1073741824),
    ('9223372036854771712\n', None),  # cgroup v1 without a limit
])
def test_parse_memory_limit(text, limit):
    assert proc_stats.parse_memory_limit(text) == limit


def test_memory_limit_v2_is_the_smallest_of_the_ancestors(node):
    node.basics()
    node.process(100)
    node.cgroup_file('system.slice/lepton-worker.service/memory.max', '2147483648\n')
    node.cgroup_file('system.slice/memory.max', '1073741824\n')
    assert proc_stats.read_memory_limit(100, str(node.proc), str(node.cgroup)) == 1073741824


def test_memory_limit_v2_max_is_none(node):
    node.basics()
    node.process(100)
    node.cgroup_file('system.slice/lepton-worker.service/memory.max', 'max\n')
    assert proc_stats.read_memory_limit(100, str(node.proc), str(node.cgroup)) is None


def test_memory_limit_v1_from_another_namespace(node):
    """The process's cgroup path is the host's; the container sees its own cgroup at the root."""
    node.basics()
    node.process(100, cgroup='9:memory:/docker/0123abcd\n1:cpu:/docker/0123abcd\n0::/\n')
    node.cgroup_file('memory/memory.limit_in_bytes', '536870912\n')
    assert proc_stats.read_memory_limit(100, str(node.proc), str(node.cgroup)) == 536870912
    node.cgroup_file('memory/memory.limit_in_bytes', '9223372036854771712\n')
    assert proc_stats.read_memory_limit(100, str(node.proc), str(node.cgroup)) is None


def test_memory_limit_without_a_memory_cgroup(node):
    node.basics()
    node.process(100, cgroup='1:cpu:/x\n')
    assert proc_stats.read_memory_limit(100, str(node.proc), str(node.cgroup)) is None
    node.process(101, cgroup=None)
    with pytest.raises(OSError):
        proc_stats.read_memory_limit(101, str(node.proc), str(node.cgroup))


# File systems

def test_disk_usage_like_df():
    stats = StatVfs(4096, 4096, 1000, 300, 250, 100, 40, 40, 0, 255)
    with mock.patch.object(proc_stats.os, 'statvfs', return_value=stats):
        usage = proc_stats.disk_usage('/data')
    # used 700 blocks of the 700 + 250 an unprivileged user can have
    assert usage == {'used_pct': round(100.0 * 700 / 950, 2), 'free_bytes': 250 * 4096,
                     'inodes_used_pct': 60.0}


def test_disk_usage_without_inodes_or_blocks():
    stats = StatVfs(4096, 4096, 0, 0, 0, 0, 0, 0, 0, 255)
    with mock.patch.object(proc_stats.os, 'statvfs', return_value=stats):
        usage = proc_stats.disk_usage('/proc')
    assert usage == {'used_pct': None, 'free_bytes': 0, 'inodes_used_pct': None}


def test_disk_usage_of_a_real_directory(tmp_path):
    usage = proc_stats.disk_usage(str(tmp_path))
    assert 0.0 <= usage['used_pct'] <= 100.0
    assert usage['free_bytes'] >= 0
    with pytest.raises(OSError):
        proc_stats.disk_usage(str(tmp_path / 'missing'))


# This machine's own /proc

@pytest.mark.skipif(not LINUX, reason='needs Linux /proc')
def test_real_proc():
    busy, total = proc_stats.read_cpu_times()
    assert 0 <= busy <= total
    assert proc_stats.memory_usage(proc_stats.read_meminfo())['total_bytes'] > 0
    assert proc_stats.read_uptime() > 0
    assert os.getpid() in proc_stats.list_pids()
    assert proc_stats.read_file_handles()[0] > 0
    assert proc_stats.read_rss(os.getpid()) > 0
    limit = proc_stats.read_memory_limit(os.getpid())
    assert limit is None or limit > 0


@pytest.mark.skipif(not LINUX, reason='needs Linux /proc')
def test_real_process_tree():
    child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                             stdin=subprocess.PIPE)
    try:
        assert child.pid in proc_stats.descendants(os.getpid())
        assert proc_stats.read_tree_rss(os.getpid()) > proc_stats.read_rss(os.getpid())
        assert proc_stats.pid_alive(child.pid)
    finally:
        child.communicate(b'')
    assert not proc_stats.pid_alive(child.pid)
