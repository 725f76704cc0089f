#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_locked_plan
short_description: Write a locked plan of an apply for review, or verify that it still holds
version_added: 0.1.0
description:
  - The GitOps step of docs/gitops.md. Runs once on the controller (C(run_once), C(delegate_to) V(localhost)) with what
    M(exup.fleet.exup_apply) in check mode returned for each server of the target (playbooks/plan.yml, playbooks/apply_plan.yml).
  - With O(state=written) the plan is written to O(path) as JSON with sorted keys and no time stamps, so identical runs give
    identical files - per server its packages in order (module, from and to version, package id, SHA-256), its wave (the
    batches O(settings) C(serial) makes of the servers with packages, sorted by name) and its restart, and the digests of what
    it was made from - C(repository) (the packages offered to the planned servers, by id, version and SHA-256), C(baseline) (the
    baseline variables each server sees, or C(none)), C(inventory) (the target, its servers, the settings and the servers'
    plan-relevant variables) and C(plan).
  - With O(state=verified) the plan at O(path) is compared with the same inputs gathered again; when a digest changed, a
    planned package is no longer offered, or a server's plan comes out different, the task fails with C(plan_stale) and names
    what changed (nothing has been applied at that point). A file that is no locked plan, or was edited by hand, is C(plan_invalid).
author: exup.fleet contributors (@exup-fleet)
options:
  path:
    description:
      - The plan file (on the controller). A relative path is taken from the directory C(ansible-playbook) runs in (when the
        task runs on the controller, as with C(delegate_to=localhost)).
    type: path
    required: true
  state:
    description: V(written) makes the plan and writes it; V(verified) only checks it.
    type: str
    default: written
    choices: [written, verified]
  target:
    description: The host pattern the plan is for.
    type: str
    required: true
  settings:
    description:
      - The apply settings that change the plan - C(modules), C(versions), C(latest_only), C(status_filter), C(serial),
        C(allow_reboot), C(reboot_delay_minutes), C(via), C(state) (as the C(apply_*) variables of playbooks/apply.yml).
    type: dict
    default: {}
  hosts:
    description:
      - Every server the target matches, to C(chosen) (bool, the server was chosen by its status), C(vars) (its plan-relevant
        inventory variables), C(baseline) (its C(exup_baseline), or null) and C(result) (what M(exup.fleet.exup_apply) in check
        mode returned for it, or null when it was not chosen).
    type: dict
    required: true
attributes:
  check_mode:
    support: full
    description: With O(state=written) the file is not written; the diff shows what would be.
  diff_mode:
    support: full
    description: The plan file before and after.
requirements:
  - python >= 3.11 (on the controller; the module needs no other library)
notes:
  - The digest rules are in module_utils/_exup/rules/locked_plan.py.
'''

EXAMPLES = r'''
- name: Write the plan for review
  exup.fleet.exup_locked_plan:
    path: plans/managed.json
    target: managed
    settings: {serial: [1, '50%'], allow_reboot: true}
    hosts: "{{ plan_hosts }}"
  run_once: true
  delegate_to: localhost

- name: Refuse to apply a plan that no longer holds
  exup.fleet.exup_locked_plan:
    path: plans/managed.json
    state: verified
    target: managed
    hosts: "{{ plan_hosts }}"
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
plan:
  description: The locked plan (what the file holds).
  returned: success
  type: dict
  contains:
    format:
      description: The format of the plan file.
      type: int
    target:
      description: The host pattern.
      type: str
    settings:
      description: The plan-relevant settings, defaults filled in.
      type: dict
      contains:
        serial:
          description: The waves' sizes.
          type: raw
        allow_reboot:
          description: Restarts are allowed.
          type: bool
    digests:
      description: What the plan was made from.
      type: dict
      contains:
        repository:
          description: Digest of the packages offered to the planned servers.
          type: str
        baseline:
          description: Digest of the baseline variables, or V(none).
          type: str
        inventory:
          description: Digest of the target, its servers, settings and variables.
          type: str
        plan:
          description: Digest of the servers' packages and waves.
          type: str
    waves:
      description: The servers of each wave, in order.
      type: list
      elements: list
    servers:
      description:
        - Server name to its C(packages) (in order), C(wave), C(reboot), C(model), C(skipped_modules) or C(error) and C(reason).
        - A stepping-stone package (docs/package-format.md) also has C(path), every step to the target with C(this_run) on the
          steps this run applies, and C(target_version), the path's final version.
      type: dict
      sample:
        web1:
          wave: 1
          reboot: allowed
          packages:
            - package_id: bios-1.1
              module_id: system-bios
              action: install
              from_version: '1.0'
              to_version: '1.1'
              sha256: 3f5a
              reboot_required: true
              target_version: '1.2'
              path:
                - {version: '1.1', package_id: bios-1.1, reboot_required: true, this_run: true}
                - {version: '1.2', package_id: bios-1.2, reboot_required: true, this_run: false}
    not_planned:
      description: Server name to why it is not in the plan.
      type: dict
      sample:
        web9: not chosen
servers:
  description:
    - With O(state=verified), server name to its locked part, for the servers with packages (what the waves apply).
    - Each also has C(versions), module to the version M(exup.fleet.exup_apply) is pinned to - the planned version, or for
      stepping stones the path's final target (C(target_version)), which the planner reaches through the locked steps.
  returned: state=verified and the plan holds
  type: dict
  sample:
    web1:
      wave: 1
      reboot: allowed
      packages: []
      versions: {system-bios: '1.2'}
error:
  description: Stable code of the failure - C(plan_stale), C(plan_invalid), C(plan_unreadable), C(invalid_settings).
  returned: failure
  type: str
stale:
  description: Which digests changed (with C(plan_stale)) - V(repository), V(baseline), V(inventory), V(plan).
  returned: failure with plan_stale
  type: list
  elements: str
'''

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import locked_plan


def _read(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExupError('cannot read the plan file %s: %s' % (path, exc), code='plan_unreadable') from exc


def _write(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix='.exup-plan-')
    with os.fdopen(handle, 'w', encoding='utf-8') as stream:
        stream.write(text)
    os.replace(temporary, path)


def run(module):
    params = module.params
    inputs = locked_plan.Inputs(params['target'], params['settings'] or {}, params['hosts'])
    path = params['path']
    before = _read(path)
    if params['state'] == 'verified':
        if before is None:
            raise ExupError('there is no plan file %s: write it with playbooks/plan.yml' % path, code='plan_unreadable')
        try:
            document = json.loads(before)
        except ValueError as exc:
            raise ExupError('the plan file %s is not JSON: %s' % (path, exc), code='plan_invalid') from exc
        held = locked_plan.verify(document, inputs)
        return {'changed': False, 'plan': document, 'servers': held['servers'], 'msg': 'the locked plan holds: %d servers to apply' % len(held['servers'])}
    document = locked_plan.artifact(inputs)
    text = locked_plan.render(document)
    changed = text != before
    if changed and not module.check_mode:
        _write(path, text)
    result = {'changed': changed, 'plan': document, 'path': path}
    if module._diff:  # pylint: disable=protected-access
        result['diff'] = {'before': before or '', 'after': text, 'before_header': path, 'after_header': path}
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            'path': {'type': 'path', 'required': True},
            'state': {'type': 'str', 'default': 'written', 'choices': ['written', 'verified']},
            'target': {'type': 'str', 'required': True},
            'settings': {'type': 'dict', 'default': {}},
            'hosts': {'type': 'dict', 'required': True},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except ExupError as exc:
        details = dict(exc.details)
        module.fail_json(msg=exc.msg, error=exc.code, **details)


if __name__ == '__main__':
    main()
