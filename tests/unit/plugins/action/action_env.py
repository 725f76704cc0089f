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
import shutil
import tarfile

from ansible.errors import AnsibleConnectionFailure

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent, agent_runner as runner
from ansible_collections.exup.fleet.plugins.modules import exup_host

MODEL = 'Express5800/R120h-1M'
OS_NAME = 'rhel9'
RHEL94 = 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\nID="rhel"\nPRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n'
UBUNTU2204 = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
BOOT_ID = '0f6c9b1e-5d3a-4c2b-9a8e-7f1d2c3b4a5e'
SERVER = 'srv1'
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
        self.write('opt/exup/agent/uninstall.sh', '#!/bin/sh\n')
        return self

    def set_version(self, module_id, version):
        """A module's current version where the host reads it (BIOS from DMI, software from the inventory folder)."""
        if module_id == 'system-bios':
            self.write('sys/class/dmi/id/bios_version', version + '\n')
        else:
            self.write('var/lib/exup/inventory/' + module_id, version + '\n')

    def applied(self, item, status='succeeded'):
        """What the agent's runner leaves after an item ended: the module's version and its state (previous, block)."""
        if status == 'succeeded' and item['action'] == 'install':
            self.set_version(item['module_id'], item['to_version'])
        (self.root / runner.STATE_DIR).mkdir(parents=True, exist_ok=True)
        runner.record_item_in_state(self.layout, dict(item, status=status), runner.boot_id(self.layout))

    def write_log(self, name, text):
        return str(self.write('var/log/exup/' + name, text))


class ModuleFailed(Exception):
    def __init__(self, result):
        super().__init__(result['msg'])
        self.result = result


class HostModule:
    """What ``exup_host.run`` needs of ExupModule: params, check_mode and ``run`` (an ExupError is a failed result)."""

    def __init__(self, params, check_mode):
        self.params = params
        self.check_mode = check_mode

    def run(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ExupError as exc:
            raise ModuleFailed(failed(exc.msg, exc.code, **exc.details)) from None


def failed(msg, error, **details):
    """A failed module result as Ansible returns it (with the invocation the action plugin must not echo)."""
    return dict(details, failed=True, msg=msg, error=error, invocation={'module_args': {'trusted_keys_pem': ['(echoed)']}})


class FakeHost:
    """Stands in for ``_execute_module``: records every exup_host call; answers from the queue, else from the real host code."""

    def __init__(self, root):
        self.root = root
        self.calls = []
        self.queued = {}
        self.check_mode = False

    def answer(self, phase, *answers):
        """Queue answers for ``phase``: dicts, callables of the module args, or exceptions to raise."""
        self.queued.setdefault(phase, []).extend(answers)

    def execute(self, module_name=None, module_args=None, task_vars=None, **_kwargs):
        assert module_name == 'exup.fleet.exup_host'
        assert task_vars is not None
        phase = module_args['phase']
        self.calls.append((phase, copy.deepcopy(module_args)))
        if self.queued.get(phase):
            answer = self.queued[phase].pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return copy.deepcopy(answer(module_args) if callable(answer) else answer)
        assert phase in ('inventory', 'logs'), 'no answer queued for phase %s' % phase
        assert module_args['host_root'] == str(self.root.root)
        try:
            return exup_host.run(HostModule(dict(module_args), self.check_mode), agent.Host(module_args['host_root']))
        except ModuleFailed as exc:
            return exc.result

    @property
    def phases(self):
        return [phase for phase, _args in self.calls]

    def sent(self, phase, index=-1):
        """The module args of a call of ``phase`` (the last one by default)."""
        return [args for name, args in self.calls if name == phase][index]

    # ----------------------------------------------------------------- job answers
    def job(self, items, statuses, state='finished', job_id='20250110T120000-0000abcd', **journal):
        """exup_host's own answer (``job``, and once finished ``versions_after``, ``modules``, ``agent``) for items in ``statuses``.

        A finished job leaves on the host root what the runner would (versions, previous generation, blocks).
        """
        entries = []
        for item, status in zip(items, statuses, strict=True):
            cause = status[1] if isinstance(status, tuple) else None
            status = status[0] if isinstance(status, tuple) else status
            entry = dict({key: item.get(key) for key in JOB_KEYS}, status=status)
            if cause:
                entry['cause'] = cause
            entries.append(entry)
            if state == 'finished' and status in ('succeeded', 'failed'):
                self.root.applied(entry, status)
        body = dict(journal, job_id=job_id, state=state, items=entries)
        return dict(exup_host._job_result(agent.Host(str(self.root.root)), body), changed=True)  # pylint: disable=protected-access


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
