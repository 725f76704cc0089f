#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_baseline_compliance_info
short_description: Check a server, or every server a repository registered, against its firmware baseline
version_added: 0.1.0
description:
  - Runs through an action plugin on the controller. Read-only - it never changes the server or the repository and is never
    C(changed). Check mode is the same run.
  - A baseline (docs/baselines.md) names modules with a target - a version, V(previous) (the version the server ran before its
    last apply), or V(newest) (the newest package of the repository for the server's model and OS, optionally only of some
    severities, released not after a date, or released at least some days ago) - and a rule - V(exact), V(not_older) or
    V(ignore).
  - The result is a verdict V(pass), V(fail) or V(unknown) for the server and for each module of its baseline, with the current
    and target versions and the reason. A reading older than O(max_reading_age_hours), or whose time is not known, is V(unknown)
    for every module, never V(pass) or V(fail).
  - The versions come from O(reading) (a registered M(exup.fleet.exup_info) result, read now or at O(read_at)), else from the host
    variables of the M(exup.fleet.exup) inventory (C(exup_modules), C(exup_model), C(exup_os); their time from O(read_at), else
    C(exup_read_at), the repository's time of the last reading), or with O(scope=repository) from every server registered in O(repository).
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository.remote
options:
  baseline:
    description:
      - The baseline, a mapping with C(name), C(description), C(max_reading_age_hours) and C(modules) (module id to a version or
        to a mapping of C(version), C(rule), C(severity), C(released_not_after), C(min_age_days)); docs/baselines.md.
      - A list of baselines is combined in order, a later one replacing a module's entry of an earlier one; the strictest
        C(max_reading_age_hours) applies.
      - Default the host variable C(exup_baseline) (group vars; Ansible's precedence decides which group's value a host sees).
        Without any, the verdict is V(unknown) with reason C(no_baseline).
      - A baseline that does not follow the format fails with C(error=baseline_invalid) and the C(field) at fault.
    type: raw
  reading:
    description:
      - The server's versions, a registered result of M(exup.fleet.exup_info) (C(model), C(os), C(modules) with C(current),
        C(previous) and C(versions)).
      - Without O(repository), the C(versions) of this result are the candidates of a V(newest) target (they carry no severity, so a
        severity filter finds none).
    type: dict
  read_at:
    description:
      - When the versions were read, ISO 8601 with a zone (V(2026-12-04T05:00:00Z)).
      - Default for O(reading) its C(read_at) key, else now (a result of this play); for the inventory the host variable
        C(exup_read_at); for O(scope=repository) the time the repository keeps of each server's last reading (when
        M(exup.fleet.exup_info) with O(exup.fleet.exup_info#module:register_server=true) registered its versions).
      - A server never read that way (declared by M(exup.fleet.exup_repo_sync) O(exup.fleet.exup_repo_sync#module:servers), or
        registered by an older collection), or a stored time that is not one, is V(unknown) (C(reading_time_unknown)) until given.
    type: str
  max_reading_age_hours:
    description: A reading older than this is V(unknown). Default the baseline's C(max_reading_age_hours), else 24.
    type: int
  scope:
    description:
      - V(host) checks the task's host; V(repository) checks every server registered in O(repository) (of O(manager_id) when
        given) against O(baseline), in one task (run it once, for example on V(localhost)).
    type: str
    choices: [host, repository]
    default: host
  repository:
    description:
      - The repository folder on the controller, or the URL of a repository service; its packages are the candidates of a
        V(newest) target. Required with O(scope=repository).
    type: str
  manager_id:
    description: With O(scope=repository), only the servers this manager registered.
    type: str
  trusted_keys:
    description: Public keys (PEM text or controller paths); when given, only packages signed by one of them are candidates.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads only.
requirements:
  - cryptography >= 42.0 (on the controller)
  - lxml >= 5.2 (on the controller)
seealso:
  - module: exup.fleet.exup_info
  - module: exup.fleet.exup_compliance_report
'''

EXAMPLES = r'''
# group_vars/gen10.yml (kept in git):
#   exup_baseline:
#     name: gen10-2026q4
#     max_reading_age_hours: 24
#     modules:
#       system-bios: {version: newest, rule: not_older, severity: [critical, recommended], min_age_days: 14}
#       bmc-firmware: '2.10'
#       nic-firmware: {rule: ignore}

- name: Read the server
  exup.fleet.exup_info:
    repository: /srv/exup/repo
  register: reading

- name: Check it against the baseline of its groups (exup_baseline)
  exup.fleet.exup_baseline_compliance_info:
    repository: /srv/exup/repo
    reading: "{{ reading }}"
  register: compliance

- name: Every server the repository registered, read by the last scan
  exup.fleet.exup_baseline_compliance_info:
    scope: repository
    repository: /srv/exup/repo
    baseline: "{{ lookup('ansible.builtin.file', 'baselines/estate.yml') | from_yaml }}"
    read_at: "{{ last_scan_time }}"
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
verdict:
  description: >-
    The server's verdict - V(pass) (every module passes), V(fail) (one fails), V(unknown) (one cannot be judged, the reading
    is stale, or no baseline).
  returned: scope is host
  type: str
  sample: fail
reason_code:
  description: >-
    Why, a stable code - compliant, modules_fail, modules_unknown, empty_baseline, no_baseline, reading_stale,
    reading_time_unknown, reading_in_future.
  returned: scope is host
  type: str
  sample: modules_fail
reason:
  description: The reason as a sentence.
  returned: scope is host
  type: str
  sample: a module of the baseline fails
baseline:
  description: The name of the baseline (several combined are joined with C( + )); null without one.
  returned: scope is host
  type: str
  sample: gen10-2026q4
server:
  description: The inventory name of the host.
  returned: scope is host
  type: str
source:
  description: Where the versions came from - V(reading), V(inventory) or V(repository).
  returned: always
  type: str
read_at:
  description: When the versions were read (ISO 8601), null when not known.
  returned: scope is host
  type: str
reading_age:
  description: The age of the reading in seconds when checked; null when its time is not known.
  returned: scope is host
  type: int
max_reading_age:
  description: The largest reading age in seconds that is judged; null without a baseline.
  returned: scope is host
  type: int
checked_at:
  description: When the check ran (ISO 8601, UTC).
  returned: always
  type: str
format:
  description: The version of this result's shape (1).
  returned: scope is host
  type: int
counts:
  description: Modules per verdict.
  returned: scope is host
  type: dict
  contains:
    pass:
      description: Modules that pass.
      type: int
    fail:
      description: Modules that fail.
      type: int
    unknown:
      description: Modules that cannot be judged.
      type: int
modules:
  description: One row per module of the baseline, in module id order.
  returned: scope is host
  type: list
  elements: dict
  contains:
    module:
      description: The module id.
      type: str
    current:
      description: The version the server runs; null when it does not have the module.
      type: str
    target:
      description: The version the baseline asks for (resolved for V(previous) and V(newest)); null when none qualifies.
      type: str
    target_spec:
      description: The baseline's entry as written - a version, V(previous) or V(newest).
      type: str
    rule:
      description: V(exact), V(not_older) or V(ignore).
      type: str
    verdict:
      description: V(pass), V(fail) or V(unknown).
      type: str
    reason_code:
      description: >-
        A stable code - match, not_older, ignored, differs, older, not_installed, no_previous, no_package, no_repository,
        reading_stale, reading_time_unknown, reading_in_future.
      type: str
    reason:
      description: The reason as a sentence.
      type: str
    reading_age:
      description: The age of the reading in seconds; null when not known.
      type: int
servers:
  description: With O(scope=repository), one result per registered server, each with the keys of a host result (without C(server)) and these.
  returned: scope is repository
  type: list
  elements: dict
  contains:
    server:
      description: The server's name as registered.
      type: str
    manager_id:
      description: The manager that registered it.
      type: str
    model:
      description: Its model.
      type: str
    os:
      description: Its OS.
      type: str
    verdict:
      description: V(pass), V(fail) or V(unknown).
      type: str
    reason_code:
      description: Why, as RV(reason_code).
      type: str
    modules:
      description: The module rows, as RV(modules).
      type: list
      elements: dict
      contains:
        module:
          description: The module id.
          type: str
        current:
          description: The version the server runs.
          type: str
        target:
          description: The version the baseline asks for.
          type: str
        rule:
          description: The rule.
          type: str
        verdict:
          description: V(pass), V(fail) or V(unknown).
          type: str
        reason_code:
          description: Why, as RV(modules[].reason_code).
          type: str
summary:
  description: With O(scope=repository), the servers per verdict.
  returned: scope is repository
  type: dict
  contains:
    servers:
      description: Servers checked.
      type: int
    pass:
      description: Servers that pass.
      type: int
    fail:
      description: Servers that fail.
      type: int
    unknown:
      description: Servers that cannot be judged.
      type: int
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.baseline import OPTIONS
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REMOTE_SPEC
from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import refuse_direct_run


def main():
    refuse_direct_run('exup_baseline_compliance_info', dict(REMOTE_SPEC, **OPTIONS))


if __name__ == '__main__':
    main()
