# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""13.5: verification after the restart in a rollout, and the error budget that holds back the next waves."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import events
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import rollout
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.rollout import Settings, Wave

KEYS = ['/etc/exup/vendor.pub']
APPLY = Settings(state='present', option_prefix='apply', target='managed', trusted_keys=KEYS, allow_reboot=True)
REBOOTED = {'changed': True, 'rebooted': True, 'elapsed': 12}
SKIPPED = {'skipped': True, 'changed': False}


def settings(**changes) -> Settings:
    return Settings(**dict(APPLY.__dict__, **changes))


def info(**current) -> dict:
    """An exup_info result: module id (with _ for -) -> current version."""
    modules = {module_id.replace('_', '-'): {'status': 'latest', 'current': version} for module_id, version in current.items()}
    return {'changed': False, 'server_status': 'latest', 'modules': modules, 'facts': {'boot_id': 'boot-2'}}


def staged(module_id, before, target, package_id=None) -> dict:
    return {
        'package_id': package_id or 'lab-%s-%s' % (module_id, target),
        'module_id': module_id,
        'action': 'install',
        'status': 'succeeded',
        'version_before': before,
        'version_target': target,
        'version_after': before,
        'staged': True,
        'cause': None,
    }


APPLIED = {
    'changed': True,
    'reboot_required': True,
    'reboot_allowed': True,
    'results': [staged('system-bios', '1.0', '1.2'), staged('bmc-firmware', '2.10', '2.20')],
}


def row_after(wave: Wave, base: Settings = APPLY, server: str = 'r120h-1') -> dict:
    chosen = rollout.choose(base, server, dict(info(system_bios='1.0'), server_status='update_available'))
    return rollout.outcome(base, chosen, wave)


# --------------------------------------------------------------------------- verification after the restart


def test_staged_firmware_at_its_version_after_the_restart_passes():
    row = row_after(Wave(info(), APPLIED, REBOOTED, info(system_bios='1.2', bmc_firmware='2.20')))
    assert row['failed'] is False and row['unchanged'] == [] and row['applied'] is True
    assert row['packages'] == ['system-bios 1.0 -> 1.2 succeeded', 'bmc-firmware 2.10 -> 2.20 succeeded']


def test_staged_firmware_unchanged_after_the_restart_fails_the_server():
    row = row_after(Wave(info(), APPLIED, REBOOTED, info(system_bios='1.0', bmc_firmware='2.20')))
    assert row['failed'] is True and row['unchanged'] == ['system-bios'] and row['reboot'] == 'rebooted'
    assert row['packages'] == [
        'system-bios 1.0 -> 1.0 failed: reported succeeded, unchanged after the restart (succeeded_unchanged)',
        'bmc-firmware 2.10 -> 2.20 succeeded',
    ]
    assert row['failures'] == [
        'verification after the restart: lab-system-bios-1.2 the package reported success but the version read after it is 1.0,'
        ' not 1.2 (succeeded but unchanged) (succeeded_unchanged)'
    ]
    lines = rollout.summary(APPLY, [row])
    assert lines[0] == 'exup apply to managed, filter update_available: 1 of 1 server(s) chosen, 1 failed, 1 succeeded but unchanged'
    assert '    FAILED verification after the restart: lab-system-bios-1.2 the package reported success' in lines[-1]


def test_a_module_not_listed_after_the_restart_is_unchanged_on_the_agent_path_only():
    gone = Wave(info(), APPLIED, REBOOTED, info(bmc_firmware='2.20'))
    assert row_after(gone)['unchanged'] == ['system-bios']
    assert row_after(gone, settings(via='bmc'))['unchanged'] == []  # the BMC lists only some firmware: not verifiable


@pytest.mark.parametrize(
    'reboot, info_after, base',
    [
        (SKIPPED, info(system_bios='1.0', bmc_firmware='2.10'), APPLY),  # not restarted: still staged, verified after the restart
        ({'failed': True, 'msg': 'Timed out'}, info(system_bios='1.0'), APPLY),  # a failed restart is its own failure
        (REBOOTED, {'unreachable': True, 'msg': 'refused'}, APPLY),  # nothing read: the query's failure
        (REBOOTED, info(system_bios='1.0', bmc_firmware='2.10'), settings(check_mode=True)),
    ],
)
def test_only_a_restart_with_a_query_after_it_is_verified(reboot, info_after, base):
    row = row_after(Wave(info(), APPLIED, reboot, info_after), base)
    assert row['unchanged'] == [] and not any('verification' in line for line in row['failures'])


def test_exup_apply_s_own_succeeded_unchanged_is_listed_too():
    own = dict(staged('raid-controller', '5.0', '5.1'), staged=False, status='failed', reported_status='succeeded', error='succeeded_unchanged', cause='x')
    applied = {'changed': False, 'failed': True, 'error': 'succeeded_unchanged', 'msg': 'verification failed', 'results': [own]}
    row = row_after(Wave(info(), applied, SKIPPED, info(raid_controller='5.0')))
    assert row['failed'] is True and row['unchanged'] == ['raid-controller']
    assert row['failures'] == ['exup_apply: verification failed (succeeded_unchanged)']


def test_the_versions_the_query_after_the_restart_verifies():
    decision = rollout.restart(APPLY, Wave(info(), APPLIED))
    assert decision['reboot_now'] is True and decision['verify_versions'] == {'system-bios': '1.2', 'bmc-firmware': '2.20'}
    assert rollout.restart(settings(allow_reboot=False), Wave(info(), APPLIED))['verify_versions'] == {}
    assert rollout.restart(settings(via='bmc'), Wave(info(), APPLIED))['verify_versions'] == {}  # exup_apply verifies after its reset
    mixed = dict(APPLIED, results=[staged('system-bios', '1.0', '1.2'), dict(staged('sdr', '1.0', '1.02'), staged=False)])
    assert rollout.staged_versions(mixed) == {'system-bios': '1.2'}


def test_the_event_of_each_package_that_succeeded_unchanged():
    own = dict(staged('raid-controller', '5.0', '5.1'), staged=False, status='failed', error='succeeded_unchanged', cause='still 5.0', version_after='5.0')
    assert events.unchanged_packages([own, staged('system-bios', '1.0', '1.2')], 'agent') == [
        (
            'succeeded_unchanged',
            'lab-raid-controller-5.1: still 5.0',
            {'package_id': 'lab-raid-controller-5.1', 'module_id': 'raid-controller', 'version_target': '5.1', 'version_after': '5.0', 'via': 'agent'},
        )
    ]
    item = events.event('succeeded_unchanged', 'lab-raid-controller-5.1: still 5.0')
    assert item['level'] == events.ERROR and item['message'].endswith('did not change. (lab-raid-controller-5.1: still 5.0)')


# --------------------------------------------------------------------------- the error budget


def rows(*failed: bool, held_back: int = 0) -> list:
    done = [{'server': 'h%d' % index, 'chosen': True, 'applied': True, 'failed': value, 'unchanged': []} for index, value in enumerate(failed)]
    later = [{'server': 'l%d' % index, 'chosen': True, 'applied': False, 'failed': False, 'unchanged': []} for index in range(held_back)]
    # a server that could not be queried failed but was never applied: it does not count
    return done + later + [{'server': 'ghost', 'chosen': False, 'applied': False, 'failed': True, 'unchanged': []}]


@pytest.mark.parametrize(
    'base, servers, expected',
    [
        (settings(), rows(False, False), False),
        (settings(), rows(False, True), True),  # no budget: the first failure (stop_on_failure)
        (settings(stop_on_failure=False), rows(True, True), False),
        (settings(verify_budget=1), rows(True, False, held_back=3), False),
        (settings(verify_budget='1'), rows(True, True), True),
        (settings(verify_budget=0), rows(True), True),
        (settings(verify_budget='50%'), rows(True, False), False),
        (settings(verify_budget='50%'), rows(True, True, False), True),
        (settings(verify_budget='', stop_on_failure=True), rows(True), True),  # empty: no budget
        (settings(verify_budget=5, stop_on_failure=True), rows(True), False),  # the budget replaces stop_on_failure
    ],
)
def test_hold_back_the_next_waves(base, servers, expected):
    assert rollout.hold_back(base, servers) is expected


def test_the_budget_is_checked_before_any_server_is_touched_and_named():
    for bad in ('many', '-1', '150%', '1.5', 'x%'):
        assert rollout.check_settings(settings(verify_budget=bad)) == [
            f'apply_verify_budget must be a whole number of servers or a percent from 0% to 100% such as 10% (not {bad}).'
        ]
    assert rollout.check_settings(settings(verify_budget='10%')) == [] == rollout.check_settings(settings(verify_budget=2))


def test_the_summary_names_the_budget_and_the_held_back_servers():
    budget = settings(verify_budget=0)
    held = rollout.outcome(budget, rollout.choose(budget, 'h9', dict(info(), server_status='update_available')), Wave(info(), SKIPPED, SKIPPED, SKIPPED))
    assert held['note'] == 'not applied: the error budget (apply_verify_budget=0) was exceeded in an earlier wave' and held['applied'] is False
    failed = row_after(Wave(info(), APPLIED, REBOOTED, info(system_bios='1.0', bmc_firmware='2.20')), budget)
    assert rollout.summary(budget, [failed, held])[0] == (
        'exup apply to managed, filter update_available: 2 of 2 server(s) chosen, 1 failed, 1 succeeded but unchanged,'
        ' 1 held back after a failure; error budget apply_verify_budget=0: 1 of 1 applied failed, exceeded'
    )


# --------------------------------------------------------------------------- going back to the previous generation


def test_the_modules_to_take_back_are_those_that_failed_verification_when_asked():
    row = row_after(Wave(info(), APPLIED, REBOOTED, info(system_bios='1.0', bmc_firmware='2.20')))
    assert rollout.rollback_versions(APPLY, row) == {}  # not asked for
    assert rollout.rollback_versions(settings(rollback_on_unchanged=True), row) == {'system-bios': 'previous'}
    assert rollout.rollback_versions(settings(rollback_on_unchanged=True, check_mode=True), row) == {}
    passed = row_after(Wave(info(), APPLIED, REBOOTED, info(system_bios='1.2', bmc_firmware='2.20')))
    assert rollout.rollback_versions(settings(rollback_on_unchanged=True), passed) == {}


def test_the_rollback_adds_its_lines_and_the_server_stays_failed():
    back = settings(rollback_on_unchanged=True)
    rollback = {
        'changed': True,
        'results': [dict(staged('system-bios', '1.0', '1.0'), package_id='lab-system-bios-1.0')],
        'skipped_modules': {'raid-controller': 'already at 5.0'},
    }
    wave = Wave(info(), APPLIED, REBOOTED, info(system_bios='1.0', bmc_firmware='2.20'), rollback)
    row = row_after(wave, back)
    assert row['failed'] is True and row['unchanged'] == ['system-bios'] and row['rolled_back'] == ['system-bios']
    assert row['packages'][-2:] == [
        'rolled back to the previous generation: system-bios 1.0 -> 1.0 succeeded (staged, active after the next restart)',
        'raid-controller not rolled back: already at 5.0',
    ]
    assert rollout.outcome(back, row, wave) == row  # recorded again after the rollback: the same row
    failed = dict(rollback, failed=True, error='blocked_until_reboot', msg='system-bios is blocked', results=[])
    row = row_after(Wave(info(), APPLIED, REBOOTED, info(system_bios='1.0', bmc_firmware='2.20'), failed), back)
    assert row['rolled_back'] == [] and row['failures'][-1] == 'rollback (exup_apply, versions previous): system-bios is blocked (blocked_until_reboot)'
    skipped = row_after(Wave(info(), APPLIED, REBOOTED, info(system_bios='1.0', bmc_firmware='2.20'), SKIPPED), back)
    assert skipped['rolled_back'] == [] and not any('rolled back' in line for line in skipped['packages'])


def test_a_restart_for_firmware_staged_earlier_verifies_what_the_first_query_showed_staged():
    pending = settings(reboot_pending=True)
    before = info()
    before['server_status'] = 'reboot_required'
    before['modules']['system-bios'] = {'status': 'reboot_required', 'current': '1.0', 'staged': '1.2', 'block': 'reboot_required'}
    staged_only = {'changed': False, 'results': [], 'plan': [], 'reboot_required': True, 'reboot_allowed': False, 'skipped_modules': {}}
    decision = rollout.restart(pending, Wave(before, staged_only))
    assert decision['pending_only'] is True and decision['verify_versions'] == {'system-bios': '1.2'}
    chosen = rollout.choose(pending, 'r120h-1', before)
    row = rollout.outcome(pending, chosen, Wave(before, staged_only, REBOOTED, info(system_bios='1.0')))
    assert row['failed'] is True and row['unchanged'] == ['system-bios'] and row['reboot'] == 'rebooted (firmware staged earlier)'
    assert row['failures'] == [
        'verification after the restart: system-bios 1.2 (staged by an earlier apply) the package reported success but the version read after it'
        ' is 1.0, not 1.2 (succeeded but unchanged) (succeeded_unchanged)'
    ]
    passed = rollout.outcome(pending, chosen, Wave(before, staged_only, REBOOTED, info(system_bios='1.2')))
    assert passed['failed'] is False and passed['unchanged'] == []
    # a restart the apply itself allowed verifies the apply's own staged packages only
    assert rollout.restart(settings(), Wave(before, APPLIED))['verify_versions'] == {'system-bios': '1.2', 'bmc-firmware': '2.20'}
