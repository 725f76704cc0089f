# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 13 review of roles/rollout: a failed pre hook holds back the next waves, a server the maintenance window
skipped is not "held back after a failure", skipped servers are not in max_fail_percentage, a canary that applied
nothing halts, a failed post hook does not hide a failed health check (rules/rollout.py, rules/waves.py)."""

from __future__ import annotations

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import rollout, waves
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.rollout import Settings, Wave

KEYS = ['/etc/exup/vendor.pub']
APPLY = Settings(state='present', option_prefix='apply', target='managed', trusted_keys=KEYS)
UNINSTALL = Settings(state='absent', option_prefix='uninstall', target='managed', modules=['raid-utility'], trusted_keys=KEYS)
SKIPPED = {'skipped': True, 'changed': False, 'skip_reason': 'Conditional result was False'}
REASON = 'not started on r1: no maintenance window is open; the next opens 2026-12-05T02:00:00Z'
# what exup_apply returns when its window gate refuses (plugins/action/exup_apply.py, docs/maintenance-windows.md)
WINDOW_SKIPPED = {'changed': False, 'skipped': True, 'skipped_reason': REASON, 'msg': REASON, 'window_code': 'outside_window', 'results': []}
INFO = {'server_status': 'update_available', 'modules': {}, 'facts': {}}
WAVES = {
    'option_prefix': 'apply',
    'serial': '100%',
    'max_fail_percentage': None,
    'hook_timeout': 300,
    'pre_hook': None,
    'post_hook': None,
    'health_check': None,
}
FAILED_HOOK = {'failed': True, 'timed_out': False, 'msg': 'the service did not answer', 'task': 'Probe'}
TIMED_OUT = {'failed': True, 'timed_out': True, 'msg': 'the hook did not end within 5 s', 'task': ''}


def chosen(settings=APPLY, server='r1'):
    return rollout.choose(settings, server, INFO if settings is APPLY else dict(INFO, server_status='latest', modules={'raid-utility': {'status': 'latest'}}))


def window_row(server='r1', settings=APPLY):
    return rollout.outcome(settings, chosen(settings, server), Wave(INFO, WINDOW_SKIPPED, SKIPPED, SKIPPED))


def test_a_server_the_window_gate_skipped_has_the_window_code_and_is_not_held_back():
    row = window_row()
    assert (row['held_back'], row['window_skipped'], row['failed'], row['applied'], row['code']) == (False, True, False, False, 'outside_window')
    assert row['note'] == 'not applied: %s (outside_window)' % REASON
    assert 'stop_on_failure' not in row['note']
    gated = waves.gated(row, {'preflight': {'passed': True}, 'pre_hook': {'failed': False}})
    assert (gated['held_back'], gated['skipped'], gated['failed'], gated['code']) == (False, False, False, 'outside_window')
    assert window_row(settings=UNINSTALL)['note'].startswith('not uninstalled: %s' % REASON)
    # a server held back by the rule keeps its note and code
    held = waves.gated(rollout.outcome(APPLY, chosen(), Wave(INFO, SKIPPED, SKIPPED, SKIPPED)), {})
    assert (held['held_back'], held['window_skipped'], held['code']) == (True, False, 'held_back')


def test_the_summary_counts_window_skipped_servers_apart_from_the_held_back():
    rows = [window_row('r1'), rollout.outcome(APPLY, chosen(server='r2'), Wave(INFO, SKIPPED, SKIPPED, SKIPPED))]
    title = rollout.summary(APPLY, rows)[0]
    assert title.endswith('2 of 2 server(s) chosen, 0 failed, 1 held back after a failure, 1 not started (maintenance window)'), title
    assert '    not applied: %s (outside_window)' % REASON in rollout.summary(APPLY, rows)
    assert waves.summary_lines([waves.gated(row, {}) for row in rows], {}) == ['1 server(s) not started by the maintenance window: r1 (outside_window)']
    assert not rollout.hold_back(APPLY, rows)  # a closed window is not a failure: the next waves go on


def test_a_failed_pre_hook_holds_back_the_next_waves():
    unapplied = rollout.outcome(APPLY, chosen(), Wave(INFO, SKIPPED, SKIPPED, SKIPPED))
    pre_failed = waves.gated(unapplied, {'preflight': {'passed': True}, 'pre_hook': TIMED_OUT}, 5)
    assert (pre_failed['failed'], pre_failed['applied'], pre_failed['code']) == (True, False, 'pre_hook_timeout')
    assert rollout.hold_back(APPLY, [pre_failed]) is True
    assert (
        rollout.hold_back(Settings(state='present', option_prefix='apply', target='managed', trusted_keys=KEYS, stop_on_failure=False), [pre_failed]) is False
    )
    # the error budget keeps its denominator: servers applied
    budget = Settings(state='present', option_prefix='apply', target='managed', trusted_keys=KEYS, verify_budget='0')
    assert rollout.budget_state(budget, [pre_failed])['applied'] == 0


def test_the_post_hook_after_a_failed_pre_hook_or_a_window_skip_is_on_the_row():
    unapplied = rollout.outcome(APPLY, chosen(), Wave(INFO, SKIPPED, SKIPPED, SKIPPED))
    both = waves.gated(unapplied, {'pre_hook': TIMED_OUT, 'post_hook': FAILED_HOOK}, 5)
    assert both['code'] == 'pre_hook_timeout'  # the first failure explains the row
    assert both['failures'] == [
        'pre hook did not finish within 5 s (pre_hook_timeout)',
        'post hook failed (task Probe): the service did not answer (post_hook_failed)',
    ]
    window = waves.gated(window_row(), {'pre_hook': {'failed': False}, 'post_hook': FAILED_HOOK})
    assert (window['failed'], window['code'], window['window_skipped']) == (True, 'post_hook_failed', True)


def test_skipped_servers_are_not_in_the_max_fail_percentage():
    failed = waves.gated(rollout.outcome(APPLY, chosen(server='f1'), Wave(INFO, {'msg': 'boom', 'error': 'apply_failed'}, SKIPPED, SKIPPED)), {})
    assert failed['failed'] is True
    gate_skipped = waves.gated(
        rollout.outcome(APPLY, chosen(server='g1'), Wave(INFO, SKIPPED, SKIPPED, SKIPPED)),
        {'preflight': {'passed': False, 'code': 'preflight_disk_low', 'reason': 'low'}},
    )
    rows = [failed, gate_skipped] + [waves.gated(window_row('w%d' % number), {}) for number in range(2)]
    verdict = waves.halt(rows, dict(WAVES, max_fail_percentage=50), 2)
    assert verdict['halt'] and verdict['code'] == 'max_fail_percentage', verdict
    assert verdict['reason'] == 'halted after wave 2: 1 of 1 server(s) failed, more than apply_max_fail_percentage=50%'


def test_a_canary_wave_that_applied_nothing_halts_the_rollout():
    canary = dict(WAVES, serial=[1, '100%'])
    rows = [waves.gated(window_row('c1'), {})]
    verdict = waves.halt(rows, canary, 1)
    assert verdict == {
        'halt': True,
        'code': 'canary_not_applied',
        'wave': 1,
        'reason': 'halted after the canary wave 1: no server of it was applied, c1 (outside_window)',
    }
    assert waves.halt(rows, canary, '1')['halt']  # the wave number as the play's hostvars hold it
    assert not waves.halt(rows, canary, 2)['halt']  # a later wave: not the canary
    assert not waves.halt(rows, WAVES, 1)['halt']  # one serial value: no canary
    applied = rollout.outcome(APPLY, chosen(server='c2'), Wave(INFO, {'changed': False, 'results': []}, SKIPPED, INFO))
    assert not waves.halt(rows + [waves.gated(applied, {})], canary, 1)['halt']


def test_a_failed_post_hook_does_not_hide_a_failed_health_check():
    applied = rollout.outcome(APPLY, chosen(), Wave(INFO, {'changed': False, 'results': []}, SKIPPED, INFO))
    gated = waves.gated(applied, {'post_hook': TIMED_OUT, 'health_check': FAILED_HOOK}, 5)
    assert gated['code'] == 'post_hook_timeout'
    assert waves.halt([gated], WAVES, 1)['code'] == 'health_check_failed'
