#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_remote_batch
short_description: Log the start and the result of a remote batch in the repository
version_added: 0.1.0
description:
  - A remote batch applies update packages at a set time, optionally downloading the newest ones first (003 §2.1.8,
    §3.5.3, Fig. 21). C(playbooks/remote_batch.yml) runs it; this module writes its events in the repository's
    application log (docs/events.md), where the seed says the batch's result is read (003 §2.1.8).
  - O(phase=started) checks the batch's settings and logs C(remote_batch_started). Settings that are not valid fail
    with C(batch_invalid) and log nothing, so the playbook stops before any download or apply. So do the problems
    given in O(setting_problems) (the rollout settings the playbook checked first).
  - O(phase=finished) logs the result from the servers' rows (role P(exup.fleet.rollout#role)'s C(rollout_row)) -
    C(remote_batch_finished), or C(remote_batch_failed) naming the servers that failed. A failed O(download_result)
    (the download asked for first did not succeed) logs C(remote_batch_failed) saying that nothing was applied.
  - The module decides nothing itself - the rules are in C(plugins/module_utils/_exup/rules/remote_batch.py).
    Runs where the repository is reached, usually the controller (C(delegate_to) or a play on C(localhost)).
author: exup.fleet contributors (@exup-fleet)
extends_documentation_fragment:
  - exup.fleet.repository
  - exup.fleet.repository.remote
options:
  phase:
    description: Which event to log.
    type: str
    required: true
    choices: [started, finished]
  name:
    description: The batch's name, in its events (and its systemd units, C(playbooks/remote_batch_timer.yml)).
    type: str
    default: default
  target:
    description: The inventory group or host pattern the batch applies to (003 §3.5.3 steps 1-2, a server or a group).
    type: str
    default: managed
  download:
    description: Whether the batch downloads the newest packages from the feed before applying (「更新パッケージのダウンロード」).
    type: bool
    default: false
  feed_url:
    description: The feed the batch downloads from; required with O(download=true).
    type: str
  allow_reboot:
    description: Whether the batch restarts servers that need it after the apply (「適用完了後の再起動を許可する」).
    type: bool
    default: false
  setting_problems:
    description:
      - Problems already found in the batch's other settings - C(playbooks/remote_batch.yml) gives those the filters
        C(exup.fleet.rollout_check) and C(exup.fleet.rollout_waves_check) found in the prefixed rollout
        settings (C(remote_batch_serial), C(remote_batch_status_filter) ...). Any fails the module with C(batch_invalid),
        nothing logged.
    type: list
    elements: str
    default: []
  rows:
    description:
      - With O(phase=finished) - each server's row (C(rollout_row) of the role exup.fleet.rollout) - C(server),
        C(chosen), C(failed), C(failures), C(reboot), C(held_back), C(status_before), C(status_after).
    type: list
    elements: dict
    default: []
  download_result:
    description:
      - With O(phase=finished) and O(download=true) - the registered result of the download
        (M(exup.fleet.exup_repo_sync)), or the failed task's result (C(failed), C(msg), C(error)).
    type: dict
attributes:
  check_mode:
    support: full
    description: Returns the event; logs nothing.
  diff_mode:
    support: none
    description: An event is added to the log, nothing is changed that a diff could show.
requirements:
  - cryptography >= 42.0 (package and catalog signatures; checked when the module starts)
  - lxml >= 5.2 (package metadata XML; checked when the module starts)
  - requests >= 2.31 (only when repository is the URL of a repository service)
'''

EXAMPLES = r'''
- name: Log the batch's start
  exup.fleet.exup_remote_batch:
    repository: /var/lib/exup/repository
    phase: started
    name: saturday
    target: managed
    download: true
    feed_url: https://updates.example.com/exup/catalog.json
    allow_reboot: true
  delegate_to: localhost
  run_once: true

- name: Log the batch's result from every server's row
  exup.fleet.exup_remote_batch:
    repository: /var/lib/exup/repository
    phase: finished
    name: saturday
    download: true
    feed_url: https://updates.example.com/exup/catalog.json
    allow_reboot: true
    rows: "{{ groups['managed'] | map('extract', hostvars) | selectattr('rollout_row', 'defined') | map(attribute='rollout_row') | list }}"
    download_result: "{{ repository_sync }}"
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
event:
  description: The event logged (in check mode, the event that would be logged).
  returned: always
  type: dict
  contains:
    level:
      description: V(normal) or V(error).
      type: str
    code:
      description: C(remote_batch_started), C(remote_batch_finished) or C(remote_batch_failed).
      type: str
    message:
      description:
        - The event's wording, with the cause in parentheses - for an error the servers that failed, for
          C(remote_batch_finished) how many servers were applied, skipped (with their codes) and held back.
      type: str
    detail:
      description: The batch's settings and, for its result, the counts and each server's row.
      type: dict
      contains:
        batch:
          description: The batch's name.
          type: str
        target:
          description: The target pattern.
          type: str
        download:
          description: The setting.
          type: bool
        downloaded:
          description: With O(phase=finished) and O(download=true), what the download did.
          type: dict
          contains:
            added:
              description: The package ids downloaded.
              type: list
              elements: str
            removed:
              description: How many packages generation management removed.
              type: int
            refused:
              description: How many packages were refused.
              type: int
            catalog_version:
              description: The feed catalog's version.
              type: int
        allow_reboot:
          description: The setting.
          type: bool
        feed_url:
          description: The feed, with O(phase=started) and O(download=true).
          type: str
        servers:
          description: How many servers the batch's target has (with O(phase=finished)).
          type: int
        chosen:
          description: How many were chosen to apply.
          type: int
        applied:
          description: How many were applied (in check mode none).
          type: int
        skipped:
          description: How many the pre-flight gate or a maintenance window refused (their codes are in RV(event.detail.results)).
          type: int
        failed:
          description: How many failed.
          type: int
        rebooted:
          description: How many restarted.
          type: int
        held_back:
          description: How many were held back after a failure in an earlier wave.
          type: int
        results:
          description: Each server's row.
          type: list
          elements: dict
          contains:
            server:
              description: The server.
              type: str
            before:
              description: Its status before.
              type: str
            after:
              description: Its status after.
              type: str
            chosen:
              description: Whether it was chosen.
              type: bool
            reboot:
              description: Its restart, or why not.
              type: str
            failed:
              description: Whether it failed.
              type: bool
            skipped:
              description: Whether the pre-flight gate or a maintenance window refused it.
              type: bool
            code:
              description: The code that explains its row (V(outside_window), V(held_back) ...), null when all went well.
              type: str
        stage:
          description: V(download) when the download before the apply failed.
          type: str
        error:
          description: The download's error code, when it failed.
          type: str
    time:
      description: When it was logged (UTC); absent in check mode.
      type: str
      returned: when logged
  sample:
    level: normal
    code: remote_batch_finished
    message: Remote batch finished. (2 applied, 0 skipped)
    detail: {batch: saturday, servers: 2, applied: 2, skipped: 0, failed: 0}
batch_failed:
  description: True when the batch failed (a server failed, or the download first did not succeed).
  returned: always
  type: bool
'''

from ansible_collections.exup.fleet.plugins.module_utils._exup import events
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import remote_batch
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REPOSITORY_SPEC, ExupModule


def main():
    argument_spec = dict(
        REPOSITORY_SPEC,
        phase={'type': 'str', 'required': True, 'choices': ['started', 'finished']},
        name={'type': 'str', 'default': 'default'},
        target={'type': 'str', 'default': 'managed'},
        download={'type': 'bool', 'default': False},
        feed_url={'type': 'str'},
        allow_reboot={'type': 'bool', 'default': False},
        rows={'type': 'list', 'elements': 'dict', 'default': []},
        download_result={'type': 'dict'},
        setting_problems={'type': 'list', 'elements': 'str', 'default': []},
    )
    module = ExupModule(argument_spec, supports_check_mode=True)
    params = module.params
    batch = remote_batch.Batch.from_mapping({key: params[key] for key in ('name', 'target', 'download', 'feed_url', 'allow_reboot')})
    problems = remote_batch.check_batch(batch, params['setting_problems'])
    if problems:
        module.fail_json(msg=problems[0], error='batch_invalid', problems=problems)
    sync = params['download_result'] or {}
    if params['phase'] == 'started':
        code, cause, detail = remote_batch.started(batch)
    elif batch.download and sync.get('failed'):
        code, cause, detail = remote_batch.download_failed(batch, sync)
    else:
        code, cause, detail = remote_batch.result(batch, params['rows'], sync)
    item = events.event(code, cause, **detail)
    if not module.check_mode:
        repo = module.repository()
        item = module.run(repo.log_events, [item])[0]
    module.exit_json(changed=True, event=item, batch_failed=code == 'remote_batch_failed')


if __name__ == '__main__':
    main()
