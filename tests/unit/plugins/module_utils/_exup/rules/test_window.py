# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance windows (rules/window.py): midnight, DST, weekly RRULE, EXDATE, fitting, history, hostile calendars."""

from __future__ import annotations

import datetime
import time

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import window

pytest.importorskip('icalendar')
pytest.importorskip('recurring_ical_events')

UTC = datetime.timezone.utc


def ics(*events: str) -> str:
    body = ''.join('BEGIN:VEVENT\r\nUID:w%d\r\n%s\r\nEND:VEVENT\r\n' % (number, event.strip().replace('\n', '\r\n')) for number, event in enumerate(events))
    return 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//exup//test//EN\r\n' + body + 'END:VCALENDAR\r\n'


def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=UTC)


# Saturday 23:00 to Sunday 02:00, Berlin time, every week; 2026-12-05 left out
WEEKLY = ics(
    '\n'.join(
        (
            'DTSTART;TZID=Europe/Berlin:20261031T230000',
            'DTEND;TZID=Europe/Berlin:20261101T020000',
            'RRULE:FREQ=WEEKLY;BYDAY=SA',
            'EXDATE;TZID=Europe/Berlin:20261205T230000',
        )
    )
)


def verdict(text, now, seconds):
    return window.verdict(window.occurrences([text], now), now, seconds)


def test_across_midnight_open_and_fits():
    now = at(2026, 11, 28, 23, 30)  # Sunday 00:30 in Berlin (UTC+1)
    got = verdict(WEEKLY, now, 1800)
    assert got['may_start'] and got['code'] == 'window_open'
    assert got['window_end'] == '2026-11-29T01:00:00Z'


def test_does_not_fit_before_the_end():
    now = at(2026, 11, 29, 0, 50)  # 10 minutes left
    got = verdict(WEEKLY, now, 600 + 1)
    assert not got['may_start'] and got['code'] == 'window_too_short'
    assert got['window_end'] == '2026-11-29T01:00:00Z'
    assert got['next_start'] == '2026-12-12T22:00:00Z'  # 2026-12-05 is an EXDATE
    assert verdict(WEEKLY, now, 600)['may_start']  # ends exactly at the window's end


def test_exdate_leaves_the_week_out():
    got = verdict(WEEKLY, at(2026, 12, 5, 23, 0), 60)
    assert got['code'] == 'outside_window' and got['next_start'] == '2026-12-12T22:00:00Z'


def test_dst_keeps_local_time():
    # summer (UTC+2): Saturday 23:00 Berlin is 21:00 UTC; winter (UTC+1) it is 22:00 UTC
    text = ics('DTSTART;TZID=Europe/Berlin:20260704T230000\nDTEND;TZID=Europe/Berlin:20260705T010000\nRRULE:FREQ=WEEKLY;BYDAY=SA')
    assert verdict(text, at(2026, 10, 24, 21, 30), 600)['window_end'] == '2026-10-24T23:00:00Z'
    assert verdict(text, at(2026, 10, 31, 21, 30), 600)['code'] == 'outside_window'  # after the change: 22:00 UTC
    assert verdict(text, at(2026, 10, 31, 22, 30), 600)['window_end'] == '2026-11-01T00:00:00Z'


def test_two_events_touching_at_midnight_are_one_window():
    text = ics('DTSTART:20261203T220000Z\nDTEND:20261204T000000Z', 'DTSTART:20261204T000000Z\nDTEND:20261204T020000Z')
    got = verdict(text, at(2026, 12, 3, 23, 0), 2 * 3600)
    assert got['may_start'] and got['window_end'] == '2026-12-04T02:00:00Z'


def test_no_window_at_all_ahead():
    got = verdict(ics('DTSTART:20261203T220000Z\nDTEND:20261203T230000Z'), at(2026, 12, 4, 6, 0), 60)
    assert got['code'] == 'outside_window' and got['next_start'] is None and 'no window long enough' in got['reason']


def test_next_start_skips_windows_too_short():
    text = ics('DTSTART:20261205T000000Z\nDTEND:20261205T001000Z', 'DTSTART:20261206T000000Z\nDTEND:20261206T020000Z')
    assert verdict(text, at(2026, 12, 4, 6, 0), 3600)['next_start'] == '2026-12-06T00:00:00Z'


@pytest.mark.parametrize(
    'text',
    [
        'not a calendar',
        '',
        ics('DTEND:20261204T000000Z'),  # no DTSTART
        ics('DTSTART:20261204T020000Z\nDTEND:20261204T010000Z'),  # ends before it starts
        ics('DTSTART:20261204T000000Z\nDTEND:20261204T000100Z\nRRULE:FREQ=SECONDLY'),
        ics('DTSTART:20261204T000000Z\nDTEND:20261204T000100Z\nRRULE:FREQ=MINUTELY;COUNT=99999999'),
        ics('DTSTART:19700101T000000Z\nDTEND:19700101T010000Z\nRRULE:FREQ=DAILY'),  # expansion from 1970
        ics('DTSTART:20261204T000000Z\nDTEND:20261204T000100Z\nRRULE:FREQ=BOGUS'),
        'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n',  # no VEVENT
        'BEGIN:VCALENDAR\r\n' + 'X' * (window.MAX_ICS_CHARS + 1),
    ],
)
def test_hostile_calendars_are_window_invalid_quickly(text):
    started = time.monotonic()
    with pytest.raises(ExupError) as caught:
        window.occurrences([text], at(2026, 12, 4, 6, 0))
    assert caught.value.code == 'window_invalid'
    assert time.monotonic() - started < 3


def test_many_occurrences_are_capped(monkeypatch):
    monkeypatch.setattr(window, 'MAX_OCCURRENCES', 50)
    with pytest.raises(ExupError) as caught:
        window.occurrences([ics('DTSTART:20261204T000000Z\nDTEND:20261204T000100Z\nRRULE:FREQ=DAILY')], at(2026, 12, 4, 6, 0))
    assert caught.value.code == 'window_invalid' and 'occurrences' in str(caught.value)


def test_zero_length_occurrences_count_against_the_cap_and_end_quickly():
    # every minute of the day, no DTEND: each occurrence is empty and kept nowhere, yet it must be counted
    text = ics('DTSTART:20261204T000000Z\nRRULE:FREQ=DAILY;BYHOUR=%s;BYMINUTE=%s' % (','.join(map(str, range(24))), ','.join(map(str, range(60)))))
    with pytest.raises(ExupError) as caught:  # before the fix: no error, after expanding all 576,000 of the horizon
        window.occurrences([text], at(2026, 12, 4, 6, 0))
    assert caught.value.code == 'window_invalid' and 'occurrences' in str(caught.value)


def test_estimate_without_history_is_the_default():
    assert window.estimate_duration([]) == {'seconds': window.DEFAULT_SECONDS, 'basis': 'default', 'runs': 0}
    assert window.estimate_duration([float('nan'), -3], default=900)['seconds'] == 900


def test_estimate_is_the_longest_recent_plus_margin():
    assert window.estimate_duration([10000, 100, 200, 400, 300, 200]) == {'seconds': 500, 'basis': 'history', 'runs': 5}  # 400 + 25 %
    assert window.estimate_duration([30])['seconds'] == 90  # the margin is at least a minute


def test_durations_from_the_log():
    events = [
        {'id': 1, 'time': '2026-12-01T00:00:00Z', 'code': 'apply_started', 'detail': {'server': 'a'}},
        {'id': 2, 'time': '2026-12-01T00:05:00Z', 'code': 'apply_finished', 'detail': {'server': 'a'}},
        {'id': 3, 'time': '2026-12-01T00:06:00Z', 'code': 'apply_started', 'detail': {'server': 'b'}},
        {'id': 4, 'time': '2026-12-01T00:07:00Z', 'code': 'apply_finished', 'detail': {'server': 'b'}},
        {'id': 5, 'time': '2026-12-02T00:00:00Z', 'code': 'apply_started', 'detail': {'server': 'a'}},
        {'id': 6, 'time': '2026-12-02T00:01:00Z', 'code': 'apply_failed', 'detail': {'server': 'a'}},
        {'id': 7, 'time': 'garbage', 'code': 'apply_finished', 'detail': {'server': 'a'}},
    ]
    assert window.apply_durations(reversed(events), 'a') == [300.0]
    assert window.apply_durations(events, 'b') == [60.0]
