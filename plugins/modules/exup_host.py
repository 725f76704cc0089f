#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: exup_host
short_description: The managed-host side of exup_info, exup_apply and exup_agent (internal)
version_added: 0.1.0
description:
  - Runs on a managed server and talks to the exup agent there.
  - The action plugins of M(exup.fleet.exup_info), M(exup.fleet.exup_apply) and M(exup.fleet.exup_agent) call it;
    use those modules in playbooks. Its options are an internal interface and may change between releases.
  - See docs/agent.md for the on-host layout it reads and writes.
author: exup.fleet contributors (@exup-fleet)
options:
  phase:
    description:
      - C(inventory) reads the server (model, OS, versions, agent, state); the others act.
    type: str
    required: true
    choices: [inventory, start, status, cancel, agent_install, agent_uninstall, logs]
  host_root:
    description: Root of the host's file system (C(/) on a real server; a lab host root in tests).
    type: path
    default: /
  trusted_keys_pem:
    description:
      - Public keys (PEM text) that packages must be signed with.
      - Key material only, no file paths; the action plugins read the O(exup.fleet.exup_apply#module:trusted_keys) files on the controller,
        because a managed server does not have them.
    type: list
    elements: str
    default: []
  contract_version:
    description:
      - The version of the controller-host contract the caller speaks (the action plugins always send it).
      - Another version than this module's is refused with C(error=contract_mismatch) before the other options are checked,
        so a controller of another version that sends options, fields or types this module does not know hears that too;
        unset, the caller is taken at its word.
      - Every answer carries this module's own version as C(contract_version).
    type: int
  items:
    description:
      - For C(start), the ordered plan items.
      - A missing or bad field is refused with C(error=contract_invalid) naming it.
    type: list
    elements: dict
    default: []
    suboptions:
      package_id:
        description: The package (required).
        type: str
      module_id:
        description: The module the package updates (required).
        type: str
      action:
        description: C(install) or C(uninstall) (required).
        type: str
      from_version:
        description: The module's version before the item.
        type: str
      to_version:
        description: The version the item installs (none for an uninstall).
        type: str
      reboot_required:
        description: Whether the package needs a restart to take effect.
        type: bool
      release_date:
        description: The package's release date.
        type: str
      command:
        description: The plan's command, for information; the host runs the verified package's own command.
        type: str
      sha256:
        description: SHA-256 of the package file (required; 64 lowercase hexadecimal digits).
        type: str
      size:
        description: Size of the package file in bytes.
        type: int
      content:
        description: The package file in base64, when sent inline.
        type: str
      src:
        description: Path of the package file already copied to the host.
        type: str
      url:
        description:
          - A pool ticket URL of the repository service the host fetches the package file from itself (a remote repository,
            O(items[].size) bytes at most, no redirect followed, SHA-256 and signature checked before use).
        type: str
      url_ca:
        description: The CA certificate (PEM text) to verify an V(https://) O(items[].url) with, instead of the host's trust store.
        type: str
  package:
    description:
      - For C(agent_install), the agent package; the file comes inline (C(content)), as C(src), in O(bundle), or from C(url).
      - A missing or bad field is refused with C(error=contract_invalid) naming it.
    type: dict
    suboptions:
      package_id:
        description: The package (required).
        type: str
      sha256:
        description: SHA-256 of the package file (required; 64 lowercase hexadecimal digits).
        type: str
      size:
        description: Size of the package file in bytes.
        type: int
      content:
        description: The package file in base64, when sent inline.
        type: str
      src:
        description: Path of the package file already copied to the host.
        type: str
      url:
        description:
          - A pool ticket URL of the repository service the host fetches the package file from itself (a remote repository,
            O(package.size) bytes at most, no redirect followed, SHA-256 and signature checked before use).
        type: str
      url_ca:
        description: The CA certificate (PEM text) to verify an V(https://) O(package.url) with, instead of the host's trust store.
        type: str
  bundle:
    description: For C(start), an uncompressed tar of C(<sha256>.zip) members the controller copied (packages not sent inline).
    type: path
  job_id:
    description: For C(status) and C(cancel), the job.
    type: str
  lease_seconds:
    description: How long the agent keeps going without hearing from the controller.
    type: int
    default: 60
  wait_seconds:
    description: How long C(start) and C(status) wait for the job to finish before answering.
    type: float
    default: 5
  agent_models:
    description: For C(agent_install), the models the agent package supports.
    type: list
    elements: str
  agent_os:
    description: For C(agent_install), the operating systems the agent package supports.
    type: list
    elements: str
requirements:
  - cryptography >= 42.0 (on the managed server; phase inventory runs without it and lists it in prerequisites)
  - lxml >= 5.2 (on the managed server; phase inventory runs without it and lists it in prerequisites)
notes:
  - Check mode is supported by C(inventory) and C(status) only.
'''

EXAMPLES = r'''
- name: Internal; use exup.fleet.exup_info instead
  exup.fleet.exup_host:
    phase: inventory
'''

RETURN = r'''
contract_version:
  description: The version of the controller-host contract this module speaks.
  returned: success
  type: int
facts:
  description: What the server is (phase inventory).
  returned: phase inventory
  type: dict
  contains:
    model:
      description: DMI product name.
      type: str
    vendor:
      description: DMI system vendor.
      type: str
    os:
      description: The OS as packages name it (rhel9, sles15, ubuntu2204).
      type: str
    os_pretty_name:
      description: PRETTY_NAME of os-release.
      type: str
    virtual_machine:
      description: The hypervisor when the server is a virtual machine guest, else null.
      type: str
    boot_id:
      description: The kernel's boot id; it changes at every restart.
      type: str
modules:
  description:
    - Module id to its state - C(module_id), C(current) and C(previous) versions, C(block) (why an apply is refused now),
      C(staged) (the version waiting for a restart) and C(activity) (what a running job does to it), null when none.
  returned: phase inventory, and when a job finished
  type: dict
  sample:
    system-bios:
      module_id: system-bios
      current: '1.0'
      previous: '0.9'
      block: null
      staged: null
      activity: null
agent:
  description: The agent on the server.
  returned: phases inventory, agent_install, agent_uninstall, and when a job finished
  type: dict
  contains:
    installed:
      description: Whether the agent is installed.
      type: bool
    version:
      description: The installed agent's version, null when it is not installed.
      type: str
    folder:
      description: Where the agent is installed, null when it is not installed.
      type: str
inbox:
  description: SHA-256 digests of the package files already in the host's inbox (not sent again).
  returned: phase inventory
  type: list
  elements: str
active_job:
  description:
    - The job still running, else null.
    - C(items) lists the job's packages in order, each with C(package_id), C(module_id), C(action), C(from_version), C(to_version),
      C(reboot_required), C(release_date), C(status) (V(waiting), V(running), V(succeeded), V(failed), V(cancelled)), C(cause),
      C(exit_code), C(output_tail) and C(outcome) (V(finished), V(finished_after_runner_died), V(killed), V(lost)).
  returned: phase inventory
  type: dict
  contains:
    job_id:
      description: The agent's job id.
      type: str
    state:
      description: V(running) or V(finished).
      type: str
    done:
      description: Items that ended.
      type: int
    total:
      description: Items of the job.
      type: int
    recovered:
      description: The job's outcome was read after its runner died.
      type: bool
    runner_lost:
      description: A package script outlives the agent's runner (the job is still running).
      type: bool
    error:
      description: V(agent_disk_full) when the agent's state folder filled up during the job, else null.
      type: str
last_job:
  description:
    - The last finished job, else null (the controller logs an outcome it never saw).
    - C(items) lists the job's packages in order, each with C(package_id), C(module_id), C(action), C(from_version), C(to_version),
      C(reboot_required), C(release_date), C(status) (V(waiting), V(running), V(succeeded), V(failed), V(cancelled)), C(cause),
      C(exit_code), C(output_tail) and C(outcome) (V(finished), V(finished_after_runner_died), V(killed), V(lost)).
  returned: phase inventory
  type: dict
  contains:
    job_id:
      description: The agent's job id.
      type: str
    state:
      description: V(running) or V(finished).
      type: str
    done:
      description: Items that ended.
      type: int
    total:
      description: Items of the job.
      type: int
    recovered:
      description: The job's outcome was read after its runner died.
      type: bool
    runner_lost:
      description: A package script outlives the agent's runner (the job is still running).
      type: bool
    error:
      description: V(agent_disk_full) when the agent's state folder filled up during the job, else null.
      type: str
prerequisites:
  description:
    - Why the agent cannot be installed here, empty when it can - a virtual machine guest, conflicting software, and a Python
      library this Python cannot import (V(missing_library); the other phases fail with that error instead).
  returned: phase inventory
  type: list
  elements: dict
  contains:
    code:
      description:
        - Stable code of the reason, for example V(virtual_machine), V(unsupported_os), V(unsupported_model),
          V(conflicting_software) or V(missing_library).
      type: str
    msg:
      description: The reason in words.
      type: str
    library:
      description: For V(missing_library), the Python library the server's Python cannot import (V(cryptography), V(lxml)).
      type: str
      returned: when code is missing_library
    package:
      description:
        - For V(missing_library), the distribution package that brings it to that Python on that OS - V(python3-lxml) for a
          platform Python, V(python311-lxml) for SLES 15's Python 3.11, V(python3.11-lxml) for RHEL's.
      type: str
      returned: when code is missing_library
job:
  description:
    - The job's progress and per-package results.
    - C(items) lists the job's packages in order, each with C(package_id), C(module_id), C(action), C(from_version), C(to_version),
      C(reboot_required), C(release_date), C(status) (V(waiting), V(running), V(succeeded), V(failed), V(cancelled)), C(cause),
      C(exit_code), C(output_tail) and C(outcome) (V(finished), V(finished_after_runner_died), V(killed), V(lost)).
    - Phases C(inventory) and C(status) only read; the outcome of a job whose runner died is recorded by the next C(start) or C(cancel).
  returned: phases start, status, cancel
  type: dict
  contains:
    job_id:
      description: The agent's job id.
      type: str
    state:
      description: V(running) or V(finished).
      type: str
    done:
      description: Items that ended.
      type: int
    total:
      description: Items of the job.
      type: int
    recovered:
      description: The job's outcome was read after its runner died.
      type: bool
    runner_lost:
      description: A package script outlives the agent's runner (the job is still running).
      type: bool
    error:
      description: V(agent_disk_full) when the agent's state folder filled up during the job, else null.
      type: str
versions_after:
  description: Module id to its version after the job.
  returned: when a job finished
  type: dict
  sample:
    system-bios: '1.1'
    update-agent: '2.0'
files:
  description: The agent's log files (phase logs).
  returned: phase logs
  type: list
  elements: str
output:
  description: The output of the agent package's install or uninstall script.
  returned: phases agent_install, agent_uninstall
  type: str
package_id:
  description: The agent package installed.
  returned: phase agent_install
  type: str
version_installed:
  description: The agent version the package installed.
  returned: phase agent_install
  type: str
blockers:
  description: The failed prerequisites of a refused phase (V(missing_library), or those of C(agent_install)).
  returned: failure for a prerequisite
  type: list
  elements: dict
  contains:
    code:
      description:
        - Stable code of the reason, for example V(virtual_machine), V(unsupported_os), V(unsupported_model),
          V(conflicting_software) or V(missing_library).
      type: str
    msg:
      description: The reason in words.
      type: str
    library:
      description: For V(missing_library), the Python library the server's Python cannot import (V(cryptography), V(lxml)).
      type: str
      returned: when code is missing_library
    package:
      description:
        - For V(missing_library), the distribution package that brings it to that Python on that OS - V(python3-lxml) for a
          platform Python, V(python311-lxml) for SLES 15's Python 3.11, V(python3.11-lxml) for RHEL's.
      type: str
      returned: when code is missing_library
error:
  description: Stable code of the failure (missing_library, contract_mismatch, contract_invalid, not_administrator, job_running, ...).
  returned: failure
  type: str
'''

import os

from ansible.module_utils import basic

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent as host_agent
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import ExupModule

PHASES = ['inventory', 'start', 'status', 'cancel', 'agent_install', 'agent_uninstall', 'logs']


def _job_result(host, journal):
    result = {'job': host_agent.summarize(journal)}
    if journal.get('state') == 'finished':
        result['versions_after'] = host.module_versions()
        result['modules'] = {key: vars(value) for key, value in host.states().items()}
        result['agent'] = host.agent()
    return result


def _script_failed(what, code, output, error):
    return ExupError('%s (exit status %d): %s' % (what, code, output.strip()[-400:]), code=error, exit_code=code, output=output)


# ---------------------------------------------------------------- phases that only read (check mode too)
def _inventory(module, host):
    return dict(changed=False, **host.inventory())


def _status(module, host):
    params = module.params
    journal = host.follow(params['job_id'], params['wait_seconds'], params['lease_seconds'])
    return dict(changed=False, **_job_result(host, journal))


def _logs(module, host):
    return {'changed': False, 'files': host.log_files()}


# ---------------------------------------------------------------- phases that change the host, no keys needed
def _cancel(module, host):
    journal, requested = host.cancel(module.params['job_id'])
    return dict(changed=requested, **_job_result(host, journal))


def _agent_uninstall(module, host):
    active = host.active_journal()
    if active:
        raise ExupError('job %s is still running on this host: the agent cannot be removed now' % active['job_id'], code='job_running', job_id=active['job_id'])
    code, output = host.uninstall_agent()
    if code != 0:
        raise _script_failed('uninstalling the agent failed', code, output, 'uninstall_failed')
    return {'changed': True, 'agent': host.agent(), 'output': output}


# ---------------------------------------------------------------- phases that install, with the trusted keys
def _start(module, host, keyring):
    params = module.params
    job_id = host.start_job(contract.host_items(params['items']), keyring, params['lease_seconds'], bundle=params['bundle'])
    journal = host.follow(job_id, params['wait_seconds'], params['lease_seconds'])
    return dict(changed=True, **_job_result(host, journal))


def _agent_install(module, host, keyring):
    params = module.params
    package = contract.agent_package(params['package'])
    facts = host.facts()
    blockers = host.prerequisites(facts, params['agent_models'], params['agent_os'])
    if blockers:
        raise ExupError(
            'the agent cannot be installed on this server: %s' % '; '.join(item['msg'] for item in blockers), code=blockers[0]['code'], blockers=blockers
        )
    if params['bundle']:
        host.receive_bundle(params['bundle'], [package])
    path, _verified = host.accept_package(package, keyring, facts)
    info, code, output = host.run_package_script(path, keyring, 'install', facts)
    if code != 0:
        raise _script_failed('the agent package %s failed to install' % info.package_id, code, output, 'install_failed')
    return {'changed': True, 'agent': host.agent(), 'output': output, 'package_id': info.package_id, 'version_installed': info.version}


READING_PHASES = {'inventory': _inventory, 'status': _status, 'logs': _logs}
CHANGING_PHASES = {'cancel': _cancel, 'agent_uninstall': _agent_uninstall}
INSTALLING_PHASES = {'start': _start, 'agent_install': _agent_install}


def run(module, host):
    params = module.params
    phase = params['phase']
    mismatch = contract.version_mismatch(params.get('contract_version'))  # .get: a caller of run() may pass only what it sets
    if mismatch:
        raise mismatch
    if phase in READING_PHASES:
        return READING_PHASES[phase](module, host)
    if module.check_mode:
        raise ExupError('phase %s changes the host and does not run in check mode' % phase, code='check_mode')
    host.require_administrator()  # install, apply, uninstall: the administrator account (003 §3.8.1.1 step 4), through become
    if phase in CHANGING_PHASES:
        return CHANGING_PHASES[phase](module, host)
    # installing anything needs the trusted keys (PEM texts only: a path is refused, never opened here); removing the agent does not
    keyring = module.run(KeyRing.from_pem_texts, params['trusted_keys_pem'])
    if phase in INSTALLING_PHASES:
        return INSTALLING_PHASES[phase](module, host, keyring)
    raise ExupError('unknown phase %s' % phase, code='argument_invalid')


def _raw_contract_version(value):
    """The contract version as sent, before Ansible converts types: an int, or digits (an ad hoc call); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def refuse_other_contract():
    """``contract_mismatch`` before the arguments are checked.

    A controller of another contract version may send fields or types this module does not know: it must hear
    contract_mismatch naming both versions, not "Unsupported parameters". The arguments are read raw for that.
    """
    params = basic._load_params() or {}  # pylint: disable=protected-access  # the documented way to read the raw arguments
    mismatch = contract.version_mismatch(_raw_contract_version(params.get('contract_version')))
    if mismatch is None:
        return
    # a module that takes whatever was sent, only to answer through fail_json as every other failure does
    module = basic.AnsibleModule(argument_spec={key: {'type': 'raw'} for key in params if not key.startswith('_ansible_')}, supports_check_mode=True)
    module.fail_json(msg=mismatch.msg, error=mismatch.code, **mismatch.details)


def main():
    refuse_other_contract()
    module = ExupModule(
        argument_spec=dict(
            contract.HOST_ARGUMENT_SPEC,
            phase={'type': 'str', 'required': True, 'choices': PHASES},
            host_root={'type': 'path', 'default': '/'},
            trusted_keys_pem={'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
            bundle={'type': 'path'},
            job_id={'type': 'str'},
            lease_seconds={'type': 'int', 'default': 60},
            wait_seconds={'type': 'float', 'default': 5},
            agent_models={'type': 'list', 'elements': 'str'},
            agent_os={'type': 'list', 'elements': 'str'},
        ),
        supports_check_mode=True,
        defer_libraries=True,
    )
    root = module.params['host_root']
    if not os.path.isdir(root):
        module.fail_json(msg='host_root %s is not a directory' % root, error='argument_invalid')
    if module.params['phase'] != 'inventory':
        module.require_libraries(root)  # error missing_library, naming the package for this Python and OS
    result = module.run(run, module, host_agent.Host(root))
    if module.params['phase'] == 'inventory':
        # reading needs neither library: one the agent path needs is a failed prerequisite beside the others (issue 12)
        result['prerequisites'] = list(result['prerequisites']) + module.library_blockers(root)
    module.exit_json(contract_version=contract.CONTRACT_VERSION, **result)


if __name__ == '__main__':
    main()
