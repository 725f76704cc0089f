# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Statuses set by hand or by a restart (issue 8 item 10): 003 Table 9 manual icons, the initial icon
setting of §3.3 step 5, and Table 8 "rebooting", as pure rules (plan.py) and on a real store."""

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan

MODEL = 'R120h-1M'
BOOT = 'boot-1'
T = '2026-01-01T00:00:%02dZ'


def info(version, module='sdr', auto=False, package_id=None):
    return PackageInfo(
        package_id=package_id or '%s-%s' % (module, version),
        module_id=module,
        module_name=module,
        version=version,
        release_date='2024-01-01',
        models=[MODEL],
        os=['linux'],
        kind='linux',
        auto_update=auto,
        reboot_required=False,
        downgrade_supported=False,
        uninstall_supported=False,
        install_command='sh install.sh',
    )


def events(repo, code=None):
    rows = repo.listing('mgr', event_limit=1000)['events']
    return [row for row in rows if code is None or row['code'] == code]


# --- pure rules ---


@pytest.mark.parametrize(
    'chosen, arrived, initial, expected',
    [
        (None, T % 1, 'latest', 'latest'),  # nothing chosen: the initial icon
        (None, T % 1, 'bogus', plan.DEFAULT_MANUAL_ICON),
        (('no_package', T % 2), T % 1, 'latest', 'no_package'),  # chosen after the package came
        (('no_package', T % 1), T % 1, 'latest', 'no_package'),
        (('no_package', T % 1), T % 2, 'latest', 'latest'),  # a newer package shows the initial icon again
        (('latest', T % 1), None, 'update_available', 'latest'),
    ],
)
def test_choose_manual_icon(chosen, arrived, initial, expected):
    assert plan.choose_manual_icon(chosen, arrived, initial) == expected


def test_module_status_table_9_takes_the_icon_set_by_hand():
    state = plan.ModuleState('sdr', current='3.0')
    for icon in plan.MANUAL_ICONS:
        assert plan.module_status(state, [info('2.0')], manual_icon=icon) == ('-', icon)
    # an auto-update package makes it a Table 8 status: the manual icon does not apply
    assert plan.module_status(state, [info('2.0'), info('3.0', auto=True)], manual_icon='update_available') == ('latest', None)


@pytest.mark.parametrize(
    'request_, boot_id, power, now, expected',
    [
        (None, BOOT, 'on', T % 1, False),
        ({'boot_id': BOOT, 'deadline': T % 9}, BOOT, None, T % 1, True),  # agent path: same boot, restart still to come
        ({'boot_id': BOOT, 'deadline': T % 9}, 'boot-2', None, T % 1, False),  # the boot id changed: it restarted
        ({'boot_id': BOOT, 'deadline': T % 9}, BOOT, None, T % 9, False),  # the deadline passed: reboot required again
        ({'boot_id': None, 'deadline': T % 9}, None, 'off', T % 1, True),  # BMC path: exup's reset, not on yet
        ({'boot_id': None, 'deadline': T % 9}, None, 'on', T % 1, False),
    ],
)
def test_rebooting_rule(request_, boot_id, power, now, expected):
    assert plan.rebooting(request_, boot_id, power, now) is expected


def test_rebooting_refuses_every_apply_and_shows_on_the_restarting_modules():
    states = {
        'system-bios': plan.ModuleState('system-bios', current='1.0', block='reboot_required', staged='2.0'),
        'raid-controller': plan.ModuleState('raid-controller', current='5.0'),
    }
    plan.mark_rebooting(states, ['system-bios', 'absent-module'])
    assert plan.module_status(states['system-bios'], []) == ('rebooting', None)
    assert plan.server_status(['rebooting', 'latest']) == 'applying'
    packages = [info('5.1', module='raid-controller', auto=True)]
    for requests in (None, {'raid-controller': 'latest'}, {'system-bios': 'latest'}):
        with pytest.raises(plan.PlanError) as error:
            plan.build_plan(states, packages, requests)
        assert error.value.code == 'server_rebooting' and 'restarting' in error.value.msg
        assert error.value.details['modules'] == ['system-bios']
    with pytest.raises(plan.PlanError) as error:
        plan.build_plan(states, packages, {'raid-utility': 'latest'}, action='uninstall')
    assert error.value.code == 'server_rebooting'


# --- settings on a real store ---


def test_settings_default_read_and_change_leave_events(repo, snapshot):
    assert repo.read_settings(check_mode=True)['initial_manual_icon'] == plan.DEFAULT_MANUAL_ICON
    assert not repo.store.exists  # check mode and a first read create nothing
    before, after = repo.change_settings({'initial_manual_icon': 'latest'}, check_mode=True)
    assert (before['initial_manual_icon'], after['initial_manual_icon']) == (plan.DEFAULT_MANUAL_ICON, 'latest')
    assert not repo.store.exists
    repo.change_settings({'initial_manual_icon': 'latest'})
    assert repo.read_settings()['initial_manual_icon'] == 'latest'
    changed = events(repo, 'settings_changed')
    assert len(changed) == 1 and changed[0]['detail'] == {
        'before': {'initial_manual_icon': plan.DEFAULT_MANUAL_ICON},
        'after': {'initial_manual_icon': 'latest'},
    }
    assert len(events(repo, 'settings_read')) == 1
    state = snapshot(repo)
    repo.change_settings({'initial_manual_icon': 'latest'})  # the same value: no change, no event
    assert snapshot(repo) == state and len(events(repo, 'settings_changed')) == 1


@pytest.mark.parametrize(
    'wanted, words',
    [
        ({'initial_manual_icon': 'rainbow'}, 'must be one of latest, update_available, no_package'),
        ({'initial_manual_icon': None}, 'must be one of'),
        ({'feed_url': 'x'}, "unknown setting 'feed_url'"),
        ({}, 'give at least one setting'),
        ({'initial_manual_icon': 'x' * 100000}, 'must be one of'),
    ],
)
def test_settings_bad_input_changes_nothing(repo, snapshot, wanted, words):
    repo.change_settings({'initial_manual_icon': 'no_package'})
    state = snapshot(repo)
    with pytest.raises(RepositoryError) as error:
        repo.change_settings(wanted)
    assert error.value.code == 'setting_invalid' and words in error.value.msg and len(error.value.msg) < 400
    assert snapshot(repo) == state
    assert repo.read_settings(check_mode=True)['initial_manual_icon'] == 'no_package'
    assert events(repo)[0]['code'] == 'settings_change_failed'


# --- manual icons on a real store ---


def index(repo, *infos):
    """Index PackageInfos as rows (the pool file is not needed to read statuses)."""

    class Verified:
        key_id = 'k'

    with repo.store.writer() as conn:
        for item in infos:
            verified = Verified()
            verified.info = item
            repo.index_package(conn, verified, '0' * 64, 1, source='manual')


def icons(repo, infos):
    with repo.read() as conn:
        return repo.manual_icons(conn, 'mgr', 's1', infos)


def test_icon_starts_at_the_initial_setting_and_is_set_by_hand_per_server_and_module(repo, clock, snapshot):
    repo.change_settings({'initial_manual_icon': 'no_package'})
    clock.advance(seconds=1)
    sdr = info('2.0')
    index(repo, sdr)
    assert icons(repo, [sdr]) == {'sdr': 'no_package'}
    clock.advance(seconds=1)
    repo.change_settings({'initial_manual_icon': 'latest'})  # later changes do not touch the icon a package got on arrival
    assert icons(repo, [sdr]) == {'sdr': 'no_package'}
    state = snapshot(repo, with_events=True)
    rows = repo.set_manual_icons('mgr', 's1', ['sdr'], 'update_available', check_mode=True)
    assert rows == [{'module_id': 'sdr', 'before': None, 'after': 'update_available'}]
    assert snapshot(repo, with_events=True) == state  # check mode: not even the log
    clock.advance(seconds=1)
    repo.set_manual_icons('mgr', 's1', ['sdr'], 'update_available')
    assert icons(repo, [sdr]) == {'sdr': 'update_available'}
    with repo.read() as conn:
        assert repo.manual_icons(conn, 'mgr', 'other-server', [sdr]) == {'sdr': 'no_package'}
    changed = events(repo, 'status_changed')
    assert [row['detail'] for row in changed] == [{'server': 's1', 'manager_id': 'mgr', 'module': 'sdr', 'before': None, 'after': 'update_available'}]
    assert repo.set_manual_icons('mgr', 's1', ['sdr'], 'update_available')[0]['before'] == 'update_available'
    assert len(events(repo, 'status_changed')) == 1  # the same icon again: no event
    clock.advance(seconds=1)
    newer = info('3.0')
    index(repo, newer)  # a newer manual package arrives: the initial icon (now 'latest') shows again
    assert icons(repo, [sdr, newer]) == {'sdr': 'latest'}


@pytest.mark.parametrize(
    'server, modules, icon, code',
    [
        ('s1', ['sdr'], 'green', 'icon_invalid'),
        ('s1', ['no-such-module'], 'latest', 'unknown_module'),
        ('s1', [], 'latest', 'modules_required'),
        ('', ['sdr'], 'latest', 'server_invalid'),
        ('x' * 300, ['sdr'], 'latest', 'server_invalid'),
        ('s1\n', ['sdr'], 'latest', 'server_invalid'),
    ],
)
def test_icon_bad_input_changes_nothing(repo, snapshot, server, modules, icon, code):
    repo.set_manual_icons('mgr', 's1', ['sdr'], 'latest')
    state = snapshot(repo)
    with pytest.raises(RepositoryError) as error:
        repo.set_manual_icons('mgr', server, modules, icon)
    assert error.value.code == code and len(error.value.msg) < 600
    assert snapshot(repo) == state
    assert events(repo)[0]['code'] == 'status_change_failed'


def test_reboot_request_on_a_real_store(repo, clock):
    assert repo.restarting('mgr', 's1', BOOT) == []
    repo.request_reboot('mgr', 's1', ['system-bios'], boot_id=BOOT, seconds=600)
    assert repo.restarting('mgr', 's1', BOOT) == ['system-bios']
    assert repo.restarting('mgr', 's1', 'boot-2') == []
    assert repo.restarting('mgr', 's2', BOOT) == []
    clock.advance(seconds=601)
    assert repo.restarting('mgr', 's1', BOOT) == []
    repo.request_reboot('mgr', 's1', ['bmc-firmware'], seconds=600)  # BMC path: no boot id, the power state says
    assert repo.restarting('mgr', 's1', power='off') == ['bmc-firmware']
    assert repo.restarting('mgr', 's1', power='on') == []


def test_a_store_of_older_code_without_the_new_tables_reads_as_defaults(tmp_path):
    repo = Repository(str(tmp_path / 'old'))
    with repo.store.writer():
        pass
    conn = sqlite3.connect(repo.store.db_path)
    for table in ('settings', 'manual_icons', 'reboots'):
        conn.execute('DROP TABLE %s' % table)
    conn.commit()
    conn.close()
    assert repo.read_settings(check_mode=True)['initial_manual_icon'] == plan.DEFAULT_MANUAL_ICON
    assert repo.restarting('mgr', 's1', BOOT) == []
    with repo.read() as conn:
        assert conn.chosen_icons('mgr', 's1') == {}
