# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_agent (the remote install wizard, 003 §3.8-3.9) through ActionModule.run(), with a real repository on tmp_path.

The host is mocked: every call runs the real exup_host module on a host root below tmp_path (facts,
prerequisites, the package received and verified, the agent's uninstall.sh); only the agent package's
install script is scripted: it lays out the agent's files (see action_env.py).
"""

from __future__ import annotations

import base64
import os

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import file_digest
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import MODEL, OS_NAME, SERVER, UBUNTU2204, unreachable

AGENT_DIR = '/opt/exup/agent'


def agent_id(version, model=MODEL, os_name=OS_NAME):
    return 'update-agent_%s_%s_%s' % (version, model.replace('/', '-'), os_name)


@pytest.fixture
def agent_package(build_pkg):
    """agent_package(version, models=[MODEL], os=[OS_NAME]) -> path of a signed agent package."""

    def build(version, models=(MODEL,), os_names=(OS_NAME,), **fields):
        return build_pkg(module_id='update-agent', version=version, models=list(models), os=list(os_names), reboot_required=False, **fields)

    return build


def install(repository, pem, **more):
    return dict({'repository': repository.path, 'trusted_keys': [pem], 'license_accepted': True}, **more)


@pytest.mark.parametrize(
    'more, code, msg',
    [
        ({'license_accepted': False}, 'license_not_accepted', 'the agent license must be accepted before installing (license_accepted: true)'),
        ({'os_type': 'windows'}, 'unsupported_os', 'this collection installs the agent on Linux servers only; Windows is not supported yet'),
        (
            {'install_dir': '/usr/local/exup'},
            'install_dir_fixed',
            'on Linux the agent always installs to /opt/exup/agent; install_dir /usr/local/exup cannot be used',
        ),
    ],
)
def test_the_wizard_refuses_before_anything_is_sent(run_action, host, repository, agent_package, pem, more, code, msg):
    repository.add(agent_package('1.1'))
    result, _remote = run_action('exup_agent', install(repository, pem, **more))
    assert (result['failed'], result['error'], result['msg']) == (True, code, msg)
    assert host.phases == ['inventory']
    assert repository.events() == [('agent_install_failed', {'server': SERVER, 'error': code})]


def test_the_fixed_folder_itself_is_accepted_as_install_dir(run_action, host, repository, agent_package, pem):
    repository.add(agent_package('1.1'))
    result, _remote = run_action('exup_agent', install(repository, pem, install_dir='/opt/exup/agent/'))
    assert not result.get('failed'), result
    assert (result['status'], result['folder']) == ('installed', AGENT_DIR)


def test_an_install_from_the_repository_sends_the_newest_agent_package_and_registers_the_server(run_action, host, host_root, repository, agent_package, pem):
    paths = [agent_package('1.0'), agent_package('1.1'), agent_package('2.0', models=['Other-1'])]
    repository.add(*paths)
    result, _remote = run_action('exup_agent', install(repository, pem))
    assert not result.get('failed'), result
    assert host.phases == ['inventory', 'agent_install', 'inventory']
    sent = host.sent('agent_install')
    size, digest = file_digest(paths[1])
    assert (sent['package']['package_id'], sent['package']['sha256'], sent['package']['size']) == (agent_id('1.1'), digest, size)
    with open(paths[1], 'rb') as handle:
        assert base64.b64decode(sent['package']['content']) == handle.read()  # small: inline, verified by the host
    assert (sent['agent_models'], sent['agent_os'], sent['trusted_keys_pem']) == ([MODEL], [OS_NAME], [pem])
    assert (result['changed'], result['status'], result['version'], result['source_used']) == (True, 'installed', '1.1', 'repository')
    assert (result['package_id'], result['folder']) == (agent_id('1.1'), AGENT_DIR)
    assert result['diff'] == {'before': {'agent': None}, 'after': {'agent': '1.1'}}
    assert result['msg'] == 'agent 1.1 installed in %s on %s' % (AGENT_DIR, SERVER)
    assert (host_root.root / 'opt/exup/agent/VERSION').read_text() == '1.1\n'
    assert repository.servers()[SERVER]['modules'] == {'update-agent': {'current': '1.1'}, 'system-bios': {'current': '1.0'}}
    assert repository.codes() == ['agent_install_started', 'agent_installed', 'server_registered']


def test_an_older_agent_is_upgraded_and_a_current_one_left_alone(run_action, host, host_root, repository, agent_package, pem):
    repository.add(agent_package('1.1'))
    host_root.install_agent('1.0')
    check, _remote = run_action('exup_agent', install(repository, pem), check_mode=True)
    assert (check['changed'], check['status'], check['version']) == (True, 'upgraded', '1.1')
    assert check['diff'] == {'before': {'agent': '1.0'}, 'after': {'agent': '1.1'}}
    assert 'agent_install' not in host.phases and repository.events() == []
    upgraded, _remote = run_action('exup_agent', install(repository, pem))
    assert (upgraded['changed'], upgraded['status'], upgraded['version']) == (True, 'upgraded', '1.1')
    again, _remote = run_action('exup_agent', install(repository, pem))
    assert (again['changed'], again['status'], again['version']) == (False, 'unchanged', '1.1')
    assert again['msg'] == 'agent 1.1 is installed on %s (1.1 offered)' % SERVER
    assert host.phases.count('agent_install') == 1


def test_a_model_the_agent_packages_do_not_support_is_unsupported_model(run_action, host, repository, agent_package, pem):
    repository.add(agent_package('1.1', models=['Other-1']))
    result, _remote = run_action('exup_agent', install(repository, pem))
    assert (result['failed'], result['error'], result['status']) == (True, 'unsupported_model', 'failed')
    assert result['msg'] == "model '%s' is not supported by the agent packages in the repository: this server does not support exup" % MODEL
    assert 'agent_install' not in host.phases
    assert repository.events() == [('agent_install_failed', {'server': SERVER, 'error': 'unsupported_model'})]


def test_an_os_the_agent_packages_do_not_support_is_unsupported_os(run_action, host, host_root, repository, agent_package, pem):
    host_root.physical(os_release=UBUNTU2204)
    repository.add(agent_package('1.1'))
    result, _remote = run_action('exup_agent', install(repository, pem))
    assert (result['failed'], result['error'], result['status']) == (True, 'unsupported_os', 'failed')
    assert result['msg'] == 'OS ubuntu2204 (Ubuntu 22.04.4 LTS) is not supported by the agent packages in the repository (supported: rhel9)'


def test_a_virtual_machine_is_refused_with_the_hosts_blockers(run_action, host, host_root, repository, agent_package, pem):
    host_root.write('sys/class/dmi/id/sys_vendor', 'QEMU\n')
    repository.add(agent_package('1.1'))
    result, _remote = run_action('exup_agent', install(repository, pem))
    assert (result['failed'], result['error'], result['status']) == (True, 'virtual_machine', 'failed')
    assert [blocker['code'] for blocker in result['blockers']] == ['virtual_machine']
    assert result['msg'].startswith('the agent cannot be installed on %s: the agent cannot be installed on a virtual machine guest' % SERVER)


def test_an_install_the_host_refuses_is_agent_install_failed(run_action, host, repository, agent_package, pem):
    repository.add(agent_package('1.1'))
    host.answer('agent_install', ExupError('the agent package failed to install (exit status 2): boom', code='install_failed', exit_code=2))
    result, _remote = run_action('exup_agent', install(repository, pem))
    assert (result['failed'], result['error'], result['status'], result['exit_code']) == (True, 'install_failed', 'failed', 2)
    assert 'invocation' not in result
    assert repository.codes() == ['agent_install_started', 'agent_install_failed']


def test_a_given_file_gives_way_to_a_newer_repository_package_with_prefer_newer(run_action, host, repository, agent_package, pem, tmp_path):
    repository.add(agent_package('1.1'))
    given = agent_package('1.0', name='given-agent.zip')
    newer, _remote = run_action('exup_agent', install(repository, pem, source='file', file=given))
    assert (newer['source_used'], newer['package_id'], newer['version']) == ('repository_newer', agent_id('1.1'), '1.1')
    assert host.sent('agent_install')['package']['package_id'] == agent_id('1.1')
    assert agent_id('1.0') not in {row[0] for row in repository.query('SELECT package_id FROM packages')}  # left out of the repository


def test_a_given_file_is_installed_and_added_without_prefer_newer(run_action, host, host_root, repository, agent_package, pem):
    repository.add(agent_package('1.1'))
    given = agent_package('1.0', name='given-agent.zip')
    result, _remote = run_action('exup_agent', install(repository, pem, source='file', file=given, prefer_newer=False))
    assert (result['source_used'], result['package_id'], result['version']) == ('file', agent_id('1.0'), '1.0')
    assert host.sent('agent_install')['package']['sha256'] == file_digest(given)[1]
    assert agent_id('1.0') in {row[0] for row in repository.query('SELECT package_id FROM packages')}


def test_a_file_that_is_no_agent_package_is_not_agent_package(run_action, host, repository, agent_package, build_pkg, pem):
    repository.add(agent_package('1.1'))
    bios = build_pkg(module_id='system-bios', version='2.0', models=[MODEL], os=[OS_NAME])
    result, _remote = run_action('exup_agent', install(repository, pem, source='file', file=bios))
    assert (result['failed'], result['error'], result['msg']) == (True, 'not_agent_package', '%s is a system-bios package, not the agent' % bios)
    missing, _remote = run_action('exup_agent', install(repository, pem, source='file', file='/no/such.zip'))
    assert (missing['error'], missing['msg']) == ('argument_invalid', 'file /no/such.zip does not exist on the controller')


def test_media_give_their_newest_verified_agent_package_for_this_server(run_action, host, repository, agent_package, pem, tmp_path):
    repository.add(agent_package('1.0'))
    media = tmp_path / 'media'
    (media / 'agents' / 'linux').mkdir(parents=True)
    (media / 'README.zip').write_bytes(b'not a package')
    for version, models in (('1.2', [MODEL]), ('3.0', ['Other-1'])):
        os.rename(agent_package(version, models=models), str(media / 'agents' / 'linux' / ('agent-%s.zip' % version)))
    result, _remote = run_action('exup_agent', install(repository, pem, source='media', media_path=str(media)))
    assert not result.get('failed'), result
    assert (result['source_used'], result['package_id'], result['version']) == ('media', agent_id('1.2'), '1.2')
    unmounted, _remote = run_action('exup_agent', install(repository, pem, source='media', media_path=str(tmp_path / 'cdrom')))
    assert (unmounted['error'], unmounted['msg']) == ('media_unavailable', 'media_path %s is not a mounted folder' % (tmp_path / 'cdrom'))


def test_no_agent_package_for_this_server_is_no_agent_package(run_action, host, repository, build_pkg, pem):
    repository.add(build_pkg(module_id='system-bios', version='2.0', models=[MODEL], os=[OS_NAME]))
    result, _remote = run_action('exup_agent', install(repository, pem))
    assert (result['failed'], result['error']) == (True, 'no_agent_package')
    assert result['msg'].startswith('the repository has no agent package for %s on %s' % (MODEL, OS_NAME))


def test_an_install_needs_trusted_keys_and_a_repository(run_action, host, repository, agent_package, pem):
    repository.add(agent_package('1.1'))
    keyless, _remote = run_action('exup_agent', {'repository': repository.path, 'license_accepted': True})
    assert (keyless['error'], keyless['msg']) == ('argument_invalid', 'trusted_keys is required to install the agent')
    nowhere, _remote = run_action('exup_agent', {'trusted_keys': [pem], 'license_accepted': True})
    assert (nowhere['error'], nowhere['msg']) == ('argument_invalid', 'repository is required')


def test_uninstall_runs_the_agents_uninstall_and_unregisters_the_server(run_action, host, host_root, repository, agent_package, pem):
    repository.add(agent_package('1.1'))
    run_action('exup_agent', install(repository, pem))
    assert SERVER in repository.servers()
    check, _remote = run_action('exup_agent', {'repository': repository.path, 'state': 'absent'}, check_mode=True)
    assert (check['changed'], check['status']) == (True, 'uninstalled')
    assert 'agent_uninstall' not in host.phases and (host_root.root / 'opt/exup/agent/VERSION').exists()
    result, _remote = run_action('exup_agent', {'repository': repository.path, 'state': 'absent'})
    assert not result.get('failed'), result
    assert (result['changed'], result['status'], result['version']) == (True, 'uninstalled', None)
    assert result['agent'] == {'installed': False, 'version': None, 'folder': None}
    assert result['msg'] == 'agent 1.1 removed from %s; agent management of this server has ended' % SERVER
    assert not (host_root.root / 'opt/exup/agent').exists()  # the agent's own uninstall.sh ran on the host root
    assert SERVER not in repository.servers()
    assert repository.codes()[-2:] == ['agent_uninstalled', 'server_unregistered']
    gone, _remote = run_action('exup_agent', {'repository': repository.path, 'state': 'absent'})
    assert (gone['changed'], gone['status'], gone['msg']) == (False, 'not_installed', 'the agent is not installed on %s' % SERVER)


def test_query_tells_the_agent_facts_and_prerequisites(run_action, host, host_root):
    host_root.install_agent('1.1')
    result, _remote = run_action('exup_agent', {'state': 'query'})
    assert (result['changed'], result['status'], result['version']) == (False, 'installed', '1.1')
    assert result['folder'] == str(host_root.root / 'opt/exup/agent')
    assert (result['facts']['model'], result['facts']['os'], result['prerequisites']) == (MODEL, OS_NAME, [])
    assert host.phases == ['inventory']


def test_logs_are_fetched_into_a_folder_per_server(run_action, host, host_root, repository, agent_package, tmp_path):
    repository.add(agent_package('1.1'))
    host_root.install_agent('1.1')
    remote_logs = [host_root.write_log('agent.log', 'started\n'), host_root.write_log('job.log', 'done\n')]
    dest = tmp_path / 'collected'
    result, remote = run_action('exup_agent', {'repository': repository.path, 'state': 'logs_collected', 'logs_dest': str(dest)})
    assert not result.get('failed'), result
    assert result['remote_files'] == remote_logs
    assert result['files'] == [str(dest / SERVER / 'agent.log'), str(dest / SERVER / 'job.log')]
    assert (dest / SERVER / 'job.log').read_text() == 'done\n'
    assert [call.args for call in remote.connection.fetch_file.call_args_list] == list(zip(remote_logs, result['files'], strict=True))
    assert (result['changed'], result['dest']) == (True, str(dest / SERVER))
    assert repository.events() == [('agent_logs_collected', {'server': SERVER, 'files': 2})]


def test_logs_need_a_destination_and_a_host_that_answers(run_action, host, repository, agent_package, tmp_path):
    repository.add(agent_package('1.1'))
    nowhere, _remote = run_action('exup_agent', {'repository': repository.path, 'state': 'logs_collected'})
    assert (nowhere['error'], nowhere['msg']) == ('argument_invalid', 'state=logs_collected needs logs_dest (a folder on the controller)')
    host.answer('logs', unreachable())
    lost, _remote = run_action('exup_agent', {'repository': repository.path, 'state': 'logs_collected', 'logs_dest': str(tmp_path / 'x')})
    assert (lost['failed'], lost['unreachable'], lost['error']) == (True, True, 'communication_failed')
    assert repository.events() == [
        ('agent_logs_failed', {'server': SERVER, 'error': 'argument_invalid'}),
        ('agent_logs_failed', {'server': SERVER, 'error': 'communication_failed'}),
    ]
