# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of the controller-host contract (contract.py), through ActionModule.run().

The host is mocked: only the answers of exup.fleet.exup_host are canned, and where no answer is queued the
real exup_host module runs on a host root below tmp_path (see ../action/action_env.py).
"""

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import MODEL, OS_NAME, Job


@pytest.fixture
def bios(build_pkg, repository, host_root):
    """A BIOS 1.1 for the server (1.0, agent installed) in the repository."""
    host_root.install_agent('2.0')
    path = build_pkg(module_id='system-bios', version='1.1', models=[MODEL], os=[OS_NAME])
    repository.add(path)
    return path


def test_every_host_call_states_the_contract_version(run_action, host, repository, bios, pem):
    host.answer('start', Job('running', state='running'))
    host.answer('status', Job('succeeded'))
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': [pem], 'poll_interval': 1})
    assert not result.get('failed'), result
    assert host.phases == ['inventory', 'start', 'status']
    assert [args['contract_version'] for _phase, args in host.calls] == [contract.CONTRACT_VERSION] * 3
    assert 'contract_version' not in result  # the host's version is checked, not echoed into the task result


def test_an_answer_of_another_contract_version_is_contract_mismatch_and_changes_nothing(run_action, host, repository, bios):
    host.answer('inventory', {'changed': False, 'contract_version': contract.CONTRACT_VERSION + 1, 'facts': {}, 'modules': {}})
    result, _remote = run_action('exup_info', {'repository': repository.path, 'register_server': True})
    assert (result['failed'], result['error']) == (True, 'contract_mismatch')
    assert result['msg'].startswith(
        'the controller speaks version %d of the controller-host contract and the host module version %d: use the same exup.fleet collection version'
        % (contract.CONTRACT_VERSION, contract.CONTRACT_VERSION + 1)
    )
    assert (result['controller_contract_version'], result['host_contract_version']) == (contract.CONTRACT_VERSION, contract.CONTRACT_VERSION + 1)
    assert repository.servers() == {}  # nothing registered from an answer the controller cannot read


def test_a_host_module_of_another_version_refuses_the_call(run_action, host, repository, bios, monkeypatch):
    """A newer controller and the exup_host it reaches (one contract version older): the host says so, nothing runs."""
    host_version = contract.CONTRACT_VERSION
    monkeypatch.setattr(contract, 'CONTRACT_VERSION', host_version + 1)  # what the controller sends
    result, _remote = run_action('exup_info', {'repository': repository.path})
    assert (result['failed'], result['error']) == (True, 'contract_mismatch')
    assert 'version %d of the controller-host contract and the host module version %d' % (host_version + 1, host_version) in result['msg']
    assert host.phases == ['inventory']


def test_a_stored_row_that_breaks_the_contract_is_refused_before_anything_is_sent(run_action, host, repository, bios, pem):
    """Hostile input from a damaged index: a sha256 that is no digest never reaches the host (it names a file there)."""
    with sqlite3.connect(str(repository.path) + '/repo.db') as db:
        db.execute("UPDATE packages SET sha256 = '../../etc/passwd'")
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': [pem]})
    assert result['failed'] is True
    assert host.phases == ['inventory']  # no start, nothing copied
    assert (result['error'], result['field']) == ('contract_invalid', 'plan item system-bios_1.1_Express5800-R120h-1M_rhel9.sha256')
    assert result['msg'].endswith('sha256 must be 64 lowercase hexadecimal digits')
