#!/usr/bin/python
# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: chaos_fault
short_description: Inject a fault into a lepton service on a lab node, stop faults, or report them
version_added: 0.2.0
description:
  - Chaos for the lepton-ops lab, so that the failure predictor learns from real faults. With
    O(state=started) it starts one fault in a detached runner process on the node and returns
    at once; the runner injects the fault, records the moment the node actually failed, undoes
    the fault and records how it ended, in a JSON record under O(chaos_dir).
  - Faults - V(kill) SIGKILLs the service's processes (a crash; its supervisor restarts it).
    V(hang) SIGSTOPs them for O(duration) seconds. V(memleak) starts a process attached to the
    service's memory budget whose resident memory grows by O(rate) bytes a second until the
    supervisor kills it with the service. V(cpuhog) runs O(processes) busy loops.
    V(diskfill) writes a runaway temporary file of the service (in its C(TMPDIR),
    C(<data_dir>/<service>.tmp), which the lepton supervisor empties when the service starts;
    O(data_dir) itself without O(service)) at O(rate) bytes a second, from a process attached to
    the service, until the file system is full; it keeps it O(hold) seconds and removes it.
  - A V(memleak) or V(diskfill) whose process a restart of the service killed before the
    failure ends V(remediated).
  - A failure is the service's health check failing, its memory budget hit, or its data
    directory full. The cut-off of a node's address (a network partition) is done on the
    controller, not by this module.
  - With O(state=stopped) every running fault on the node is stopped and undone; with
    O(state=query) the records are only reported.
  - Standard library only; Linux (C(/proc)).
author:
  - lepton-ops maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode no fault is started or stopped; the records are reported.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description:
      - V(started) starts O(fault); V(stopped) stops every running fault; V(query) reports.
    type: str
    choices: [started, stopped, query]
    default: query
  fault:
    description:
      - The fault to start. Required with O(state=started).
    type: str
    choices: [kill, hang, memleak, cpuhog, diskfill]
  id:
    description:
      - The fault's id, chosen by the caller (letters, digits, C(-) and C(_)); names its record
        C(<chaos_dir>/<id>.json). Required with O(state=started).
    type: str
  duration:
    description:
      - Seconds the fault may run, more than V(0) and at most V(3600). A progressive fault ends
        earlier when the node fails.
    type: float
    default: 60.0
  rate:
    description:
      - Bytes a second by which V(memleak) grows and V(diskfill) fills, more than V(0).
    type: int
    default: 4194304
  processes:
    description:
      - Busy processes of V(cpuhog), from V(1) to V(64).
    type: int
    default: 1
  hold:
    description:
      - Seconds V(diskfill) keeps the full file system full before removing its file.
    type: float
    default: 10.0
  service:
    description:
      - The lepton service the fault is aimed at.
    type: dict
    suboptions:
      name:
        description: The service's name, for example V(lepton-worker).
        type: str
        required: true
      url:
        description: Its health URL, fetched without authentication or proxies; 2xx is healthy.
        type: str
        required: true
      ca_file:
        description:
          - The fleet's CA certificate on the node; an C(https://) URL's certificate is verified
            against it.
        type: path
      state_file:
        description: The lepton supervisor's state file, whose C(child_pid) is the service.
        type: path
        required: true
  data_dir:
    description:
      - The node's data directory, which V(diskfill) fills.
    type: path
    default: /var/lib/lepton
  chaos_dir:
    description:
      - Where the fault records are kept. Not in O(data_dir), which V(diskfill) fills.
    type: path
    default: /opt/lepton/chaos
  health_timeout:
    description:
      - Seconds each health check may take, more than V(0) and at most V(10).
    type: float
    default: 1.0
notes:
  - The memory budget is the one the lepton supervisor enforces (its C(--memory-max-bytes)); a
    V(memleak) on a service without one grows to 4 GiB at most and then holds.
seealso:
  - module: lepton.ops.telemetry_facts
"""

EXAMPLES = r"""
- name: Leak 4 MiB a second into the worker's memory budget, for at most 5 minutes
  lepton.ops.chaos_fault:
    state: started
    fault: memleak
    id: leak-001
    rate: 4194304
    duration: 300
    service:
      name: lepton-worker
      url: http://127.0.1.2:8701/healthz
      state_file: /var/lib/lepton/lepton-worker.supervisor.json

- name: Stop every fault on the node
  lepton.ops.chaos_fault:
    state: stopped

- name: Report the faults and how they ended
  lepton.ops.chaos_fault:
    state: query
  register: chaos
"""

RETURN = r"""
faults:
  description: The fault records on the node, oldest first (with O(state=started), the new one
    is last).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The fault's id.
      type: str
      sample: leak-001
    fault:
      description: The fault.
      type: str
      sample: memleak
    params:
      description: Its duration, rate, processes and hold.
      type: dict
      sample: {"duration_s": 300.0, "rate_bytes_s": 4194304}
    pid:
      description: The runner's process.
      type: int
      sample: 4711
    started_at:
      description: When the fault started (unix seconds).
      type: float
      sample: 1795000000.5
    failed_at:
      description: When the node failed; V(null) if it did not.
      type: float
      sample: 1795000075.2
    failure:
      description: What failed, in words.
      type: str
      sample: "memory limit hit: the supervisor killed the service and the leak"
    ended_at:
      description: When the fault was undone; V(null) while it runs.
      type: float
      sample: 1795000075.4
    outcome:
      description: V(failed), V(remediated), V(survived), V(stopped), V(error), or
        V(abandoned) (its runner is gone without ending it); V(null) while it runs.
      type: str
      sample: failed
    detail:
      description: More about how it went.
      type: str
      sample: filled 120586240 bytes
stopped:
  description: Ids of the faults stopped by this call (O(state=stopped)).
  returned: always
  type: list
  elements: str
  sample: [leak-001]
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lepton.ops.plugins.module_utils import chaos_runner

ID_PATTERN = re.compile(r'^[A-Za-z0-9_-]{1,64}$')


def argument_spec():
    return dict(
        state=dict(type='str', default='query', choices=['started', 'stopped', 'query']),
        fault=dict(type='str', choices=list(chaos_runner.FAULTS)),
        id=dict(type='str'),
        duration=dict(type='float', default=60.0),
        rate=dict(type='int', default=4 * 1024 * 1024),
        processes=dict(type='int', default=1),
        hold=dict(type='float', default=10.0),
        service=dict(type='dict', options=dict(
            name=dict(type='str', required=True),
            url=dict(type='str', required=True),
            ca_file=dict(type='path'),
            state_file=dict(type='path', required=True),
        )),
        data_dir=dict(type='path', default='/var/lib/lepton'),
        chaos_dir=dict(type='path', default='/opt/lepton/chaos'),
        health_timeout=dict(type='float', default=1.0),
    )


def check_options(module):
    params = module.params
    if not 0 < params['duration'] <= 3600:
        module.fail_json(msg='duration must be more than 0 and at most 3600 seconds, got %s'
                         % params['duration'])
    if params['rate'] <= 0:
        module.fail_json(msg='rate must be more than 0 bytes a second, got %d' % params['rate'])
    if not 1 <= params['processes'] <= 64:
        module.fail_json(msg='processes must be from 1 to 64, got %d' % params['processes'])
    if params['hold'] < 0:
        module.fail_json(msg='hold must be 0 or more seconds, got %s' % params['hold'])
    if not 0 < params['health_timeout'] <= 10:
        module.fail_json(msg='health_timeout must be more than 0 and at most 10 seconds')
    if params['state'] != 'started':
        return
    for name in ('fault', 'id'):
        if not params[name]:
            module.fail_json(msg='state=started needs %s' % name)
    if not ID_PATTERN.match(params['id']):
        module.fail_json(msg='id %r may hold only letters, digits, - and _ (at most 64)'
                         % params['id'])
    if params['fault'] != 'diskfill' and not params['service']:
        module.fail_json(msg='fault %s needs service (name, url, state_file)' % params['fault'])


def spec_of(params):
    fault = params['fault']
    fault_params = {'duration_s': params['duration']}
    if fault in ('memleak', 'diskfill'):
        fault_params['rate_bytes_s'] = params['rate']
    if fault == 'cpuhog':
        fault_params['processes'] = params['processes']
    if fault == 'diskfill':
        fault_params['hold_s'] = params['hold']
    service = params['service'] or {}
    state_file = service.get('state_file')
    members = tmp_dir = None
    if state_file:
        suffix = '.supervisor.json'
        base = state_file[:-len(suffix)] if state_file.endswith(suffix) else state_file
        members, tmp_dir = base + '.members', base + '.tmp'
    return {
        'id': params['id'], 'fault': fault, 'params': fault_params,
        'url': service.get('url'), 'ca_file': service.get('ca_file'),
        'state_file': state_file, 'members_file': members,
        'tmp_dir': tmp_dir,
        'data_dir': params['data_dir'], 'health_timeout': params['health_timeout'],
    }


def reported(records):
    """The records as returned: an unfinished record whose runner is gone is 'abandoned'."""
    out = []
    for record in records:
        record = dict(record)
        if chaos_runner.abandoned(record):
            record['outcome'] = 'abandoned'
        record.pop('pid_start', None)
        record.pop('boot_id', None)
        out.append(record)
    return out


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_options(module)
    params = module.params
    chaos_dir = params['chaos_dir']
    result = dict(changed=False, faults=[], stopped=[])
    if module.check_mode or params['state'] == 'query':
        result['faults'] = reported(chaos_runner.read_records(chaos_dir))
        module.exit_json(**result)
    if params['state'] == 'stopped':
        result['stopped'] = chaos_runner.stop_runners(chaos_dir)
        result['changed'] = bool(result['stopped'])
        result['faults'] = reported(chaos_runner.read_records(chaos_dir))
        module.exit_json(**result)
    path = chaos_runner.record_path(chaos_dir, params['id'])
    if os.path.exists(path):
        module.fail_json(msg='a fault with id %s was already started on this node (%s)'
                         % (params['id'], path))
    spec = spec_of(params)
    try:
        os.makedirs(chaos_dir, mode=0o755, exist_ok=True)
        if params['fault'] in ('kill', 'hang'):
            chaos_runner.service_tree(spec['state_file'])  # fail here, not in the runner
        if params['fault'] == 'diskfill' and not os.path.isdir(params['data_dir']):
            raise ValueError('data_dir %s is not a directory' % params['data_dir'])
        chaos_runner.detach_and_run(spec, path)
    except (OSError, ValueError, RuntimeError) as error:
        module.fail_json(msg='cannot start %s: %s' % (params['fault'], error))
    time.sleep(0.05)
    result['changed'] = True
    result['faults'] = reported(chaos_runner.read_records(chaos_dir))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
