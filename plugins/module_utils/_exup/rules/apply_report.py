# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What exup_apply returns: per-package results, the diff, the summary and its message (both paths).

The agent path reports a job its agent ran; the BMC path the updates its BMC ran, and the reset it
may have done itself (the agent path leaves the restart to the playbook: ``reboot_allowed``).
The two differ only in wording (``Wording``) and in the keys of a package result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ansible_collections.exup.fleet.plugins.module_utils._exup import version
from ansible_collections.exup.fleet.plugins.module_utils._exup.host.agent_runner import DISK_FULL
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan, support

#: keys of the agent's job items that a package result keeps (the BMC path keeps all but INTERNAL_KEYS)
AGENT_RESULT_KEYS = ('package_id', 'module_id', 'action', 'status', 'cause', 'reboot_required', 'outcome')
INTERNAL_KEYS = ('command', 'blocks')
#: 13.5: the stable code of a package reported succeeded whose module version did not change
SUCCEEDED_UNCHANGED = 'succeeded_unchanged'


@dataclasses.dataclass(frozen=True)
class Wording:
    """How one path's messages and diff name what happened."""

    nothing: str  # {where}
    would: str  # {count} {where}
    failed: str  # {package} {where} {cause}
    done: str  # {done} {total} {verb} {where} {note}
    before_absent: str  # diff: no version before
    after_unread: str | None  # diff: a module not read after the apply; None: show its target version


AGENT_WORDING = Wording(
    nothing='nothing to apply {where}',
    would='would run {count} package(s) {where}',
    failed='{package} failed {where}: {cause}; the server takes no more packages until it restarts',
    done='{done} of {total} package(s) {verb} {where}{note}',
    before_absent='(not installed)',
    after_unread='(not installed)',
)
# the BMC reports only the firmware it lists: a module it did not read shows its target
BMC_WORDING = Wording(
    nothing='nothing to apply {where}',
    would='would update {count} firmware package(s) {where}',
    failed='{package} failed {where}: {cause}',
    done='{total} firmware package(s) applied {where}{note}',
    before_absent='(none)',
    after_unread=None,
)


@dataclasses.dataclass(frozen=True)
class ApplyPlace:
    """Where an apply runs: a server through its agent, or through its BMC (``bmc_address`` set)."""

    server: str
    bmc_address: str | None = None

    @property
    def via_bmc(self) -> bool:
        return self.bmc_address is not None

    @property
    def where(self) -> str:
        return 'through BMC %s' % self.bmc_address if self.via_bmc else 'on %s' % self.server

    @property
    def wording(self) -> Wording:
        return BMC_WORDING if self.via_bmc else AGENT_WORDING


@dataclasses.dataclass(frozen=True)
class FinishedApply:
    """A finished apply as its path saw it."""

    results: Sequence[Mapping]  # package_results
    action: str = 'install'  # 'install' | 'uninstall'
    rebooted: bool = False  # BMC path: it reset what the firmware waits for
    code: str | None = None  # agent path: the job's event code (the error when a package failed)
    cause: str | None = None  # agent path: why packages were cancelled
    job_error: str | None = None  # agent path: the job's own error (agent_disk_full)


def staged_versions(states: Mapping[str, plan.ModuleState]) -> dict:
    """module_id -> version waiting for a restart."""
    return {name: state.staged for name, state in states.items() if state.block == 'reboot_required'}


def restarted_modules(results: Sequence[Mapping]) -> list:
    """Modules whose package succeeded and waits for a restart."""
    return [result['module_id'] for result in results if result['status'] == 'succeeded' and result['reboot_required']]


def agent_removed(results: Sequence[Mapping]) -> bool:
    """Whether the apply uninstalled the update agent: agent management of the server has ended (it is unregistered)."""
    return any(
        result.get('module_id') == support.AGENT_MODULE and result.get('action') == 'uninstall' and result.get('status') == 'succeeded' for result in results
    )


def _restart_fields(place: ApplyPlace, rebooted: bool = False) -> dict:
    return {'rebooted': rebooted} if place.via_bmc else {}


def nothing_to_apply(staged: Mapping[str, str], place: ApplyPlace) -> dict:
    """The result when the plan is empty."""
    return dict(
        changed=False,
        results=[],
        reboot_required=bool(staged),
        reboot_allowed=False,
        **_restart_fields(place),
        msg=place.wording.nothing.format(where=place.where),
    )


def would_apply(planned: Sequence[Mapping], place: ApplyPlace) -> dict:
    """The result of check mode: the plan, what it would change."""
    return dict(
        changed=True,
        results=[],
        reboot_required=any(row['reboot_required'] for row in planned),
        reboot_allowed=False,
        **_restart_fields(place),
        diff=apply_diff(planned, place),
        msg=place.wording.would.format(count=len(planned), where=place.where),
    )


def apply_diff(planned: Sequence[Mapping], place: ApplyPlace, versions_after: Mapping[str, str] | None = None) -> dict:
    """--diff: each planned module's version before, and after (read after the apply, or planned in check mode)."""
    words = place.wording
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for row in planned:
        module_id = row['module_id']
        before.setdefault(module_id, row['from_version'] or words.before_absent)  # stepping stones: the first step's
        if versions_after is None:
            after[module_id] = row['to_version'] or '(uninstalled)'
        else:
            after[module_id] = versions_after.get(module_id) or (row['to_version'] if words.after_unread is None else words.after_unread)
    return {'before': before, 'after': after}


def _result_keys(item: Mapping, place: ApplyPlace) -> dict:
    """The BMC path reports its whole item (what the BMC said included), the agent path the job item's public keys."""
    if place.via_bmc:
        return {key: value for key, value in item.items() if key not in INTERNAL_KEYS}
    return {key: item.get(key) for key in AGENT_RESULT_KEYS}


def unchanged(status: str, action: str, target: str | None, after: str | None, staged: bool, unread_ok: bool = False) -> bool:
    """13.5: a package reported succeeded whose module's version read after it is not the package's version.

    Only an install is verified, and only when the version can be active: a package staged for a restart
    is verified after the restart (rules/rollout.py). ``unread_ok``: a module the path did not read at all
    (the BMC lists only some firmware) cannot be verified, it is not a failure; on the agent path a
    module not read is not installed, so unchanged.
    """
    if status != 'succeeded' or action == 'uninstall' or staged or target is None:
        return False
    if after is None:
        return not unread_ok
    # by firmware version order, as every other comparison: a read-back of 1.00 for a package of 1.0, or a01 for A01, is it
    return version.compare_versions(str(after), str(target)) != 0


def unchanged_cause(target: str | None, after: str | None) -> str:
    """The cause of a "succeeded but unchanged" failure."""
    return 'the package reported success but the version read after it is %s, not %s (succeeded but unchanged)' % (after or '(none)', target)


def _later_steps(items: Sequence[Mapping]) -> list:
    """Per item, the versions later items of the same module install in this run (a stepping path's next steps)."""
    later: list[list] = []
    for index, item in enumerate(items):
        rest = items[index + 1 :]
        later.append([str(other['to_version']) for other in rest if other['module_id'] == item['module_id'] and other.get('to_version')])
    return later


def package_results(items: Sequence[Mapping], place: ApplyPlace, versions_after: Mapping[str, str], rebooted: bool = False) -> list:
    """One result per item: its status, and versions before, targeted, after; ``staged`` when it waits for a restart.

    A package reported succeeded whose version did not change (``unchanged``) is failed with
    ``error`` SUCCEEDED_UNCHANGED and ``reported_status`` succeeded (what the agent or BMC said).
    Stepping stones applied in one run (1 -> 2 -> 3): only the module's last step must show its version;
    an earlier step took effect when the version read after is its own or a later step's.
    """
    results = []
    for item, later in zip(items, _later_steps(items)):
        result = _result_keys(item, place)
        after = versions_after.get(item['module_id'])
        staged = bool(item['status'] == 'succeeded' and item['reboot_required'] and not rebooted)
        result.update(version_before=item['from_version'], version_target=item['to_version'], version_after=after, staged=staged)
        went_on = after is not None and any(version.compare_versions(str(after), step) == 0 for step in later)
        if not went_on and unchanged(item['status'], item.get('action') or 'install', item['to_version'], after, staged, unread_ok=place.via_bmc):
            result.update(status='failed', reported_status=item['status'], error=SUCCEEDED_UNCHANGED, cause=unchanged_cause(item['to_version'], after))
        results.append(result)
    return results


def apply_summary(finished: FinishedApply, place: ApplyPlace) -> dict:
    """changed, the restart keys, msg; and failed with error when a package failed (or the agent's disk is full)."""
    results, words = finished.results, place.wording
    summary = dict(
        changed=any(result['status'] == 'succeeded' for result in results),
        reboot_required=plan.reboot_needed(results) and not finished.rebooted,
        reboot_allowed=plan.reboot_allowed(results),
        **_restart_fields(place, finished.rebooted),
    )
    failed = [result for result in results if result['status'] == 'failed']
    if failed:
        unchanged_only = all(result.get('error') == SUCCEEDED_UNCHANGED for result in failed)
        summary.update(
            failed=True,
            error=SUCCEEDED_UNCHANGED if unchanged_only else finished.code or failed[0].get('error'),
            msg=words.failed.format(package=failed[0]['package_id'], where=place.where, cause=failed[0]['cause'])
            if not unchanged_only
            else '%s failed verification %s: %s' % (failed[0]['package_id'], place.where, failed[0]['cause']),
        )
    else:
        note = (' (%s)' % finished.cause if finished.cause else '') + (', server reset' if finished.rebooted else '')
        done = sum(1 for result in results if result['status'] == 'succeeded')
        summary['msg'] = words.done.format(
            done=done, total=len(results), verb='uninstalled' if finished.action == 'uninstall' else 'applied', where=place.where, note=note
        )
    if finished.job_error == DISK_FULL:
        # the agent recorded this outcome with its reserve: the stable code, and what to do
        summary.update(failed=True, error=DISK_FULL, msg="%s; the agent's state folder on %s is full: free some space there" % (summary['msg'], place.server))
    return summary
