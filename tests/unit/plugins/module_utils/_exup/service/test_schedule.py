# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The automatic download's schedule (service/schedule.py): its settings, its slots, when a run is due."""

from __future__ import annotations

import copy
import datetime
import random

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.schedule import (
    DownloadSchedule,
    due,
    next_run,
    slot_after,
    slot_at_or_before,
)

UTC = datetime.timezone.utc
HOUR = datetime.timedelta(hours=1)


def at(text: str) -> datetime.datetime:
    """A UTC moment from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def slots(schedule: DownloadSchedule, start: datetime.datetime, count: int) -> list[datetime.datetime]:
    found = []
    for _index in range(count):
        start = slot_after(schedule, start)
        found.append(start)
    return found


# --- the settings ---


@pytest.mark.parametrize(
    ('settings', 'interval', 'time'),
    [
        ({}, 0, '03:00'),
        ({'download_interval_hours': 24, 'download_at': '03:00'}, 24, '03:00'),
        ({'download_interval_hours': '6', 'download_at': '00:00'}, 6, '00:00'),  # the repository stores text
        ({'download_interval_hours': '0744', 'download_at': '23:59'}, 744, '23:59'),
        ({'download_interval_hours': 1, 'initial_manual_icon': 'latest'}, 1, '03:00'),  # other settings are not the schedule's
    ],
)
def test_from_settings(settings, interval, time):
    schedule = DownloadSchedule.from_settings(settings)
    assert (schedule.interval_hours, schedule.at) == (interval, time)
    assert DownloadSchedule.from_settings(schedule.as_settings()) == schedule


@pytest.mark.parametrize(
    ('settings', 'words'),
    [
        (
            {'download_interval_hours': -1},
            'download_interval_hours must be 0 (no scheduled download) or a whole number of hours from 1 to 744 (31 days), not -1',
        ),
        ({'download_interval_hours': 745}, 'from 1 to 744 (31 days), not 745'),
        ({'download_interval_hours': '745'}, 'from 1 to 744 (31 days), not 745'),
        ({'download_interval_hours': '-1'}, "from 1 to 744 (31 days), not '-1'"),
        ({'download_interval_hours': ' 6'}, "not ' 6'"),
        ({'download_interval_hours': '6\n'}, "not '6\\n'"),
        ({'download_interval_hours': ''}, "not ''"),
        ({'download_interval_hours': 1.5}, 'not 1.5'),
        ({'download_interval_hours': True}, 'not True'),
        ({'download_interval_hours': None}, 'not None'),
        ({'download_interval_hours': '9' * 100000}, 'download_interval_hours must be 0'),
        ({'download_at': '3:00'}, "download_at must be the time of day of the first run, UTC, as HH:MM from 00:00 to 23:59, not '3:00'"),
        ({'download_at': '24:00'}, "not '24:00'"),
        ({'download_at': '03:60'}, "not '03:60'"),
        ({'download_at': '03:00:00'}, "not '03:00:00'"),
        ({'download_at': '03:00\n'}, "not '03:00\\n'"),
        ({'download_at': '\uff10\uff13:\uff10\uff10'}, 'download_at must be the time of day'),  # full-width digits are digits to \d, not here
        ({'download_at': 300}, 'not 300'),
        ({'download_at': None}, 'not None'),
        ({'download_at': 'x' * 100000}, 'download_at must be the time of day'),
    ],
)
def test_bad_setting_is_setting_invalid_and_changes_nothing(settings, words):
    before = copy.deepcopy(settings)
    with pytest.raises(ExupError) as error:
        DownloadSchedule.from_settings(settings)
    assert error.value.code == 'setting_invalid'
    assert words in error.value.msg and len(error.value.msg) < 300
    assert error.value.details['setting'] in settings
    assert settings == before


def test_settings_must_be_a_mapping():
    with pytest.raises(ExupError) as error:
        DownloadSchedule.from_settings(['download_interval_hours'])  # type: ignore[arg-type]
    assert error.value.code == 'setting_invalid' and 'mapping of setting names' in error.value.msg


def test_a_schedule_made_directly_is_checked_too():
    with pytest.raises(ExupError) as error:
        DownloadSchedule(interval_hours=1000, at='03:00')
    assert error.value.code == 'setting_invalid' and 'not 1000' in error.value.msg


# --- the slots ---


def test_every_day_at_the_time():
    assert slots(DownloadSchedule(24, '03:00'), at('2025-01-10 12:00'), 3) == [at('2025-01-11 03:00'), at('2025-01-12 03:00'), at('2025-01-13 03:00')]


def test_six_hours_from_three_in_the_morning():
    expected = ['2025-01-10 15:00', '2025-01-10 21:00', '2025-01-11 03:00', '2025-01-11 09:00', '2025-01-11 15:00']
    assert slots(DownloadSchedule(6, '03:00'), at('2025-01-10 12:00'), 5) == [at(text) for text in expected]
    assert slot_after(DownloadSchedule(6, '03:00'), at('2025-01-11 01:00')) == at('2025-01-11 03:00')  # before the day's first run


def test_an_interval_not_dividing_the_day_starts_each_day_at_the_time():
    expected = ['2025-01-10 23:00', '2025-01-11 03:00', '2025-01-11 08:00', '2025-01-11 13:00', '2025-01-11 18:00', '2025-01-11 23:00', '2025-01-12 03:00']
    assert slots(DownloadSchedule(5, '03:00'), at('2025-01-10 19:00'), 7) == [at(text) for text in expected]


def test_every_other_day_counts_from_a_fixed_epoch():
    schedule = DownloadSchedule(48, '03:00')
    # 2024-02-29 is day 19782 after 1970-01-01 (even): the slots are on even days, whenever asked
    expected = [at('2024-02-29 03:00'), at('2024-03-02 03:00'), at('2024-03-04 03:00')]
    assert slots(schedule, at('2024-02-27 03:00'), 3) == expected
    assert slots(schedule, at('2024-02-28 12:00'), 3) == expected
    assert slot_after(schedule, at('2024-02-29 02:59')) == at('2024-02-29 03:00')


def test_a_longer_interval_keeps_its_slots_over_restarts():
    schedule = DownloadSchedule(36, '03:00')
    # 36 h: 03:00 and 15:00 of alternate days, the same series from any moment
    series = slots(schedule, at('2025-01-01 00:00'), 10)
    assert {moment.strftime('%H:%M') for moment in series} == {'03:00', '15:00'}
    assert all(later - earlier == 36 * HOUR for earlier, later in zip(series, series[1:]))
    assert slots(schedule, series[3] - HOUR, 3) == series[3:6]


@pytest.mark.parametrize(
    ('schedule', 'moment', 'expected'),
    [
        (DownloadSchedule(24, '00:00'), '2025-01-10 23:59:59', '2025-01-11 00:00'),  # day boundary
        (DownloadSchedule(24, '00:00'), '2025-01-11 00:00', '2025-01-12 00:00'),  # strictly after a slot
        (DownloadSchedule(24, '23:59'), '2025-01-10 23:59', '2025-01-11 23:59'),
        (DownloadSchedule(1, '00:30'), '2025-01-10 23:45', '2025-01-11 00:30'),
        (DownloadSchedule(1, '00:30'), '2025-01-11 00:15', '2025-01-11 00:30'),
        (DownloadSchedule(24, '03:00'), '2025-01-31 04:00', '2025-02-01 03:00'),  # month ends
        (DownloadSchedule(24, '03:00'), '2025-04-30 04:00', '2025-05-01 03:00'),
        (DownloadSchedule(12, '06:00'), '2025-12-31 19:00', '2026-01-01 06:00'),  # year end
        (DownloadSchedule(24, '03:00'), '2024-02-28 04:00', '2024-02-29 03:00'),  # leap day
        (DownloadSchedule(24, '03:00'), '2024-02-29 04:00', '2024-03-01 03:00'),
        (DownloadSchedule(24, '03:00'), '2023-02-28 04:00', '2023-03-01 03:00'),  # no leap day
        (DownloadSchedule(48, '03:00'), '2100-02-28 04:00', '2100-03-02 03:00'),  # 2100 is no leap year: Feb 28 + 2 days
        (DownloadSchedule(744, '03:00'), '2025-01-10 00:00', '2025-01-31 03:00'),  # day 20119 = 31 * 649 after the epoch
    ],
)
def test_slot_after(schedule, moment, expected):
    assert slot_after(schedule, at(moment)) == at(expected)


def oracle_slots(schedule: DownloadSchedule, first_day: datetime.date, days: int) -> list[datetime.datetime]:
    """Every slot of ``days`` days from ``first_day``, enumerated the slow way (the rules of the module's docstring)."""
    hours, minutes = (int(part) for part in schedule.at.split(':'))
    if schedule.interval_hours <= 24:
        found = []
        for number in range(-1, days + 1):
            start = datetime.datetime.combine(first_day + datetime.timedelta(days=number), datetime.time(hours, minutes, tzinfo=UTC))
            found += [start + step * schedule.interval_hours * HOUR for step in range(24 // schedule.interval_hours + 1) if step * schedule.interval_hours < 24]
        return found
    moment = datetime.datetime(1970, 1, 1, hours, minutes, tzinfo=UTC)
    window_end = datetime.datetime.combine(first_day + datetime.timedelta(days=days + 1), datetime.time(tzinfo=UTC))
    found = []
    while moment < window_end:  # every slot since the epoch, kept from the day before the window on
        if moment.date() >= first_day - datetime.timedelta(days=schedule.interval_hours // 24 + 1):
            found.append(moment)
        moment += schedule.interval_hours * HOUR
    return found


@pytest.mark.parametrize('interval', [1, 2, 3, 5, 6, 7, 8, 11, 12, 13, 23, 24, 25, 36, 47, 48, 72, 168, 743, 744])
@pytest.mark.parametrize('time', ['00:00', '03:00', '13:37', '23:59'])
def test_slots_agree_with_an_enumeration(interval, time):
    schedule = DownloadSchedule(interval, time)
    first_day = datetime.date(2024, 2, 20)  # over a leap day and a month end
    expected = oracle_slots(schedule, first_day, 20)
    lucky = random.Random(interval * 10000 + int(time.replace(':', '')))
    start = datetime.datetime.combine(first_day, datetime.time(tzinfo=UTC))
    moments = [start + datetime.timedelta(seconds=lucky.randrange(20 * 86400)) for _index in range(200)]
    moments += [slot for slot in expected if slot >= start + 48 * HOUR][:50]  # exactly on slots
    for moment in moments:
        if moment < expected[0] or moment >= expected[-1]:
            continue
        assert slot_after(schedule, moment) == min(slot for slot in expected if slot > moment), moment
        assert slot_at_or_before(schedule, moment) == max(slot for slot in expected if slot <= moment), moment


# --- when a run is due ---


def test_off_is_never_due():
    schedule = DownloadSchedule.from_settings({'download_interval_hours': '0'})
    assert next_run(schedule, None, at('2025-01-10 12:00')) is None
    assert next_run(schedule, at('2020-01-01 00:00'), at('2025-01-10 12:00')) is None
    assert not due(schedule, at('2020-01-01 00:00'), at('2025-01-10 12:00'))


def test_never_run_is_due_at_its_first_slot():
    schedule = DownloadSchedule(24, '03:00')
    assert next_run(schedule, None, at('2025-01-10 12:00')) == at('2025-01-11 03:00')
    assert not due(schedule, None, at('2025-01-10 12:00'))
    assert not due(schedule, None, at('2025-01-11 02:59:59'))
    assert due(schedule, None, at('2025-01-11 03:00'))  # waking at the slot, or a little after it
    assert due(schedule, None, at('2025-01-11 03:14:59'))
    assert next_run(schedule, None, at('2025-01-11 03:15')) == at('2025-01-12 03:00')  # 15 min late: the next slot


def scheduler(schedule: DownloadSchedule, last_run, now: datetime.datetime, until: datetime.datetime) -> list[datetime.datetime]:
    """The runs of a scheduler that sleeps until next_run, wakes 2 s late, checks due, and runs for 40 s."""
    runs = []
    while now < until:
        if due(schedule, last_run, now):
            runs.append(now)
            last_run = now
            now += datetime.timedelta(seconds=40)
            continue
        wake = next_run(schedule, last_run, now)
        assert wake is not None
        now = max(now, wake) + datetime.timedelta(seconds=2)
    return runs


@pytest.mark.parametrize('last_run', [None, at('2026-06-01 03:00')], ids=['never-run', 'last-run-in-the-future'])
def test_a_scheduler_without_a_past_run_runs_at_each_slot(last_run):
    runs = scheduler(DownloadSchedule(6, '03:00'), last_run, at('2025-01-10 12:00'), at('2025-01-11 12:00'))
    expected = ['2025-01-10 15:00:02', '2025-01-10 21:00:02', '2025-01-11 03:00:02', '2025-01-11 09:00:02']
    assert runs == [at(text) for text in expected]


def test_a_scheduler_after_downtime_runs_once_then_on_the_slots():
    runs = scheduler(DownloadSchedule(6, '03:00'), at('2025-01-07 03:00'), at('2025-01-10 10:00'), at('2025-01-10 22:00'))
    assert runs == [at('2025-01-10 10:00'), at('2025-01-10 15:00:02'), at('2025-01-10 21:00:02')]


def test_on_schedule():
    schedule = DownloadSchedule(6, '03:00')
    last = at('2025-01-10 09:00:12')  # the 09:00 run, 12 s late
    assert next_run(schedule, last, at('2025-01-10 14:59:59')) == at('2025-01-10 15:00')
    assert not due(schedule, last, at('2025-01-10 14:59:59'))
    assert due(schedule, last, at('2025-01-10 15:00'))


def test_missed_slots_are_one_run_at_once():
    schedule = DownloadSchedule(6, '03:00')
    last = at('2025-01-07 03:00')
    now = at('2025-01-10 10:00')  # 13 slots missed while the service was down
    assert next_run(schedule, last, now) == at('2025-01-10 09:00')
    runs = 0
    while due(schedule, last, now):
        runs += 1
        last = now
        now += datetime.timedelta(seconds=30)  # the run takes 30 s
        assert runs < 5, 'a catch-up storm'
    assert runs == 1
    assert next_run(schedule, last, now) == at('2025-01-10 15:00')


def test_a_run_finishing_past_the_next_slot_is_followed_by_one_more():
    schedule = DownloadSchedule(1, '00:00')
    # the 10:00 run took 70 minutes: the 11:00 slot passed during it, so one run follows at once
    assert next_run(schedule, at('2025-01-10 11:10'), at('2025-01-10 11:10')) == at('2025-01-10 12:00')
    assert due(schedule, at('2025-01-10 10:00'), at('2025-01-10 11:10'))


def test_an_interval_change_takes_the_new_slots():
    last = at('2025-01-10 03:00')  # ran under 24 h at 03:00
    now = at('2025-01-10 05:00')
    assert next_run(DownloadSchedule(24, '03:00'), last, now) == at('2025-01-11 03:00')
    assert next_run(DownloadSchedule(6, '03:00'), last, now) == at('2025-01-10 09:00')
    assert next_run(DownloadSchedule(1, '03:00'), last, now) == at('2025-01-10 05:00')  # two slots passed since: one run, now
    assert due(DownloadSchedule(1, '03:00'), last, now)
    assert next_run(DownloadSchedule(24, '04:00'), last, now) == at('2025-01-10 04:00')  # the time moved behind now: due
    assert next_run(DownloadSchedule(24, '06:00'), last, now) == at('2025-01-10 06:00')
    assert next_run(DownloadSchedule(48, '03:00'), last, now) == at('2025-01-12 03:00')  # 2025-01-10 is an even day (20098)


def test_a_last_run_in_the_future_is_not_waited_for():
    schedule = DownloadSchedule(24, '03:00')
    now = at('2025-01-10 12:00')
    far = at('2026-06-01 03:00')  # the clock was a year and a half ahead at the last run, then corrected
    assert next_run(schedule, far, now) == at('2025-01-11 03:00')
    assert not due(schedule, far, now)
    assert due(schedule, far, at('2025-01-11 03:00:30'))
    assert due(schedule, far, at('2025-01-10 03:10'))  # the clock came back inside a fresh slot: its run is due


def test_a_small_step_back_does_not_repeat_the_slot_just_run():
    schedule = DownloadSchedule(6, '03:00')
    last = at('2025-01-10 03:00:01')  # the 03:00 run started; then the clock stepped back 3 s
    now = at('2025-01-10 02:59:58')
    assert next_run(schedule, last, now) == at('2025-01-10 09:00')
    assert not due(schedule, last, at('2025-01-10 03:00:00'))
    assert not due(schedule, at('2025-01-10 03:00:09'), at('2025-01-10 03:00:05'))  # stepped back within the slot
    assert due(schedule, last, at('2025-01-10 09:00:00'))


def test_times_in_other_zones_are_the_same_moments():
    schedule = DownloadSchedule(24, '03:00')
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    now = datetime.datetime(2025, 1, 10, 21, 0, tzinfo=tokyo)  # 12:00 UTC
    assert next_run(schedule, None, now) == at('2025-01-11 03:00')
    assert next_run(schedule, None, now).tzinfo == UTC


@pytest.mark.parametrize('name', ['last_run', 'now'])
def test_naive_times_are_refused(name):
    moments = {'last_run': at('2025-01-10 03:00'), 'now': at('2025-01-10 12:00')}
    moments[name] = moments[name].replace(tzinfo=None)
    with pytest.raises(ExupError) as error:
        next_run(DownloadSchedule(24, '03:00'), moments['last_run'], moments['now'])
    assert error.value.code == 'argument_invalid' and '%s must be an aware datetime (UTC)' % name in error.value.msg


@pytest.mark.parametrize('interval', [1, 5, 24, 36, 744])
def test_next_run_is_after_the_last_run_or_due(interval):
    schedule = DownloadSchedule(interval, '13:37')
    lucky = random.Random(interval)
    base = at('2024-02-01 00:00')
    for _index in range(300):
        last = base + datetime.timedelta(seconds=lucky.randrange(90 * 86400))
        now = last + datetime.timedelta(seconds=lucky.randrange(40 * 86400))
        moment = next_run(schedule, last, now)
        assert moment > last
        assert (moment <= now) == (slot_after(schedule, last) <= now)
        assert moment <= now or moment == slot_after(schedule, now)
