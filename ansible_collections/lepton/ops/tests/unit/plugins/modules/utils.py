# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The usual helpers for running an AnsibleModule's main() inside a unit test."""

from __future__ import annotations

import contextlib
import json
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19 reads the arguments from basic._ANSIBLE_ARGS
    patch_module_args = None


@contextlib.contextmanager
def set_module_args(args=None):
    """Give ``args`` to the AnsibleModule instances created inside this context."""
    args = dict(args or {})
    if patch_module_args is not None:
        with patch_module_args(args):
            yield
        return
    args.setdefault('_ansible_remote_tmp', '/tmp')
    args.setdefault('_ansible_keep_remote_files', False)
    payload = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    with mock.patch.object(basic, '_ANSIBLE_ARGS', payload):
        yield


class AnsibleExitJson(Exception):
    """Raised instead of exiting when the module calls exit_json()."""

    def __init__(self, kwargs):
        super().__init__(kwargs)
        self.result = kwargs


class AnsibleFailJson(Exception):
    """Raised instead of exiting when the module calls fail_json()."""

    def __init__(self, kwargs):
        super().__init__(kwargs)
        self.result = kwargs


def exit_json(self, **kwargs):  # pylint: disable=unused-argument
    kwargs.setdefault('changed', False)
    raise AnsibleExitJson(kwargs)


def fail_json(self, msg, **kwargs):  # pylint: disable=unused-argument
    kwargs['failed'] = True
    kwargs['msg'] = msg
    raise AnsibleFailJson(kwargs)


@contextlib.contextmanager
def module_exits():
    """Turn AnsibleModule.exit_json / fail_json into the exceptions above."""
    with mock.patch.multiple(basic.AnsibleModule, exit_json=exit_json, fail_json=fail_json):
        yield


def run_module(main, args):
    """Run a module's ``main`` with ``args``; return its result dict (failed or not)."""
    with set_module_args(args), module_exits():
        try:
            main()
        except AnsibleExitJson as done:
            return done.result
        except AnsibleFailJson as failed:
            return failed.result
    raise AssertionError('the module returned without calling exit_json or fail_json')
