# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules of 003 §2.1 in plan.py: selection, manual packages, gating, order, statuses, reboot rule."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan
from ansible_collections.exup.fleet.plugins.module_utils._exup.schemas import PACKAGE_SCHEMA_VERSION

BIOS = 'system-bios'
BMC = 'bmc-firmware'
SERVER_AGENT = 'server-agent'
RAID_UTILITY = 'raid-utility'
AGENT = 'update-agent'


def pkg(
    version,
    module=BIOS,
    date='2024-01-01',
    reboot=False,
    auto=True,
    kind='linux',
    downgrade=False,
    uninstall=False,
    uninstall_command=None,
    schema=PACKAGE_SCHEMA_VERSION,
    package_id=None,
):
    if uninstall_command is None:
        uninstall_command = 'sh uninstall.sh' if uninstall else ''
    return PackageInfo(
        package_id=package_id or '%s_%s' % (module, version),
        module_id=module,
        module_name=module,
        version=version,
        release_date=date,
        models=['M1'],
        os=['linux'],
        kind=kind,
        auto_update=auto,
        reboot_required=reboot,
        downgrade_supported=downgrade,
        uninstall_supported=uninstall,
        install_command='sh install.sh %s' % version,
        uninstall_command=uninstall_command,
        schema_version=schema,
    )


def state(module=BIOS, current='1.0', **fields):
    return plan.ModuleState(module, current=current, **fields)


def states(*items):
    return {item.module_id: item for item in items}


def refused(code, call, *args, **kwargs):
    """Run ``call`` expecting a PlanError with ``code``; return the error."""
    with pytest.raises(plan.PlanError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value.msg
    return info.value


def item(package_id, module=BIOS, action='install', reboot=False, date='2024-01-01'):
    return plan.PlanItem(
        package_id=package_id, module_id=module, action=action, from_version='1', to_version='2', reboot_required=reboot, release_date=date, command='true'
    )


# --- order (§2.1.7, Tables 11-12) ---

TABLE_11 = [('PKG1', '2009-01-01', False), ('PKG2', '2009-01-02', True), ('PKG3', '2009-01-03', False), ('PKG4', '2009-01-04', True)]
TABLE_12 = ['PKG1', 'PKG3', 'PKG2', 'PKG4']


def test_table_11_is_applied_in_the_order_of_table_12_whatever_the_input_order():
    items = [item(name, date=date, reboot=reboot) for name, date, reboot in TABLE_11]
    for permutation in itertools.permutations(items):
        assert [entry.package_id for entry in plan.order(list(permutation))] == TABLE_12


def test_table_11_through_build_plan():
    modules = {'PKG1': SERVER_AGENT, 'PKG2': BIOS, 'PKG3': RAID_UTILITY, 'PKG4': BMC}
    packages = [pkg('2.0', module=modules[name], date=date, reboot=reboot, package_id=name) for name, date, reboot in TABLE_11]
    server = states(*(state(module) for module in modules.values()))
    items, skipped = plan.build_plan(server, packages, None)
    assert [entry.package_id for entry in items] == TABLE_12
    assert skipped == {}
    assert [(entry.from_version, entry.to_version, entry.action) for entry in items] == [('1.0', '2.0', 'install')] * 4


def test_release_date_breaks_ties_oldest_first_within_one_reboot_class():
    items = [item('late', date='2024-03-01', reboot=True), item('early', date='2023-03-01', reboot=True)]
    assert [entry.package_id for entry in plan.order(items)] == ['early', 'late']


def test_update_agent_uninstall_is_always_last():
    agent_uninstall = item('agent', module=AGENT, action='uninstall', reboot=False, date='2000-01-01')
    others = [item('bios', reboot=True, date='2030-01-01'), item('util', module=RAID_UTILITY, action='uninstall', date='2029-01-01')]
    for permutation in itertools.permutations(others + [agent_uninstall]):
        assert plan.order(list(permutation))[-1] is agent_uninstall


def test_update_agent_install_is_not_moved_last():
    agent_install = item('agent', module=AGENT, action='install', reboot=False, date='2000-01-01')
    ordered = plan.order([item('bios', reboot=True, date='2030-01-01'), agent_install])
    assert ordered[0] is agent_install


def test_update_agent_uninstall_last_through_build_plan():
    packages = [pkg('1.0', module=AGENT, date='2000-01-01', uninstall=True), pkg('1.0', module=SERVER_AGENT, date='2030-01-01', reboot=True, uninstall=True)]
    items, skipped = plan.build_plan(states(state(AGENT), state(SERVER_AGENT)), packages, {AGENT: 'latest', SERVER_AGENT: 'latest'}, action='uninstall')
    assert [(entry.module_id, entry.action) for entry in items] == [(SERVER_AGENT, 'uninstall'), (AGENT, 'uninstall')]
    assert skipped == {}


# --- selection (§2.1.1) ---

VERSIONS = [pkg('0.9', downgrade=True), pkg('1.0'), pkg('1.9'), pkg('1.10')]


def test_latest_only_on_takes_the_newest_above_current():
    chosen = plan.select_install(state(current='1.0'), VERSIONS, 'latest', latest_only=True)
    assert (chosen.package_id, chosen.from_version, chosen.to_version, chosen.action) == ('system-bios_1.10', '1.0', '1.10', 'install')
    assert chosen.command == 'sh install.sh 1.10'
    assert plan.select_install(state(current='1.0'), VERSIONS, '1.10', latest_only=True).to_version == '1.10'


def test_latest_only_on_refuses_a_newer_version_that_is_not_the_newest():
    error = refused('latest_only', plan.select_install, state(current='1.0'), VERSIONS, '1.9', latest_only=True)
    assert 'not the newest version' in error.msg and 'latest_only' in error.msg and '1.9' in error.msg
    assert error.details['module'] == BIOS


def test_latest_only_on_refuses_an_older_version_even_when_downgrade_is_supported():
    error = refused('latest_only', plan.select_install, state(current='1.0'), VERSIONS, '0.9', latest_only=True)
    assert 'not the newest version' in error.msg


def test_latest_only_on_refuses_the_newest_package_when_it_is_older_than_current():
    error = refused('latest_only', plan.select_install, state(current='2.0'), VERSIONS + [pkg('1.11', downgrade=True)], '1.11', latest_only=True)
    assert 'not the newest version above the current one (2.0)' in error.msg


def test_latest_only_off_allows_a_newer_version_that_is_not_the_newest():
    chosen = plan.select_install(state(current='1.0'), VERSIONS, '1.9', latest_only=False)
    assert (chosen.from_version, chosen.to_version) == ('1.0', '1.9')


def test_latest_only_off_allows_a_downgrade_only_when_supported():
    chosen = plan.select_install(state(current='1.0'), VERSIONS, '0.9', latest_only=False)
    assert (chosen.from_version, chosen.to_version) == ('1.0', '0.9')
    error = refused('downgrade_not_supported', plan.select_install, state(current='1.9'), VERSIONS, '1.0', latest_only=False)
    assert 'does not support downgrade from 1.9 to 1.0' in error.msg and 'system-bios_1.0' in error.msg


def test_latest_only_off_latest_still_takes_the_newest():
    assert plan.select_install(state(current='1.0'), VERSIONS, 'latest', latest_only=False).to_version == '1.10'


@pytest.mark.parametrize('latest_only', [True, False])
def test_equal_version_is_nothing_to_do(latest_only):
    assert plan.select_install(state(current='1.9'), VERSIONS, '1.9', latest_only=latest_only) is None
    assert plan.select_install(state(current='1.10'), VERSIONS, '1.10', latest_only=latest_only) is None
    assert plan.select_install(state(current='1.10'), VERSIONS, 'latest', latest_only=latest_only) is None
    items, skipped = plan.build_plan(states(state(current='1.9')), VERSIONS, {BIOS: '1.9'}, latest_only=latest_only)
    assert items == [] and skipped == {BIOS: 'already at 1.9'}


def test_current_newer_than_every_package_is_nothing_to_do():
    assert plan.select_install(state(current='3.0'), VERSIONS, 'latest') is None


def test_previous_picks_the_previous_generation():
    chosen = plan.select_install(state(current='1.10', previous='0.9'), VERSIONS, 'previous', latest_only=False)
    assert (chosen.from_version, chosen.to_version, chosen.package_id) == ('1.10', '0.9', 'system-bios_0.9')
    newer_previous = plan.select_install(state(current='1.0', previous='1.10'), VERSIONS, 'previous', latest_only=True)
    assert newer_previous.to_version == '1.10'


def test_previous_unknown_without_a_previous_generation():
    error = refused('previous_unknown', plan.select_install, state(current='1.10'), VERSIONS, 'previous', latest_only=False)
    assert 'no previous generation' in error.msg and BIOS in error.msg


def test_previous_not_in_the_repository():
    error = refused('version_not_available', plan.select_install, state(current='1.10', previous='0.5'), VERSIONS, 'previous', latest_only=False)
    assert 'no system-bios version 0.5' in error.msg and '0.9, 1.0, 1.9, 1.10' in error.msg


def test_named_version_not_in_the_repository():
    error = refused('version_not_available', plan.select_install, state(current='1.0'), [], '2.0', latest_only=False)
    assert 'version 2.0' in error.msg and 'it has: none' in error.msg


def test_version_order_is_firmware_order_not_text_order():
    assert plan.select_install(state(current='1.9'), [pkg('1.9'), pkg('1.10'), pkg('1.2')], 'latest').to_version == '1.10'


def test_software_module_absent_is_installed_from_nothing():
    chosen = plan.select_install(state(SERVER_AGENT, current=None), [pkg('1.0', module=SERVER_AGENT)], 'latest')
    assert (chosen.from_version, chosen.to_version) == (None, '1.0')


# --- manual packages (§2.1.3.1, §3.5.4) ---


@pytest.mark.parametrize('manual', [pkg('2.0', auto=False), pkg('2.0', kind='offline'), pkg('2.0', kind='windows')])
def test_manual_packages_are_refused_when_named(manual):
    error = refused('not_auto_update', plan.build_plan, states(state(current='1.0')), [manual], {BIOS: 'latest'})
    assert 'not auto-update' in error.msg and 'export them' in error.msg and manual.package_id in error.msg
    assert error.details['packages'] == [manual.package_id]
    error = refused('not_auto_update', plan.build_plan, states(state(current='1.0')), [pkg('1.0'), manual], {BIOS: '2.0'}, latest_only=False)
    assert 'export' in error.msg


@pytest.mark.parametrize('manual', [pkg('2.0', auto=False), pkg('2.0', kind='offline')])
def test_manual_packages_are_skipped_silently_when_no_module_is_named(manual):
    packages = [manual, pkg('2.0', module=BMC)]
    items, skipped = plan.build_plan(states(state(current='1.0'), state(BMC, current='1.0')), packages, None)
    assert [entry.module_id for entry in items] == [BMC]
    assert 'export' in skipped[BIOS]


def test_manual_package_not_newer_is_nothing_to_do():
    assert plan.select_install(state(current='2.0'), [pkg('2.0', auto=False), pkg('1.0', kind='offline')], 'latest') is None


def test_auto_update_package_is_taken_beside_a_newer_manual_one():
    chosen = plan.select_install(state(current='1.0'), [pkg('1.5'), pkg('2.0', auto=False)], 'latest')
    assert chosen.to_version == '1.5'


# --- incompatible packages (§2.1.4) ---


def test_incompatible_packages_are_ignored_for_selection():
    newer_schema = PACKAGE_SCHEMA_VERSION + 1
    packages = [pkg('1.5'), pkg('2.0', schema=newer_schema), pkg('3.0', schema=newer_schema, auto=False)]
    assert plan.select_install(state(current='1.0'), packages, 'latest').to_version == '1.5'
    assert plan.select_install(state(current='1.5'), packages, 'latest') is None
    refused('version_not_available', plan.select_install, state(current='1.0'), packages, '2.0', latest_only=False)
    refused('version_not_available', plan.select_install, state(current='1.0'), packages, '3.0', latest_only=False)
    assert plan.module_status(state(current='1.5'), packages) == ('latest', None)
    assert plan.module_status(state(current='1.5'), packages[1:]) == ('no_package', None)


# --- build_plan refusals ---


def test_unknown_module():
    error = refused('unknown_module', plan.build_plan, {}, [], {'bogus-module': 'latest'})
    assert "unknown module 'bogus-module'" in error.msg and BIOS in error.msg


@pytest.mark.parametrize('module', [BIOS, BMC, 'fc-controller', 'raid-controller'])
def test_firmware_module_not_present(module):
    absent = {module: plan.ModuleState(module)}
    for server in ({}, absent):
        error = refused('module_not_present', plan.build_plan, server, [pkg('2.0', module=module)], {module: 'latest'})
        assert '%s is not present' % module in error.msg


def test_absent_modules_are_not_taken_when_none_is_named():
    items, skipped = plan.build_plan({}, [pkg('2.0'), pkg('2.0', module=SERVER_AGENT)], None)
    assert items == [] and skipped == {}


def test_uninstall_needs_named_modules():
    error = refused('modules_required', plan.build_plan, states(state()), [pkg('1.0', uninstall=True)], None, action='uninstall')
    assert 'name the modules' in error.msg


# --- gating (§2.1.5-6) ---


@pytest.mark.parametrize('block, words', [('reboot_required', 'reboot required'), ('apply_failed', 'apply failed')])
def test_a_blocked_module_blocks_every_apply(block, words):
    server = states(state(current='1.0', block=block, staged='2.0' if block == 'reboot_required' else None), state(BMC, current='1.0'))
    packages = [pkg('2.0'), pkg('2.0', module=BMC)]
    error = refused('blocked_until_reboot', plan.build_plan, server, packages, None)
    assert 'must restart' in error.msg and 'system-bios (%s)' % words in error.msg
    assert error.details['blocked'] == [BIOS]
    error = refused('blocked_until_reboot', plan.build_plan, server, packages, {BMC: 'latest'})
    assert error.details['blocked'] == [BIOS]


def test_blocked_lists_every_blocked_module():
    server = states(
        state(current='1.0', block='apply_failed'), state(BMC, current='1.0', block='reboot_required', staged='1.5'), state(SERVER_AGENT, current='1.0')
    )
    error = refused('blocked_until_reboot', plan.build_plan, server, [pkg('2.0', module=SERVER_AGENT)], {SERVER_AGENT: 'latest'})
    assert error.details['blocked'] == [BMC, BIOS]
    assert 'bmc-firmware (reboot required)' in error.msg and 'system-bios (apply failed)' in error.msg


def test_apply_failed_module_named_is_refused():
    server = states(state(current='1.0', block='apply_failed'))
    refused('blocked_until_reboot', plan.build_plan, server, [pkg('2.0')], {BIOS: '2.0'})


@pytest.mark.parametrize('version', ['2.0', 'latest'])
def test_request_for_the_staged_version_is_skipped(version):
    server = states(state(current='1.0', block='reboot_required', staged='2.0'))
    items, skipped = plan.build_plan(server, [pkg('1.5'), pkg('2.0')], {BIOS: version})
    assert items == []
    assert 'version 2.0 is staged' in skipped[BIOS]


def test_request_for_another_version_than_the_staged_one_is_blocked():
    server = states(state(current='1.0', block='reboot_required', staged='2.0'))
    refused('blocked_until_reboot', plan.build_plan, server, [pkg('1.5'), pkg('2.0')], {BIOS: '1.5'}, latest_only=False)


def test_blocked_server_with_nothing_to_do_is_no_error():
    server = states(state(current='1.0', block='apply_failed'), state(BMC, current='2.0'))
    items, skipped = plan.build_plan(server, [pkg('2.0', module=BMC)], None)
    assert items == [] and skipped == {BMC: 'already at 2.0'}
    items, skipped = plan.build_plan(server, [pkg('1.0')], None)
    assert items == [] and skipped == {BIOS: 'already at 1.0'}


# --- uninstall (§3.9) ---


def test_uninstall_takes_the_package_of_the_current_version():
    packages = [pkg('1.0', module=SERVER_AGENT, uninstall=True, uninstall_command='sh old-uninstall.sh'), pkg('2.0', module=SERVER_AGENT, uninstall=True)]
    chosen = plan.select_uninstall(state(SERVER_AGENT, current='1.0'), packages)
    assert (chosen.package_id, chosen.action, chosen.from_version, chosen.to_version) == ('server-agent_1.0', 'uninstall', '1.0', None)
    assert chosen.command == 'sh old-uninstall.sh'


def test_uninstall_takes_the_newest_supporting_package_otherwise():
    packages = [
        pkg('1.0', module=SERVER_AGENT),
        pkg('1.5', module=SERVER_AGENT, uninstall=True),
        pkg('1.2', module=SERVER_AGENT, uninstall=True),
        pkg('2.0', module=SERVER_AGENT),
        pkg('3.0', module=SERVER_AGENT, uninstall=True, schema=PACKAGE_SCHEMA_VERSION + 1),
    ]
    chosen = plan.select_uninstall(state(SERVER_AGENT, current='1.0'), packages)
    assert chosen.package_id == 'server-agent_1.5'


@pytest.mark.parametrize('packages', [[], [pkg('1.0', module=SERVER_AGENT)], [pkg('1.0', module=SERVER_AGENT, uninstall=True, uninstall_command='')]])
def test_uninstall_not_supported(packages):
    error = refused('uninstall_not_supported', plan.build_plan, states(state(SERVER_AGENT)), packages, {SERVER_AGENT: 'latest'}, action='uninstall')
    assert 'server-agent cannot be uninstalled' in error.msg


def test_uninstall_skips_a_module_that_is_not_installed():
    packages = [pkg('1.0', module=SERVER_AGENT, uninstall=True)]
    for server in ({}, states(state(SERVER_AGENT, current=None))):
        items, skipped = plan.build_plan(server, packages, {SERVER_AGENT: 'latest'}, action='uninstall')
        assert items == [] and skipped == {SERVER_AGENT: 'not installed'}


# --- module status (Tables 8-9) ---


@pytest.mark.parametrize('activity', ['waiting_apply', 'applying', 'waiting_uninstall', 'uninstalling'])
def test_module_status_running_job_wins(activity):
    assert plan.module_status(state(activity=activity, block='apply_failed'), [pkg('2.0')]) == (activity, None)


@pytest.mark.parametrize('block', ['reboot_required', 'apply_failed'])
def test_module_status_block(block):
    assert plan.module_status(state(block=block), [pkg('2.0')]) == (block, None)
    assert plan.module_status(state(block=block), []) == (block, None)


@pytest.mark.parametrize(
    'current, packages, expected',
    [
        ('1.0', [pkg('1.0'), pkg('2.0')], 'update_available'),
        (None, [pkg('1.0')], 'update_available'),
        ('2.0', [pkg('1.0'), pkg('2.0')], 'latest'),
        ('3.0', [pkg('1.0'), pkg('2.0')], 'latest'),
        ('1.0', [], 'no_package'),
        ('1.0', [pkg('1.0'), pkg('2.0', auto=False)], 'latest'),
        ('1.9', [pkg('1.10')], 'update_available'),
    ],
)
def test_module_status_table_8(current, packages, expected):
    assert plan.module_status(state(current=current), packages) == (expected, None)


@pytest.mark.parametrize(
    'current, packages, icon',
    [
        ('1.0', [pkg('2.0', auto=False)], 'update_available'),
        ('1.0', [pkg('2.0', kind='offline')], 'update_available'),
        (None, [pkg('2.0', auto=False)], 'update_available'),
        ('2.0', [pkg('2.0', auto=False), pkg('1.0', kind='offline')], 'latest'),
        ('3.0', [pkg('2.0', auto=False)], 'latest'),
    ],
)
def test_module_status_table_9_manual_packages(current, packages, icon):
    assert plan.module_status(state(current=current), packages) == ('-', icon)


# --- server status (Table 10) ---

TABLE_10 = ['communication_failed', 'unknown', 'applying', 'uninstalling', 'update_available', 'apply_failed', 'reboot_required', 'latest']


def test_server_priority_is_table_10():
    assert list(plan.SERVER_PRIORITY) == TABLE_10


@pytest.mark.parametrize('high, low', [(TABLE_10[i], TABLE_10[j]) for i in range(len(TABLE_10)) for j in range(i, len(TABLE_10))])
def test_server_status_every_pair_the_higher_wins(high, low):
    assert plan.server_status([high, low]) == high
    assert plan.server_status([low, high]) == high
    assert plan.server_status([low, 'latest', high, low]) == high


@pytest.mark.parametrize('status', TABLE_10 + ['waiting_apply', 'waiting_uninstall', 'rebooting', 'no_package', 'cancelled', '-'])
def test_server_status_flags(status):
    assert plan.server_status([status], communication_failed=True) == 'communication_failed'
    assert plan.server_status([status], communication_failed=True, unknown=True) == 'communication_failed'
    assert plan.server_status([status], unknown=True) == ('communication_failed' if status == 'communication_failed' else 'unknown')


@pytest.mark.parametrize(
    'status, rank',
    [
        ('waiting_apply', 'applying'),
        ('rebooting', 'applying'),
        ('waiting_uninstall', 'uninstalling'),
        ('no_package', 'latest'),
        ('cancelled', 'update_available'),
        ('-', 'latest'),
    ],
)
def test_server_status_other_module_statuses_rank_as_their_meaning(status, rank):
    for other in TABLE_10:
        expected = TABLE_10[min(TABLE_10.index(rank), TABLE_10.index(other))]
        assert plan.server_status([status, other]) == expected, other


def test_server_status_without_modules_is_latest():
    assert plan.server_status([]) == 'latest'


# --- version list (§3.5.1 step 6) ---


def test_versions_offered_marks_the_previous_generation():
    rows = plan.versions_offered(state(current='1.10', previous='1.9'), [pkg('1.9'), pkg('1.10'), pkg('0.9', downgrade=True)])
    assert [row['label'] for row in rows] == ['1.10', '1.9 [*]', '0.9']
    assert [row['previous_generation'] for row in rows] == [False, True, False]
    assert [row['version'] for row in rows] == ['1.10', '1.9', '0.9']
    assert rows[2]['downgrade_supported'] is True and rows[0]['package_id'] == 'system-bios_1.10'


def test_versions_offered_without_previous_marks_nothing():
    rows = plan.versions_offered(state(current='1.10'), [pkg('1.9'), pkg('1.10')])
    assert [row['label'] for row in rows] == ['1.10', '1.9']
    assert not any(row['previous_generation'] for row in rows)


# --- reboot rule (§2.1.2) ---


def result(status, reboot):
    return {'status': status, 'reboot_required': reboot}


@pytest.mark.parametrize(
    'results, needed, allowed',
    [
        ([], False, False),
        ([result('succeeded', True)], True, True),
        ([result('succeeded', False)], False, False),
        ([result('succeeded', True), result('succeeded', False)], True, True),
        ([result('succeeded', False), result('succeeded', False)], False, False),
        ([result('succeeded', True), result('failed', False)], True, False),
        ([result('succeeded', True), result('cancelled', True)], True, False),
        ([result('succeeded', False), result('failed', True)], False, False),
        ([result('failed', True)], False, False),
        ([result('cancelled', True), result('cancelled', False)], False, False),
        ([result('succeeded', True), result('succeeded', True)], True, True),
    ],
)
def test_reboot_rule(results, needed, allowed):
    assert plan.reboot_needed(results) is needed
    assert plan.reboot_allowed(results) is allowed


# --- §2.1.1.2: the same version again (issue 8 item 10) ---


def test_latest_only_off_applies_the_same_version_again_when_its_package_supports_downgrade():
    packages = [pkg('1.0', downgrade=True), pkg('2.0')]
    chosen = plan.select_install(state(current='1.0', previous='0.9'), packages, '1.0', latest_only=False)
    assert (chosen.package_id, chosen.from_version, chosen.to_version, chosen.action) == ('system-bios_1.0', '1.0', '1.0', 'install')
    items, skipped = plan.build_plan(states(state(current='1.0')), packages, {BIOS: '1.0'}, latest_only=False)
    assert [entry.package_id for entry in items] == ['system-bios_1.0'] and skipped == {}


def test_same_version_is_not_applied_again_with_latest_only_on_or_without_downgrade_support():
    assert plan.select_install(state(current='1.0'), [pkg('1.0', downgrade=True)], '1.0', latest_only=True) is None
    assert plan.select_install(state(current='1.0'), [pkg('1.0')], '1.0', latest_only=False) is None
    # "latest" never re-applies what runs already, whatever the package supports
    assert plan.select_install(state(current='1.0'), [pkg('1.0', downgrade=True)], 'latest', latest_only=False) is None


# --- Table 17: save only the displayed version (issue 8 item 10) ---


def info_for(version, models, os_names=('linux',), module=BIOS, package_id=None):
    info = pkg(version, module=module, package_id=package_id or '%s-%s-%s' % (module, version, '+'.join(models)))
    info.models, info.os = list(models), list(os_names)
    return info


def test_displayed_packages_multi_model_newer_hides_the_single_model_older():
    infos = [info_for('2.0', ['M1', 'M2']), info_for('1.0', ['M1'])]
    assert plan.displayed_packages(infos) == {'system-bios-2.0-M1+M2'}
    assert plan.displayed_packages(infos, models=['M1']) == {'system-bios-2.0-M1+M2'}


def test_displayed_packages_single_model_newer_beside_an_older_multi_model_one():
    infos = [info_for('2.0', ['M1', 'M2']), info_for('3.0', ['M1'])]
    # M1 shows 3.0, M2 shows 2.0: both are displayed somewhere, only M1's when M1 alone is asked for
    assert plan.displayed_packages(infos) == {'system-bios-3.0-M1', 'system-bios-2.0-M1+M2'}
    assert plan.displayed_packages(infos, models=['M1']) == {'system-bios-3.0-M1'}
    assert plan.displayed_packages(infos, models=['M2']) == {'system-bios-2.0-M1+M2'}


def test_displayed_packages_one_per_module_and_os():
    infos = [
        info_for('2.0', ['M1'], ['any']),
        info_for('1.0', ['M1'], ['rhel9']),
        info_for('1.5', ['M1'], ['sles15']),
        info_for('0.5', ['M1'], module=BMC),
        info_for('0.7', ['M1'], module=BMC),
    ]
    # an 'any' package is shown to every OS: the older OS-specific ones are shown to none
    assert plan.displayed_packages(infos) == {'system-bios-2.0-M1', 'bmc-firmware-0.7-M1'}
    infos.append(info_for('2.5', ['M1'], ['rhel9']))
    assert plan.displayed_packages(infos) == {'system-bios-2.0-M1', 'system-bios-2.5-M1', 'bmc-firmware-0.7-M1'}
    assert plan.displayed_packages([]) == set()
