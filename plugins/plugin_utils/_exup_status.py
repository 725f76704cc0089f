# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What exup_info and exup_apply read from the repository to tell a server's statuses (both paths).

The rules are ``plan.py``'s (Table 8 "rebooting", Table 9 manual icons); the repository keeps the
restart exup allowed or did and the icons set by hand, because neither lives on the server.
"""

from __future__ import annotations

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan


class ServerStatus:
    """Mixin for the action plugins (self.args, self.server_name, self.log_events)."""

    def manual_icons(self, repo, infos, kinds=('linux',)):
        """module_id -> Table 9 icon of this server's manual modules; {} without a repository (icons read from the versions)."""
        if repo is None:
            return {}
        return repo.status_icons(self.args['manager_id'], self.server_name, infos, kinds)

    def mark_restart(self, repo, states, boot_id=None, power=None):
        """Mark the modules of a restart under way as "rebooting" (Table 8); returns them."""
        if repo is None:
            return []
        modules = repo.restarting(self.args['manager_id'], self.server_name, boot_id, power)
        plan.mark_rebooting(states, modules)
        return modules

    def registration_differs(self, repo, facts, states):
        """Whether register_server would change the repository's record of this server (read only)."""
        return repo.server_record_differs(self.args['manager_id'], self.server_record(facts, states))

    def record_restart(self, repo, modules, boot_id=None):
        """A restart exup allowed (agent path: the playbook restarts on reboot_allowed) or did (BMC path), for ``modules``."""
        modules = sorted(set(modules))
        if repo is not None and modules and not self._task.check_mode:
            repo.request_reboot(self.args['manager_id'], self.server_name, modules, boot_id=boot_id, seconds=self.args['reboot_timeout'])
        return modules
