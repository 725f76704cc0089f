# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_host's main() refuses a controller of another contract version before Ansible checks the arguments.

A controller of another version may send item fields or types this module does not know; it must hear
contract_mismatch naming both versions, not "Unsupported parameters". main() runs for real with patched
module args (action_env.FakeHost.execute).
"""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract

OTHER = contract.CONTRACT_VERSION + 1
ITEM = {'package_id': 'p', 'module_id': 'system-bios', 'action': 'install', 'sha256': '0' * 64}


@pytest.fixture
def call(host, host_root):
    def run(**args):
        return host.execute(module_name='exup.fleet.exup_host', module_args=dict(args, host_root=str(host_root.root)), task_vars={})

    return run


def is_mismatch(result, controller_version=OTHER):
    assert (result.get('failed'), result.get('error')) == (True, 'contract_mismatch'), result
    assert (result['controller_contract_version'], result['host_contract_version']) == (controller_version, contract.CONTRACT_VERSION)
    assert 'version %s of the controller-host contract and the host module version %d' % (controller_version, contract.CONTRACT_VERSION) in result['msg']
    assert 'Unsupported parameters' not in result['msg']


@pytest.mark.parametrize(
    'args',
    [
        {'items': [dict(ITEM, priority=1)]},  # an item field of another contract
        {'items': [dict(ITEM, size='big')]},  # a type of another contract
        {'items': 'all', 'wait_seconds': 'soon'},  # options of other types
        {'items': [], 'window': '02:00-04:00'},  # an option this module does not have
    ],
)
def test_another_contract_version_is_contract_mismatch_whatever_else_is_sent(call, args):
    is_mismatch(call(phase='start', contract_version=OTHER, **args))


def test_the_version_as_digits_counts_too(call):
    is_mismatch(call(phase='inventory', contract_version=str(OTHER), window='x'))


def test_the_same_version_is_checked_by_ansible_as_before(call):
    result = call(phase='inventory', contract_version=contract.CONTRACT_VERSION, window='x')
    assert result['failed'] and 'Unsupported parameters' in result['msg'] and 'error' not in result
    result = call(phase='inventory', contract_version=str(contract.CONTRACT_VERSION))
    assert not result.get('failed') and result['contract_version'] == contract.CONTRACT_VERSION


def test_a_version_ansible_cannot_read_is_left_to_ansible(call):
    result = call(phase='inventory', contract_version='two')
    assert result['failed'] and 'contract_version' in result['msg'] and 'error' not in result
