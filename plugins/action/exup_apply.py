# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of exup_apply: plan on the controller, run as a job by the host's agent, follow it.

Flow (docs/agent.md): inventory -> plan.build_plan -> copy the packages the inbox
lacks -> exup_host start (verify again, unpack, start the runner) -> poll status
(each poll renews the lease) -> results, events. Check mode stops after the plan.
"""

from __future__ import annotations

import datetime
import time

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract, events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report, locked_plan, plan, window
from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import APPLY_SPEC
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_action import ExupAction, HostCallFailed
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_bmc import BmcPath
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_status import ServerStatus

RUNNER_LOST = " (the agent's runner stopped; the package script runs on, and its outcome is read when it ends)"


class ActionModule(ServerStatus, BmcPath, ExupAction):
    SPEC = APPLY_SPEC

    def failure_event(self):
        return {'absent': 'uninstall_failed', 'present': 'apply_failed', 'cancelled': 'cancel_unavailable'}.get(self.args['state'])

    def act(self):
        args = self.args
        if args['via'] == 'bmc':
            return self.bmc_apply()
        repo = self.repository()
        inventory, states = self.inventory()
        self.record_unreported_job(repo, inventory)
        if args['state'] == 'cancelled':
            return self.cancel(inventory)
        self.require_idle_agent(inventory)
        facts = inventory['facts']
        stored = self.packages_for_server(repo, facts, args['trusted_keys'])
        infos = [package.info for package in stored]
        files = {package.package_id: package for package in stored}
        action = 'uninstall' if args['state'] == 'absent' else 'install'
        requests = self.requested_modules()
        if action == 'uninstall' and requests is None:
            raise ExupError('state=absent needs modules: name the software to uninstall', code='modules_required')
        self.mark_restart(repo, states, boot_id=facts.get('boot_id'))
        items, skipped = plan.build_plan(states, infos, requests, action, args['latest_only'])
        planned = [item.as_dict() for item in items]
        for row in planned:
            row['sha256'], row['size'] = files[row['package_id']].sha256, files[row['package_id']].size
        place = apply_report.ApplyPlace(self.server_name)
        base = {'plan': planned, 'skipped_modules': skipped, 'model': facts['model'], 'os': facts['os'], 'staged': apply_report.staged_versions(states)}
        base['offered'] = locked_plan.offered(stored)  # what a locked plan's repository digest is made of
        if not items:
            return dict(base, **apply_report.nothing_to_apply(base['staged'], place))
        refused = self.window_gate(repo, base)
        if refused:
            return refused
        if self._task.check_mode:
            return dict(base, **apply_report.would_apply(planned, place))
        outcome = self.run_job(repo, inventory, planned, files, action)
        if args['allow_reboot'] and outcome['reboot_allowed']:
            # the playbook restarts now (003 §2.1.2): Table 8 "rebooting" until the boot id changes, applies refused meanwhile
            self.record_restart(repo, apply_report.restarted_modules(outcome['results']), boot_id=facts.get('boot_id'))
        return dict(base, **outcome)

    def window_gate(self, repo, base):
        """Outside the maintenance windows, or too little of the window left: the result that starts nothing, else None.

        Sets base['window'] to the verdict (docs/maintenance-windows.md)."""
        texts = self.args.get('maintenance_windows')
        if texts is None:  # not given: the host's own windows, so every playbook that applies keeps them
            texts = self.host_var('exup_maintenance_windows')
            texts = [texts] if isinstance(texts, str) else texts  # one calendar written without a list
        if not texts:
            return None
        now = datetime.datetime.now(window.UTC)
        if self.args.get('expected_duration') is not None:
            estimate = {'seconds': self.args['expected_duration'], 'basis': 'option', 'runs': 0}
        else:
            # the server's events of either kind of repository (a service older than API 4 sends none: the default)
            events = repo.recent_events(5000, self.server_name)
            estimate = window.estimate_duration(window.apply_durations(events, self.server_name))
            estimate = window.with_restart(estimate, base.get('plan') or [], self.args.get('allow_reboot'), self.args.get('reboot_timeout') or 0)
        verdict = window.verdict(window.occurrences(texts, now), now, estimate['seconds'])
        base['window'] = dict(verdict, estimate=estimate)
        if verdict['may_start']:
            return None
        msg = 'not started on %s: %s' % (self.server_name, verdict['reason'])
        return dict(base, changed=False, skipped=True, skipped_reason=msg, msg=msg, window_code=verdict['code'], results=[])

    def require_idle_agent(self, inventory):
        """An apply needs the agent, and no job of it running."""
        if not inventory['agent']['installed']:
            raise ExupError(
                'the exup agent is not installed on %s: install it with exup.fleet.exup_agent (or the agent_install playbook)' % self.server_name,
                code='agent_missing',
            )
        if inventory['active_job']:
            job = inventory['active_job']
            raise ExupError(
                'job %s is still running on %s (%d of %d done): wait for it or cancel it with state=cancelled'
                % (job['job_id'], self.server_name, job['done'], job['total']),
                code='job_running',
                job=job,
            )

    def run_job(self, repo, inventory, planned, files, action):
        args = self.args
        started = 'uninstall_started' if action == 'uninstall' else 'apply_started'
        self.log_events(repo, (started, None, {'packages': [row['package_id'] for row in planned]}))
        inbox = set(inventory['inbox'])
        host_items = [contract.HostItem.for_plan(row, row['sha256'], row['size']).as_dict() for row in planned]  # send_packages adds content
        missing = [item for item in host_items if item['sha256'] not in inbox]  # only those the host lacks are fetched and sent
        bundle = None
        if self.transfer_from_service():
            self.service_items(repo, missing, files)  # the host fetches them from the repository service itself
            self.package_transfer = 'service'
        else:
            paths = self.local_paths(repo, [files[item['package_id']] for item in missing])
            bundle = self.send_packages(missing, {item['sha256']: paths[item['package_id']] for item in missing})
            self.package_transfer = 'controller'
        try:
            answer = self.host_call(
                'start',
                items=host_items,
                bundle=bundle,
                trusted_keys_pem=args['trusted_keys'],
                lease_seconds=args['lease_seconds'],
                wait_seconds=min(args['poll_interval'], args['lease_seconds'] / 2.0),
            )
        except HostCallFailed as exc:
            failed = 'uninstall_failed' if action == 'uninstall' else 'apply_failed'
            self.log_events(repo, (failed, exc.result.get('msg'), {'error': exc.result.get('error')}))
            raise
        answer = self.follow(answer)
        return dict(self.outcome(repo, answer, planned, action), package_transfer=self.package_transfer)

    def follow(self, answer):
        """Poll until the job ends; each poll renews the lease (if polls stop, the agent cancels the rest)."""
        args = self.args
        deadline = time.time() + args['wait_timeout']
        shown = None
        while answer['job']['state'] != 'finished':
            job = answer['job']
            running = [item for item in job['items'] if item['status'] == 'running']
            line = '%d/%d done%s%s' % (
                job['done'],
                job['total'],
                (', %s %s running' % (running[0]['module_id'], running[0]['to_version'] or 'uninstall')) if running else '',
                RUNNER_LOST if job.get('runner_lost') else '',
            )
            if line != shown:
                self.progress('exup_apply job %s: %s' % (job['job_id'], line))
                shown = line
            if time.time() > deadline:
                raise ExupError(
                    'job %s on %s did not finish within %d s; polling stopped, so the agent cancels what has not started%s'
                    % (job['job_id'], self.server_name, args['wait_timeout'], RUNNER_LOST if job.get('runner_lost') else ''),
                    code='timeout',
                    job=job,
                )
            answer = self.poll_status(job)
        return answer

    def poll_status(self, job):
        """One status poll; a poll that fails is progress_unavailable (003 Table 19), not a failed apply: the job may go on."""
        args = self.args
        try:
            return self.host_call(
                'status', job_id=job['job_id'], lease_seconds=args['lease_seconds'], wait_seconds=min(args['poll_interval'], args['lease_seconds'] / 2.0)
            )
        except HostCallFailed as exc:
            # 'job', not 'job_id': the job's own outcome is still to be logged when it is next seen (record_unreported_job)
            self.log_events(
                self.opened_repository, ('progress_unavailable', exc.result.get('msg') or 'no answer', {'error': exc.result.get('error'), 'job': job['job_id']})
            )
            raise

    def outcome(self, repo, answer, planned, action):
        """Log the job's outcome and report it (apply_report's shapes)."""
        job = answer['job']
        versions_after = answer.get('versions_after', {})
        place = apply_report.ApplyPlace(self.server_name)
        results = apply_report.package_results(job['items'], place, versions_after)
        code, cause, detail = self.job_outcome(job)
        self.log_events(repo, (code, cause, detail), *ev.unchanged_packages(results, 'agent'))
        if apply_report.agent_removed(results):
            self.unregister(repo, 'agent uninstalled')
        finished = apply_report.FinishedApply(results, action=action, code=code, cause=cause, job_error=job.get('error'))
        return dict(
            apply_report.apply_summary(finished, place),
            job_id=job['job_id'],
            results=results,
            diff=apply_report.apply_diff(planned, place, versions_after),
            versions_after=versions_after,
        )

    def cancel(self, inventory):
        job = inventory['active_job']
        if not job:
            return {'changed': False, 'msg': 'no job is running on %s' % self.server_name}
        if self._task.check_mode:
            return {'changed': True, 'job': job, 'msg': 'would cancel the packages of job %s that have not started' % job['job_id']}
        answer = self.host_call('cancel', job_id=job['job_id'])
        return {
            'changed': answer['changed'],
            'job': answer['job'],
            'job_id': job['job_id'],
            'msg': 'cancel requested: packages of job %s that have not started will not run' % job['job_id'],
        }
