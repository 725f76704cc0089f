# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of a group rollout (role exup.fleet.rollout): which servers, restart or not, the summary.

Data in, data out, no I/O. The inputs are the results the role registered (exup_info before and
after, exup_apply, ansible.builtin.reboot) as plain mappings; the filter plugin
``plugins/filter/rollout.py`` is the face the role calls.

- choose (003 Table 21): ``latest`` and ``apply_failed`` are server statuses; the other filters also
  take a server with one module in that state. An uninstall takes the servers with one of the given
  modules installed. A server without the agent or that could not be queried is never chosen.
- restart (003 §2.1.2): only when the operator allows it and exup_apply says the rule allows it; on
  request also for firmware staged by an earlier apply (``reboot_pending``).
- outcome and summary: one row per server, then the lines the role prints.

The texts are the ones the playbooks printed before the role existed (users read them, and some
name the playbook's own variables through ``option_prefix``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report

STATES = ('present', 'absent')

#: 003 Table 21: filter -> the module statuses that also choose a server (besides its own status).
STATUS_FILTERS = {
    'all': (),
    'latest': (),
    'update_available': ('update_available',),
    'applying': ('applying', 'waiting_apply', 'rebooting'),
    'reboot_required': ('reboot_required',),
    'apply_failed': (),
    'uninstalling': ('uninstalling', 'waiting_uninstall'),
}

NO_AGENT = 'agent_not_installed'
COMMUNICATION_FAILED = 'communication_failed'
ROW_FORMAT = '%%-%ds  %%-20s  %%-20s  %%s'


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the role was asked to do; ``option_prefix`` names the variables in messages (apply, uninstall)."""

    state: str = 'present'
    option_prefix: str = 'rollout'
    target: str = 'managed'
    # as the operator gave them (Any): check_settings says what is wrong with them
    status_filter: Any = 'update_available'
    modules: Any = None
    versions: Any = dataclasses.field(default_factory=dict)
    allow_reboot: bool = False
    reboot_pending: bool = False
    reboot_delay_minutes: Any = 0
    trusted_keys: Any = ()
    check_mode: bool = False
    # 13.5: agent or bmc (a module the BMC does not list cannot be verified), the rule that holds back the next waves
    via: str = 'agent'
    stop_on_failure: Any = True
    verify_budget: Any = None
    rollback_on_unchanged: bool = False

    @classmethod
    def from_mapping(cls, values: dict) -> Settings:
        """Settings from the role's ``rollout_settings``; unknown keys are refused (a typo is a bug)."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError('unknown rollout settings: %s' % ', '.join(unknown))
        settings = cls(**dict(values))
        if settings.state not in STATES:
            raise ValueError('rollout state must be present or absent, not %r' % (settings.state,))
        return settings

    @property
    def uninstall(self) -> bool:
        return self.state == 'absent'

    @property
    def verb(self) -> str:
        return 'uninstall' if self.uninstall else 'apply'

    def option(self, name: str) -> str:
        return '%s_%s' % (self.option_prefix, name)

    @property
    def delay(self) -> int:
        """The reboot delay in minutes (checked by ``check_settings`` before any server is touched)."""
        return int(self.reboot_delay_minutes)


@dataclasses.dataclass(frozen=True)
class Wave:
    """What one server's wave registered; a task that did not run is a mapping with ``skipped``."""

    info_before: dict
    applied: dict
    reboot: dict = dataclasses.field(default_factory=dict)
    info_after: dict = dataclasses.field(default_factory=dict)
    # 13.5: exup_apply with versions previous for the modules that failed verification (rollback_on_unchanged)
    rollback: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: dict) -> Wave:
        return cls(**{field.name: dict(values.get(field.name) or {}) for field in dataclasses.fields(cls)})


def _text(value: Any) -> str:
    """A value as Jinja printed it inside a template: None as an empty string."""
    return '' if value is None else str(value)


def _is_list(value: Any) -> bool:
    """A list of the playbook's data (Jinja's iterable, not a string, not a mapping)."""
    return isinstance(value, (list, tuple))


def _lines(text_lines: Iterable[str]) -> list:
    """Lines as the playbooks kept them: split again (a message may hold newlines), empty ones dropped."""
    return [line for line in '\n'.join(text_lines).splitlines() if line]


def _failure(prefix: str, result: dict, show: Callable[[Any], str] = str) -> str:
    """``prefix``, then unreachable or not, the message and the error code (``show`` prints the message)."""
    return (
        prefix
        + ('cannot reach the server: ' if result.get('unreachable', False) else '')
        + show(result.get('msg', 'failed without a message'))
        + (' (%s)' % (result['error'],) if 'error' in result else '')
    )


def _skipped(result: dict) -> bool:
    return bool(result.get('skipped', False))


# --------------------------------------------------------------------------- settings


def _delay_is_valid(value: Any) -> bool:
    return bool(re.match('^[0-9]+$', str(value))) and int(value) <= 60


def check_settings(settings: Settings) -> list:
    """The problems with the settings, in the order they are reported (the first one stops the run)."""
    problems = []
    if settings.uninstall and not (_is_list(settings.modules) and len(settings.modules) > 0):
        problems.append(
            '%s must list the module ids to uninstall (for example -e \'{"%s": ["raid-utility"]}\'). Nothing was uninstalled.'
            % (settings.option('modules'), settings.option('modules'))
        )
    if not settings.uninstall and settings.status_filter not in STATUS_FILTERS:
        problems.append(
            '%s must be one of all, latest, update_available, applying, reboot_required, apply_failed, uninstalling (not %s).'
            % (settings.option('status_filter'), _text(settings.status_filter))
        )
    if not _delay_is_valid(settings.reboot_delay_minutes):
        problems.append(
            '%s must be a whole number of minutes from 0 to 60 (not %s).%s'
            % (settings.option('reboot_delay_minutes'), _text(settings.reboot_delay_minutes), ' Nothing was uninstalled.' if settings.uninstall else '')
        )
    has_keys = len(settings.trusted_keys or ()) > 0
    if settings.uninstall and not has_keys:
        problems.append('exup_trusted_keys must list the public keys packages are signed with. Nothing was uninstalled.')
    elif not settings.uninstall and not (has_keys and (settings.modules is None or _is_list(settings.modules)) and isinstance(settings.versions, Mapping)):
        problems.append(
            'exup_trusted_keys must list the public keys packages are signed with, %s must be a list of module ids'
            ' and %s a mapping of module id to version (or "previous").' % (settings.option('modules'), settings.option('versions'))
        )
    if not settings.uninstall and not _budget_is_valid(settings.verify_budget):
        problems.append(
            '%s must be a whole number of servers or a percent from 0%% to 100%% such as 10%% (not %s).'
            % (settings.option('verify_budget'), _text(settings.verify_budget))
        )
    return problems


def _budget_is_valid(budget: Any) -> bool:
    try:
        budget_exceeded(0, 1, budget)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- choose


def matches_filter(status_filter: str, server_status: str, module_statuses: Iterable[str]) -> bool:
    """003 Table 21: does a server of this status, with modules in these statuses, match the filter?"""
    if status_filter == 'all' or server_status == status_filter:
        return True
    wanted = STATUS_FILTERS.get(status_filter, ())
    return any(status in wanted for status in module_statuses)


def _info_failed(info: dict) -> bool:
    return bool(info.get('unreachable', False)) or 'server_status' not in info


def _installed(info: dict, module_ids: Container[str]) -> list:
    """The given modules that have a current version on the server (order of the server's modules)."""
    present = [module_id for module_id, module in (info.get('modules') or {}).items() if module.get('current')]
    return [module_id for module_id in present if module_id in module_ids]


def _not_chosen_because(settings: Settings, info: dict, status: str) -> str:
    """Why the server is not chosen ('' when it is)."""
    if _info_failed(info):
        return 'could not be queried'
    if status == NO_AGENT:
        return 'not chosen: the agent is not installed' + ('' if settings.uninstall else ' (playbooks/agent_install.yml installs it)')
    if settings.uninstall:
        if not _installed(info, settings.modules):
            return 'not chosen: none of %s is installed' % ', '.join(str(module_id) for module_id in settings.modules)
        return ''
    statuses = [module.get('status') for module in (info.get('modules') or {}).values()]
    return '' if matches_filter(settings.status_filter, status, statuses) else 'not chosen: does not match the filter %s' % settings.status_filter


def choose(settings: Settings, server: str, info: dict) -> dict:
    """The server's row from its first exup_info: chosen or why not (a query that failed counts as failed)."""
    failed = _info_failed(info)
    status = COMMUNICATION_FAILED if failed else info['server_status']
    note = _not_chosen_because(settings, info, status)
    row = {
        'server': server,
        'status_before': status,
        'status_after': '-',
        'chosen': not failed and not note,
        'note': note,
        'packages': [],
        'reboot': '-',
        'held_back': False,
        'failures': [_failure('exup_info: ', info)] if failed else [],
        'failed': failed,
        'applied': False,
        'unchanged': [],
        'rolled_back': [],
    }
    if settings.uninstall:
        row['management_ended'] = False
    return row


# --------------------------------------------------------------------------- restart (003 §2.1.2)


def _apply_failed(applied: dict) -> bool:
    return bool(applied.get('unreachable', False)) or 'error' in applied or 'results' not in applied


def restart(settings: Settings, wave: Wave) -> dict:
    """Whether the server restarts now: allowed by the operator and by the rule of 003 §2.1.2."""
    applied = wave.applied
    done = not _skipped(applied)
    failed_now = _apply_failed(applied)
    allowed = bool(applied.get('reboot_allowed', False))
    blocks = [module.get('block') for module in (wave.info_before.get('modules') or {}).values()]
    # reboot_pending: the server only waits for a restart from an earlier apply (firmware staged,
    # nothing applied now, no module in "apply failed")
    pending_only = (
        settings.reboot_pending
        and not settings.uninstall
        and done
        and not failed_now
        and len(applied.get('results') or []) == 0
        and bool(applied.get('reboot_required', False))
        and 'apply_failed' not in blocks
    )
    reboot_now = settings.allow_reboot and done and not failed_now and (allowed or pending_only)
    return {
        'done': done,
        'failed': done and failed_now,
        'reboot_now': reboot_now,
        'pending_only': pending_only and not allowed,
        # 13.5: what the query after the restart verifies (exup_info verify_versions: it logs succeeded_unchanged)
        'verify_versions': staged_versions(applied, wave.info_before if pending_only and not allowed else None)
        if reboot_now and not settings.uninstall and settings.via != 'bmc'
        else {},
    }


def _staged_items(applied: dict, info_before: dict | None = None) -> list:
    """The packages the restart activates: exup_apply's results staged for it and, for a restart of firmware
    staged by an earlier apply (``reboot_pending``), each module the first query showed with a staged version."""
    items = [
        item for item in applied.get('results') or [] if item.get('staged') and item.get('status') == 'succeeded' and item.get('version_target') is not None
    ]
    for module_id, module in ((info_before or {}).get('modules') or {}).items():
        if module.get('staged') and module_id not in {item.get('module_id') for item in items}:
            items.append(
                {
                    'package_id': '%s %s (staged by an earlier apply)' % (module_id, module['staged']),
                    'module_id': module_id,
                    'status': 'succeeded',
                    'action': 'install',
                    'version_target': module['staged'],
                    'staged': True,
                }
            )
    return items


def staged_versions(applied: dict, info_before: dict | None = None) -> dict:
    """Module id -> version of each package the restart activates (``_staged_items``)."""
    return {_text(item.get('module_id')): _text(item.get('version_target')) for item in _staged_items(applied, info_before)}


# --------------------------------------------------------------------------- outcome


def _reboot_failed(reboot: dict) -> bool:
    return not _skipped(reboot) and bool(reboot) and (bool(reboot.get('unreachable', False)) or 'msg' in reboot or not reboot.get('rebooted', False))


def _planned_lines(settings: Settings, applied: dict) -> list:
    lines = []
    for item in applied.get('plan') or []:
        if settings.uninstall:
            head = 'would uninstall %s %s' % (_text(item.get('module_id')), _text(item.get('from_version') or '(none)'))
        else:
            head = 'would %s %s %s -> %s' % (
                _text(item.get('action')),
                _text(item.get('module_id')),
                _text(item.get('from_version') or '(none)'),
                _text(item.get('to_version') or '(removed)'),
            )
        lines.append(head + ' (%s%s)' % (item.get('package_id'), ', needs a restart' if item.get('reboot_required') else ''))
    return lines


def unchanged_after_restart(settings: Settings, applied: dict, info_after: dict, rebooted: bool, info_before: dict | None = None) -> list:
    """13.5: the staged packages exup_apply reported succeeded whose module is not at their version after the restart.

    exup_apply verifies what is active at once (error ``succeeded_unchanged``); a package staged for a restart
    is verified here, from exup_info's query after it. Through the BMC a module it does not list cannot be
    verified (not a failure); through the agent a module not listed is not installed, so unchanged.
    ``info_before``: a restart for firmware staged by an earlier apply also verifies what the first query showed staged.
    """
    if settings.uninstall or settings.check_mode or not rebooted or _info_failed(info_after):
        return []
    modules = info_after.get('modules') or {}
    found = []
    for item in _staged_items(applied, info_before):
        module = modules.get(item.get('module_id')) or {}
        after = module.get('current')
        if apply_report.unchanged(
            _text(item.get('status')), item.get('action') or 'install', item.get('version_target'), after, False, unread_ok=settings.via == 'bmc'
        ):
            found.append(
                {
                    'package_id': item.get('package_id'),
                    'module_id': item.get('module_id'),
                    'version_target': item.get('version_target'),
                    'version_after': after,
                }
            )
    return found


def _unchanged_failure(item: dict) -> str:
    return 'verification after the restart: %s %s (%s)' % (
        item['package_id'],
        apply_report.unchanged_cause(item['version_target'], item['version_after']),
        apply_report.SUCCEEDED_UNCHANGED,
    )


def unchanged_modules(applied: dict, verified: list) -> list:
    """The modules that failed verification: in exup_apply's own results, then after the restart (order of the results)."""
    modules = [item.get('module_id') for item in applied.get('results') or [] if item.get('error') == apply_report.SUCCEEDED_UNCHANGED]
    return modules + [item['module_id'] for item in verified if item['module_id'] not in modules]


def _applied_lines(settings: Settings, applied: dict, current: dict, rebooted: bool, verified: Sequence[dict] = ()) -> list:
    lines = []
    failed_verification = {item['package_id'] for item in verified}
    for item in applied.get('results') or []:
        before = _text(item.get('version_before') or '(none)')
        cause = ': %s' % (item['cause'],) if item.get('cause') else ''
        if item.get('package_id') in failed_verification:
            cause = ': reported succeeded, unchanged after the restart (%s)' % (apply_report.SUCCEEDED_UNCHANGED,)
            item = dict(item, status='failed')
        if settings.uninstall:
            after = '(removed)' if item.get('status') == 'succeeded' else _text(item.get('version_before'))
            lines.append('%s %s -> %s %s%s' % (_text(item.get('module_id')), before, after, item.get('status'), cause))
            continue
        module = current.get(item.get('module_id'))
        now = module.get('current') if module is not None and 'current' in module else item.get('version_after')
        staged = ' (%s staged, active after the restart)' % (item.get('version_target'),) if item.get('staged') and not rebooted else ''
        lines.append('%s %s -> %s %s%s%s' % (_text(item.get('module_id')), before, _text(now or '(removed)'), _text(item.get('status')), cause, staged))
    return lines


def _skipped_lines(settings: Settings, applied: dict) -> list:
    lines = []
    for module_id, why in (applied.get('skipped_modules') or {}).items():
        if settings.uninstall:
            lines.append('%s not uninstalled: %s' % (_text(module_id), _text(why)))
        # "already at" is only news when the operator named the modules or versions
        elif settings.modules is not None or len(settings.versions or {}) > 0 or not _text(why).startswith('already at'):
            lines.append('%s not applied: %s' % (_text(module_id), _text(why)))
    return lines


def _agent_removed(settings: Settings, applied: dict, done: bool) -> bool:
    # the rule of exup_apply's own result (apply_report.agent_removed), only where the summary reports it
    return settings.uninstall and done and not settings.check_mode and apply_report.agent_removed(applied.get('results') or [])


def _package_lines(settings: Settings, wave: Wave, done: bool, current: dict, rebooted: bool, verified: Sequence[dict] = ()) -> list:
    lines = []
    if done and settings.check_mode:
        lines += _planned_lines(settings, wave.applied)
    elif done:
        lines += _applied_lines(settings, wave.applied, current, rebooted, verified)
    # an apply lists the modules it skipped after a real run only; an uninstall also in check mode
    if settings.uninstall or (done and not settings.check_mode):
        lines += _skipped_lines(settings, wave.applied)
    if _agent_removed(settings, wave.applied, done):
        lines.append('agent-based management of this server has ended (install the agent again with playbooks/agent_install.yml)')
    return _lines(lines)


def _reboot_text(settings: Settings, wave: Wave, decision: dict, rebooted: bool, reboot_failed: bool) -> str:
    applied = wave.applied
    if not decision['done'] or settings.check_mode:
        return '-'
    if rebooted:
        delay = ' after %s min' % (settings.reboot_delay_minutes,) if settings.delay > 0 else ''
        return 'rebooted' + delay + (' (firmware staged earlier)' if decision['pending_only'] else '')
    if reboot_failed:
        return 'reboot failed'
    if decision['failed']:
        return 'not done: a package did not succeed (003 §2.1.2)'
    if not applied.get('reboot_required', False):
        return 'not needed'
    if not applied.get('reboot_allowed', False) and (settings.uninstall or len(applied.get('results') or []) > 0):
        return 'needed, not done: some packages did not succeed (003 §2.1.2)'
    if not applied.get('reboot_allowed', False):
        return 'needed for firmware staged earlier, not done: nothing needing it was applied now (%s allows it)' % settings.option('reboot_pending')
    return 'needed, not allowed (%s is false): %s' % (
        settings.option('allow_reboot'),
        'restart the server to complete the uninstall' if settings.uninstall else 'restart the server to activate the staged firmware',
    )


def _failure_lines(settings: Settings, wave: Wave, decision: dict, reboot_failed: bool, info_after_failed: bool) -> list:
    lines = []
    if decision['failed']:
        lines.append(_failure('exup_apply: ', wave.applied, _text))
    if reboot_failed:
        lines.append('reboot: %s' % (_text(wave.reboot.get('msg', 'the server did not come back')),))
    if info_after_failed:
        lines.append('exup_info after the %s: %s' % (settings.verb, _text(wave.info_after.get('msg', 'failed without a message'))))
    return _lines(lines)


def outcome(settings: Settings, row: dict, wave: Wave) -> dict:
    """The server's row after its wave: status after, packages before -> after, the restart or why not, failures."""
    decision = restart(settings, wave)
    done = decision['done']
    reboot_failed = _reboot_failed(wave.reboot)
    rebooted = not _skipped(wave.reboot) and bool(wave.reboot.get('rebooted', False)) and not reboot_failed
    info_after_failed = done and _info_failed(wave.info_after)
    current = {} if not done or info_after_failed else wave.info_after.get('modules') or {}
    staged_earlier = wave.info_before if decision['pending_only'] else None
    verified = unchanged_after_restart(settings, wave.applied, wave.info_after, rebooted, staged_earlier) if done else []
    # exup_apply's maintenance window gate (docs/maintenance-windows.md): skipped, not held back after a failure
    window_code = _text(wave.applied.get('window_code')) if _skipped(wave.applied) else ''
    not_done = 'not %s: ' % ('uninstalled' if settings.uninstall else 'applied',)
    if window_code:
        note = not_done + '%s (%s)' % (_text(wave.applied.get('skipped_reason') or wave.applied.get('msg') or 'outside the maintenance windows'), window_code)
    else:
        note = '' if done else not_done + _held_back_because(settings)
    updated = dict(row)
    if window_code:
        updated['code'] = window_code
    updated.update(
        {
            'status_after': '-' if not done else COMMUNICATION_FAILED if info_after_failed else wave.info_after['server_status'],
            'note': note,
            'held_back': not done and not window_code,
            'window_skipped': bool(window_code),
            'packages': _package_lines(settings, wave, done, current, rebooted, verified),
            'reboot': _reboot_text(settings, wave, decision, rebooted, reboot_failed),
            'failures': _failure_lines(settings, wave, decision, reboot_failed, info_after_failed) + [_unchanged_failure(item) for item in verified],
            'failed': decision['failed'] or reboot_failed or info_after_failed or len(verified) > 0,
            # 13.5: whether the server's wave ran (the error budget counts these), the modules that failed verification
            'applied': done and not settings.check_mode,
            'unchanged': unchanged_modules(wave.applied, verified) if done and not settings.uninstall else [],
        }
    )
    if settings.uninstall:
        updated['management_ended'] = _agent_removed(settings, wave.applied, done)
    updated['rolled_back'] = []
    if done and not _skipped(wave.rollback) and len(wave.rollback) > 0:
        lines, rolled_back, failures = _rollback(wave.rollback)
        updated.update(packages=updated['packages'] + lines, rolled_back=rolled_back, failures=updated['failures'] + failures)
    return updated


def rollback_versions(settings: Settings, row: dict) -> dict:
    """13.5: module id -> ``previous`` for the modules of the row that failed verification, when the operator asked for it."""
    if not settings.rollback_on_unchanged or settings.uninstall or settings.check_mode:
        return {}
    return {_text(module_id): 'previous' for module_id in row.get('unchanged') or []}


def _rollback(rollback: dict) -> tuple[list, list, list]:
    """What going back to the previous generation did: more package lines, a failure line when it failed.

    The server stays failed (its verification did); ``rolled_back`` lists the modules whose previous version
    succeeded. exup_apply restarts nothing here: firmware staged by the rollback is active after the next restart.
    """
    lines = []
    for item in rollback.get('results') or []:
        staged = ' (staged, active after the next restart)' if item.get('staged') else ''
        cause = ': %s' % (item['cause'],) if item.get('cause') else ''
        lines.append(
            'rolled back to the previous generation: %s %s -> %s %s%s%s'
            % (
                _text(item.get('module_id')),
                _text(item.get('version_before') or '(none)'),
                _text(item.get('version_target')),
                _text(item.get('status')),
                cause,
                staged,
            )
        )
    for module_id, why in (rollback.get('skipped_modules') or {}).items():
        lines.append('%s not rolled back: %s' % (_text(module_id), _text(why)))
    failed = _apply_failed(rollback)
    return (
        _lines(lines),
        [] if failed else [item.get('module_id') for item in rollback.get('results') or [] if item.get('status') == 'succeeded'],
        _lines([_failure('rollback (exup_apply, versions previous): ', rollback, _text)]) if failed else [],
    )


def _has_budget(settings: Settings) -> bool:
    return not settings.uninstall and settings.verify_budget is not None and str(settings.verify_budget).strip() != ''


def _held_back_because(settings: Settings) -> str:
    if _has_budget(settings):
        return 'the error budget (%s=%s) was exceeded in an earlier wave' % (settings.option('verify_budget'), _text(settings.verify_budget).strip())
    return 'a server of an earlier wave failed (%s)' % (settings.option('stop_on_failure'),)


def budget_state(settings: Settings, rows: Iterable[dict]) -> dict:
    """The rollout so far: servers whose wave ran (``applied``), how many failed (verification included), the budget."""
    applied = [row for row in rows if row.get('applied')]
    failures = len([row for row in applied if row.get('failed')])
    budget = _text(settings.verify_budget).strip() if _has_budget(settings) else None
    return {
        'applied': len(applied),
        'failures': failures,
        'unchanged': len([row for row in applied if row.get('unchanged')]),
        'budget': budget,
        'exceeded': budget is not None and budget_exceeded(failures, len(applied), budget),
    }


def hold_back(settings: Settings, rows: Iterable[dict]) -> bool:
    """After a wave: whether the next waves are held back.

    With an error budget (``verify_budget``) when the failed servers of the whole rollout so far are more
    than it; without one, on the first failure when ``stop_on_failure`` (a failure: exup_apply, the restart,
    the query after it, a package that succeeded but is unchanged, or a pre or post hook or health check that
    did not pass, on a server applied or not).
    """
    rows = list(rows)
    state = budget_state(settings, rows)
    if state['budget'] is not None:
        return bool(state['exceeded'])
    # every failed row of a chosen server, also one whose pre hook failed or timed out (never applied, applied=False)
    return bool(settings.stop_on_failure) and any(row.get('failed') and row.get('chosen', True) for row in rows)


# --------------------------------------------------------------------------- summary


def _title(settings: Settings, rows: list) -> str:
    check = ' (check mode: nothing was changed)' if settings.check_mode else ''
    counts = '%d of %d server(s) chosen, %d failed' % (
        len([row for row in rows if row.get('chosen')]),
        len(rows),
        len([row for row in rows if row.get('failed')]),
    )
    held_back = len([row for row in rows if row.get('held_back')])
    unchanged = len([row for row in rows if row.get('unchanged')])
    if unchanged:
        counts += ', %d succeeded but unchanged' % unchanged
    if held_back:
        counts += ', %d held back after a failure' % held_back
    window = len([row for row in rows if row.get('window_skipped')])
    if window:
        counts += ', %d not started (maintenance window)' % window
    if _has_budget(settings):
        state = budget_state(settings, rows)
        counts += '; error budget %s=%s: %d of %d applied failed%s' % (
            settings.option('verify_budget'),
            state['budget'],
            state['failures'],
            state['applied'],
            ', exceeded' if state['exceeded'] else '',
        )
    if settings.uninstall:
        ended = len([row for row in rows if row.get('management_ended')])
        if ended:
            counts += ', agent management ended on %d' % ended
        return 'exup uninstall of %s from %s%s: %s' % (', '.join(str(module_id) for module_id in settings.modules), settings.target, check, counts)
    return 'exup apply to %s%s, filter %s: %s' % (settings.target, check, settings.status_filter, counts)


def summary(settings: Settings, rows: list) -> list:
    """The lines of the run's summary: a title, a header, then each server's row and its details."""
    width = max([6] + [len(row['server']) for row in rows])
    row_format = ROW_FORMAT % width
    lines = [row_format % ('server', 'before', 'after', 'reboot')]
    for row in rows:
        lines.append(row_format % (row['server'], row['status_before'], row['status_after'], row['reboot'] if row['chosen'] else row['note']))
        if row['chosen'] and row['note']:
            lines.append('    %s' % (row['note'],))
        lines += ['    %s' % (line,) for line in row['packages']]
        lines += ['    FAILED %s' % (line,) for line in row['failures']]
    return [line for line in [_title(settings, rows)] + _lines(lines) if line]


# --------------------------------------------------------------------------- the wave play's hosts


def wave_hosts(terms: Sequence[str], group: str) -> str:
    """The pattern of the wave play: the target's terms, then ``&group`` (the servers chosen).

    ``terms`` are the target split as Ansible splits a pattern (``managed:db`` is ``managed``, ``db``;
    ``web[0:1]`` and ``fe80::1`` are one term each). They are joined with ``,``: Ansible does not split
    a ``:`` once a pattern holds a ``,``, and a ``,`` never splits a range or an IPv6 address.
    """
    if not group or ',' in group or ':' in group:
        raise ValueError('the group of the chosen servers must be one group name, not %r' % (group,))
    for term in terms:
        if ',' in term or not term.strip():
            raise ValueError('a term of the target must be one pattern without ",", not %r' % (term,))
    return ','.join([term.strip() for term in terms] + ['&' + group])


# --------------------------------------------------------------------------- error budget (13.5)


def budget_exceeded(failures: int, applied: int, budget: Any) -> bool:
    """Whether verification failures so far exceed the rollout's budget (then the next waves stop).

    ``budget``: None (no budget), a whole number of servers, or ``'N%'`` of the servers applied so far.
    As Ansible's max_fail_percentage: the budget is exceeded only when the failures are MORE than it
    (a budget of 0 stops on the first failure; 10% of 10 servers allows 1).
    """
    if budget is None or budget == '':
        return False
    text = str(budget).strip()
    if text.endswith('%'):
        percent = float(text[:-1])
        if not 0 <= percent <= 100:
            raise ValueError('the error budget must be 0%% to 100%%, not %r' % (budget,))
        return applied > 0 and failures * 100.0 > percent * applied
    if not re.match('^[0-9]+$', text):
        raise ValueError('the error budget must be a whole number of servers or a percent, not %r' % (budget,))
    return failures > int(text)
