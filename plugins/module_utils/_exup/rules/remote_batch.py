# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote batch (003 §2.1.8, §3.5.3, Fig. 21): apply at a set time, optionally downloading the newest packages first.

Pure: what a batch's settings must be, the events of its start and its result (Fig. 21 "実行結果をログへ登録"), and
the systemd units that start it at its set time on a controller without AWX. No I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: a batch's name: it names its events and its systemd units (exup-remote-batch-<name>.timer)
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
ENV_NAME_PATTERN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
USER_PATTERN = re.compile(r'^[a-z_][a-z0-9_.-]{0,31}$')
UNIT_PREFIX = 'exup-remote-batch-'
#: where the service's EnvironmentFile= is (root-owned, 0600): the environment may hold secrets, a unit file is 0644
ENV_FILE_DIR = '/etc/exup'
#: servers named in the cause of a failed batch (the detail holds them all)
CAUSE_SERVERS = 5


@dataclasses.dataclass(frozen=True)
class Batch:
    """One run of a remote batch, with the settings of 003 §3.5.3 step 5 (the schedule is the scheduler's)."""

    name: str = 'default'
    target: str = 'managed'
    download: bool = False  # (エ) 「更新パッケージのダウンロード」: sync from the feed first
    allow_reboot: bool = False  # (ウ) 「適用完了後の再起動を許可する」
    feed_url: str = ''

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Batch:
        """A batch from the module's options; unknown keys are refused (a typo is a bug)."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError('unknown remote batch settings: %s' % ', '.join(unknown))
        return cls(**{key: value for key, value in values.items() if value is not None})


def check_batch(batch: Batch, rollout_problems: Sequence[str] = ()) -> list[str]:
    """The problems with a batch's settings, first one first (the batch then neither downloads nor applies).

    ``rollout_problems`` are those the filters exup.fleet.rollout_check and rollout_waves_check found in the prefixed
    settings of the role exup.fleet.rollout (remote_batch_serial, remote_batch_status_filter ...), checked before
    the start is logged: else the role's own check would stop ansible-playbook after the start with no result logged.
    """
    problems = []
    if not isinstance(batch.name, str) or not NAME_PATTERN.match(batch.name):
        problems.append('remote_batch_name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (not %r).' % (batch.name,))
    if not isinstance(batch.target, str) or not batch.target.strip():
        problems.append('target must be an inventory group or host pattern.')
    if batch.download and not (isinstance(batch.feed_url, str) and batch.feed_url.strip()):
        problems.append('remote_batch_download needs remote_batch_feed_url, the vendor feed to download the newest packages from.')
    return problems + [str(problem) for problem in rollout_problems]


def _settings_detail(batch: Batch) -> dict[str, Any]:
    return {'batch': batch.name, 'target': batch.target, 'download': batch.download, 'allow_reboot': batch.allow_reboot}


def started(batch: Batch) -> tuple[str, str | None, dict[str, Any]]:
    """(code, cause, detail) of the batch's start, logged before the download and the apply."""
    detail = _settings_detail(batch)
    if batch.download:
        detail['feed_url'] = batch.feed_url
    return 'remote_batch_started', None, detail


def download_summary(sync: Mapping[str, Any]) -> dict[str, Any]:
    """What the sync before the apply did, from exup_repo_sync's result (its counts, not its lists)."""
    catalog = sync.get('catalog') or {}
    return {
        'added': sorted(str(item.get('package_id', item)) if isinstance(item, Mapping) else str(item) for item in sync.get('added') or ()),
        'removed': len(sync.get('removed') or ()),
        'refused': len(sync.get('refused') or ()),
        'catalog_version': catalog.get('version') if isinstance(catalog, Mapping) else None,
    }


def download_failed(batch: Batch, sync: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(code, cause, detail) when the download asked for first failed: the batch stops, nothing is applied.

    Applying what the repository held would not be what the batch promised ("the newest at run time", 003 §2.1.8).
    """
    message = str(sync.get('msg') or 'failed without a message')
    error = sync.get('error')
    cause = 'the download before the apply failed: %s%s; nothing was applied' % (message, ' [%s]' % error if error else '')
    detail = dict(_settings_detail(batch), stage='download', error=error or 'download_failed')
    return 'remote_batch_failed', cause, detail


def _rebooted(row: Mapping[str, Any]) -> bool:
    return str(row.get('reboot', '')).startswith('rebooted')


def _applied(row: Mapping[str, Any]) -> bool:
    # the row of rollout.outcome says whether the wave applied; an older row without it: chosen and neither held nor skipped
    if 'applied' in row:
        return bool(row.get('applied')) and not row.get('failed')
    return bool(row.get('chosen')) and not (row.get('held_back') or row.get('skipped') or row.get('failed'))


def _named(rows: Sequence[Mapping[str, Any]], what: str) -> str:
    named = ', '.join('%s %s' % (row.get('server', '?'), row.get('code') or what) for row in rows[:CAUSE_SERVERS])
    more = ' and %d more' % (len(rows) - CAUSE_SERVERS) if len(rows) > CAUSE_SERVERS else ''
    return named + more


def result(batch: Batch, rows: Sequence[Mapping[str, Any]], sync: Mapping[str, Any] | None = None) -> tuple[str, str | None, dict[str, Any]]:
    """(code, cause, detail) of the batch's result from the servers' rows (role exup.fleet.rollout's rollout_row).

    Any failed server makes the batch ``remote_batch_failed`` naming the first servers and their first failure; else
    ``remote_batch_finished`` with a cause that counts the servers applied and skipped (refused by the pre-flight
    gate or a maintenance window, with their codes) and held back, so a batch where every server was refused does
    not read as a plain success. The detail counts the servers, those chosen, applied, skipped, failed, rebooted and
    held back, and gives each server's status before and after, its restart and its code; with a download first,
    what the sync added.
    """
    failed = [row for row in rows if row.get('failed')]
    skipped = [row for row in rows if row.get('skipped')]
    held = [row for row in rows if row.get('held_back')]
    servers = [
        {
            'server': str(row.get('server', '?')),
            'before': row.get('status_before'),
            'after': row.get('status_after'),
            'chosen': bool(row.get('chosen')),
            'reboot': row.get('reboot'),
            'failed': bool(row.get('failed')),
            'skipped': bool(row.get('skipped')),
            'code': row.get('code'),
        }
        for row in rows
    ]
    detail = dict(
        _settings_detail(batch),
        servers=len(rows),
        chosen=len([row for row in rows if row.get('chosen')]),
        applied=len([row for row in rows if _applied(row)]),
        skipped=len(skipped),
        failed=len(failed),
        rebooted=len([row for row in rows if _rebooted(row)]),
        held_back=len(held),
        results=servers,
    )
    if batch.download:
        detail['downloaded'] = download_summary(sync or {})
    if not failed:
        cause = '%d applied, %d skipped' % (detail['applied'], len(skipped))
        if skipped:
            cause += ': %s' % _named(skipped, 'skipped')
        if held:
            cause += '; %d held back: %s' % (len(held), _named(held, 'held_back'))
        return 'remote_batch_finished', (cause if rows else None), detail
    named = ['%s: %s' % (row.get('server', '?'), (list(row.get('failures') or ()) or ['failed'])[0]) for row in failed[:CAUSE_SERVERS]]
    more = ' and %d more' % (len(failed) - CAUSE_SERVERS) if len(failed) > CAUSE_SERVERS else ''
    cause = '%d of %d server(s) failed: %s%s' % (len(failed), len(rows), '; '.join(named), more)
    return 'remote_batch_failed', cause, detail


# --------------------------------------------------------------------------- the systemd timer (plain Ansible)


@dataclasses.dataclass(frozen=True)
class Timer:  # pylint: disable=too-many-instance-attributes  # one field per unit setting
    """A systemd timer and service that run the batch's ansible-playbook command at its set time."""

    name: str
    on_calendar: str
    command: Sequence[str]
    deadline_seconds: Any = 14400
    # false: a run missed while the controller was off is not started at its next boot (an unplanned reboot must not
    # start an apply at an unplanned time); true catches it up, exup_apply's maintenance windows still refuse it outside them
    persistent: bool = False
    user: str = ''
    working_directory: str = ''
    environment: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Timer:
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError('unknown timer settings: %s' % ', '.join(unknown))
        missing = sorted({'name', 'on_calendar', 'command'} - set(values))
        if missing:
            raise ValueError('the timer needs %s' % ', '.join(missing))
        return cls(**{key: value for key, value in values.items() if value is not None})


def _one_line(value: Any) -> bool:
    return isinstance(value, str) and not any(char in value for char in '\n\r\0')


def _whole_seconds(value: Any) -> bool:
    return not isinstance(value, bool) and re.match('^[0-9]+$', str(value)) is not None and int(value) > 0


def check_timer(timer: Timer) -> list[str]:
    """The problems with a timer's settings (the units are written only when there are none)."""
    problems = []
    if not isinstance(timer.name, str) or not NAME_PATTERN.match(timer.name):
        problems.append('remote_batch_name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (not %r).' % (timer.name,))
    if not _one_line(timer.on_calendar) or not timer.on_calendar.strip():
        problems.append('remote_batch_timer_on_calendar must be one systemd calendar expression (systemd.time(7)), for example "Sat *-*-* 02:00:00".')
    if isinstance(timer.command, str) or not isinstance(timer.command, Sequence) or not timer.command:
        problems.append('the command must be a non-empty list of arguments.')
    elif not all(_one_line(arg) for arg in timer.command):
        problems.append('no argument of the command may hold a newline or NUL.')
    elif not timer.command[0].startswith('/'):
        problems.append('the command must start with an absolute path (systemd runs no PATH search before v239): %r.' % (timer.command[0],))
    if not _whole_seconds(timer.deadline_seconds):
        problems.append('remote_batch_timer_deadline_seconds must be a whole number of seconds above 0 (not %r).' % (timer.deadline_seconds,))
    if timer.user and not (isinstance(timer.user, str) and USER_PATTERN.match(timer.user)):
        problems.append('remote_batch_timer_user must be a user name (not %r).' % (timer.user,))
    if timer.working_directory and not (_one_line(timer.working_directory) and timer.working_directory.startswith('/')):
        problems.append('remote_batch_timer_working_directory must be an absolute path.')
    if not isinstance(timer.environment, Mapping):
        problems.append('remote_batch_timer_environment must be a mapping of variable name to value.')
    else:
        bad = sorted(str(key) for key, value in timer.environment.items() if not ENV_NAME_PATTERN.match(str(key)) or not _one_line(str(value)))
        if bad:
            problems.append('remote_batch_timer_environment: bad names or multi-line values: %s.' % ', '.join(bad))
    return problems


def quote_exec_argument(argument: str) -> str:
    """One argument of an ExecStart= line (systemd.service(5) "Command lines"): double-quoted, backslash and quote
    escaped, and ``%`` (specifiers) and ``$`` (variable expansion) doubled, so systemd passes it exactly as given."""
    escaped = argument.replace('\\', '\\\\').replace('"', '\\"').replace('%', '%%').replace('$', '$$')
    return '"%s"' % escaped


def _quote_setting(text: str) -> str:
    """A value of Environment= or WorkingDirectory=: quoted where needed, specifiers doubled (no $ expansion there)."""
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"').replace('%', '%%')


def unit_names(name: str) -> tuple[str, str]:
    """(service, timer) file names of batch ``name``."""
    return UNIT_PREFIX + name + '.service', UNIT_PREFIX + name + '.timer'


def environment_file(name: str) -> str:
    """The absolute path of batch ``name``'s EnvironmentFile= (written root-owned, mode 0600)."""
    return '%s/remote-batch-%s.env' % (ENV_FILE_DIR, name)


def environment_text(environment: Mapping[str, Any]) -> str:
    """The EnvironmentFile= text (systemd.exec(5)): one KEY="value" a line, sorted, backslash and quote escaped.

    systemd reads a double-quoted value as given, a backslash escaping only \\ " ` $ and newline; no specifiers,
    no $ expansion in the file.
    """
    lines = ['# Installed by exup.fleet playbooks/remote_batch_timer.yml (mode 0600: it may hold secrets).']
    for key in sorted(environment):
        value = str(environment[key]).replace('\\', '\\\\').replace('"', '\\"').replace('`', '\\`').replace('$', '\\$')
        lines.append('%s="%s"' % (key, value))
    return '\n'.join(lines) + '\n'


def units(timer: Timer) -> dict[str, str]:
    """The two unit files' names and texts, the ExecStart= value and the environment file's path and text
    (check_timer first: no problems expected). The environment is never in the unit (0644, readable by all): the
    service names ``environment_file`` with EnvironmentFile=; without an environment, ``environment`` is empty and the
    service names no file (the playbook removes it).

    The service is Type=exec: it stays active while the playbook runs, so the timer never starts a second run over
    the first, and RuntimeMaxSec= (which has no effect on Type=oneshot) stops a run past its deadline.
    """
    service_name, timer_name = unit_names(timer.name)
    exec_start = ' '.join(quote_exec_argument(str(arg)) for arg in timer.command)
    service = [
        '# Installed by exup.fleet playbooks/remote_batch_timer.yml: the remote batch %s (003 §2.1.8).' % timer.name,
        '[Unit]',
        'Description=exup.fleet remote batch %s' % timer.name,
        'Wants=network-online.target',
        'After=network-online.target',
        '',
        '[Service]',
        'Type=exec',
    ]
    if timer.user:
        service.append('User=%s' % timer.user)
    if timer.working_directory:
        service.append('WorkingDirectory=%s' % _quote_setting(timer.working_directory))
    if timer.environment:
        service.append('EnvironmentFile=%s' % environment_file(timer.name))
    service += [
        'ExecStart=%s' % exec_start,
        'RuntimeMaxSec=%d' % int(timer.deadline_seconds),
        'TimeoutStopSec=120',
        '',
    ]
    timer_text = [
        '# Installed by exup.fleet playbooks/remote_batch_timer.yml: when the remote batch %s runs.' % timer.name,
        '[Unit]',
        'Description=exup.fleet remote batch %s at %s' % (timer.name, timer.on_calendar.replace('%', '%%')),
        '',
        '[Timer]',
        'OnCalendar=%s' % timer.on_calendar,
        'Persistent=%s' % ('true' if timer.persistent else 'false'),
        'Unit=%s' % service_name,
        '',
        '[Install]',
        'WantedBy=timers.target',
        '',
    ]
    return {
        'service_name': service_name,
        'timer_name': timer_name,
        'service': '\n'.join(service),
        'timer': '\n'.join(timer_text),
        'exec_start': exec_start,
        'environment_file': environment_file(timer.name),
        'environment': environment_text(timer.environment) if timer.environment else '',
    }
