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
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (only when repository is the URL of a repository service)
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
  contains:
    package_id:
      description: The package.
      type: str
    module_id:
      description: The module it updates.
      type: str
    module_name:
      description: The module's name.
      type: str
    version:
      description: Its version.
      type: str
    release_date:
      description: Its release date.
      type: str
    models:
      description: The models it targets.
      type: list
      elements: str
    os:
      description: The operating systems it targets.
      type: list
      elements: str
    kind:
      description: Its kind (for example V(linux), V(bmc)).
      type: str
    size:
      description: Size of its file in bytes.
      type: int
    sha256:
      description: SHA-256 of its file.
      type: str
    severity:
      description: The vendor's severity.
      type: str
    source:
      description: How it came (V(feed), V(file), ...).
      type: str
    auto_update:
      description: It is applied automatically (not by hand).
      type: bool
    downgrade_supported:
      description: It may replace a newer version.
      type: bool
    multi_model:
      description: It targets several models.
      type: bool
    reboot_required:
      description: It needs a restart to take effect.
      type: bool
    uninstall_supported:
      description: It can be uninstalled.
      type: bool
    used_by_other_manager:
      description: A server of another manager needs it.
      type: bool
    pinned:
      description: It was added by hand and is kept whatever the generations say.
      type: bool
    generation:
      description: Its generation for the servers that need it (V(current), V(previous)), null when none.
      type: str
    previous_generation_only:
      description: It is kept only as some server's previous generation.
      type: bool
    compatible:
      description: This collection can read and apply it.
      type: bool
    key_id:
      description: The id of the key that signed it.
      type: str
by_component:
  description: Module id to package ids, newest first (003 Fig. 10).
  returned: always
  type: dict
  sample:
    system-bios:
    - system-bios_1.1_R120h_rhel9
    - system-bios_1.0_R120h_rhel9
by_model:
  description: Model to module id to package ids, newest first (003 Fig. 11).
  returned: always
  type: dict
  sample:
    Express5800/R120h-1M:
      system-bios:
      - system-bios_1.1_R120h_rhel9
tombstones:
  description: Deletion history (003 §2.2.4-2.2.5).
  returned: always
  type: list
  elements: dict
  contains:
    package_id:
      description: The package deleted.
      type: str
    module_id:
      description: The module it updated.
      type: str
    version:
      description: Its version.
      type: str
    sha256:
      description: SHA-256 of its file.
      type: str
    deleted_at:
      description: When it was deleted.
      type: str
    deleted_by:
      description: The manager that deleted it.
      type: str
    forced:
      description: 1 when it was deleted although another manager used it (O(exup.fleet.exup_package#module:force)), else 0.
      type: int
    models:
      description: The models it targeted.
      type: list
      elements: str
    os:
      description: The operating systems it targeted.
      type: list
      elements: str
refusals:
  description:
    - Packages a sync does not download again because exactly the bytes the catalog names failed the package's own
      checks. Cleared by M(exup.fleet.exup_package) with O(exup.fleet.exup_package#module:state=refusals_cleared), or when
      the catalog names other bytes.
  returned: always
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
events:
  description: Newest events first (003 Tables 18-19).
  returned: always
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
managers:
  description: Managers using this repository with their last presence (003 §2.2.8).
  returned: always
  type: list
  elements: dict
  contains:
    manager_id:
      description: The manager.
      type: str
    last_seen:
      description: Its last presence.
      type: str
feed:
  description: The feed state the repository keeps (keys present once a sync set them).
  returned: always
  type: dict
  contains:
    feed_url:
      description: The feed's catalog URL.
      type: str
    catalog_version:
      description: The accepted catalog version.
      type: str
    last_access:
      description: When the feed was last read.
      type: str
    catalog_expires:
      description: When the accepted catalog expires.
      type: str
    feed_id:
      description: The feed's id, when its catalog names one.
      type: str
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
