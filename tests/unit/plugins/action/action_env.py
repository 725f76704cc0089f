# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the action plugin tests share: a host root on tmp_path, the mocked host, the connection's side.

Only the answers of ``exup.fleet.exup_host`` are canned, and where practical they come from the real
host code run in-process on the host root (``inventory`` and ``logs`` run ``exup_host.run`` itself;
a job's answer is exup_host's own result for a journal), so they cannot drift from a server's.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tarfile
import time
from unittest import mock

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent, agent_runner as runner
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package
from ansible_collections.exup.fleet.plugins.modules import exup_host

MODEL = 'Express5800/R120h-1M'
OS_NAME = 'rhel9'
RHEL94 = 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\nID="rhel"\nPRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n'
UBUNTU2204 = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
BOOT_ID = '0f6c9b1e-5d3a-4c2b-9a8e-7f1d2c3b4a5e'
SERVER = 'srv1'
JOB_ID = '20250110T120000-0000abcd'
JOB_KEYS = ('package_id', 'module_id', 'action', 'from_version', 'to_version', 'reboot_required', 'release_date')


class HostRoot:
    """A managed server's files below tmp_path/host, written the way its sysfs and agent folder look."""

    def __init__(self, root):
        self.root = root
        self.layout = runner.Layout(str(root))

    def write(self, relative, text):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def physical(self, model=MODEL, os_release=RHEL94, boot_id=BOOT_ID, bios='1.0'):
        self.write('sys/class/dmi/id/product_name', model + '\n')
        self.write('sys/class/dmi/id/sys_vendor', 'NEC\n')
        self.write('etc/os-release', os_release)
        self.write('proc/sys/kernel/random/boot_id', boot_id + '\n')
        if bios:
            self.write('sys/class/dmi/id/bios_version', bios + '\n')
        return self

    def reboot(self, boot_id):
        self.write('proc/sys/kernel/random/boot_id', boot_id + '\n')

    def install_agent(self, version='1.0'):
        self.write('opt/exup/agent/VERSION', version + '\n')
        self.write('opt/exup/agent/bin/exup-agent', '#!/bin/sh\n')
        self.write('opt/exup/agent/uninstall.sh', '#!/bin/sh\nrm -rf "$EXUP_ROOT/opt/exup/agent"\necho agent removed\n')
        return self

    def set_version(self, module_id, version):
        """A module's current version where the host reads it (BIOS from DMI, software from the inventory folder)."""
        if module_id == 'system-bios':
            self.write('sys/class/dmi/id/bios_version', version + '\n')
        elif module_id == 'bmc-firmware':
            self.write('sys/class/ipmi/ipmi0/device/bmc/firmware_revision', version + '\n')
        elif module_id == 'update-agent':
            self.write('opt/exup/agent/VERSION', version + '\n')  # the agent package's script replaces the agent
        else:
            self.write('var/lib/exup/inventory/' + module_id, version + '\n')

    def applied(self, item, status='succeeded'):
        """What the agent's runner leaves after an item ended: the module's version and its state (previous, block)."""
        if status == 'succeeded' and item['action'] == 'install':
            self.set_version(item['module_id'], item['to_version'])
        (self.root / runner.STATE_DIR).mkdir(parents=True, exist_ok=True)
        runner.record_item_in_state(self.layout, dict(item, status=status), runner.boot_id(self.layout))

    def running_job(self, items, job_id=JOB_ID):
        """A job under way, as the runner's journal shows it: its runner alive (this process), the first item running."""
        entries = [dict({key: item.get(key) for key in JOB_KEYS}, status='running' if index == 0 else 'waiting') for index, item in enumerate(items)]
        journal = {
            'version': runner.JOURNAL_VERSION,
            'job_id': job_id,
            'state': 'running',
            'created': time.time(),
            'boot_id': runner.boot_id(self.layout),
            'runner_pid': os.getpid(),
            'runner_start': runner.process_start(os.getpid()),
            'items': entries,
        }
        self.write('var/lib/exup/jobs/%s/journal.json' % job_id, json.dumps(journal))
        self.write('var/lib/exup/current_job', job_id + '\n')
        return journal

    def finished_job(self, items, status='succeeded', job_id=JOB_ID):
        """A job the runner finished while nobody watched (exup_host reports it as last_job)."""
        journal = self.running_job(items, job_id)
        journal.update(state='finished', items=[dict(item, status=status) for item in journal['items']])
        self.write('var/lib/exup/jobs/%s/journal.json' % job_id, json.dumps(journal))
        return journal

    def write_log(self, name, text):
        return str(self.write(os.path.relpath(os.path.join(self.layout.log_dir, name), self.layout.root), text))


class ModuleExited(Exception):
    """exit_json or fail_json of the real exup_host module: ``result`` is what Ansible would hand back."""

    def __init__(self, result):
        super().__init__(result.get('msg'))
        self.result = result


def _exit_json(module, **result):
    raise ModuleExited(dict(result, invocation={'module_args': module.params}))


def _fail_json(module, msg, **result):
    raise ModuleExited(dict(result, failed=True, msg=msg, invocation={'module_args': module.params}))


def failed(msg, error, **details):
    """A failed module result as Ansible returns it (with the invocation the action plugin must not echo)."""
    return dict(details, failed=True, msg=msg, error=error, invocation={'module_args': {'trusted_keys_pem': ['(echoed)']}})


class Job:
    """A job as the agent's runner leaves it, for the items the plugin sent to ``start``.

    ``statuses`` per item: a status, or (status, cause). Once finished, the host root holds what the runner
    leaves (versions, previous generation, blocks), so exup_host's answer reads them back.
    """

    def __init__(self, *statuses, state='finished', job_id=JOB_ID, **journal):
        self.statuses, self.state, self.job_id, self.extra = statuses, state, job_id, journal

    def journal(self, items, root):
        entries = []
        for item, status in zip(items, self.statuses, strict=True):
            status, cause = status if isinstance(status, tuple) else (status, None)
            entry = dict({key: item.get(key) for key in JOB_KEYS}, status=status)
            if cause:
                entry['cause'] = cause
            entries.append(entry)
            if self.state == 'finished' and status in ('succeeded', 'failed'):
                root.applied(entry, status)
        return dict(self.extra, version=runner.JOURNAL_VERSION, job_id=self.job_id, state=self.state, items=entries)


class ScriptedHost(agent.Host):
    """The real Host on the host root, except what only a real server does: the runner, package scripts, the root check."""

    def __init__(self, root, fake):
        super().__init__(root)
        self.fake = fake

    @staticmethod
    def require_administrator(euid=None):
        return None  # the unit tests need not run as root

    def start_job(self, items, keyring, lease_seconds, bundle=None):
        """Receive and verify the packages for real (bundle, inline content, inbox), then leave the job to the script."""
        if bundle:
            self.receive_bundle(bundle, items)
        facts = self.facts()
        for item in items:
            self.accept_package(item, keyring, facts)
        return self.fake.scripted(keep=True).job_id

    def follow(self, job_id, wait_seconds, lease_seconds):
        job = self.fake.scripted()
        assert job.job_id == job_id
        return job.journal(self.fake.started_items, self.fake.root)

    def run_package_script(self, package_path, keyring, action, facts):
        """The agent package's install script: the agent's files appear (exit status 0), or the queued ExupError."""
        self.fake.scripted(optional=True)
        info = verify_package(package_path, keyring).info
        self.fake.root.install_agent(info.version)
        return info, 0, 'agent %s installed\n' % info.version


class FakeHost:
    """Stands in for ``_execute_module``: records every exup_host call and runs the real module on the host root.

    ``answer(phase, ...)`` queues, per call of that phase: an exception that is not an ExupError (raised by
    the connection, e.g. unreachable), a dict (the module's whole answer), a Job (what the runner did) or an
    ExupError (raised on the host, answered as the module fails).
    """

    def __init__(self, root):
        self.root = root
        self.calls = []
        self.queued = {}
        self.current = None
        self.started_items = []
        self.check_mode = False

    def answer(self, phase, *answers):
        self.queued.setdefault(phase, []).extend(answers)

    def scripted(self, optional=False, keep=False):
        """The answer queued for the call under way (raised when it is an ExupError); ``keep`` leaves it for the rest of the call."""
        answer = self.current
        if not keep:
            self.current = None
        if isinstance(answer, ExupError):
            raise answer
        assert optional or isinstance(answer, Job), 'no Job queued for this call'
        return answer

    def execute(self, module_name=None, module_args=None, task_vars=None, **_kwargs):
        assert module_name == 'exup.fleet.exup_host'
        assert task_vars is not None
        phase = module_args['phase']
        self.calls.append((phase, copy.deepcopy(module_args)))
        if phase == 'start':
            self.started_items = copy.deepcopy(module_args['items'])
        self.current = self.queued[phase].pop(0) if self.queued.get(phase) else None
        if isinstance(self.current, dict):
            return copy.deepcopy(self.current)
        if isinstance(self.current, BaseException) and not isinstance(self.current, ExupError):
            raise self.current
        args = dict(module_args, _ansible_check_mode=self.check_mode)
        with (
            patch_module_args(args),
            mock.patch.object(AnsibleModule, 'exit_json', _exit_json),
            mock.patch.object(AnsibleModule, 'fail_json', _fail_json),
            mock.patch.object(AnsibleModule, '_log_invocation', lambda module: None),
            mock.patch.object(exup_host.host_agent, 'Host', lambda root: ScriptedHost(root, self)),
        ):
            try:
                exup_host.main()
            except ModuleExited as exc:
                return exc.result
        raise AssertionError('exup_host ended without exit_json or fail_json')

    @property
    def phases(self):
        return [phase for phase, _args in self.calls]

    def sent(self, phase, index=-1):
        """The module args of a call of ``phase`` (the last one by default)."""
        return [args for name, args in self.calls if name == phase][index]


class Remote:
    """The connection's side: the host's temporary folder (a folder below tmp_path) and what was copied to it."""

    def __init__(self, folder):
        self.folder = folder
        self.copied = {}
        self.removed = []

    def transfer(self, local, remote):
        """_transfer_file: keep a copy (the plugin deletes its local bundle right after) and the tar's member names."""
        assert remote.startswith(str(self.folder) + '/')
        shutil.copyfile(local, remote)
        with tarfile.open(remote) as archive:
            self.copied[remote] = archive.getnames()
        return remote


def unreachable(msg='Failed to connect to the host via ssh: Connection refused'):
    return AnsibleConnectionFailure(msg)
