#!/usr/bin/python
# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: remediation_pass
short_description: Remediate lepton-ops nodes at risk with the policy's guards, verified, audited
version_added: 0.2.0
description:
  - Runs one remediation pass of lepton-ops on the controller, as C(lepton-ops remediate) does -
    over O(hosts) only when they are given (for example the C(at_risk_hosts) that
    M(lepton.ops.failure_predict) returns).
  - The same guards as the CLI, from the same audit log - one pass at a time (a lock), a
    cooldown per node, a limit on nodes under remediation at once, escalation up the ladder
    (restart, drain, re-provision, cordon and alert a human) when a node needs help again
    within the escalation window, and a circuit breaker that cordons a node after
    O(max_attempts) actions.
  - Each action is a playbook run through lepton-ops' gateway (C(lepton.ops.remediate), or the
    provision and deploy playbooks), verified afterwards (the node's services answer their
    health check and its risk fell on fresh telemetry) and written to the audit log
    (C(lepton-ops audit)) with the evidence before and after and the trigger V(playbook).
  - In check mode the plan is computed and returned, and nothing runs or is written.
  - A thin adapter over the lepton-ops library, which must be installed on the controller; run
    it once (C(run_once), or on C(localhost)).
author:
  - lepton-ops maintainers (!UNKNOWN)
requirements:
  - lepton-ops (the Python library, on the controller)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The plan is returned; no action runs, nothing is written.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  inventory:
    description:
      - The inventory the actions' playbooks run on (its C(aggregator) and C(workers) groups).
    type: path
    required: true
  hosts:
    description:
      - Only these hosts are considered. Empty (the default) considers every node.
    type: list
    elements: str
    default: []
  state_dir:
    description:
      - The lepton-ops state directory (the store, the audit log, the models, the token).
      - Default the one lepton-ops uses (C(LEPTON_OPS_STATE_DIR), else the user's state dir).
    type: path
  threshold:
    description: Act on a node whose probability of failing is at least this, in (0, 1].
    type: float
    default: 0.5
  max_concurrent:
    description: Nodes under remediation at once at most (at least V(1)).
    type: int
    default: 1
  cooldown:
    description: Seconds after an action on a node before another one (V(0) or more).
    type: float
    default: 60
  max_attempts:
    description: Actions on a node within the escalation window before it is cordoned (1 to 4).
    type: int
    default: 3
  verify_timeout:
    description: Seconds an action's effect may take to show, more than V(0).
    type: float
    default: 45
seealso:
  - module: lepton.ops.failure_predict
"""

EXAMPLES = r"""
- name: Remediate the nodes predicted to fail
  lepton.ops.remediation_pass:
    inventory: "{{ inventory_file }}"
    hosts: "{{ lepton_at_risk_hosts }}"
  run_once: true
  delegate_to: localhost
  register: remediation
"""

RETURN = r"""
decisions:
  description: What the policy decided for each node at risk or failing, and why.
  returned: always
  type: list
  elements: dict
  sample: [{"node": "node3", "action": "restart", "reason": "risk 0.91; attempt 1 in the
    escalation window", "risk": 0.91, "attempt": 1}]
actions:
  description: The actions run (none in check mode), with their audit id and outcome
    (V(verified), V(unverified), V(failed) or V(cordoned)).
  returned: always
  type: list
  elements: dict
  sample: [{"node": "node3", "action": "restart", "audit_id": 12, "outcome": "verified",
    "seconds": 6.2}]
model:
  description: Whether a trained model gave the risks (without one, only nodes failing now are
    acted on).
  returned: always
  type: bool
  sample: true
"""

import traceback
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lepton.ops.plugins.module_utils.lepton import (
    LeptonError,
    fail_from_lepton_error,
    require_lepton_ops,
)

REMEDIATE_IMPORT_ERROR = None

try:
    from lepton_ops.remediate.policy import PolicyConfig
    from lepton_ops.remediate.run import remediate_once
    from lepton_ops.settings import default_state_dir
    from lepton_ops.telemetry.collect import collect
except ImportError:
    REMEDIATE_IMPORT_ERROR = traceback.format_exc()


def argument_spec():
    return dict(
        inventory=dict(type='path', required=True),
        hosts=dict(type='list', elements='str', default=[]),
        state_dir=dict(type='path'),
        threshold=dict(type='float', default=0.5),
        max_concurrent=dict(type='int', default=1),
        cooldown=dict(type='float', default=60.0),
        max_attempts=dict(type='int', default=3),
        verify_timeout=dict(type='float', default=45.0),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_lepton_ops(module, REMEDIATE_IMPORT_ERROR)
    params = module.params
    if params['verify_timeout'] <= 0:
        module.fail_json(msg='verify_timeout must be more than 0 seconds')
    state_dir = Path(params['state_dir']) if params['state_dir'] else default_state_dir()
    try:
        config = PolicyConfig(
            risk_threshold=params['threshold'],
            cooldown_s=params['cooldown'],
            max_attempts=params['max_attempts'],
            max_concurrent=params['max_concurrent'],
        )
        inventory = Path(params['inventory'])

        def refresh(node):
            collect(inventory, state_dir, limit=node)

        done = remediate_once(
            state_dir, inventory, config, dry_run=module.check_mode,
            trigger='playbook', verify_timeout_s=params['verify_timeout'],
            refresh=refresh, only=params['hosts'] or None,
        )
    except LeptonError as error:
        fail_from_lepton_error(module, error)
    result = done.to_dict()
    module.exit_json(changed=bool(result['actions']), decisions=result['decisions'],
                     actions=result['actions'], model=result['model'])


if __name__ == '__main__':
    main()
