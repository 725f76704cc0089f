#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_info
short_description: What a managed server runs, what the repository has for it, and its statuses
version_added: 0.1.0
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
  verify_versions:
    description:
      - After a restart, on the agent path, module id -> the version a package reported succeeded and staged for the restart (13.5).
      - Each module whose version read now is another one (or is not installed) is a package that succeeded but is unchanged - the query
        logs a C(succeeded_unchanged) event in the repository and lists the module in RV(unchanged_modules). The query itself does not fail.
      - The role C(exup.fleet.rollout) passes it after its restart and fails the server in its summary.
    type: dict
  bmc_tasks:
    description:
      - With O(via=bmc) and Redfish, also list the BMC's tasks (TaskService, the newest 32) in RV(bmc.tasks) - the pre-flight gate
        of the role C(exup.fleet.rollout) refuses a server whose BMC has a task not done.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads only; in check mode it does not register or log.
requirements:
  - cryptography >= 42.0 (on the controller)
  - lxml >= 5.2 (on the controller; reading the server needs neither library there, a missing one is listed in agent_install_blockers)
  - requests >= 2.31 (on the controller, for a repository service URL)
  - pyghmi >= 1.6.19 (on the controller, for via=bmc)
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
server:
  description: The server's name (O(server_name) or the inventory host name).
  returned: always
  type: str
via:
  description: V(bmc) on the BMC path.
  returned: when O(via=bmc)
  type: str
model:
  description: The server's model (DMI product name).
  returned: always
  type: str
os:
  description: The OS as packages name it (rhel9, sles15, ubuntu2204); null on the BMC path.
  returned: always
  type: str
facts:
  description: What the agent path reads on the server (on the BMC path, when its OS could be reached).
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
      description: The OS as packages name it (rhel9, sles15, ubuntu2204).
      type: str
    os_pretty_name:
      description: PRETTY_NAME of os-release.
      type: str
    virtual_machine:
      description: The hypervisor when the server is a virtual machine guest, else null.
      type: str
    boot_id:
      description: The kernel's boot id; it changes at every restart.
      type: str
agent:
  description: The agent on the server (null on the BMC path when the OS cannot be reached).
  returned: always
  type: dict
  contains:
    installed:
      description: Whether the agent is installed.
      type: bool
    version:
      description: The installed agent's version, null when it is not installed.
      type: str
    folder:
      description: Where the agent is installed, null when it is not installed.
      type: str
agent_installable:
  description: The agent is not installed and nothing prevents installing it.
  returned: always
  type: bool
agent_install_blockers:
  description:
    - Why the agent cannot be installed - the server's own prerequisites (virtual machine, OS, model, conflicting software,
      a Python library the server's Python cannot import) and what the repository's agent packages support.
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description:
        - Stable code of the reason, for example V(virtual_machine), V(unsupported_os), V(unsupported_model),
          V(conflicting_software) or V(missing_library).
      type: str
    msg:
      description: The reason in words.
      type: str
    library:
      description: For V(missing_library), the Python library the server's Python cannot import (V(cryptography), V(lxml)).
      type: str
      returned: when code is missing_library
    package:
      description:
        - For V(missing_library), the distribution package that brings it to that Python on that OS - V(python3-lxml) for a
          platform Python, V(python311-lxml) for SLES 15's Python 3.11, V(python3.11-lxml) for RHEL's.
      type: str
      returned: when code is missing_library
modules:
  description:
    - Module id (for example V(system-bios)) to its state - C(name), C(current) and C(previous) versions (null when none),
      C(status) (Table 10, for example V(latest), V(update_available), V(no_package)), C(manual_icon) (set by hand with
      M(exup.fleet.exup_server_status), else null), C(block) (why an apply is refused now, for example V(reboot_required)),
      C(staged) (the version waiting for a restart).
    - C(versions) lists the repository's versions for this server, newest first - C(version), C(package_id), C(release_date),
      C(reboot_required), C(downgrade_supported), C(uninstall_supported), C(auto_update), C(kind), C(compatible),
      C(previous_generation) and C(label) (the version as shown, C([*]) marking the previous generation).
  returned: always
  type: dict
  sample:
    system-bios:
      name: System BIOS
      current: '1.0'
      previous: null
      status: update_available
      manual_icon: null
      block: null
      staged: null
      versions:
      - version: '1.1'
        package_id: system-bios_1.1_R120h_rhel9
        release_date: '2024-05-01'
        reboot_required: true
        downgrade_supported: false
        uninstall_supported: false
        auto_update: true
        kind: linux
        compatible: true
        previous_generation: false
        label: '1.1'
available_modules:
  description: Module ids the repository has a package for that the server does not report.
  returned: when O(via=agent)
  type: list
  elements: str
unknown_packages:
  description: Whether the repository holds packages for this server that this collection cannot read.
  returned: when O(via=agent)
  type: bool
active_job:
  description:
    - The agent's job still running, else null.
    - C(items) lists the job's packages in order, each with C(package_id), C(module_id), C(action), C(from_version), C(to_version),
      C(reboot_required), C(release_date), C(status) (V(waiting), V(running), V(succeeded), V(failed), V(cancelled)), C(cause),
      C(exit_code), C(output_tail) and C(outcome) (V(finished), V(finished_after_runner_died), V(killed), V(lost)).
  returned: when O(via=agent)
  type: dict
  contains:
    job_id:
      description: The agent's job id.
      type: str
    state:
      description: V(running) or V(finished).
      type: str
    done:
      description: Items that ended.
      type: int
    total:
      description: Items of the job.
      type: int
    recovered:
      description: The job's outcome was read after its runner died.
      type: bool
    runner_lost:
      description: A package script outlives the agent's runner (the job is still running).
      type: bool
    error:
      description: V(agent_disk_full) when the agent's state folder filled up during the job, else null.
      type: str
newest:
  description: Module id to the newest version the repository has for this server (null when none).
  returned: when O(via=agent)
  type: dict
  sample:
    system-bios: '1.1'
    update-agent: null
registered:
  description: O(register_server) changed the repository's record of the server (false in check mode).
  returned: when O(via=agent)
  type: bool
untrusted_packages:
  description: Package ids in the repository signed by a key not in O(trusted_keys).
  returned: when O(via=agent)
  type: list
  elements: str
reboot_failed:
  description: The server still runs the boot of O(boot_id_before_reboot), so the restart asked for did not happen.
  returned: when O(boot_id_before_reboot) is given
  type: bool
unchanged_modules:
  description: The modules of O(verify_versions) whose version read now is not the one given (succeeded but unchanged).
  returned: when O(verify_versions) is given, on the agent path
  type: list
  elements: str
bmc:
  description: What the BMC reported.
  returned: when O(via=bmc)
  type: dict
  contains:
    address:
      description: The BMC's address.
      type: str
    protocol:
      description: V(redfish) or V(ipmi).
      type: str
    power:
      description: The server's power state as the BMC reports it.
      type: str
    firmware:
      description: The firmware the BMC lists.
      type: list
      elements: dict
      contains:
        name:
          description: The firmware's name.
          type: str
        id:
          description: Its id at the BMC.
          type: str
        version:
          description: Its version.
          type: str
        module:
          description: The exup module it is (V(system-bios), V(bmc-firmware)), else null.
          type: str
        updateable:
          description: The BMC can update it.
          type: bool
    tasks:
      description: The BMC's Redfish tasks (O(bmc_tasks)); null over IPMI.
      returned: when O(bmc_tasks=true)
      type: list
      elements: dict
      contains:
        url:
          description: The task's URL at the BMC.
          type: str
        state:
          description:
            - Its C(TaskState) (V(New), V(Running), V(Completed), V(Exception), ...); V(Unknown) when the BMC does not say.
            - When the BMC lists more tasks than exup reads (128, or a paged list) or the listing outlasts O(bmc_timeout), one
              entry with the URL of the task collection and V(Unknown) stands for the tasks not read.
          type: str
        percent:
          description: Its C(PercentComplete), null when the BMC does not say.
          type: int
not_manageable_via_bmc:
  description: Module ids the repository has packages for that the BMC path cannot manage.
  returned: when O(via=bmc)
  type: list
  elements: str
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
