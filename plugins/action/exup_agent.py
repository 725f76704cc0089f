# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of exup_agent: install, upgrade, uninstall and query the agent (003 §3.8, §3.9).

The package source is chosen on the controller (the wizard's step 6): the
repository's newest, the feed (a repository sync for this server), installation
media (a mounted folder) or a given file, which is added to the repository unless
the repository holds a newer one and ``prefer_newer`` picks that instead.
"""

from __future__ import annotations

import glob
import os

from ansible_collections.exup.fleet.plugins.module_utils._exup import transport
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, PackageError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import file_digest, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import support
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key
from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import AGENT_SPEC, LINUX_AGENT_DIR
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_action import ExupAction, HostCallFailed, repository_agent_support


def newest(candidates):
    """The newest of [(info, path)]."""
    return max(candidates, key=lambda pair: version_key(pair[0].version)) if candidates else None


class ActionModule(ExupAction):
    SPEC = AGENT_SPEC

    def failure_event(self):
        return {'present': 'agent_install_failed', 'absent': 'agent_uninstall_failed', 'logs_collected': 'agent_logs_failed'}.get(self.args['state'])

    def act(self):
        state = self.args['state']
        inventory, states = self.inventory()
        agent = inventory['agent']
        if state == 'query':
            return {
                'changed': False,
                'agent': agent,
                'status': 'installed' if agent['installed'] else 'not_installed',
                'version': agent['version'],
                'folder': agent['folder'],
                'facts': inventory['facts'],
                'prerequisites': inventory['prerequisites'],
            }
        if state == 'logs_collected':
            return self.collect_logs(agent)
        if state == 'absent':
            return self.uninstall(agent)
        return self.install(inventory, states)

    # ----------------------------------------------------------------- install / upgrade
    def check_wizard(self):
        args = self.args
        if not args['license_accepted']:
            raise ExupError('the agent license must be accepted before installing (license_accepted: true)', code='license_not_accepted')
        if args['os_type'] == 'windows':
            raise ExupError('this collection installs the agent on Linux servers only; Windows is not supported yet', code='unsupported_os')
        if args['install_dir'] and os.path.normpath(args['install_dir']) != LINUX_AGENT_DIR:
            raise ExupError(
                'on Linux the agent always installs to %s; install_dir %s cannot be used' % (LINUX_AGENT_DIR, args['install_dir']), code='install_dir_fixed'
            )

    def keyring(self):
        if not self.args['trusted_keys']:
            raise ExupError('trusted_keys is required to install the agent', code='argument_invalid')
        return KeyRing.from_pem_list(self.args['trusted_keys'])

    def repo_agents(self, repo, facts):
        """[(info, StoredPackage)] of the repository's agent packages for this server that this code can read."""
        return [(package.info, package) for package in self.packages_for_server(repo, facts) if support.is_agent(package.info) and package.info.compatible]

    @staticmethod
    def refuse_unsupported(repo, facts):
        """Say why (003 §3.8 results): the repository's agent packages support neither this model nor this OS."""
        blockers = support.support_blockers(repository_agent_support(repo), facts['model'], facts['os'], support.WIZARD, facts.get('os_pretty_name'))
        if blockers:
            raise ExupError(blockers[0]['msg'], code=blockers[0]['code'], status='failed')

    def choose_package(self, repo, keyring, facts, states):
        """(info, path, source_used) of the agent package to install."""
        args = self.args
        source = args['source']
        if source == 'feed':
            if not args['feed_url']:
                raise ExupError('source=feed needs feed_url', code='argument_invalid')
            client = transport.HttpClient(
                proxy_url=args['proxy_url'],
                proxy_username=args['proxy_username'],
                proxy_password=args['proxy_password'],
                proxy_auth=args['proxy_auth'],
                validate_certs=args['validate_certs'],
                ca_path=args['ca_path'],
                timeout=args['timeout'],
            )
            if self._task.check_mode:
                # Check mode writes nothing: the sync only says what it would download.
                options = SyncOptions(args['feed_url'], args['manager_id'], servers=[self.server_record(facts, states)])
                synced = repo.sync(client, keyring, options, check_mode=True)
                if newest(self.repo_agents(repo, facts)) is None:
                    return None, None, 'feed'
                self.feed_would_download = [item['package_id'] for item in synced.added]  # in check mode: what it would download
            else:
                self.register(repo, facts, states)
                repo.sync(client, keyring, SyncOptions(args['feed_url'], args['manager_id']))
            source = 'repository'
            used = 'feed'
        else:
            used = source
        if source == 'repository':
            chosen = newest(self.repo_agents(repo, facts))
            if chosen is None:
                self.refuse_unsupported(repo, facts)
                raise ExupError(
                    'the repository has no agent package for %s on %s: this server does not support exup, or use source=feed, media or file'
                    % (facts['model'], facts['os']),
                    code='no_agent_package',
                )
            return chosen[0], self.local_paths(repo, [chosen[1]])[chosen[1].package_id], used
        if source == 'media':
            if not args['media_path'] or not os.path.isdir(args['media_path']):
                raise ExupError('media_path %s is not a mounted folder' % args['media_path'], code='media_unavailable')
            found = []
            for path in sorted(glob.glob(os.path.join(args['media_path'], '**', '*.zip'), recursive=True)):
                try:
                    info = verify_package(path, keyring).info
                except PackageError:
                    continue  # media hold other files too; only a verified agent package counts
                if support.is_agent(info) and info.targets(facts['model'], facts['os']):
                    found.append((info, path))
            chosen = newest(found)
            if chosen is None:
                raise ExupError('no verified agent package for %s on %s under %s' % (facts['model'], facts['os'], args['media_path']), code='no_agent_package')
            return chosen[0], chosen[1], 'media'
        return self.choose_file(repo, keyring, facts)

    def choose_file(self, repo, keyring, facts):
        path = self.args['file']
        if not path or not os.path.isfile(path):
            raise ExupError('file %s does not exist on the controller' % path, code='argument_invalid')
        info = verify_package(path, keyring).info
        if not support.is_agent(info):
            raise ExupError('%s is a %s package, not the agent' % (path, info.module_id), code='not_agent_package')
        newer = newest([pair for pair in self.repo_agents(repo, facts) if version_key(pair[0].version) > version_key(info.version)])
        if newer and self.args['prefer_newer']:
            # 003 §3.8.1.1 step 6: using the repository's newer package leaves the given file out of the repository.
            return newer[0], self.local_paths(repo, [newer[1]])[newer[1].package_id], 'repository_newer'
        if not self._task.check_mode:
            results = repo.add_files([path], keyring, mode='pinned')
            if results and results[0].get('result', '').startswith('error'):
                raise ExupError('adding %s to the repository failed: %s' % (path, results[0].get('msg')), code='add_failed')
        return info, path, 'file'

    def install(self, inventory, states):
        self.check_wizard()
        repo = self.repository()
        keyring = self.keyring()
        facts, agent = inventory['facts'], inventory['agent']
        self.refuse_prerequisites(inventory['prerequisites'])
        info, path, used = self.choose_package(repo, keyring, facts, states)
        if info is None:  # check mode, source=feed, nothing in the repository yet
            return self.would_sync(agent, used)
        refused = support.package_blocker(info, facts['model'], facts['os'])
        if refused:
            raise ExupError(refused['msg'], code=refused['code'], status='failed')
        base = {'source_used': used, 'package_id': info.package_id, 'folder': LINUX_AGENT_DIR}
        if self._task.check_mode and used == 'feed':
            base['feed_would_download'] = self.feed_would_download
        if agent['installed'] and version_key(agent['version']) >= version_key(info.version):
            msg = 'agent %s is installed on %s (%s offered)' % (agent['version'], self.server_name, info.version)
            return dict(base, changed=False, status='unchanged', version=agent['version'], msg=msg)
        status = 'upgraded' if agent['installed'] else 'installed'
        if self._task.check_mode:
            return dict(base, changed=True, status=status, version=info.version, diff={'before': {'agent': agent['version']}, 'after': {'agent': info.version}})
        installed = self.install_package(repo, info, path)
        self.register(repo, facts, self.inventory()[1])
        version = installed['version']
        return dict(
            base,
            changed=True,
            status=status,
            version=version,
            agent=installed,
            diff={'before': {'agent': agent['version']}, 'after': {'agent': version}},
            msg='agent %s %s in %s on %s' % (version, status, LINUX_AGENT_DIR, self.server_name),
        )

    def refuse_prerequisites(self, blockers):
        """The host's own reasons the agent cannot be installed (virtual machine, model, OS, conflicting software)."""
        if blockers:
            raise ExupError(
                'the agent cannot be installed on %s: %s' % (self.server_name, '; '.join(item['msg'] for item in blockers)),
                code=blockers[0]['code'],
                blockers=list(blockers),
                status='failed',
            )

    @staticmethod
    def would_sync(agent, used):
        """Check mode with source=feed and no agent package in the repository yet: what the task would do."""
        return {
            'changed': True,
            'status': 'installed' if not agent['installed'] else 'upgraded',
            'source_used': used,
            'version': None,
            'folder': LINUX_AGENT_DIR,
            'msg': 'would sync the repository from the feed, then install its newest agent package',
        }

    def install_package(self, repo, info, path):
        """Send the agent package and run its install on the host (exup_host agent_install); the agent record it answers."""
        self.log_events(repo, ('agent_install_started', None, {'package_id': info.package_id}))
        size, digest = file_digest(path)
        package = {'sha256': digest, 'size': size, 'package_id': info.package_id}
        bundle = self.send_packages([package], {digest: path})
        try:
            answer = self.host_call(
                'agent_install',
                package=package,
                bundle=bundle,
                trusted_keys_pem=self.args['trusted_keys'],
                agent_models=list(info.models),
                agent_os=list(info.os),
            )
        except HostCallFailed as exc:
            exc.result['status'] = 'failed'
            raise
        self.log_events(repo, ('agent_installed', None, {'version': info.version, 'folder': LINUX_AGENT_DIR}))
        return answer['agent']

    # ----------------------------------------------------------------- uninstall, logs
    def uninstall(self, agent):
        repo = self.repository(required=False)
        if not agent['installed']:
            return {'changed': False, 'status': 'not_installed', 'msg': 'the agent is not installed on %s' % self.server_name}
        if self._task.check_mode:
            return {'changed': True, 'status': 'uninstalled', 'diff': {'before': {'agent': agent['version']}, 'after': {'agent': None}}}
        answer = self.host_call('agent_uninstall')
        self.log_events(repo, ('agent_uninstalled', None, {'version': agent['version']}))
        if repo is not None:
            self.unregister(repo, 'agent uninstalled')
        return {
            'changed': True,
            'status': 'uninstalled',
            'agent': answer['agent'],
            'version': None,
            'diff': {'before': {'agent': agent['version']}, 'after': {'agent': None}},
            'msg': 'agent %s removed from %s; agent management of this server has ended' % (agent['version'], self.server_name),
        }

    def collect_logs(self, agent):
        repo = self.repository(required=False)  # opened first, so a failure below is logged too (agent_logs_failed)
        dest = self.args['logs_dest']
        if not dest:
            raise ExupError('state=logs_collected needs logs_dest (a folder on the controller)', code='argument_invalid')
        files = self.host_call('logs')['files']
        target = os.path.join(dest, self.server_name)
        collected = []
        if not self._task.check_mode:
            os.makedirs(target, exist_ok=True)
            for remote in files:
                local = os.path.join(target, os.path.basename(remote))
                self._connection.fetch_file(remote, local)
                collected.append(local)
            self.log_events(repo, ('agent_logs_collected', None, {'files': len(collected)}))
        return {'changed': bool(collected), 'files': collected, 'remote_files': files, 'dest': target}
