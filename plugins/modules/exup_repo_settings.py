#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_repo_settings
short_description: Read and change the settings a repository keeps
version_added: 0.2.0
description:
  - Runs on the repository host.
  - Without options it reads the settings (the event C(settings_read) is logged, 003 Table 18); with options it changes them
    (C(settings_changed), with the values before and after; C(settings_change_failed) when a value is refused, 003 Table 19).
  - The settings are kept with their history, so a package that reaches the repository gets the value set at that moment.
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
options:
  initial_manual_icon:
    description:
      - The "initial status icon" of 003 §3.3 step 5. When a package that is not auto-update reaches the repository, the
        modules it updates show this icon (status C(-) of 003 Table 9) until an operator sets another one with
        M(exup.fleet.exup_server_status).
      - V(latest) stands for "latest", V(update_available) for "update available", V(no_package) for "no package".
      - Not given, the setting is left as it is; a new repository starts with V(update_available).
    type: str
    choices: [latest, update_available, no_package]
attributes:
  check_mode:
    support: full
    description: Reports what would change; logs nothing and creates nothing.
  diff_mode:
    support: full
    description: The settings before and after.
'''

EXAMPLES = r'''
- name: Packages to apply by hand show as "latest" until someone says otherwise
  exup.fleet.exup_repo_settings:
    repository: /var/lib/exup/repo
    initial_manual_icon: latest

- name: Read the settings
  exup.fleet.exup_repo_settings:
    repository: /var/lib/exup/repo
  register: settings
'''

RETURN = r'''
settings:
  description: Setting name to value, after the change.
  returned: always
  type: dict
  sample: {initial_manual_icon: update_available}
before:
  description: Setting name to value, before the change.
  returned: always
  type: dict
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import SETTINGS, Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule


def main():
    argument_spec = dict(REPOSITORY_SPEC, initial_manual_icon={'type': 'str', 'choices': list(SETTINGS['initial_manual_icon'][0])})
    module = ExupModule(argument_spec, supports_check_mode=True)
    repo = Repository(module.params['repository'])
    wanted = {name: module.params[name] for name in SETTINGS if module.params.get(name) is not None}
    if wanted:
        before, after = module.run(repo.change_settings, wanted, check_mode=module.check_mode)
    else:
        before = after = module.run(repo.read_settings, check_mode=module.check_mode)
    module.exit_json(changed=before != after, settings=after, before=before, diff={'before': before, 'after': after})


if __name__ == '__main__':
    main()
