# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Shared glue between the lepton.ops modules and the lepton_ops Python library.

The controller-side modules of this collection are thin adapters over lepton_ops,
the way cloud collections wrap their SDK: the library does the work, the module
maps options in and results out.  lepton_ops is an optional import here so that
a module without it still loads and fails with a clear
``missing_required_lib('lepton-ops')`` message instead of a traceback.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

LEPTON_OPS_IMPORT_ERROR = None  # type: str | None

# LeptonError is re-exported: modules catch it to report the library's one-line messages.
try:
    from lepton_ops.errors import LeptonError  # pylint: disable=unused-import
except ImportError:
    HAS_LEPTON_OPS = False
    LEPTON_OPS_IMPORT_ERROR = traceback.format_exc()

    class LeptonError(Exception):  # type: ignore[no-redef]
        """Stand-in so that ``except LeptonError`` stays valid without lepton_ops."""

else:
    HAS_LEPTON_OPS = True


LEPTON_OPS_LIBRARY = 'lepton-ops'
# missing_required_lib() says "This is required <reason>."
LEPTON_OPS_REASON = (
    'to run lepton.ops modules on the controller. Install it into the Python that runs '
    'ansible-playbook: python -m pip install lepton-ops (the version named in the '
    "collection's requirements.txt; from a lepton-ops checkout, `uv build` makes its wheel), "
    "and give the task ansible_python_interpreter: '{{ ansible_playbook_python }}'"
)


def require_lepton_ops(module, import_error=None):
    """Fail ``module`` unless lepton_ops (and whatever part of it the caller needs) imported.

    ``import_error`` is the formatted traceback of the caller's own guarded import of
    a lepton_ops submodule, or None when that import worked.
    """
    error = LEPTON_OPS_IMPORT_ERROR or import_error
    if error:
        module.fail_json(
            msg=missing_required_lib(LEPTON_OPS_LIBRARY, reason=LEPTON_OPS_REASON),
            exception=error,
        )


def fail_from_lepton_error(module, error, **result):
    """Report a LeptonError (one-line operator message) as the module's failure.

    Adds ``error_kind`` (the error class name, e.g. ``BadInput``) so that a
    playbook can tell bad input from a failed operation.
    """
    module.fail_json(msg=str(error), error_kind=type(error).__name__, **result)
