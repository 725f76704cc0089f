# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An answer of exup_host that breaks the contract is contract_invalid naming the field, never a traceback.

The answers are the real exup_host module's (run on the host root, see action_env.py), then damaged, and queued as
dicts: what a hostile or mistaken host would send back.
"""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import MODEL, OS_NAME, Job


@pytest.fixture
def bios(build_pkg, repository, host_root):
    """A BIOS 1.1 for the server (1.0, agent 2.0 installed) in the repository."""
    host_root.install_agent('2.0')
    path = build_pkg(module_id='system-bios', version='1.1', models=[MODEL], os=[OS_NAME])
    repository.add(path)
    return path


@pytest.fixture
def real_answer(host, host_root):
    """real_answer(phase, **args): what the real exup_host answers on the host root (the call is not counted)."""

    def answer(phase, **args):
        module_args = dict(args, phase=phase, host_root=str(host_root.root), contract_version=contract.CONTRACT_VERSION)
        result = host.execute(module_name='exup.fleet.exup_host', module_args=module_args, task_vars={})
        host.calls.clear()
        assert not result.get('failed'), result
        return result

    return answer


def refused(result, field):
    assert (result['failed'], result['error'], result['field']) == (True, 'contract_invalid', field), result
    assert result['msg'].startswith('the controller-host contract (version %d) is not met: %s ' % (contract.CONTRACT_VERSION, field))


def test_an_inventory_without_modules_is_contract_invalid(run_action, host, repository, bios, real_answer):
    inventory = real_answer('inventory')
    del inventory['modules']
    host.answer('inventory', inventory)
    result, _remote = run_action('exup_info', {'repository': repository.path, 'register_server': True})
    refused(result, 'inventory answer.modules')
    assert result['msg'].endswith('is missing')
    assert repository.servers() == {}  # nothing registered from an answer the controller cannot read


def test_a_module_state_with_a_key_of_no_contract_is_contract_invalid(run_action, host, repository, bios, real_answer):
    inventory = real_answer('inventory')
    inventory['modules']['system-bios']['rollback'] = '0.9'
    host.answer('inventory', inventory)
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': []})
    refused(result, 'inventory answer.modules[system-bios].rollback')
    assert result['msg'].endswith('is not a field of the contract')
    assert host.phases == ['inventory']


@pytest.mark.parametrize(
    ('damage', 'field', 'problem'),
    [
        (lambda answer: answer['facts'].pop('model'), 'inventory answer.facts.model', 'is missing'),
        (lambda answer: answer['agent'].update(installed='yes'), 'inventory answer.agent.installed', 'must be of type bool, not str'),
        (lambda answer: answer.update(inbox='abc'), 'inventory answer.inbox', 'must be a list, not str'),
        (
            lambda answer: answer['modules']['system-bios'].update(block='stuck'),
            'inventory answer.modules[system-bios].block',
            "must be one of reboot_required",
        ),
        (lambda answer: answer.update(prerequisites=[{'code': 'x'}]), 'inventory answer.prerequisites[0].msg', 'is missing'),
        (lambda answer: answer.update(active_job={'job_id': 'j'}), 'inventory answer.active_job.state', 'is missing'),
    ],
)
def test_a_damaged_inventory_names_the_field(run_action, host, repository, bios, real_answer, damage, field, problem):
    inventory = real_answer('inventory')
    damage(inventory)
    host.answer('inventory', inventory)
    result, _remote = run_action('exup_info', {'repository': repository.path})
    refused(result, field)
    assert problem in result['msg']


def test_a_start_answer_without_job_is_contract_invalid_and_logged(run_action, host, repository, bios, pem):
    host.answer('start', {'changed': True, 'contract_version': contract.CONTRACT_VERSION})
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': [pem]})
    refused(result, 'start answer.job')
    assert host.phases == ['inventory', 'start']
    assert repository.codes() == ['apply_started', 'apply_failed']


def test_a_status_answer_with_a_bad_item_status_is_contract_invalid(run_action, host, repository, bios, pem):
    host.answer('start', Job('running', state='running'))
    host.answer('status', {'contract_version': contract.CONTRACT_VERSION, 'job': {'job_id': 'j', 'state': 'finished', 'done': 1, 'total': 1, 'items': [{}]}})
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': [pem], 'poll_interval': 1})
    refused(result, 'status answer.job.items[0].package_id')
    assert host.phases == ['inventory', 'start', 'status']


def test_an_agent_query_with_no_agent_record_is_contract_invalid(run_action, host, repository, real_answer):
    inventory = real_answer('inventory')
    inventory['agent'] = ['installed']
    host.answer('inventory', inventory)
    result, _remote = run_action('exup_agent', {'state': 'query'})
    refused(result, 'inventory answer.agent')
    assert result['msg'].endswith('must be a mapping, not list')


def test_a_logs_answer_without_files_is_contract_invalid(run_action, host, repository, tmp_path):
    host.answer('logs', {'changed': False})
    result, _remote = run_action('exup_agent', {'state': 'logs_collected', 'logs_dest': str(tmp_path / 'logs')})
    refused(result, 'logs answer.files')


def test_a_host_answer_as_the_real_module_gives_it_passes(real_answer, host_root):
    host_root.install_agent('2.0')
    answer = real_answer('inventory')
    assert contract.check_answer('inventory', answer) is answer
