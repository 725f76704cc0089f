#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_info
short_description: What a managed server runs, what the repository has for it, and its statuses
version_added: 0.2.0
description:
  - Runs through an action plugin on the controller; reads the server over its connection (no change there).
  - Returns the model, OS, each module's current version, the versions in the repository for it (the previous generation
    marked C([*])), the module statuses of 003 Tables 8-9, the server status by the priority of Table 10, and whether the
    agent could be installed (003 §2.3.2-3, §3.8).
  - With O(register_server=true) it records the server and its versions in the repository, so the next sync fetches what it
    needs; the task is C(changed) when the repository's record of the server changed (in check mode, whether it would change).
  - With a repository, the status C(-) of a module applied by hand carries the icon set by hand (M(exup.fleet.exup_server_status))
    or the repository's initial icon (M(exup.fleet.exup_repo_settings)), 003 Table 9; a module whose restart M(exup.fleet.exup_apply)
    allowed (O(exup.fleet.exup_apply#module:allow_reboot=true)) or did through the BMC is C(rebooting) until the server is back
    (003 Table 8).
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.host
  - exup.fleet.bmc
  - exup.fleet.repository.remote
options:
  repository:
    description:
      - The repository folder on the controller, or the URL of a repository service (V(https://repo.example.com:8080),
        with O(repository_password)); without it only the server side is reported.
    type: str
  register_server:
    description:
      - Record this server (model, OS, versions, previous generations) in the repository as managed by O(manager_id).
      - The alias O(register) is deprecated (it is also the name of Ansible's task keyword) and will be removed in 2.0.0.
    type: bool
    default: false
    aliases: [register]
  trusted_keys:
    description:
      - Public keys (PEM text, or paths of PEM files on the controller, read there). When given, repository packages signed by any
        other key (a key rotated out or revoked) are not offered and are listed in RV(untrusted_packages).
    type: list
    elements: str
    default: []
  boot_id_before_reboot:
    description:
      - The boot id the server had before a restart was asked for (RV(facts.boot_id) of an earlier query), on the agent path.
      - When the server still reports that boot id, or cannot be reached, the restart failed; the query logs a C(reboot_failed)
        event in the repository (003 Table 19) and returns RV(reboot_failed=true).
    type: str
attributes:
  check_mode:
    support: full
    description: Reads only; in check mode it does not register or log.
requirements: [cryptography, lxml, pyghmi (for via=bmc)]
'''

EXAMPLES = r'''
- name: Versions and statuses
  exup.fleet.exup_info:
    repository: /var/lib/exup/repo
    register_server: true
  register: info

- name: Show the server status
  ansible.builtin.debug:
    msg: "{{ info.server_status }}"
'''

RETURN = r'''
model:
  description: The server's model (DMI product name).
  returned: always
  type: str
os:
  description: The OS as packages name it (rhel9, sles15, ubuntu2204).
  returned: always
  type: str
facts:
  description: What the agent path reads on the server (agent path only).
  returned: when O(via=agent)
  type: dict
  contains:
    model:
      description: DMI product name.
      type: str
    vendor:
      description: DMI system vendor.
      type: str
    os:
      description: The OS as packages name it.
      type: str
    os_pretty_name:
      description: PRETTY_NAME of os-release.
      type: str
    virtual_machine:
      description: The hypervisor when the server is a virtual machine guest, else null.
      type: str
    boot_id:
      description: The kernel's boot id; it changes at every restart (give it as O(boot_id_before_reboot) to check a restart).
      type: str
agent:
  description: installed, version, folder.
  returned: always
  type: dict
agent_installable:
  description: The agent is not installed and nothing prevents installing it.
  returned: always
  type: bool
agent_install_blockers:
  description: Why the agent cannot be installed (code, msg), for example virtual_machine or unsupported_os.
  returned: always
  type: list
  elements: dict
modules:
  description: Module id to name, current, previous, status, manual_icon, block, staged and versions (newest first).
  returned: always
  type: dict
registered:
  description: O(register_server) changed the repository's record of the server (false in check mode).
  returned: always
  type: bool
untrusted_packages:
  description: Package ids in the repository signed by a key not in O(trusted_keys).
  returned: always
  type: list
  elements: str
reboot_failed:
  description: The server still runs the boot of O(boot_id_before_reboot), so the restart asked for did not happen.
  returned: when O(boot_id_before_reboot) is given
  type: bool
server_status:
  description: The status of Table 10 (communication_failed, unknown, applying, uninstalling, update_available, apply_failed,
    reboot_required, latest), or agent_not_installed.
  returned: always
  type: str
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import INFO_SPEC, refuse_direct_run


def main():
    refuse_direct_run('exup_info', INFO_SPEC)


if __name__ == '__main__':
    main()
