# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-flight gate of a rollout wave (rules/preflight.py): each check refuses with its code, in order."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import preflight
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.window import Interval

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
DF = 'Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/sda1         41152736  30000000  11152736      73% /\n'
OPEN = [Interval(NOW - datetime.timedelta(hours=1), NOW + datetime.timedelta(hours=1))]
CLOSED = [
    Interval(NOW - datetime.timedelta(hours=3), NOW - datetime.timedelta(hours=1)),
    Interval(NOW + datetime.timedelta(hours=20), NOW + datetime.timedelta(hours=22)),
]


def info(status='update_available', staged=None, job=None, tasks=None):
    result = {
        'server_status': status,
        'modules': {'system-bios': {'status': status, 'staged': staged}, 'raid-controller': {'status': 'latest', 'staged': None}},
    }
    if job is not None:
        result['active_job'] = job
    if tasks is not None:
        result['bmc'] = {'tasks': tasks}
    return result


def test_free_mb_reads_the_available_column_of_df():
    assert preflight.free_mb(DF) == 11152736 // 1024
    # a long device name wraps the POSIX line
    assert preflight.free_mb('Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/mapper/very-long-name\n 100 50 2048 50% /srv\n') == 2
    for unreadable in (None, '', 'Filesystem 1024-blocks\n', 'Filesystem\n/dev/x 1 2 lots 4% /\n', 42):
        assert preflight.free_mb(unreadable) is None


def test_a_healthy_server_passes_and_says_what_was_seen():
    verdict = preflight.gate(info(), DF, min_free_mb=100, windows=OPEN, now=NOW)
    assert verdict == {'passed': True, 'code': None, 'reason': 'passed', 'checks': {'free_mb': 10891, 'staged': [], 'queue': 0, 'window': 'window_open'}}
    assert preflight.gate(info(), None)['passed']  # no threshold, no windows: the disk and the window are not checked


def test_disk_low_or_unreadable():
    verdict = preflight.gate(info(), DF, min_free_mb=20000)
    assert (verdict['passed'], verdict['code'], verdict['reason']) == (False, 'preflight_disk_low', 'only 10891 MB free on the server, the gate needs 20000 MB')
    assert preflight.gate(info(), None, min_free_mb=1)['code'] == 'preflight_unknown'


def test_a_server_that_cannot_be_queried_is_unknown():
    verdict = preflight.gate({'unreachable': True, 'msg': 'ssh refused'}, DF, min_free_mb=1)
    assert (verdict['code'], verdict['reason']) == ('preflight_unknown', 'the server could not be queried before its wave: ssh refused')
    assert preflight.gate({'failed': True}, DF)['code'] == 'preflight_unknown'


@pytest.mark.parametrize(
    'server, allowed, code',
    [
        (info('reboot_required'), False, 'preflight_reboot_pending'),
        (info('update_available', staged='1.2'), False, 'preflight_reboot_pending'),
        (info('reboot_required', staged='1.2'), True, None),  # this rollout restarts such servers (reboot_pending + allow_reboot)
    ],
)
def test_staged_firmware_waiting_for_a_restart(server, allowed, code):
    assert preflight.gate(server, DF, reboot_pending_allowed=allowed)['code'] == code


def test_staged_reason_names_the_modules():
    assert preflight.gate(info(staged='1.2'), DF)['reason'] == 'staged firmware (system-bios) waits for a restart: restart the server first'


def test_a_running_agent_job_or_an_unfinished_bmc_task_is_a_busy_queue():
    running = preflight.gate(info(job={'job_id': 'j7', 'state': 'running', 'done': 1, 'total': 3}), DF)
    assert (running['code'], running['reason']) == ('preflight_queue_busy', 'the agent job j7 is still running (1 of 3 done)')
    assert preflight.gate(info(job={'job_id': 'j7', 'state': 'finished'}), DF)['passed']
    tasks = [{'url': '/t/1', 'state': 'Completed'}, {'url': '/t/2', 'state': 'Running'}]
    assert preflight.gate(info(tasks=tasks), DF)['reason'] == 'the BMC has 1 task(s) not done (/t/2 Running)'
    assert preflight.gate(info(tasks=[{'state': 'Completed'}, {'state': 'Exception'}]), DF)['passed']
    assert preflight.gate(info(tasks=None), DF)['passed']  # over IPMI: no task service


def test_the_window_must_still_be_open():
    verdict = preflight.gate(info(), DF, windows=CLOSED, now=NOW)
    assert verdict['code'] == 'preflight_window_closed' and verdict['reason'].startswith(
        'outside every maintenance window; the next window long enough starts 2026-12-05T18:00:00Z'
    )
    assert preflight.gate(info(), DF, windows=[], now=NOW)['code'] == 'preflight_window_closed'  # windows given, none left
    assert (
        preflight.gate(info(), DF, window_error='not iCalendar (window_invalid)')['reason']
        == 'the maintenance windows cannot be read: not iCalendar (window_invalid)'
    )
    with pytest.raises(ValueError):
        preflight.gate(info(), DF, windows=OPEN)


def test_the_first_refusal_is_the_verdict():
    everything_wrong = info('reboot_required', staged='1.2', job={'state': 'running'})
    assert preflight.gate(everything_wrong, DF, min_free_mb=10**9, windows=CLOSED, now=NOW)['code'] == 'preflight_disk_low'
    assert preflight.gate(everything_wrong, DF, windows=CLOSED, now=NOW)['code'] == 'preflight_reboot_pending'
    assert preflight.gate(everything_wrong, DF, reboot_pending_allowed=True, windows=CLOSED, now=NOW)['code'] == 'preflight_queue_busy'


# --- review findings of issue 13 (13.4): each of these passed the gate, raised or read wrongly before ---


def test_a_failed_exup_info_refuses_even_with_a_server_status():
    # the role registers exup_info with failed_when: false: then only the error code says it failed
    failed = dict(info(), failed=True, msg='BMC 127.0.0.1 answered /redfish/v1/ with a list')
    verdict = preflight.gate(failed, DF)
    assert (verdict['passed'], verdict['code']) == (False, 'preflight_unknown')
    assert verdict['reason'] == 'the server could not be queried before its wave: BMC 127.0.0.1 answered /redfish/v1/ with a list'
    kept = dict(info(), failed=False, failed_when_result=False, error='bmc_protocol', msg='Members is a str')
    assert preflight.gate(kept, DF)['reason'] == 'the server could not be queried before its wave: Members is a str (bmc_protocol)'
    assert preflight.gate(dict(info(), unreachable=True), DF)['code'] == 'preflight_unknown'


@pytest.mark.parametrize(
    'line',
    [
        '//server/my share 41152736 30000000 11152736 73% /mnt/my share',  # a CIFS share: spaces in the device and the mount
        'my device 41152736 30000000 11152736 73% /',
        '/dev/sda1 41152736 30000000 11152736 73% /mnt/disk 2 3 4 5%',  # numbers in the mount point: read from the right
    ],
)
def test_free_mb_reads_names_with_spaces(line):
    assert preflight.free_mb('Filesystem 1024-blocks Used Available Capacity Mounted on\n%s\n' % line) == 11152736 // 1024


def test_free_mb_refuses_lines_without_the_numbers():
    for unreadable in ('Filesystem x\n/dev/x 1 2 3 /\n', 'Filesystem x\n1 2 3 4%\n', 'Filesystem x\n/dev/x 1 2 -3 4% /\n'):
        assert preflight.free_mb(unreadable) is None


@pytest.mark.parametrize(
    'tasks, state',
    [
        ([{'url': '/t/1'}], '/t/1 Unknown'),  # no TaskState
        ([{'url': '/t/1', 'state': None}], '/t/1 Unknown'),
        ([{'url': '/t/1', 'state': 'Unknown'}], '/t/1 Unknown'),  # the client's word for a state not read
        ([{'url': '/t/1', 'state': 'Blocked'}], '/t/1 Blocked'),  # not in the schema
        ([{'url': '/t/1', 'state': ['Running']}], '/t/1 Unknown'),
        (['/t/1'], 'None Unknown'),
    ],
)
def test_a_task_of_unknown_state_keeps_the_queue_busy(tasks, state):
    verdict = preflight.gate(info(tasks=tasks), DF)
    assert (verdict['code'], verdict['reason']) == ('preflight_queue_busy', 'the BMC has 1 task(s) not done (%s)' % state)


@pytest.mark.parametrize(
    'answer, reason',
    [
        ({'server_status': 'latest', 'modules': ['system-bios']}, 'modules is a list, not a mapping of module ids'),
        ({'server_status': 'latest', 'bmc': 'redfish'}, 'bmc is a str, not a mapping'),
        ({'server_status': 'latest', 'bmc': {'tasks': {'/t/1': 'Running'}}}, 'bmc.tasks is a dict, not a list'),
        ({'server_status': 'latest', 'active_job': 'j7'}, 'active_job is a str, not a mapping'),
    ],
)
def test_hostile_shapes_are_unknown_not_a_traceback(answer, reason):
    verdict = preflight.gate(answer, DF)
    assert (verdict['code'], verdict['reason']) == ('preflight_unknown', 'the answer of exup_info cannot be judged: %s' % reason)


@pytest.mark.parametrize(
    'settings, problems',
    [
        ({'preflight_min_free_mb': 100, 'preflight_timeout': 60}, []),
        ({'preflight_min_free_mb': '0', 'preflight_timeout': '1'}, []),
        ({}, []),
        (
            {'preflight_min_free_mb': '100MB', 'preflight_timeout': -5},
            [
                "rollout_preflight_min_free_mb must be a whole number of MB (0 or more, 0 skips the disk check), not '100MB'.",
                'rollout_preflight_timeout must be a whole number of seconds of at least 1, not -5.',
            ],
        ),
        (
            {'option_prefix': 'fleet', 'preflight_min_free_mb': -1},
            ['fleet_preflight_min_free_mb must be a whole number of MB (0 or more, 0 skips the disk check), not -1.'],
        ),
        ({'preflight_timeout': 0}, ['rollout_preflight_timeout must be a whole number of seconds of at least 1, not 0.']),
        ({'preflight_timeout': '1.5'}, ["rollout_preflight_timeout must be a whole number of seconds of at least 1, not '1.5'."]),
        ({'preflight_timeout': True}, ['rollout_preflight_timeout must be a whole number of seconds of at least 1, not True.']),
        ({'preflight_min_free_mb': None}, ['rollout_preflight_min_free_mb must be a whole number of MB (0 or more, 0 skips the disk check), not None.']),
    ],
)
def test_the_gate_settings_are_checked_before_any_server(settings, problems):
    assert preflight.check(settings) == problems


@pytest.mark.parametrize(
    'settings, allowed',
    [
        ({'state': 'absent'}, True),
        ({'state': 'present', 'reboot_pending': True, 'allow_reboot': True}, True),
        ({'state': 'present', 'reboot_pending': True, 'allow_reboot': False}, False),
        ({'state': 'present', 'reboot_pending': 'yes', 'allow_reboot': True}, False),  # the role passes booleans (| bool)
        ({'reboot_pending_allowed': True, 'state': 'present'}, True),
        ({}, False),
    ],
)
def test_reboot_pending_allowed_is_decided_here(settings, allowed):
    assert preflight.reboot_pending_allowed(settings) is allowed
    verdict = preflight.evaluate({'info': info('reboot_required'), 'df': {'rc': 0, 'stdout': DF}}, dict(settings, min_free_mb=1), NOW)
    assert verdict['code'] == (None if allowed else 'preflight_reboot_pending') and verdict['checks']['free_mb'] == 10891


def test_evaluate_reads_df_only_when_it_ran_and_checks_a_hosts_own_settings():
    for disk in ({'rc': 1, 'stdout': DF}, {'failed': True, 'msg': 'Timed out'}, None):
        assert preflight.evaluate({'info': info(), 'df': disk}, {'min_free_mb': '1'}, NOW)['code'] == 'preflight_unknown'
    with pytest.raises(ValueError, match=r'^apply_preflight_min_free_mb must be a whole number'):
        preflight.evaluate({'info': info()}, {'min_free_mb': -1, 'option_prefix': 'apply'}, NOW)
    with pytest.raises(ValueError, match=r'^rollout_preflight_timeout must be'):
        preflight.evaluate({'info': info()}, {'timeout': 0}, NOW)


def test_evaluate_reads_the_windows_at_the_time_given():
    pytest.importorskip('icalendar')
    pytest.importorskip('recurring_ical_events')
    text = (
        'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//exup//test//EN\r\nBEGIN:VEVENT\r\nUID:w\r\n'
        'DTSTART:20261204T210000Z\r\nDTEND:20261204T230000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n'
    )
    assert preflight.evaluate({'info': info()}, {'windows': text}, NOW)['checks']['window'] == 'window_open'
    assert preflight.evaluate({'info': info()}, {'windows': [text]}, NOW + datetime.timedelta(hours=2))['code'] == 'preflight_window_closed'
    broken = preflight.evaluate({'info': info()}, {'windows': ['not a calendar']}, NOW)
    assert broken['code'] == 'preflight_window_closed' and broken['reason'].startswith('the maintenance windows cannot be read: ')
