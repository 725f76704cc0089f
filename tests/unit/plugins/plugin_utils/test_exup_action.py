# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every action plugin gets from ExupAction: trusted_keys read on the controller (issue 8 item 7: a host
gets PEM texts only), the repository opened or refused, argument validation, the host's temporary folder.

The first tests use real Ansible objects (DataLoader, Task) and no connection: resolution happens before
any host call. The others go through ActionModule.run() with the host mocked: only the answers of
exup.fleet.exup_host are canned (it runs for real on a host root below tmp_path, see ../action/action_env.py).
"""

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.block import Block
from ansible.playbook.role import Role
from ansible.playbook.task import Task

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_action import INLINE_LIMIT, ExupAction
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import MODEL, OS_NAME, SERVER, Job


@pytest.fixture
def playbook_dir(tmp_path):
    (tmp_path / 'files').mkdir()
    return tmp_path


def action(playbook_dir, trusted_keys):
    loader = DataLoader()
    loader.set_basedir(str(playbook_dir))
    plugin = ExupAction(Task(), None, None, loader, None)
    plugin.args = {'trusted_keys': list(trusted_keys)}
    return plugin


def pem(key):
    return key.public_pem().decode('ascii')


def test_paths_become_key_material_read_on_the_controller(playbook_dir):
    relative, absolute, inline = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    (playbook_dir / 'files' / 'vendor.pub').write_bytes(relative.public_pem())
    elsewhere = playbook_dir / 'keys' / 'mirror.pub'
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(absolute.public_pem())
    plugin = action(playbook_dir, ['vendor.pub', str(elsewhere), pem(inline)])
    plugin.resolve_trusted_keys()
    assert plugin.args['trusted_keys'] == [pem(relative), pem(absolute), pem(inline)]
    assert all(text.startswith('-----BEGIN PUBLIC KEY-----') for text in plugin.args['trusted_keys'])


def test_a_key_file_missing_on_the_controller_is_key_unreadable(playbook_dir):
    plugin = action(playbook_dir, ['/etc/exup/no-such-vendor.pub'])
    with pytest.raises(ExupError) as caught:
        plugin.resolve_trusted_keys()
    assert caught.value.code == 'key_unreadable'
    assert caught.value.msg == 'cannot read trusted key file /etc/exup/no-such-vendor.pub: no such file on the controller'
    assert plugin.args['trusted_keys'] == ['/etc/exup/no-such-vendor.pub']  # nothing half replaced


def test_a_controller_file_that_is_no_key_is_key_invalid(playbook_dir):
    (playbook_dir / 'files' / 'notes.pub').write_text('not a key\n')
    plugin = action(playbook_dir, ['notes.pub'])
    with pytest.raises(ExupError) as caught:
        plugin.resolve_trusted_keys()
    assert caught.value.code == 'key_invalid' and 'not a PEM public key' in caught.value.msg
    assert plugin.args['trusted_keys'] == ['notes.pub']


def test_no_keys_stay_no_keys(playbook_dir):
    plugin = action(playbook_dir, [])
    plugin.resolve_trusted_keys()
    assert plugin.args['trusted_keys'] == []


# ----------------------------------------------------------------- through ActionModule.run()
@pytest.fixture
def bios(build_pkg, repository, host_root):
    """A BIOS 1.1 for the server (1.0, agent installed) in the repository."""
    host_root.install_agent('2.0')
    path = build_pkg(module_id='system-bios', version='1.1', models=[MODEL], os=[OS_NAME])
    repository.add(path)
    return path


def in_role(role_path):
    """A task of a role at ``role_path`` (what the play loader builds: the role in the task's dependency chain)."""
    role = Role()
    role._role_path = str(role_path)
    block = Block()
    block._dep_chain = [role]
    return Task(block=block)


def test_a_key_file_of_the_playbook_reaches_the_host_as_pem_text(run_action, host, repository, bios, signing_key, pem):
    (run_action.playbook / 'files' / 'vendor.pub').write_bytes(signing_key.public_pem())
    host.answer('start', Job('succeeded'))
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': ['vendor.pub']})
    assert not result.get('failed'), result
    assert host.sent('start')['trusted_keys_pem'] == [pem]
    assert not any('vendor.pub' in repr(args) for _phase, args in host.calls)  # the path never travels


def test_a_key_file_of_the_role_is_found_before_the_playbooks(run_action, host, repository, bios, signing_key, other_key, pem, tmp_path):
    role = tmp_path / 'roles' / 'rollout'
    (role / 'files').mkdir(parents=True)
    (role / 'files' / 'vendor.pub').write_bytes(signing_key.public_pem())
    (run_action.playbook / 'files' / 'vendor.pub').write_bytes(other_key.public_pem())  # shadowed by the role's
    host.answer('start', Job('succeeded'))
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': ['vendor.pub']}, task=in_role(role))
    assert not result.get('failed'), result
    assert host.sent('start')['trusted_keys_pem'] == [pem]


def test_a_missing_key_file_fails_before_any_host_call(run_action, host, repository, bios):
    result, _remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': ['missing.pub']})
    assert (result['failed'], result['error']) == (True, 'key_unreadable')
    assert result['msg'] == 'cannot read trusted key file missing.pub: no such file on the controller'
    assert host.calls == []
    assert repository.events() == [('apply_failed', {'server': SERVER, 'error': 'key_unreadable'})]


def test_a_repository_that_is_not_there_is_repository_unavailable(run_action, host, bios, pem, tmp_path):
    nowhere = str(tmp_path / 'no-repo')
    result, _remote = run_action('exup_apply', {'repository': nowhere, 'trusted_keys': [pem]})
    assert (result['failed'], result['error']) == (True, 'repository_unavailable')
    assert result['msg'] == ('repository %s cannot be reached: it holds no repo.db (sync it first with exup.fleet.exup_repo_sync)' % nowhere)
    assert host.calls == []
    info, _remote = run_action('exup_info', {'repository': nowhere})
    assert (info['failed'], info['error']) == (True, 'repository_unavailable')


@pytest.mark.parametrize(
    'name, args, message',
    [
        ('exup_apply', {'repository': '/r'}, 'missing required arguments: trusted_keys'),
        ('exup_apply', {'repository': '/r', 'trusted_keys': [], 'state': 'latest'}, 'value of state must be one of: present, absent, cancelled'),
        ('exup_info', {'no_such_option': 1}, 'Unsupported parameters'),
        ('exup_agent', {'state': 'present', 'prefer_newer': 'perhaps'}, "'perhaps' is not a valid boolean"),
    ],
)
def test_arguments_are_validated_on_the_controller_before_any_host_call(run_action, host, name, args, message):
    with pytest.raises(AnsibleActionFail) as caught:
        run_action(name, args)
    assert message in str(caught.value)
    assert host.calls == []


def test_the_hosts_temporary_folder_is_removed_when_the_task_fails(run_action, host, host_root, repository, build_pkg, pem):
    host_root.install_agent('2.0')
    repository.add(
        build_pkg(
            module_id='system-bios',
            version='1.1',
            models=[MODEL],
            os=[OS_NAME],
            payload={'install.sh': b'#!/bin/sh\n', 'image/fw.bin': os.urandom(INLINE_LIMIT)},
        )
    )
    host.answer('start', ExupError('the server must restart before more packages are applied: system-bios', code='blocked_until_reboot'))
    result, remote = run_action('exup_apply', {'repository': repository.path, 'trusted_keys': [pem]})
    assert (result['failed'], result['error']) == (True, 'blocked_until_reboot')
    assert list(remote.copied) == [str(remote.folder / 'packages.tar')]
    assert remote.removed == [str(remote.folder)]
