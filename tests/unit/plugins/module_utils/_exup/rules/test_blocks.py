# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a block ends (issue 9): by boot id on the agent path, by the staged version on the BMC path."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.blocks import BlockEvidence, block_in_force

REBOOT = {'block': 'reboot_required', 'staged': '2.0', 'boot_id': 'boot-1', 'previous': '1.0'}
FAILED = {'block': 'apply_failed', 'staged': None, 'boot_id': 'boot-1'}


@pytest.mark.parametrize(
    'record, now, expected',
    [
        ({}, BlockEvidence(boot_id='boot-1'), (None, None)),
        ({'previous': '1.0'}, BlockEvidence(boot_id='boot-1'), (None, None)),
        (REBOOT, BlockEvidence(boot_id='boot-1'), ('reboot_required', '2.0')),  # same boot: holds
        (REBOOT, BlockEvidence(boot_id='boot-2'), (None, None)),  # restarted: ended
        (FAILED, BlockEvidence(boot_id='boot-1'), ('apply_failed', None)),
        (FAILED, BlockEvidence(boot_id='boot-2'), (None, None)),
        (dict(REBOOT, boot_id=''), BlockEvidence(boot_id=''), ('reboot_required', '2.0')),  # no boot id readable: same "boot"
        ({'block': 'reboot_required', 'staged': '2.0'}, BlockEvidence(boot_id='boot-1'), (None, None)),  # a record of no boot
        # the agent path does not end a block by version: the new version may show before the restart
        (REBOOT, BlockEvidence(boot_id='boot-1', version=None), ('reboot_required', '2.0')),
    ],
)
def test_agent_path_blocks_hold_within_their_boot(record, now, expected):
    assert block_in_force(record, now) == expected


@pytest.mark.parametrize(
    'record, version, expected',
    [
        ({'block': 'reboot_required', 'staged': '2.0'}, '1.0', ('reboot_required', '2.0')),  # the BMC still runs the old one
        ({'block': 'reboot_required', 'staged': '2.0'}, None, ('reboot_required', '2.0')),  # not reported
        ({'block': 'reboot_required', 'staged': '2.0'}, '2.0', (None, None)),  # the reset happened
        ({'block': 'reboot_required', 'staged': None}, None, ('reboot_required', None)),
        ({'block': 'apply_failed', 'staged': None}, '2.0', ('apply_failed', None)),  # only a reset through exup ends it
        ({'previous': '1.0', 'block': None, 'staged': None}, '2.0', (None, None)),
    ],
)
def test_bmc_path_reboot_blocks_end_once_the_staged_version_runs(record, version, expected):
    assert block_in_force(record, BlockEvidence(version=version)) == expected


@pytest.mark.parametrize('now', [BlockEvidence(boot_id='boot-1'), BlockEvidence(version='1.0'), BlockEvidence(version='2.0')])
def test_an_apply_failed_block_has_no_staged_version_even_in_an_old_record(now):
    """An older runner left the staged version of an earlier reboot-required block in its apply_failed record:
    both paths read it as the current runner writes it (the fix of 9-rules-in-core.yml without an agent upgrade)."""
    old_record = {'block': 'apply_failed', 'staged': '2.0', 'boot_id': 'boot-1', 'cause': 'exit status 1'}
    assert block_in_force(old_record, now) == ('apply_failed', None)
