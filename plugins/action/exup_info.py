# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of exup_info: what a server runs, what the repository has for it, its statuses."""

from __future__ import annotations

from ansible.utils.display import Display

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report, status_report
from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import INFO_SPEC
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_action import ExupAction, HostCallFailed
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_bmc import BmcPath
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_status import ServerStatus

display = Display()


class ActionModule(ServerStatus, BmcPath, ExupAction):
    SPEC = INFO_SPEC

    def failure_event(self):
        return 'versions_query_failed'

    def log_failure(self, result):
        """003 Table 19: a query that reached neither the agent, nor the BMC, nor both says which (version_query_failed)."""
        if self.failure_logged:
            return
        error, via = result.get('error'), self.args['via']
        agent_reached = self.agent_reachable() if via == 'bmc' and error == 'bmc_unreachable' else None
        items = [ev.version_query_failure(error, result.get('msg'), via, agent_reached)]
        if via == 'agent' and error == 'communication_failed' and self.args.get('boot_id_before_reboot'):
            items.append(('reboot_failed', 'the server did not come back: %s' % result.get('msg'), {'error': error, 'via': 'agent'}))
        self.log_events(self.repository_for_log(), *items)

    def agent_reachable(self):
        """Whether the server's OS answers over the play's connection (the BMC did not)."""
        try:
            self.host_call('inventory')
        except HostCallFailed as exc:
            return exc.result.get('error') != 'communication_failed'
        except ExupError:
            return True  # it answered, if not as the contract says
        return True

    def check_reboot(self, repo, facts):
        """After a restart the playbook asked for, the same boot id means the restart failed (003 Table 19)."""
        failure = ev.reboot_failure(self.args.get('boot_id_before_reboot'), facts.get('boot_id'))
        if failure and repo is not None:
            self.log_events(repo, failure)
        return failure is not None

    def verify_versions(self, repo, modules):
        """13.5: the modules not at the version a package reported succeeded for before the restart; one event each."""
        unchanged = []
        for module_id, version in sorted((self.args['verify_versions'] or {}).items()):
            after = (modules.get(module_id) or {}).get('current')
            if apply_report.unchanged('succeeded', 'install', str(version), after, False):
                unchanged.append(module_id)
                cause = '%s: %s' % (module_id, apply_report.unchanged_cause(str(version), after).replace('read after it', 'read after the restart'))
                detail = {'module_id': module_id, 'version_target': str(version), 'version_after': after, 'via': 'agent'}
                self.log_events(repo, ('succeeded_unchanged', cause, detail))
        return unchanged

    def act(self):
        if 'register' in self._task.args:
            display.deprecated('exup.fleet.exup_info: the option register is renamed register_server (register is also a task keyword)', version='2.0.0')
        if self.args['via'] == 'bmc':
            return self.bmc_info()
        repo = self.repository(required=False)
        inventory, states = self.inventory()
        facts, agent = inventory['facts'], inventory['agent']
        reboot_failed = self.check_reboot(repo, facts)
        report = self.agent_report(repo, facts, states, agent['installed'])
        untrusted = self.untrusted_package_ids(repo, self.args['trusted_keys']) if repo and self.args['trusted_keys'] else set()
        blockers = self.agent_blockers(repo, inventory['prerequisites'], facts['model'], facts['os'])
        result = {
            'changed': False,
            'server': self.server_name,
            'model': facts['model'],
            'os': facts['os'],
            'facts': facts,
            'agent': agent,
            'agent_installable': not agent['installed'] and not blockers,
            'agent_install_blockers': blockers,
            'modules': report.modules,
            'available_modules': report.available,
            'server_status': report.server_status,
            'unknown_packages': report.unknown,
            'active_job': inventory['active_job'],
            'registered': False,
            'untrusted_packages': sorted(untrusted),
        }
        if self.args.get('boot_id_before_reboot'):
            result['reboot_failed'] = reboot_failed
        if self.args.get('verify_versions') is not None:
            result['unchanged_modules'] = self.verify_versions(repo, report.modules)
        self.record_query(repo, inventory, states, result)
        result['newest'] = report.newest
        return result

    def agent_report(self, repo, facts, states, agent_installed):
        """The module rows (status_report) from the host's states, the repository's packages and icons, a restart under way."""
        stored = self.packages_for_server(repo, facts, self.args['trusted_keys']) if repo else []
        infos = [package.info for package in stored]
        icons = self.manual_icons(repo, infos)
        self.mark_restart(repo, states, boot_id=facts.get('boot_id'))
        view = status_report.ServerView(states, infos, icons, repository=repo is not None, agent_installed=agent_installed)
        return status_report.status_report(view)

    def record_query(self, repo, inventory, states, result):
        """What a query writes to the repository: a job's late outcome, the registration, the event (check mode: what registering would change)."""
        if repo is None:
            return
        register = self.args['register_server'] and inventory['agent']['installed']
        if self._task.check_mode:
            if register:
                result['changed'] = self.registration_differs(repo, inventory['facts'], states)
            return
        self.record_unreported_job(repo, inventory)
        if register:
            result['registered'] = self.register(repo, inventory['facts'], states)
            result['changed'] = result['registered']  # the repository's record of the server changed
        self.log_events(repo, ('versions_queried', None, {'status': result['server_status']}))
