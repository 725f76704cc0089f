# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``via: bmc`` for exup_info and exup_apply: the out-of-band path, run on the controller (003 §1.2.5).

The rules are the agent path's (``plan.py``: selection, order, gating, reboot
rule) with packages of kind ``bmc`` for BIOS and BMC firmware only. With no
agent on the server, what the agent would keep (previous generation, the block
until a reset) is kept in the repository (table ``bmc_modules``).
"""

from __future__ import annotations

import dataclasses
import os
import time

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.bmc import client as bmc_core
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host.agent_runner import module_changes
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.remote import is_remote
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report, locked_plan, plan, status_report
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.blocks import BlockEvidence, block_in_force
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.wire import TICKET_MAX_SECONDS
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing

BMC_OS = 'any'  # BMC packages target every OS: the BMC does not care what the server runs
#: what the repository keeps of a module managed through its BMC (the rest of module_changes is the agent's)
BMC_RECORD_FIELDS = ('previous', 'block', 'staged')
BLOCK_ENDED = {'block': None, 'staged': None}


class BmcPath:
    """Mixin for the action plugins (self.args, self.server_name, self.repository(), self.log_events, self.progress;
    ServerStatus's mark_restart, manual_icons, record_restart)."""

    def bmc_config(self):
        args = self.args
        missing = [name for name in ('bmc_address', 'bmc_username', 'bmc_password') if not args.get(name)]
        if missing:
            raise ExupError('via: bmc needs %s' % ', '.join(missing), code='argument_invalid')
        return bmc_core.BmcConfig(
            address=args['bmc_address'],
            username=args['bmc_username'],
            password=args['bmc_password'],
            protocol=args['bmc_protocol'],
            port=args['bmc_port'],
            system=args['bmc_system'],
            validate_certs=args['bmc_validate_certs'],
            ca_path=args['bmc_ca_path'],
            timeout=args['bmc_timeout'],
        )

    def bmc_connect(self):
        if not bmc_core.HAS_PYGHMI:
            raise ExupError('via: bmc needs the pyghmi library on the controller: %s' % bmc_core.PYGHMI_IMPORT_ERROR, code='missing_library')
        return bmc_core.connect(self.bmc_config())

    def bmc_model(self, inventory):
        model = self.args.get('model') or inventory['model']
        if not model:
            raise ExupError('BMC %s reports no model (IPMI does not): give model' % self.args['bmc_address'], code='argument_invalid')
        if self.args.get('model') and inventory['model'] and inventory['model'] != self.args['model']:
            raise ExupError('BMC %s reports model %r, not %r' % (self.args['bmc_address'], inventory['model'], self.args['model']), code='wrong_model')
        return model

    def bmc_states(self, repo, versions):
        """ModuleState per BMC-managed module; when a block ends is rules/blocks' (by the version the BMC reports)."""
        saved = repo.bmc_module_records(self.args['manager_id'], self.server_name) if repo is not None else {}
        states = {}
        for module_id in bmc_core.BMC_MODULES:
            record = dataclasses.asdict(saved[module_id]) if module_id in saved else {}
            if versions.get(module_id) or record:
                block, staged = block_in_force(record, BlockEvidence(version=versions.get(module_id)))
                states[module_id] = plan.ModuleState(module_id, current=versions.get(module_id), previous=record.get('previous'), block=block, staged=staged)
        return states

    def bmc_packages(self, repo, model, trusted_keys=None):
        """(StoredPackages for the BMC path, other module ids the repository has for this model: not manageable through the BMC)."""
        stored = self.packages_for_server(repo, {'model': model, 'os': BMC_OS}, trusted_keys) if repo is not None else []
        usable = [package for package in stored if package.module_id in bmc_core.BMC_MODULES and package.info.kind in bmc_core.BMC_KINDS]
        others = sorted({package.module_id for package in stored if package.module_id not in bmc_core.BMC_MODULES})
        return usable, others

    # ------------------------------------------------------------------ exup_info via: bmc
    def bmc_info(self):
        repo = self.repository(required=False)
        bmc = self.bmc_connect()
        inventory = bmc.inventory()
        model = self.bmc_model(inventory)
        states = self.bmc_states(repo, bmc_core.firmware_versions(inventory))
        self.mark_restart(repo, states, power=inventory['power'])
        usable, others = self.bmc_packages(repo, model, self.args.get('trusted_keys'))
        infos = [package.info for package in usable]
        icons = self.manual_icons(repo, infos, kinds=bmc_core.BMC_KINDS)
        report = status_report.status_report(
            status_report.ServerView(states, infos, icons, kinds=bmc_core.BMC_KINDS, repository=repo is not None, listed=list(states))
        )
        result = {
            'changed': False,
            'via': 'bmc',
            'server': self.server_name,
            'model': model,
            'os': None,
            'bmc': {
                'address': self.args['bmc_address'],
                'protocol': self.args['bmc_protocol'],
                'power': inventory['power'],
                'firmware': [{key: item[key] for key in ('name', 'id', 'version', 'module', 'updateable')} for item in inventory['firmware']],
            },
            'modules': report.modules,
            'not_manageable_via_bmc': others,
            'server_status': report.server_status,
        }
        if self.args.get('bmc_tasks'):
            # 13.4 pre-flight gate: is the BMC's task queue empty? (IPMI has no task service: null)
            result['bmc']['tasks'] = bmc.tasks() if hasattr(bmc, 'tasks') else None
        result.update(self.bmc_agent_installable(inventory, repo, model))
        if repo is not None and not self._task.check_mode:
            self.log_events(repo, ('versions_queried', None, {'status': result['server_status'], 'via': 'bmc'}))
        return result

    def bmc_agent_installable(self, inventory, repo=None, model=None):
        """003 §3.8.3: a server managed through its BMC whose OS runs and has no agent can take the agent."""
        blockers = []
        if inventory['power'] != 'on':
            blockers.append({'code': 'os_not_running', 'msg': 'the server is powered %s' % inventory['power']})
            return {'agent': None, 'agent_installable': False, 'agent_install_blockers': blockers}
        try:
            host = self.host_call('inventory')
        except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure means the OS cannot be reached
            reason = getattr(exc, 'result', {}).get('msg') or str(exc)
            blockers.append({'code': 'os_unreachable', 'msg': 'the OS of %s cannot be reached: %s' % (self.server_name, reason)})
            return {'agent': None, 'agent_installable': False, 'agent_install_blockers': blockers}
        # The DMI model of the OS may be empty where the BMC knows it: judge the agent packages by the BMC's.
        blockers = self.agent_blockers(repo, host['prerequisites'], host['facts']['model'] or model, host['facts']['os'])
        installed = host['agent']['installed']
        return {'agent': host['agent'], 'agent_installable': not installed and not blockers, 'agent_install_blockers': blockers, 'facts': host['facts']}

    # ------------------------------------------------------------------ exup_apply via: bmc
    def bmc_apply(self):
        args = self.args
        repo = self.repository()
        if args['state'] != 'present':
            raise ExupError('via: bmc only applies firmware (state present): uninstall and cancel need the agent', code='bmc_unsupported')
        bmc = self.bmc_connect()
        inventory = bmc.inventory()
        model = self.bmc_model(inventory)
        versions = bmc_core.firmware_versions(inventory)
        states = self.bmc_states(repo, versions)
        if args['power_cycle']:
            return self.bmc_power_cycle(repo, bmc, states)
        self.mark_restart(repo, states, power=inventory['power'])
        requests = self.bmc_requests()
        usable, others = self.bmc_packages(repo, model, args['trusted_keys'])
        files = {package.package_id: package for package in usable}
        items, skipped = plan.build_plan(states, [package.info for package in usable], requests, 'install', args['latest_only'], kinds=bmc_core.BMC_KINDS)
        planned = [dict(item.as_dict(), sha256=files[item.package_id].sha256, size=files[item.package_id].size) for item in items]
        base = {
            'via': 'bmc',
            'plan': planned,
            'skipped_modules': skipped,
            'model': model,
            'staged': apply_report.staged_versions(states),
            'not_manageable_via_bmc': others,
        }
        base['offered'] = locked_plan.offered(usable)  # what a locked plan's repository digest is made of
        if not items:
            return dict(base, **apply_report.nothing_to_apply(base['staged'], self.bmc_place()))
        if args['bmc_protocol'] == 'ipmi':
            bmc.refuse_update()
        # the maintenance windows (action exup_apply) before any ticket is issued or firmware fetched for the BMC
        refused = self.window_gate(repo, base)
        if refused:
            return refused
        sources = self.bmc_sources(repo, planned, files)
        base['package_transfer'] = self.package_transfer
        if self._task.check_mode:
            return dict(base, **apply_report.would_apply(planned, self.bmc_place()))
        self.log_events(repo, ('apply_started', None, {'packages': [row['package_id'] for row in planned], 'via': 'bmc'}))
        results = self.bmc_run(bmc, planned, sources, inventory)
        return dict(base, **self.bmc_outcome(repo, bmc, results, planned))

    def bmc_requests(self):
        """The modules asked for (None: all); one the BMC does not manage is refused."""
        requests = self.requested_modules()
        other = sorted(set(requests or ()) - set(bmc_core.BMC_MODULES))
        if other:
            raise ExupError(
                '%s cannot be managed through the BMC (only %s): use the agent' % (', '.join(other), ', '.join(bmc_core.BMC_MODULES)),
                code='not_manageable_via_bmc',
                modules=other,
            )
        return requests

    def bmc_run(self, bmc, planned, sources, inventory):
        """Run the plan through the BMC, with a progress line per task state."""
        args = self.args

        def progress(item, state, percent):
            self.progress('BMC update %s %s: %s%s' % (item['module_id'], item['to_version'], state, '' if percent is None else ' %s%%' % percent))

        return bmc_core.run_plan(bmc, planned, sources, args['update_method'], args['apply_time'], args['task_timeout'], progress=progress, inventory=inventory)

    def bmc_sources(self, repo, planned, files):
        """Where the BMC gets each package: pushed from the controller, or fetched by the BMC (SimpleUpdate ImageURI).

        A local repository's packages are verified here first (the BMC checks them too). From a remote repository the
        BMC fetches the file straight from the repository service with a signed, expiring URL (no password on the BMC,
        no copy through the controller); the repository verified it when it took it, and only packages signed by a key
        in trusted_keys are planned. A push from a remote repository fetches the file to the controller and verifies it.
        """
        args = self.args
        keyring = KeyRing.from_pem_list(args['trusted_keys'])
        packages = [files[row['package_id']] for row in planned]
        if is_remote(args['repository']) and args['update_method'] != 'push':
            self.package_transfer = 'service'
            if self._task.check_mode:  # check mode asks for nothing: the plan says how the files would go
                return {}
            # the BMC fetches each file when its task starts: the apply's own task limits, at most TICKET_MAX_SECONDS
            seconds = min(args['task_timeout'] * len(packages) + 600, TICKET_MAX_SECONDS)
            urls = repo.ticket_urls(packages, seconds=seconds, base_url=args['image_base_url'])
            return {package.package_id: urls[package.sha256] for package in packages}
        self.package_transfer = 'controller'
        if self._task.check_mode and is_remote(args['repository']):
            return {}  # check mode downloads no firmware to the controller
        paths = self.local_paths(repo, packages)
        sources = {}
        for package in packages:
            path = paths[package.package_id]
            verify_package(path, keyring)
            if args['update_method'] == 'push':
                sources[package.package_id] = path
            else:
                base = args['image_base_url']
                if not base:
                    raise ExupError(
                        'update_method simple_update needs image_base_url: where the BMC fetches the repository\'s pool over HTTP', code='argument_invalid'
                    )
                relative = os.path.relpath(path, args['repository'])
                sources[package.package_id] = base.rstrip('/') + '/' + relative.replace(os.sep, '/')
        return sources

    def bmc_place(self):
        return apply_report.ApplyPlace(self.server_name, bmc_address=self.args['bmc_address'])

    def bmc_outcome(self, repo, bmc, results, planned):
        """Record what each update means for its module, reset when allowed, log the outcome, report it (apply_report's shapes)."""
        for result in results:
            result['reboot_required'] = result['reset_required']
            self.bmc_record(repo, result)
        rebooted = False
        if self.args['allow_reboot'] and plan.reboot_allowed(results):
            rebooted = self.bmc_reset(bmc, results)
            self.record_restart(repo, apply_report.restarted_modules(results))  # "rebooting" until the BMC reports the system on (Table 8)
            for module_id in apply_report.restarted_modules(results):
                repo.set_bmc_module(self.args['manager_id'], self.server_name, module_id, **BLOCK_ENDED)
        versions_after = self.bmc_read_versions(bmc)
        code, cause, detail = self.job_outcome({'job_id': 'bmc-%d' % int(time.time()), 'items': results})
        detail['via'] = 'bmc'
        self.log_events(repo, (code, cause, detail))
        place = self.bmc_place()
        reported = apply_report.package_results(results, place, versions_after, rebooted=rebooted)
        self.log_events(repo, *ev.unchanged_packages(reported, 'bmc'))
        summary = apply_report.apply_summary(apply_report.FinishedApply(reported, rebooted=rebooted), place)
        if summary.get('failed'):
            self.failure_logged = True
        return dict(summary, results=reported, versions_after=versions_after, diff=apply_report.apply_diff(planned, place, versions_after))

    def bmc_record(self, repo, result):
        """Keep what a finished update means for its module (module_changes); a success is recorded even when it changes nothing."""
        changes = module_changes(result)
        if changes or result['status'] == 'succeeded':
            fields = {name: value for name, value in changes.items() if name in BMC_RECORD_FIELDS}
            repo.set_bmc_module(self.args['manager_id'], self.server_name, result['module_id'], **fields)

    def bmc_reset(self, bmc, results):
        """Reset what the applied firmware waits for: the server for BIOS, the BMC for its own firmware (003 §2.1.2)."""
        waiting = set(apply_report.restarted_modules(results))  # reboot_required is the BMC's reset_required here
        self.reset_through_bmc(bmc, server='system-bios' in waiting, controller='bmc-firmware' in waiting)
        return bool(waiting)

    def reset_through_bmc(self, bmc, server, controller):
        """Power cycle the server and/or reset the BMC, and log it (003 Table 18-19: reboot and reboot failed)."""
        done = []
        try:
            if server:
                self.progress('power cycling the server through BMC %s' % self.args['bmc_address'])
                bmc.reset_system()
                done.append('server')
            if controller:
                self.progress('resetting BMC %s' % self.args['bmc_address'])
                bmc.reset_bmc()
                done.append('bmc')
        except bmc_core.BmcError as exc:
            self.log_events(self.opened_repository, ('reset_failed', exc.msg, {'error': exc.code, 'done': done, 'via': 'bmc'}))
            raise
        if done:
            self.log_events(self.opened_repository, ('server_reset', None, {'reset': done, 'via': 'bmc'}))

    def bmc_read_versions(self, bmc, wait_seconds=120):
        """Versions after the update; the BMC may be restarting, so try again for a while."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                return bmc.versions()
            except bmc_core.BmcError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(2)

    def bmc_power_cycle(self, repo, bmc, states):
        """003 §2.1.5 "remote power control": restart the server through its BMC; blocks until reset end."""
        if self._task.check_mode:
            return {'changed': True, 'via': 'bmc', 'rebooted': False, 'msg': 'would power cycle the server through its BMC'}
        # A staged BMC firmware waits for the BMC's own reset, which a power cycle of the server does not do.
        bmc_waits = states.get('bmc-firmware') is not None and states['bmc-firmware'].block == 'reboot_required'
        self.reset_through_bmc(bmc, server=True, controller=bmc_waits)
        self.record_restart(repo, [module_id for module_id, state in states.items() if state.block == 'reboot_required'])
        for module_id, state in states.items():
            if state.block:
                repo.set_bmc_module(self.args['manager_id'], self.server_name, module_id, **BLOCK_ENDED)
        return {
            'changed': True,
            'via': 'bmc',
            'rebooted': True,
            'bmc_reset': bmc_waits,
            'msg': 'server power cycled%s through BMC %s' % (' and BMC reset' if bmc_waits else '', self.args['bmc_address']),
        }
