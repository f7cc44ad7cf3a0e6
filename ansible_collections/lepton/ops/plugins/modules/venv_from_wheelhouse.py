#!/usr/bin/python
# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: venv_from_wheelhouse
short_description: Make a virtualenv hold exactly the Python stack of an unpacked wheelhouse
version_added: 0.1.0
description:
  - Makes sure that the virtualenv O(path) on a fleet node holds exactly the packages pinned in the
    C(requirements.txt) of an unpacked wheelhouse (as built on the controller by
    M(lepton.ops.wheelhouse)), installing them with the C(uv) executable shipped inside the
    wheelhouse and never reaching a package index.
  - Creates the virtualenv with C(uv venv) when C(<path>/bin/python) is missing or does not run.
    A broken virtualenv is replaced; a directory that is not a virtualenv is never removed, the
    module fails instead.
  - Installs with C(uv pip sync) when the wheelhouse id recorded in the virtualenv (the file
    C(<path>/.lepton-wheelhouse)) differs from the id in the wheelhouse's C(wheelhouse.json), or
    when a module listed in O(imports) cannot be found. It records the id afterwards.
  - Every C(uv) call runs with C(UV_NO_CONFIG=1), C(UV_OFFLINE=1) and C(UV_PYTHON_DOWNLOADS=never),
    so no configuration file, package index or Python download is used.
  - Runs on the managed node with nothing but Python's standard library.
author:
  - lepton-ops maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module reports what it would create, install and prune, without changing
        anything.
      - An earlier task that unpacks the wheelhouse does nothing in check mode either, so when
        the O(wheelhouse) directory or the C(uv) executable does not exist yet, check mode does
        not fail; it warns, reports that the stack would be installed, and returns
        RV(wheelhouse_id) as V(null).
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - The virtualenv directory. Created, with its parents, when missing.
    type: path
    required: true
  wheelhouse:
    description:
      - The unpacked wheelhouse directory. It holds C(requirements.txt) (one exact pin
        C(name==version) per line), the C(.whl) files, C(wheelhouse.json) (with the wheelhouse
        C(id)) and, unless O(uv) says otherwise, the C(uv) executable.
    type: path
    required: true
  archive:
    description:
      - A tar archive of the wheelhouse on the node, as shipped by the controller.
      - When O(wheelhouse) holds no C(wheelhouse.json) yet, the archive is unpacked into
        O(wheelhouse) (created when missing; unpacked next to it first and renamed into place, so
        a half-unpacked wheelhouse is never used) and then deleted.
      - Members with absolute paths, C(..) components, links or devices are refused.
    type: path
  python:
    description:
      - The Python interpreter the virtualenv is built on, when it has to be created.
      - When omitted, the interpreter that runs this module.
      - The wheelhouse must have been built for this interpreter's Python version and platform.
    type: path
  uv:
    description:
      - The C(uv) executable.
      - When omitted, C(uv) inside O(wheelhouse).
    type: path
  cache_dir:
    description:
      - Cache directory of C(uv) (C(UV_CACHE_DIR)). Keeping it between runs makes reinstalls cheap.
      - When omitted, C(uv) uses its own default.
    type: path
  reinstall:
    description:
      - Distribution names to reinstall whenever the wheelhouse id recorded in the virtualenv
        differs from the wheelhouse's, even when their version did not change (for example a wheel
        of the project itself, rebuilt with the same version number). Each becomes a
        C(--reinstall-package) option of C(uv pip sync).
    type: list
    elements: str
    default: []
  imports:
    description:
      - Top-level modules that must be importable in the virtualenv, for example V(numpy) or
        V(sklearn).
      - They are looked up with C(importlib.util.find_spec) by the virtualenv's Python, not
        imported, so the check stays cheap for heavy packages.
      - When any of them is missing, every package of the stack is reinstalled with
        C(uv pip sync --reinstall), because a package whose files were removed still looks installed
        to C(uv).
    type: list
    elements: str
    default: []
  prune_wheelhouses:
    description:
      - After installing, remove the other wheelhouses next to O(wheelhouse), that is the sibling
        directories in its parent directory that hold a C(wheelhouse.json) or whose name is a
        wheelhouse id (hexadecimal digits).
      - O(wheelhouse) itself, files, symbolic links, other directories, and any directory that holds
        O(path), O(uv), O(python) or O(cache_dir) are left alone.
    type: bool
    default: false
notes:
  - The C(uv venv) and C(uv pip sync) commands of older roles, with their C(creates) and marker-file
    tasks, are replaced by this one module call, which saves a round trip per task and node.
seealso:
  - module: lepton.ops.wheelhouse
"""

EXAMPLES = r"""
- name: Give the node the Python stack of the unpacked wheelhouse
  lepton.ops.venv_from_wheelhouse:
    path: /opt/lepton/venv
    wheelhouse: "/opt/lepton/wheelhouse/{{ lepton_wheelhouse.id }}"
    cache_dir: /opt/lepton/cache/uv
    reinstall:
      - lepton-ops
    imports:
      - flask
      - gunicorn
      - numpy
      - sklearn
      - lepton_ops
    prune_wheelhouses: true
  register: lepton_venv

- name: Show the interpreter services should run
  ansible.builtin.debug:
    var: lepton_venv.python

- name: Build the virtualenv on another interpreter, with a uv installed elsewhere
  lepton.ops.venv_from_wheelhouse:
    path: /srv/app/venv
    wheelhouse: /srv/app/wheelhouse/4c1f0e9a7d2b6e31
    python: /usr/bin/python3.12
    uv: /usr/local/bin/uv
"""

RETURN = r"""
unpacked:
  description: Whether O(archive) was (or, in check mode, would be) unpacked into O(wheelhouse).
  returned: always
  type: bool
  sample: false
venv:
  description: The virtualenv directory.
  returned: always
  type: str
  sample: /opt/lepton/venv
python:
  description: The virtualenv's Python interpreter, C(<venv>/bin/python).
  returned: always
  type: str
  sample: /opt/lepton/venv/bin/python
wheelhouse_id:
  description:
    - The id of the wheelhouse, from its C(wheelhouse.json), now recorded in the virtualenv.
    - V(null) in check mode when the wheelhouse is not unpacked yet.
  returned: success
  type: str
  sample: 4c1f0e9a7d2b6e31
created:
  description: Whether the virtualenv was (or, in check mode, would be) created or replaced.
  returned: success
  type: bool
  sample: false
installed:
  description: Whether the stack was (or, in check mode, would be) installed with C(uv pip sync).
  returned: success
  type: bool
  sample: true
missing_imports:
  description:
    - The modules of O(imports) that could not be found before installing. All of them when the
      virtualenv did not exist or did not run.
  returned: success
  type: list
  elements: str
  sample:
    - sklearn
pruned:
  description: The wheelhouse directories that were (or, in check mode, would be) removed.
  returned: success
  type: list
  elements: str
  sample:
    - /opt/lepton/wheelhouse/0b5d2e7f9a1c3e48
cmd:
  description: The C(uv) command that failed.
  returned: failure of a uv command
  type: list
  elements: str
  sample: [/opt/lepton/wheelhouse/4c1f0e9a7d2b6e31/uv, pip, sync, --quiet]
rc:
  description: Exit code of the C(uv) command that failed.
  returned: failure of a uv command
  type: int
  sample: 1
stderr:
  description: Standard error of the C(uv) command that failed.
  returned: failure of a uv command
  type: str
  sample: "error: No solution found when resolving dependencies"
"""

import contextlib
import json
import os
import shutil
import string
import tarfile
import sys
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

# File in the virtualenv that records the id of the wheelhouse it was last installed from.
MARKER = '.lepton-wheelhouse'

UV_ENVIRONMENT = {
    'UV_NO_CONFIG': '1',
    'UV_OFFLINE': '1',
    'UV_PYTHON_DOWNLOADS': 'never',
}

# How much of a failed command's standard error goes into the failure message.
STDERR_TAIL_LINES = 20

# Run by the virtualenv's Python with the module names as arguments: prints, as JSON, those that
# importlib cannot find. Nothing is imported but the parents of dotted names.
PROBE = '''
import importlib.util, json, sys
missing = []
for name in sys.argv[1:]:
    try:
        found = importlib.util.find_spec(name) is not None
    except Exception:
        found = False
    if not found:
        missing.append(name)
sys.stdout.write(json.dumps(missing))
'''


def argument_spec():
    return dict(
        path=dict(type='path', required=True),
        wheelhouse=dict(type='path', required=True),
        archive=dict(type='path'),
        python=dict(type='path'),
        uv=dict(type='path'),
        cache_dir=dict(type='path'),
        reinstall=dict(type='list', elements='str', default=[]),
        imports=dict(type='list', elements='str', default=[]),
        prune_wheelhouses=dict(type='bool', default=False),
    )


def is_executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def stderr_tail(text, lines=STDERR_TAIL_LINES):
    return '\n'.join((text or '').strip().splitlines()[-lines:])


def read_wheelhouse_id(module, wheelhouse):
    """The id in ``<wheelhouse>/wheelhouse.json``; fails unless the wheelhouse is complete."""
    requirements = os.path.join(wheelhouse, 'requirements.txt')
    metadata = os.path.join(wheelhouse, 'wheelhouse.json')
    for required in (requirements, metadata):
        if not os.path.isfile(required):
            module.fail_json(msg='The wheelhouse %s has no %s: is it unpacked completely?'
                             % (wheelhouse, os.path.basename(required)))
    try:
        with open(metadata, encoding='utf-8') as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        module.fail_json(msg='Cannot read %s: %s' % (metadata, to_native(error)))
    house_id = data.get('id') if isinstance(data, dict) else None
    if not isinstance(house_id, str) or not house_id.strip():
        module.fail_json(msg='%s has no wheelhouse id (an "id" string)' % metadata)
    return house_id.strip()


def read_marker(venv):
    try:
        with open(os.path.join(venv, MARKER), encoding='utf-8') as handle:
            return handle.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def write_marker(module, venv, house_id):
    """Record ``house_id`` in the virtualenv: written to a temporary file, then renamed."""
    target = os.path.join(venv, MARKER)
    handle, temporary = tempfile.mkstemp(dir=venv, prefix=MARKER + '.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'w', encoding='utf-8') as out:
            out.write(house_id + '\n')
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        module.fail_json(msg='Cannot write %s: %s' % (target, to_native(error)))


def remove_marker(module, venv):
    target = os.path.join(venv, MARKER)
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    except OSError as error:
        module.fail_json(msg='Cannot remove %s: %s' % (target, to_native(error)))


def probe_venv(module, venv, imports):
    """``(runs, missing)``: whether the virtualenv's Python runs, and which imports it lacks.

    A virtualenv that does not run (or is not a virtualenv) lacks all of them.
    """
    python = os.path.join(venv, 'bin', 'python')
    if not (os.path.isfile(os.path.join(venv, 'pyvenv.cfg')) and is_executable(python)):
        return False, list(imports)
    try:
        # -I: ignore PYTHON* variables and keep the working directory off sys.path, so that a
        # directory named like a module there cannot pass for the installed package.
        rc, out, dummy = module.run_command([python, '-I', '-c', PROBE] + list(imports),
                                            expand_user_and_vars=False, handle_exceptions=False)
    except OSError:
        return False, list(imports)
    if rc != 0:
        return False, list(imports)
    try:
        missing = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return False, list(imports)
    if not isinstance(missing, list):
        return False, list(imports)
    return True, [str(name) for name in missing]


def is_inside(path, directory):
    """Whether ``path`` is ``directory`` or below it (both absolute and normalized)."""
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def looks_like_wheelhouse(directory):
    name = os.path.basename(directory)
    is_id = bool(name) and all(char in string.hexdigits for char in name)
    return is_id or os.path.isfile(os.path.join(directory, 'wheelhouse.json'))


def prune_candidates(wheelhouse, keep):
    """The other wheelhouse directories next to ``wheelhouse``, sorted.

    ``keep`` lists paths that must survive: a sibling holding any of them is left alone.
    """
    wheelhouse = os.path.realpath(wheelhouse)
    parent = os.path.dirname(wheelhouse)
    keep = [os.path.realpath(path) for path in keep if path]
    candidates = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return candidates
    for entry in entries:
        path = os.path.join(parent, entry.name)
        if path == wheelhouse or not entry.is_dir(follow_symlinks=False):
            continue
        if any(is_inside(kept, path) for kept in keep):
            continue
        if looks_like_wheelhouse(path):
            candidates.append(path)
    return sorted(candidates)


class UvRunner:
    """Runs uv with the offline environment and fails the module with uv's error."""

    def __init__(self, module, uv, cache_dir):
        self.module = module
        self.uv = uv
        self.environment = dict(UV_ENVIRONMENT)
        if cache_dir:
            self.environment['UV_CACHE_DIR'] = cache_dir

    def __call__(self, arguments, what):
        command = [self.uv] + list(arguments)
        try:
            rc, out, err = self.module.run_command(command, environ_update=self.environment,
                                                   expand_user_and_vars=False,
                                                   handle_exceptions=False)
        except OSError as error:
            self.module.fail_json(msg='Cannot run %s to %s: %s' % (self.uv, what, to_native(error)),
                                  cmd=command)
        if rc != 0:
            tail = stderr_tail(err) or stderr_tail(out) or '(no output)'
            self.module.fail_json(msg='uv failed to %s (exit code %d): %s' % (what, rc, tail),
                                  cmd=command, rc=rc, stdout=out, stderr=err)


def unsafe_member(member):
    name = member.name
    return (os.path.isabs(name) or '..' in name.split('/')
            or not (member.isfile() or member.isdir()))


def unpack_archive(module, archive, wheelhouse):
    """Unpack ``archive`` into ``wheelhouse`` (all or nothing), then delete the archive."""
    try:
        with tarfile.open(archive) as tar:
            bad = [member.name for member in tar.getmembers() if unsafe_member(member)]
    except (OSError, tarfile.TarError) as error:
        module.fail_json(msg='Cannot read the archive %s: %s' % (archive, to_native(error)))
    if bad:
        module.fail_json(msg='Refusing to unpack %s: unsafe member %r' % (archive, bad[0]))
    parent = os.path.dirname(wheelhouse)
    staging = None
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(dir=parent, prefix='.unpacking-')
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                tar.extract(member, staging)
        if os.path.isdir(wheelhouse):
            shutil.rmtree(wheelhouse)
        os.rename(staging, wheelhouse)
        os.chmod(wheelhouse, 0o755)
        os.remove(archive)
    except (OSError, tarfile.TarError) as error:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        module.fail_json(msg='Cannot unpack %s into %s: %s'
                         % (archive, wheelhouse, to_native(error)))


def ensure_venv(module):
    params = module.params
    venv = os.path.abspath(params['path'])
    wheelhouse = os.path.abspath(params['wheelhouse'])
    python = os.path.abspath(params['python'] or sys.executable)
    uv = os.path.abspath(params['uv'] or os.path.join(wheelhouse, 'uv'))
    cache_dir = os.path.abspath(params['cache_dir']) if params['cache_dir'] else None
    imports = list(params['imports'])
    venv_python = os.path.join(venv, 'bin', 'python')

    archive = os.path.abspath(params['archive']) if params['archive'] else None

    result = dict(changed=False, venv=venv, python=venv_python, wheelhouse_id=None, created=False,
                  installed=False, missing_imports=[], pruned=[], unpacked=False)

    if archive and not os.path.isfile(os.path.join(wheelhouse, 'wheelhouse.json')):
        if os.path.isfile(archive):
            result['unpacked'] = result['changed'] = True
            if not module.check_mode:
                unpack_archive(module, archive, wheelhouse)
        elif not module.check_mode:
            module.fail_json(msg='The wheelhouse %s is not unpacked and its archive %s '
                                 'does not exist' % (wheelhouse, archive))

    # In check mode a wheelhouse (or uv) that an earlier, also skipped, task would have put in
    # place is tolerated: everything that depends on it is assumed to need doing.
    pending = []
    if module.check_mode and (result['unpacked'] or not os.path.isdir(wheelhouse)):
        pending.append('wheelhouse %s' % wheelhouse)
        house_id = None
    else:
        house_id = read_wheelhouse_id(module, wheelhouse)
    if not is_executable(uv):
        if module.check_mode and not os.path.exists(uv):
            pending.append('uv executable %s' % uv)
        else:
            module.fail_json(msg='uv executable %s is missing or not executable' % uv)
    if pending:
        module.warn('Check mode: %s does not exist yet; assuming an earlier task would provide it.'
                    % ' and '.join(pending))
    result['wheelhouse_id'] = house_id

    runs, missing = probe_venv(module, venv, imports)
    installed_id = read_marker(venv) if runs else None
    create = not runs
    install = create or house_id is None or installed_id != house_id or bool(missing)
    result.update(created=create, installed=install, missing_imports=missing)

    if create and not is_executable(python):
        module.fail_json(msg='Python interpreter %s for the virtualenv is missing or not executable'
                         % python)

    if not module.check_mode:
        run_uv = UvRunner(module, uv, cache_dir)
        if create:
            # --clear replaces a broken virtualenv, but (without --force) refuses to remove a
            # directory that is not a virtualenv.
            run_uv(['venv', '--quiet', '--clear', '--python', python, venv],
                   'create the virtualenv %s' % venv)
        if install:
            remove_marker(module, venv)
            sync = ['pip', 'sync', '--quiet', '--python', venv_python, '--no-index',
                    '--find-links', wheelhouse]
            if missing and not create:
                # A package whose files are gone still looks installed; reinstall everything.
                sync.append('--reinstall')
            elif installed_id != house_id:
                for name in params['reinstall']:
                    sync.extend(['--reinstall-package', name])
            sync.append(os.path.join(wheelhouse, 'requirements.txt'))
            run_uv(sync, 'install the wheelhouse %s into %s' % (wheelhouse, venv))
            write_marker(module, venv, house_id)

    result['changed'] = result['changed'] or create or install
    if params['prune_wheelhouses']:
        pruned = prune_candidates(wheelhouse, keep=[venv, uv, python, cache_dir])
        if not module.check_mode:
            for path in pruned:
                try:
                    shutil.rmtree(path)
                except OSError as error:
                    module.fail_json(msg='Cannot remove the old wheelhouse %s: %s'
                                     % (path, to_native(error)), **result)
                result['pruned'].append(path)
                result['changed'] = True
        else:
            result['pruned'] = pruned
            result['changed'] = result['changed'] or bool(pruned)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.exit_json(**ensure_venv(module))


if __name__ == '__main__':
    main()
