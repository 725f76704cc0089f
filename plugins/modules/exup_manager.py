#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_manager
short_description: Set the repository a manager uses, checking the connection and the password first
version_added: 0.1.0
description:
  - The manager's repository setting of 003 §1.3. A manager (this controller, an AWX instance, a site) uses the local
    repository or a remote one, a repository service shared by several managers (Fig. 4, 5).
  - The module checks the repository first, as the seed's setting does, then records this manager's presence there
    (003 §2.2.8) and, with O(servers), the servers it manages (its needs).
  - The check is the connection, the password and the API version. A repository that cannot be reached fails the task
    with C(repository_unreachable) (003 Fig. 2), unless O(force=true) keeps the setting anyway. Then the task succeeds
    with RV(connected=false) and a warning, and nothing is recorded at the repository until a later task reaches it.
  - A wrong password is never kept, O(force) or not (C(auth_failed)).
  - A remote repository older than this collection is reported with the features it limits (003 Fig. 3) in
    RV(repository.limited) and a warning; those features are refused when used, with C(repository_too_old).
  - Keep the setting itself where the manager's other settings are, for example as the inventory or AWX variables the
    other modules' O(repository) options are set from.
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
options:
  servers:
    description:
      - The servers this manager manages, each with C(name), C(model), C(os) and optionally C(modules) (as
        M(exup.fleet.exup_repo_sync) takes them). Omit to keep what this manager registered before.
    type: list
    elements: dict
  force:
    description:
      - Keep the setting when the repository cannot be reached (003 Fig. 2, "complete the setting"). Without it such a
        repository fails the task ("cancel the new setting").
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Checks the repository; records nothing.
  diff_mode:
    support: none
    description: Nothing is changed that a diff could show; the servers recorded are M(exup.fleet.exup_repo_sync)'s to report.
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (the repository service's API)
'''

EXAMPLES = r'''
- name: Use the shared repository in the DMZ
  exup.fleet.exup_manager:
    repository: https://repo.dmz.example.com:8080
    repository_password: "{{ vault_exup_repository_password }}"
    repository_ca_path: /etc/pki/exup/repository-ca.pem
    manager_id: site-tokyo

- name: Keep the setting while the repository is down for maintenance
  exup.fleet.exup_manager:
    repository: https://repo.dmz.example.com:8080
    repository_password: "{{ vault_exup_repository_password }}"
    manager_id: site-tokyo
    force: true
'''

RETURN = r'''
connected:
  description: Whether the repository was reached and the password accepted.
  returned: always
  type: bool
repository:
  description: What the repository said of itself (a remote one), or its path (a local one).
  returned: when connected
  type: dict
  contains:
    location:
      description: The repository's URL or path.
      type: str
    api_version:
      description: The API version a remote repository speaks (the lower of its own and this collection's).
      type: int
    collection_version:
      description: The exup.fleet version on a remote repository's host.
      type: str
    limited:
      description: Features this collection has that the remote repository lacks (003 Fig. 3); empty when none.
      type: list
      elements: str
expired_managers:
  description: Managers the repository forgot at this presence, after two months without presence (003 §2.2.8).
  returned: when connected
  type: list
  elements: str
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.remote import is_remote
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule


def describe(repo, location):
    """What the manager learns of the repository it checked (raises on a failed check)."""
    if not is_remote(location):
        return {'location': location, 'api_version': wire.API_VERSION, 'collection_version': None, 'limited': []}
    about = repo.about()
    return {'location': repo.base_url, 'api_version': about['api_version'], 'collection_version': about.get('collection_version'), 'limited': about['limited']}


def main():
    argument_spec = dict(REPOSITORY_SPEC, servers={'type': 'list', 'elements': 'dict'}, force={'type': 'bool', 'default': False})
    module = ExupModule(argument_spec, needs_http=True, supports_check_mode=True)
    params = module.params
    servers = None
    if params['servers'] is not None:
        servers = [module.run(server_from_dict, params['manager_id'], item) for item in params['servers']]
    repo = module.repository()
    try:
        described = describe(repo, params['repository'])
    except ExupError as exc:
        if exc.code == 'repository_unreachable' and params['force']:
            module.warn('%s; the setting is kept (force): the manager uses this repository once it is reachable' % exc.msg)
            module.exit_json(changed=False, connected=False, msg=exc.msg)
        module.fail_json(msg=exc.msg, error=exc.code, **exc.details)
    if described['limited']:
        module.warn(
            'the repository at %s is older than this collection and lacks %s (003 §1.3): update exup.fleet on its host'
            % (described['location'], ', '.join(described['limited']))
        )
    if module.check_mode:
        module.exit_json(changed=False, connected=True, repository=described, expired_managers=[])
    differs = servers is not None and any(module.run(repo.server_record_differs, params['manager_id'], server) for server in servers)
    expired = module.run(repo.announce, params['manager_id'], servers)
    module.exit_json(changed=bool(differs or expired), connected=True, repository=described, expired_managers=expired)


if __name__ == '__main__':
    main()
