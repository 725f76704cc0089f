# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of exup_locked_plan: a relative path is the controller's, from the directory ansible-playbook runs in.

A module run on the controller (delegate_to localhost) starts in the playbook's directory, which for a collection
playbook is inside the installed collection: plans/managed.json would land there. The action runs in the
ansible-playbook process itself, whose working directory is the one the operator ran it from.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase


def controller_path(path, cwd):
    """``path`` with ~ expanded, made absolute against ``cwd`` when relative (anything else unchanged)."""
    if not isinstance(path, str) or not path:
        return path
    expanded = os.path.expanduser(path)
    return expanded if os.path.isabs(expanded) else os.path.normpath(os.path.join(cwd, expanded))


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super().run(tmp, task_vars)
        del tmp
        module_args = dict(self._task.args)
        if getattr(self._connection, 'transport', None) == 'local':  # on another host a relative path stays that host's
            module_args['path'] = controller_path(module_args.get('path'), os.getcwd())
        result.update(self._execute_module(module_name='exup.fleet.exup_locked_plan', module_args=module_args, task_vars=task_vars))
        return result
