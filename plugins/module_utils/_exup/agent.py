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
import glob
import os
import shutil
import tarfile
import subprocess
import sys
import time
import uuid

from ansible_collections.exup.fleet.plugins.module_utils._exup import agent_runner as runner
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, PackageError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import file_digest, safe_extract, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.plan import ModuleState

AGENT_MODULE = 'update-agent'
RAID_DRIVERS = ('megaraid_sas', 'mpt3sas', 'smartpqi', 'aacraid')
HYPERVISOR_VENDORS = ('qemu', 'vmware', 'innotek', 'xen', 'microsoft corporation', 'red hat', 'parallels', 'bochs')
HYPERVISOR_PRODUCTS = ('kvm', 'virtualbox', 'vmware', 'virtual machine', 'hvm domu', 'standard pc')
CONFLICTING_SOFTWARE = {'usr/sbin/slpd': 'OpenSLP (slpd)', 'usr/lib64/axis2c': 'Apache Axis2/C', 'usr/lib/axis2c': 'Apache Axis2/C',
                        'opt/axis2c': 'Apache Axis2/C'}
#: versions that live in the agent's inventory folder (no hardware source): written by the packages' scripts
INVENTORY_MODULES = ('server-agent', 'agent-extension', 'raid-utility', 'bmc-configuration', 'sdr')
SPACE_MARGIN = 4 * 1024 * 1024
STALE_START_SECONDS = 30


def _host_number(path):
    """Sort key of a ``host<N>`` folder: host2 before host10 (the kernel numbers hosts in probe order)."""
    number = os.path.basename(path)[len('host'):]
    return (int(number), path) if number.isdigit() else (sys.maxsize, path)


class HostError(ExupError):
    """The host refuses: agent missing, disk full, package fails verification here, ..."""


def os_name_from_release(text):
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

    def __init__(self, root='/'):
        self.layout = runner.Layout(root)

    def _read(self, *parts):
        return runner.read_text(self.layout.path(*parts))

    # ------------------------------------------------------------------ what the server is
    def facts(self):
        os_name, pretty = os_name_from_release(self._read('etc', 'os-release'))
        vendor = self._read('sys', 'class', 'dmi', 'id', 'sys_vendor') or ''
        product = self._read('sys', 'class', 'dmi', 'id', 'product_name') or ''
        virtual = None
        if any(word in vendor.lower() for word in HYPERVISOR_VENDORS) or any(word in product.lower() for word in HYPERVISOR_PRODUCTS):
            virtual = '%s %s' % (vendor, product)
        elif os.path.exists(self.layout.path('sys', 'hypervisor', 'type')):
            virtual = self._read('sys', 'hypervisor', 'type') or 'hypervisor'
        return {'model': product, 'vendor': vendor, 'os': os_name, 'os_pretty_name': pretty, 'virtual_machine': virtual,
                'boot_id': runner.boot_id(self.layout)}

    def _scsi_host_version(self, host_dir, names):
        for name in names:
            value = runner.read_text(os.path.join(host_dir, name))
            if value:
                return value
        return None

    def module_versions(self):
        """module_id -> current version, for the modules present on this server."""
        path = self.layout.path
        versions = {'system-bios': self._read('sys', 'class', 'dmi', 'id', 'bios_version'),
                    'bmc-firmware': self._read('sys', 'class', 'ipmi', 'ipmi0', 'device', 'bmc', 'firmware_revision'),
                    AGENT_MODULE: self._read('opt', 'exup', 'agent', 'VERSION')}
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

    def agent(self):
        version = self._read('opt', 'exup', 'agent', 'VERSION')
        installed = bool(version) and os.path.exists(self.layout.runner)
        return {'installed': installed, 'version': version if installed else None, 'folder': self.layout.agent_dir if installed else None}

    def prerequisites(self, facts=None, agent_models=None, agent_os=None):
        """Why the agent cannot be installed here (003 §2.3.2-3): a list of {code, msg}, empty when it can."""
        facts = facts or self.facts()
        blockers = []
        if facts['virtual_machine']:
            blockers.append({'code': 'virtual_machine', 'msg': 'the agent cannot be installed on a virtual machine guest (%s)' % facts['virtual_machine']})
        if agent_os is not None and facts['os'] not in agent_os:
            blockers.append({'code': 'unsupported_os', 'msg': 'OS %s (%s) is not supported by the agent (supported: %s)'
                             % (facts['os'], facts['os_pretty_name'] or 'unknown', ', '.join(sorted(agent_os)))})
        if agent_models is not None and facts['model'] not in agent_models:
            blockers.append({'code': 'unsupported_model', 'msg': 'model %r is not supported by the agent: this server does not support exup'
                             % facts['model']})
        for relative, name in sorted(CONFLICTING_SOFTWARE.items()):
            if os.path.exists(self.layout.path(relative)):
                blockers.append({'code': 'conflicting_software', 'msg': '%s is installed (%s); remove it before installing the agent'
                                 % (name, '/' + relative)})
        return blockers

    @staticmethod
    def require_administrator(euid=None):
        """Changing the server needs root: the agent's fixed folder, firmware, package scripts."""
        euid = os.geteuid() if euid is None else euid
        if euid != 0:
            raise HostError('the agent needs the administrator account (root) on the server, not uid %d: run the task with become: true '
                            '(become_user: root)' % euid, code='not_administrator', euid=euid)

    # ------------------------------------------------------------------ state and jobs
    def current_job_id(self):
        return self._read('var', 'lib', 'exup', 'current_job')

    def _recover(self, job_id, journal):
        """A journal whose runner died (host crash, kill) tells the truth: the running item failed, the rest cancelled."""
        if journal.get('state') == 'finished':
            return journal
        pid = journal.get('runner_pid')
        alive = False
        if pid:
            try:
                os.kill(pid, 0)
                alive = True
            except (ProcessLookupError, PermissionError):
                alive = False
        if alive or (journal.get('state') == 'queued' and time.time() - journal.get('created', 0) < STALE_START_SECONDS):
            return journal
        for item in journal['items']:
            if item['status'] == runner.RUNNING:
                item.update(status=runner.FAILED, cause='the agent stopped while this package was running', finished=time.time())
                runner.record_item_in_state(self.layout, item, journal.get('boot_id', ''))
            elif item['status'] == runner.WAITING:
                item.update(status=runner.CANCELLED, cause='the agent stopped before this package started', finished=time.time())
        journal.update(state='finished', recovered=True)
        runner.write_json(os.path.join(self.layout.job_dir(job_id), 'journal.json'), journal)
        return journal

    def journal(self, job_id):
        journal = runner.read_json(os.path.join(self.layout.job_dir(job_id), 'journal.json'))
        if journal is None:
            raise HostError('no job %s on this host' % job_id, code='job_unknown', job_id=job_id)
        return self._recover(job_id, journal)

    def last_journal(self):
        """The journal of the newest job, running or finished (None when there was none)."""
        job_id = self.current_job_id()
        if not job_id:
            return None
        try:
            return self.journal(job_id)
        except HostError:
            return None

    def active_journal(self):
        job_id = self.current_job_id()
        if not job_id:
            return None
        try:
            journal = self.journal(job_id)
        except HostError:
            return None
        return journal if journal.get('state') != 'finished' else None

    def states(self, facts=None, versions=None):
        """module_id -> ModuleState: versions, blocks valid for this boot, activity of a running job."""
        facts = facts or self.facts()
        versions = self.module_versions() if versions is None else versions
        saved = runner.load_state(self.layout)['modules']
        active = self.active_journal()
        activity = {}
        for item in (active or {}).get('items', []):
            if item['status'] in (runner.WAITING, runner.RUNNING):
                word = 'apply' if item['action'] == 'install' else 'uninstall'
                activity[item['module_id']] = ('waiting_' + word) if item['status'] == runner.WAITING else word + 'ing'
        if active is None:
            # Table 8 "cancelled": shown for what the last job cancelled, until the next job.
            for item in (self.last_journal() or {}).get('items', []):
                if item['status'] == runner.CANCELLED:
                    activity[item['module_id']] = 'cancelled'
        states = {}
        for module_id in sorted(set(versions) | set(saved) | set(activity)):
            record = saved.get(module_id, {})
            valid = record.get('block') and record.get('boot_id') == facts['boot_id']
            state = ModuleState(module_id, current=versions.get(module_id), previous=record.get('previous'),
                                block=record.get('block') if valid else None, staged=record.get('staged') if valid else None,
                                activity=_ACTIVITY_WORDS.get(activity.get(module_id)))
            states[module_id] = state
        return states

    def inbox_digests(self):
        names = glob.glob(os.path.join(self.layout.inbox, '*.zip'))
        return sorted(os.path.basename(name)[:-4] for name in names)

    def inventory(self):
        facts = self.facts()
        versions = self.module_versions()
        states = self.states(facts, versions)
        active = self.active_journal()
        last = self.last_journal()
        return {'facts': facts, 'modules': {key: vars(value) for key, value in states.items()}, 'agent': self.agent(),
                'inbox': self.inbox_digests(), 'active_job': summarize(active) if active else None,
                'last_job': summarize(last) if last and last.get('state') == 'finished' else None,
                'prerequisites': self.prerequisites(facts)}

    # ------------------------------------------------------------------ starting and following a job
    def _free_bytes(self, path):
        while not os.path.exists(path):
            path = os.path.dirname(path)
        stat = os.statvfs(path)
        return stat.f_bavail * stat.f_frsize

    def _write_inbox(self, digest, chunks):
        """Write one received package to the inbox (temp file, then rename): a cut transfer leaves no half file."""
        os.makedirs(self.layout.inbox, mode=0o700, exist_ok=True)
        target = os.path.join(self.layout.inbox, digest + '.zip')
        tmp = target + '.part'
        with open(tmp, 'wb') as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(tmp, target)

    def receive_bundle(self, bundle, items):
        """Unpack the one uncompressed tar the controller sent (members ``<sha256>.zip``) into the inbox.

        Hostile until verified: only regular files named after an expected digest, of the expected size.
        """
        expected = {item['sha256']: int(item.get('size') or 0) for item in items}
        try:
            with tarfile.open(bundle, 'r:') as archive:
                for member in archive:
                    digest = member.name[:-4] if member.name.endswith('.zip') else None
                    if not member.isreg() or digest not in expected or member.size != expected[digest]:
                        raise HostError('the package bundle holds an unexpected member %r' % member.name, code='bundle_invalid')
                    source = archive.extractfile(member)
                    self._write_inbox(digest, iter(lambda: source.read(1024 * 1024), b''))
        except (tarfile.TarError, OSError) as exc:
            raise HostError('the package bundle %s cannot be read: %s' % (bundle, exc), code='bundle_invalid')

    def accept_package(self, item, keyring, facts):
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
        if not os.path.exists(target):
            raise HostError('package %s is not on the host' % item['package_id'], code='package_missing', package_id=item['package_id'])
        try:
            if file_digest(target)[1] != item['sha256']:
                raise PackageError('the file on the host does not have the SHA-256 the repository recorded', code='digest_mismatch')
            verified = verify_package(target, keyring)
        except PackageError as exc:
            os.unlink(target)  # a bad copy must not be taken for good next time
            raise HostError('package %s failed verification on the host, nothing was applied: %s' % (item['package_id'], exc.msg),
                            code=exc.code, package_id=item['package_id'])
        info = verified.info
        if info.package_id != item['package_id']:
            os.unlink(target)
            raise HostError('the file sent for %s holds package %s' % (item['package_id'], info.package_id), code='package_mismatch',
                            package_id=item['package_id'])
        if not info.targets(facts['model'], facts['os']):
            raise HostError('package %s is for %s on %s, not for this server (%s on %s)'
                            % (info.package_id, ', '.join(info.models), ', '.join(info.os), facts['model'], facts['os']),
                            code='wrong_model', package_id=info.package_id)
        return target, verified

    def start_job(self, items, keyring, lease_seconds, bundle=None):
        """Verify, unpack and hand the ordered items to the agent's runner; return the job id."""
        if not self.agent()['installed']:
            raise HostError('the exup agent is not installed on this host (%s): install it with exup.fleet.exup_agent'
                            % self.layout.agent_dir, code='agent_missing')
        active = self.active_journal()
        if active:
            raise HostError('job %s is still running on this host' % active['job_id'], code='job_running', job_id=active['job_id'])
        facts = self.facts()
        states = self.states(facts)
        blocked = sorted(name for name, state in states.items() if state.block)
        if blocked:
            raise HostError('the server must restart before more packages are applied: %s' % ', '.join(blocked), code='blocked_until_reboot',
                            blocked=blocked)
        need = sum(2 * int(item.get('size') or 0) for item in items) + SPACE_MARGIN
        free = self._free_bytes(self.layout.state_dir)
        if free < need:
            raise HostError('not enough disk space on the host for %d package(s) in %s: %d bytes free, %d needed'
                            % (len(items), self.layout.state_dir, free, need), code='disk_full', free=free, needed=need)
        if bundle:
            self.receive_bundle(bundle, items)
        accepted = [self.accept_package(item, keyring, facts) for item in items]
        for item, (path, verified) in zip(items, accepted):
            if item.get('action') == 'uninstall' and not (verified.info.uninstall_supported and verified.info.uninstall_command):
                raise HostError('package %s does not support uninstall' % verified.info.package_id, code='uninstall_not_supported',
                                package_id=verified.info.package_id)
        job_id = time.strftime('%Y%m%dT%H%M%S', time.gmtime()) + '-' + uuid.uuid4().hex[:8]
        job_dir = self.layout.job_dir(job_id)
        os.makedirs(os.path.join(job_dir, 'work'), mode=0o700)
        try:
            for index, (path, verified) in enumerate(accepted):
                work = os.path.join(job_dir, 'work', str(index))
                safe_extract(path, keyring, work)
                make_runnable(work)
        except (PackageError, OSError):
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        journal_items = []
        for item, verified in zip(items, (pair[1] for pair in accepted)):
            keys = ('package_id', 'module_id', 'action', 'from_version', 'to_version', 'reboot_required', 'release_date')
            # the verified package's own command (docs/agent.md), never one the controller sent
            command = verified.info.uninstall_command if item.get('action') == 'uninstall' else verified.info.install_command
            journal_items.append(dict({key: item.get(key) for key in keys}, command=command, status=runner.WAITING))
        journal = {'version': runner.JOURNAL_VERSION, 'job_id': job_id, 'state': 'queued', 'created': time.time(),
                   'boot_id': facts['boot_id'], 'items': journal_items}
        runner.write_json(os.path.join(job_dir, 'journal.json'), journal)
        runner.write_lease(job_dir, lease_seconds)
        with open(os.path.join(self.layout.state_dir, 'current_job'), 'w') as handle:
            handle.write(job_id + '\n')
        os.makedirs(self.layout.log_dir, exist_ok=True)
        with open(os.path.join(job_dir, 'runner.log'), 'ab') as output:
            # A detached child that outlives this module: run_command cannot start one.
            subprocess.Popen([sys.executable, self.layout.runner, 'run', '--root', self.layout.root, job_id], cwd='/',  # pylint: disable=ansible-bad-function
                             stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, close_fds=True, start_new_session=True)
        return job_id

    def follow(self, job_id, wait_seconds, lease_seconds):
        """Renew the lease while waiting up to ``wait_seconds`` for the job to finish; return its journal."""
        job_dir = self.layout.job_dir(job_id)
        deadline = time.time() + wait_seconds
        renewed = 0
        while True:
            journal = self.journal(job_id)
            if journal.get('state') == 'finished':
                return journal
            if time.time() - renewed >= 1:
                runner.write_lease(job_dir, lease_seconds)
                renewed = time.time()
            if time.time() >= deadline:
                return journal
            time.sleep(0.05)

    def cancel(self, job_id):
        """Ask the runner to cancel what has not started (started packages finish)."""
        journal = self.journal(job_id)
        if journal.get('state') == 'finished':
            return journal, False
        with open(os.path.join(self.layout.job_dir(job_id), 'cancel'), 'w') as handle:
            handle.write('%f\n' % time.time())
        return journal, True

    # ------------------------------------------------------------------ the agent itself
    def run_package_script(self, package_path, keyring, action, facts):
        """Verify, unpack and run one package's install or uninstall command synchronously (agent install)."""
        work = os.path.join(self.layout.path('var', 'lib', 'exup-install'), uuid.uuid4().hex)
        os.makedirs(os.path.dirname(work), mode=0o700, exist_ok=True)
        try:
            verified = safe_extract(package_path, keyring, work)
            info = verified.info
            command = info.install_command if action == 'install' else info.uninstall_command
            env = runner.script_env(self.layout, action, info.module_id, info.version, info.package_id)
            make_runnable(work)
            # The core has no AnsibleModule (run_command); a package script runs with a clean, explicit environment.
            proc = subprocess.run(['/bin/sh', '-c', command], cwd=work, env=env,  # pylint: disable=ansible-bad-function
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, check=False)
            output = proc.stdout.decode('utf-8', 'replace')[-runner.OUTPUT_TAIL:]
            runner.log(self.layout, '%s of %s %s: exit status %d' % (action, info.package_id, info.version, proc.returncode))
            return info, proc.returncode, output
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def uninstall_agent(self):
        script = os.path.join(self.layout.agent_dir, 'uninstall.sh')
        if not os.path.exists(script):
            raise HostError('the agent folder %s has no uninstall.sh' % self.layout.agent_dir, code='agent_broken')
        env = runner.script_env(self.layout, 'uninstall', AGENT_MODULE, self.agent()['version'])
        proc = subprocess.run(['/bin/sh', script], cwd='/', env=env,  # pylint: disable=ansible-bad-function
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
        output = proc.stdout.decode('utf-8', 'replace')[-runner.OUTPUT_TAIL:]
        runner.log(self.layout, 'agent uninstall: exit status %d' % proc.returncode)
        return proc.returncode, output

    def log_files(self):
        return sorted(glob.glob(os.path.join(self.layout.log_dir, '*.log')))


_ACTIVITY_WORDS = {'waiting_apply': 'waiting_apply', 'waiting_uninstall': 'waiting_uninstall', 'applying': 'applying',
                   'uninstalling': 'uninstalling', 'cancelled': 'cancelled'}


def make_runnable(folder):
    """Unpacked files keep no mode bits (zip): a package's ``./install.sh`` must be executable; the folder is private (0700)."""
    for parent, dirs, files in os.walk(folder):
        for name in files:
            os.chmod(os.path.join(parent, name), 0o700)


def summarize(journal):
    """The part of a journal the controller needs: per item status, overall progress."""
    items = journal.get('items', [])
    done = sum(1 for item in items if item['status'] in (runner.SUCCEEDED, runner.FAILED, runner.CANCELLED))
    keys = ('package_id', 'module_id', 'action', 'from_version', 'to_version', 'reboot_required', 'release_date', 'status', 'cause',
            'exit_code', 'output_tail')
    return {'job_id': journal['job_id'], 'state': journal.get('state'), 'done': done, 'total': len(items),
            'recovered': bool(journal.get('recovered')), 'items': [{key: item.get(key) for key in keys} for item in items]}
