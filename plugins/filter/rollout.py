# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role exup.fleet.rollout: a thin face over the pure rules of ``_exup/rules/rollout.py``.

Each filter turns the role's data (``rollout_settings`` and registered results) into plain
Python values, calls one core function and returns its answer. The documentation of each
filter is in the YAML file of its name beside this one.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import split_host_pattern

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import rollout


def _settings(settings) -> rollout.Settings:
    if not isinstance(settings, dict):
        raise AnsibleFilterError('the rollout settings must be a mapping (the role passes rollout_settings)')
    try:
        return rollout.Settings.from_mapping(settings)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from exc


def _mapping(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise AnsibleFilterError('%s must be a mapping, not %s' % (what, type(value).__name__))
    return value


def rollout_check(settings) -> list:
    """Problems with the settings, in the order the role reports them (empty: go on)."""
    return rollout.check_settings(_settings(settings))


def rollout_chosen(info, settings, server: str) -> dict:
    """The server's row from its first exup_info result (003 Table 21 for an apply)."""
    return rollout.choose(_settings(settings), str(server), _mapping(info, 'the exup_info result'))


def rollout_restart(wave, settings) -> dict:
    """Whether the server restarts after its exup_apply (003 §2.1.2)."""
    return rollout.restart(_settings(settings), rollout.Wave.from_mapping(_mapping(wave, 'the wave')))


def rollout_outcome(row, settings, wave) -> dict:
    """The server's row after its wave."""
    return rollout.outcome(_settings(settings), dict(_mapping(row, 'the row')), rollout.Wave.from_mapping(_mapping(wave, 'the wave')))


def rollout_summary(rows, settings) -> list:
    """The summary lines of the run from every server's row."""
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise AnsibleFilterError('the rows must be a list of the rows of rollout_chosen / rollout_outcome')
    try:
        return rollout.summary(_settings(settings), rows)
    except KeyError as exc:
        raise AnsibleFilterError('a row lacks %s (rows come from rollout_chosen and rollout_outcome)' % exc.args[0]) from exc


def rollout_hold_back(rows, settings) -> bool:
    """After a wave: whether the next waves are held back (the error budget, else the first failure)."""
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise AnsibleFilterError('the rows must be a list of the rows of rollout_chosen / rollout_outcome')
    try:
        return rollout.hold_back(_settings(settings), rows)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def rollout_rollback_versions(row, settings) -> dict:
    """13.5: module id -> previous for the modules of the row that failed verification (empty: no rollback)."""
    return rollout.rollback_versions(_settings(settings), dict(_mapping(row, 'the row')))


def rollout_hosts(target, group: str) -> str:
    """The wave play's pattern: the target (split as Ansible splits it), then ``&group``."""
    if not isinstance(target, (str, list)):
        raise AnsibleFilterError('the target must be a host pattern or a list of them, not %s' % type(target).__name__)
    try:
        return rollout.wave_hosts(split_host_pattern(target), str(group))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """exup.fleet.rollout_check, rollout_chosen, rollout_restart, rollout_outcome, rollout_summary, rollout_hold_back,
    rollout_rollback_versions, rollout_hosts."""

    def filters(self):
        return {
            'rollout_check': rollout_check,
            'rollout_chosen': rollout_chosen,
            'rollout_restart': rollout_restart,
            'rollout_outcome': rollout_outcome,
            'rollout_summary': rollout_summary,
            'rollout_hold_back': rollout_hold_back,
            'rollout_rollback_versions': rollout_rollback_versions,
            'rollout_hosts': rollout_hosts,
        }
