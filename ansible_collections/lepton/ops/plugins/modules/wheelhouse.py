#!/usr/bin/python
# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wheelhouse
short_description: Build or reuse the controller's wheelhouse that fleet nodes install from
version_added: 0.1.0
description:
  - Builds, on the controller, the wheelhouse that every node of a lepton-ops fleet installs
    its Python stack from, or reuses it from O(cache_dir) when nothing changed.
  - The wheelhouse holds the third-party wheels of the node stack (numpy, scikit-learn, Flask,
    gunicorn, ...) in the versions of lepton-ops' lock file, a wheel of lepton-ops (built from
    the controller's checkout, or packed from the installed lepton-ops when it was installed from
    a wheel), and a pinned C(requirements.txt). Nodes then install without reaching a package
    index, so a fleet does not hit the index once per node, works air-gapped, and runs exactly
    the controller's lepton-ops and the versions its CI tested.
  - This is a thin adapter over the C(lepton_ops.provision.wheelhouse) Python library. It runs
    where the library is installed, that is on the controller; see the examples.
  - The module reports RV(ignore:changed=true) when it downloaded or built anything, and
    RV(ignore:changed=false) when the whole wheelhouse came from the cache.
author:
  - lepton-ops maintainers (!UNKNOWN)
requirements:
  - lepton-ops (the Python package, in the Python interpreter that runs this module)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: partial
    details:
      - In check mode nothing is downloaded or built. The library cannot tell whether the cache is
        current without building, so the module always reports RV(ignore:changed=true) and does not
        return RV(wheelhouse).
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  cache_dir:
    description:
      - Directory that holds the downloaded wheels, the built lepton-ops wheel and the assembled
        wheelhouses. Created when missing.
      - Reusing the same directory between runs is what makes a second run cheap.
    type: path
    required: true
  project_root:
    description:
      - The lepton-ops source checkout (the directory with C(pyproject.toml)) to build the
        lepton-ops wheel from.
      - When omitted, the checkout lepton-ops itself runs from is used; when lepton-ops was
        installed from a wheel, its installed files are packed into the wheel the nodes get.
    type: path
  python_version:
    description:
      - Python version of the nodes, for example V(3.11), when it differs from the controller's.
      - When omitted, the wheels are chosen for the Python version running this module.
    type: str
  platform:
    description:
      - Platform tag of the nodes' wheels, for example V(manylinux2014_x86_64), when the nodes
        differ from the controller.
      - When omitted, the wheels are chosen for the controller's own platform.
    type: str
  refresh:
    description:
      - Download the third-party wheels again even if they are already in O(cache_dir).
    type: bool
    default: false
notes:
  - The module must run with a Python interpreter that has lepton-ops installed, normally the one
    running C(ansible-playbook). Run it on V(localhost) (C(delegate_to) or C(connection=local)) with
    C(ansible_python_interpreter) set to C(ansible_playbook_python), as in the examples.
  - Downloading the third-party wheels needs access to a package index (or a configured mirror,
    through the usual C(PIP_INDEX_URL) settings) the first time only.
"""

EXAMPLES = r"""
- name: Build (or reuse) the wheelhouse on the controller
  lepton.ops.wheelhouse:
    cache_dir: "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/lepton-ops/wheelhouse"
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: lepton_wheelhouse

- name: Show which wheels the nodes will install
  ansible.builtin.debug:
    var: lepton_wheelhouse.wheelhouse.wheels

- name: Build for nodes that run another Python version on another platform
  lepton.ops.wheelhouse:
    cache_dir: /var/cache/lepton-ops/wheelhouse
    project_root: /opt/src/lepton-ops
    python_version: "3.12"
    platform: manylinux2014_x86_64
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"

- name: Download the third-party wheels again
  lepton.ops.wheelhouse:
    cache_dir: /var/cache/lepton-ops/wheelhouse
    refresh: true
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

RETURN = r"""
wheelhouse:
  description: The wheelhouse the nodes install from.
  returned: success and not in check mode
  type: dict
  contains:
    path:
      description: Directory holding the wheels and the pinned requirements file.
      returned: success
      type: str
      sample: /root/.cache/lepton-ops/wheelhouse/4c1f0e9a7d2b6e31
    id:
      description: Content hash of the wheelhouse; it changes exactly when a wheel changes.
      returned: success
      type: str
      sample: 4c1f0e9a7d2b6e31
    requirements:
      description: Requirements file inside RV(wheelhouse.path) that pins every wheel exactly.
      returned: success
      type: str
      sample: /root/.cache/lepton-ops/wheelhouse/4c1f0e9a7d2b6e31/requirements.txt
    archive:
      description: The same wheelhouse packed as one tar file, for copying to the nodes.
      returned: success
      type: str
      sample: /root/.cache/lepton-ops/wheelhouse/4c1f0e9a7d2b6e31.tar
    uv_binary:
      description: The controller's C(uv) executable, shipped to the nodes to install the wheels.
      returned: success
      type: str
      sample: /opt/lepton-ops/venv/bin/uv
    wheels:
      description: File names of the wheels in the wheelhouse, sorted.
      returned: success
      type: list
      elements: str
      sample:
        - flask-3.1.0-py3-none-any.whl
        - lepton_ops-0.1.0-py3-none-any.whl
error_kind:
  description:
    - Kind of lepton-ops error that made the module fail, V(BadInput) for a request that cannot
      be carried out as asked, V(OperationFailed) when carrying it out failed.
  returned: failure reported by lepton-ops
  type: str
  sample: OperationFailed
"""

import traceback
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lepton.ops.plugins.module_utils.lepton import (
    LeptonError,
    fail_from_lepton_error,
    require_lepton_ops,
)

WHEELHOUSE_IMPORT_ERROR = None

try:
    from lepton_ops.provision.wheelhouse import build_wheelhouse
except ImportError:
    WHEELHOUSE_IMPORT_ERROR = traceback.format_exc()

# The keys of the ``wheelhouse`` return value, in the order they are documented in RETURN.
WHEELHOUSE_KEYS = ('path', 'id', 'requirements', 'archive', 'uv_binary', 'wheels')

CHECK_MODE_MSG = (
    'Check mode: the wheelhouse was not built. Whether the cache in cache_dir is current is only '
    'known by building, so a real run may report changed=false.'
)


def argument_spec():
    return dict(
        cache_dir=dict(type='path', required=True),
        project_root=dict(type='path'),
        python_version=dict(type='str'),
        platform=dict(type='str'),
        refresh=dict(type='bool', default=False),
    )


def wheelhouse_result(wheelhouse):
    """The documented ``wheelhouse`` return value, made of plain strings and lists."""
    data = wheelhouse.to_dict()
    result = {}
    for key in WHEELHOUSE_KEYS:
        value = data.get(key)
        if key == 'wheels':
            result[key] = [str(name) for name in value or ()]
        else:
            result[key] = None if value is None else str(value)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_lepton_ops(module, WHEELHOUSE_IMPORT_ERROR)

    if module.check_mode:
        module.exit_json(changed=True, msg=CHECK_MODE_MSG)

    params = module.params
    try:
        wheelhouse = build_wheelhouse(
            Path(params['cache_dir']),
            project_root=Path(params['project_root']) if params['project_root'] else None,
            python_version=params['python_version'],
            platform=params['platform'],
            refresh=params['refresh'],
        )
    except LeptonError as error:
        fail_from_lepton_error(module, error)
    else:
        module.exit_json(changed=bool(wheelhouse.built), wheelhouse=wheelhouse_result(wheelhouse))


if __name__ == '__main__':
    main()
