#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_repo_backup
short_description: Back up a repository while its service runs, or restore a backup into a new repository
version_added: 0.1.0
description:
  - Moving a repository to a new machine with its packages and data (003 §4.3), without stopping its service.
  - "O(state=backed_up) writes one tar file to O(path) (replaced when it is there; 0600) holding a consistent copy of the
    local repository O(repository): the writer lock is held meanwhile (a sync or an add waits, every read goes on),
    C(repo.db) is copied with SQLite's online backup API, and each pool file is checked against its SHA-256 on the way.
    The file also holds the recovery record, the feed view's kept catalog, the service's password hashes, its kept
    secrets (the proxy password as it is) and its pool ticket key; keep it as private as the store. Event C(store_backed_up)."
  - O(state=restored) restores the backup file O(path) into the local repository O(repository), which must be empty
    (C(store_not_empty) otherwise; the service's password files may be there, and they are kept). Every member is checked
    first (names, sizes, SHA-256, SQLite integrity); a backup of a newer store format is refused (C(store_too_new); a
    repository moves to the same or a newer version only). Restoring the same backup again changes nothing. Event C(store_restored).
  - O(state=restored) with O(pool_only=true) restores only the pool files and the recovery record, not C(repo.db) - the
    fallback when the index copy is refused; then rebuild the index with M(exup.fleet.exup_package) O(exup.fleet.exup_package#module:state=rebuilt).
  - A refused backup file changes nothing and fails with C(backup_invalid) and what is wrong.
author: exup.fleet contributors (@exup-fleet)
options:
  repository:
    description: The directory of the local repository store on the host the module runs on.
    type: path
    required: true
  path:
    description: The backup file, on the same host.
    type: path
    required: true
  state:
    description: V(backed_up) makes a backup, V(restored) restores one.
    type: str
    choices: [backed_up, restored]
    default: backed_up
  pool_only:
    description: With O(state=restored), restore the pool files and the recovery record only (then rebuild the index).
    type: bool
    default: false
  wait_seconds:
    description: How long to wait for the writer lock (a sync in progress holds it), in seconds.
    type: int
    default: 600
requirements:
  - cryptography >= 42.0 (checked when the module starts)
  - lxml >= 5.2 (checked when the module starts)
attributes:
  check_mode:
    support: full
    description: Checks the store (and the backup file when restoring) and reports what would be done; writes nothing.
  diff_mode:
    support: none
    description: A backup or a restore has no before and after to show; the result says what it holds.
seealso:
  - module: exup.fleet.exup_package
'''

EXAMPLES = r'''
- name: Back up the repository while its service runs
  exup.fleet.exup_repo_backup:
    repository: /var/lib/exup/repository
    path: /var/backups/exup/repository.tar

- name: Restore it on the new machine
  exup.fleet.exup_repo_backup:
    repository: /var/lib/exup/repository
    path: /var/backups/exup/repository.tar
    state: restored
'''

RETURN = r'''
path:
  description: The backup file.
  returned: always
  type: str
backup:
  description: What the backup holds (in check mode of O(state=backed_up) only C(packages)).
  returned: always
  type: dict
  contains:
    backup_id:
      description: The backup's id (16 hex digits).
      type: str
    created_at:
      description: When it was taken (UTC).
      type: str
    store_version:
      description: The store format of the repository it was taken from.
      type: int
    packages:
      description: Packages in its index.
      type: int
    pool_files:
      description: Package files in it.
      type: int
    bytes:
      description: Bytes of its members.
      type: int
kept:
  description: With O(state=restored), the service's secret files this repository had already and kept.
  returned: when state is restored
  type: list
  elements: str
skipped:
  description: With O(pool_only=true), pool files of the backup that failed their check and were left out.
  returned: when state is restored
  type: list
  elements: dict
  contains:
    member:
      description: The file in the backup.
      type: str
    code:
      description: Why, as a stable code.
      type: str
    msg:
      description: Why, in words.
      type: str
events:
  description: The events logged (C(store_backed_up), C(store_restored)); empty in check mode.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The event's number in the repository's log.
      type: int
    time:
      description: When it happened (UTC, ISO 8601).
      type: str
    level:
      description: V(info), V(warning) or V(error).
      type: str
    code:
      description: The event's stable code, V(store_backed_up) or V(store_restored).
      type: str
    message:
      description: The event in words.
      type: str
    detail:
      description: The event's details.
      type: dict
      contains:
        path:
          description: The backup file.
          type: str
        backup_id:
          description: The backup's id.
          type: str
        packages:
          description: Packages in the backup.
          type: int
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup_module import ExupModule

OPTIONS = {
    'repository': {'type': 'path', 'required': True},
    'path': {'type': 'path', 'required': True},
    'state': {'type': 'str', 'choices': ['backed_up', 'restored'], 'default': 'backed_up'},
    'pool_only': {'type': 'bool', 'default': False},
    'wait_seconds': {'type': 'int', 'default': 600},
}


def main():
    module = ExupModule(OPTIONS, supports_check_mode=True)
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import backup
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository

    params = module.params
    repo = Repository(params['repository'])
    if params['state'] == 'backed_up':
        result = module.run(backup.make_backup, repo, params['path'], check_mode=module.check_mode, wait_seconds=params['wait_seconds'])
    else:
        result = module.run(
            backup.restore_backup, repo, params['path'], pool_only=params['pool_only'], check_mode=module.check_mode, wait_seconds=params['wait_seconds']
        )
    module.exit_json(**result)


if __name__ == '__main__':
    main()
