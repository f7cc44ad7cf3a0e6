#!/usr/bin/python
# Copyright: (c) 2026, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: failure_predict
short_description: Predict which lepton-ops nodes will fail within the model's horizon
version_added: 0.2.0
description:
  - Runs the failure predictor of lepton-ops on the controller, as C(lepton-ops predict --json)
    does, over the hosts given, and returns each host's calibrated probability of failing within
    the model's horizon, its anomaly score and the features that drove it.
  - Sets the fact C(lepton_at_risk_hosts), the hosts whose probability is at or above
    O(threshold) (or failing now), so that later plays can remediate them.
  - The model is the current one of O(state_dir) (C(lepton-ops model train)); the telemetry is the
    store of O(state_dir), filled by C(lepton-ops telemetry collect), or by this module with
    O(collect=true). The module never changes the model.
  - The anomaly score is the streaming detector's recent alarms on the host's watched series
    (service memory, disk, CPU, health, latency, reachability), which are named. Without a
    trained model, or with one trained without failures, it alone decides, against the
    detector's fleet threshold.
  - A thin adapter over the lepton-ops library, which must be installed where the module runs
    (the controller); run it once (C(run_once), or on C(localhost)).
author:
  - lepton-ops maintainers (!UNKNOWN)
requirements:
  - lepton-ops (the Python library, on the controller)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details:
      - Without O(collect) the module only reads; in check mode it does not collect.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
options:
  hosts:
    description:
      - The hosts to judge. Hosts with no telemetry in the store are reported with
        V(null) values and C(stale=true).
      - Empty (the default) judges every node of the store.
    type: list
    elements: str
    default: []
  threshold:
    description:
      - The probability at or above which a host is at risk, more than V(0) and at most V(1).
      - Default the model's own threshold, chosen when it was trained.
      - A host judged on its anomaly score alone (no classifier) keeps the detector's verdict.
    type: float
  collect:
    description:
      - Collect the telemetry of O(inventory) into the store first (the C(lepton.ops.telemetry)
        playbook, through lepton-ops' gateway), so the prediction is made on fresh data.
      - Not in check mode.
    type: bool
    default: false
  inventory:
    description:
      - The inventory to collect from; required with O(collect=true).
    type: path
  state_dir:
    description:
      - The lepton-ops state directory (the store and the models).
      - Default the one lepton-ops uses (C(LEPTON_OPS_STATE_DIR), else the user's state dir).
    type: path
seealso:
  - module: lepton.ops.telemetry_facts
"""

EXAMPLES = r"""
- name: Which nodes are about to fail?
  lepton.ops.failure_predict:
    hosts: "{{ groups['workers'] }}"
    threshold: 0.5
  run_once: true
  delegate_to: localhost
  register: prediction

- name: Show them
  ansible.builtin.debug:
    msg: "{{ lepton_at_risk_hosts }}"
"""

RETURN = r"""
predictions:
  description: One entry per host judged, sorted by host.
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: The host.
      type: str
      sample: node3
    probability:
      description: Probability of failing within RV(predictions[].horizon_s); V(null) when the
        model has no classifier yet (no failure to learn from) or the data is stale.
      type: float
      sample: 0.87
    anomaly_score:
      description: The streaming detector's loudest recent alarm, in [0, 1], on the host's
        watched series (a calibrated surprise; 0 without a recent alarm).
      type: float
      sample: 0.93
    anomaly_series:
      description: The watched series that alarmed recently, loudest first, with the alarm's
        score above the fleet's (C(fleet) - the other hosts' median surprise on the same series
        at that time), time and value.
      type: list
      elements: dict
      sample: [{"series": "lepton_service_rss_bytes{service=\"lepton-worker\"}", "score": 0.91,
                "ts": 1700000000.0, "value": 412000000.0, "fleet": 0.0}]
    fleet_wide_series:
      description: Recent alarms of series that moved on most hosts at once (a shared disk, a
        host they share); not this host's failure, and not in its
        RV(predictions[].anomaly_score).
      type: list
      elements: dict
      sample: [{"series": "lepton_node_disk_used_pct{path=\"/\"}", "score": 0.9,
                "ts": 1700000000.0, "value": 41.2, "fleet": 0.66}]
    far_from_limit_series:
      description: Recent memory and disk alarms while the resource is not running out (below
        90 % and not full within 15 minutes at its recent pace); not a risk, and not in its
        RV(predictions[].anomaly_score).
      type: list
      elements: dict
      sample: [{"series": "lepton_service_rss_bytes{service=\"lepton-worker\"}", "score": 0.85,
                "ts": 1700000000.0, "value": 105000000.0, "fleet": 0.0}]
    horizon_s:
      description: The model's horizon, in seconds.
      type: float
      sample: 60.0
    threshold:
      description: The threshold the host was judged against.
      type: float
      sample: 0.5
    at_risk:
      description: Whether the host is at or above the threshold.
      type: bool
      sample: true
    top_features:
      description: The features that drove the prediction most, with their values and how much
        each one moved the probability.
      type: list
      elements: dict
      sample: [{"feature": "mem_tte_s", "value": 41.5, "contribution": 0.62}]
    data_age_s:
      description: How old the host's latest sample is, in seconds.
      type: float
      sample: 3.2
    stale:
      description: Whether the data is too old to predict from.
      type: bool
      sample: false
    failing_now:
      description: Whether the host's last two collections both show it down (unreachable or
        a service unhealthy); one failed check is not enough.
      type: bool
      sample: false
collected:
  description: Whether telemetry was collected into the store first (O(collect)).
  returned: always
  type: bool
  sample: true
at_risk_hosts:
  description: The hosts at risk (also set as the fact C(lepton_at_risk_hosts)).
  returned: always
  type: list
  elements: str
  sample: [node3]
ansible_facts:
  description: Facts set for later plays.
  returned: always
  type: dict
  contains:
    lepton_at_risk_hosts:
      description: The hosts at risk.
      type: list
      elements: str
      sample: [node3]
"""

import traceback
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lepton.ops.plugins.module_utils.lepton import (
    LeptonError,
    fail_from_lepton_error,
    require_lepton_ops,
)

PREDICT_IMPORT_ERROR = None

try:
    from lepton_ops.predict import current_risk
    from lepton_ops.settings import default_state_dir
    from lepton_ops.telemetry.collect import collect
except ImportError:
    PREDICT_IMPORT_ERROR = traceback.format_exc()


def argument_spec():
    return dict(
        hosts=dict(type='list', elements='str', default=[]),
        threshold=dict(type='float'),
        state_dir=dict(type='path'),
        collect=dict(type='bool', default=False),
        inventory=dict(type='path'),
    )


def judged(prediction, threshold):
    """The prediction as returned, judged against ``threshold`` when one is given."""
    entry = prediction.to_dict()
    probability = prediction.probability
    if threshold is not None and probability is not None:
        # Judged on its anomaly score alone (no classifier), a host keeps the detector's verdict.
        entry['threshold'] = threshold
        entry['at_risk'] = bool(prediction.failing_now or (
            not prediction.stale and probability >= threshold))
    return entry


def missing(host):
    return {'node': host, 'probability': None, 'anomaly_score': None, 'horizon_s': None,
            'threshold': None, 'at_risk': False, 'top_features': [], 'sample_ts': None,
            'data_age_s': None, 'stale': True, 'failing_now': False, 'anomaly_series': [],
            'fleet_wide_series': [], 'far_from_limit_series': []}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[('collect', True, ('inventory',))])
    require_lepton_ops(module, PREDICT_IMPORT_ERROR)
    params = module.params
    threshold = params['threshold']
    if threshold is not None and not 0 < threshold <= 1:
        module.fail_json(msg='threshold must be more than 0 and at most 1, got %s' % threshold)
    state_dir = Path(params['state_dir']) if params['state_dir'] else default_state_dir()
    collected = False
    try:
        if params['collect'] and not module.check_mode:
            collect(Path(params['inventory']), state_dir)
            collected = True
        predictions = current_risk(state_dir)
    except LeptonError as error:
        fail_from_lepton_error(module, error)
    by_node = dict((p.node, judged(p, threshold)) for p in predictions)
    hosts = params['hosts'] or sorted(by_node)
    entries = [by_node.get(host) or missing(host) for host in sorted(set(hosts))]
    at_risk = [entry['node'] for entry in entries if entry['at_risk']]
    module.exit_json(changed=collected, collected=collected, predictions=entries,
                     at_risk_hosts=at_risk,
                     ansible_facts={'lepton_at_risk_hosts': at_risk})


if __name__ == '__main__':
    main()
