# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the repository service downloads from the vendor feed by itself (003 §3.3 4-(ア)-①, §3.4.1): pure rules, no I/O.

The repository's settings give an interval in hours and a time of day (UTC). The runs are fixed slots
on the clock, computed from the settings alone, never from when the service started: a restart or a
slow run never moves them.

- An interval of at most 24 hours repeats within each day from ``at``: 6 h at 03:00 is 03:00, 09:00,
  15:00, 21:00, and the next day starts at 03:00 again (an interval that does not divide 24, 5 h, has a
  shorter last gap before the next day's 03:00).
- A longer interval counts from a fixed epoch (1970-01-01 at ``at``): 48 h is every other day at ``at``,
  the same days whatever day the setting was made.

A slot missed while the service was down is due at once, but only one run stands for all the missed
slots (no catch-up storm). Without a last run (never run), or with one in the future (the clock was
stepped back), nothing counts from it: the next slot after now is due, during DUE_WINDOW after it
starts, except the slot that future run already was; the next run then counts as usual.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

INTERVAL_SETTING = 'download_interval_hours'
AT_SETTING = 'download_at'
MAX_INTERVAL_HOURS = 744  # 31 days: the longest month
DEFAULT_AT = '03:00'
AT_FORMAT = re.compile(r'(?:[01][0-9]|2[0-3]):[0-5][0-9]\Z')
INTERVAL_TEXT = re.compile(r'[0-9]{1,4}\Z')  # settings are stored as text; leading zeros are harmless
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
#: without a past run to count from, a slot is due this long after it starts (the scheduler wakes at it)
DUE_WINDOW = datetime.timedelta(minutes=15)
VALUE_LIMIT = 40  # characters of a bad value quoted in a message

INTERVAL_RULE = '%s must be 0 (no scheduled download) or a whole number of hours from 1 to %d (31 days)' % (INTERVAL_SETTING, MAX_INTERVAL_HOURS)
AT_RULE = '%s must be the time of day of the first run, UTC, as HH:MM from 00:00 to 23:59' % AT_SETTING


@dataclasses.dataclass(frozen=True)
class DownloadSchedule:
    """The automatic download's settings: every ``interval_hours`` (0: off) from ``at`` ("HH:MM", UTC)."""

    interval_hours: int = 0
    at: str = DEFAULT_AT

    def __post_init__(self) -> None:
        # Checked here too, so that no invalid schedule exists however it was made.
        _check_interval(self.interval_hours)
        _check_at(self.at)

    @classmethod
    def from_settings(cls, settings: dict) -> DownloadSchedule:
        """The schedule of the repository's settings (other settings are ignored); a missing one takes its default.

        A bad value is ExupError setting_invalid naming the setting and its rule.
        """
        if not isinstance(settings, dict):
            raise ExupError('the repository settings must be a mapping of setting names to values', code='setting_invalid')
        interval = settings.get(INTERVAL_SETTING, 0)
        if isinstance(interval, str) and INTERVAL_TEXT.match(interval):
            interval = int(interval)
        return cls(interval_hours=interval, at=settings.get(AT_SETTING, DEFAULT_AT))

    @property
    def enabled(self) -> bool:
        return self.interval_hours > 0

    def as_settings(self) -> dict[str, str]:
        """The settings that give this schedule back, as the repository stores settings (text)."""
        return {INTERVAL_SETTING: str(self.interval_hours), AT_SETTING: self.at}

    @property
    def interval(self) -> datetime.timedelta:
        """The time between two slots."""
        return datetime.timedelta(hours=self.interval_hours)

    @property
    def at_offset(self) -> datetime.timedelta:
        """``at`` as the time after midnight UTC."""
        hours, minutes = self.at.split(':')
        return datetime.timedelta(hours=int(hours), minutes=int(minutes))


def _bad_value(value: object) -> str:
    return repr(value)[:VALUE_LIMIT]


def _check_interval(value: object) -> None:
    # bool is an int to Python, but True is no number of hours
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INTERVAL_HOURS:
        raise ExupError('%s, not %s' % (INTERVAL_RULE, _bad_value(value)), code='setting_invalid', setting=INTERVAL_SETTING)


def _check_at(value: object) -> None:
    if not isinstance(value, str) or not AT_FORMAT.match(value):
        raise ExupError('%s, not %s' % (AT_RULE, _bad_value(value)), code='setting_invalid', setting=AT_SETTING)


def _utc(moment: datetime.datetime, name: str) -> datetime.datetime:
    """``moment`` in UTC; a naive datetime is refused (its zone is a guess that shifts every slot)."""
    if not isinstance(moment, datetime.datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ExupError('%s must be an aware datetime (UTC), not %s' % (name, _bad_value(moment)), code='argument_invalid')
    return moment.astimezone(datetime.timezone.utc)


def _cycle_start(schedule: DownloadSchedule, moment: datetime.datetime) -> datetime.datetime:
    """The start of the cycle ``moment`` is in: the latest day's ``at`` (interval <= 24 h) or epoch slot (longer) at or before it."""
    if schedule.interval_hours <= 24:
        start = datetime.datetime.combine(moment.date(), datetime.time(tzinfo=datetime.timezone.utc)) + schedule.at_offset
        return start if start <= moment else start - DAY
    anchor = EPOCH + schedule.at_offset
    return anchor + ((moment - anchor) // schedule.interval) * schedule.interval


def slot_at_or_before(schedule: DownloadSchedule, moment: datetime.datetime) -> datetime.datetime:
    """The latest slot of an enabled ``schedule`` at or before ``moment``."""
    start = _cycle_start(schedule, moment)
    return start + ((moment - start) // schedule.interval) * schedule.interval


def slot_after(schedule: DownloadSchedule, moment: datetime.datetime) -> datetime.datetime:
    """The first slot of an enabled ``schedule`` strictly after ``moment``."""
    start = _cycle_start(schedule, moment)
    following = slot_at_or_before(schedule, moment) + schedule.interval
    if schedule.interval_hours < 24:
        # a day's slots end at the next day's ``at`` (the short last gap of an interval not dividing 24)
        following = min(following, start + DAY)
    return following


def next_run(schedule: DownloadSchedule, last_run: datetime.datetime | None, now: datetime.datetime) -> datetime.datetime | None:
    """When the next automatic download is due (None: the schedule is off). At or before ``now`` means now.

    - slots missed since ``last_run``: the latest of them, so one run stands for them all;
    - else the first slot after ``last_run``;
    - no last run to count from (None, or one after ``now``: the clock was stepped back): see ``_next_without_record``.
    """
    if not schedule.enabled:
        return None
    now = _utc(now, 'now')
    if last_run is not None:
        last_run = _utc(last_run, 'last_run')
        if last_run <= now:
            following = slot_after(schedule, last_run)
            return following if following > now else slot_at_or_before(schedule, now)
    return _next_without_record(schedule, last_run, now)


def _next_without_record(schedule: DownloadSchedule, future_run: datetime.datetime | None, now: datetime.datetime) -> datetime.datetime:
    """The next run when no past run counts: the slot ``now`` is in while it is fresh (DUE_WINDOW), else the next slot.

    Counting from ``now`` alone would never be due (the next slot recedes as now advances), and waiting
    for the clock to pass a ``future_run`` could take months. So a slot is due for DUE_WINDOW after it
    starts: a scheduler that sleeps until ``next_run`` wakes inside it. The slot ``future_run`` is in
    has had its run (a small step back right after a run must not repeat it).
    """
    done = slot_at_or_before(schedule, future_run) if future_run is not None else None
    current = slot_at_or_before(schedule, now)
    if now - current < DUE_WINDOW and current != done:
        return current
    candidate = slot_after(schedule, now)
    return slot_after(schedule, candidate) if candidate == done else candidate


def due(schedule: DownloadSchedule, last_run: datetime.datetime | None, now: datetime.datetime) -> bool:
    """True when the automatic download should start now."""
    moment = next_run(schedule, last_run, now)
    return moment is not None and moment <= _utc(now, 'now')
