#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_package_info
short_description: List the update packages of a repository
version_added: 0.1.0
description:
  - Runs on the repository host. Read-only.
  - Lists the packages by component and by target model (003 Fig. 10 and 11), each with the flags of 003 Table 20
    (auto-update, downgrade support, multi-model, used by another manager) and pinned, generation and compatibility;
    the deletion history (tombstones); the remembered refusals; the managers and their presence; and the event log.
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
options:
  module_ids:
    description: Only packages of these modules.
    type: list
    elements: str
  models:
    description: Only packages for these models.
    type: list
    elements: str
  event_limit:
    description: Newest events to return.
    type: int
    default: 100
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
'''

EXAMPLES = r'''
- name: Show the repository
  exup.fleet.exup_package_info:
    repository: /var/lib/exup/repo
  register: repo

- name: BIOS versions for one model
  ansible.builtin.debug:
    msg: "{{ repo.by_model['Express5800/R120h-1M']['system-bios'] }}"
'''

RETURN = r'''
packages:
  description: Every package with its flags.
  returned: always
  type: list
  elements: dict
by_component:
  description: Module id to package ids, newest first (003 Fig. 10).
  returned: always
  type: dict
by_model:
  description: Model to module id to package ids, newest first (003 Fig. 11).
  returned: always
  type: dict
tombstones:
  description: Deletion history (003 §2.2.4-2.2.5).
  returned: always
  type: list
  elements: dict
refusals:
  description:
    - Packages a sync does not download again because exactly the bytes the catalog names failed the package's own
      checks, each with C(package_id), C(sha256), C(code), C(reason) and C(refused_at). Cleared by
      M(exup.fleet.exup_package) with O(exup.fleet.exup_package#module:state=refusals_cleared), or when the catalog names other bytes.
  returned: always
  type: list
  elements: dict
events:
  description: Newest events first (003 Tables 18-19).
  returned: always
  type: list
  elements: dict
managers:
  description: Managers using this repository with their last presence (003 §2.2.8).
  returned: always
  type: list
  elements: dict
feed:
  description: Feed URL, accepted catalog version, last access, catalog expiry and the feed's C(feed_id) (when its catalog names one).
  returned: always
  type: dict
servers:
  description: Number of servers that the active managers manage.
  returned: always
  type: int
feed_entries:
  description: Number of feed entries the repository knows (they rank the generations).
  returned: always
  type: int
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule


def main():
    argument_spec = dict(REPOSITORY_SPEC)
    argument_spec.update(
        module_ids={'type': 'list', 'elements': 'str'}, models={'type': 'list', 'elements': 'str'}, event_limit={'type': 'int', 'default': 100}
    )
    module = ExupModule(argument_spec, supports_check_mode=True)
    params = module.params
    listing = module.run(
        module.repository().listing,
        params['manager_id'],
        event_limit=params['event_limit'],
        module_ids=params['module_ids'],
        models=params['models'],
    )
    module.exit_json(changed=False, **listing)


if __name__ == '__main__':
    main()
