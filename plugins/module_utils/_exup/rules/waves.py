# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling remediation around a rollout's waves (role exup.fleet.rollout, docs/managed-servers.md): pure decisions.

- ``check``: the wave settings (``serial`` with a canary first wave, ``max_fail_percentage``, the hook deadline);
- ``hook_code``: what a pre or post hook, or the health check, ended with (``<stage>_failed`` / ``<stage>_timeout``);
- ``gated``: a server's row after its wave (``rollout.outcome``) with the pre-flight verdict, the hooks and the health
  check folded in, and the reason the wave was held back;
- ``halt``: whether the later waves stop after this one (health check, max_fail_percentage);
- ``summary_lines``: the lines the summary adds (servers skipped by the gate or by the maintenance window, why the
  rollout halted).

A server refused by the pre-flight gate is skipped, not failed. A pre hook that fails or runs out of time keeps the
server from being applied and fails its row; so does a post hook or a health check that fails. Every one has a code.
"""

from __future__ import annotations

import re
import typing

SERIAL_ITEM = re.compile(r'^(?:[1-9][0-9]*|(?:100|[1-9][0-9]?)%)$')  # Ansible's serial: whole numbers and whole percents
HOOK_STAGES = ('pre_hook', 'post_hook', 'health_check')


def _option(prefix: str, name: str) -> str:
    return '%s_%s' % (prefix or 'rollout', name)


def _serial_items(serial: typing.Any) -> list | None:
    """The serial value as a list of its items (Ansible's play keyword takes one or a list), None when not valid."""
    items = list(serial) if isinstance(serial, (list, tuple)) else [serial]
    if not items or any(isinstance(item, bool) or not SERIAL_ITEM.match(str(item).strip()) for item in items):
        return None
    return items


def _percent(value: typing.Any) -> float | None:
    text = str(value).strip().rstrip('%')
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0 <= number <= 100 and not isinstance(value, bool) else None


def check(settings: dict) -> list:
    """Problems with the wave settings (the role stops before touching a server on the first)."""
    prefix = settings.get('option_prefix', 'rollout')
    problems = []
    if _serial_items(settings.get('serial', '100%')) is None:
        problems.append(
            '%s must be a number of servers, a percent ("25%%") or a list of them for growing waves (a canary first: [1, "25%%"]), not %s.'
            % (_option(prefix, 'serial'), settings.get('serial'))
        )
    limit = settings.get('max_fail_percentage')
    if limit is not None and str(limit).strip() != '' and _percent(limit) is None:
        problems.append('%s must be a percent from 0 to 100, not %s.' % (_option(prefix, 'max_fail_percentage'), limit))
    timeout = settings.get('hook_timeout', 300)
    if isinstance(timeout, bool) or not re.match('^[0-9]+$', str(timeout)) or int(timeout) < 1:
        problems.append('%s must be a whole number of seconds of at least 1, not %s.' % (_option(prefix, 'hook_timeout'), timeout))
    for stage in HOOK_STAGES:
        path = settings.get(stage)
        if path is not None and (not isinstance(path, str) or not path.strip()):
            problems.append('%s must be the path of a task file, not %r.' % (_option(prefix, stage), path))
    return problems


def hook_code(stage: str, result: typing.Any) -> str | None:
    """``<stage>_timeout`` or ``<stage>_failed`` for a hook that ended badly, None when it passed or did not run."""
    if stage not in HOOK_STAGES:
        raise ValueError('the hook stage must be one of %s, not %r' % (', '.join(HOOK_STAGES), stage))
    if not isinstance(result, dict) or not result.get('failed'):
        return None
    return '%s_%s' % (stage, 'timeout' if result.get('timed_out') else 'failed')


def _hook_line(stage: str, result: dict, timeout: typing.Any) -> str:
    what = stage.replace('_', ' ')
    task = ' (task %s)' % (result['task'],) if result.get('task') else ''
    if result.get('timed_out'):
        return '%s did not finish within %s s%s (%s)' % (what, timeout, task, hook_code(stage, result))
    return '%s failed%s: %s (%s)' % (what, task, result.get('msg') or 'no message', hook_code(stage, result))


def gated(row: dict, gates: dict, hook_timeout: typing.Any = 300) -> dict:
    """The row of ``rollout.outcome`` with the wave's gates: ``preflight`` (preflight.gate), ``pre_hook``, ``post_hook``,
    ``health_check`` (hook results) and ``halt`` (the reason an earlier wave stopped the rollout, see ``halt``).

    Adds ``code`` (the first code that explains the row, None when all went well) and ``skipped`` (refused by the gate).
    """
    updated = dict(row, code=row.get('code'), skipped=False)
    failures = list(row.get('failures') or [])
    verdict = gates.get('preflight') or {}
    halted = gates.get('halt') or {}
    if row.get('held_back') and halted.get('code'):
        # held back by a halt of an earlier wave: say which
        updated.update(note='not applied: %s (%s)' % (halted.get('reason'), halted['code']), code=halted['code'])
    elif row.get('held_back') and verdict and not verdict.get('passed', True):
        updated.update(
            held_back=False, skipped=True, code=verdict.get('code'), note='not applied: pre-flight gate: %s (%s)' % (verdict.get('reason'), verdict.get('code'))
        )
    elif row.get('held_back') and hook_code('pre_hook', gates.get('pre_hook')):
        pre = gates['pre_hook']
        failures.append(_hook_line('pre_hook', pre, hook_timeout))
        updated.update(held_back=False, failed=True, code=hook_code('pre_hook', pre), note='not applied: the pre hook did not pass')
    for stage in ('post_hook', 'health_check'):
        code = hook_code(stage, gates.get(stage))
        # the post hook also runs after a pre hook that did not pass, and on a server the maintenance window skipped
        if code and not updated.get('held_back'):
            failures.append(_hook_line(stage, gates[stage], hook_timeout))
            # the first failure's code explains the row (a window code is not one)
            updated.update(failed=True, code=updated['code'] if updated.get('failed') and updated['code'] else code)
        if code and stage == 'health_check' and not updated.get('held_back'):
            updated['health_check_code'] = code  # halt reads it even when an earlier code explains the row
    if updated.get('held_back') and not updated['code']:
        updated['code'] = 'held_back'  # by the rule of rollout.py (stop_on_failure, the error budget)
    updated['failures'] = failures
    return updated


def _health_code(row: dict) -> str | None:
    code = row.get('health_check_code') or row.get('code')
    return code if str(code or '').startswith('health_check_') else None


def _not_started(row: dict) -> bool:
    """Skipped by the pre-flight gate or by exup_apply's maintenance window gate, and not failed."""
    return bool(row.get('skipped') or row.get('window_skipped')) and not row.get('failed')


def _is_canary(settings: dict, wave: typing.Any) -> bool:
    """The first of growing waves (serial a list of more than one item, as [1, "25%"])."""
    items = _serial_items(settings.get('serial', '100%'))
    return items is not None and len(items) > 1 and str(wave).strip() == '1'


def halt(rows: typing.Sequence[dict], settings: dict, wave: typing.Any = None) -> dict:
    """Whether the later waves stop after this wave's ``rows``: ``halt``, ``code``, ``reason``, ``wave``.

    A failed health check halts (``health_check_failed`` / ``health_check_timeout``); then, when ``max_fail_percentage``
    is given, more failed servers in the wave than that percent (``max_fail_percentage``, as Ansible's play keyword: 0
    halts on the first failure, 50 lets one of two fail) over the servers of the wave that were not skipped (pre-flight
    gate, maintenance window). A canary wave (the first of ``serial`` [1, "25%"]) whose servers were all skipped
    halts too (``canary_not_applied``): the next waves would run without evidence.
    """
    prefix = settings.get('option_prefix', 'rollout')
    number = '' if wave is None else ' %s' % (wave,)
    rows = [row for row in rows if not row.get('held_back')]  # held back by an earlier halt: not this wave's news
    health = [row for row in rows if _health_code(row)]
    if health:
        code = 'health_check_timeout' if all(_health_code(row) == 'health_check_timeout' for row in health) else 'health_check_failed'
        servers = ', '.join(str(row.get('server')) for row in health)
        return {'halt': True, 'code': code, 'wave': wave, 'reason': 'halted by the health check after wave%s (%s)' % (number, servers)}
    skipped = [row for row in rows if _not_started(row)]
    if rows and len(skipped) == len(rows) and _is_canary(settings, wave):
        servers = ', '.join('%s (%s)' % (row.get('server'), row.get('code')) for row in skipped)
        return {
            'halt': True,
            'code': 'canary_not_applied',
            'wave': wave,
            'reason': 'halted after the canary wave%s: no server of it was applied, %s' % (number, servers),
        }
    # the servers skipped (pre-flight gate, maintenance window) and not failed are not in the denominator
    counted = [row for row in rows if row.get('failed') or not _not_started(row)]
    limit = settings.get('max_fail_percentage')
    percent = None if limit is None or str(limit).strip() == '' else _percent(limit)
    failed = len([row for row in counted if row.get('failed')])
    if percent is not None and counted and failed * 100.0 > percent * len(counted):
        return {
            'halt': True,
            'code': 'max_fail_percentage',
            'wave': wave,
            'reason': 'halted after wave%s: %d of %d server(s) failed, more than %s=%s%%'
            % (number, failed, len(counted), _option(prefix, 'max_fail_percentage'), str(limit).strip().rstrip('%')),
        }
    return {'halt': False, 'code': None, 'wave': wave, 'reason': ''}


def summary_lines(rows: typing.Sequence[dict], halted: typing.Any) -> list:
    """The lines the summary adds after its table: the servers the gate skipped, and why the rollout halted."""
    lines = []
    skipped = [row for row in rows if row.get('skipped')]
    if skipped:
        lines.append(
            '%d server(s) skipped by the pre-flight gate: %s' % (len(skipped), ', '.join('%s (%s)' % (row.get('server'), row.get('code')) for row in skipped))
        )
    window = [row for row in rows if row.get('window_skipped')]
    if window:
        lines.append(
            '%d server(s) not started by the maintenance window: %s'
            % (len(window), ', '.join('%s (%s)' % (row.get('server'), row.get('code')) for row in window))
        )
    if isinstance(halted, dict) and halted.get('code'):
        held = len([row for row in rows if row.get('held_back')])
        lines.append('rollout %s: %d server(s) not applied (%s)' % (halted.get('reason'), held, halted['code']))
    return lines
