#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_package
short_description: Add, delete and save update packages in a repository
version_added: 0.1.0
description:
  - Runs on the repository host.
  - O(state=present) adds package files by hand (003 §2.2.3) after verifying them. With O(mode=needed) only packages a
    managed server needs within the kept generations are added; with O(mode=pinned) every given package is added and
    kept until deleted by hand. Each file gets one of the four results of 003 Table 14.
  - O(state=absent) deletes packages (003 §2.2.4) and records them in the deletion history so that no sync downloads them
    again. Without O(force), a package another manager uses is refused. Each package gets a result of 003 Table 16.
  - O(state=history_cleared) clears the whole deletion history at once (003 §2.2.5).
  - O(state=refusals_cleared) forgets the remembered refusals (all, or those of O(package_ids)), so that the next sync
    downloads those packages again. A refusal is remembered only when the downloaded bytes were exactly those the
    catalog names and the package then failed its own checks (signature, info, structure); a failed download is tried
    again at every sync anyway. M(exup.fleet.exup_package_info) lists the remembered refusals.
  - O(state=exported) saves packages into one archive with C(packages/), an C(index.html) listing each package and the
    component it updates, and C(css/) (003 §2.2.6).
  - O(state=rebuilt) rebuilds a lost or damaged index (C(repo.db)) from the package files of the pool (003 §4.4). Every
    file is verified again with O(trusted_keys), pins, tombstones and the feed's rollback state come back from the
    store's recovery record, files that fail go to C(quarantine/) and a damaged C(repo.db) is kept aside. Until then a
    sync keeps every pool file. Nothing changes when the index is sound.
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
options:
  state:
    description: What to do.
    type: str
    choices: [present, absent, history_cleared, exported, refusals_cleared, rebuilt]
    default: present
  src:
    description:
      - Package files, or directories whose C(*.zip) files are all added, on the repository host. With O(state=present).
    type: list
    elements: path
  mode:
    description:
      - V(needed) adds only what managed servers need (subject to generation management);
        V(pinned) adds every package and keeps it until it is deleted by hand (003 Table 13).
    type: str
    choices: [needed, pinned]
    default: needed
  trusted_keys:
    description: Public keys (PEM text or file paths) trusted to sign packages. Required with O(state=present) and O(state=rebuilt).
    type: list
    elements: str
  package_ids:
    description:
      - Packages to delete (O(state=absent)), to save (O(state=exported)) or whose refusals to clear
        (O(state=refusals_cleared); all of them when omitted).
    type: list
    elements: str
  force:
    description: Delete even packages that another manager uses (003 Table 15).
    type: bool
    default: false
  dest:
    description: Archive to write with O(state=exported).
    type: path
  module_ids:
    description: With O(state=exported) and no O(package_ids), save the packages of these modules.
    type: list
    elements: str
  models:
    description: With O(state=exported) and no O(package_ids), save only packages for these models.
    type: list
    elements: str
  displayed_only:
    description:
      - With O(state=exported) and a module selection, save only the newest (displayed) version of each module;
        false saves every version (003 Table 17).
    type: bool
    default: true
  fail_on_error:
    description: Fail the task when any package gets an error result. The results are returned either way.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Verifies the files and reports the results that adding, deleting, clearing or saving would have, without changing anything.
  diff_mode:
    support: full
    description: The diff lists the ids of the packages added or deleted, or whose refusals are cleared.
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (only when repository is the URL of a repository service)
'''

EXAMPLES = r'''
- name: Add packages downloaded by hand, only what our servers need
  exup.fleet.exup_package:
    repository: /var/lib/exup/repo
    src: [/srv/incoming]
    trusted_keys: [/etc/exup/vendor.pub]

- name: Delete a package, even if another manager uses it
  exup.fleet.exup_package:
    repository: /var/lib/exup/repo
    state: absent
    package_ids: [system-bios-r120a1m-any-1.02]
    force: true

- name: Save the packages that must be applied by hand
  exup.fleet.exup_package:
    repository: /var/lib/exup/repo
    state: exported
    module_ids: [system-bios]
    models: [Express5800/R120h-1M]
    dest: /tmp/bios-archive.zip

- name: The vendor fixed a package that was refused for its signature; try it again at the next sync
  exup.fleet.exup_package:
    repository: /var/lib/exup/repo
    state: refusals_cleared
    package_ids: [system-bios-r120a1m-any-1.03]

- name: repo.db was lost or damaged; rebuild it from the pool
  exup.fleet.exup_package:
    repository: /var/lib/exup/repo
    state: rebuilt
    trusted_keys: [/etc/exup/vendor.pub]
'''

RETURN = r'''
results:
  description:
    - One entry per file (present) or package (absent) with C(result), one of V(added), V(error_invalid_package),
      V(warning_not_needed), V(warning_already_present) (003 Table 14) or V(deleted), V(error_in_use_by_other_manager),
      V(error_not_found), V(already_deleted) (003 Table 16), and C(msg).
  returned: when state is present or absent
  type: list
  elements: dict
  contains:
    file:
      description: The file added (state present).
      type: str
      returned: state present
    package_id:
      description: The package (null for a file that is no valid package).
      type: str
    module_id:
      description: The module it updates.
      type: str
    version:
      description: Its version.
      type: str
    result:
      description: What happened (above).
      type: str
    msg:
      description: What happened, in words.
      type: str
cleared:
  description: Package ids removed from the deletion history.
  returned: when state is history_cleared
  type: list
  elements: str
exported:
  description: Packages saved into the archive.
  returned: when state is exported
  type: list
  elements: dict
  contains:
    package_id:
      description: The package.
      type: str
    module_id:
      description: The module it updates.
      type: str
    version:
      description: Its version.
      type: str
    file:
      description: Its file name inside the archive.
      type: str
dest:
  description: The archive written.
  returned: when state is exported
  type: str
refusals_cleared:
  description: The refusals forgotten.
  returned: when state is refusals_cleared
  type: list
  elements: dict
  contains:
    package_id:
      description: The package.
      type: str
    sha256:
      description: SHA-256 of the bytes refused.
      type: str
    code:
      description: Why, as a stable code (for example V(bad_signature), V(digest_mismatch)).
      type: str
    reason:
      description: Why, in words.
      type: str
    refused_at:
      description: When it was refused.
      type: str
rebuilt:
  description: The rebuild of C(repo.db) from the pool.
  returned: when state is rebuilt
  type: dict
  contains:
    state:
      description: What the index was (V(missing), V(damaged), V(lost); V(sound) or V(empty) when nothing was to do).
      type: str
    packages:
      description: The packages indexed again.
      type: list
      elements: dict
      contains:
        package_id:
          description: The package.
          type: str
        module_id:
          description: The module it updates.
          type: str
        version:
          description: Its version.
          type: str
        sha256:
          description: SHA-256 of its file.
          type: str
        pinned:
          description: It was added by hand (kept whatever the generations say).
          type: bool
        source:
          description: Where it came from (feed, file...).
          type: str
    quarantined:
      description: The pool files that failed their checks and were set aside.
      type: list
      elements: dict
      contains:
        sha256:
          description: The file's SHA-256 (its name in the pool).
          type: str
        code:
          description: Why, as a stable code.
          type: str
        msg:
          description: Why, in words.
          type: str
    tombstones:
      description: The number of tombstones restored.
      type: int
    feed_state:
      description: The feed state keys restored.
      type: list
      elements: str
    moved_aside:
      description: Where a damaged C(repo.db) was kept.
      type: str
      returned: when a damaged repo.db was moved aside
    changed:
      description: The index was (or in check mode would be) rebuilt.
      type: bool
    events:
      description: The event the rebuild logged.
      type: list
      elements: dict
      contains:
        id:
          description: The event's number in the repository's log.
          type: int
          returned: when read from the log
        time:
          description: When it happened (UTC, ISO 8601).
          type: str
        level:
          description: V(info), V(warning) or V(error).
          type: str
        code:
          description: The event's stable code (003 Tables 18-19), for example V(package_added).
          type: str
        message:
          description: The event in words.
          type: str
        detail:
          description: The event's details; its keys depend on the code (package_id, version, server, counts...).
          type: dict
          sample:
            package_id: system-bios_1.1_R120h_rhel9
            version: '1.1'
'''

import os
import zipfile

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import DELETED
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule

ERROR_RESULTS = ('error_invalid_package', 'error_in_use_by_other_manager', 'error_not_found')


def package_files(sources):
    files = []
    for source in sources:
        if os.path.isdir(source):
            files.extend(os.path.join(source, name) for name in sorted(os.listdir(source)) if name.endswith('.zip'))
        else:
            files.append(source)
    return files


def archive_holds(dest, exported):
    """True when ``dest`` already is an archive of exactly these packages (idempotent export)."""
    try:
        with zipfile.ZipFile(dest) as archive:
            names = {name for name in archive.namelist() if name.startswith('packages/')}
    except (OSError, zipfile.BadZipFile):
        return False
    return names == {item['file'] for item in exported}


def main():
    argument_spec = dict(REPOSITORY_SPEC)
    argument_spec.update(
        state={'type': 'str', 'default': 'present', 'choices': ['present', 'absent', 'history_cleared', 'exported', 'refusals_cleared', 'rebuilt']},
        src={'type': 'list', 'elements': 'path'},
        mode={'type': 'str', 'default': 'needed', 'choices': ['needed', 'pinned']},
        trusted_keys={'type': 'list', 'elements': 'str', 'no_log': False},
        package_ids={'type': 'list', 'elements': 'str'},
        force={'type': 'bool', 'default': False},
        dest={'type': 'path'},
        module_ids={'type': 'list', 'elements': 'str'},
        models={'type': 'list', 'elements': 'str'},
        displayed_only={'type': 'bool', 'default': True},
        fail_on_error={'type': 'bool', 'default': True},
    )
    module = ExupModule(
        argument_spec,
        supports_check_mode=True,
        required_if=[
            ('state', 'present', ('src', 'trusted_keys')),
            ('state', 'rebuilt', ('trusted_keys',)),
            ('state', 'absent', ('package_ids',)),
            ('state', 'exported', ('dest',)),
        ],
    )
    params = module.params
    repo = module.repository()
    state = params['state']
    output = {'changed': False}

    if state == 'present':
        files = package_files(params['src'])
        missing = [path for path in files if not os.path.isfile(path)]
        if missing:
            module.fail_json(msg='package file not found: %s' % ', '.join(missing), error='file_not_found')
        results = module.run(repo.add_files, files, module.keyring(), mode=params['mode'], check_mode=module.check_mode)
        output.update(results=results, changed=any(r['result'] == 'added' for r in results))
        output['diff'] = {'before': '', 'after': ''.join('+ %s\n' % r['package_id'] for r in results if r['result'] == 'added')}
    elif state == 'absent':
        tombstoned = {tombstone.package_id for tombstone in module.run(repo.deleted_packages)}
        stored = {package.package_id for package in module.run(repo.packages)}
        wanted = [pid for pid in params['package_ids'] if not (pid in tombstoned and pid not in stored)]
        results = [
            {'package_id': pid, 'result': 'already_deleted', 'msg': 'The package was deleted before.'} for pid in params['package_ids'] if pid not in wanted
        ]
        if wanted:
            results += module.run(repo.delete, wanted, params['manager_id'], force=params['force'], check_mode=module.check_mode)
        output.update(results=results, changed=any(r['result'] == DELETED for r in results))
        output['diff'] = {'before': ''.join('- %s\n' % r['package_id'] for r in results if r['result'] == DELETED), 'after': ''}
    elif state == 'history_cleared':
        cleared = module.run(repo.clear_tombstones, check_mode=module.check_mode)
        output.update(cleared=cleared, changed=bool(cleared))
    elif state == 'rebuilt':
        rebuilt = module.run(repo.rebuild, module.keyring(), check_mode=module.check_mode)
        output.update(rebuilt=rebuilt, changed=rebuilt['changed'])
        output['diff'] = {'before': '', 'after': ''.join('+ %s\n' % p['package_id'] for p in rebuilt['packages'])}
    elif state == 'refusals_cleared':
        cleared = module.run(repo.clear_refusals, package_ids=params['package_ids'], check_mode=module.check_mode)
        output.update(refusals_cleared=cleared, changed=bool(cleared))
        output['diff'] = {'before': ''.join('%s (%s)\n' % (r['package_id'], r['code']) for r in cleared), 'after': ''}
    else:
        selection = dict(package_ids=params['package_ids'], module_ids=params['module_ids'], models=params['models'], displayed_only=params['displayed_only'])
        exported = module.run(repo.export, params['dest'], check_mode=True, **selection)
        changed = not archive_holds(params['dest'], exported)
        if changed and not module.check_mode:
            exported = module.run(repo.export, params['dest'], **selection)
        output.update(exported=exported, changed=changed, dest=params['dest'])

    errors = [r for r in output.get('results', []) if r['result'] in ERROR_RESULTS]
    if errors and params['fail_on_error']:
        module.fail_json(msg='; '.join('%s: %s' % (r.get('package_id') or r.get('file'), r['msg']) for r in errors), **output)
    module.exit_json(**output)


if __name__ == '__main__':
    main()
