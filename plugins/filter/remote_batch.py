# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of playbooks/remote_batch_timer.yml: a thin face over ``_exup/rules/remote_batch.py`` (documented in
remote_batch_units.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import remote_batch


def remote_batch_units(settings) -> dict:
    """``problems`` (empty: go on) and, when there are none, the unit files' names and texts."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError('the timer settings must be a mapping')
    try:
        timer = remote_batch.Timer.from_mapping(settings)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from exc
    problems = remote_batch.check_timer(timer)
    if problems:
        return {'problems': problems}
    return dict(remote_batch.units(timer), problems=[])


class FilterModule:
    """exup.fleet.remote_batch_units."""

    def filters(self):
        return {'remote_batch_units': remote_batch_units}
