# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-flight gate of a rollout wave (role exup.fleet.rollout, docs/managed-servers.md): may this server be applied now?

Pure: data in, one verdict out. The wave gathers the inputs just before it applies - the free space of the file system
holding the server's root (``df -Pk`` output), a fresh exup_info result, the merged maintenance windows of
``window.occurrences`` and the time - and ``gate`` checks, in this order (the first refusal is the verdict's code):

- ``preflight_unknown``: the server could not be queried, or its free space could not be read;
- ``preflight_disk_low``: less free space than ``min_free_mb``;
- ``preflight_reboot_pending``: firmware staged by an earlier apply waits for a restart (server status
  ``reboot_required`` or a module with ``staged``), unless this rollout restarts such servers (``reboot_pending`` with
  ``allow_reboot``);
- ``preflight_queue_busy``: the agent's job is still running (exup_info ``active_job``) or a BMC task is not done
  (``bmc.tasks`` of exup_info with ``bmc_tasks: true``: Redfish tasks with their ``state``, the TaskState);
- ``preflight_window_closed``: maintenance windows are given and none is open now (``window.verdict``).
"""

from __future__ import annotations

import datetime
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import window

#: Redfish TaskState values of a task that has not ended (DSP0268 Task.v1): the BMC's queue is busy
BUSY_TASK_STATES = ('New', 'Starting', 'Running', 'Pending', 'Suspended', 'Stopping', 'Cancelling', 'Interrupted', 'Service')
CODES = ('preflight_unknown', 'preflight_disk_low', 'preflight_reboot_pending', 'preflight_queue_busy', 'preflight_window_closed')


def free_mb(df_output: typing.Any) -> int | None:
    """Free megabytes from ``df -Pk <path>`` output (header, then one line: the 4th column is available KiB); None when unreadable."""
    if not isinstance(df_output, str):
        return None
    lines = [line for line in df_output.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    # a long device name may wrap the POSIX line: the numbers are the last 5 fields of the joined lines
    fields = ' '.join(lines[1:]).split()
    if len(fields) < 6 or not fields[-3].isdigit():
        return None
    return int(fields[-3]) // 1024


def _staged(info: dict) -> list:
    return sorted(str(module_id) for module_id, module in (info.get('modules') or {}).items() if isinstance(module, dict) and module.get('staged'))


def _busy_tasks(info: dict) -> list:
    tasks = (info.get('bmc') or {}).get('tasks') or []
    return [task for task in tasks if isinstance(task, dict) and task.get('state') in BUSY_TASK_STATES]


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
    if not isinstance(info, dict) or info.get('unreachable') or 'server_status' not in info:
        message = info.get('msg', 'no answer') if isinstance(info, dict) else 'no answer'
        return _refusal('preflight_unknown', 'the server could not be queried before its wave: %s' % (message,), checks)
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
