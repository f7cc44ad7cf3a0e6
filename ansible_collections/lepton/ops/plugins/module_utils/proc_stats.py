# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Readers of a Linux node's own state: /proc, cgroups and file system usage.

Standard library only, so that modules running on a node that is not provisioned yet (or is half
broken) can use them. The ``parse_*`` functions take the text of a file and return plain values;
the ``read_*`` functions read the files, under a ``proc`` root (``/proc``) and a cgroup root
(``/sys/fs/cgroup``) that tests can point elsewhere. Both raise ``OSError`` when a file cannot be
read and ``ValueError`` when its content makes no sense: callers decide what a failure means.
"""

from __future__ import annotations

import contextlib
import os
import posixpath

PROC = '/proc'
CGROUP_ROOT = '/sys/fs/cgroup'

# /proc/stat "cpu" fields summed into the total: user nice system idle iowait irq softirq steal.
# guest and guest_nice (fields 9 and 10) are already counted in user and nice.
CPU_FIELDS = 8
CPU_IDLE = 3
CPU_IOWAIT = 4

# A cgroup v1 memory.limit_in_bytes this large means "no limit" (PAGE_COUNTER_MAX pages).
CGROUP_V1_UNLIMITED = 2 ** 62

# Process states of /proc/<pid>/stat that are not a running process.
DEAD_STATES = ('Z', 'X', 'x')


def read_text(path):
    """The whole text of ``path`` (undecodable bytes replaced)."""
    with open(path, encoding='utf-8', errors='replace') as handle:
        return handle.read()


def percent(part, whole, digits=2):
    """``part`` as a percentage of ``whole``, rounded; None when ``whole`` is not positive."""
    if whole is None or part is None or whole <= 0:
        return None
    return round(100.0 * part / whole, digits)


# CPU

def parse_cpu_times(text):
    """``(busy, total)`` clock ticks since boot, from the aggregate ``cpu`` line of /proc/stat."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == 'cpu':
            values = [int(value) for value in fields[1:1 + CPU_FIELDS]]
            if len(values) <= CPU_IDLE:
                raise ValueError('the "cpu" line has %d fields' % len(values))
            idle = values[CPU_IDLE] + (values[CPU_IOWAIT] if len(values) > CPU_IOWAIT else 0)
            total = sum(values)
            return total - idle, total
    raise ValueError('no "cpu" line')


def cpu_util_pct(before, after):
    """Busy share of the CPU time between two ``parse_cpu_times`` samples, in percent.

    None when no time passed between them (or the counters went backwards).
    """
    busy = after[0] - before[0]
    total = after[1] - before[1]
    if total <= 0:
        return None
    return percent(min(max(busy, 0), total), total)


def read_cpu_times(proc=PROC):
    return parse_cpu_times(read_text(os.path.join(proc, 'stat')))


# Memory

def parse_meminfo(text):
    """/proc/meminfo as ``{name: bytes}`` (values given in kB are converted)."""
    info = {}
    for line in text.splitlines():
        name, separator, rest = line.partition(':')
        fields = rest.split()
        if not separator or not fields:
            continue
        try:
            value = int(fields[0])
        except ValueError:
            continue
        if len(fields) > 1 and fields[1].lower() == 'kb':
            value *= 1024
        info[name.strip()] = value
    return info


def memory_usage(info):
    """``{total_bytes, available_bytes, used_pct}`` from ``parse_meminfo``; None where missing.

    Kernels older than 3.14 have no MemAvailable: MemFree + Buffers + Cached stands in for it.
    """
    total = info.get('MemTotal')
    available = info.get('MemAvailable')
    if available is None and all(key in info for key in ('MemFree', 'Buffers', 'Cached')):
        available = info['MemFree'] + info['Buffers'] + info['Cached']
    used_pct = None
    if total is not None and available is not None:
        used_pct = percent(max(total - available, 0), total)
    return {'total_bytes': total, 'available_bytes': available, 'used_pct': used_pct}


def swap_usage(info):
    """``{total_bytes, free_bytes, used_pct}`` from ``parse_meminfo``.

    used_pct is 0.0 when there is no swap.
    """
    total = info.get('SwapTotal')
    free = info.get('SwapFree')
    used_pct = None
    if total == 0:
        used_pct = 0.0
    elif total is not None and free is not None:
        used_pct = percent(max(total - free, 0), total)
    return {'total_bytes': total, 'free_bytes': free, 'used_pct': used_pct}


def read_meminfo(proc=PROC):
    return parse_meminfo(read_text(os.path.join(proc, 'meminfo')))


# Uptime, file handles, processes

def parse_uptime(text):
    """Seconds since boot, the first number of /proc/uptime."""
    fields = text.split()
    if not fields:
        raise ValueError('empty')
    return float(fields[0])


def read_uptime(proc=PROC):
    return parse_uptime(read_text(os.path.join(proc, 'uptime')))


def parse_file_nr(text):
    """``(allocated, maximum)`` file handles from /proc/sys/fs/file-nr."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError('expected 3 numbers, got %r' % text.strip())
    return int(fields[0]), int(fields[2])


def read_file_handles(proc=PROC):
    """``(allocated, maximum)`` file handles of the whole system.

    The maximum is /proc/sys/fs/file-max, or the third number of file-nr if that cannot be read.
    """
    allocated, maximum = parse_file_nr(read_text(os.path.join(proc, 'sys', 'fs', 'file-nr')))
    with contextlib.suppress(OSError, ValueError):
        maximum = int(read_text(os.path.join(proc, 'sys', 'fs', 'file-max')).strip())
    return allocated, maximum


def list_pids(proc=PROC):
    """The pids of all processes (not threads): the numeric entries of /proc, sorted."""
    return sorted(int(name) for name in os.listdir(proc) if name.isdigit())


# One process

def parse_proc_stat(text):
    """``(state, ppid)`` from /proc/<pid>/stat.

    The command name (second field) is in parentheses and may itself hold spaces and
    parentheses: the fields that follow start after the last closing parenthesis.
    """
    end = text.rfind(')')
    if end < 0:
        raise ValueError('no command name')
    fields = text[end + 1:].split()
    if len(fields) < 2:
        raise ValueError('too few fields')
    return fields[0], int(fields[1])


def parse_start_time(text):
    """When the process started (clock ticks since boot, field 22) from /proc/<pid>/stat."""
    fields = text[text.rfind(')') + 1:].split()
    if len(fields) < 20:
        raise ValueError('too few fields')
    return int(fields[19])


def parse_vm_rss(text):
    """Resident memory in bytes from /proc/<pid>/status (VmRSS), None when it has none.

    Kernel threads and zombies have no VmRSS line.
    """
    for line in text.splitlines():
        if line.startswith('VmRSS:'):
            fields = line.split()
            value = int(fields[1])
            if len(fields) > 2 and fields[2].lower() == 'kb':
                value *= 1024
            return value
    return None


def process_state(pid, proc=PROC):
    """The state letter of process ``pid`` (``R``, ``S``, ``Z``...), None when it does not exist."""
    try:
        return parse_proc_stat(read_text(os.path.join(proc, str(pid), 'stat')))[0]
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it exited while being read
        return None


def pid_alive(pid, proc=PROC):
    """Whether ``pid`` names a live process (a zombie is not one).

    Without a readable /proc nothing is known to be alive.
    """
    if pid is None or pid <= 0 or not os.path.isdir(proc):
        return False
    try:
        state = process_state(pid, proc)
    except (OSError, ValueError):
        state = '?'
    return state is not None and state not in DEAD_STATES


def descendants(pid, proc=PROC):
    """The pids of all descendants of ``pid`` (children, their children...), sorted.

    Processes that exit while /proc is scanned are skipped.
    """
    children = {}
    for other in list_pids(proc):
        try:
            dummy, parent = parse_proc_stat(read_text(os.path.join(proc, str(other), 'stat')))
        except (OSError, ValueError):
            continue
        children.setdefault(parent, []).append(other)
    found = []
    pending = list(children.get(pid, []))
    seen = {pid}
    while pending:
        child = pending.pop()
        if child in seen:
            continue
        seen.add(child)
        found.append(child)
        pending.extend(children.get(child, []))
    return sorted(found)


def read_rss(pid, proc=PROC):
    """VmRSS of ``pid`` in bytes (0 when it has none); raises OSError when it cannot be read."""
    return parse_vm_rss(read_text(os.path.join(proc, str(pid), 'status'))) or 0


def read_tree_rss(pid, proc=PROC):
    """Summed VmRSS of ``pid`` and all its descendants, in bytes.

    Pages shared between the processes (a pre-forking server's parent and workers) count once
    per process, as when adding up ``ps`` RSS columns. Raises OSError when ``pid`` itself cannot
    be read; descendants that exit meanwhile are left out.
    """
    total = read_rss(pid, proc)
    for child in descendants(pid, proc):
        try:
            total += read_rss(child, proc)
        except OSError:
            continue
    return total


# cgroups

def parse_cgroup(text):
    """/proc/<pid>/cgroup as ``{controller: path}``; the cgroup v2 path is under ``''``.

    Lines are ``hierarchy-id:controller,controller:path``; the path may hold colons.
    """
    groups = {}
    for line in text.splitlines():
        parts = line.strip().split(':', 2)
        if len(parts) != 3:
            continue
        dummy, controllers, path = parts
        if not controllers:
            groups[''] = path
            continue
        for controller in controllers.split(','):
            groups[controller] = path
    return groups


def cgroup_directories(base, path):
    """The directories of cgroup ``path`` and of its ancestors under ``base``, deepest first.

    ``..`` components (a process outside the reader's cgroup namespace) cannot climb above
    ``base``.
    """
    path = posixpath.normpath('/' + path.lstrip('/'))  # '//x' would stay '//x'
    directories = []
    while True:
        directories.append(os.path.join(base, path.lstrip('/')) if path != '/' else base)
        parent = posixpath.dirname(path)
        if parent == path:
            return directories
        path = parent


def parse_memory_limit(text):
    """A cgroup memory limit file's value in bytes; None for no limit (``max`` or huge)."""
    value = text.strip()
    if value == 'max':
        return None
    limit = int(value)
    if limit >= CGROUP_V1_UNLIMITED:
        return None
    return limit


def read_memory_limit(pid, proc=PROC, cgroup_root=CGROUP_ROOT):
    """The memory limit that applies to ``pid``, in bytes; None when no limit is set.

    The smallest limit of the process's memory cgroup and its ancestors: cgroup v1
    (``<root>/memory/<path>/memory.limit_in_bytes``) when the process has a v1 memory controller,
    else cgroup v2 (``<root>/<path>/memory.max``). Directories or files that do not exist (a
    cgroup path seen from another namespace, a controller that is not enabled) are skipped.
    Raises OSError when /proc/<pid>/cgroup cannot be read.
    """
    groups = parse_cgroup(read_text(os.path.join(proc, str(pid), 'cgroup')))
    if 'memory' in groups:
        base, name = os.path.join(cgroup_root, 'memory'), 'memory.limit_in_bytes'
        path = groups['memory']
    elif '' in groups:
        base, name, path = cgroup_root, 'memory.max', groups['']
    else:
        return None
    limits = []
    for directory in cgroup_directories(base, path):
        try:
            limit = parse_memory_limit(read_text(os.path.join(directory, name)))
        except (OSError, ValueError):
            continue
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


# File systems

def disk_usage(path):
    """``{used_pct, free_bytes, inodes_used_pct}`` of the file system that holds ``path``.

    Like ``df``: used_pct is used / (used + available to unprivileged users), free_bytes what
    unprivileged users can still write (``f_bavail * f_frsize``). A percentage is None when the
    file system reports no blocks or inodes (pseudo file systems, btrfs inodes).
    """
    stats = os.statvfs(path)
    used = stats.f_blocks - stats.f_bfree
    return {
        'used_pct': percent(used, used + stats.f_bavail),
        'free_bytes': stats.f_bavail * stats.f_frsize,
        'inodes_used_pct': percent(stats.f_files - stats.f_ffree, stats.f_files),
    }
