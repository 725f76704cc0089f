# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance windows (docs/maintenance-windows.md): may an apply start now, and will it end inside the window?

Windows are iCalendar text (RFC 5545 VEVENTs with DTSTART/DTEND or DURATION, RRULE, RDATE, EXDATE, VTIMEZONE or TZID
names). Parsing and recurrence expansion are the libraries' (icalendar, recurring-ical-events), imported lazily: without
them the error is ``missing_library``. Expansion is bounded: a horizon of HORIZON_DAYS, at most MAX_OCCURRENCES
occurrences, at most MAX_ICS_CHARS of text, so a hostile calendar (FREQ=SECONDLY, no end) ends quickly with
``window_invalid``.

The rest is pure: ``verdict`` over merged (start, end) intervals, ``estimate_duration`` over past apply durations.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

HORIZON_DAYS = 400  # a yearly window is always found once
MAX_OCCURRENCES = 20000  # in the horizon, all calendars together: about one every 30 minutes for a year
MAX_ICS_CHARS = 256 * 1024
REFUSED_FREQ = ('SECONDLY', 'MINUTELY', 'HOURLY')  # their expansion alone takes seconds: windows repeat daily at the finest
MAX_RULE_AGE = datetime.timedelta(days=5 * 365)  # expanding a daily rule from 1970 alone takes 10 s
LOOKBACK = datetime.timedelta(days=8)  # an occurrence that began up to this long ago and is still open counts

#: duration estimate (docs/maintenance-windows.md): the longest of the last HISTORY_RUNS applies, plus the margin
HISTORY_RUNS = 5
MARGIN = 0.25
MIN_MARGIN_SECONDS = 60
DEFAULT_SECONDS = 1800  # no history: half an hour, margin included

UTC = datetime.timezone.utc


@dataclasses.dataclass(frozen=True)
class Interval:
    start: datetime.datetime
    end: datetime.datetime


def _library():
    try:
        import icalendar  # pylint: disable=import-outside-toplevel
        import recurring_ical_events  # type: ignore[import-untyped]  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ExupError(
            'maintenance windows need the Python libraries icalendar (>= 7.0) and recurring-ical-events (>= 3.0) on the controller: %s' % exc,
            code='missing_library',
            library='icalendar' if 'icalendar' in str(exc) and 'recurring' not in str(exc) else 'recurring-ical-events',
        ) from None
    return icalendar, recurring_ical_events


def _aware(value, tz=UTC) -> datetime.datetime:
    """A DTSTART/DTEND value as an aware datetime (a date is its midnight, a floating time is read in ``tz``)."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=tz)
    raise ValueError('not a date or time: %r' % (value,))


def occurrences(texts: typing.Sequence[str], now: datetime.datetime, horizon_days: int = HORIZON_DAYS) -> list[Interval]:
    """The windows of the calendars ``texts`` from shortly before ``now`` to ``now`` + horizon, merged and sorted.

    Errors: ``missing_library``, ``window_invalid`` (not iCalendar, no VEVENT, an event without a start or with its end
    before its start, too many occurrences).
    """
    if now.tzinfo is None:
        raise ValueError('now must be an aware datetime')
    icalendar, recurring = _library()
    earliest, horizon = now - LOOKBACK, now + datetime.timedelta(days=horizon_days)
    found: list[Interval] = []
    counted = 0  # occurrences yielded, kept or not, all calendars together
    for number, text in enumerate(texts, 1):
        if not isinstance(text, str) or not text.strip():
            raise ExupError('maintenance window %d is empty or not text' % number, code='window_invalid', window=number)
        if len(text) > MAX_ICS_CHARS:
            raise ExupError('maintenance window %d is longer than %d characters' % (number, MAX_ICS_CHARS), code='window_invalid', window=number)
        try:
            calendar = icalendar.Calendar.from_ical(text)
            if not calendar.walk('VEVENT'):
                raise ValueError('no VEVENT')
            for event in calendar.walk('VEVENT'):
                if event.get('DTSTART') is None:
                    raise ValueError('a VEVENT without DTSTART')
                if event.get('DTEND') is not None and _aware(event.get('DTEND').dt) < _aware(event.get('DTSTART').dt):
                    raise ValueError('a VEVENT ends before it starts')
                if event.get('RRULE') is not None and _aware(event.get('DTSTART').dt) < now - MAX_RULE_AGE:
                    raise ExupError(
                        'maintenance window %d repeats from more than %d years ago: move its DTSTART forward' % (number, MAX_RULE_AGE.days // 365),
                        code='window_invalid',
                        window=number,
                    )
                for rule in event.get('RRULE') if isinstance(event.get('RRULE'), list) else [event.get('RRULE')]:
                    if rule is not None and str(*(rule.get('FREQ') or [''])).upper() in REFUSED_FREQ:
                        raise ExupError(
                            'maintenance window %d repeats by the %s: windows repeat daily at the finest' % (number, str(*rule.get('FREQ')).lower()[:-2]),
                            code='window_invalid',
                            window=number,
                        )
            # every occurrence counts against the limit, kept or not: zero-length ones would otherwise run unbounded
            for event in recurring.of(calendar).after(earliest):
                counted += 1
                start = _aware(event.get('DTSTART').dt)
                if start > horizon:
                    break
                end = _aware(event.get('DTEND').dt) if event.get('DTEND') is not None else start
                if end < start:
                    raise ValueError('a VEVENT ends before it starts (%s)' % start.isoformat())
                if end > start and end > earliest:
                    found.append(Interval(start.astimezone(UTC), end.astimezone(UTC)))
                if counted > MAX_OCCURRENCES:
                    raise ExupError(
                        'maintenance window %d has more than %d occurrences in %d days: use a coarser RRULE' % (number, MAX_OCCURRENCES, horizon_days),
                        code='window_invalid',
                        window=number,
                    )
        except ExupError:
            raise
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # the libraries raise ValueError, KeyError, TypeError, their own errors on malformed text: one code for all
            raise ExupError(
                'maintenance window %d is not a valid iCalendar calendar: %s' % (number, str(exc)[:300]), code='window_invalid', window=number
            ) from None
    return merge(found)


def merge(intervals: typing.Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching windows as one (a window until midnight and one from midnight are one night)."""
    merged: list[Interval] = []
    for item in sorted(intervals, key=lambda interval: (interval.start, interval.end)):
        if merged and item.start <= merged[-1].end:
            if item.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, item.end)
        else:
            merged.append(item)
    return merged


def _text(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def verdict(windows: typing.Sequence[Interval], now: datetime.datetime, duration_seconds: float) -> dict[str, typing.Any]:
    """May an apply of ``duration_seconds`` start at ``now``? (pure; ``windows`` merged and sorted, see ``occurrences``)

    Returns ``may_start``, ``code`` (window_open, window_too_short, outside_window), ``reason``, ``window_end`` (of the
    window open now, else null), ``next_start`` (the next window long enough for the duration, else null) and
    ``expected_seconds``; times as UTC text.
    """
    need = datetime.timedelta(seconds=max(0.0, float(duration_seconds)))
    current = next((item for item in windows if item.start <= now < item.end), None)
    later = next((item for item in windows if item.start > now and item.end - item.start >= need), None)
    result: dict[str, typing.Any] = {
        'window_end': _text(current.end if current else None),
        'next_start': _text(later.start if later else None),
        'expected_seconds': math.ceil(need.total_seconds()),
    }
    if current and now + need <= current.end:
        return dict(result, may_start=True, code='window_open', reason='inside a maintenance window until %s' % result['window_end'])
    after = ('; the next window long enough starts %s' % result['next_start']) if later else '; no window long enough in the next %d days' % HORIZON_DAYS
    if current:
        left = int((current.end - now).total_seconds())
        reason = 'the maintenance window ends %s, in %d s; the expected %d s do not fit%s' % (result['window_end'], left, result['expected_seconds'], after)
        return dict(result, may_start=False, code='window_too_short', reason=reason)
    return dict(result, may_start=False, code='outside_window', reason='outside every maintenance window%s' % after)


def estimate_duration(
    durations: typing.Sequence[float],
    runs: int = HISTORY_RUNS,
    margin: float = MARGIN,
    default: float = DEFAULT_SECONDS,
) -> dict[str, typing.Any]:
    """Expected seconds of the next apply from past ones (oldest first): the longest of the last ``runs``, plus ``margin``
    (at least MIN_MARGIN_SECONDS); ``default`` without history. Returns seconds, basis (history/default) and runs used."""
    usable = [float(value) for value in durations if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0]
    recent = usable[-runs:] if runs > 0 else []
    if not recent:
        return {'seconds': int(default), 'basis': 'default', 'runs': 0}
    longest = max(recent)
    return {'seconds': math.ceil(longest + max(longest * margin, MIN_MARGIN_SECONDS)), 'basis': 'history', 'runs': len(recent)}


def with_restart(estimate: dict[str, typing.Any], plan: typing.Sequence[dict], allow_reboot: bool, restart_seconds: int) -> dict[str, typing.Any]:
    """The estimate plus the restart that follows the apply, when one is allowed and a planned package needs it.

    A restart after the window closed is the unplanned reboot the window is there to prevent, so the apply must fit
    with it. ``restart_seconds`` is the longest the restart may take (exup_apply's reboot_timeout)."""
    if not allow_reboot or not any(item.get('reboot_required') for item in plan):
        return estimate
    extra = max(0, int(restart_seconds))
    return dict(estimate, seconds=int(estimate['seconds']) + extra, restart_seconds=extra)


def parse_time(text: str) -> datetime.datetime | None:
    """An event's time text (UTC, as the log writes it) as an aware datetime, or None."""
    try:
        value = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except (AttributeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def apply_durations(events: typing.Iterable[dict], server: str) -> list[float]:
    """Seconds of the server's past applies that finished (apply_started to the next apply_finished), oldest first.

    ``events`` are log rows (time, code, detail) in any order; failed and cancelled applies are left out (a failure
    that stopped early says little of how long a full apply takes)."""
    rows = sorted(
        (row for row in events if isinstance(row.get('detail'), dict) and row['detail'].get('server') == server and parse_time(row.get('time', ''))),
        key=lambda row: (parse_time(row['time']), row.get('id', 0)),
    )
    out: list[float] = []
    started = None
    for row in rows:
        if row.get('code') == 'apply_started':
            started = parse_time(row['time'])
        elif row.get('code') in ('apply_finished', 'apply_failed', 'apply_cancelled') and started is not None:
            ended = parse_time(row['time'])
            if row['code'] == 'apply_finished' and ended is not None:
                out.append((ended - started).total_seconds())
            started = None
    return out
