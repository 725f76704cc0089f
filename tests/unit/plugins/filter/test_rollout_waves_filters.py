# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters of plugins/filter/rollout_waves.py: the role's data in, the rules' answers out."""

from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.exup.fleet.plugins.filter import rollout_waves

DF = {'rc': 0, 'stdout': 'Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 4000000 1000000 3000000 25% /\n'}
INFO = {'server_status': 'update_available', 'modules': {}}


def calendar(start, end) -> str:
    stamp = '%Y%m%dT%H%M%SZ'
    return (
        'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//exup//test//EN\r\nBEGIN:VEVENT\r\nUID:w\r\n'
        f'DTSTART:{start.strftime(stamp)}\r\nDTEND:{end.strftime(stamp)}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n'
    )


def test_the_filters_are_registered():
    assert sorted(rollout_waves.FilterModule().filters()) == [
        'rollout_gated',
        'rollout_preflight',
        'rollout_wave_halt',
        'rollout_waves_check',
        'rollout_waves_summary',
    ]


def test_preflight_reads_df_and_skips_what_is_not_asked():
    assert rollout_waves.rollout_preflight({'info': INFO, 'df': DF}, {'min_free_mb': 100})['checks']['free_mb'] == 2929
    assert rollout_waves.rollout_preflight({'info': INFO, 'df': DF}, {'min_free_mb': 10000})['code'] == 'preflight_disk_low'
    # df failed or ran out of time: unknown; df skipped and no threshold: not checked
    assert rollout_waves.rollout_preflight({'info': INFO, 'df': {'failed': True, 'msg': 'Timed out'}}, {'min_free_mb': 1})['code'] == 'preflight_unknown'
    assert rollout_waves.rollout_preflight({'info': INFO, 'df': {'skipped': True}}, {'min_free_mb': 0})['passed']
    with pytest.raises(AnsibleFilterError):
        rollout_waves.rollout_preflight({'info': INFO}, {'min_free_mb': 'lots'})
    # a host's own value: "100MB" or a negative threshold was taken as 0 (no disk check), a bad deadline as none
    for bad in ({'min_free_mb': '100MB'}, {'min_free_mb': -1}, {'min_free_mb': 1, 'timeout': 'soon'}, {'timeout': -5, 'option_prefix': 'apply'}):
        with pytest.raises(AnsibleFilterError, match='must be a whole number'):
            rollout_waves.rollout_preflight({'info': INFO, 'df': DF}, bad)
    assert rollout_waves.rollout_preflight({'info': INFO, 'df': DF}, {'min_free_mb': '100', 'timeout': '60'})['checks']['free_mb'] == 2929
    with pytest.raises(AnsibleFilterError):
        rollout_waves.rollout_preflight([], {})


def test_preflight_reads_the_windows():
    pytest.importorskip('icalendar')
    pytest.importorskip('recurring_ical_events')
    now = datetime.datetime.now(datetime.UTC)
    hour = datetime.timedelta(hours=1)
    assert rollout_waves.rollout_preflight({'info': INFO}, {'windows': [calendar(now - hour, now + hour)]})['checks']['window'] == 'window_open'
    closed = rollout_waves.rollout_preflight({'info': INFO}, {'windows': calendar(now - 3 * hour, now - hour)})  # one text is a list of one
    assert closed['code'] == 'preflight_window_closed'
    broken = rollout_waves.rollout_preflight({'info': INFO}, {'windows': ['not a calendar']})
    assert broken['code'] == 'preflight_window_closed' and '(window_invalid)' in broken['reason']


def test_rows_and_settings_must_be_what_the_role_passes():
    with pytest.raises(AnsibleFilterError):
        rollout_waves.rollout_wave_halt('rows', {})
    with pytest.raises(AnsibleFilterError):
        rollout_waves.rollout_waves_summary([1], {})
    with pytest.raises(AnsibleFilterError):
        rollout_waves.rollout_gated({}, [], {})
    assert rollout_waves.rollout_waves_check({'serial': [1, '25%']}) == []
    assert rollout_waves.rollout_waves_check({'serial': 1, 'preflight_min_free_mb': '100MB', 'preflight_timeout': -1, 'option_prefix': 'apply'}) == [
        "apply_preflight_min_free_mb must be a whole number of MB (0 or more, 0 skips the disk check), not '100MB'.",
        'apply_preflight_timeout must be a whole number of seconds of at least 1, not -1.',
    ]
    assert rollout_waves.rollout_gated({'held_back': False}, {}, {})['code'] is None
    assert rollout_waves.rollout_wave_halt([{'failed': True}], {'max_fail_percentage': 0}, 1)['code'] == 'max_fail_percentage'
