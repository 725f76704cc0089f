#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_apply
short_description: Apply or uninstall update packages on a managed server through its agent
version_added: 0.1.0
description:
  - Runs through an action plugin on the controller. The repository is a path on the controller; the packages are copied
    to the server, verified again there, and run by the exup agent as a detached job (docs/agent.md).
  - Selection follows 003 §2.1.1 (O(latest_only)), order §2.1.7 (no-reboot packages first, then release date, an uninstall of
    the update agent last), gating §2.1.5-6 (after a reboot-requiring package or a failure, nothing more is applied until
    the server restarts).
  - Packages that are not auto-update are refused with a message pointing to export (M(exup.fleet.exup_package) C(state=exported)).
  - The agent keeps going only while the controller polls (a lease of O(lease_seconds)). If polling stops (communication
    lost, 003 §4.1) the running package finishes, the rest are cancelled and nothing reboots.
  - This module never reboots; it returns RV(reboot_allowed) by the rule of §2.1.2 for the playbook (see playbooks/apply.yml).
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.host
  - exup.fleet.bmc
  - exup.fleet.repository.remote
options:
  repository:
    description:
      - The repository folder on the controller, or the URL of a repository service (V(https://repo.example.com:8080),
        with O(repository_password)).
    type: str
    required: true
  package_transfer:
    description:
      - How package files reach the managed server or BMC.
      - V(controller) sends them from the controller over the play's connection (the agent path) or pushes them to the BMC;
        files of a remote repository are first fetched to the controller and checked there.
      - V(service) has the managed server fetch each file itself from the repository service, with a signed URL that
        admits that one file for a limited time (no password on the server), and no copy through the controller. The
        server checks the file's SHA-256 and signature before use. It needs a remote O(repository).
      - V(auto) is V(service) for a remote repository and V(controller) for a local one.
      - On the BMC path with O(update_method=simple_update) and a remote repository, the BMC always fetches the file from the
        repository service (the ImageURI is a signed URL; O(image_base_url), if given, replaces the service's address as the
        BMC reaches it).
      - RV(package_transfer) says which way was used.
    type: str
    choices: [auto, service, controller]
    default: auto
  trusted_keys:
    description:
      - Public keys packages must be signed with; the host verifies each package against them.
      - Each is PEM text or the path of a PEM file on the controller (relative paths are looked up like any controller file of
        the task, e.g. in the playbook's or role's C(files/)). Files are read on the controller; the managed server gets only the
        key material, so it needs no key file of its own. A file that cannot be read fails the task with C(key_unreadable).
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) applies packages, V(absent) uninstalls the O(modules) (where their package supports it, 003 §3.9),
        V(cancelled) cancels the packages of the running job that have not started.
    type: str
    default: present
    choices: [present, absent, cancelled]
  modules:
    description: Module ids to act on (003 Table 6, for example V(system-bios)); default every module that has an update.
    type: list
    elements: str
  versions:
    description: Module id to the version to apply, or V(previous) for the previous generation (the version before the last apply).
    type: dict
    default: {}
  latest_only:
    description:
      - V(true) applies only the newest version above the current one. V(false) also allows a newer non-newest version, and an
        older or equal one when the package supports downgrade (003 §2.1.1).
    type: bool
    default: true
  lease_seconds:
    description: How long the agent goes on without hearing from the controller before it cancels what has not started.
    type: int
    default: 60
  poll_interval:
    description: Seconds between progress polls (each poll renews the lease).
    type: int
    default: 5
  wait_timeout:
    description: Give up following the job after this many seconds (the agent then cancels what has not started).
    type: int
    default: 7200
  update_method:
    description:
      - For O(via=bmc). V(push) sends the package to the BMC's MultipartHttpPushUri (else HttpPushUri). V(simple_update) asks the
        BMC to fetch it (Redfish SimpleUpdate with an ImageURI under O(image_base_url)).
    type: str
    default: push
    choices: [push, simple_update]
  image_base_url:
    description:
      - For O(update_method=simple_update), the HTTP(S) URL where the repository folder is served (its C(pool/) is content
        addressed, so any static server or cache can serve it); the ImageURI is this plus the package's path in the repository.
    type: str
  apply_time:
    description: For O(via=bmc), when the BMC activates the firmware (Redfish OperationApplyTime).
    type: str
    default: OnReset
    choices: [OnReset, Immediate]
  allow_reboot:
    description:
      - For O(via=bmc), reset what the applied firmware waits for (power cycle the server for BIOS, reset the BMC for its own
        firmware) when the rule of 003 §2.1.2 allows it. The agent path leaves the restart to the playbook.
      - On the agent path, V(true) says the playbook restarts the server when RV(reboot_allowed) is true (as
        C(playbooks/apply.yml) does with C(apply_allow_reboot)). On both paths the modules that wait for that restart
        are then C(rebooting) (003 Table 8) and every apply to the server is refused with C(server_rebooting), until the
        server is back (on the agent path when its boot id changed, on the BMC path when the BMC reports it on) or O(reboot_timeout) passed.
    type: bool
    default: false
  reboot_timeout:
    description:
      - Seconds a restart allowed or done with O(allow_reboot) shows as C(rebooting) at most. After that, if the server did
        not restart, its modules are C(reboot_required) again.
    type: int
    default: 1200
  power_cycle:
    description:
      - For O(via=bmc), only power cycle the server through its BMC (003 §2.1.5 "remote power control"), which ends the
        reboot-required and apply-failed blocks; nothing is applied. A BMC firmware staged until the BMC's reset is activated
        too (the BMC is reset).
    type: bool
    default: false
  task_timeout:
    description: For O(via=bmc), seconds to follow the BMC's update task before giving up with C(bmc_task_timeout).
    type: int
    default: 1800
  maintenance_windows:
    description:
      - iCalendar texts (RFC 5545, VEVENTs with DTSTART, DTEND, RRULE, EXDATE, time zones), on both paths. When given, nothing
        starts outside their windows, nor when the expected duration does not end before the open window closes; the task
        then returns C(changed=false), C(skipped=true), RV(window_code) and RV(skipped_reason) (docs/maintenance-windows.md).
      - A calendar that cannot be read fails with C(window_invalid); without the libraries, C(missing_library).
      - Default the host variable C(exup_maintenance_windows), so an apply from any playbook keeps the host's windows. An
        empty list means no windows, that is no restriction.
    type: list
    elements: str
  expected_duration:
    description:
      - Seconds the apply is expected to take, for O(maintenance_windows). Default the longest of the server's last 5 finished
        applies in the repository's event log plus 25% (at least 60 s), 1800 s without history. With O(allow_reboot) and a
        planned package that needs a restart, O(reboot_timeout) is added, as the restart must end inside the window too.
    type: int
attributes:
  check_mode:
    support: full
    description: Returns the ordered plan and changes nothing.
  diff_mode:
    support: full
    description: Module versions before and after.
requirements:
  - cryptography >= 42.0 (on the controller, and on the managed server on the agent path)
  - lxml >= 5.2 (on the controller, and on the managed server on the agent path)
  - requests >= 2.31 (on the controller, for a repository service URL)
  - pyghmi >= 1.6.19 (on the controller, for via=bmc)
  - icalendar >= 7.0 and recurring-ical-events >= 3.0 (on the controller, for maintenance_windows)
notes:
  - The repository must exist on the controller (run M(exup.fleet.exup_repo_sync) first).
'''

EXAMPLES = r'''
- name: Apply every update that is available (latest only)
  exup.fleet.exup_apply:
    repository: /var/lib/exup/repo
    trusted_keys: [/etc/exup/vendor.pub]
  register: applied

- name: Go back to the previous BIOS generation
  exup.fleet.exup_apply:
    repository: /var/lib/exup/repo
    trusted_keys: [/etc/exup/vendor.pub]
    versions: {system-bios: previous}
    latest_only: false

- name: Uninstall the RAID utility
  exup.fleet.exup_apply:
    repository: /var/lib/exup/repo
    trusted_keys: [/etc/exup/vendor.pub]
    state: absent
    modules: [raid-utility]
'''

RETURN = r'''
via:
  description: V(bmc) on the BMC path.
  returned: when O(via=bmc)
  type: str
model:
  description: The server's model.
  returned: when a plan was made
  type: str
os:
  description: The server's OS as packages name it.
  returned: when a plan was made on the agent path
  type: str
package_transfer:
  description: How package files reached the server or BMC, V(service) (fetched from the repository service) or V(controller).
  returned: when packages were sent
  type: str
  sample: service
plan:
  description: The ordered packages.
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
    action:
      description: V(install) or V(uninstall).
      type: str
    from_version:
      description: The module's version before.
      type: str
    to_version:
      description: The version it installs (null for an uninstall).
      type: str
    reboot_required:
      description: It needs a restart to take effect.
      type: bool
    release_date:
      description: Its release date.
      type: str
    command:
      description: The package's command.
      type: str
    sha256:
      description: SHA-256 of the package file.
      type: str
    size:
      description: Size of the package file in bytes.
      type: int
    path:
      description:
        - Stepping stones only (a target whose C(UpgradeFromMin) the current version does not meet), on each step of the module.
        - Every step to the target in order, each with C(version), C(package_id), C(reboot_required) and C(this_run).
        - A run applies the steps up to the first that needs a restart; the next run, after it, continues.
      type: list
      elements: dict
      returned: when the module goes through intermediate versions
      contains:
        version:
          description: The version this step installs.
          type: str
          sample: '1.1'
        package_id:
          description: The package of this step.
          type: str
          sample: bios-1.1
        reboot_required:
          description: Whether the step needs a restart before the next one can install.
          type: bool
          sample: true
        this_run:
          description: Whether this run applies the step.
          type: bool
          sample: true
offered:
  description: The packages the repository offers this server (what a locked plan's repository digest is made of, playbooks/plan.yml).
  returned: when a plan was made
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
      description: The version it installs.
      type: str
    sha256:
      description: SHA-256 of the package file.
      type: str
skipped_modules:
  description: Module id to why nothing is done for it (already newest, staged until restart, not installed).
  returned: always
  type: dict
  sample:
    raid-controller: already newest
staged:
  description: Module id to the version that waits for a restart.
  returned: when a plan was made
  type: dict
  sample:
    system-bios: '1.1'
not_manageable_via_bmc:
  description: Module ids the repository has packages for that the BMC path cannot manage.
  returned: when O(via=bmc)
  type: list
  elements: str
results:
  description: Per package of the plan, what happened (empty in check mode and when nothing was to do).
  returned: when a plan was made
  type: list
  elements: dict
  contains:
    package_id:
      description: The package.
      type: str
    module_id:
      description: The module it updates.
      type: str
    action:
      description: V(install) or V(uninstall).
      type: str
    status:
      description: V(succeeded), V(failed) or V(cancelled).
      type: str
    cause:
      description: Why it failed or was cancelled, else null.
      type: str
    reboot_required:
      description: It needs a restart to take effect.
      type: bool
    outcome:
      description:
        - How the end of a package that ran was learned - V(finished) (by the agent's runner), V(finished_after_runner_died)
          (the runner was killed, the script ran on and its exit status was read later), V(killed) (a cancel request stopped the
          script a dead runner had left), V(lost) (nothing tells how it ended, so it failed); null on the BMC path.
      type: str
    version_before:
      description: The module's version before.
      type: str
    version_target:
      description: The version the package installs.
      type: str
    version_after:
      description: The module's version read after the apply.
      type: str
    staged:
      description: It succeeded and waits for a restart.
      type: bool
    from_version:
      description: On the BMC path, the plan's from_version.
      type: str
      returned: when O(via=bmc)
    to_version:
      description: On the BMC path, the plan's to_version.
      type: str
      returned: when O(via=bmc)
    release_date:
      description: On the BMC path, the package's release date.
      type: str
      returned: when O(via=bmc)
    sha256:
      description: On the BMC path, SHA-256 of the package file.
      type: str
      returned: when O(via=bmc)
    size:
      description: On the BMC path, the package file's size.
      type: int
      returned: when O(via=bmc)
    task:
      description: On the BMC path, the Redfish task of the update.
      type: str
      returned: when O(via=bmc)
    messages:
      description: On the BMC path, the Redfish task's messages.
      type: list
      elements: str
      returned: when O(via=bmc)
    reset_required:
      description: On the BMC path, the update needs a reset of the server or the BMC.
      type: bool
      returned: when O(via=bmc)
    error:
      description:
        - On the BMC path, the stable code of a failed update.
        - On both paths V(succeeded_unchanged) for a package reported succeeded whose module version read after it is not the package's version
          (verified after the apply, or after the reset on the BMC path; a package staged for a restart is not verified here).
      type: str
      returned: when O(via=bmc) and the update failed, or when the package failed verification
    reported_status:
      description: V(succeeded), what the agent or BMC reported for a package that then failed verification (C(error=succeeded_unchanged)).
      type: str
      returned: when the package failed verification
versions_after:
  description: Module id to its version read after the job.
  returned: when a job ran
  type: dict
  sample:
    system-bios: '1.1'
    update-agent: '2.0'
reboot_required:
  description: At least one applied package needs a restart to become active.
  returned: when a plan was made
  type: bool
reboot_allowed:
  description: The rule of 003 §2.1.2 - a reboot-requiring package was applied and every selected package succeeded.
  returned: when a plan was made
  type: bool
rebooted:
  description: On the BMC path, the server was reset (power cycled) through its BMC.
  returned: when O(via=bmc)
  type: bool
bmc_reset:
  description: With O(power_cycle) on the BMC path, the BMC itself was reset too (a staged BMC firmware waited for it).
  returned: when the server was power cycled through its BMC
  type: bool
job_id:
  description: The agent's job id.
  returned: when a job ran, and for O(state=cancelled)
  type: str
job:
  description:
    - For O(state=cancelled), the job and its items as the agent reports them.
    - C(items) lists the job's packages in order, each with C(package_id), C(module_id), C(action), C(from_version), C(to_version),
      C(reboot_required), C(release_date), C(status) (V(waiting), V(running), V(succeeded), V(failed), V(cancelled)), C(cause),
      C(exit_code), C(output_tail) and C(outcome) (V(finished), V(finished_after_runner_died), V(killed), V(lost)).
  returned: when O(state=cancelled) found a job
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
window:
  description:
    - The maintenance window verdict - C(may_start), C(code), C(reason), C(window_end), C(next_start) (UTC), C(expected_seconds),
      C(estimate) (C(seconds), C(basis) V(history), V(default) or V(option), C(runs)).
  returned: when O(maintenance_windows) was given and a plan was made
  type: dict
  contains:
    may_start:
      description: Whether the apply may start now.
      type: bool
      sample: false
    code:
      description: V(window_open), V(window_too_short) or V(outside_window).
      type: str
      sample: window_too_short
    reason:
      description: The verdict in words.
      type: str
      sample: the maintenance window ends 2026-12-04T06:00:00Z, in 120 s; the expected 600 s do not fit
    window_end:
      description: When the open window ends (UTC), null outside a window.
      type: str
      sample: '2026-12-04T06:00:00Z'
    next_start:
      description: When the next window long enough starts (UTC), null when none in the horizon.
      type: str
      sample: '2026-12-05T01:00:00Z'
    expected_seconds:
      description: The expected duration of the apply in seconds.
      type: int
      sample: 600
    estimate:
      description: How the duration was estimated - C(seconds), C(basis) (V(history), V(default) or V(option)) and C(runs).
      type: dict
      contains:
        seconds:
          description: The expected duration in seconds.
          type: int
          sample: 600
        basis:
          description: V(history) (the server's earlier applies), V(default) (no history) or V(option) (O(expected_duration)).
          type: str
          sample: history
        runs:
          description: How many earlier applies the estimate is made from.
          type: int
          sample: 3
window_code:
  description: Why nothing was started - V(outside_window) or V(window_too_short).
  returned: when the maintenance windows refused the start
  type: str
skipped_reason:
  description: The refusal of the maintenance windows in words.
  returned: when the maintenance windows refused the start
  type: str
error:
  description: Stable code of the failure (agent_missing, blocked_until_reboot, latest_only, downgrade_not_supported, not_auto_update,
    agent_disk_full, missing_library, ...).
  returned: failure
  type: str
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import APPLY_SPEC, refuse_direct_run


def main():
    refuse_direct_run('exup_apply', APPLY_SPEC)


if __name__ == '__main__':
    main()
