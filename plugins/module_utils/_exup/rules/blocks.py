# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a module's block ends (003 §2.1.5-6): one rule for the agent path and the BMC path.

A finished item may block its module ("reboot_required" with a staged version, or "apply_failed"):
see ``agent_runner.module_changes``. The record of the block stays where it was written (the
agent's state.json, the repository's bmc_modules); whether it still holds is decided here, from
what each path can see now.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class BlockEvidence:
    """What a path sees now that can end a block; a criterion left None is not used.

    The agent path sees restarts (the boot id); the BMC path sees no boot id, but the firmware version
    the BMC reports.
    """

    boot_id: str | None = None  # a block holds only within the boot it was set in (the record's boot_id)
    version: str | None = None  # a reboot-required block ends once this version is the staged one


def block_in_force(record: Mapping, now: BlockEvidence) -> tuple[str | None, str | None]:
    """(block, staged version) of a module record that still hold now; (None, None) once the block ended."""
    block, staged = record.get('block'), record.get('staged')
    if not block:
        return None, None
    if now.boot_id is not None and record.get('boot_id') != now.boot_id:
        return None, None  # the server restarted since
    if block != 'reboot_required':
        return block, None  # only a restart stages a version; an older runner's apply_failed record may still carry one
    if now.version is not None and staged and now.version == staged:
        return None, None  # the reset happened: the new firmware runs
    return block, staged
