# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Make ``ansible_collections.lepton.ops`` importable under plain pytest.

``ansible-test units`` sets up the collection's import path itself. Run directly
(``python -m pytest ansible_collections/lepton/ops/tests/unit`` from the repository
root, or ``pytest`` from anywhere), the directory that holds ``ansible_collections/``
has to be on ``sys.path``; this puts it there.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _collection_importable():
    try:
        return importlib.util.find_spec('ansible_collections.lepton.ops.plugins') is not None
    except ImportError:
        return False


if not _collection_importable():
    # .../<root>/ansible_collections/lepton/ops/tests/unit/conftest.py -> <root>
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *(['..'] * 5))))
