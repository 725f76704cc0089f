# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the action plugins of exup_info, exup_apply and exup_agent share.

They run on the controller (the manager): the repository is a path there, the
rules come from the core (``plan.py``), and the host side is one internal module,
``exup.fleet.exup_host``, called per phase. Failures from the core or the host
come back as ``failed`` results with ``msg`` and a stable ``error`` code.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import tarfile
import tempfile
import time
import typing

from ansible.errors import AnsibleConnectionFailure, AnsibleFileNotFound
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract, events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.remote import is_remote, open_repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan, support
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.plan import ModuleState
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.wire import TICKET_MAX_SECONDS
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, key_texts, read_key_file

display = Display()
#: a pool ticket handed to a managed host lives this long plus its files at 64 KiB/s (it fetches them at once)
TICKET_FETCH_SECONDS = 600
HOST_MODULE = 'exup.fleet.exup_host'
#: packages up to this size in all travel inside the module call (no extra round trips); larger ones in one tar
INLINE_LIMIT = 512 * 1024


def repository_agent_support(repo):
    """What the repository's agent packages support (003 §2.3.2); unknown without a repository or agent packages."""
    if repo is None:
        return support.AgentSupport()
    return support.agent_support([package.info for package in repo.packages(module_id=support.AGENT_MODULE)])


class HostCallFailed(Exception):
    """The host module failed or the host was unreachable; ``result`` is its result."""

    def __init__(self, result):
        super().__init__(result.get('msg'))
        self.result = result


class ExupAction(ActionBase):
    """Base class: argument validation, host calls, transfers, repository and events."""

    SPEC: typing.ClassVar[dict] = {}
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        self._supports_async = False
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=self.SPEC)
        if args.get('repository') and not is_remote(args['repository']):
            args['repository'] = os.path.abspath(os.path.expanduser(os.path.expandvars(args['repository'])))  # as type=path did
        self.args = args
        self.task_vars = task_vars or {}
        self.server_name = args.get('server_name') or self.task_vars.get('inventory_hostname')
        self.opened_repository = None
        self.failure_logged = False
        self.package_transfer = None  # how package files reached the host or BMC: service or controller
        self.download_dir = None  # package files fetched from a remote repository for this task, removed at its end
        try:
            self.resolve_trusted_keys()
            result.update(self.act())
        except HostCallFailed as exc:
            result.update(exc.result)
            result.setdefault('failed', True)
            self.log_failure(result)
        except ExupError as exc:
            result.update(dict(exc.details, failed=True, msg=exc.msg, error=exc.code))
            self.log_failure(result)
        finally:
            tmpdir = self._connection._shell.tmpdir
            if tmpdir:
                self._remove_tmp_path(tmpdir)
            if self.download_dir:
                shutil.rmtree(self.download_dir, ignore_errors=True)
        return result

    def host_var(self, name, default=None):
        """A host variable as the task sees it: templated (a group var may be "{{ ... }}" or a lookup)."""
        value = self.task_vars.get(name, default)
        return self._templar.template(value) if value is not None else value

    def act(self):
        raise NotImplementedError

    def failure_event(self):
        """The event code a failure of this task leaves in the repository's log (003 Table 19)."""
        return None

    def log_failure(self, result):
        """Every failed operation leaves an error event with its cause, once."""
        code = self.failure_event()
        if code and not self.failure_logged:
            self.log_events(self.repository_for_log(), (code, result.get('msg'), {'error': result.get('error')}))

    def repository_for_log(self):
        """Where a failure is logged: the repository opened, else the task's if it exists (a host that failed before it was opened)."""
        if self.opened_repository is None and self.args.get('repository'):
            try:
                repo = open_repository(self.args, self._task.check_mode)
                if repo.exists():
                    self.opened_repository = repo
            except ExupError:
                return None  # an unreachable remote repository: the task's own error says so
        return self.opened_repository

    # ----------------------------------------------------------------- keys
    def resolve_trusted_keys(self):
        """Replace trusted_keys by PEM texts read here, on the controller: the host gets key material, never a path.

        A managed server does not have the controller's key files (/etc/exup/vendor.pub on the
        controller is not on every server), so paths are read as any controller file of a task
        (absolute, or relative to the role's or playbook's files/ folder).
        """
        if self.args.get('trusted_keys'):
            self.args['trusted_keys'] = key_texts(self.args['trusted_keys'], self.read_controller_file)

    def read_controller_file(self, path):
        """A file on the controller, found the way the copy and template actions find theirs; OSError when it is not there."""
        try:
            found = self._find_needle('files', path)
        except AnsibleFileNotFound:
            raise FileNotFoundError(errno.ENOENT, 'no such file on the controller', path) from None
        return read_key_file(found)

    # ----------------------------------------------------------------- host
    def host_call(self, phase, **args):
        """One exup_host call: the contract's version and checked items / package go with it (contract.py), its answer is checked."""
        module_args = dict(args, phase=phase, host_root=self.args['host_root'], contract_version=contract.CONTRACT_VERSION)
        if 'items' in args:
            module_args['items'] = contract.host_items(args['items'])
        if 'package' in args:
            module_args['package'] = contract.agent_package(args['package'])
        started = time.monotonic()
        try:
            result = self._execute_module(module_name=HOST_MODULE, module_args=module_args, task_vars=self.task_vars)
        except AnsibleConnectionFailure as exc:
            # an unreachable host is a result like any other failure, so it is logged (003 Table 19) and still reported unreachable
            result = {'unreachable': True, 'msg': str(exc)}
        display.vvv('exup: %s phase %s took %.2f s' % (self.server_name, phase, time.monotonic() - started))
        if result.get('unreachable'):
            raise HostCallFailed(dict(result, error='communication_failed', server_status='communication_failed'))
        if result.get('failed'):
            result.pop('invocation', None)  # it would echo inline packages and keys into the task result
            raise HostCallFailed(result)
        mismatch = contract.version_mismatch(contract.CONTRACT_VERSION, result.pop('contract_version', contract.CONTRACT_VERSION))
        if mismatch:
            raise mismatch
        return contract.check_answer(phase, result)

    def inventory(self):
        result = self.host_call('inventory')
        states = {key: ModuleState(**value) for key, value in result['modules'].items()}  # checked by host_call
        return result, states

    def transfer(self, local_path, name):
        """Copy a controller file to the host's temporary folder; return its remote path."""
        if not self._connection._shell.tmpdir:
            self._make_tmp_path()
        tmpdir = self._connection._shell.tmpdir
        remote = self._connection._shell.join_path(tmpdir, name)
        started = time.monotonic()
        self._transfer_file(local_path, remote)
        self._fixup_perms2((tmpdir, remote))
        display.vvv('exup: %s copy of %s took %.2f s' % (self.server_name, os.path.basename(local_path), time.monotonic() - started))
        return remote

    def send_packages(self, items, local_paths):
        """Get packages to the host with as few round trips as possible.

        ``items`` (dicts with sha256 and size) are those the host's inbox lacks. Small sets go
        inline (base64 in the next module call); others go as one uncompressed tar, one copy
        whatever their number. Returns the remote bundle path or None.
        """
        if not items:
            return None
        if sum(int(item['size']) for item in items) <= INLINE_LIMIT:
            for item in items:
                with open(local_paths[item['sha256']], 'rb') as handle:
                    item['content'] = base64.b64encode(handle.read()).decode('ascii')
            return None
        handle, bundle = tempfile.mkstemp(prefix='exup-bundle-', suffix='.tar')
        os.close(handle)
        try:
            with tarfile.open(bundle, 'w', format=tarfile.PAX_FORMAT) as archive:
                for item in items:
                    archive.add(local_paths[item['sha256']], arcname=item['sha256'] + '.zip', recursive=False)
            return self.transfer(bundle, 'packages.tar')
        finally:
            os.unlink(bundle)

    def progress(self, text):
        display.display('%s: %s' % (self.server_name, text))

    # ----------------------------------------------------------------- repository
    def repository(self, required=True):
        """The task's repository: the local store at ``repository`` (on the controller), or the repository service at that URL."""
        location = self.args.get('repository')
        if not location:
            if required:
                raise ExupError('repository is required', code='argument_invalid')
            return None
        repo = open_repository(self.args, self._task.check_mode)
        if is_remote(location):
            repo.exists()  # connection, password and API version first (003 §1.3): one clear error
            self.opened_repository = repo
            return repo
        if not repo.exists():
            raise ExupError(
                'repository %s cannot be reached: it holds no repo.db (sync it first with exup.fleet.exup_repo_sync)' % location, code='repository_unavailable'
            )
        self.opened_repository = repo
        if not repo.readable():
            raise ExupError('repository %s cannot be read by this user' % location, code='repository_unavailable')
        return repo

    def transfer_from_service(self):
        """True when the host fetches package files from the repository service itself (``package_transfer``)."""
        wanted = self.args.get('package_transfer', 'auto')
        remote = is_remote(self.args.get('repository'))
        if wanted == 'service' and not remote:
            raise ExupError('package_transfer service needs a remote repository (repository: https://host:8080)', code='argument_invalid')
        return remote and wanted != 'controller'

    def service_items(self, repo, items, files):
        """Host items that name a pool ticket URL (and the service's CA) instead of carrying the file."""
        if is_remote(self.args['repository']) and not self.args.get('repository_validate_certs', True) and not self.args.get('repository_ca_path'):
            raise ExupError(
                'package_transfer service with repository_validate_certs false: the managed host would verify the service with its own '
                'trust store; give repository_ca_path, or use package_transfer controller',
                code='argument_invalid',
            )
        # the host fetches in its start phase: a ticket that outlives that by far is a credential lying around
        seconds = min(TICKET_FETCH_SECONDS + sum(int(item['size']) for item in items) // (64 * 1024), TICKET_MAX_SECONDS)
        urls = repo.ticket_urls([files[item['package_id']] for item in items], seconds=seconds)
        ca_path = self.args.get('repository_ca_path')
        ca_pem = None
        if ca_path:
            try:
                with open(ca_path, encoding='ascii') as handle:  # the controller's file: the host gets its text
                    ca_pem = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise ExupError('cannot read repository_ca_path %s: %s' % (ca_path, getattr(exc, 'strerror', None) or exc), code='argument_invalid') from None
        for item in items:
            item.update(url=urls[item['sha256']], url_ca=ca_pem)
        return items

    def local_paths(self, repo, packages):
        """package_id -> a path on the controller of each package's file: the store's own, or fetched from a remote repository."""
        if not is_remote(self.args.get('repository')):
            return {package.package_id: package.path for package in packages}
        if self.download_dir is None:
            self.download_dir = tempfile.mkdtemp(prefix='exup-remote-')
        paths = {}
        for package in packages:
            self.progress('fetching %s from the repository' % package.package_id)
            paths[package.package_id] = repo.fetch_file(package, self.download_dir)
        return paths

    @staticmethod
    def packages_for_server(repo, facts, trusted_keys=None):
        """The repository's packages (StoredPackage) for this server; with ``trusted_keys``, only those signed by one of them."""
        trusted = KeyRing.from_pem_list(trusted_keys).key_ids if trusted_keys else None
        return repo.packages_for(facts['model'], facts['os'], trusted_key_ids=trusted)

    @staticmethod
    def untrusted_package_ids(repo, trusted_keys):
        """Package ids signed by a key that is not (or no longer) in trusted_keys: never offered or sent."""
        trusted = set(KeyRing.from_pem_list(trusted_keys).key_ids)
        return {package.package_id for package in repo.packages() if package.key_id not in trusted}

    def log_events(self, repo, *items):
        """Record events (code, cause, detail) in the repository; never fail the task for the log."""
        if repo is None or not items or self._task.check_mode:
            return []  # check mode changes nothing, the log included
        if any(item[1] is not None and item[0] in ev.EVENTS and ev.EVENTS[item[0]][0] == ev.ERROR for item in items):
            self.failure_logged = True
        try:
            return repo.log_events([ev.event(code, cause, server=self.server_name, **detail) for code, cause, detail in items])
        except (ExupError, OSError) as exc:
            display.warning('exup: could not record events in %s: %s' % (self.args.get('repository'), exc))
            return []

    def job_outcome(self, job):
        """(event code, cause, detail) for a finished job: one rule for live and late reports."""
        items = job['items']
        prefix = 'uninstall' if items and all(item['action'] == 'uninstall' for item in items) else 'apply'
        failed = [item for item in items if item['status'] == 'failed']
        cancelled = [item for item in items if item['status'] == 'cancelled']
        if failed:
            code, cause = prefix + '_failed', '%s: %s' % (failed[0]['package_id'], failed[0].get('cause'))
        elif cancelled:
            code, cause = 'apply_cancelled', cancelled[0].get('cause')
        else:
            code, cause = prefix + '_finished', None
        return code, cause, {'job_id': job['job_id'], 'results': {item['package_id']: item['status'] for item in items}}

    def record_unreported_job(self, repo, inventory):
        """Log the outcome of a job the controller never saw finish (communication lost, §4.1)."""
        job = inventory.get('last_job')
        if repo is None or not job or self._task.check_mode:
            return None
        if repo.job_reported(job['job_id']):
            return None
        code, cause, detail = self.job_outcome(job)
        detail['reported_late'] = True
        return self.log_events(repo, (code, cause, detail))

    def agent_blockers(self, repo, prerequisites, model, os_name):
        """Why the agent cannot be installed: the host's own reasons, then the repository's agent packages (003 §2.3.2)."""
        return list(prerequisites) + support.support_blockers(repository_agent_support(repo), model, os_name, support.REPOSITORY)

    def requested_modules(self):
        """module_id -> 'latest', 'previous' or a version from ``modules`` and ``versions``; None: every module with an update."""
        if self.args['modules'] is None and not self.args['versions']:
            return None
        requests = {module_id: plan.LATEST for module_id in self.args['modules'] or []}
        requests.update({str(key): str(value) for key, value in self.args['versions'].items()})
        return requests

    def server_record(self, facts, states):
        """The server as the repository keeps it: model, OS, current and previous version per module."""
        modules = {}
        for module_id, state in states.items():
            if state.current:
                modules[module_id] = {'current': state.current}
                if state.previous:
                    modules[module_id]['previous'] = state.previous
        return Server(manager_id=self.args['manager_id'], name=self.server_name, model=facts['model'], os=facts['os'], modules=modules)

    def register(self, repo, facts, states):
        return repo.record_server(self.args['manager_id'], self.server_record(facts, states))

    def unregister(self, repo, cause=None):
        return repo.forget_server(self.args['manager_id'], self.server_name, cause)
