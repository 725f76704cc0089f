# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The result, diff and message shapes of exup_apply (issue 9): one set of functions for the agent and the BMC path."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report as ar, plan

AGENT = ar.ApplyPlace('srv1')
BMC = ar.ApplyPlace('srv1', bmc_address='10.0.0.9')


def row(module_id='system-bios', from_version='1.0', to_version='2.0', reboot_required=False, action='install', package_id=None):
    return {
        'package_id': package_id or '%s-%s' % (module_id, to_version),
        'module_id': module_id,
        'action': action,
        'from_version': from_version,
        'to_version': to_version,
        'reboot_required': reboot_required,
        'release_date': '2024-01-01',
        'command': 'sh install.sh',
        'sha256': 'ab' * 32,
        'size': 10,
    }


def job_item(status='succeeded', **kwargs):
    item = row(**kwargs)
    item.update(status=status, cause=None if status == 'succeeded' else 'exit status 3: boom', exit_code=0, output_tail='', outcome='finished')
    return item


def bmc_result(status='succeeded', reset_required=False, **kwargs):
    result = row(**kwargs)
    result.update(status=status, cause=None, error=None, reset_required=reset_required, task='/redfish/v1/TaskService/Tasks/1', messages='')
    result['reboot_required'] = reset_required
    if status == 'failed':
        result.update(cause='task failed', error='bmc_task_failed', blocks=True)
    return result


def test_places_say_where():
    assert (AGENT.where, AGENT.via_bmc) == ('on srv1', False)
    assert (BMC.where, BMC.via_bmc) == ('through BMC 10.0.0.9', True)


def test_staged_versions_are_the_reboot_required_blocks():
    states = {
        'a': plan.ModuleState('a', block='reboot_required', staged='2.0'),
        'b': plan.ModuleState('b', block='apply_failed'),
        'c': plan.ModuleState('c', current='1.0'),
    }
    assert ar.staged_versions(states) == {'a': '2.0'}


def test_nothing_to_apply():
    assert ar.nothing_to_apply({'a': '2.0'}, AGENT) == {
        'changed': False,
        'results': [],
        'reboot_required': True,
        'reboot_allowed': False,
        'msg': 'nothing to apply on srv1',
    }
    assert ar.nothing_to_apply({}, BMC) == {
        'changed': False,
        'results': [],
        'reboot_required': False,
        'reboot_allowed': False,
        'rebooted': False,
        'msg': 'nothing to apply through BMC 10.0.0.9',
    }


def test_would_apply_in_check_mode():
    planned = [row(), row('server-agent', None, '5.1', reboot_required=True)]
    assert ar.would_apply(planned, AGENT) == {
        'changed': True,
        'results': [],
        'reboot_required': True,
        'reboot_allowed': False,
        'msg': 'would run 2 package(s) on srv1',
        'diff': {'before': {'system-bios': '1.0', 'server-agent': '(not installed)'}, 'after': {'system-bios': '2.0', 'server-agent': '5.1'}},
    }
    assert ar.would_apply([row()], BMC) == {
        'changed': True,
        'results': [],
        'reboot_required': False,
        'reboot_allowed': False,
        'rebooted': False,
        'msg': 'would update 1 firmware package(s) through BMC 10.0.0.9',
        'diff': {'before': {'system-bios': '1.0'}, 'after': {'system-bios': '2.0'}},
    }


def test_diff_words_of_each_path():
    planned = [row(), row('bmc-firmware', None, '3.0'), row('sdr', '1.0', None, action='uninstall')]
    assert ar.apply_diff(planned, AGENT) == {
        'before': {'system-bios': '1.0', 'bmc-firmware': '(not installed)', 'sdr': '1.0'},
        'after': {'system-bios': '2.0', 'bmc-firmware': '3.0', 'sdr': '(uninstalled)'},
    }
    after = {'system-bios': '2.0'}
    assert ar.apply_diff(planned, AGENT, after)['after'] == {'system-bios': '2.0', 'bmc-firmware': '(not installed)', 'sdr': '(not installed)'}
    # the BMC lists only the firmware it knows: a module it did not report shows its target
    assert ar.apply_diff(planned[:2], BMC, after) == {
        'before': {'system-bios': '1.0', 'bmc-firmware': '(none)'},
        'after': {'system-bios': '2.0', 'bmc-firmware': '3.0'},
    }


def test_agent_package_results_keep_the_public_keys_of_the_job_items():
    items = [job_item(reboot_required=True), job_item('failed', module_id='bmc-firmware'), job_item('cancelled', module_id='sdr')]
    results = ar.package_results(items, AGENT, {'system-bios': '1.0', 'bmc-firmware': '0.5'})
    assert results[0] == {
        'package_id': 'system-bios-2.0',
        'module_id': 'system-bios',
        'action': 'install',
        'status': 'succeeded',
        'cause': None,
        'reboot_required': True,
        'version_before': '1.0',
        'version_target': '2.0',
        'version_after': '1.0',
        'outcome': 'finished',
        'staged': True,
    }
    assert [(r['status'], r['staged'], r['version_after']) for r in results] == [
        ('succeeded', True, '1.0'),
        ('failed', False, '0.5'),
        ('cancelled', False, None),
    ]


def test_bmc_package_results_keep_what_the_bmc_said_but_not_the_internal_keys():
    items = [bmc_result(reset_required=True), bmc_result('failed', module_id='bmc-firmware')]
    staged = ar.package_results(items, BMC, {'system-bios': '1.0'})
    assert set(staged[0]) == {
        'package_id',
        'module_id',
        'action',
        'from_version',
        'to_version',
        'reboot_required',
        'release_date',
        'sha256',
        'size',
        'status',
        'cause',
        'error',
        'reset_required',
        'task',
        'messages',
        'version_before',
        'version_target',
        'version_after',
        'staged',
    }
    assert (staged[0]['staged'], staged[1]['staged'], staged[1]['error']) == (True, False, 'bmc_task_failed')
    assert 'blocks' not in staged[1] and 'command' not in staged[1]
    assert 'blocks' in items[1]  # the path's own items are left as they were
    rebooted = ar.package_results(items, BMC, {'system-bios': '2.0'}, rebooted=True)
    assert (rebooted[0]['staged'], rebooted[0]['version_after']) == (False, '2.0')


@pytest.mark.parametrize(
    'finished, place, expected',
    [
        (
            ar.FinishedApply([job_item(reboot_required=True), job_item(module_id='sdr')], code='apply_finished'),
            AGENT,
            {'changed': True, 'reboot_required': True, 'reboot_allowed': True, 'msg': '2 of 2 package(s) applied on srv1'},
        ),
        (
            ar.FinishedApply([job_item(action='uninstall', to_version=None)], action='uninstall', code='uninstall_finished'),
            AGENT,
            {'changed': True, 'reboot_required': False, 'reboot_allowed': False, 'msg': '1 of 1 package(s) uninstalled on srv1'},
        ),
        (
            ar.FinishedApply(
                [job_item(), dict(job_item('cancelled', module_id='sdr'), cause='cancelled by the user')], code='apply_cancelled', cause='cancelled by the user'
            ),
            AGENT,
            {'changed': True, 'reboot_required': False, 'reboot_allowed': False, 'msg': '1 of 2 package(s) applied on srv1 (cancelled by the user)'},
        ),
        (
            ar.FinishedApply(
                [job_item(reboot_required=True), job_item('failed', module_id='sdr', package_id='P2')], code='apply_failed', cause='P2: exit status 3: boom'
            ),
            AGENT,
            {
                'changed': True,
                'reboot_required': True,
                'reboot_allowed': False,
                'failed': True,
                'error': 'apply_failed',
                'msg': 'P2 failed on srv1: exit status 3: boom; the server takes no more packages until it restarts',
            },
        ),
        (
            ar.FinishedApply([job_item()], code='apply_finished', job_error='agent_disk_full'),
            AGENT,
            {
                'changed': True,
                'reboot_required': False,
                'reboot_allowed': False,
                'failed': True,
                'error': 'agent_disk_full',
                'msg': "1 of 1 package(s) applied on srv1; the agent's state folder on srv1 is full: free some space there",
            },
        ),
        (
            ar.FinishedApply([bmc_result(reset_required=True)]),
            BMC,
            {'changed': True, 'reboot_required': True, 'reboot_allowed': True, 'rebooted': False, 'msg': '1 firmware package(s) applied through BMC 10.0.0.9'},
        ),
        (
            ar.FinishedApply([bmc_result(reset_required=True), bmc_result(module_id='bmc-firmware')], rebooted=True),
            BMC,
            {
                'changed': True,
                'reboot_required': False,
                'reboot_allowed': True,
                'rebooted': True,
                'msg': '2 firmware package(s) applied through BMC 10.0.0.9, server reset',
            },
        ),
        (
            ar.FinishedApply([bmc_result('failed', package_id='B1')]),
            BMC,
            {
                'changed': False,
                'reboot_required': False,
                'reboot_allowed': False,
                'rebooted': False,
                'failed': True,
                'error': 'bmc_task_failed',
                'msg': 'B1 failed through BMC 10.0.0.9: task failed',
            },
        ),
    ],
)
def test_apply_summary(finished, place, expected):
    assert ar.apply_summary(finished, place) == expected


def test_restarted_modules_are_the_successes_that_wait_for_a_restart():
    results = [job_item(reboot_required=True), job_item('failed', module_id='sdr', reboot_required=True), job_item(module_id='bmc-firmware')]
    assert ar.restarted_modules(results) == ['system-bios']


@pytest.mark.parametrize(
    ('results', 'removed'),
    [
        ([{'module_id': 'update-agent', 'action': 'uninstall', 'status': 'succeeded'}], True),
        (
            [
                {'module_id': 'raid-utility', 'action': 'uninstall', 'status': 'succeeded'},
                {'module_id': 'update-agent', 'action': 'uninstall', 'status': 'succeeded'},
            ],
            True,
        ),
        ([{'module_id': 'update-agent', 'action': 'uninstall', 'status': 'failed'}], False),
        ([{'module_id': 'update-agent', 'action': 'uninstall', 'status': 'cancelled'}], False),
        ([{'module_id': 'update-agent', 'action': 'install', 'status': 'succeeded'}], False),  # an agent upgrade keeps it managed
        ([{'module_id': 'raid-utility', 'action': 'uninstall', 'status': 'succeeded'}], False),
        ([], False),
    ],
)
def test_agent_removed_only_by_a_succeeded_uninstall_of_the_update_agent(results, removed):
    assert ar.agent_removed(results) is removed


@pytest.mark.parametrize(
    'target, after, caught',
    [
        ('1.0', '1.00', False),  # the same version by firmware version order, written otherwise
        ('A01', 'a01', False),
        ('2.10', '2.1', True),  # 2.10 is not 2.1
        ('1.1', '1.0', True),
        ('1.1', None, True),  # not read after: not installed
    ],
)
def test_unchanged_compares_by_version_order_not_text(target, after, caught):
    assert ar.unchanged('succeeded', 'install', target, after, staged=False) is caught
