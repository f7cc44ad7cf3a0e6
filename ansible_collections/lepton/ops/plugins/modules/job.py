#!/usr/bin/python
# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job
short_description: Run a distributed job on a lepton-ops fleet and return its result
version_added: 0.1.0
description:
  - Submits a job to the aggregator of a deployed lepton-ops fleet, follows it until it finishes
    and returns its result, as C(lepton-ops job run --json) does.
  - The aggregator splits the O(tasks) tasks of the job into shards over the workers, in proportion
    to their C(lepton_weight) (O(strategy=weighted)) or evenly (O(strategy=equal)), sends the shards
    to the workers and reduces their results exactly.
  - Job kinds that take files, such as V(predict) (a model and the rows to score), are given them
    with O(artifacts), as C(lepton-ops job run --model M --data D) is. The files are read and
    checked on the controller and uploaded to the aggregator once (by content, so a file it already
    holds is not sent again); the job names them by their SHA-256.
  - The job belongs to the aggregator, which persists it. When the module stops waiting, because of
    O(wait=false) or because O(timeout) expired, the job goes on; C(lepton-ops job watch JOB_ID)
    follows it from there.
  - The aggregator's address comes from O(aggregator_url), else from the one host of the
    C(aggregator) group of O(inventory) (its C(ansible_host) and C(lepton_aggregator_port), default
    V(8700)). The bearer token is read from C(<state_dir>/secrets/service-token), the file that
    C(lepton-ops deploy) and the C(lepton.ops.deploy) playbook create. The token is never a module
    option, never returned and never logged.
  - Every run that is not in check mode submits a new job, so the module always reports
    RV(ignore:changed=true) when it submitted one. A job that ends V(failed) makes the module fail
    with the job's reason; RV(job_id) and RV(status) are returned all the same.
  - This is a thin adapter over the C(lepton_ops.jobs) Python library, the code behind the
    C(lepton-ops job) command. It runs where the library is installed, that is on the controller;
    see the examples.
author:
  - lepton-ops maintainers (!UNKNOWN)
requirements:
  - lepton-ops (the Python package, in the Python interpreter that runs this module)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode no job is submitted, no artifact is uploaded and the aggregator is not
        contacted. The job kind checks O(params), O(tasks) and the files of O(artifacts) (they are
        read and loaded on the controller); the aggregator's address is worked out; with
        O(inventory) the module returns RV(plan), how the tasks would be split over the inventory's
        workers.
      - Check mode reports RV(ignore:changed=true), because a real run always submits a new job.
      - A missing or unusable token file is a warning in check mode, not a failure, so that a
        playbook that deploys the fleet and then runs a job can be checked before its first run.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  kind:
    description:
      - The job kind, for example V(mean), V(pi) or V(sleep); C(lepton-ops) can be extended with
        more kinds through the C(lepton_ops.job_kinds) entry-point group.
    type: str
    required: true
  params:
    description:
      - The job kind's parameters, for example C(task_size) and C(seed) for V(mean), C(task_ms) for
        V(sleep). Parameters left out take the kind's defaults.
      - They are checked by the job kind before the job is submitted; a parameter the kind does not
        take, or a value out of its bounds, makes the module fail with RV(error_kind=BadInput).
      - The number of tasks is O(tasks), not a parameter; the files a kind takes are O(artifacts).
    type: dict
    default: {}
  artifacts:
    description:
      - The files the job kind takes, by artifact name, each the path of a file on the controller
        (where the module runs); for V(predict) C(model), a scikit-learn model saved with skops
        (a C(.skops) file), and C(data), the rows to score (a 2-D C(.npy) array or numeric C(.csv),
        with an optional header row). Kinds without artifacts (V(mean), V(pi), V(sleep)) take none.
      - C(~) and environment variables in a path are expanded. A relative path is relative to the
        module's working directory; prefer absolute paths, for example under C(playbook_dir).
      - Every file is read and loaded by the job kind before anything is sent, in check mode too,
        so a missing or unreadable file, one of the wrong type or over 64 MiB, a model file that
        holds anything but scikit-learn, numpy or scipy objects, or data that does not fit the
        model, makes the module fail with RV(error_kind=BadInput).
      - The files are then uploaded to the aggregator, except those it already holds.
    type: dict
    default: {}
  tasks:
    description:
      - How many tasks the job has (task indices V(0) to O(tasks) minus one).
      - Required unless the kind's artifacts imply it; a V(predict) job has one task per row of its
        C(data), and O(tasks) may be left out. When given, it must agree with the artifacts, or the
        module fails with RV(error_kind=BadInput).
    type: int
  strategy:
    description:
      - How the tasks are split over the workers.
      - V(weighted) gives each worker a share in proportion to its C(lepton_weight) (largest
        remainder, so the counts add up exactly); V(equal) is the naive even split, for comparison.
    type: str
    choices: [weighted, equal]
    default: weighted
  shard_size:
    description:
      - Tasks per shard, the unit of work sent to a worker.
      - When omitted, about four shards per worker, of 1 to 1000 tasks each.
    type: int
  wait:
    description:
      - Follow the job until it finishes and return its result (V(true)).
      - With V(false) the module returns as soon as the job is submitted, with its RV(job_id); the
        job goes on on the aggregator.
    type: bool
    default: true
  timeout:
    description:
      - How many seconds to wait for the job to finish when O(wait=true); when omitted, the module
        waits as long as the job runs.
      - When the time is up the module fails with RV(error_kind=JobTimeout) and returns RV(job_id);
        the job itself goes on on the aggregator.
      - Ignored when O(wait=false).
    type: float
  inventory:
    description:
      - The fleet's inventory (a file or directory; any inventory source Ansible accepts), read
        with Ansible's inventory API. Its C(aggregator) group must hold exactly one host.
      - Required unless O(aggregator_url) is given. In check mode it also gives the workers and
        their weights for RV(plan).
    type: path
  aggregator_url:
    description:
      - The aggregator's base URL, for example V(http://127.0.1.5:8700), when it is not to be taken
        from O(inventory) (for example through an SSH tunnel).
      - When omitted, the environment variable E(LEPTON_OPS_AGGREGATOR_URL) is used if it is set, as
        by the C(lepton-ops) command.
    type: str
  state_dir:
    description:
      - The controller's lepton-ops state directory; the service token is read from
        C(secrets/service-token) in it.
      - When omitted, the same directory as the C(lepton-ops) command uses, E(LEPTON_OPS_STATE_DIR)
        if it is set, else the per-user state directory (C(~/.local/state/lepton-ops) on Linux).
    type: path
notes:
  - The module must run with a Python interpreter that has lepton-ops installed, normally the one
    running C(ansible-playbook). Run it on V(localhost) (C(delegate_to) or C(connection=local)) with
    C(ansible_python_interpreter) set to C(ansible_playbook_python), and with C(run_once) when the
    play targets the fleet's hosts, as in the examples.
  - The fleet must be deployed (C(lepton-ops deploy) or the C(lepton.ops.deploy) playbook) with the
    same O(state_dir), so that the module holds the token the aggregator expects.
  - The module does not retry a job; each run submits a new one. Use O(wait=false) and
    C(lepton-ops job watch) for a job that should outlive the playbook.
  - Artifact files are uploaded to the aggregator, which keeps them with its jobs; a file that it
    already holds (the same content) is not uploaded again.
"""

EXAMPLES = r"""
- name: Run a mean job over the fleet's workers and wait for its result
  lepton.ops.job:
    kind: mean
    tasks: 1000
    params:
      task_size: 1000
      seed: 7
    inventory: "{{ inventory_file }}"
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: lepton_job

- name: Show the mean and how the work was spread
  ansible.builtin.debug:
    msg: >-
      mean {{ lepton_job.result.mean }} of {{ lepton_job.result.count }} numbers in
      {{ lepton_job.makespan_s }} s; tasks per node:
      {{ lepton_job.per_node | dict2items | map(attribute='value.tasks') | list }}
  run_once: true

- name: Show how a job would be split, without running it
  lepton.ops.job:
    kind: sleep
    tasks: 200
    strategy: equal
    inventory: "{{ inventory_file }}"
  check_mode: true
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: lepton_job_plan

- name: Submit a long job through a tunnel to the aggregator and do not wait for it
  lepton.ops.job:
    kind: sleep
    tasks: 100000
    params:
      task_ms: 50
    wait: false
    aggregator_url: http://127.0.0.1:18700
    state_dir: /var/lib/lepton-ops
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: lepton_job_submitted

- name: Score the rows of a data file with a scikit-learn model (one task per row)
  lepton.ops.job:
    kind: predict
    artifacts:
      model: "{{ playbook_dir }}/files/churn.skops"
      data: "{{ playbook_dir }}/files/customers.npy"
    inventory: "{{ inventory_file }}"
    timeout: 600
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: lepton_predict

- name: Show how many rows were predicted as each class
  ansible.builtin.debug:
    msg: >-
      {{ lepton_predict.result.rows }} rows scored by {{ lepton_predict.result.estimator }}:
      {{ lepton_predict.result.class_counts }}
  run_once: true

- name: Check the files of a predict job (CSV data this time) and plan it, without uploading them
  lepton.ops.job:
    kind: predict
    artifacts:
      model: "{{ playbook_dir }}/files/churn.skops"
      data: "{{ playbook_dir }}/files/customers.csv"
    inventory: "{{ inventory_file }}"
  check_mode: true
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: lepton_predict_plan

- name: Wait at most ten minutes; the job goes on if it takes longer
  lepton.ops.job:
    kind: pi
    tasks: 5000
    params:
      task_size: 100000
    timeout: 600
    inventory: "{{ inventory_file }}"
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: lepton_job_pi
  failed_when:
    - lepton_job_pi is failed
    - lepton_job_pi.error_kind | default('') != 'JobTimeout'
"""

RETURN = r"""
job_id:
  description:
    - The job's id on the aggregator, for C(lepton-ops job status|watch|result JOB_ID).
    - Also returned when the job failed, when O(timeout) expired, or when following the job failed
      after it was submitted.
  returned: when a job was submitted
  type: str
  sample: 5d0c1f0b8e3a4f7d9a2c6b1e0f4d3a29
status:
  description:
    - The job's status when the module returned. V(succeeded) or V(failed) once the job finished;
      V(running) with O(wait=false) or when O(timeout) expired.
  returned: when a job was submitted, unless following it failed
  type: str
  sample: succeeded
kind:
  description: The job kind.
  returned: when a job was submitted
  type: str
  sample: mean
result:
  description:
    - The job's result, as the job kind makes it; its keys depend on the kind (for V(mean) C(count),
      C(sum), C(mean), C(variance), C(std), C(min), C(max); for V(pi) C(pi_estimate),
      C(std_error), C(inside), C(total); for V(sleep) C(tasks), C(slept_s)).
    - For V(predict), C(task) (V(classifier) or V(regressor)), C(estimator) (the model's class
      name), C(rows) and C(predictions), each row's prediction in row order (V(null) for jobs of
      more than 10000 rows); a classifier adds C(class_counts), the number of rows predicted as
      each class, and C(mean_proba), the mean probability of each class (V(null) for models
      without C(predict_proba)); a regressor adds C(mean), C(min) and C(max) of the predictions.
    - V(null) when the job failed.
  returned: when the job finished (O(wait=true))
  type: dict
  sample:
    count: 1000000
    sum: 499985.3
    mean: 0.4999853
    variance: 0.0833298
    std: 0.2886690
    min: 2.1e-07
    max: 0.9999996
per_node:
  description:
    - The work each node did, keyed by the node's inventory name. Each value has C(tasks), the
      number of tasks the node computed (an integer), and C(seconds), the time it spent on them.
    - A node that lost its shards to others (it stopped answering) counts only what it finished.
  returned: when the job finished (O(wait=true))
  type: dict
  sample:
    node1:
      tasks: 100
      seconds: 0.82
    node2:
      tasks: 200
      seconds: 0.85
makespan_s:
  description: Seconds from the job's submission to its end on the aggregator.
  returned: when the job finished (O(wait=true))
  type: float
  sample: 1.27
plan:
  description:
    - How the job's tasks would be split over the workers of O(inventory), as
      C(lepton-ops job plan --json) shows it. The aggregator makes the same plan from its own list
      of workers, which C(lepton.ops.deploy) writes from the same inventory.
    - Times are in task units; they are seconds when a task takes one second at speed 1.
  returned: in check mode, when O(inventory) is given
  type: dict
  contains:
    strategy:
      description: The strategy, V(weighted) or V(equal).
      returned: success
      type: str
      sample: weighted
    tasks:
      description: The number of tasks.
      returned: success
      type: int
      sample: 300
    shard_size:
      description:
        - The shard size asked for with O(shard_size); V(null) when omitted, each worker's tasks
          are then cut into about four shards (see RV(plan.nodes[].shard_size)).
      returned: success
      type: int
      sample: 25
    task_s:
      description: Time one task takes on a node of speed 1 (always V(1.0) here, a task unit).
      returned: success
      type: float
      sample: 1.0
    total_weight:
      description: The sum of the workers' weights.
      returned: success
      type: int
      sample: 3
    makespan_s:
      description: Predicted time until the last worker is done.
      returned: success
      type: float
      sample: 100.0
    ideal_makespan_s:
      description: The time if all tasks were spread exactly by speed.
      returned: success
      type: float
      sample: 100.0
    nodes:
      description: Each worker's part, in the inventory's name order.
      returned: success
      type: list
      elements: dict
      contains:
        name:
          description: The worker's inventory name.
          returned: success
          type: str
          sample: node1
        weight:
          description: Its C(lepton_weight); V(0) means drained.
          returned: success
          type: int
          sample: 1
        speed:
          description:
            - Its relative speed (C(lepton_speed), else its weight over the smallest weight).
          returned: success
          type: float
          sample: 1.0
        load_share:
          description: Its load share, weight over the sum of the weights.
          returned: success
          type: float
          sample: 0.3333333333333333
        load_share_exact:
          description: The load share as an exact fraction.
          returned: success
          type: str
          sample: 1/3
        quota:
          description:
            - The strategy's exact quota of tasks, as a fraction; RV(plan.nodes[].tasks) is within 1
              of it.
          returned: success
          type: str
          sample: "100"
        tasks:
          description: How many tasks the worker gets.
          returned: success
          type: int
          sample: 100
        shards:
          description: The ids of its shards.
          returned: success
          type: list
          elements: str
          sample: [s0000, s0001, s0002, s0003]
        shard_size:
          description: The most tasks one of its shards holds.
          returned: success
          type: int
          sample: 25
        predicted_s:
          description: Predicted time for its tasks.
          returned: success
          type: float
          sample: 100.0
    shards:
      description: Every shard, a range of task indices from C(start) to C(stop) (excluded).
      returned: success
      type: list
      elements: dict
      contains:
        id:
          description: The shard's id.
          returned: success
          type: str
          sample: s0000
        node:
          description: The worker the shard is first given to.
          returned: success
          type: str
          sample: node1
        start:
          description: The first task index.
          returned: success
          type: int
          sample: 0
        stop:
          description: One past the last task index.
          returned: success
          type: int
          sample: 25
error_kind:
  description:
    - Kind of error that made the module fail. V(BadInput) for a request that cannot be carried out
      as asked (unknown kind, bad parameters, a missing, unusable or unsafe artifact file, a task
      count that disagrees with the artifacts, no token file, no aggregator in the inventory),
      V(OperationFailed) when carrying it out failed (the aggregator does not answer or refuses the
      token, the job failed), V(JobTimeout) when O(timeout) expired.
  returned: failure reported by lepton-ops
  type: str
  sample: BadInput
"""

import json
import sys
import traceback
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.lepton.ops.plugins.module_utils.lepton import (
    LeptonError,
    fail_from_lepton_error,
    require_lepton_ops,
)

JOB_IMPORT_ERROR = None

try:
    from lepton_ops.jobs import client as jobs
    from lepton_ops.jobs import run as job_run
    from lepton_ops.settings import default_state_dir
except ImportError:
    JOB_IMPORT_ERROR = traceback.format_exc()

AGGREGATOR_URL_ENV = 'LEPTON_OPS_AGGREGATOR_URL'

# Seconds between two status requests while waiting; None: the library's (as lepton-ops job run).
POLL_S = None

CHECK_MODE_MSG = 'Check mode: the job was not submitted.'


def argument_spec():
    return dict(
        kind=dict(type='str', required=True),
        params=dict(type='dict', default={}),
        tasks=dict(type='int'),
        artifacts=dict(type='dict', default={}),
        strategy=dict(type='str', default='weighted', choices=['weighted', 'equal']),
        shard_size=dict(type='int'),
        wait=dict(type='bool', default=True),
        timeout=dict(type='float'),
        inventory=dict(type='path'),
        aggregator_url=dict(type='str', fallback=(env_fallback, [AGGREGATOR_URL_ENV])),
        state_dir=dict(type='path'),
    )


def read_inventory(module, inventory, tasks=None):
    """What the job needs from the inventory: the aggregator's URL, and the plan of ``tasks``.

    Ansible's inventory API cannot be imported in a module's own process (AnsiballZ puts a partial
    copy of ansible.module_utils first on the path), so lepton_ops reads the inventory in a child
    Python: ``python -m lepton_ops.jobs.run``, which prints lepton_ops.jobs.run.fleet_facts().
    """
    params = module.params
    argv = [sys.executable, '-m', 'lepton_ops.jobs.run', '--inventory', str(inventory)]
    if tasks is not None:
        argv += ['--tasks', str(tasks), '--strategy', params['strategy']]
        if params['shard_size'] is not None:
            argv += ['--shard-size', str(params['shard_size'])]
    rc, out, err = module.run_command(argv)
    try:
        facts = json.loads(out)
    except ValueError:
        facts = None
    if not isinstance(facts, dict):
        module.fail_json(msg='reading the inventory %s failed: %s' % (
            inventory, ' '.join((err or out or 'no output').split())[-500:]), rc=rc)
    if 'error' in facts:
        module.fail_json(msg=facts['error'], error_kind=facts.get('error_kind', 'OperationFailed'))
    return facts


def check_mode_result(module, state_dir, inventory, tasks):
    """What a check-mode run returns: the plan, when there is an inventory to plan over."""
    result = dict(changed=True, msg=CHECK_MODE_MSG)
    if inventory is not None:
        result['plan'] = read_inventory(module, inventory, tasks)['plan']
    try:
        job_run.service_token_file(state_dir)
    except LeptonError as error:
        module.warn('%s; a real run would fail there' % error)
    return result


def follow_job(module, client, job_id, timeout):
    """Wait for the submitted job; exit or fail the module with its outcome."""
    submitted = dict(changed=True, job_id=job_id, kind=module.params['kind'])
    poll = {} if POLL_S is None else {'poll_s': POLL_S}
    try:
        finished = job_run.wait_for_outcome(client, job_id, timeout_s=timeout, **poll)
    except job_run.JobTimeout as error:
        last = error.status or {}
        fail_from_lepton_error(module, error, status=last.get('status', 'running'), **submitted)
    except LeptonError as error:
        fail_from_lepton_error(module, error, **submitted)
    else:
        data = finished.to_dict()
        if not finished.succeeded:
            module.fail_json(msg=jobs.failure_line(finished.status), error_kind='OperationFailed',
                             changed=True, **data)
        module.exit_json(changed=True, **data)


def run_job(module, inputs, state_dir, url, timeout):
    """Upload the artifacts, submit the job and, with wait=true, follow it until it finishes."""
    params = module.params
    with job_run.open_client(state_dir, url) as client:
        job_id = job_run.submit_job(client, params['kind'], inputs, strategy=params['strategy'],
                                    shard_size=params['shard_size'])
        if not params['wait']:
            module.exit_json(
                changed=True, job_id=job_id, kind=params['kind'], status='running',
                msg="job %s goes on on the aggregator; follow it with 'lepton-ops job watch %s'"
                    % (job_id, job_id),
            )
        follow_job(module, client, job_id, timeout)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_one_of=[('inventory', 'aggregator_url')],
        supports_check_mode=True,
    )
    require_lepton_ops(module, JOB_IMPORT_ERROR)

    params = module.params
    inventory = Path(params['inventory']) if params['inventory'] else None
    try:
        if params['state_dir']:
            state_dir = Path(params['state_dir']).resolve()
        else:
            state_dir = default_state_dir()
        # Everything is checked, artifact files read and loaded, before anything is uploaded or
        # submitted (or planned, in check mode).
        inputs = job_run.check_job_inputs(params['kind'], params['params'], params['tasks'],
                                          params['artifacts'], strategy=params['strategy'],
                                          shard_size=params['shard_size'])
        timeout = job_run.check_timeout(params['timeout'])
        url = None
        if params['aggregator_url']:
            url = job_run.aggregator_address(params['aggregator_url'])
        if module.check_mode:
            module.exit_json(**check_mode_result(module, state_dir, inventory, inputs.tasks))
        if url is None:
            url = read_inventory(module, inventory)['aggregator_url']
        run_job(module, inputs, state_dir, url, timeout)
    except LeptonError as error:
        # Raised before the job was submitted: follow_job reports the errors after that.
        fail_from_lepton_error(module, error)


if __name__ == '__main__':
    main()
