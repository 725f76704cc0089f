# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""13.5: a package reported succeeded whose version did not change is failed (succeeded_unchanged)."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report

AGENT = apply_report.ApplyPlace('srv1')
BMC = apply_report.ApplyPlace('srv1', bmc_address='127.0.0.1')


def _item(status='succeeded', reboot=False, action='install', to_version='1.1'):
    return {
        'package_id': 'p1',
        'module_id': 'system-bios',
        'action': action,
        'status': status,
        'cause': None,
        'reboot_required': reboot,
        'outcome': 'finished',
        'from_version': '1.0',
        'to_version': to_version,
    }


@pytest.mark.parametrize(
    ('status', 'action', 'target', 'after', 'staged', 'unread_ok', 'expected'),
    [
        ('succeeded', 'install', '1.1', '1.1', False, False, False),
        ('succeeded', 'install', '1.1', '1.0', False, False, True),
        ('succeeded', 'install', '1.1', None, False, False, True),
        ('succeeded', 'install', '1.1', None, False, True, False),
        ('succeeded', 'install', '1.1', '1.0', True, False, False),
        ('failed', 'install', '1.1', '1.0', False, False, False),
        ('succeeded', 'uninstall', None, None, False, False, False),
    ],
)
def test_unchanged(status, action, target, after, staged, unread_ok, expected):
    assert apply_report.unchanged(status, action, target, after, staged, unread_ok) is expected


@pytest.mark.parametrize('place', [AGENT, BMC])
def test_succeeded_but_unchanged_is_failed_in_the_result_and_the_summary(place):
    results = apply_report.package_results([_item()], place, {'system-bios': '1.0'})
    assert results[0]['status'] == 'failed' and results[0]['error'] == 'succeeded_unchanged' and results[0]['reported_status'] == 'succeeded'
    summary = apply_report.apply_summary(apply_report.FinishedApply(results, code='apply_finished'), place)
    assert summary['failed'] is True and summary['error'] == 'succeeded_unchanged' and 'succeeded but unchanged' in summary['msg']


def test_changed_is_succeeded_and_staged_waits_for_the_restart():
    assert apply_report.package_results([_item()], AGENT, {'system-bios': '1.1'})[0]['status'] == 'succeeded'
    staged = apply_report.package_results([_item(reboot=True)], AGENT, {'system-bios': '1.0'})[0]
    assert staged['status'] == 'succeeded' and staged['staged']
    reset = apply_report.package_results([_item(reboot=True)], BMC, {'system-bios': '1.0'}, rebooted=True)[0]
    assert reset['error'] == 'succeeded_unchanged'
