#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_service_code
short_description: Put the repository service's Python code on the repository host
version_added: 0.1.0
description:
  - Writes the collection's core code (C(plugins/module_utils/_exup)) that the repository service runs to O(dest) on the host
    the module runs on, so that C(PYTHONPATH=<dest> python -m ansible_collections.exup.fleet.plugins.module_utils._exup.service.main
    CONFIG.json) starts the service there. The role M(exup.fleet.repository) runs it (O(exup.fleet.repository#role:main:repository_action=service)).
  - The code travels inside this module, the way every module's module_utils reach a host (AnsiballZ follows the service's
    imports, so what the service imports is what arrives); no collection install, git checkout or archive is needed on the
    host. The Python libraries the service needs (granian, starlette, cryptography, lxml, requests) are not installed by this
    module; the role installs them into a venv or uses a given interpreter.
  - Files whose content is already the same are left alone; Python files under the package that this collection no longer
    has are removed. So a second run changes nothing, and C(changed) says when the service has to restart for new code.
  - O(state=absent) removes the package folder again.
author: exup.fleet contributors (@exup-fleet)
options:
  dest:
    description: The folder that becomes the service's C(PYTHONPATH); the code lands in C(<dest>/ansible_collections/exup/fleet/...).
    type: path
    required: true
  state:
    description: V(present) writes the code, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - python >= 3.11 on the host (the libraries the service imports are installed by the role exup.fleet.repository)
attributes:
  check_mode:
    support: full
    description: Reports which files would be written or removed; writes nothing.
  diff_mode:
    support: full
    description: The changed files with their SHA-256 before and after (V(absent) for a missing file).
seealso:
  - module: exup.fleet.exup_repo_settings
    description: The service's passwords, proxy and download schedule, which the role sets after this module.
'''

EXAMPLES = r'''
- name: Put the service's code on the repository host
  exup.fleet.exup_service_code:
    dest: /opt/exup/service/lib
  notify: Restart the repository service
'''

RETURN = r'''
dest:
  description: The folder to put on C(PYTHONPATH).
  returned: always
  type: str
  sample: /opt/exup/service/lib
files:
  description: How many Python files the service's code has (0 with O(state=absent)).
  returned: always
  type: int
  sample: 62
digest:
  description: SHA-256 over the code's file names and contents (empty with O(state=absent)); the same collection gives the same digest.
  returned: always
  type: str
written:
  description: Files (relative to O(dest)) written or, in check mode, that would be.
  returned: always
  type: list
  elements: str
removed:
  description: Files (relative to O(dest)) removed or, in check mode, that would be.
  returned: always
  type: list
  elements: str
'''

import hashlib
import os
import shutil
import tempfile
import zipfile

from ansible.module_utils.basic import AnsibleModule

# The service's entry point and app, imported so that AnsiballZ ships them and everything they import in this payload.
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import app as service_app, main as service_main

SERVICE_MODULES = (service_app, service_main)

PACKAGE = 'ansible_collections/exup/fleet/plugins/module_utils/_exup'


def shipped_files():
    """Relative path -> bytes of every Python file of the _exup package this module carries (its zip, or a source tree)."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(service_main.__file__)))
    archive = getattr(getattr(service_main, '__loader__', None), 'archive', None)
    files = {}
    if archive:  # AnsiballZ: the module runs from its payload zip (zipimport)
        with zipfile.ZipFile(archive) as payload:
            for name in payload.namelist():
                if name.startswith(PACKAGE + '/') and name.endswith('.py'):
                    files[name] = payload.read(name)
        return files
    for folder, dirs, names in os.walk(package_dir):
        dirs[:] = sorted(name for name in dirs if name != '__pycache__')
        for name in names:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                with open(path, 'rb') as handle:
                    files[PACKAGE + '/' + os.path.relpath(path, package_dir).replace(os.sep, '/')] = handle.read()
    return files


def present_files(dest):
    """Relative path -> bytes of the Python files under <dest>/PACKAGE now."""
    root = os.path.join(dest, PACKAGE)
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [name for name in dirs if name != '__pycache__']
        for name in names:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                with open(path, 'rb') as handle:
                    files[os.path.relpath(path, dest).replace(os.sep, '/')] = handle.read()
    return files


def digest_of(files):
    value = hashlib.sha256()
    for name in sorted(files):
        value.update(name.encode() + b'\0' + hashlib.sha256(files[name]).digest())
    return value.hexdigest()


def changes(wanted, present):
    """(written, removed): the files to write so that present becomes wanted, and those to remove."""
    written = sorted(name for name, data in wanted.items() if present.get(name) != data)
    removed = sorted(name for name in present if name not in wanted)
    return written, removed


def write_file(dest, name, data):
    path = os.path.join(dest, name)
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix='.exup-')
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def sha_or_absent(files, name):
    return hashlib.sha256(files[name]).hexdigest() if name in files else 'absent'


def main():
    module = AnsibleModule(
        argument_spec={'dest': {'type': 'path', 'required': True}, 'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'}},
        supports_check_mode=True,
    )
    dest = module.params['dest']
    try:
        present = present_files(dest)
        wanted = shipped_files() if module.params['state'] == 'present' else {}
        if module.params['state'] == 'present' and not wanted:
            module.fail_json(msg='this module carries none of the service code (its payload holds no %s)' % PACKAGE, error='service_code_missing')
        written, removed = changes(wanted, present)
        if not module.check_mode:
            for name in written:
                write_file(dest, name, wanted[name])
            for name in removed:
                os.unlink(os.path.join(dest, name))
            if module.params['state'] == 'absent' and os.path.isdir(os.path.join(dest, PACKAGE)):
                shutil.rmtree(os.path.join(dest, PACKAGE))
    except OSError as exc:
        module.fail_json(msg='cannot write the service code under %s: %s' % (dest, exc), error='os_error')
    changed = bool(written or removed)
    diff = {
        'before': ''.join('%s %s\n' % (sha_or_absent(present, name), name) for name in written + removed),
        'after': ''.join('%s %s\n' % (sha_or_absent(wanted, name), name) for name in written + removed),
    }
    module.exit_json(
        changed=changed,
        dest=dest,
        files=len(wanted),
        digest=digest_of(wanted) if wanted else '',
        written=written,
        removed=removed,
        diff=diff,
    )


if __name__ == '__main__':
    main()
