#!/usr/bin/python
# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: telemetry_facts
short_description: Gather a fleet node's telemetry (CPU, memory, disks, latency, service health)
version_added: 0.1.0
description:
  - Samples the node it runs on and returns the sample as the fact
    RV(ansible_facts.lepton_telemetry), with CPU utilisation and count, load, memory, swap, disk
    and inode use, processes and open files, TCP connect latency to the aggregator and the other
    nodes, the health, memory and restart count of each lepton service, and uptime.
  - Runs on the managed node with nothing but Python's standard library, so it works on a node
    that is not provisioned yet or is half broken. It does not fail because a C(/proc) file, a
    pid file or a service is missing or dead; the values it cannot read are V(null), and
    RV(ansible_facts.lepton_telemetry.errors) says which and why. It only fails on invalid options.
  - Every key of the fact is always present, whatever could be read (schema version 1).
  - The latency probes and health checks run in threads of their own, one per target and
    service, while the CPU is sampled, so the whole module takes about the longest of
    O(sample_interval), O(attempts) x O(connect_timeout) and O(health_timeout), not their sum.
  - Reads Linux's C(/proc), C(/sys/fs/cgroup) and C(statvfs); on other systems most values are
    V(null).
author:
  - lepton-ops maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details:
      - The module never changes anything; it runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
options:
  sample_interval:
    description:
      - Seconds over which CPU utilisation is sampled (the difference of two readings of
        C(/proc/stat)), from V(0) to V(5).
      - V(0) skips the sample; RV(ansible_facts.lepton_telemetry.cpu.util_pct) is then V(null).
    type: float
    default: 0.2
  paths:
    description:
      - Paths whose file system usage (used space, free bytes, inode use) is reported.
      - C(/) is always reported too, first.
      - A path that does not exist is reported with C(exists=false) and V(null) values, which is
        not an error (a node that is not provisioned yet has no C(/opt/lepton)).
    type: list
    elements: path
    default: [/opt/lepton, /etc/lepton, /var/lib/lepton]
  targets:
    description:
      - The hosts to time a TCP connect to, typically the aggregator and the other nodes of the
        fleet.
      - Each target is probed in a thread of its own; its O(attempts) connects follow one another.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The name the target is reported under, for example its inventory hostname.
          - Defaults to O(targets[].address).
        type: str
      address:
        description:
          - Host name or IP address of the target. A name is resolved once per run; the time
            that takes is not part of the latency.
        type: str
        required: true
      port:
        description:
          - The TCP port to time a connect to.
          - The default, the SSH port, is open on every node Ansible manages, before lepton-ops
            is deployed and while its services are down; the services' ports (C(8700) for the
            aggregator, C(8701) for the workers) are open only while they run. Note that C(sshd)
            logs each probe as a connection closed before authentication.
        type: int
        default: 22
      role:
        description: Whether the target is the fleet's aggregator or another node.
        type: str
        choices: [aggregator, peer]
        default: peer
  attempts:
    description:
      - Connects per target, from V(1) to V(20). The latency is the median of the successful
        ones; those that time out are counted as lost.
    type: int
    default: 3
  connect_timeout:
    description:
      - Seconds after which a connect counts as lost, more than V(0) and at most V(10).
    type: float
    default: 1.0
  services:
    description:
      - The lepton services on the node to check. A service that is not installed or not running
        is reported as such, it is not an error of the module.
      - Its process is the main process named by the systemd O(services[].unit), else the
        C(child_pid) of the supervisor's O(services[].state_file), else the pid in
        O(services[].pid_file), whichever first names a live process.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The service's name, for example V(lepton-worker) or V(lepton-aggregator).
        type: str
        required: true
      url:
        description:
          - The service's health URL (C(http://) or C(https://)), for example
            V(http://10.0.0.5:8701/healthz). It is fetched without authentication and without
            the proxies of the environment; a 2xx answer is healthy.
          - The lepton services listen on the node's inventory address (C(ansible_host)), not on
            C(127.0.0.1).
        type: str
        required: true
      ca_file:
        description:
          - The fleet's CA certificate on the node; an C(https://) URL's certificate must be
            signed by it and name the host (without it, the system's CAs).
        type: path
      state_file:
        description:
          - The JSON state file of the lepton supervisor, which runs the services where there is
            no systemd (as in the lab), for example
            V(/var/lib/lepton/lepton-worker.supervisor.json).
          - Its C(child_pid) is the service's process, its C(restarts) the restart count, its
            C(memory_max_bytes) the service's memory budget. Processes attached to the service
            (listed by pid and start time in C(<name>.members) next to the state file) count
            towards its memory, as processes in a systemd unit's cgroup do.
        type: path
      pid_file:
        description:
          - A file holding the pid of the service's process.
          - The lepton supervisor's own pid file (C(<name>.pid) in its run directory) names the
            supervisor, not the service; prefer O(services[].state_file) with it.
        type: path
      unit:
        description:
          - The systemd unit of the service, for example V(lepton-worker.service), on nodes whose
            services run under systemd.
          - Its C(MainPID) is the service's process and its C(NRestarts) (systemd 235 and later)
            the restart count, read with C(systemctl show). A unit that is not loaded is skipped,
            so one task can name both the unit and the supervisor's state file.
        type: str
  health_timeout:
    description:
      - Seconds each health check may wait for the connection and for each read, more than V(0)
        and at most V(10).
    type: float
    default: 1.0
notes:
  - The restart count is a counter kept by the supervisor (or systemd) since it last started the
    service on purpose; it goes back to zero when the service is deployed or restarted by
    hand. Readers should treat a smaller count than the last one as a reset.
  - A service's RV(ansible_facts.lepton_telemetry.services[].rss_bytes) is the resident memory of
    its process and all the process's descendants (a gunicorn master holds little, its workers
    the application). Pages shared between them count once per process, as when adding up the
    RSS column of C(ps), so the sum can exceed what the service really uses.
  - The memory limit is the smallest limit of the service process's memory cgroup and its
    ancestors (cgroup v2 C(memory.max), or cgroup v1 C(memory.limit_in_bytes)) and of the
    budget in the supervisor's state file (C(memory_max_bytes)).
  - Open file descriptors and their maximum are the whole system's (C(/proc/sys/fs/file-nr),
    C(/proc/sys/fs/file-max)), not per process.
seealso:
  - module: ansible.builtin.setup
"""

EXAMPLES = r"""
- name: List the other nodes of the inventory, with the aggregator's role
  ansible.builtin.set_fact:
    lepton_telemetry_targets: >-
      {{ lepton_telemetry_targets | default([]) + [{
           'name': item,
           'address': hostvars[item].ansible_host | default(item),
           'role': 'aggregator' if item in groups['aggregator'] | default([]) else 'peer'}] }}
  loop: "{{ groups['all'] | difference([inventory_hostname]) }}"

- name: Gather the node's telemetry, with the latency to the other nodes
  lepton.ops.telemetry_facts:
    targets: "{{ lepton_telemetry_targets | default([]) }}"

- name: Gather a worker's telemetry, with its service and the aggregator's service port
  lepton.ops.telemetry_facts:
    sample_interval: 0.5
    targets:
      - name: node1
        address: 10.0.0.11
        role: aggregator
      - name: node1-service
        address: 10.0.0.11
        port: 8700
        role: aggregator
      - name: node3
        address: 10.0.0.13
    services:
      - name: lepton-worker
        url: "http://{{ ansible_host }}:8701/healthz"
        unit: lepton-worker.service
        state_file: /var/lib/lepton/lepton-worker.supervisor.json

- name: Show the node's CPU utilisation and what could not be read
  ansible.builtin.debug:
    msg: >-
      {{ ansible_facts.lepton_telemetry.cpu.util_pct }}
      {{ ansible_facts.lepton_telemetry.errors }}
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the node's facts.
  returned: always
  type: dict
  contains:
    lepton_telemetry:
      description:
        - One telemetry sample of the node. Every key is always present; a value that could not
          be read is V(null), and RV(ansible_facts.lepton_telemetry.errors) says why.
      returned: always
      type: dict
      contains:
        schema:
          description: Version of the structure of this fact.
          returned: always
          type: int
          sample: 1
        timestamp:
          description: When the sample was complete, in seconds since the Unix epoch.
          returned: always
          type: float
          sample: 1767225600.123
        hostname:
          description: The node's host name.
          returned: always
          type: str
          sample: node2
        uptime_s:
          description: Seconds since the node booted, from C(/proc/uptime).
          returned: always
          type: float
          sample: 86400.52
        cpu:
          description: CPU count and utilisation.
          returned: always
          type: dict
          contains:
            count:
              description: Number of logical CPUs.
              returned: always
              type: int
              sample: 4
            util_pct:
              description:
                - Percentage of CPU time (all CPUs) not idle or waiting for I/O during the
                  sample, from C(/proc/stat).
                - V(null) when O(sample_interval=0) or C(/proc/stat) cannot be read.
              returned: always
              type: float
              sample: 37.5
            sample_s:
              description: How long the sample really lasted, in seconds; V(0.0) when skipped.
              returned: always
              type: float
              sample: 0.2
        load:
          description: Load averages over 1, 5 and 15 minutes.
          returned: always
          type: dict
          contains:
            1m:
              description: Load average over 1 minute.
              returned: always
              type: float
              sample: 0.42
            5m:
              description: Load average over 5 minutes.
              returned: always
              type: float
              sample: 0.35
            15m:
              description: Load average over 15 minutes.
              returned: always
              type: float
              sample: 0.3
        memory:
          description: Memory, from C(/proc/meminfo).
          returned: always
          type: dict
          contains:
            total_bytes:
              description: Total memory.
              returned: always
              type: int
              sample: 8264290304
            available_bytes:
              description: Memory available to new work without swapping (C(MemAvailable)).
              returned: always
              type: int
              sample: 6123454464
            used_pct:
              description: Percentage of the total that is not available.
              returned: always
              type: float
              sample: 25.9
        swap:
          description: Swap space, from C(/proc/meminfo).
          returned: always
          type: dict
          contains:
            total_bytes:
              description: Total swap space; V(0) when there is none.
              returned: always
              type: int
              sample: 2147479552
            free_bytes:
              description: Free swap space.
              returned: always
              type: int
              sample: 2147479552
            used_pct:
              description: Percentage of the swap space in use; V(0.0) when there is none.
              returned: always
              type: float
              sample: 0.0
        disks:
          description: File system usage of C(/) and each of O(paths), in that order.
          returned: always
          type: list
          elements: dict
          contains:
            path:
              description: The path.
              returned: always
              type: str
              sample: /var/lib/lepton
            exists:
              description: Whether the path exists. The other values are V(null) when not.
              returned: always
              type: bool
              sample: true
            used_pct:
              description: Percentage of the file system's space in use, as C(df) shows it.
              returned: always
              type: float
              sample: 41.37
            free_bytes:
              description: Space still available to unprivileged users.
              returned: always
              type: int
              sample: 52613349376
            inodes_used_pct:
              description: Percentage of the file system's inodes in use; V(null) when it has no
                fixed number of them.
              returned: always
              type: float
              sample: 3.12
        processes:
          description: Processes and open files of the whole node.
          returned: always
          type: dict
          contains:
            count:
              description: Number of processes (the pid directories of C(/proc)).
              returned: always
              type: int
              sample: 187
            open_fds:
              description: File handles allocated on the node (first value of
                C(/proc/sys/fs/file-nr)).
              returned: always
              type: int
              sample: 2304
            max_fds:
              description: The node's limit on file handles (C(/proc/sys/fs/file-max)).
              returned: always
              type: int
              sample: 9223372036854775807
        latency:
          description: One entry per target of O(targets), in their order.
          returned: always
          type: list
          elements: dict
          contains:
            name:
              description: The target's name.
              returned: always
              type: str
              sample: node1
            address:
              description: The target's address.
              returned: always
              type: str
              sample: 10.0.0.11
            port:
              description: The TCP port connected to.
              returned: always
              type: int
              sample: 22
            role:
              description: V(aggregator) or V(peer).
              returned: always
              type: str
              sample: aggregator
            attempts:
              description: Connects attempted.
              returned: always
              type: int
              sample: 3
            lost:
              description: Connects that timed out.
              returned: always
              type: int
              sample: 0
            latency_ms:
              description: Median time of the successful connects, in milliseconds; V(null) when
                none succeeded.
              returned: always
              type: float
              sample: 0.412
            reachable:
              description: Whether any connect succeeded.
              returned: always
              type: bool
              sample: true
        services:
          description: One entry per service of O(services), in their order.
          returned: always
          type: list
          elements: dict
          contains:
            name:
              description: The service's name.
              returned: always
              type: str
              sample: lepton-worker
            url:
              description: Its health URL.
              returned: always
              type: str
              sample: http://10.0.0.12:8701/healthz
            healthy:
              description: Whether the health URL answered with a 2xx status.
              returned: always
              type: bool
              sample: true
            status_code:
              description: HTTP status of the health URL's answer; V(null) when none came.
              returned: always
              type: int
              sample: 200
            latency_ms:
              description: Time until the health URL's answer was read, in milliseconds; V(null)
                when none came.
              returned: always
              type: float
              sample: 2.731
            pid:
              description: The service's process; V(null) when no live one was found.
              returned: always
              type: int
              sample: 4711
            running:
              description: Whether the service's process is alive.
              returned: always
              type: bool
              sample: true
            rss_bytes:
              description: Resident memory of the process and its descendants, and of the
                processes attached to it in the supervisor's C(<name>.members) file.
              returned: always
              type: int
              sample: 187375616
            memory_limit_bytes:
              description: The cgroup memory limit of the process, or the supervisor's memory
                budget if smaller; V(null) when none is set.
              returned: always
              type: int
              sample: 1073741824
            restarts:
              description: How often the supervisor or systemd restarted the service since it
                last started it on purpose.
              returned: always
              type: int
              sample: 0
        errors:
          description: What could not be read, and why, one short line each.
          returned: always
          type: list
          elements: str
          sample:
            - "service lepton-worker: health check: Connection refused"
            - "service lepton-worker: state file /var/lib/lepton/lepton-worker.supervisor.json:
              No such file or directory"
"""

from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lepton.ops.plugins.module_utils import node_facts

LIMITS = {
    'sample_interval': (0.0, 5.0, True),  # (lowest, highest, lowest allowed)
    'connect_timeout': (0.0, 10.0, False),
    'health_timeout': (0.0, 10.0, False),
    'attempts': (1, 20, True),
}


def argument_spec():
    return dict(
        sample_interval=dict(type='float', default=0.2),
        paths=dict(type='list', elements='path', default=list(node_facts.DEFAULT_PATHS)),
        targets=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str'),
            address=dict(type='str', required=True),
            port=dict(type='int', default=22),
            role=dict(type='str', default='peer', choices=['aggregator', 'peer']),
        )),
        attempts=dict(type='int', default=3),
        connect_timeout=dict(type='float', default=1.0),
        services=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            url=dict(type='str', required=True),
            ca_file=dict(type='path'),
            state_file=dict(type='path'),
            pid_file=dict(type='path'),
            unit=dict(type='str'),
        )),
        health_timeout=dict(type='float', default=1.0),
    )


def check_options(module):
    params = module.params
    for name, (lowest, highest, lowest_allowed) in LIMITS.items():
        value = params[name]
        too_low = value < lowest if lowest_allowed else value <= lowest
        if too_low or value > highest:
            module.fail_json(msg='%s must be %s %s and at most %s, not %s'
                             % (name, 'at least' if lowest_allowed else 'more than',
                                lowest, highest, value))
    for target in params['targets']:
        if not 1 <= target['port'] <= 65535:
            module.fail_json(msg='targets: port %d of %s is not a TCP port'
                             % (target['port'], target['address']))
    for service in params['services']:
        parts = urlsplit(service['url'])
        if parts.scheme not in ('http', 'https') or not parts.netloc:
            module.fail_json(msg='services: the url of %s must be an http:// or https:// URL, '
                                 'not %r' % (service['name'], service['url']))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_options(module)
    module.exit_json(changed=False, ansible_facts={'lepton_telemetry': node_facts.gather(module)})


if __name__ == '__main__':
    main()
