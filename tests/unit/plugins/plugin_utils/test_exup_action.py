# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugins read trusted_keys on the controller (issue 8 item 7): a host gets PEM texts only.

Real Ansible objects (DataLoader, Task), no connection: resolution happens before any host call.
"""

from __future__ import annotations

import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.playbook.task import Task

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_action import ExupAction


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
