# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_info on the agent path, through ActionModule.run() with a real repository on tmp_path.

The host is mocked: only the answers of exup.fleet.exup_host are canned, and its inventory answer is
the real exup_host.run on a host root below tmp_path (see action_env.py).
"""

from __future__ import annotations

import socket

import pytest

from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import BOOT_ID, JOB_ID, MODEL, OS_NAME, SERVER, unreachable

OTHER_BOOT = '7a1d0c2e-1111-4e2b-8a8e-000000000001'


@pytest.fixture
def bios_packages(build_pkg, repository):
    """System BIOS 0.9, 1.0 and 1.1 for the server, one for another model."""
    paths = [build_pkg(module_id='system-bios', version=version, models=[MODEL], os=[OS_NAME]) for version in ('0.9', '1.0', '1.1')]
    paths.append(build_pkg(module_id='system-bios', version='9.0', models=['Other-1'], os=[OS_NAME]))
    repository.add(*paths)
    return paths


def test_inventory_answer_becomes_statuses_and_versions_with_the_previous_generation_marked(run_action, host, host_root, repository, bios_packages):
    host_root.install_agent('2.0')
    host_root.set_version('system-bios', '0.9')
    host_root.applied(
        {'module_id': 'system-bios', 'action': 'install', 'from_version': '0.9', 'to_version': '1.0', 'reboot_required': False, 'package_id': 'earlier'}
    )
    result, remote = run_action('exup_info', {'repository': repository.path})
    assert not result.get('failed'), result
    assert host.phases == ['inventory']
    assert result['server'] == SERVER and result['model'] == MODEL and result['os'] == OS_NAME
    assert result['facts']['boot_id'] == BOOT_ID
    assert result['agent'] == {'installed': True, 'version': '2.0', 'folder': str(host_root.root / 'opt/exup/agent')}
    bios = result['modules']['system-bios']
    assert (bios['current'], bios['previous'], bios['status'], bios['block']) == ('1.0', '0.9', 'update_available', None)
    assert [row['version'] for row in bios['versions']] == ['1.1', '1.0', '0.9']  # newest first, the other model's 9.0 left out
    assert [row['label'] for row in bios['versions']] == ['1.1', '1.0', '0.9 [*]']
    assert [row['previous_generation'] for row in bios['versions']] == [False, False, True]
    assert result['newest'] == {'system-bios': '1.1', 'update-agent': None}
    assert result['modules']['update-agent']['status'] == 'no_package'
    assert result['server_status'] == 'update_available'
    assert result['changed'] is False and result['registered'] is False
    assert result['agent_installable'] is False and result['agent_install_blockers'] == []
    assert 'reboot_failed' not in result
    assert repository.events() == [('versions_queried', {'server': SERVER, 'status': 'update_available'})]
    assert repository.servers() == {}  # register_server is off
    assert remote.removed == []  # no temporary folder was made


def test_register_server_changes_the_record_once(run_action, host_root, repository, bios_packages):
    host_root.install_agent('2.0')
    first, _remote = run_action('exup_info', {'repository': repository.path, 'register_server': True})
    assert (first['changed'], first['registered']) == (True, True)
    assert repository.servers() == {SERVER: {'model': MODEL, 'os': OS_NAME, 'modules': {'system-bios': {'current': '1.0'}, 'update-agent': {'current': '2.0'}}}}
    again, _remote = run_action('exup_info', {'repository': repository.path, 'register_server': True})
    assert (again['changed'], again['registered']) == (False, False)
    host_root.set_version('system-bios', '1.1')
    check, _remote = run_action('exup_info', {'repository': repository.path, 'register_server': True}, check_mode=True)
    assert (check['changed'], check['registered']) == (True, False)  # check mode says what registering would change, and does not
    assert repository.servers()[SERVER]['modules']['system-bios'] == {'current': '1.0'}
    assert repository.codes() == ['server_registered', 'versions_queried', 'versions_queried']  # once; check mode logs nothing


def test_the_deprecated_register_alias_still_registers_and_says_so(run_action, host_root, repository, bios_packages, shown):
    host_root.install_agent('2.0')
    result, _remote = run_action('exup_info', {'repository': repository.path, 'register': True})
    assert result['registered'] is True
    assert any('register is renamed register_server' in text for text in shown.deprecations), shown.deprecations


def test_a_server_without_the_agent_is_agent_not_installed_and_never_registered(run_action, host_root, repository, bios_packages):
    result, _remote = run_action('exup_info', {'repository': repository.path, 'register_server': True})
    assert result['server_status'] == 'agent_not_installed'
    assert result['agent'] == {'installed': False, 'version': None, 'folder': None}
    assert (result['agent_installable'], result['registered'], result['changed']) == (True, False, False)
    assert repository.servers() == {}


def test_a_host_that_cannot_be_reached_is_version_query_failed_saying_the_agent(run_action, host, repository, bios_packages):
    host.answer('inventory', unreachable())
    result, _remote = run_action('exup_info', {'repository': repository.path})
    assert result['failed'] is True and result['unreachable'] is True
    assert (result['error'], result['server_status']) == ('communication_failed', 'communication_failed')
    assert result['msg'] == 'Failed to connect to the host via ssh: Connection refused'
    assert repository.events() == [('version_query_failed', {'server': SERVER, 'error': 'communication_failed', 'via': 'agent'})]
    message = repository.messages()[0]
    assert 'could not connect to the exup agent' in message and 'Connection refused' in message


def test_a_host_error_is_versions_query_failed_with_its_code_and_no_invocation(run_action, host, repository, bios_packages):
    result, _remote = run_action('exup_info', {'repository': repository.path, 'host_root': '/nowhere'})
    assert host.sent('inventory')['host_root'] == '/nowhere'
    assert (result['failed'], result['error'], result['msg']) == (True, 'argument_invalid', 'host_root /nowhere is not a directory')
    assert 'invocation' not in result  # it would echo keys and inline packages
    assert repository.events() == [('versions_query_failed', {'server': SERVER, 'error': 'argument_invalid'})]


def test_the_same_boot_id_after_a_restart_is_reboot_failed(run_action, host_root, repository, bios_packages):
    host_root.install_agent('2.0')
    result, _remote = run_action('exup_info', {'repository': repository.path, 'boot_id_before_reboot': BOOT_ID})
    assert not result.get('failed') and result['reboot_failed'] is True
    assert repository.events()[0] == ('reboot_failed', {'server': SERVER, 'boot_id': BOOT_ID, 'via': 'agent'})
    assert repository.codes() == ['reboot_failed', 'versions_queried']
    host_root.reboot(OTHER_BOOT)
    result, _remote = run_action('exup_info', {'repository': repository.path, 'boot_id_before_reboot': BOOT_ID})
    assert result['reboot_failed'] is False
    assert repository.codes() == ['reboot_failed', 'versions_queried', 'versions_queried']


def test_a_server_that_did_not_come_back_after_a_restart_is_also_reboot_failed(run_action, host, repository, bios_packages):
    host.answer('inventory', unreachable('timed out'))
    result, _remote = run_action('exup_info', {'repository': repository.path, 'boot_id_before_reboot': BOOT_ID})
    assert result['failed'] is True and result['error'] == 'communication_failed'
    assert repository.events() == [
        ('version_query_failed', {'server': SERVER, 'error': 'communication_failed', 'via': 'agent'}),
        ('reboot_failed', {'server': SERVER, 'error': 'communication_failed', 'via': 'agent'}),
    ]


def test_without_a_repository_the_server_is_described_and_nothing_is_logged(run_action, host_root, host):
    host_root.install_agent('2.0')
    result, _remote = run_action('exup_info', {})
    assert not result.get('failed'), result
    assert result['modules']['system-bios']['status'] == 'no_package' and result['modules']['system-bios']['versions'] == []
    assert result['server_status'] == 'latest'
    assert host.sent('inventory')['host_root'] == str(host_root.root)


def test_untrusted_packages_are_neither_offered_nor_counted(run_action, host_root, repository, bios_packages, other_key, build_pkg, pem):
    host_root.install_agent('2.0')
    result, _remote = run_action('exup_info', {'repository': repository.path, 'trusted_keys': [other_key.public_pem().decode('ascii')]})
    assert result['modules']['system-bios']['status'] == 'no_package'
    assert len(result['untrusted_packages']) == 4
    trusted, _remote = run_action('exup_info', {'repository': repository.path, 'trusted_keys': [pem]})
    assert trusted['untrusted_packages'] == [] and trusted['modules']['system-bios']['status'] == 'update_available'


def test_a_restart_exup_allowed_shows_rebooting_until_the_boot_id_changes(run_action, host_root, repository, bios_packages):
    host_root.install_agent('2.0')
    repository.repo.request_reboot('local', SERVER, ['system-bios'], boot_id=BOOT_ID, seconds=600)
    result, _remote = run_action('exup_info', {'repository': repository.path})
    assert (result['modules']['system-bios']['status'], result['server_status']) == ('rebooting', 'applying')  # Table 10
    host_root.reboot(OTHER_BOOT)
    after, _remote = run_action('exup_info', {'repository': repository.path})
    assert after['modules']['system-bios']['status'] == 'update_available'


def test_a_job_that_ended_unseen_is_logged_late_once(run_action, host_root, repository, bios_packages):
    host_root.install_agent('2.0')
    host_root.finished_job([{'package_id': 'system-bios_1.1_Express5800-R120h-1M_rhel9', 'module_id': 'system-bios', 'action': 'install'}], status='failed')
    result, _remote = run_action('exup_info', {'repository': repository.path})
    assert result['active_job'] is None
    assert repository.events()[0] == (
        'apply_failed',
        {'server': SERVER, 'job_id': JOB_ID, 'reported_late': True, 'results': {'system-bios_1.1_Express5800-R120h-1M_rhel9': 'failed'}},
    )
    run_action('exup_info', {'repository': repository.path})
    assert repository.codes() == ['apply_failed', 'versions_queried', 'versions_queried']


def closed_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize(
    'agent_answers, via, cause',
    [
        (True, 'bmc', 'could not connect to the management controller'),
        (False, 'both', 'could not connect to the exup agent nor to the management controller'),
    ],
)
def test_a_bmc_that_cannot_be_reached_is_version_query_failed_saying_whether_the_agent_answered(
    run_action, host, host_root, repository, bios_packages, agent_answers, via, cause
):
    host_root.install_agent('2.0')
    if not agent_answers:
        host.answer('inventory', unreachable())
    bmc = {
        'via': 'bmc',
        'bmc_address': '127.0.0.1',
        'bmc_port': closed_port(),
        'bmc_username': 'admin',
        'bmc_password': 'secret',
        'bmc_validate_certs': False,
        'bmc_timeout': 5,
    }
    result, _remote = run_action('exup_info', dict(bmc, repository=repository.path))
    assert (result['failed'], result['error']) == (True, 'bmc_unreachable')
    assert host.phases == ['inventory']  # the agent is asked only to say which of the two could not be reached
    assert repository.events() == [('version_query_failed', {'server': SERVER, 'error': 'bmc_unreachable', 'via': via})]
    assert repository.messages() == [
        'Querying the versions of the managed server failed. (%s: BMC 127.0.0.1 cannot be reached over Redfish: [Errno 111] Connection refused)' % cause
    ]
