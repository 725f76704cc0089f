# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling remediation around the waves (rules/waves.py): settings, hook codes, the row with its gates, the halt, the summary."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import waves

APPLY = {
    'option_prefix': 'apply',
    'serial': '100%',
    'max_fail_percentage': None,
    'hook_timeout': 300,
    'pre_hook': None,
    'post_hook': None,
    'health_check': None,
}
TIMED_OUT = {'failed': True, 'timed_out': True, 'msg': 'Task failed: Timed out after 5 second(s).', 'task': 'Drain'}
FAILED = {'failed': True, 'timed_out': False, 'msg': 'the service did not answer', 'task': 'Probe'}
PASSED = {'failed': False}
HALT = {'halt': True, 'code': 'health_check_failed', 'wave': 1, 'reason': 'halted by the health check after wave 1 (r1)'}


def row(server='r1', held_back=False, failed=False, **more):
    base = {'server': server, 'chosen': True, 'held_back': held_back, 'failed': failed, 'failures': [], 'note': ''}
    if held_back:
        base['note'] = 'not applied: a server of an earlier wave failed (apply_stop_on_failure)'
    return dict(base, **more)


@pytest.mark.parametrize('serial', ['100%', '25%', 1, '3', [1, '25%'], [1, 5, '100%'], ('2',)])
def test_serial_values_ansible_takes(serial):
    assert waves.check(dict(APPLY, serial=serial)) == []


@pytest.mark.parametrize('serial', [0, '0', '-1', 'some', '101%', '0%', [], [1, 'x'], True, None, '12.5%'])
def test_serial_values_refused(serial):
    problems = waves.check(dict(APPLY, serial=serial))
    assert len(problems) == 1 and problems[0].startswith('apply_serial must be a number of servers, a percent ("25%") or a list'), problems


def test_max_fail_percentage_and_the_hooks():
    assert waves.check(dict(APPLY, max_fail_percentage=0)) == waves.check(dict(APPLY, max_fail_percentage='30%')) == []
    assert waves.check(dict(APPLY, max_fail_percentage=150)) == ['apply_max_fail_percentage must be a percent from 0 to 100, not 150.']
    assert waves.check(dict(APPLY, max_fail_percentage='many')) == ['apply_max_fail_percentage must be a percent from 0 to 100, not many.']
    assert waves.check(dict(APPLY, hook_timeout=0)) == ['apply_hook_timeout must be a whole number of seconds of at least 1, not 0.']
    assert waves.check(dict(APPLY, hook_timeout='soon'))[0].startswith('apply_hook_timeout must')
    assert waves.check(dict(APPLY, pre_hook='')) == ["apply_pre_hook must be the path of a task file, not ''."]
    assert waves.check(dict(APPLY, health_check=['a.yml'])) == ["apply_health_check must be the path of a task file, not ['a.yml']."]
    assert waves.check(dict(APPLY, pre_hook='/srv/hooks/drain.yml', option_prefix='rollout')) == []


def test_hook_codes():
    assert waves.hook_code('pre_hook', TIMED_OUT) == 'pre_hook_timeout'
    assert waves.hook_code('post_hook', FAILED) == 'post_hook_failed'
    assert waves.hook_code('health_check', FAILED) == 'health_check_failed'
    assert waves.hook_code('health_check', PASSED) is None and waves.hook_code('pre_hook', {}) is None and waves.hook_code('pre_hook', None) is None
    with pytest.raises(ValueError):
        waves.hook_code('during', FAILED)


def test_a_row_without_gates_only_gains_its_code():
    assert waves.gated(row(), {}) == dict(row(), code=None, skipped=False)
    held = waves.gated(row(held_back=True), {})
    assert (held['code'], held['note'], held['held_back']) == ('held_back', 'not applied: a server of an earlier wave failed (apply_stop_on_failure)', True)


def test_a_gate_refusal_skips_the_server_without_failing_it():
    verdict = {'passed': False, 'code': 'preflight_disk_low', 'reason': 'only 5 MB free on the server, the gate needs 100 MB'}
    gated = waves.gated(row(held_back=True), {'preflight': verdict})
    assert (gated['skipped'], gated['held_back'], gated['failed'], gated['code']) == (True, False, False, 'preflight_disk_low')
    assert gated['note'] == 'not applied: pre-flight gate: only 5 MB free on the server, the gate needs 100 MB (preflight_disk_low)'


def test_a_pre_hook_out_of_time_keeps_the_server_unapplied_and_fails_it():
    gated = waves.gated(row(held_back=True), {'preflight': {'passed': True}, 'pre_hook': TIMED_OUT}, 5)
    assert (gated['skipped'], gated['held_back'], gated['failed'], gated['code']) == (False, False, True, 'pre_hook_timeout')
    assert gated['failures'] == ['pre hook did not finish within 5 s (task Drain) (pre_hook_timeout)']
    assert gated['note'] == 'not applied: the pre hook did not pass'
    failed = waves.gated(row(held_back=True), {'pre_hook': FAILED})
    assert failed['failures'] == ['pre hook failed (task Probe): the service did not answer (pre_hook_failed)']


def test_a_post_hook_or_health_check_failure_fails_an_applied_server():
    gated = waves.gated(row(failures=['exup_apply: x']), {'pre_hook': PASSED, 'post_hook': FAILED, 'health_check': TIMED_OUT}, 9)
    assert (gated['failed'], gated['code']) == (True, 'post_hook_failed')  # the first code that explains the row
    assert gated['failures'] == [
        'exup_apply: x',
        'post hook failed (task Probe): the service did not answer (post_hook_failed)',
        'health check did not finish within 9 s (task Drain) (health_check_timeout)',
    ]
    assert waves.gated(row(), {'health_check': FAILED})['code'] == 'health_check_failed'


def test_a_server_held_back_by_a_halt_says_why():
    gated = waves.gated(row(held_back=True), {'halt': HALT, 'health_check': FAILED})
    assert (gated['code'], gated['failed'], gated['held_back']) == ('health_check_failed', False, True)
    assert gated['note'] == 'not applied: halted by the health check after wave 1 (r1) (health_check_failed)'


def test_a_failed_health_check_halts_the_rollout():
    rows = [row('r1', failed=True, code='health_check_failed'), row('r2', code=None)]
    assert waves.halt(rows, APPLY, 2) == {'halt': True, 'code': 'health_check_failed', 'wave': 2, 'reason': 'halted by the health check after wave 2 (r1)'}
    timed_out = waves.halt([row('r1', failed=True, code='health_check_timeout')], APPLY, 1)
    assert timed_out['code'] == 'health_check_timeout'
    # servers held back by an earlier halt are not this wave's news
    assert not waves.halt([row('r3', held_back=True, code='health_check_failed')], APPLY, 3)['halt']


@pytest.mark.parametrize(
    'limit, failed, total, halts',
    [(None, 3, 3, False), (0, 1, 4, True), (0, 0, 4, False), (25, 1, 4, False), ('25%', 2, 4, True), (50, 1, 2, False), (49, 1, 2, True), (100, 2, 2, False)],
)
def test_max_fail_percentage_as_the_play_keyword(limit, failed, total, halts):
    rows = [row('r%d' % number, failed=number < failed, code='post_hook_failed' if number < failed else None) for number in range(total)]
    verdict = waves.halt(rows, dict(APPLY, max_fail_percentage=limit), 1)
    assert verdict['halt'] is halts
    if halts:
        assert verdict['code'] == 'max_fail_percentage'
        assert verdict['reason'] == 'halted after wave 1: %d of %d server(s) failed, more than apply_max_fail_percentage=%s%%' % (
            failed,
            total,
            str(limit).rstrip('%'),
        )


def test_summary_lines():
    rows = [row('r1', skipped=True, code='preflight_disk_low'), row('r2', held_back=True, code='health_check_failed'), row('r3')]
    assert waves.summary_lines(rows, HALT) == [
        '1 server(s) skipped by the pre-flight gate: r1 (preflight_disk_low)',
        'rollout halted by the health check after wave 1 (r1): 1 server(s) not applied (health_check_failed)',
    ]
    assert waves.summary_lines([row('r3')], {}) == [] and waves.summary_lines([], None) == []
