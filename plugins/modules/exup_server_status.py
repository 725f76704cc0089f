#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_server_status
short_description: Set by hand the status icon of modules that are applied by hand
version_added: 0.1.0
description:
  - Runs on the repository host.
  - A module whose packages are not auto-update has status C(-) and an icon set by hand (003 Table 9, §2.1.3.2 steps 1-6),
    for example after its packages were saved (M(exup.fleet.exup_package) O(exup.fleet.exup_package#module:state=exported))
    and applied by hand. M(exup.fleet.exup_info) returns it as C(manual_icon).
  - The icon is kept per server and module in the repository. Until it is set, and again when a newer package of the
    module arrives, the module shows the repository's initial icon (M(exup.fleet.exup_repo_settings)).
  - Each change logs C(status_changed) with the icon before and after (003 Table 18); a refused change logs
    C(status_change_failed) (003 Table 19) and changes nothing.
  - The icon only shows while the module has no auto-update package for the server (then the status is one of 003 Table 8).
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
options:
  server_name:
    description: The managed server, as M(exup.fleet.exup_info) names it (its inventory name unless given there).
    type: str
    required: true
  modules:
    description: Module ids (for example V(sdr), V(bmc-firmware)) whose icon to set.
    type: list
    elements: str
    required: true
  icon:
    description: V(latest) stands for "latest", V(update_available) for "update available", V(no_package) for "no package".
    type: str
    required: true
    choices: [latest, update_available, no_package]
attributes:
  check_mode:
    support: full
    description: Reports the change; logs nothing.
  diff_mode:
    support: full
    description: The icons set by hand before and after, per module.
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (only when repository is the URL of a repository service)
'''

EXAMPLES = r'''
- name: The SDR of r120h-1 was updated by hand from the saved archive
  exup.fleet.exup_server_status:
    repository: /var/lib/exup/repo
    server_name: r120h-1
    modules: [sdr]
    icon: latest
  delegate_to: localhost
'''

RETURN = r'''
icons:
  description: Per module, C(before) (the icon set by hand earlier, or null) and C(after).
  returned: always
  type: list
  elements: dict
  contains:
    module_id:
      description: The module.
      type: str
    before:
      description: The icon set by hand earlier, or null.
      type: str
    after:
      description: The icon now.
      type: str
  sample: [{module_id: sdr, before: null, after: latest}]
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.plan import MANUAL_ICONS
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule


def main():
    argument_spec = dict(
        REPOSITORY_SPEC,
        server_name={'type': 'str', 'required': True},
        modules={'type': 'list', 'elements': 'str', 'required': True},
        icon={'type': 'str', 'required': True, 'choices': list(MANUAL_ICONS)},
    )
    module = ExupModule(argument_spec, supports_check_mode=True)
    params = module.params
    repo = module.repository()
    rows = module.run(repo.set_manual_icons, params['manager_id'], params['server_name'], params['modules'], params['icon'], check_mode=module.check_mode)
    module.exit_json(
        changed=any(row['before'] != row['after'] for row in rows),
        icons=rows,
        diff={'before': {row['module_id']: row['before'] for row in rows}, 'after': {row['module_id']: row['after'] for row in rows}},
    )


if __name__ == '__main__':
    main()
