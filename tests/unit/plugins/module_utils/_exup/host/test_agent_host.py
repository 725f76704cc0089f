# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The managed host (agent.py): facts, versions, prerequisites, state, jobs (docs/agent.md).

Every test uses tmp_path as the host root and writes the sysfs-like files itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import zipfile

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo, build_package_from_bytes, file_digest
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor import agentpkg

BOOT_ID = '0f6c9b1e-5d3a-4c2b-9a8e-7f1d2c3b4a5e'
OTHER_BOOT_ID = '7a1d0c2e-1111-4e2b-8a8e-000000000001'
MODEL = 'Express5800/R120h-1M'
VENDOR = 'NEC'
RHEL94 = 'NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\nVERSION_ID="9.4"\nPRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n'
SLES155 = 'NAME="SLES"\nVERSION="15-SP5"\nVERSION_ID="15.5"\nPRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"\nID="sles"\n'
UBUNTU2204 = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
DMI = 'sys/class/dmi/id/'
SCSI = 'sys/class/scsi_host/'

#: writes the module's version to the inventory folder (as software packages do) and leaves a trace
INSTALL_SH = '''#!/bin/sh
set -eu
mkdir -p "$EXUP_ROOT/var/lib/exup/inventory"
echo "$EXUP_VERSION" > "$EXUP_ROOT/var/lib/exup/inventory/$EXUP_MODULE"
echo "$EXUP_ACTION $EXUP_PACKAGE_ID" >> "$EXUP_ROOT/installed.log"
'''
UNINSTALL_SH = '''#!/bin/sh
set -eu
rm -f "$EXUP_ROOT/var/lib/exup/inventory/$EXUP_MODULE"
echo "$EXUP_ACTION $EXUP_PACKAGE_ID" >> "$EXUP_ROOT/installed.log"
'''


def tree(root):
    """Every folder and file below ``root`` (files with their SHA-256): what a refusal must leave alone."""
    found = {}
    for folder, _dirs, files in os.walk(str(root)):
        found[os.path.relpath(folder, str(root)) + '/'] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as handle:
                found[os.path.relpath(path, str(root))] = hashlib.sha256(handle.read()).hexdigest()
    return found


class Server:
    """A host root below tmp_path, with helpers to describe the hardware and lay out packages and jobs."""

    def __init__(self, tmp_path, signing_key):
        self.root = tmp_path / 'host'
        self.built = tmp_path / 'built'
        self.root.mkdir()
        self.built.mkdir()
        self.key = signing_key
        self.host = agent.Host(str(self.root))

    def write(self, relative, text):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def physical(self, model=MODEL, vendor=VENDOR, os_release=RHEL94, boot=BOOT_ID):
        self.write(DMI + 'product_name', model + '\n')
        self.write(DMI + 'sys_vendor', vendor + '\n')
        self.write('etc/os-release', os_release)
        self.boot(boot)
        return self

    def boot(self, boot_id):
        self.write('proc/sys/kernel/random/boot_id', boot_id + '\n')

    def package(
        self,
        package_id,
        module_id='server-agent',
        version='5.1',
        models=(MODEL,),
        os_names=('rhel9',),
        key=None,
        reboot_required=False,
        install_command='./install.sh',
        uninstall_command='./uninstall.sh',
    ):
        info = PackageInfo(
            package_id=package_id,
            module_id=module_id,
            module_name=MODULE_KINDS[module_id],
            version=version,
            release_date='2025-01-01',
            models=list(models),
            os=list(os_names),
            kind='linux',
            auto_update=True,
            reboot_required=reboot_required,
            downgrade_supported=False,
            uninstall_supported=bool(uninstall_command),
            install_command=install_command,
            uninstall_command=uninstall_command,
        )
        payload = {'install.sh': INSTALL_SH.encode(), 'uninstall.sh': UNINSTALL_SH.encode(), 'image/fw.bin': b'\x5a' * 2048}
        path = str(self.built / (package_id + '.zip'))
        build_package_from_bytes(payload, info, key or self.key, path)
        return path, info

    def item(self, path, info, action='install', from_version=None, src=True, **override):
        """An item as exup_apply sends it: a plan.PlanItem plus sha256, size and (when transferred) src."""
        size, digest = file_digest(path)
        item = {
            'package_id': info.package_id,
            'module_id': info.module_id,
            'action': action,
            'from_version': from_version,
            'to_version': info.version if action == 'install' else None,
            'reboot_required': info.reboot_required,
            'release_date': info.release_date,
            'command': info.install_command if action == 'install' else info.uninstall_command,
            'sha256': digest,
            'size': size,
        }
        if src:
            item['src'] = path
        item.update(override)
        return item

    @property
    def inbox(self):
        return self.root / 'var' / 'lib' / 'exup' / 'inbox'

    @property
    def jobs(self):
        return self.root / 'var' / 'lib' / 'exup' / 'jobs'

    @property
    def state_file(self):
        return self.root / 'var' / 'lib' / 'exup' / 'state.json'

    def to_inbox(self, path, digest=None):
        """Put a file in the inbox under ``digest`` (its own SHA-256 by default), as an earlier transfer did."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        target = self.inbox / ((digest or file_digest(path)[1]) + '.zip')
        shutil.copyfile(path, str(target))
        return target

    def install_agent(self, version='1.2.0', keyring=None):
        path = str(self.built / 'agent.zip')
        agentpkg.build_agent_package(version, self.key, path, [MODEL])
        info, code, output = self.host.run_package_script(path, keyring or KeyRing([self.key.public_key]), 'install', self.host.facts())
        assert code == 0, output
        return info, output

    def state(self):
        return json.loads(self.state_file.read_text())

    def write_state(self, modules):
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({'modules': modules}))

    def set_job(self, job_id, state, items, **fields):
        """A job as the runner leaves it, and current_job pointing at it."""
        job_dir = self.jobs / job_id
        job_dir.mkdir(parents=True)
        journal = dict({'version': 1, 'job_id': job_id, 'state': state, 'created': time.time(), 'boot_id': BOOT_ID, 'items': items}, **fields)
        (job_dir / 'journal.json').write_text(json.dumps(journal))
        self.write('var/lib/exup/current_job', job_id + '\n')
        return job_dir

    def journal(self, job_id):
        return json.loads((self.jobs / job_id / 'journal.json').read_text())


def entry(package_id, module_id, status, action='install', from_version='1.0', to_version='2.0', **fields):
    return dict(
        {
            'package_id': package_id,
            'module_id': module_id,
            'action': action,
            'from_version': from_version,
            'to_version': to_version,
            'reboot_required': False,
            'release_date': '2025-01-01',
            'command': './install.sh',
            'status': status,
        },
        **fields,
    )


def tamper(path, out_path):
    """The package at ``path`` with its firmware image altered (ExUpHash.xml and its signature kept)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out_path, 'w') as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == 'image/fw.bin':
                data = b'evil' + data[4:]
            target.writestr(member, data)
    return out_path


def dead_pid():
    """The pid of a process that has ended (and was reaped)."""
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


@pytest.fixture
def server(tmp_path, signing_key):
    return Server(tmp_path, signing_key)


@pytest.fixture
def ready(server, keyring):
    """A physical NEC server on RHEL 9.4 with the agent installed by its own package."""
    server.physical()
    server.install_agent(keyring=keyring)
    return server


# ---------------------------------------------------------------------------------------------------- what the server is
@pytest.mark.parametrize(
    'text, name, pretty',
    [
        (RHEL94, 'rhel9', 'Red Hat Enterprise Linux 9.4 (Plow)'),
        (SLES155, 'sles15', 'SUSE Linux Enterprise Server 15 SP5'),
        (UBUNTU2204, 'ubuntu2204', 'Ubuntu 22.04.4 LTS'),
        ('', 'unknown', ''),
        (None, 'unknown', ''),
        ('NAME=whatever\n', 'unknown', ''),
    ],
)
def test_os_name_from_release(text, name, pretty):
    assert agent.os_name_from_release(text) == (name, pretty)


def test_facts_of_a_physical_nec_server(server):
    server.physical()
    facts = server.host.facts()
    assert facts == {
        'model': MODEL,
        'vendor': VENDOR,
        'os': 'rhel9',
        'os_pretty_name': 'Red Hat Enterprise Linux 9.4 (Plow)',
        'virtual_machine': None,
        'boot_id': BOOT_ID,
    }


def test_facts_of_a_bare_root(server):
    facts = server.host.facts()
    assert facts == {'model': '', 'vendor': '', 'os': 'unknown', 'os_pretty_name': '', 'virtual_machine': None, 'boot_id': ''}


@pytest.mark.parametrize(
    'vendor, product',
    [
        ('QEMU', 'Standard PC (Q35 + ICH9, 2009)'),
        ('QEMU', 'Standard PC (i440FX + PIIX, 1996)'),
        ('VMware, Inc.', 'VMware Virtual Platform'),
        ('VMware, Inc.', 'VMware7,1'),
        ('innotek GmbH', 'VirtualBox'),
        ('Red Hat', 'KVM'),
        ('OpenStack Foundation', 'KVM'),
        ('Microsoft Corporation', 'Virtual Machine'),
        ('Xen', 'HVM domU'),
    ],
)
def test_facts_detect_a_virtual_machine_by_dmi(server, vendor, product):
    server.physical(model=product, vendor=vendor)
    facts = server.host.facts()
    assert facts['model'] == product and facts['vendor'] == vendor
    assert facts['virtual_machine'] == '%s %s' % (vendor, product)


def test_facts_detect_a_virtual_machine_by_sys_hypervisor(server):
    server.physical()
    assert server.host.facts()['virtual_machine'] is None
    server.write('sys/hypervisor/type', 'xen\n')
    assert server.host.facts()['virtual_machine'] == 'xen'


def test_facts_sys_hypervisor_with_an_empty_type_still_counts(server):
    server.physical()
    server.write('sys/hypervisor/type', '')
    assert server.host.facts()['virtual_machine'] == 'hypervisor'


# ---------------------------------------------------------------------------------------------------- versions
def full_hardware(server, raid_file='version_fw', fc_file='fw_version'):
    server.physical()
    server.write(DMI + 'bios_version', 'U32 v2.58 (04/05/2024)\n')
    server.write('sys/class/ipmi/ipmi0/device/bmc/firmware_revision', '6.20\n')
    server.write(SCSI + 'host0/proc_name', 'ahci\n')
    server.write(SCSI + 'host0/fw_version', 'not-a-raid\n')
    server.write(SCSI + 'host1/proc_name', 'megaraid_sas\n')
    server.write(SCSI + 'host1/' + raid_file, '51.20.0-4540\n')
    server.write('sys/class/fc_host/host3/port_name', '0x21000024ff7a0b01\n')
    server.write(SCSI + 'host3/proc_name', 'qla2xxx\n')
    server.write(SCSI + 'host3/' + fc_file, '9.08.02 (d0d5)\n')
    server.write('opt/exup/agent/VERSION', '1.2.0\n')
    for module_id, version in (('server-agent', '5.0'), ('agent-extension', '2.1'), ('raid-utility', '7.27'), ('bmc-configuration', '3'), ('sdr', '01.04')):
        server.write('var/lib/exup/inventory/' + module_id, version + '\n')


@pytest.mark.parametrize('raid_file, fc_file', [('version_fw', 'fw_version'), ('fw_version', 'fwrev')])
def test_module_versions_reads_every_source(server, raid_file, fc_file):
    full_hardware(server, raid_file, fc_file)
    assert server.host.module_versions() == {
        'system-bios': 'U32 v2.58 (04/05/2024)',
        'bmc-firmware': '6.20',
        'raid-controller': '51.20.0-4540',
        'fc-controller': '9.08.02 (d0d5)',
        'update-agent': '1.2.0',
        'server-agent': '5.0',
        'agent-extension': '2.1',
        'raid-utility': '7.27',
        'bmc-configuration': '3',
        'sdr': '01.04',
    }


def test_module_versions_prefers_version_fw(server):
    full_hardware(server)
    server.write(SCSI + 'host1/fw_version', 'other\n')
    assert server.host.module_versions()['raid-controller'] == '51.20.0-4540'


@pytest.mark.parametrize('driver', agent.RAID_DRIVERS)
def test_module_versions_knows_every_raid_driver(server, driver):
    server.write(SCSI + 'host5/proc_name', driver + '\n')
    server.write(SCSI + 'host5/fw_version', '4.1\n')
    assert server.host.module_versions() == {'raid-controller': '4.1'}


def test_module_versions_omits_absent_modules(server):
    server.physical()
    assert server.host.module_versions() == {}
    server.write(DMI + 'bios_version', '\n')  # empty: no version
    server.write('var/lib/exup/inventory/sdr', '01.04\n')
    server.write('var/lib/exup/inventory/not-a-module', '9\n')
    assert server.host.module_versions() == {'sdr': '01.04'}


def test_module_versions_ignores_a_scsi_host_of_another_driver(server):
    server.physical()
    for index, driver in enumerate(('ahci', 'qla2xxx', 'usb-storage')):
        server.write(SCSI + 'host%d/proc_name' % index, driver + '\n')
        server.write(SCSI + 'host%d/fw_version' % index, '1.%d\n' % index)
        server.write(SCSI + 'host%d/version_fw' % index, '1.%d\n' % index)
    assert 'raid-controller' not in server.host.module_versions()


def test_module_versions_raid_without_a_version_is_omitted(server):
    server.write(SCSI + 'host0/proc_name', 'mpt3sas\n')
    assert server.host.module_versions() == {}


def test_module_versions_takes_the_first_host_by_number(server):
    """host2 comes before host10 (Linux numbers hosts in probe order), for RAID and FC alike."""
    for number, version in ((2, '2.0'), (10, '10.0')):
        server.write(SCSI + 'host%d/proc_name' % number, 'smartpqi\n')
        server.write(SCSI + 'host%d/version_fw' % number, version + '\n')
    for number, version in ((9, '9.0'), (11, '11.0')):
        server.write('sys/class/fc_host/host%d/port_name' % number, '0x1\n')
        server.write(SCSI + 'host%d/proc_name' % number, 'lpfc\n')
        server.write(SCSI + 'host%d/fwrev' % number, version + '\n')
    versions = server.host.module_versions()
    assert versions['raid-controller'] == '2.0'
    assert versions['fc-controller'] == '9.0'


def test_module_versions_fc_needs_an_fc_host(server):
    server.write(SCSI + 'host3/proc_name', 'qla2xxx\n')
    server.write(SCSI + 'host3/fw_version', '9.08.02\n')
    assert server.host.module_versions() == {}
    server.write('sys/class/fc_host/host3/port_name', '0x1\n')
    assert server.host.module_versions() == {'fc-controller': '9.08.02'}


# ---------------------------------------------------------------------------------------------------- prerequisites and the agent
def codes(blockers):
    return [blocker['code'] for blocker in blockers]


def test_prerequisites_of_a_good_host(server):
    server.physical()
    assert server.host.prerequisites() == []
    assert server.host.prerequisites(agent_models=[MODEL], agent_os=agentpkg.AGENT_OS) == []


def test_prerequisites_virtual_machine(server):
    server.physical(model='KVM', vendor='Red Hat')
    blockers = server.host.prerequisites()
    assert codes(blockers) == ['virtual_machine']
    assert 'Red Hat KVM' in blockers[0]['msg']


def test_prerequisites_unsupported_os(server):
    server.physical(os_release='ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    blockers = server.host.prerequisites(agent_models=[MODEL], agent_os=agentpkg.AGENT_OS)
    assert codes(blockers) == ['unsupported_os']
    assert 'debian12' in blockers[0]['msg'] and 'Debian GNU/Linux 12' in blockers[0]['msg']


def test_prerequisites_unsupported_model(server):
    server.physical(model='ThinkSystem SR650', vendor='Lenovo')
    blockers = server.host.prerequisites(agent_models=[MODEL], agent_os=agentpkg.AGENT_OS)
    assert codes(blockers) == ['unsupported_model']
    assert 'ThinkSystem SR650' in blockers[0]['msg']


@pytest.mark.parametrize(
    'relative, name',
    [('usr/sbin/slpd', 'OpenSLP'), ('usr/lib64/axis2c', 'Apache Axis2/C'), ('usr/lib/axis2c', 'Apache Axis2/C'), ('opt/axis2c', 'Apache Axis2/C')],
)
def test_prerequisites_conflicting_software(server, relative, name):
    server.physical()
    if relative.endswith('slpd'):
        server.write(relative, '#!/bin/sh\n')
    else:
        (server.root / relative).mkdir(parents=True)
    blockers = server.host.prerequisites(agent_models=[MODEL], agent_os=agentpkg.AGENT_OS)
    assert codes(blockers) == ['conflicting_software']
    assert name in blockers[0]['msg'] and '/' + relative in blockers[0]['msg']


def test_prerequisites_lists_every_blocker(server):
    server.physical(model='VirtualBox', vendor='innotek GmbH', os_release='ID=centos\nVERSION_ID="7"\n')
    server.write('usr/sbin/slpd', '')
    (server.root / 'opt' / 'axis2c').mkdir(parents=True)
    blockers = server.host.prerequisites(agent_models=[MODEL], agent_os=agentpkg.AGENT_OS)
    assert codes(blockers) == ['virtual_machine', 'unsupported_os', 'unsupported_model', 'conflicting_software', 'conflicting_software']


@pytest.mark.parametrize('files, installed', [((), False), (('VERSION',), False), (('bin/exup-agent',), False), (('VERSION', 'bin/exup-agent'), True)])
def test_agent_is_installed_only_with_version_and_runner(server, files, installed):
    for name in files:
        server.write('opt/exup/agent/' + name, '1.2.0\n')
    expected = {'installed': installed, 'version': '1.2.0' if installed else None, 'folder': str(server.root / 'opt' / 'exup' / 'agent') if installed else None}
    assert server.host.agent() == expected


def test_install_and_uninstall_the_agent_for_real(server, keyring):
    server.physical()
    assert not server.host.agent()['installed']
    info, output = server.install_agent('1.3.0', keyring)
    assert info.module_id == 'update-agent' and info.version == '1.3.0'
    assert 'installed' in output
    agent_dir = server.root / 'opt' / 'exup' / 'agent'
    assert server.host.agent() == {'installed': True, 'version': '1.3.0', 'folder': str(agent_dir)}
    assert (agent_dir / 'bin' / 'exup-agent').read_bytes() == agentpkg.runner_source()
    assert os.access(str(agent_dir / 'bin' / 'exup-agent'), os.X_OK) and os.access(str(agent_dir / 'uninstall.sh'), os.X_OK)
    assert server.host.module_versions() == {'update-agent': '1.3.0'}
    state_dir = server.root / 'var' / 'lib' / 'exup'
    assert sorted(os.listdir(str(state_dir))) == ['inbox', 'inventory', 'jobs', 'log']
    assert os.listdir(str(server.root / 'var' / 'lib' / 'exup-install')) == []  # the unpacked package is gone
    assert 'install of exup-agent-1.3.0 1.3.0: exit status 0' in (state_dir / 'log' / 'agent.log').read_text()
    (state_dir / 'jobs' / 'old-job').mkdir()
    code, output = server.host.uninstall_agent()
    assert code == 0 and 'removed' in output
    assert server.host.agent() == {'installed': False, 'version': None, 'folder': None}
    assert not (server.root / 'opt' / 'exup' / 'agent').exists()
    assert (state_dir / 'jobs' / 'old-job').is_dir()
    assert 'agent uninstall: exit status 0' in (state_dir / 'log' / 'agent.log').read_text()
    with pytest.raises(agent.HostError) as caught:
        server.host.uninstall_agent()
    assert caught.value.code == 'agent_broken'


def test_a_failing_package_script_reports_its_exit_status(server, keyring):
    server.physical()
    path, _info = server.package('BAD-1', install_command='echo broken; exit 4')
    _info, code, output = server.host.run_package_script(path, keyring, 'install', server.host.facts())
    assert code == 4 and 'broken' in output
    assert os.listdir(str(server.root / 'var' / 'lib' / 'exup-install')) == []


# ---------------------------------------------------------------------------------------------------- state
def test_a_block_holds_while_the_boot_id_is_the_same(server):
    server.physical()
    server.write_state(
        {
            'system-bios': {'previous': '1.0', 'block': 'reboot_required', 'boot_id': BOOT_ID, 'staged': '2.0'},
            'bmc-firmware': {'block': 'apply_failed', 'boot_id': BOOT_ID, 'cause': 'exit status 3'},
        }
    )
    server.write(DMI + 'bios_version', '1.0\n')
    states = server.host.states()
    assert vars(states['system-bios']) == {
        'module_id': 'system-bios',
        'current': '1.0',
        'previous': '1.0',
        'block': 'reboot_required',
        'staged': '2.0',
        'activity': None,
    }
    assert states['bmc-firmware'].block == 'apply_failed' and states['bmc-firmware'].current is None
    server.boot(OTHER_BOOT_ID)  # the server restarted
    states = server.host.states()
    assert vars(states['system-bios']) == {'module_id': 'system-bios', 'current': '1.0', 'previous': '1.0', 'block': None, 'staged': None, 'activity': None}
    assert states['bmc-firmware'].block is None


def test_states_without_a_state_file(server):
    server.physical()
    server.write(DMI + 'bios_version', '1.0\n')
    assert {key: vars(value) for key, value in server.host.states().items()} == {
        'system-bios': {'module_id': 'system-bios', 'current': '1.0', 'previous': None, 'block': None, 'staged': None, 'activity': None}
    }


def test_activity_of_a_running_job(server):
    server.physical()
    server.write(DMI + 'bios_version', '1.0\n')
    server.set_job(
        'job-1',
        'running',
        [
            entry('P1', 'server-agent', 'succeeded'),
            entry('P2', 'raid-utility', 'running', action='uninstall', to_version=None),
            entry('P3', 'bmc-firmware', 'waiting'),
            entry('P4', 'sdr', 'waiting', action='uninstall', to_version=None),
        ],
        runner_pid=os.getpid(),
    )
    server.set_job('job-0', 'finished', [entry('P9', 'system-bios', 'waiting')])  # an old job: not current
    server.write('var/lib/exup/current_job', 'job-1\n')
    states = server.host.states()
    assert {key: value.activity for key, value in states.items()} == {
        'raid-utility': 'uninstalling',
        'bmc-firmware': 'waiting_apply',
        'sdr': 'waiting_uninstall',
        'system-bios': None,
    }
    journal = server.journal('job-1')
    journal['items'][2]['status'] = 'running'
    (server.jobs / 'job-1' / 'journal.json').write_text(json.dumps(journal))
    assert server.host.states()['bmc-firmware'].activity == 'applying'
    journal['state'] = 'finished'
    (server.jobs / 'job-1' / 'journal.json').write_text(json.dumps(journal))
    assert all(value.activity is None for value in server.host.states().values())


# ---------------------------------------------------------------------------------------------------- start_job refusals
def refused(server, keyring, items, code, removed=()):
    """start_job refuses with ``code`` and changes nothing on the host (but the ``removed`` bad inbox files)."""
    before = tree(server.root)
    inbox_before = sorted(os.listdir(str(server.inbox))) if server.inbox.exists() else None
    state_before = server.state_file.read_bytes() if server.state_file.exists() else None
    jobs_before = sorted(os.listdir(str(server.jobs))) if server.jobs.exists() else None
    with pytest.raises(agent.HostError) as caught:
        server.host.start_job(items, keyring, 60)
    assert caught.value.code == code, caught.value.msg
    removed = [os.path.relpath(str(path), str(server.root)) for path in removed]
    assert tree(server.root) == {key: value for key, value in before.items() if key not in removed}
    inbox_after = sorted(os.listdir(str(server.inbox))) if server.inbox.exists() else None
    assert inbox_after == (None if inbox_before is None else sorted(set(inbox_before) - {os.path.basename(path) for path in removed}))
    assert (server.state_file.read_bytes() if server.state_file.exists() else None) == state_before
    assert (sorted(os.listdir(str(server.jobs))) if server.jobs.exists() else None) == jobs_before
    return caught.value


def test_start_refused_agent_missing(server, keyring):
    server.physical()
    path, info = server.package('SA-5.1')
    server.to_inbox(path)
    error = refused(server, keyring, [server.item(path, info)], 'agent_missing')
    assert str(server.root / 'opt' / 'exup' / 'agent') in error.msg


def test_start_refused_job_running(ready, keyring):
    ready.set_job('job-1', 'running', [entry('P1', 'sdr', 'running'), entry('P2', 'bmc-firmware', 'waiting')], runner_pid=os.getpid())
    path, info = ready.package('SA-5.1')
    error = refused(ready, keyring, [ready.item(path, info)], 'job_running')
    assert error.details == {'job_id': 'job-1'}


def test_start_refused_queued_job_just_created(ready, keyring):
    ready.set_job('job-1', 'queued', [entry('P1', 'sdr', 'waiting')])  # the runner has not written its pid yet
    path, info = ready.package('SA-5.1')
    refused(ready, keyring, [ready.item(path, info)], 'job_running')


def test_start_refused_blocked_until_reboot(ready, keyring):
    ready.write_state(
        {'system-bios': {'previous': '1.0', 'block': 'reboot_required', 'boot_id': BOOT_ID, 'staged': '2.0'}, 'server-agent': {'previous': '4.0'}}
    )
    path, info = ready.package('SA-5.1')
    error = refused(ready, keyring, [ready.item(path, info)], 'blocked_until_reboot')
    assert error.details == {'blocked': ['system-bios']}
    ready.boot(OTHER_BOOT_ID)  # after the restart the same request is accepted
    job_id = ready.host.start_job([ready.item(path, info)], keyring, 60)
    assert ready.host.follow(job_id, 20, 60)['state'] == 'finished'


def test_start_refused_disk_full(ready, keyring, monkeypatch):
    # Stands in for a full disk (the system tests fill a real, small tmpfs mounted on var/lib/exup).
    seen = []

    def free_bytes(self, path):
        seen.append(path)
        return 1024 * 1024

    monkeypatch.setattr(agent.Host, '_free_bytes', free_bytes)
    path, info = ready.package('SA-5.1')
    item = ready.item(path, info)
    error = refused(ready, keyring, [item], 'disk_full')
    assert error.details == {'free': 1024 * 1024, 'needed': 2 * item['size'] + agent.SPACE_MARGIN}
    assert seen == [str(ready.root / 'var' / 'lib' / 'exup')]


def test_start_refused_tampered_package_in_the_inbox(ready, keyring):
    path, info = ready.package('SA-5.1')
    good = ready.item(path, info)
    tampered = tamper(path, str(ready.built / 'tampered.zip'))
    bad = ready.to_inbox(tampered, digest=good['sha256'])  # the inbox file carries the name of the good digest
    error = refused(ready, keyring, [good], 'digest_mismatch', removed=[bad])
    assert error.details == {'package_id': 'SA-5.1'} and 'nothing was applied' in error.msg
    assert not bad.exists()
    # the next transfer replaces it
    target, verified = ready.host.accept_package(good, keyring, ready.host.facts())
    assert target == str(bad) and file_digest(target)[1] == good['sha256'] and verified.info.package_id == 'SA-5.1'


def test_start_refused_tampered_package_whose_digest_was_recorded(ready, keyring):
    """Even when the recorded SHA-256 is the tampered file's, the signed manifest catches it."""
    good, info = ready.package('SA-5.1')
    path = tamper(good, str(ready.built / 'tampered.zip'))
    item = ready.item(path, info, src=False)
    bad = ready.to_inbox(path)
    refused(ready, keyring, [item], 'digest_mismatch', removed=[bad])


def test_start_refused_unknown_key(ready, keyring, other_key):
    path, info = ready.package('SA-5.1', key=other_key)
    refused(ready, keyring, [ready.item(path, info)], 'unknown_key')  # transferred, refused, removed: the inbox is as before
    assert not (ready.inbox / (file_digest(path)[1] + '.zip')).exists()


@pytest.mark.parametrize('models, os_names', [(('Express5800/R110j-1',), ('rhel9',)), ((MODEL,), ('sles15', 'ubuntu2204'))])
def test_start_refused_wrong_model(ready, keyring, models, os_names):
    path, info = ready.package('SA-5.1', models=models, os_names=os_names)
    ready.to_inbox(path)  # transferred earlier: the inbox keeps a verified package
    error = refused(ready, keyring, [ready.item(path, info, src=False)], 'wrong_model')
    assert MODEL in error.msg and 'rhel9' in error.msg


def test_start_refused_package_mismatch(ready, keyring):
    path, info = ready.package('SA-5.2', version='5.2')
    item = ready.item(path, info, package_id='SA-5.1', to_version='5.1')  # the file sent for SA-5.1 holds SA-5.2
    error = refused(ready, keyring, [item], 'package_mismatch')
    assert error.details == {'package_id': 'SA-5.1'} and 'SA-5.2' in error.msg


def test_start_refused_package_missing(ready, keyring):
    path, info = ready.package('SA-5.1')
    refused(ready, keyring, [ready.item(path, info, src=False)], 'package_missing')


def test_a_bad_second_package_refuses_the_whole_job(ready, keyring, other_key):
    first_path, first = ready.package('SA-5.1')
    ready.to_inbox(first_path)
    second_path, second = ready.package('SDR-2', module_id='sdr', key=other_key)
    refused(ready, keyring, [ready.item(first_path, first), ready.item(second_path, second)], 'unknown_key')


# ---------------------------------------------------------------------------------------------------- a job that runs
def test_start_job_runs_the_packages(ready, keyring):
    ready.write('var/lib/exup/inventory/server-agent', '5.0\n')
    ready.write('var/lib/exup/inventory/raid-utility', '7.27\n')
    ready.write(DMI + 'bios_version', '1.0\n')
    sa_path, sa_info = ready.package('SA-5.1', version='5.1')
    ru_path, ru_info = ready.package('RU-7.27', module_id='raid-utility', version='7.27')
    bios_path, bios_info = ready.package(
        'BIOS-2.0', module_id='system-bios', version='2.0', reboot_required=True, install_command='./install.sh && echo staged > "$EXUP_ROOT/bios.staged"'
    )
    items = [
        ready.item(sa_path, sa_info, from_version='5.0'),
        ready.item(ru_path, ru_info, action='uninstall', from_version='7.27'),
        ready.item(bios_path, bios_info, from_version='1.0'),
    ]
    ready.to_inbox(ru_path)
    job_id = ready.host.start_job(items, keyring, 60)
    assert ready.host.current_job_id() == job_id
    journal = ready.host.follow(job_id, 20, 60)
    assert journal['state'] == 'finished', journal
    assert [(item['package_id'], item['status'], item.get('exit_code')) for item in journal['items']] == [
        ('SA-5.1', 'succeeded', 0),
        ('RU-7.27', 'succeeded', 0),
        ('BIOS-2.0', 'succeeded', 0),
    ]
    assert journal['runner_pid'] != os.getpid()
    # the packages' scripts ran below the host root
    assert (ready.root / 'installed.log').read_text().split('\n') == ['install SA-5.1', 'uninstall RU-7.27', 'install BIOS-2.0', '']
    assert (ready.root / 'bios.staged').read_text() == 'staged\n'
    versions = ready.host.module_versions()
    assert versions['server-agent'] == '5.1' and 'raid-utility' not in versions
    modules = ready.state()['modules']
    assert modules['server-agent'] == {'previous': '5.0'}
    assert modules['system-bios']['previous'] == '1.0' and modules['system-bios']['block'] == 'reboot_required'
    assert modules['system-bios']['boot_id'] == BOOT_ID and modules['system-bios']['staged'] == '2.0'
    assert sorted(ready.host.inbox_digests()) == sorted(item['sha256'] for item in items)
    assert ready.host.active_journal() is None
    summary = agent.summarize(journal)
    assert (summary['job_id'], summary['state'], summary['done'], summary['total'], summary['recovered']) == (job_id, 'finished', 3, 3, False)
    # a finished job cannot be cancelled
    journal_after, requested = ready.host.cancel(job_id)
    assert requested is False and journal_after['state'] == 'finished'
    assert not (ready.jobs / job_id / 'cancel').exists()
    # the staged BIOS blocks the server until it restarts
    refused(ready, keyring, [ready.item(sa_path, sa_info, from_version='5.1')], 'blocked_until_reboot')


def test_the_runner_runs_the_packages_own_command(ready, keyring):
    """docs/agent.md: the runner runs the package's InstallCommand (UninstallCommand), not a command the controller made up."""
    install_path, install_info = ready.package('SA-5.1')
    uninstall_path, uninstall_info = ready.package('SDR-1', module_id='sdr', version='1')
    ready.write('var/lib/exup/inventory/sdr', '1\n')
    items = [
        ready.item(install_path, install_info, command='touch "$EXUP_ROOT/hijacked"'),
        ready.item(uninstall_path, uninstall_info, action='uninstall', from_version='1', command='./install.sh'),
    ]
    job_id = ready.host.start_job(items, keyring, 60)
    journal = ready.host.follow(job_id, 20, 60)
    assert [(item['status'], item['command']) for item in journal['items']] == [('succeeded', './install.sh'), ('succeeded', './uninstall.sh')]
    assert not (ready.root / 'hijacked').exists()
    assert (ready.root / 'installed.log').read_text() == 'install SA-5.1\nuninstall SDR-1\n'


def test_cancel_of_a_running_job_writes_the_request(ready):
    job_dir = ready.set_job('job-1', 'running', [entry('P1', 'sdr', 'running'), entry('P2', 'bmc-firmware', 'waiting')], runner_pid=os.getpid())
    journal, requested = ready.host.cancel('job-1')
    assert requested is True and journal['state'] == 'running'
    assert (job_dir / 'cancel').exists()


def test_unknown_job(ready):
    with pytest.raises(agent.HostError) as caught:
        ready.host.journal('nope')
    assert caught.value.code == 'job_unknown'
    ready.write('var/lib/exup/current_job', 'nope\n')
    assert ready.host.active_journal() is None


# ---------------------------------------------------------------------------------------------------- recovery
def test_a_job_whose_runner_died_is_finished_by_recovery(ready):
    pid = dead_pid()
    ready.set_job(
        'job-1',
        'running',
        [
            entry('P1', 'server-agent', 'succeeded', exit_code=0),
            entry('P2', 'bmc-firmware', 'running'),
            entry('P3', 'sdr', 'waiting'),
            entry('P4', 'raid-utility', 'waiting', action='uninstall', to_version=None),
        ],
        runner_pid=pid,
    )
    before = tree(ready.root)
    journal = ready.host.journal('job-1')
    assert journal['state'] == 'finished' and journal['recovered'] is True
    assert [(item['package_id'], item['status'], item.get('cause')) for item in journal['items']] == [
        ('P1', 'succeeded', None),
        ('P2', 'failed', 'the agent stopped while this package was running'),
        ('P3', 'cancelled', 'the agent stopped before this package started'),
        ('P4', 'cancelled', 'the agent stopped before this package started'),
    ]
    assert journal['items'][1]['outcome'] == 'lost'  # no exit status was written: how it ended is not known
    # A read shows the recovered job and its block without writing anything (issue 8 item 8: reads never write).
    assert ready.host.states()['bmc-firmware'].block == 'apply_failed'
    assert ready.host.inventory()['last_job']['recovered'] is True
    assert tree(ready.root) == before
    # The write path records it.
    assert ready.host.settle('job-1') == journal
    assert ready.journal('job-1') == journal  # written back
    module = ready.state()['modules']['bmc-firmware']
    assert module['block'] == 'apply_failed' and module['boot_id'] == BOOT_ID and module['package_id'] == 'P2'
    assert 'the agent stopped' in module['cause']
    assert set(ready.state()['modules']) == {'bmc-firmware'}
    assert ready.host.active_journal() is None
    assert ready.host.states()['bmc-firmware'].block == 'apply_failed'
    summary = agent.summarize(journal)
    assert summary['done'] == 4 and summary['recovered'] is True


def test_a_queued_job_never_started_is_recovered_after_a_while(ready):
    ready.set_job('job-1', 'queued', [entry('P1', 'sdr', 'waiting')], created=time.time() - agent.STALE_START_SECONDS - 5)
    journal = ready.host.journal('job-1')
    assert journal['state'] == 'finished' and journal['items'][0]['status'] == 'cancelled'
    assert not ready.state_file.exists()  # a cancelled item blocks nothing


def test_a_live_runner_is_not_recovered(ready):
    items = [entry('P1', 'sdr', 'running')]
    ready.set_job('job-1', 'running', items, runner_pid=os.getpid())
    assert ready.host.journal('job-1')['items'] == items
    assert ready.host.active_journal()['job_id'] == 'job-1'


# ---------------------------------------------------------------------------------------------------- summaries and inventory
def test_summarize_counts_done_items():
    journal = {
        'job_id': 'job-1',
        'state': 'running',
        'items': [
            entry('P1', 'server-agent', 'succeeded', exit_code=0, output_tail='ok', started=1.0),
            entry('P2', 'bmc-firmware', 'failed', exit_code=3, cause='exit status 3: no'),
            entry('P3', 'sdr', 'cancelled', cause='an earlier package failed'),
            entry('P4', 'system-bios', 'running'),
            entry('P5', 'raid-utility', 'waiting'),
        ],
    }
    summary = agent.summarize(journal)
    assert (summary['job_id'], summary['state'], summary['done'], summary['total'], summary['recovered']) == ('job-1', 'running', 3, 5, False)
    assert summary['items'][0] == {
        'package_id': 'P1',
        'module_id': 'server-agent',
        'action': 'install',
        'from_version': '1.0',
        'to_version': '2.0',
        'reboot_required': False,
        'release_date': '2025-01-01',
        'status': 'succeeded',
        'cause': None,
        'exit_code': 0,
        'output_tail': 'ok',
        'outcome': None,
    }
    assert [item['status'] for item in summary['items']] == ['succeeded', 'failed', 'cancelled', 'running', 'waiting']
    assert agent.summarize({'job_id': 'job-2', 'items': []})['done'] == 0


def test_inventory(ready):
    full_hardware(ready)
    ready.write('opt/exup/agent/VERSION', '1.2.0\n')
    path, _info = ready.package('SA-5.1')
    digest = file_digest(path)[1]
    ready.to_inbox(path)
    ready.set_job('job-1', 'running', [entry('P1', 'sdr', 'running', action='uninstall', to_version=None)], runner_pid=os.getpid())
    inventory = ready.host.inventory()
    assert sorted(inventory) == ['active_job', 'agent', 'facts', 'inbox', 'last_job', 'modules', 'prerequisites']
    assert inventory['last_job'] is None  # the newest job is still running
    assert inventory['facts'] == ready.host.facts() and inventory['facts']['model'] == MODEL
    assert inventory['modules']['system-bios'] == {
        'module_id': 'system-bios',
        'current': 'U32 v2.58 (04/05/2024)',
        'previous': None,
        'block': None,
        'staged': None,
        'activity': None,
    }
    assert inventory['modules']['sdr']['activity'] == 'uninstalling'
    assert set(inventory['modules']) == set(ready.host.module_versions())
    assert inventory['agent'] == {'installed': True, 'version': '1.2.0', 'folder': str(ready.root / 'opt' / 'exup' / 'agent')}
    assert inventory['inbox'] == [digest]
    assert inventory['active_job']['job_id'] == 'job-1' and inventory['active_job']['total'] == 1
    assert inventory['prerequisites'] == []
    json.dumps(inventory)  # goes back to the controller as module output


def test_inventory_of_a_virtual_machine_without_agent(server):
    server.physical(model='VirtualBox', vendor='innotek GmbH')
    inventory = server.host.inventory()
    assert inventory['agent']['installed'] is False and inventory['active_job'] is None and inventory['inbox'] == []
    assert inventory['modules'] == {}
    assert codes(inventory['prerequisites']) == ['virtual_machine']


def test_cancelled_shows_for_what_the_last_job_cancelled_until_the_next_job(ready):
    """003 Table 8 "cancelled": the modules the finished newest job cancelled; the others keep their own status."""
    ready.set_job('job-1', 'finished', [entry('P1', 'system-bios', 'succeeded'), entry('P2', 'bmc-firmware', 'cancelled', cause='cancelled by the user')])
    states = ready.host.states()
    assert states['bmc-firmware'].activity == 'cancelled'
    assert states.get('system-bios') is None or states['system-bios'].activity is None
    last = ready.host.inventory()['last_job']
    assert (last['job_id'], last['state'], [item['status'] for item in last['items']]) == ('job-1', 'finished', ['succeeded', 'cancelled'])
    # A newer job replaces the picture: nothing is "cancelled" while it runs.
    ready.set_job('job-2', 'running', [entry('P3', 'sdr', 'running')], runner_pid=os.getpid())
    states = ready.host.states()
    assert 'bmc-firmware' not in states and states['sdr'].activity == 'applying'
    assert ready.host.inventory()['last_job'] is None


def test_changing_the_server_needs_the_administrator_account():
    """003 §3.8.1.1 step 4: the agent works as root (become); any other account is refused with the reason."""
    agent.Host.require_administrator(euid=0)
    with pytest.raises(agent.HostError) as info:
        agent.Host.require_administrator(euid=1000)
    assert info.value.code == 'not_administrator' and 'become: true' in info.value.msg and 'uid 1000' in info.value.msg


# ---------------------------------------------------------------------------------------------------- an agent of another version
def mismatch(call, *args):
    with pytest.raises(agent.ExupError) as caught:
        call(*args)
    assert caught.value.code == 'agent_version_mismatch', caught.value.msg
    return caught.value


@pytest.mark.parametrize('drop, field', [('status', 'status'), ('module_id', 'module_id'), ('reboot_required', 'reboot_required')])
def test_a_journal_another_agent_wrote_is_a_clear_error_not_a_key_error(ready, drop, field):
    """Before the contract, a journal item without a key the host reads was a KeyError (a module traceback)."""
    written = entry('bios-2.0', 'system-bios', 'succeeded')
    del written[drop]
    ready.set_job('20250110T120000-0000abcd', 'finished', [written])
    for read in (ready.host.inventory, ready.host.states, lambda: ready.host.journal('20250110T120000-0000abcd')):
        error = mismatch(read)
        assert error.details['field'] == field and error.details['agent_version'] == '1.2.0'
        assert 'journal of job 20250110T120000-0000abcd, item 0, has no %s' % field in error.msg
        assert 'installed: 1.2.0' in error.msg


def test_a_state_file_another_agent_wrote_is_a_clear_error(ready):
    ready.state_file.parent.mkdir(parents=True, exist_ok=True)
    ready.state_file.write_text(json.dumps({'modules': [{'module_id': 'system-bios', 'block': 'apply_failed'}]}))
    assert "state.json on this server has modules of type list" in mismatch(ready.host.inventory).msg
    ready.write_state({'system-bios': {'block': 'apply_failed', 'cause': 'exit status 1'}})
    assert 'module system-bios, has no boot_id' in mismatch(ready.host.states).msg


def test_an_older_agent_is_refused_before_anything_is_unpacked(ready, keyring):
    """An agent whose runner reads an older job format than this collection writes: agent_version_mismatch, the host unchanged."""
    runner_path = ready.root / 'opt' / 'exup' / 'agent' / 'bin' / 'exup-agent'
    runner_path.write_text(runner_path.read_text().replace('\nJOURNAL_VERSION = 1\n', '\nJOURNAL_VERSION = 0\n'))
    path, info = ready.package('raid-5.1', module_id='raid-controller')
    before = tree(ready.root)
    error = mismatch(ready.host.start_job, [ready.item(path, info)], keyring, 60)
    assert error.details == {'agent_version': '1.2.0', 'agent_job_format': 0, 'job_format': 1}
    assert tree(ready.root) == before


def test_the_agent_of_this_collection_states_its_job_format(ready):
    runner_path = ready.root / 'opt' / 'exup' / 'agent' / 'bin' / 'exup-agent'
    assert agent.contract.installed_job_format(runner_path.read_text()) == agent.runner.JOURNAL_VERSION
