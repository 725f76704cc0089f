# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-flight gate of a rollout wave (role exup.fleet.rollout, docs/managed-servers.md): may this server be applied now?

Pure: data in, one verdict out. The wave gathers the inputs just before it applies - the free space of the file system
holding the server's root (``df -Pk`` output), a fresh exup_info result, the merged maintenance windows of
``window.occurrences`` and the time - and ``gate`` checks, in this order (the first refusal is the verdict's code):

- ``preflight_unknown``: the server could not be queried (unreachable, or exup_info failed: ``failed``, or an ``error`` code
  kept by ``failed_when: false``), its answer has not the shape of exup_info's, or its free space could not be read;
- ``preflight_disk_low``: less free space than ``min_free_mb``;
- ``preflight_reboot_pending``: firmware staged by an earlier apply waits for a restart (server status
  ``reboot_required`` or a module with ``staged``), unless this rollout restarts such servers (``reboot_pending`` with
  ``allow_reboot``);
- ``preflight_queue_busy``: the agent's job is still running (exup_info ``active_job``) or a BMC task is not done
  (``bmc.tasks`` of exup_info with ``bmc_tasks: true``: Redfish tasks with their ``state``, the TaskState; a task that
  has not ended, or whose state is missing or unknown, keeps the queue busy: the gate fails closed);
- ``preflight_window_closed``: maintenance windows are given and none is open now (``window.verdict``).
"""

from __future__ import annotations

import datetime
import re
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import window

#: Redfish TaskState values of a task that has not ended (DSP0268 Task.v1): the BMC's queue is busy
BUSY_TASK_STATES = ('New', 'Starting', 'Running', 'Pending', 'Suspended', 'Stopping', 'Cancelling', 'Interrupted', 'Service')
#: TaskState values of a task that has ended; any other state (missing, 'Unknown', a value the schema lacks) is busy
DONE_TASK_STATES = ('Completed', 'Killed', 'Exception', 'Cancelled')
#: the numeric columns of a ``df -Pk`` line (1024-blocks, Used, Available, Capacity), the rightmost match: the device
#: and the mount point may hold spaces
_DF_NUMBERS = re.compile(r'^(?P<device>.*\S)\s+(?P<blocks>\d+)\s+(?P<used>\d+)\s+(?P<available>\d+)\s+(?P<capacity>\d+)%\s+(?P<mount>\S.*)$')
CODES = ('preflight_unknown', 'preflight_disk_low', 'preflight_reboot_pending', 'preflight_queue_busy', 'preflight_window_closed')


def free_mb(df_output: typing.Any) -> int | None:
    """Free megabytes from ``df -Pk <path>`` output (header, then one line: the 4th column is available KiB); None when unreadable."""
    if not isinstance(df_output, str):
        return None
    lines = [line.strip() for line in df_output.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    # a long device name may wrap the POSIX line: join the lines after the header, then read the numbers from the right
    match = _DF_NUMBERS.match(' '.join(lines[1:]))
    if match is None:
        return None
    return int(match.group('available')) // 1024


def _whole(value: typing.Any, least: int) -> bool:
    """Whether ``value`` is a whole number of at least ``least`` (an int or its digits; "100MB", -1, 1.5, True are not)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= least
    return isinstance(value, str) and value.strip().isdigit() and value.strip().isascii() and int(value) >= least


def check(settings: typing.Any) -> list:
    """Problems with the gate's settings (the role stops before touching a server on the first): ``preflight_min_free_mb``
    a whole number of MB, 0 or more (0: no disk check); ``preflight_timeout`` a whole number of seconds, 1 or more.

    A setting not given is not checked (the role's defaults are valid); ``option_prefix`` names the options in messages.
    """
    if not isinstance(settings, dict):
        return ['the gate settings must be a mapping, not %s.' % (type(settings).__name__,)]
    prefix = settings.get('option_prefix') or 'rollout'
    problems = []
    if 'preflight_min_free_mb' in settings and not _whole(settings['preflight_min_free_mb'], 0):
        problems.append(
            '%s_preflight_min_free_mb must be a whole number of MB (0 or more, 0 skips the disk check), not %r.' % (prefix, settings['preflight_min_free_mb'])
        )
    if 'preflight_timeout' in settings and not _whole(settings['preflight_timeout'], 1):
        problems.append('%s_preflight_timeout must be a whole number of seconds of at least 1, not %r.' % (prefix, settings['preflight_timeout']))
    return problems


def _shape_problem(info: dict) -> str | None:
    """Why exup_info's answer cannot be judged (a part of another type than exup_info returns), None when it can."""
    modules = info.get('modules')
    if modules is not None and not isinstance(modules, dict):
        return 'modules is a %s, not a mapping of module ids' % (type(modules).__name__,)
    job = info.get('active_job')
    if job is not None and not isinstance(job, dict):
        return 'active_job is a %s, not a mapping' % (type(job).__name__,)
    bmc = info.get('bmc')
    if bmc is None:
        return None
    if not isinstance(bmc, dict):
        return 'bmc is a %s, not a mapping' % (type(bmc).__name__,)
    tasks = bmc.get('tasks')
    if tasks is not None and not isinstance(tasks, list):
        return 'bmc.tasks is a %s, not a list' % (type(tasks).__name__,)
    return None


def _staged(info: dict) -> list:
    return sorted(str(module_id) for module_id, module in (info.get('modules') or {}).items() if isinstance(module, dict) and module.get('staged'))


def _busy_tasks(info: dict) -> list:
    """The BMC tasks that have not ended: a state missing, unknown or not a string counts as not ended (fail closed)."""
    busy = []
    for task in (info.get('bmc') or {}).get('tasks') or []:
        if not isinstance(task, dict):
            busy.append({'url': None, 'state': 'Unknown'})
            continue
        state = task.get('state')
        if not isinstance(state, str) or state not in DONE_TASK_STATES:
            busy.append({'url': task.get('url'), 'state': state if isinstance(state, str) and state else 'Unknown'})
    return busy


def _refusal(code: str, reason: str, checks: dict) -> dict:
    return {'passed': False, 'code': code, 'reason': reason, 'checks': checks}


def gate(  # pylint: disable=too-many-arguments,too-many-return-statements
    info: dict,
    df_output: typing.Any,
    *,
    min_free_mb: int = 0,
    reboot_pending_allowed: bool = False,
    windows: typing.Sequence[window.Interval] | None = None,
    now: datetime.datetime | None = None,
    window_error: str | None = None,
) -> dict:
    """The server's verdict: ``passed``, ``code`` (None when passed, else one of CODES), ``reason`` and ``checks`` (what was seen).

    ``min_free_mb`` 0 skips the disk check (``df_output`` is then not read); ``windows`` None skips the window check;
    ``window_error`` (the calendars could not be read) refuses with preflight_window_closed.
    """
    checks: dict[str, typing.Any] = {}
    failed = isinstance(info, dict) and (info.get('unreachable') or info.get('failed') or info.get('error'))
    if not isinstance(info, dict) or failed or 'server_status' not in info:
        message = (info.get('msg') or 'no answer') if isinstance(info, dict) else 'no answer'
        if isinstance(info, dict) and isinstance(info.get('error'), str) and info['error']:
            message = '%s (%s)' % (message, info['error'])
        return _refusal('preflight_unknown', 'the server could not be queried before its wave: %s' % (message,), checks)
    problem = _shape_problem(info)
    if problem:
        return _refusal('preflight_unknown', 'the answer of exup_info cannot be judged: %s' % (problem,), checks)
    if min_free_mb > 0:
        free = free_mb(df_output)
        checks['free_mb'] = free
        if free is None:
            return _refusal('preflight_unknown', 'the free disk space of the server could not be read', checks)
        if free < min_free_mb:
            return _refusal('preflight_disk_low', 'only %d MB free on the server, the gate needs %d MB' % (free, min_free_mb), checks)
    staged = _staged(info)
    checks['staged'] = staged
    if (info.get('server_status') == 'reboot_required' or staged) and not reboot_pending_allowed:
        what = ', '.join(staged) if staged else 'firmware'
        return _refusal('preflight_reboot_pending', 'staged firmware (%s) waits for a restart: restart the server first' % (what,), checks)
    job = info.get('active_job')
    busy = _busy_tasks(info)
    checks['queue'] = len(busy) + (1 if isinstance(job, dict) and job.get('state') == 'running' else 0)
    if isinstance(job, dict) and job.get('state') == 'running':
        return _refusal(
            'preflight_queue_busy', 'the agent job %s is still running (%s of %s done)' % (job.get('job_id'), job.get('done'), job.get('total')), checks
        )
    if busy:
        return _refusal('preflight_queue_busy', 'the BMC has %d task(s) not done (%s %s)' % (len(busy), busy[0].get('url'), busy[0].get('state')), checks)
    if window_error:
        return _refusal('preflight_window_closed', 'the maintenance windows cannot be read: %s' % (window_error,), checks)
    if windows is not None:
        if now is None:
            raise ValueError('the window check needs the time (now)')
        seen = window.verdict(windows, now, 0)
        checks['window'] = seen['code']
        if not seen['may_start']:
            return _refusal('preflight_window_closed', seen['reason'], checks)
    return {'passed': True, 'code': None, 'reason': 'passed', 'checks': checks}


def reboot_pending_allowed(settings: dict) -> bool:
    """Whether a server with staged firmware passes: the rollout uninstalls (``state`` absent), or it restarts such
    servers (``reboot_pending`` and ``allow_reboot``). A given ``reboot_pending_allowed`` is taken as it is."""
    if 'reboot_pending_allowed' in settings:
        return settings['reboot_pending_allowed'] is True
    return settings.get('state') == 'absent' or (settings.get('reboot_pending') is True and settings.get('allow_reboot') is True)


def evaluate(inputs: dict, settings: dict, now: datetime.datetime) -> dict:
    """The verdict of one server from what its wave gathered (``info``: exup_info, ``df``: the registered df task) and the
    role's gate settings (``min_free_mb``, ``timeout``, ``option_prefix``, ``windows``: iCalendar texts, and what
    ``reboot_pending_allowed`` decides from) at ``now``.

    Raises ValueError with the first problem of a host's own settings (``check``); calendars that cannot be read refuse
    the server (preflight_window_closed with the reason).
    """
    given = {
        'option_prefix': settings.get('option_prefix'),
        'preflight_min_free_mb': settings.get('min_free_mb', 0),
        'preflight_timeout': settings.get('timeout', 60),
    }
    problems = check(given)
    if problems:
        raise ValueError(problems[0])
    disk = inputs.get('df') or {}
    df_output = disk.get('stdout') if isinstance(disk, dict) and disk.get('rc') == 0 else None
    texts = settings.get('windows') or []
    if not isinstance(texts, list):
        texts = [texts]
    intervals, problem = None, None
    if texts:
        try:
            intervals = window.occurrences(texts, now)
        except ExupError as exc:
            problem = '%s (%s)' % (exc, exc.code)
    return gate(
        inputs.get('info') or {},
        df_output,
        min_free_mb=int(given['preflight_min_free_mb']),
        reboot_pending_allowed=reboot_pending_allowed(settings),
        windows=intervals,
        now=now,
        window_error=problem,
    )
