# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role exup.fleet.rollout for rolling remediation: a thin face over ``_exup/rules/preflight.py`` and ``waves.py``.

The documentation of each filter is in the YAML file of its name beside this one.
"""

from __future__ import annotations

import datetime

from ansible.errors import AnsibleFilterError

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import preflight, waves


def _mapping(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise AnsibleFilterError('%s must be a mapping, not %s' % (what, type(value).__name__))
    return value


def _rows(rows) -> list:
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise AnsibleFilterError('the rows must be a list of the rows of rollout_outcome / rollout_gated')
    return rows


def rollout_preflight(inputs, settings) -> dict:
    """The pre-flight verdict of one server from what its wave gathered (``info``: exup_info, ``df``: the df task), now."""
    inputs, settings = _mapping(inputs, 'the gate inputs'), _mapping(settings, 'the gate settings')
    _mapping(inputs.get('info') or {}, 'the exup_info result')
    try:
        # the role checked its settings once (rollout_waves_check); a host's own vars are checked here
        return preflight.evaluate(inputs, settings, datetime.datetime.now(datetime.UTC))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def rollout_gated(row, gates, settings) -> dict:
    """The server's row after its wave with the pre-flight verdict, the hooks, the health check and the halt folded in."""
    return waves.gated(dict(_mapping(row, 'the row')), _mapping(gates, 'the gates'), _mapping(settings, 'the wave settings').get('hook_timeout', 300))


def rollout_wave_halt(rows, settings, wave=None) -> dict:
    """Whether the later waves stop after this wave (health check, max_fail_percentage)."""
    return waves.halt(_rows(rows), _mapping(settings, 'the wave settings'), wave)


def rollout_waves_check(settings) -> list:
    """Problems with the wave settings (serial, max_fail_percentage, hooks and their deadline, the gate's thresholds)."""
    settings = _mapping(settings, 'the wave settings')
    return waves.check(settings) + preflight.check(settings)


def rollout_waves_summary(rows, halted=None) -> list:
    """The summary's lines on the servers the gate skipped and why the rollout halted."""
    return waves.summary_lines(_rows(rows), halted)


class FilterModule:
    """exup.fleet.rollout_preflight, rollout_gated, rollout_wave_halt, rollout_waves_check, rollout_waves_summary."""

    def filters(self):
        return {
            'rollout_preflight': rollout_preflight,
            'rollout_gated': rollout_gated,
            'rollout_wave_halt': rollout_wave_halt,
            'rollout_waves_check': rollout_waves_check,
            'rollout_waves_summary': rollout_waves_summary,
        }
