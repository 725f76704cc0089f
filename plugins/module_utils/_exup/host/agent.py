# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The managed host: what the server is, the agent's state, and jobs (003 §2.3).

Runs on the managed host inside the ``exup_host`` module. Versions are read
where real hardware exposes them (docs/agent.md); every path is below a host
root so the lab can give each host its own. Packages are verified again here
before they run: the repository is not the last line.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import typing
import uuid

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, PackageError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent_runner as runner
from ansible_collections.exup.fleet.plugins.module_utils._exup.host.fetch import fetch_chunks
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import file_digest, safe_extract, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import support
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.blocks import BlockEvidence, block_in_force
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.plan import ModuleState
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.support import AGENT_MODULE

if typing.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo, VerifiedPackage
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing

RAID_DRIVERS = ('megaraid_sas', 'mpt3sas', 'smartpqi', 'aacraid')
HYPERVISOR_VENDORS = ('qemu', 'vmware', 'innotek', 'xen', 'microsoft corporation', 'red hat', 'parallels', 'bochs')
HYPERVISOR_PRODUCTS = ('kvm', 'virtualbox', 'vmware', 'virtual machine', 'hvm domu', 'standard pc')
CONFLICTING_SOFTWARE = {
    'usr/sbin/slpd': 'OpenSLP (slpd)',
    'usr/lib64/axis2c': 'Apache Axis2/C',
    'usr/lib/axis2c': 'Apache Axis2/C',
    'opt/axis2c': 'Apache Axis2/C',
}
#: versions that live in the agent's inventory folder (no hardware source): written by the packages' scripts
INVENTORY_MODULES = ('server-agent', 'agent-extension', 'raid-utility', 'bmc-configuration', 'sdr')
SPACE_MARGIN = 4 * 1024 * 1024
STALE_START_SECONDS = 30


def _host_number(path: str) -> tuple[int, str]:
    """Sort key of a ``host<N>`` folder: host2 before host10 (the kernel numbers hosts in probe order)."""
    number = os.path.basename(path)[len('host') :]
    return (int(number), path) if number.isdigit() else (sys.maxsize, path)


class HostError(ExupError):
    """The host refuses: agent missing, disk full, package fails verification here, ..."""


def os_name_from_release(text: str | None) -> tuple[str, str]:
    """``/etc/os-release`` -> 'rhel9', 'sles15', 'ubuntu2204' (the names packages use)."""
    values = {}
    for line in (text or '').splitlines():
        if '=' in line:
            key, value = line.split('=', 1)
            values[key.strip()] = value.strip().strip('"\'')
    os_id, version = values.get('ID', '').lower(), values.get('VERSION_ID', '')
    if not os_id:
        return 'unknown', values.get('PRETTY_NAME', '')
    if os_id == 'ubuntu':
        return os_id + version.replace('.', ''), values.get('PRETTY_NAME', '')
    return os_id + version.split('.')[0], values.get('PRETTY_NAME', '')


class Host:
    """One managed host below ``root``."""

    def __init__(self, root: str = '/') -> None:
        self.layout = runner.Layout(root)

    def _read(self, *parts: str) -> str | None:
        return runner.read_text(self.layout.path(*parts))

    # ------------------------------------------------------------------ what the server is
    def facts(self) -> dict:
        os_name, pretty = os_name_from_release(self._read('etc', 'os-release'))
        vendor = self._read('sys', 'class', 'dmi', 'id', 'sys_vendor') or ''
        product = self._read('sys', 'class', 'dmi', 'id', 'product_name') or ''
        virtual = None
        if any(word in vendor.lower() for word in HYPERVISOR_VENDORS) or any(word in product.lower() for word in HYPERVISOR_PRODUCTS):
            virtual = '%s %s' % (vendor, product)
        elif os.path.exists(self.layout.path('sys', 'hypervisor', 'type')):
            virtual = self._read('sys', 'hypervisor', 'type') or 'hypervisor'
        return {'model': product, 'vendor': vendor, 'os': os_name, 'os_pretty_name': pretty, 'virtual_machine': virtual, 'boot_id': runner.boot_id(self.layout)}

    def _scsi_host_version(self, host_dir: str, names: typing.Iterable[str]) -> str | None:
        for name in names:
            value = runner.read_text(os.path.join(host_dir, name))
            if value:
                return value
        return None

    def module_versions(self) -> dict[str, str]:
        """module_id -> current version, for the modules present on this server."""
        path = self.layout.path
        versions = {
            'system-bios': self._read('sys', 'class', 'dmi', 'id', 'bios_version'),
            'bmc-firmware': self._read('sys', 'class', 'ipmi', 'ipmi0', 'device', 'bmc', 'firmware_revision'),
            AGENT_MODULE: self._agent_version(),
        }
        for host_dir in sorted(glob.glob(path('sys', 'class', 'scsi_host', 'host*')), key=_host_number):
            if runner.read_text(os.path.join(host_dir, 'proc_name')) in RAID_DRIVERS:
                versions['raid-controller'] = self._scsi_host_version(host_dir, ('version_fw', 'fw_version'))
                break
        for fc_dir in sorted(glob.glob(path('sys', 'class', 'fc_host', 'host*')), key=_host_number):
            scsi_dir = path('sys', 'class', 'scsi_host', os.path.basename(fc_dir))
            versions['fc-controller'] = self._scsi_host_version(scsi_dir, ('fw_version', 'fwrev'))
            break
        for module_id in INVENTORY_MODULES:
            versions[module_id] = self._read('var', 'lib', 'exup', 'inventory', module_id)
        return {module_id: version for module_id, version in versions.items() if version}

    def _agent_version(self) -> str | None:
        return runner.read_text(os.path.join(self.layout.agent_dir, 'VERSION'))

    def agent(self) -> dict:
        version = self._agent_version()
        installed = bool(version) and os.path.exists(self.layout.runner)
        return {'installed': installed, 'version': version if installed else None, 'folder': self.layout.agent_dir if installed else None}

    def prerequisites(
        self, facts: dict | None = None, agent_models: typing.Iterable[str] | None = None, agent_os: typing.Iterable[str] | None = None
    ) -> list[dict]:
        """Why the agent cannot be installed here (003 §2.3.2-3): a list of {code, msg}, empty when it can."""
        facts = facts or self.facts()
        blockers = []
        if facts['virtual_machine']:
            blockers.append({'code': 'virtual_machine', 'msg': 'the agent cannot be installed on a virtual machine guest (%s)' % facts['virtual_machine']})
        blockers += support.support_blockers(
            support.AgentSupport.of(agent_models, agent_os), facts['model'], facts['os'], support.HOST, facts['os_pretty_name']
        )
        for relative, name in sorted(CONFLICTING_SOFTWARE.items()):
            if os.path.exists(self.layout.path(relative)):
                blockers.append({'code': 'conflicting_software', 'msg': '%s is installed (%s); remove it before installing the agent' % (name, '/' + relative)})
        return blockers

    @staticmethod
    def require_administrator(euid: int | None = None) -> None:
        """Changing the server needs root: the agent's fixed folder, firmware, package scripts."""
        euid = os.geteuid() if euid is None else euid
        if euid != 0:
            raise HostError(
                'the agent needs the administrator account (root) on the server, not uid %d: run the task with become: true (become_user: root)' % euid,
                code='not_administrator',
                euid=euid,
            )

    # ------------------------------------------------------------------ state and jobs
    def current_job_id(self) -> str | None:
        return self._read('var', 'lib', 'exup', 'current_job')

    def _journal_path(self, job_id: str) -> str:
        return os.path.join(self.layout.job_dir(job_id), 'journal.json')

    def _read_journal(self, job_id: str) -> dict:
        journal = runner.read_json(self._journal_path(job_id))
        if journal is None:
            raise HostError('no job %s on this host' % job_id, code='job_unknown', job_id=job_id)
        return contract.check_journal(journal, self._agent_version())

    def _load_state(self) -> dict:
        """state.json as the installed agent wrote it, checked: a record of another agent version is a clear error."""
        state = contract.check_state(runner.read_json(self.layout.state_file, {}) or {}, self._agent_version())
        state.setdefault('modules', {})  # as runner.load_state: one read, so what is checked is what is used
        return state

    def _view(self, job_id: str) -> tuple[dict, list[dict]]:
        """(the job as it really is, items whose end only the view knows): reads, never writes."""
        journal = self._read_journal(job_id)
        try:
            stamp = os.stat(self._journal_path(job_id)).st_mtime  # the last the runner wrote: the same for every read
        except OSError:
            stamp = time.time()
        return job_view(self.layout, journal, runner.boot_id(self.layout), stamp)

    def journal(self, job_id: str) -> dict:
        """The journal of a job; one whose runner died is shown as it really is (see job_view), without writing anything."""
        return self._view(job_id)[0]

    def settle(self, job_id: str) -> dict:
        """Write path: record what job_view found out about a job whose runner died (journal, then blocks in state.json)."""
        view, ended = self._view(job_id)
        if not view.get('recovered') or view.get('state') != 'finished':
            return view
        with state_writes(self.layout, 'recording the outcome of job %s' % job_id):
            for item in ended:
                runner.record_item_in_state(self.layout, item, view.get('boot_id', ''))
            runner.write_json(self._journal_path(job_id), view)
        return view

    def _current_view(self) -> tuple[dict | None, list[dict]]:
        job_id = self.current_job_id()
        if not job_id:
            return None, []
        try:
            return self._view(job_id)
        except HostError:
            return None, []

    def last_journal(self) -> dict | None:
        """The journal of the newest job, running or finished (None when there was none)."""
        return self._current_view()[0]

    def active_journal(self) -> dict | None:
        journal = self.last_journal()
        return journal if journal and journal.get('state') != 'finished' else None

    def states(self, facts: dict | None = None, versions: typing.Mapping[str, str] | None = None) -> dict[str, ModuleState]:
        """module_id -> ModuleState: versions, blocks valid for this boot, activity of a running job."""
        facts = facts or self.facts()
        versions = self.module_versions() if versions is None else versions
        saved_state, (last, ended) = self._load_state(), self._current_view()
        for item in ended:  # what a dead job's end means, until the write path records it
            runner.item_in_state(saved_state, item, last.get('boot_id', ''))  # type: ignore[union-attr]  # ended: only with a journal
        saved = saved_state['modules']
        active = last if last and last.get('state') != 'finished' else None
        activity = {}
        for item in (active or {}).get('items', []):
            if item['status'] in (runner.WAITING, runner.RUNNING):
                word = 'apply' if item['action'] == 'install' else 'uninstall'
                activity[item['module_id']] = ('waiting_' + word) if item['status'] == runner.WAITING else word + 'ing'
        if active is None:
            # Table 8 "cancelled": shown for what the last job cancelled, until the next job.
            for item in (last or {}).get('items', []):
                if item['status'] == runner.CANCELLED:
                    activity[item['module_id']] = 'cancelled'
        states = {}
        for module_id in sorted(set(versions) | set(saved) | set(activity)):
            record = saved.get(module_id, {})
            block, staged = block_in_force(record, BlockEvidence(boot_id=facts['boot_id']))
            state = ModuleState(
                module_id,
                current=versions.get(module_id),
                previous=record.get('previous'),
                block=block,
                staged=staged,
                activity=_ACTIVITY_WORDS.get(activity.get(module_id)),  # type: ignore[arg-type]  # None: no activity
            )
            states[module_id] = state
        return states

    def inbox_digests(self) -> list[str]:
        names = glob.glob(os.path.join(self.layout.inbox, '*.zip'))
        return sorted(os.path.basename(name)[:-4] for name in names)

    def inventory(self) -> dict:
        facts = self.facts()
        versions = self.module_versions()
        states = self.states(facts, versions)
        active = self.active_journal()
        last = self.last_journal()
        return {
            'facts': facts,
            'modules': {key: vars(value) for key, value in states.items()},
            'agent': self.agent(),
            'inbox': self.inbox_digests(),
            'active_job': summarize(active) if active else None,
            'last_job': summarize(last) if last and last.get('state') == 'finished' else None,
            'prerequisites': self.prerequisites(facts),
        }

    # ------------------------------------------------------------------ starting and following a job
    def _free_bytes(self, path: str) -> int:
        while not os.path.exists(path):
            path = os.path.dirname(path)
        stat = os.statvfs(path)
        return stat.f_bavail * stat.f_frsize

    def _write_inbox(self, digest: str, chunks: typing.Iterable[bytes]) -> None:
        """Write one received package to the inbox (temp file, then rename): a cut transfer or a full disk leaves no half file."""
        os.makedirs(self.layout.inbox, mode=0o700, exist_ok=True)
        target = os.path.join(self.layout.inbox, digest + '.zip')
        tmp = target + '.part'
        try:
            with state_writes(self.layout, 'receiving a package'), open(tmp, 'wb') as handle:
                for chunk in chunks:
                    handle.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def receive_bundle(self, bundle: str, items: list[dict]) -> None:
        """Unpack the one uncompressed tar the controller sent (members ``<sha256>.zip``) into the inbox.

        Hostile until verified: only regular files named after an expected digest, of the expected size.
        """
        expected = {item['sha256']: int(item.get('size') or 0) for item in items}
        try:
            with tarfile.open(bundle, 'r:') as archive:
                for member in archive:
                    digest = member.name[:-4] if member.name.endswith('.zip') else None
                    source = archive.extractfile(member) if member.isreg() else None
                    if source is None or digest not in expected or member.size != expected[digest]:
                        raise HostError('the package bundle holds an unexpected member %r' % member.name, code='bundle_invalid')
                    self._write_inbox(digest, iter(functools.partial(source.read, 1024 * 1024), b''))  # type: ignore[arg-type]  # in expected: a str
        except (tarfile.TarError, OSError) as exc:
            raise HostError('the package bundle %s cannot be read: %s' % (bundle, exc), code='bundle_invalid') from exc

    def accept_package(self, item: dict, keyring: KeyRing, facts: dict) -> tuple[str, VerifiedPackage]:
        """Put a sent package into the inbox and verify it here; return (path, VerifiedPackage).

        The package arrives inline (``content``, base64, for small ones), as a copied file (``src``) or was
        already unpacked from the bundle; the inbox keeps it for the next apply.
        """
        target = os.path.join(self.layout.inbox, item['sha256'] + '.zip')
        if item.get('content'):
            self._write_inbox(item['sha256'], [base64.b64decode(item['content'])])
        elif item.get('src') and not os.path.exists(target):
            with open(item['src'], 'rb') as source:
                self._write_inbox(item['sha256'], iter(lambda: source.read(1024 * 1024), b''))
        elif item.get('url') and not os.path.exists(target):
            try:
                self._write_inbox(item['sha256'], fetch_chunks(item['url'], int(item.get('size') or 0), item.get('url_ca')))
            except ExupError as exc:
                raise HostError(exc.msg, code=exc.code, package_id=item['package_id']) from None
        if not os.path.exists(target):
            raise HostError('package %s is not on the host' % item['package_id'], code='package_missing', package_id=item['package_id'])
        try:
            if file_digest(target)[1] != item['sha256']:
                raise PackageError('the file on the host does not have the SHA-256 the repository recorded', code='digest_mismatch')
            verified = verify_package(target, keyring)
        except PackageError as exc:
            os.unlink(target)  # a bad copy must not be taken for good next time
            raise HostError(
                'package %s failed verification on the host, nothing was applied: %s' % (item['package_id'], exc.msg),
                code=exc.code,
                package_id=item['package_id'],
            ) from exc
        info = verified.info
        if info.package_id != item['package_id']:
            os.unlink(target)
            raise HostError(
                'the file sent for %s holds package %s' % (item['package_id'], info.package_id), code='package_mismatch', package_id=item['package_id']
            )
        if not info.targets(facts['model'], facts['os']):
            raise HostError(
                'package %s is for %s on %s, not for this server (%s on %s)'
                % (info.package_id, ', '.join(info.models), ', '.join(info.os), facts['model'], facts['os']),
                code='wrong_model',
                package_id=info.package_id,
            )
        return target, verified

    def start_job(self, items: list[dict], keyring: KeyRing, lease_seconds: float, bundle: str | None = None) -> str:
        """Verify, unpack and hand the ordered items to the agent's runner; return the job id."""
        if not self.agent()['installed']:
            raise HostError(
                'the exup agent is not installed on this host (%s): install it with exup.fleet.exup_agent' % self.layout.agent_dir, code='agent_missing'
            )
        mismatch = contract.agent_mismatch(self._agent_version(), contract.installed_job_format(runner.read_text(self.layout.runner)))
        if mismatch:
            raise mismatch
        job_id = self.current_job_id()
        if job_id and os.path.exists(self._journal_path(job_id)):
            self.settle(job_id)  # the write path records a dead job's end (reads only show it)
        active = self.active_journal()
        if active:
            raise HostError('job %s is still running on this host' % active['job_id'], code='job_running', job_id=active['job_id'])
        facts = self.facts()
        states = self.states(facts)
        blocked = sorted(name for name, state in states.items() if state.block)
        if blocked:
            raise HostError('the server must restart before more packages are applied: %s' % ', '.join(blocked), code='blocked_until_reboot', blocked=blocked)
        need = sum(2 * int(item.get('size') or 0) for item in items) + SPACE_MARGIN
        free = self._free_bytes(self.layout.state_dir)
        if free < need:
            raise HostError(
                'not enough disk space on the host for %d package(s) in %s: %d bytes free, %d needed' % (len(items), self.layout.state_dir, free, need),
                code='disk_full',
                free=free,
                needed=need,
            )
        if bundle:
            self.receive_bundle(bundle, items)
        accepted = [self.accept_package(item, keyring, facts) for item in items]
        for item, (_path, verified) in zip(items, accepted):
            if item.get('action') == 'uninstall' and not (verified.info.uninstall_supported and verified.info.uninstall_command):
                raise HostError(
                    'package %s does not support uninstall' % verified.info.package_id, code='uninstall_not_supported', package_id=verified.info.package_id
                )
        job_id = time.strftime('%Y%m%dT%H%M%S', time.gmtime()) + '-' + uuid.uuid4().hex[:8]
        job_dir = self.layout.job_dir(job_id)
        try:
            with state_writes(self.layout, 'preparing job %s' % job_id):
                os.makedirs(os.path.join(job_dir, 'work'), mode=0o700)
                reserve_space(os.path.join(job_dir, 'reserve'), runner.RESERVE_BYTES)
                for index, (path, _verified) in enumerate(accepted):
                    work = os.path.join(job_dir, 'work', str(index))
                    safe_extract(path, keyring, work)
                    make_runnable(work)
                self._write_job(job_id, self._journal(job_id, items, accepted, facts), lease_seconds)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        self._start_runner(job_id)
        return job_id

    @staticmethod
    def _journal(job_id: str, items: list[dict], accepted: typing.Sequence[tuple[str, VerifiedPackage]], facts: dict) -> dict:
        journal_items = []
        for item, verified in zip(items, (pair[1] for pair in accepted)):
            keys = ('package_id', 'module_id', 'action', 'from_version', 'to_version', 'reboot_required', 'release_date')
            # the verified package's own command (docs/agent.md), never one the controller sent
            command = verified.info.uninstall_command if item.get('action') == 'uninstall' else verified.info.install_command
            journal_items.append(dict({key: item.get(key) for key in keys}, command=command, status=runner.WAITING))
        return {
            'version': runner.JOURNAL_VERSION,
            'job_id': job_id,
            'state': 'queued',
            'created': time.time(),
            'boot_id': facts['boot_id'],
            'items': journal_items,
        }

    def _write_job(self, job_id: str, journal: dict, lease_seconds: float) -> None:
        job_dir = self.layout.job_dir(job_id)
        runner.write_json(os.path.join(job_dir, 'journal.json'), journal)
        runner.write_lease(job_dir, lease_seconds)
        os.makedirs(self.layout.log_dir, exist_ok=True)
        # last: until the current job names it, the new folder is only a leftover that the next start ignores
        runner.write_text_atomic(os.path.join(self.layout.state_dir, 'current_job'), job_id + '\n')

    def _start_runner(self, job_id: str) -> None:
        job_dir = self.layout.job_dir(job_id)
        with open(os.path.join(job_dir, 'runner.log'), 'ab') as output:
            # A detached child that outlives this module: run_command cannot start one.
            subprocess.Popen(  # pylint: disable=ansible-bad-function
                [sys.executable, self.layout.runner, 'run', '--root', self.layout.root, job_id],
                cwd='/',
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,
            )

    def follow(self, job_id: str, wait_seconds: float, lease_seconds: float) -> dict:
        """Renew the lease while waiting up to ``wait_seconds`` for the job to finish; return its journal."""
        job_dir = self.layout.job_dir(job_id)
        deadline = time.time() + wait_seconds
        renewed = 0.0
        while True:
            journal = self.journal(job_id)
            if journal.get('state') == 'finished':
                return journal
            if time.time() - renewed >= 1:
                renew_lease(job_dir, lease_seconds)
                renewed = time.time()
            if time.time() >= deadline:
                return journal
            time.sleep(0.05)

    def cancel(self, job_id: str) -> tuple[dict, bool]:
        """Ask the runner to cancel what has not started (started packages finish).

        When the runner died and its package script runs on, nobody is left to follow it: the script's
        process group is stopped (SIGTERM, then SIGKILL after a deadline) and the item is recorded as killed.
        """
        journal = self.settle(job_id)
        if journal.get('state') == 'finished':
            return journal, False
        if journal.get('runner_lost'):
            return self._kill_orphan(job_id, journal), True
        with state_writes(self.layout, 'requesting the cancel of job %s' % job_id):
            runner.write_text_atomic(os.path.join(self.layout.job_dir(job_id), 'cancel'), '%f\n' % time.time())
        return journal, True

    def _kill_orphan(self, job_id: str, journal: dict) -> dict:
        """Stop the script a dead runner left running, then record how it ended (by itself after all, or killed)."""
        for item in journal['items']:
            if item['status'] == runner.RUNNING and not runner.stop_process_group(item['script_pid'], item.get('script_start')):
                raise HostError(
                    'the script of %s (process group %d) did not stop after SIGKILL' % (item['package_id'], item['script_pid']),
                    code='kill_failed',
                    job_id=job_id,
                    package_id=item['package_id'],
                )
        view, ended = self._view(job_id)
        for item in ended:
            if item.get('outcome') == runner.OUTCOME_LOST:  # no exit status written: it ended by the signal, not by itself
                item.update(
                    outcome=runner.OUTCOME_KILLED,
                    cause="stopped at the cancel request (SIGTERM, then SIGKILL): the agent's runner had died while this package ran",
                )
        with state_writes(self.layout, 'recording the end of job %s' % job_id):
            for item in ended:
                runner.record_item_in_state(self.layout, item, view.get('boot_id', ''))
            runner.write_json(self._journal_path(job_id), view)
        runner.log(self.layout, 'job %s: the script its dead runner left was stopped at the cancel request' % job_id)
        return view

    # ------------------------------------------------------------------ the agent itself
    def run_package_script(self, package_path: str, keyring: KeyRing, action: str, facts: dict) -> tuple[PackageInfo, int, str]:
        """Verify, unpack and run one package's install or uninstall command synchronously (agent install)."""
        work = os.path.join(self.layout.path('var', 'lib', 'exup-install'), uuid.uuid4().hex)
        os.makedirs(os.path.dirname(work), mode=0o700, exist_ok=True)
        try:
            verified = safe_extract(package_path, keyring, work)
            info = verified.info
            command = info.install_command if action == 'install' else info.uninstall_command
            env = runner.script_env(self.layout, action, info.module_id, info.version, info.package_id)
            make_runnable(work)
            # The core has no AnsibleModule (run_command); a package script runs with a clean, explicit environment, its output bounded.
            log_path = os.path.join(work, 'exup-output.log')
            code = runner.run_bounded(command, work, env, log_path)
            output = runner.read_tail(log_path)
            runner.log(self.layout, '%s of %s %s: exit status %d' % (action, info.package_id, info.version, code))
            return info, code, output
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def uninstall_agent(self) -> tuple[int, str]:
        script = os.path.join(self.layout.agent_dir, 'uninstall.sh')
        if not os.path.exists(script):
            raise HostError('the agent folder %s has no uninstall.sh' % self.layout.agent_dir, code='agent_broken')
        env = runner.script_env(self.layout, 'uninstall', AGENT_MODULE, self.agent()['version'])
        scratch = os.path.join(self.layout.path('var', 'lib', 'exup-install'), uuid.uuid4().hex)
        os.makedirs(scratch, mode=0o700)
        try:
            log_path = os.path.join(scratch, 'output.log')
            code = runner.run_bounded('exec /bin/sh %s' % shlex.quote(script), '/', env, log_path)
            output = runner.read_tail(log_path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        runner.log(self.layout, 'agent uninstall: exit status %d' % code)
        return code, output

    def log_files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.layout.log_dir, '*.log')))


@contextlib.contextmanager
def state_writes(layout: runner.Layout, what: str) -> typing.Iterator[None]:
    """A full disk while writing the agent's state is a clear, recoverable refusal (agent_disk_full), not an os_error."""
    try:
        yield
    except OSError as exc:
        if not runner.disk_full(exc):
            raise
        raise HostError(
            "the agent's state folder %s is full: %s failed (%s); nothing was started. Free some space on the server "
            "and try again" % (layout.state_dir, what, exc.strerror or exc),
            code=runner.DISK_FULL,
            path=layout.state_dir,
        ) from exc


def reserve_space(path: str, size: int) -> None:
    """Set ``size`` bytes aside (real blocks, not a sparse file): the runner frees them to record an outcome on a full disk."""
    with open(path, 'wb') as handle:
        handle.write(b'\0' * size)
        handle.flush()
        os.fsync(handle.fileno())


def renew_lease(job_dir: str, seconds: float) -> None:
    """Renew the controller's lease; on a full disk overwrite it in place (same length, no new block) rather than fail a read."""
    try:
        runner.write_lease(job_dir, seconds)
    except OSError as exc:
        if not runner.disk_full(exc):
            raise
        with contextlib.suppress(OSError), open(os.path.join(job_dir, 'lease'), 'r+') as handle:
            handle.write('%.3f\n' % (time.time() + seconds))
            handle.truncate()


def job_view(layout: runner.Layout, journal: dict, current_boot: str, stamp: float) -> tuple[dict, list[dict]]:
    """(the job as it really is, the items whose end only this view knows): pure, writes nothing.

    A job whose runner is alive (pid and start time, same boot) or that was just queued is as its journal
    says. When the runner died, a package script it started may still run (its own session): the item
    stays "running" until that process is gone, then its outcome is read from the exit status the
    wrapper wrote (outcome finished_after_runner_died), or it failed with the outcome lost. Items that
    had not started are cancelled. The write path (Host.settle) records the result. ``stamp`` is
    the time given to what ended unseen (the journal's last change), so every read gives the same view.
    """
    state = journal.get('state')
    same_boot = journal.get('boot_id', current_boot) == current_boot
    if state == 'finished' or (same_boot and runner.process_alive(journal.get('runner_pid'), journal.get('runner_start'))):
        return journal, []
    if state == 'queued' and time.time() - journal.get('created', 0) < STALE_START_SECONDS:
        return journal, []
    view, ended, running = copy.deepcopy(journal), [], False
    job_dir = layout.job_dir(journal['job_id'])
    for index, item in enumerate(view['items']):
        if item['status'] == runner.RUNNING:
            if same_boot and item.get('script_pid') and runner.group_alive(item['script_pid'], item.get('script_start')):
                running = True
                continue
            ended.append(_ended_item(job_dir, index, item, stamp))
        elif item['status'] == runner.WAITING:
            item.update(status=runner.CANCELLED, cause='the agent stopped before this package started', finished=stamp)
    if running:
        view.update(state='running', runner_lost=True)
    else:
        view.update(state='finished', recovered=True)
    return view, ended


def _ended_item(job_dir: str, index: int, item: dict, stamp: float) -> dict:
    """An item whose script is gone: its exit status if the wrapper wrote one, else failed, outcome lost."""
    status = runner.read_status(job_dir, index)
    if status is None:
        item.update(status=runner.FAILED, cause='the agent stopped while this package was running', finished=stamp, outcome=runner.OUTCOME_LOST)
        return item
    tail = runner.read_tail(os.path.join(job_dir, 'output', '%d.log' % index))
    runner.finish_item(item, status['exit_code'], tail, runner.OUTCOME_AFTER_RUNNER)
    item['finished'] = status.get('finished', stamp)
    return item


_ACTIVITY_WORDS = {
    'waiting_apply': 'waiting_apply',
    'waiting_uninstall': 'waiting_uninstall',
    'applying': 'applying',
    'uninstalling': 'uninstalling',
    'cancelled': 'cancelled',
}


def make_runnable(folder: str) -> None:
    """Unpacked files keep no mode bits (zip): a package's ``./install.sh`` must be executable; the folder is private (0700)."""
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            os.chmod(os.path.join(parent, name), 0o700)


def summarize(journal: dict) -> dict:
    """The part of a journal the controller needs: per item status, overall progress."""
    items = journal.get('items', [])
    done = sum(1 for item in items if item['status'] in (runner.SUCCEEDED, runner.FAILED, runner.CANCELLED))
    keys = (
        'package_id',
        'module_id',
        'action',
        'from_version',
        'to_version',
        'reboot_required',
        'release_date',
        'status',
        'cause',
        'exit_code',
        'output_tail',
        'outcome',
    )
    return {
        'job_id': journal['job_id'],
        'state': journal.get('state'),
        'done': done,
        'total': len(items),
        'recovered': bool(journal.get('recovered')),
        'runner_lost': bool(journal.get('runner_lost')),
        'error': journal.get('error'),
        'items': [{key: item.get(key) for key in keys} for item in items],
    }
