# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules of a group rollout in rules/rollout.py: settings, Table 21, the restart of §2.1.2, rows and summary.

The expected texts are what playbooks/apply.yml and uninstall.yml printed before the role existed
(the same runs on the lab gave the same summaries before and after the change).
"""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import rollout
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.rollout import Settings, Wave

KEYS = ['/etc/exup/vendor.pub']
APPLY = Settings(state='present', option_prefix='apply', target='managed', trusted_keys=KEYS)
UNINSTALL = Settings(state='absent', option_prefix='uninstall', target='managed', modules=['raid-utility', 'update-agent'], trusted_keys=KEYS)
UNREACHABLE = {'unreachable': True, 'msg': 'Failed to connect to the host via ssh: refused', 'changed': False}
SKIPPED = {'skipped': True, 'changed': False, 'skip_reason': 'Conditional result was False'}


def settings(base=APPLY, **changes) -> Settings:
    return Settings(**dict(base.__dict__, **changes))


def info(server_status='update_available', **modules) -> dict:
    """An exup_info result: modules given as module_id=(status, current[, block])."""
    rows = {}
    for module_id, values in modules.items():
        status, current, block = (values + (None,))[:3]
        rows[module_id.replace('_', '-')] = {'status': status, 'current': current, 'block': block}
    return {'changed': False, 'server_status': server_status, 'modules': rows, 'facts': {'boot_id': 'boot-1'}}


def result(module_id, before, status='succeeded', after=None, target=None, staged=False, cause=None, action='install') -> dict:
    return {
        'module_id': module_id,
        'action': action,
        'version_before': before,
        'status': status,
        'version_after': after if after is not None else before,
        'version_target': target,
        'staged': staged,
        'cause': cause,
    }


# --------------------------------------------------------------------------- settings


def test_settings_from_the_role_refuse_unknown_keys_and_states():
    assert rollout.Settings.from_mapping({'state': 'absent', 'modules': ['sdr']}).verb == 'uninstall'
    with pytest.raises(ValueError, match='unknown rollout settings: colour'):
        rollout.Settings.from_mapping({'colour': 'blue'})
    with pytest.raises(ValueError, match='present or absent'):
        rollout.Settings.from_mapping({'state': 'cancelled'})


@pytest.mark.parametrize('delay', [0, '0', 60, '60', '05'])
def test_valid_settings_have_no_problem(delay):
    assert rollout.check_settings(settings(reboot_delay_minutes=delay)) == []
    assert rollout.check_settings(settings(UNINSTALL, reboot_delay_minutes=delay)) == []
    assert rollout.check_settings(settings(modules=['system-bios'], versions={'system-bios': 'previous'})) == []


@pytest.mark.parametrize('delay', [61, '61', -1, '-1', 'abc', '1.5', 1.5, True, None, ''])
def test_a_delay_that_is_not_0_to_60_whole_minutes_is_refused(delay):
    shown = '' if delay is None else str(delay)
    assert rollout.check_settings(settings(reboot_delay_minutes=delay)) == [
        'apply_reboot_delay_minutes must be a whole number of minutes from 0 to 60 (not %s).' % shown
    ]
    assert rollout.check_settings(settings(UNINSTALL, reboot_delay_minutes=delay)) == [
        'uninstall_reboot_delay_minutes must be a whole number of minutes from 0 to 60 (not %s). Nothing was uninstalled.' % shown
    ]


def test_an_apply_names_its_status_filter_and_module_settings():
    assert rollout.check_settings(settings(status_filter='bogus')) == [
        'apply_status_filter must be one of all, latest, update_available, applying, reboot_required, apply_failed, uninstalling (not bogus).'
    ]
    both = (
        'exup_trusted_keys must list the public keys packages are signed with, apply_modules must be a list of module ids'
        ' and apply_versions a mapping of module id to version (or "previous").'
    )
    for wrong in ({'modules': 'system-bios'}, {'modules': {'system-bios': 1}}, {'versions': ['1.2']}, {'trusted_keys': []}):
        assert rollout.check_settings(settings(**wrong)) == [both], wrong
    # in the playbook's order: filter, delay, then modules, versions and keys
    assert rollout.check_settings(settings(status_filter='x', reboot_delay_minutes='y', trusted_keys=[])) == [
        'apply_status_filter must be one of all, latest, update_available, applying, reboot_required, apply_failed, uninstalling (not x).',
        'apply_reboot_delay_minutes must be a whole number of minutes from 0 to 60 (not y).',
        both,
    ]


def test_an_uninstall_needs_a_list_of_modules_and_keys():
    needs_modules = (
        'uninstall_modules must list the module ids to uninstall (for example -e \'{"uninstall_modules": ["raid-utility"]}\'). Nothing was uninstalled.'
    )
    for modules in (None, [], 'raid-utility', {'raid-utility': True}):
        assert rollout.check_settings(settings(UNINSTALL, modules=modules)) == [needs_modules], modules
    assert rollout.check_settings(settings(UNINSTALL, trusted_keys=[])) == [
        'exup_trusted_keys must list the public keys packages are signed with. Nothing was uninstalled.'
    ]
    assert rollout.check_settings(settings(UNINSTALL, status_filter='bogus')) == []  # an uninstall has no status filter


def test_the_role_alone_names_its_own_variables():
    assert rollout.check_settings(Settings(status_filter='bogus', trusted_keys=KEYS))[0].startswith('rollout_status_filter must be one of')


# --------------------------------------------------------------------------- 003 Table 21


@pytest.mark.parametrize(
    'status_filter, server_status, module_statuses, chosen',
    [
        ('all', 'latest', [], True),
        ('all', 'apply_failed', ['apply_failed'], True),
        ('latest', 'latest', ['latest'], True),
        ('latest', 'update_available', ['latest', 'update_available'], False),
        ('update_available', 'update_available', [], True),
        ('update_available', 'applying', ['applying', 'update_available'], True),  # a module with an update
        ('update_available', 'latest', ['latest'], False),
        ('applying', 'update_available', ['waiting_apply'], True),
        ('applying', 'latest', ['rebooting'], True),
        ('applying', 'applying', [], True),
        ('applying', 'latest', ['uninstalling'], False),
        ('reboot_required', 'update_available', ['reboot_required'], True),
        ('reboot_required', 'reboot_required', [], True),
        ('reboot_required', 'latest', ['latest'], False),
        ('apply_failed', 'apply_failed', [], True),
        ('apply_failed', 'update_available', ['apply_failed'], False),  # a server status only
        ('uninstalling', 'latest', ['waiting_uninstall'], True),
        ('uninstalling', 'uninstalling', [], True),
        ('uninstalling', 'latest', ['applying'], False),
    ],
)
def test_table_21_filters(status_filter, server_status, module_statuses, chosen):
    assert rollout.matches_filter(status_filter, server_status, module_statuses) is chosen


def test_a_server_is_chosen_by_the_filter_with_its_row():
    row = rollout.choose(APPLY, 'r120h-1', info('update_available', system_bios=('update_available', '1.0')))
    assert row == {
        'server': 'r120h-1',
        'status_before': 'update_available',
        'status_after': '-',
        'chosen': True,
        'note': '',
        'packages': [],
        'reboot': '-',
        'held_back': False,
        'failures': [],
        'failed': False,
        'applied': False,
        'unchanged': [],
        'rolled_back': [],
    }
    row = rollout.choose(APPLY, 'r120h-2', info('latest', system_bios=('latest', '1.2')))
    assert (row['chosen'], row['note'], row['failed']) == (False, 'not chosen: does not match the filter update_available', False)


def test_a_server_without_the_agent_or_that_cannot_be_queried_is_never_chosen():
    row = rollout.choose(settings(status_filter='all'), 'vm-1', info('agent_not_installed'))
    assert (row['chosen'], row['note'], row['failed']) == (False, 'not chosen: the agent is not installed (playbooks/agent_install.yml installs it)', False)
    row = rollout.choose(settings(UNINSTALL), 'vm-1', info('agent_not_installed'))
    assert (row['chosen'], row['note'], row['management_ended']) == (False, 'not chosen: the agent is not installed', False)
    row = rollout.choose(settings(status_filter='all'), 'ghost', UNREACHABLE)
    assert row['status_before'] == 'communication_failed' and (row['chosen'], row['note'], row['failed']) == (False, 'could not be queried', True)
    assert row['failures'] == ['exup_info: cannot reach the server: Failed to connect to the host via ssh: refused']
    row = rollout.choose(APPLY, 'r1', {'failed': True, 'msg': 'the repository is locked', 'error': 'repository_unavailable'})
    assert row['failures'] == ['exup_info: the repository is locked (repository_unavailable)']
    assert rollout.choose(APPLY, 'r1', {'failed': True})['failures'] == ['exup_info: failed without a message']
    assert rollout.choose(APPLY, 'r1', {'failed': True, 'msg': None})['failures'] == ['exup_info: None']  # as Jinja's ~ printed it


def test_an_uninstall_chooses_the_servers_with_one_of_its_modules_installed():
    row = rollout.choose(UNINSTALL, 'r1', info('latest', raid_utility=('latest', '3.1.0'), system_bios=('latest', '1.2')))
    assert (row['chosen'], row['note'], row['management_ended']) == (True, '', False)
    row = rollout.choose(UNINSTALL, 'r2', info('latest', raid_utility=('no_package', None), system_bios=('latest', '1.2')))
    assert (row['chosen'], row['note']) == (False, 'not chosen: none of raid-utility, update-agent is installed')
    assert rollout.choose(UNINSTALL, 'ghost', UNREACHABLE)['note'] == 'could not be queried'


# --------------------------------------------------------------------------- the restart (003 §2.1.2)

APPLIED = {'changed': True, 'results': [result('system-bios', '1.0', target='1.2', staged=True)], 'reboot_required': True, 'reboot_allowed': True}
STAGED_ONLY = {
    'changed': False,
    'results': [],
    'plan': [],
    'reboot_required': True,
    'reboot_allowed': False,
    'skipped_modules': {'system-bios': 'version 1.2 is staged and becomes active at the next restart'},
}


def test_a_server_restarts_only_when_allowed_by_the_operator_and_the_rule():
    allowed = settings(allow_reboot=True)
    before = info('update_available')
    assert rollout.restart(allowed, Wave(before, APPLIED)) == {
        'done': True,
        'failed': False,
        'reboot_now': True,
        'pending_only': False,
        'verify_versions': {'system-bios': '1.2'},
    }
    assert rollout.restart(APPLY, Wave(before, APPLIED))['reboot_now'] is False
    assert rollout.restart(allowed, Wave(before, dict(APPLIED, reboot_allowed=False)))['reboot_now'] is False
    for failed in (dict(APPLIED, error='apply_failed', failed=True), dict(UNREACHABLE, reboot_allowed=True), {'failed': True, 'msg': 'x'}):
        assert rollout.restart(allowed, Wave(before, failed)) == {
            'done': True,
            'failed': True,
            'reboot_now': False,
            'pending_only': False,
            'verify_versions': {},
        }
    assert rollout.restart(allowed, Wave(before, SKIPPED)) == {
        'done': False,
        'failed': False,
        'reboot_now': False,
        'pending_only': False,
        'verify_versions': {},
    }


def test_reboot_pending_restarts_a_server_that_only_waits_for_staged_firmware():
    pending = settings(allow_reboot=True, reboot_pending=True)
    before = info('reboot_required', system_bios=('reboot_required', '1.0', 'reboot_required'))
    assert rollout.restart(pending, Wave(before, STAGED_ONLY)) == {
        'done': True,
        'failed': False,
        'reboot_now': True,
        'pending_only': True,
        'verify_versions': {},
    }
    assert rollout.restart(settings(reboot_pending=True), Wave(before, STAGED_ONLY))['reboot_now'] is False  # not allowed
    failed_before = info('apply_failed', system_bios=('apply_failed', '1.0', 'apply_failed'))
    assert rollout.restart(pending, Wave(failed_before, STAGED_ONLY))['reboot_now'] is False
    assert rollout.restart(pending, Wave(before, dict(STAGED_ONLY, results=[result('sdr', '1.0')])))['reboot_now'] is False
    assert rollout.restart(pending, Wave(before, APPLIED))['pending_only'] is False
    assert rollout.restart(settings(UNINSTALL, allow_reboot=True, reboot_pending=True), Wave(before, STAGED_ONLY))['reboot_now'] is False


# --------------------------------------------------------------------------- the row after the wave

REBOOTED = {'changed': True, 'rebooted': True, 'elapsed': 12}


def chosen_row(base=APPLY, server='r120h-1'):
    return rollout.choose(
        base, server, info('update_available', system_bios=('update_available', '1.0')) if base is APPLY else info('latest', raid_utility=('latest', '3.1.0'))
    )


def test_an_apply_row_shows_versions_before_and_after_and_what_is_staged():
    applied = {
        'changed': True,
        'reboot_required': True,
        'reboot_allowed': True,
        'results': [result('raid-controller', '5.0', after='5.1'), result('system-bios', '1.0', target='1.2', staged=True)],
        'skipped_modules': {'sdr': 'already at 1.02', 'bmc-firmware': 'no package for this model'},
    }
    after = info('reboot_required', raid_controller=('latest', '5.1'), system_bios=('reboot_required', '1.0'))
    row = rollout.outcome(APPLY, chosen_row(), Wave(info('update_available'), applied, SKIPPED, after))
    assert row['status_after'] == 'reboot_required' and row['failed'] is False and row['held_back'] is False and row['note'] == ''
    assert row['packages'] == [
        'raid-controller 5.0 -> 5.1 succeeded',
        'system-bios 1.0 -> 1.0 succeeded (1.2 staged, active after the restart)',
        'bmc-firmware not applied: no package for this model',
    ]  # "already at" only when asked for modules
    assert row['reboot'] == 'needed, not allowed (apply_allow_reboot is false): restart the server to activate the staged firmware'
    named = rollout.outcome(settings(modules=['sdr']), chosen_row(), Wave(info('update_available'), applied, SKIPPED, after))
    assert 'sdr not applied: already at 1.02' in named['packages']
    versions = rollout.outcome(settings(versions={'sdr': '1.02'}), chosen_row(), Wave(info('update_available'), applied, SKIPPED, after))
    assert 'sdr not applied: already at 1.02' in versions['packages']


def test_after_a_restart_the_versions_are_the_new_ones():
    allowed = settings(allow_reboot=True, reboot_delay_minutes='10')
    after = info('latest', system_bios=('latest', '1.2'))
    row = rollout.outcome(allowed, chosen_row(), Wave(info('update_available'), APPLIED, REBOOTED, after))
    assert row['packages'] == ['system-bios 1.0 -> 1.2 succeeded'] and row['reboot'] == 'rebooted after 10 min' and not row['failed']
    assert rollout.outcome(settings(allow_reboot=True), chosen_row(), Wave(info('update_available'), APPLIED, REBOOTED, after))['reboot'] == 'rebooted'
    pending = settings(allow_reboot=True, reboot_pending=True)
    row = rollout.outcome(pending, chosen_row(), Wave(info('reboot_required'), STAGED_ONLY, REBOOTED, after))
    assert row['reboot'] == 'rebooted (firmware staged earlier)'
    assert row['packages'] == ['system-bios not applied: version 1.2 is staged and becomes active at the next restart']
    gone = rollout.outcome(APPLY, chosen_row(), Wave(info('update_available'), APPLIED, SKIPPED, info('latest', system_bios=('no_package', None))))
    assert gone['packages'] == ['system-bios 1.0 -> (removed) succeeded (1.2 staged, active after the restart)']
    unlisted = rollout.outcome(APPLY, chosen_row(), Wave(info('update_available'), APPLIED, SKIPPED, info('latest')))
    assert unlisted['packages'][0].startswith('system-bios 1.0 -> 1.0 succeeded')  # the version the apply reported


@pytest.mark.parametrize(
    'applied, reboot, expected',
    [
        (APPLIED, {'changed': False, 'failed': True, 'msg': 'Timed out waiting for the boot id to change'}, 'reboot failed'),
        (APPLIED, dict(UNREACHABLE, rebooted=False), 'reboot failed'),
        (dict(APPLIED, error='apply_failed', failed=True, msg='1 of 2 packages failed'), SKIPPED, 'not done: a package did not succeed (003 §2.1.2)'),
        (dict(APPLIED, reboot_required=False, reboot_allowed=False), SKIPPED, 'not needed'),
        (dict(APPLIED, reboot_allowed=False), SKIPPED, 'needed, not done: some packages did not succeed (003 §2.1.2)'),
        (STAGED_ONLY, SKIPPED, 'needed for firmware staged earlier, not done: nothing needing it was applied now (apply_reboot_pending allows it)'),
        (APPLIED, SKIPPED, 'needed, not allowed (apply_allow_reboot is false): restart the server to activate the staged firmware'),
    ],
)
def test_the_restart_or_why_not(applied, reboot, expected):
    row = rollout.outcome(APPLY, chosen_row(), Wave(info('update_available'), applied, reboot, info('reboot_required')))
    assert row['reboot'] == expected


def test_failures_are_listed_and_fail_the_row():
    failed = dict(APPLIED, failed=True, error='apply_failed', msg='system-bios failed\nsee the agent log')
    reboot = {'failed': True, 'msg': 'Timed out'}
    row = rollout.outcome(settings(allow_reboot=True), chosen_row(), Wave(info('update_available'), failed, SKIPPED, info('apply_failed')))
    assert row['failed'] is True and row['failures'] == ['exup_apply: system-bios failed', 'see the agent log (apply_failed)']
    row = rollout.outcome(settings(allow_reboot=True), chosen_row(), Wave(info('update_available'), APPLIED, reboot, UNREACHABLE))
    assert row['status_after'] == 'communication_failed' and row['failed'] is True
    assert row['failures'] == ['reboot: Timed out', 'exup_info after the apply: Failed to connect to the host via ssh: refused']
    row = rollout.outcome(APPLY, chosen_row(), Wave(info('update_available'), dict(UNREACHABLE, msg=None), SKIPPED, dict(UNREACHABLE, msg=None)))
    # a None message printed as Jinja printed it: empty
    assert row['failures'] == ['exup_apply: cannot reach the server: ', 'exup_info after the apply: ']
    assert row['status_after'] == 'communication_failed' and row['reboot'] == 'not done: a package did not succeed (003 §2.1.2)'


def test_a_server_held_back_after_a_failed_wave():
    row = rollout.outcome(APPLY, chosen_row(), Wave(info('update_available'), SKIPPED, SKIPPED, SKIPPED))
    assert row == dict(chosen_row(), note='not applied: a server of an earlier wave failed (apply_stop_on_failure)', held_back=True, window_skipped=False)
    row = rollout.outcome(UNINSTALL, chosen_row(UNINSTALL), Wave(info('latest'), SKIPPED, SKIPPED, SKIPPED))
    assert row['note'] == 'not uninstalled: a server of an earlier wave failed (uninstall_stop_on_failure)' and row['management_ended'] is False


def test_check_mode_shows_the_plan():
    plan = {
        'changed': True,
        'results': [],
        'reboot_required': True,
        'reboot_allowed': False,
        'plan': [
            {'action': 'install', 'module_id': 'system-bios', 'from_version': '1.0', 'to_version': '1.2', 'package_id': 'bios-1.2', 'reboot_required': True},
            {'action': 'install', 'module_id': 'raid-utility', 'from_version': None, 'to_version': '3.1.0', 'package_id': 'ru-3.1.0', 'reboot_required': False},
        ],
        'skipped_modules': {'sdr': 'manual package'},
    }
    check = settings(check_mode=True, allow_reboot=True)
    row = rollout.outcome(check, chosen_row(), Wave(info('update_available'), plan, {'changed': True, 'rebooted': True}, info('update_available')))
    assert row['packages'] == ['would install system-bios 1.0 -> 1.2 (bios-1.2, needs a restart)', 'would install raid-utility (none) -> 3.1.0 (ru-3.1.0)']
    assert row['reboot'] == '-'
    uninstall_plan = {
        'changed': True,
        'results': [],
        'skipped_modules': {'sdr': 'not installed'},
        'plan': [
            {
                'action': 'uninstall',
                'module_id': 'raid-utility',
                'from_version': '3.1.0',
                'to_version': None,
                'package_id': 'ru-3.1.0',
                'reboot_required': False,
            }
        ],
    }
    row = rollout.outcome(settings(UNINSTALL, check_mode=True), chosen_row(UNINSTALL), Wave(info('latest'), uninstall_plan, SKIPPED, info('latest')))
    assert row['packages'] == ['would uninstall raid-utility 3.1.0 (ru-3.1.0)', 'sdr not uninstalled: not installed']


def test_an_uninstall_row_and_the_end_of_agent_management():
    applied = {
        'changed': True,
        'reboot_required': False,
        'reboot_allowed': False,
        'results': [
            result('raid-utility', '3.1.0', action='uninstall'),
            result('update-agent', '1.1.0', action='uninstall'),
            result('sdr', None, status='failed', cause='x', action='uninstall'),
        ],
    }
    row = rollout.outcome(UNINSTALL, chosen_row(UNINSTALL), Wave(info('latest'), applied, SKIPPED, info('agent_not_installed')))
    assert row['packages'] == [
        'raid-utility 3.1.0 -> (removed) succeeded',
        'update-agent 1.1.0 -> (removed) succeeded',
        'sdr (none) ->  failed: x',
        'agent-based management of this server has ended (install the agent again with playbooks/agent_install.yml)',
    ]
    assert row['management_ended'] is True and row['reboot'] == 'not needed' and row['status_after'] == 'agent_not_installed'
    needs = dict(applied, reboot_required=True, results=applied['results'][:1])
    row = rollout.outcome(UNINSTALL, chosen_row(UNINSTALL), Wave(info('latest'), needs, SKIPPED, info('latest')))
    assert row['reboot'] == 'needed, not done: some packages did not succeed (003 §2.1.2)' and row['management_ended'] is False
    row = rollout.outcome(UNINSTALL, chosen_row(UNINSTALL), Wave(info('latest'), dict(needs, reboot_allowed=True), SKIPPED, info('latest')))
    assert row['reboot'] == 'needed, not allowed (uninstall_allow_reboot is false): restart the server to complete the uninstall'
    row = rollout.outcome(
        settings(UNINSTALL, allow_reboot=True, reboot_delay_minutes=5),
        chosen_row(UNINSTALL),
        Wave(info('latest'), dict(needs, reboot_allowed=True), REBOOTED, info('latest')),
    )
    assert row['reboot'] == 'rebooted after 5 min'
    failed = {'changed': False, 'failed': True, 'msg': 'sdr cannot be uninstalled', 'error': 'uninstall_not_supported'}
    row = rollout.outcome(UNINSTALL, chosen_row(UNINSTALL), Wave(info('latest'), failed, SKIPPED, info('latest')))
    assert row['failures'] == ['exup_apply: sdr cannot be uninstalled (uninstall_not_supported)']


# --------------------------------------------------------------------------- the summary


def test_the_summary_of_an_apply():
    rows = [
        rollout.outcome(APPLY, chosen_row(), Wave(info('update_available'), APPLIED, SKIPPED, info('reboot_required'))),
        rollout.outcome(APPLY, chosen_row(server='r120h-2'), Wave(info('update_available'), SKIPPED, SKIPPED, SKIPPED)),
        rollout.choose(APPLY, 'ghost', UNREACHABLE),
        rollout.choose(APPLY, 'vm-1', info('agent_not_installed')),
    ]
    assert rollout.summary(APPLY, rows) == [
        'exup apply to managed, filter update_available: 2 of 4 server(s) chosen, 1 failed, 1 held back after a failure',
        'server   before                after                 reboot',
        'r120h-1  update_available      reboot_required       needed, not allowed (apply_allow_reboot is false):'
        ' restart the server to activate the staged firmware',
        '    system-bios 1.0 -> 1.0 succeeded (1.2 staged, active after the restart)',
        'r120h-2  update_available      -                     -',
        '    not applied: a server of an earlier wave failed (apply_stop_on_failure)',
        'ghost    communication_failed  -                     could not be queried',
        '    FAILED exup_info: cannot reach the server: Failed to connect to the host via ssh: refused',
        'vm-1     agent_not_installed   -                     not chosen: the agent is not installed (playbooks/agent_install.yml installs it)',
    ]
    assert rollout.summary(settings(check_mode=True, status_filter='all'), [])[:2] == [
        'exup apply to managed (check mode: nothing was changed), filter all: 0 of 0 server(s) chosen, 0 failed',
        'server  before                after                 reboot',
    ]


def test_the_summary_of_an_uninstall():
    applied = {'changed': True, 'reboot_required': False, 'reboot_allowed': False, 'results': [result('update-agent', '1.1.0', action='uninstall')]}
    rows = [rollout.outcome(UNINSTALL, chosen_row(UNINSTALL, 'a-very-long-name'), Wave(info('latest'), applied, SKIPPED, info('agent_not_installed')))]
    assert rollout.summary(settings(UNINSTALL, target='db'), rows) == [
        'exup uninstall of raid-utility, update-agent from db: 1 of 1 server(s) chosen, 0 failed, agent management ended on 1',
        'server            before                after                 reboot',
        'a-very-long-name  latest                agent_not_installed   not needed',
        '    update-agent 1.1.0 -> (removed) succeeded',
        '    agent-based management of this server has ended (install the agent again with playbooks/agent_install.yml)',
    ]
    assert rollout.summary(settings(UNINSTALL, check_mode=True, modules=['sdr']), [])[0] == (
        'exup uninstall of sdr from managed (check mode: nothing was changed): 0 of 0 server(s) chosen, 0 failed'
    )


# --------------------------------------------------------------------------- the wave play's hosts


@pytest.mark.parametrize(
    'terms, pattern',
    [
        (['managed'], 'managed,&exup_apply_chosen'),
        (['managed', 'db'], 'managed,db,&exup_apply_chosen'),
        (['web[0:1]'], 'web[0:1],&exup_apply_chosen'),
        (['managed', '!db'], 'managed,!db,&exup_apply_chosen'),
        (['fe80::1', ' db '], 'fe80::1,db,&exup_apply_chosen'),
        ([], '&exup_apply_chosen'),
    ],
)
def test_the_wave_hosts_are_the_terms_then_the_chosen_group(terms, pattern):
    assert rollout.wave_hosts(terms, 'exup_apply_chosen') == pattern


@pytest.mark.parametrize('terms, group', [(['a,b'], 'chosen'), ([' '], 'chosen'), (['a'], ''), (['a'], 'x,y'), (['a'], 'x:y')])
def test_the_wave_hosts_refuse_a_term_or_group_that_is_not_one(terms, group):
    with pytest.raises(ValueError, match='must be one'):
        rollout.wave_hosts(terms, group)
