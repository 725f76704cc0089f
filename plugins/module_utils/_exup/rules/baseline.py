# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Baselines and the compliance check (issue 13.1): pure, data in, data out, no I/O.

A baseline is data kept in git and attached to inventory groups by group vars (``exup_baseline``,
docs/baselines.md). It names modules and, for each, a target and a rule:

- target: a version (static), ``previous`` (the version the server ran before its last apply) or
  ``newest`` (dynamic: the newest package the repository has for the server's model and OS, optionally
  only of some severities, released not after a date, or released at least N days ago);
- rule: ``exact`` (the current version is the target), ``not_older`` (the current version is the
  target or newer) or ``ignore`` (never fails; the row says so).

The verdict of a module and of a server is ``pass``, ``fail`` or ``unknown``, with the reason as a
stable code and a sentence. A reading older than the baseline's ``max_reading_age_hours`` (or with no
time) is ``unknown`` for every module: a stale inventory proves nothing. Every input is checked; a bad
baseline raises BaselineError (code ``baseline_invalid``) naming the field, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import typing
from collections.abc import Iterable, Mapping, Sequence

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import compare_versions, version_key

FORMAT = 1
PASS, FAIL, UNKNOWN = 'pass', 'fail', 'unknown'
VERDICTS = (PASS, FAIL, UNKNOWN)
RULES = ('exact', 'not_older', 'ignore')
PREVIOUS, NEWEST = 'previous', 'newest'
SEVERITIES = ('critical', 'recommended', 'optional')  # package.SEVERITIES, the package format's <Severity>
DEFAULT_MAX_AGE_HOURS = 24
MAX_AGE_HOURS_LIMIT = 24 * 366
#: how far in the future a reading may be dated (clock skew) before it is refused as unknown
FUTURE_SKEW = datetime.timedelta(minutes=5)
BASELINE_KEYS = ('name', 'description', 'max_reading_age_hours', 'modules')
ENTRY_KEYS = ('version', 'rule', 'severity', 'released_not_after', 'min_age_days')
_MODULE_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$')
_VERSION = re.compile(r'^[A-Za-z0-9][A-Za-z0-9 ._:+~-]{0,63}$')
_DATE = re.compile(r'^\d{4}-\d{2}-\d{2}$')

#: reason codes of the rows and of the server (docs/baselines.md lists them)
REASONS = {
    'match': 'the current version is the target',
    'not_older': 'the current version is the target or newer',
    'ignored': 'the baseline ignores this module',
    'differs': 'the current version is not the target',
    'older': 'the current version is older than the target',
    'not_installed': 'the server does not have this module',
    'no_previous': 'the server has no previous version of this module',
    'no_package': 'the repository has no package for this module, model and OS that the baseline allows',
    'no_repository': 'a dynamic target needs the repository packages, and none were given',
    'reading_stale': 'the reading is older than the baseline allows',
    'reading_time_unknown': 'the time of the reading is not known',
    'reading_in_future': 'the reading is dated in the future',
    'no_baseline': 'no baseline applies to this server',
    'compliant': 'every module of the baseline passes',
    'modules_fail': 'a module of the baseline fails',
    'modules_unknown': 'a module of the baseline cannot be judged',
    'empty_baseline': 'the baseline names no module',
}


class BaselineError(ExupError):
    def __init__(self, msg: str, field: str, **details: typing.Any):
        super().__init__(msg, code='baseline_invalid', field=field, **details)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One module of a baseline."""

    module_id: str
    version: str  # a version, 'previous' or 'newest'
    rule: str
    severity: tuple[str, ...] = ()  # only with 'newest': allowed severities, () = any
    released_not_after: str | None = None  # only with 'newest': YYYY-MM-DD
    min_age_days: int | None = None  # only with 'newest'

    @property
    def dynamic(self) -> bool:
        return self.version == NEWEST


@dataclasses.dataclass(frozen=True)
class Baseline:
    name: str
    max_reading_age_hours: int
    entries: tuple[Entry, ...]  # sorted by module_id
    sources: tuple[str, ...] = ()  # the names of the baselines combined into this one, in order


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A version the repository offers a server (from PackageInfo or exup_info's versions)."""

    module_id: str
    version: str
    release_date: str = ''
    severity: str | None = None  # None: not known (exup_info's versions do not carry it)


@dataclasses.dataclass(frozen=True)
class Reading:
    """What is known of a server's modules and when it was read."""

    modules: Mapping[str, Mapping[str, typing.Any]]  # module_id -> {'current': v or None, 'previous': v or None}
    read_at: str | None  # ISO 8601 with a zone; None: not known
    model: str = ''
    os: str = ''


# --- the baseline's schema -------------------------------------------------------------------------


def _text(value: typing.Any, field: str, pattern: re.Pattern | None = None, what: str = 'a string') -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BaselineError('%s must be %s, not %s' % (field, what, type(value).__name__), field)
    text = str(value).strip()
    if not text or (pattern is not None and not pattern.match(text)):
        raise BaselineError('%s must be %s, not %r' % (field, what, str(value)[:80]), field)
    return text


def _date(value: typing.Any, field: str) -> str:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()  # YAML reads an unquoted 2026-10-01 as a date
    text = _text(value, field, _DATE, 'a date YYYY-MM-DD')
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise BaselineError('%s must be a real date YYYY-MM-DD, not %r' % (field, text), field) from None
    return text


def _count(value: typing.Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            raise BaselineError('%s must be a whole number from %d to %d' % (field, low, high), field)
    if not low <= value <= high:
        raise BaselineError('%s must be a whole number from %d to %d, not %d' % (field, low, high, value), field)
    return value


def _unknown_keys(data: Mapping, allowed: Sequence[str], where: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise BaselineError('%s has unknown keys %s (allowed: %s)' % (where, ', '.join(unknown), ', '.join(allowed)), where, unknown=unknown)


def parse_entry(module_id: typing.Any, data: typing.Any, where: str) -> Entry:
    """One module's entry: a version string (rule exact) or a mapping of ENTRY_KEYS."""
    module_id = _text(module_id, where, _MODULE_ID, 'a module id')
    where = '%s.%s' % (where, module_id)
    if isinstance(data, (str, int, float)) and not isinstance(data, bool):
        data = {'version': data}
    if not isinstance(data, Mapping):
        raise BaselineError('%s must be a version or a mapping of %s' % (where, ', '.join(ENTRY_KEYS)), where)
    _unknown_keys(data, ENTRY_KEYS, where)
    rule = data.get('rule', 'exact')
    if rule not in RULES:
        raise BaselineError('%s.rule must be one of %s, not %r' % (where, ', '.join(RULES), str(rule)[:40]), where + '.rule')
    if 'version' not in data:
        if rule != 'ignore':
            raise BaselineError('%s.version is required (a version, previous or newest) unless the rule is ignore' % where, where + '.version')
        version = NEWEST
    elif isinstance(data['version'], float):
        # YAML reads an unquoted 2.10 as the number 2.1: the version meant is lost, so it is refused, not guessed
        raise BaselineError(
            '%s.version %r was read as a number: quote it ("%s") so that it stays the version written' % (where, data['version'], data['version']),
            where + '.version',
        )
    else:
        version = _text(data['version'], where + '.version', _VERSION, 'a version, previous or newest')
    lowered = version.lower()
    version = lowered if lowered in (PREVIOUS, NEWEST) else version
    filters = [key for key in ('severity', 'released_not_after', 'min_age_days') if data.get(key) is not None]
    if filters and version != NEWEST:
        raise BaselineError('%s: %s apply only to version newest' % (where, ', '.join(filters)), where + '.' + filters[0])
    severity: tuple[str, ...] = ()
    if data.get('severity') is not None:
        raw = data['severity']
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, Sequence) or not raw or any(item not in SEVERITIES for item in raw):
            raise BaselineError('%s.severity must be one or more of %s' % (where, ', '.join(SEVERITIES)), where + '.severity')
        severity = tuple(sorted(set(raw), key=SEVERITIES.index))
    released = _date(data['released_not_after'], where + '.released_not_after') if data.get('released_not_after') is not None else None
    min_age = _count(data['min_age_days'], where + '.min_age_days', 0, 3660) if data.get('min_age_days') is not None else None
    return Entry(module_id, version, rule, severity, released, min_age)


def parse_baseline(data: typing.Any, where: str = 'baseline') -> Baseline:
    """One baseline mapping (name, description, max_reading_age_hours, modules), checked."""
    if not isinstance(data, Mapping):
        raise BaselineError('%s must be a mapping with name and modules' % where, where)
    _unknown_keys(data, BASELINE_KEYS, where)
    name = _text(data.get('name'), where + '.name', what='a name') if 'name' in data else 'unnamed'
    if data.get('description') is not None:
        _text(data['description'], where + '.description')
    hours = data.get('max_reading_age_hours')
    max_age = DEFAULT_MAX_AGE_HOURS if hours is None else _count(hours, where + '.max_reading_age_hours', 1, MAX_AGE_HOURS_LIMIT)
    modules = data.get('modules')
    if modules is None:
        modules = {}
    if not isinstance(modules, Mapping):
        raise BaselineError('%s.modules must be a mapping of module id to version or entry' % where, where + '.modules')
    entries = [parse_entry(module_id, entry, where + '.modules') for module_id, entry in modules.items()]
    return Baseline(name, max_age, tuple(sorted(entries, key=lambda entry: entry.module_id)), (name,))


def combine(data: typing.Any) -> Baseline | None:
    """The baseline a server sees: None, one baseline, or a list combined in order (a later one wins per module).

    Ansible's variable precedence already decides which group's ``exup_baseline`` a host sees (one value, the
    highest-precedence group's; dicts are replaced, not merged). A list lets a playbook combine several on purpose.
    """
    if data is None:
        return None
    items = list(data) if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) else [data]
    parsed = [parse_baseline(item, 'baseline' if len(items) == 1 else 'baseline[%d]' % number) for number, item in enumerate(items)]
    if not parsed:
        return None
    entries: dict[str, Entry] = {}
    for baseline in parsed:
        entries.update((entry.module_id, entry) for entry in baseline.entries)
    return Baseline(
        name=' + '.join(baseline.name for baseline in parsed),
        max_reading_age_hours=min(baseline.max_reading_age_hours for baseline in parsed),
        entries=tuple(entries[key] for key in sorted(entries)),
        sources=tuple(baseline.name for baseline in parsed),
    )


# --- time ----------------------------------------------------------------------------------------------


def parse_time(text: typing.Any) -> datetime.datetime | None:
    """An ISO 8601 time with a zone (``Z`` or an offset) as an aware datetime; None when it is not one."""
    if isinstance(text, datetime.datetime):
        return text if text.tzinfo else None
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip()
    if value.endswith(('Z', 'z')):
        value = value[:-1] + '+00:00'
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


# --- the verdicts --------------------------------------------------------------------------------------


def choose_target(entry: Entry, candidates: Iterable[Candidate] | None, today: datetime.date) -> tuple[str | None, str | None]:
    """(version, None) of a dynamic entry, or (None, reason code) when no candidate qualifies."""
    if candidates is None:
        return None, 'no_repository'
    best: Candidate | None = None
    for candidate in candidates:
        if candidate.module_id != entry.module_id:
            continue
        if entry.severity and candidate.severity not in entry.severity:
            continue  # a severity not known does not qualify for a severity filter
        if entry.released_not_after is not None and not (candidate.release_date and candidate.release_date <= entry.released_not_after):
            continue
        if entry.min_age_days is not None:
            try:
                released = datetime.date.fromisoformat(candidate.release_date)
            except (TypeError, ValueError):
                continue
            if (today - released).days < entry.min_age_days:
                continue
        if best is None or version_key(candidate.version) > version_key(best.version):
            best = candidate
    return (best.version, None) if best is not None else (None, 'no_package')


def _row(entry: Entry, current: str | None, target: str | None, verdict: str, code: str, age: int | None) -> dict:
    return {
        'module': entry.module_id,
        'current': current,
        'target': target,
        'target_spec': entry.version,
        'rule': entry.rule,
        'verdict': verdict,
        'reason_code': code,
        'reason': REASONS[code],
        'reading_age': age,
    }


def module_verdict(entry: Entry, state: Mapping[str, typing.Any] | None, candidates: Sequence[Candidate] | None, today: datetime.date, age: int | None) -> dict:
    """The row of one module of a fresh reading."""
    state = state or {}
    current = state.get('current')
    current = str(current) if current not in (None, '') else None
    if entry.version == PREVIOUS:
        previous = state.get('previous')
        target, missing = (str(previous), None) if previous not in (None, '') else (None, 'no_previous')
    elif entry.dynamic:
        target, missing = choose_target(entry, candidates, today)
    else:
        target, missing = entry.version, None
    if entry.rule == 'ignore':
        return _row(entry, current, target, PASS, 'ignored', age)
    if current is None:
        return _row(entry, None, target, FAIL, 'not_installed', age)
    if target is None:
        return _row(entry, current, None, UNKNOWN, missing or 'no_package', age)
    order = compare_versions(current, target)
    if entry.rule == 'exact':
        return _row(entry, current, target, PASS if order == 0 else FAIL, 'match' if order == 0 else 'differs', age)
    return _row(entry, current, target, PASS if order >= 0 else FAIL, 'not_older' if order >= 0 else 'older', age)


def reading_age(read_at: typing.Any, now: datetime.datetime) -> tuple[int | None, str | None]:
    """(age in whole seconds, None) or (age or None, reason code) when the reading cannot be trusted as fresh."""
    when = parse_time(read_at)
    if when is None:
        return None, 'reading_time_unknown'
    delta = now - when
    if delta < -FUTURE_SKEW:
        return int(delta.total_seconds()), 'reading_in_future'
    return max(int(delta.total_seconds()), 0), None


def server_verdict(
    baseline: Baseline | None, reading: Reading, candidates: Sequence[Candidate] | None, now: datetime.datetime, max_age_hours: int | None = None
) -> dict:
    """One server's result: verdict, reason, baseline name, read_at, reading_age and the module rows (module order).

    ``candidates`` are what the repository offers this server's model and OS (None: not known); ``now`` is aware.
    ``max_age_hours`` overrides the baseline's max_reading_age_hours.
    """
    if max_age_hours is not None and (isinstance(max_age_hours, bool) or not isinstance(max_age_hours, int) or not 1 <= max_age_hours <= MAX_AGE_HOURS_LIMIT):
        raise ExupError('max_reading_age_hours must be a whole number from 1 to %d, not %r' % (MAX_AGE_HOURS_LIMIT, max_age_hours), code='argument_invalid')
    age, problem = reading_age(reading.read_at, now)
    result: dict[str, typing.Any] = {
        'format': FORMAT,
        'verdict': UNKNOWN,
        'reason_code': '',
        'reason': '',
        'baseline': baseline.name if baseline else None,
        'read_at': reading.read_at if isinstance(reading.read_at, str) else None,
        'reading_age': age,
        'max_reading_age': None,
        'counts': {PASS: 0, FAIL: 0, UNKNOWN: 0},
        'modules': [],
    }
    if baseline is None:
        result.update(reason_code='no_baseline', reason=REASONS['no_baseline'])
        return result
    limit = (baseline.max_reading_age_hours if max_age_hours is None else max_age_hours) * 3600
    result['max_reading_age'] = limit
    if problem is None and age is not None and age > limit:
        problem = 'reading_stale'
    today = now.date()
    rows = []
    for entry in baseline.entries:
        if problem is not None:
            state = reading.modules.get(entry.module_id) or {}
            current = state.get('current')
            row = _row(entry, str(current) if current not in (None, '') else None, None, UNKNOWN, problem, age)
            if not entry.dynamic and entry.version != PREVIOUS:
                row['target'] = entry.version
        else:
            row = module_verdict(entry, reading.modules.get(entry.module_id), candidates, today, age)
        rows.append(row)
    counts = {verdict: sum(1 for row in rows if row['verdict'] == verdict) for verdict in VERDICTS}
    if problem is not None:
        code, verdict = problem, UNKNOWN
    elif not rows:
        code, verdict = 'empty_baseline', PASS
    elif counts[FAIL]:
        code, verdict = 'modules_fail', FAIL
    elif counts[UNKNOWN]:
        code, verdict = 'modules_unknown', UNKNOWN
    else:
        code, verdict = 'compliant', PASS
    result.update(verdict=verdict, reason_code=code, reason=REASONS[code], counts=counts, modules=rows)
    return result


def summary(results: Iterable[Mapping[str, typing.Any]]) -> dict:
    """Counts of server verdicts."""
    counts = {'servers': 0, PASS: 0, FAIL: 0, UNKNOWN: 0}
    for item in results:
        counts['servers'] += 1
        counts[item['verdict']] += 1
    return counts


#: the options of exup_baseline_compliance_info besides the repository service login (REMOTE_SPEC); docs in the module
OPTIONS: dict[str, dict[str, typing.Any]] = {
    'repository': {'type': 'str'},
    'manager_id': {'type': 'str'},
    'baseline': {'type': 'raw'},
    'reading': {'type': 'dict'},
    'read_at': {'type': 'str'},
    'max_reading_age_hours': {'type': 'int'},
    'scope': {'type': 'str', 'default': 'host', 'choices': ['host', 'repository']},
    'trusted_keys': {'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
}
