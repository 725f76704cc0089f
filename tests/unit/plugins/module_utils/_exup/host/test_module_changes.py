# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a finished item means for its module's record (issue 9): one rule for the runner and the BMC path."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.host.agent_runner import item_in_state, module_changes


def item(status='succeeded', action='install', from_version='1.0', to_version='2.0', reboot_required=False, **extra):
    return dict(
        package_id='P1',
        module_id='system-bios',
        status=status,
        action=action,
        from_version=from_version,
        to_version=to_version,
        reboot_required=reboot_required,
        **extra,
    )


@pytest.mark.parametrize(
    'finished, expected',
    [
        (item(), {'previous': '1.0'}),
        (item(from_version='2.0'), {}),  # the same version again keeps the previous generation (003 §2.1.1.2)
        (item(from_version=None), {}),  # nothing ran before
        (item(from_version=''), {}),
        (item(action='uninstall', to_version=None), {}),  # an uninstall leaves no previous generation
        (
            item(reboot_required=True),
            {'previous': '1.0', 'block': 'reboot_required', 'boot_id': 'b1', 'staged': '2.0', 'action': 'install', 'package_id': 'P1'},
        ),
        (
            item(action='uninstall', to_version=None, reboot_required=True),
            {'block': 'reboot_required', 'boot_id': 'b1', 'staged': None, 'action': 'uninstall', 'package_id': 'P1'},
        ),
        (
            item(status='failed', cause='exit status 3: x'),
            {'block': 'apply_failed', 'boot_id': 'b1', 'staged': None, 'cause': 'exit status 3: x', 'package_id': 'P1'},
        ),
        (item(status='failed'), {'block': 'apply_failed', 'boot_id': 'b1', 'staged': None, 'cause': '', 'package_id': 'P1'}),
        (item(status='failed', blocks=False, cause='refused'), {}),  # BMC path: the firmware was not touched
        (
            item(status='failed', blocks=True, cause='task failed', reboot_required=True),
            {'block': 'apply_failed', 'boot_id': 'b1', 'staged': None, 'cause': 'task failed', 'package_id': 'P1'},
        ),
        (item(status='cancelled'), {}),
        (item(status='waiting'), {}),
    ],
)
def test_module_changes(finished, expected):
    assert module_changes(finished, 'b1') == expected


def test_item_in_state_updates_only_its_module():
    state = {
        'modules': {'system-bios': {'previous': '0.9', 'block': 'reboot_required', 'staged': '1.5', 'boot_id': 'old'}, 'bmc-firmware': {'previous': '0.5'}}
    }
    item_in_state(state, item(status='failed', cause='boom'), 'b2')
    assert state['modules']['system-bios'] == {'previous': '0.9', 'block': 'apply_failed', 'staged': None, 'boot_id': 'b2', 'cause': 'boom', 'package_id': 'P1'}
    assert state['modules']['bmc-firmware'] == {'previous': '0.5'}


def test_the_default_boot_id_is_empty():
    assert module_changes(item(reboot_required=True))['boot_id'] == ''
