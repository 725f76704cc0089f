# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to apply, in which order, and what the statuses are: 003 §2.1 as pure functions.

Data in, data out, no I/O: the agent path (exup_apply over ssh) and the BMC path
use the same rules. Inputs are the server's module states (from the host) and
the PackageInfos the repository holds for the server's model and OS.

- selection (§2.1.1): "latest only" on takes only the newest version above the
  current one; off also takes a newer non-newest version, and an older or equal
  one when the package supports downgrade. ``previous`` is the version that ran
  before the last apply (§3.5.1 step 6, marked [*]).
- packages that are not auto-update (or offline kind) are never applied here:
  they are exported and applied by hand (§2.1.3.1, §3.5.4).
- gating (§2.1.5-6): "reboot required" and "apply failed" block further applies
  until the server restarts.
- order (§2.1.7): no-reboot packages first, then release date, oldest first; an
  uninstall of the update agent always last.
- stepping stones (rules/stepping.py): a target whose ``upgrade_from_min`` the
  current version does not meet goes through intermediate versions; one run
  applies the steps up to the first that needs a reboot (the gating above blocks
  the rest until the restart), and each item carries the whole ``path``. A
  module with no path is refused (``upgrade_path_missing``) when it was named,
  and skipped with that reason when no module was named.
- reboot rule (§2.1.2): at least one applied package needs a reboot AND every
  selected package succeeded.
- statuses: module status (Tables 8-9) and server status by the priority of Table 10;
  "rebooting" (Table 8) refuses every apply; the icon of a manual module (Table 9)
  is the operator's, or the repository's initial icon when a package arrives.
- save (Table 17): only the version each server of a model shows.
"""

from __future__ import annotations

import dataclasses
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import stepping, support
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

if typing.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Container, Iterable, Mapping, Sequence
    from typing import Any

    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo

LATEST, PREVIOUS = 'latest', 'previous'

#: Table 10, highest priority first. Module statuses not listed rank as their nearest meaning.
SERVER_PRIORITY = ('communication_failed', 'unknown', 'applying', 'uninstalling', 'update_available', 'apply_failed', 'reboot_required', 'latest')
#: a cancelled module did not get the version it was to get: for the server that is still an update available
_SERVER_EQUIVALENT = {
    'waiting_apply': 'applying',
    'waiting_uninstall': 'uninstalling',
    'rebooting': 'applying',
    'no_package': 'latest',
    'cancelled': 'update_available',
    '-': 'latest',
}
BLOCKING = ('reboot_required', 'apply_failed')
#: the three icons of Table 9 (like latest, like update available, like no package); the default initial one (§3.3 step 5)
MANUAL_ICONS = ('latest', 'update_available', 'no_package')
DEFAULT_MANUAL_ICON = 'update_available'


class PlanError(ExupError):
    """A request that the rules refuse; nothing was changed."""


@dataclasses.dataclass
class ModuleState:
    """One module on one server, as the host reports it."""

    module_id: str
    current: str | None = None  # None: not installed / not present
    previous: str | None = None  # version running before the last apply (§3.5.1 step 6)
    block: str | None = None  # 'reboot_required' | 'apply_failed' while the boot id is unchanged
    staged: str | None = None  # version waiting for the restart (reboot_required)
    #: 'waiting_apply' | 'applying' | 'waiting_uninstall' | 'uninstalling' (a running job), 'cancelled' (the last job
    #: cancelled it; until the next job), 'rebooting' (a restart under way, Table 8)
    activity: str | None = None


@dataclasses.dataclass
class PlanItem:
    """One package to run on one server."""

    package_id: str
    module_id: str
    action: str  # 'install' | 'uninstall'
    from_version: str | None
    to_version: str | None  # None: an uninstall
    reboot_required: bool
    release_date: str
    command: str
    #: stepping stones only: every step to the target, in order ({'version', 'package_id', 'reboot_required', 'this_run'})
    path: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        if result['path'] is None:
            del result['path']  # a plan without stepping stones reads as before
        return result


def _newer(left: str, right: str | None) -> bool:
    return right is None or version_key(left) > version_key(right)


def applicable(packages: Iterable[PackageInfo], kinds: Container[str] = ('linux',)) -> list[PackageInfo]:
    """Packages this path can run: compatible schema, auto-update, a kind it handles."""
    return [info for info in packages if info.compatible and info.auto_update and info.kind in kinds]


def by_module(packages: Iterable[PackageInfo]) -> dict[str, list[PackageInfo]]:
    result: dict[str, list[PackageInfo]] = {}
    for info in packages:
        result.setdefault(info.module_id, []).append(info)
    for infos in result.values():
        infos.sort(key=lambda info: version_key(info.version))
    return result


def module_status(
    state: ModuleState, packages: Iterable[PackageInfo], kinds: Container[str] = ('linux',), manual_icon: str | None = None
) -> tuple[str, str | None]:
    """003 Table 8 (auto-update packages) and Table 9 (only manual ones: '-' plus an icon).

    Returns (status, manual_icon); manual_icon is None unless status is '-'. The icon
    of Table 9 is set by hand (``manual_icon``, see ``choose_manual_icon``); without
    one (no repository to keep it) it is read from the versions.
    """
    if state.activity:
        return state.activity, None
    if state.block:
        return state.block, None
    usable = [info for info in packages if info.compatible and info.auto_update and info.kind in kinds]
    if not usable:
        manual = [info for info in packages if info.compatible and not (info.auto_update and info.kind in kinds)]
        if not manual:
            return 'no_package', None
        if manual_icon in MANUAL_ICONS:
            return '-', manual_icon
        newest = max(manual, key=lambda info: version_key(info.version))
        icon = 'update_available' if _newer(newest.version, state.current) else 'latest'
        return '-', icon
    newest = max(usable, key=lambda info: version_key(info.version))
    return ('update_available' if _newer(newest.version, state.current) else 'latest'), None


def choose_manual_icon(chosen: Sequence[str] | None, arrived: str | None, initial: str | None) -> str:
    """The Table 9 icon of one module of one server (003 §2.1.3.2, §3.3 step 5).

    ``chosen``: (icon, set_at) set by the operator, or None; ``arrived``: when the
    newest manual package of the module reached the repository; ``initial``: the
    repository's initial icon setting at that moment. A package that arrives after
    the operator's choice shows the initial icon again. Times are UTC texts.
    """
    if chosen and (arrived is None or chosen[1] >= arrived):
        return chosen[0]
    return initial if initial in MANUAL_ICONS else DEFAULT_MANUAL_ICON


def manual_arrivals(infos: Iterable[PackageInfo], added: Mapping[str, str], kinds: Container[str] = ('linux',)) -> dict[str, str]:
    """module_id -> when the newest package of it that is not auto-update on this path reached the repository.

    ``added``: package_id -> the UTC text it was added (stored packages only). Only these modules show "-" with an icon
    (Table 9); what the icon is, is ``choose_manual_icon`` with the initial icon of that moment.
    """
    arrivals: dict[str, str] = {}
    for info in infos:
        if info.compatible and not (info.auto_update and info.kind in kinds) and info.package_id in added:
            arrivals[info.module_id] = max(arrivals.get(info.module_id, ''), added[info.package_id])
    return arrivals


def rebooting(request: Mapping[str, Any] | None, boot_id: str | None = None, power: str | None = None, now: Any = None) -> bool:
    """Table 8 "rebooting": a restart exup allowed (agent path) or did itself (BMC path) is under way.

    ``request``: {'boot_id', 'deadline'} recorded when the restart was allowed or done.
    On the agent path it lasts until the boot id changes; on the BMC path (no boot id
    recorded) until the BMC reports the system on again; on both at most until the deadline.
    """
    if not request or (now is not None and now >= request['deadline']):
        return False
    if request.get('boot_id'):
        return boot_id == request['boot_id']
    return power != 'on'


def mark_rebooting(states: dict[str, ModuleState], request_modules: Iterable[str]) -> dict[str, ModuleState]:
    """Show the modules the restart is for as "rebooting" (a running job's status stays first)."""
    for module_id in request_modules:
        state = states.get(module_id)
        if state is not None and not state.activity:
            state.activity = 'rebooting'
    return states


def server_status(module_statuses: Iterable[str], unknown: bool = False, communication_failed: bool = False) -> str:
    """Table 10: the highest-priority status among the modules."""
    if communication_failed:
        return 'communication_failed'
    present = {_SERVER_EQUIVALENT.get(status, status) for status in module_statuses}
    if unknown:
        present.add('unknown')
    for status in SERVER_PRIORITY:
        if status in present:
            return status
    return 'latest'


def versions_offered(state: ModuleState, packages: Iterable[PackageInfo]) -> list[dict[str, Any]]:
    """The version list of §3.5.1 step 6 for one module, newest first, previous generation marked."""
    rows = []
    for info in sorted(packages, key=lambda item: version_key(item.version), reverse=True):
        rows.append(
            {
                'version': info.version,
                'package_id': info.package_id,
                'release_date': info.release_date,
                'reboot_required': info.reboot_required,
                'downgrade_supported': info.downgrade_supported,
                'uninstall_supported': info.uninstall_supported,
                'auto_update': info.auto_update,
                'kind': info.kind,
                'compatible': info.compatible,
                'previous_generation': bool(state.previous) and info.version == state.previous,
                'label': info.version + (' [*]' if state.previous and info.version == state.previous else ''),
            }
        )
    return rows


def _refuse(msg: str, code: str, module_id: str, **details: Any) -> typing.NoReturn:
    raise PlanError(msg, code=code, module=module_id, **details)


def _item(info: PackageInfo, action: str, state: ModuleState) -> PlanItem:
    command = info.uninstall_command if action == 'uninstall' else info.install_command
    return PlanItem(
        package_id=info.package_id,
        module_id=info.module_id,
        action=action,
        from_version=state.current,
        to_version=info.version if action == 'install' else None,
        reboot_required=info.reboot_required,
        release_date=info.release_date,
        command=command,
    )


def select_install(
    state: ModuleState, packages: Sequence[PackageInfo], version: str = LATEST, latest_only: bool = True, kinds: Container[str] = ('linux',)
) -> PlanItem | None:
    """The package to install for one module, or None when nothing is to do. Raises PlanError."""
    module_id = state.module_id
    manual = [info for info in packages if info.compatible and not (info.auto_update and info.kind in kinds)]
    usable = by_module(applicable(packages, kinds)).get(module_id, [])
    if version == PREVIOUS:
        if not state.previous:
            _refuse('%s has no previous generation: it was not updated by exup on this server' % module_id, 'previous_unknown', module_id)
        version = state.previous
    if version == LATEST:
        newer = [info for info in usable if _newer(info.version, state.current)]
        if not newer:
            if not usable and manual and _newer(max(manual, key=lambda info: version_key(info.version)).version, state.current):
                _refuse_manual(module_id, manual)
            return None
        return _item(newer[-1], 'install', state)
    chosen = [info for info in usable if info.version == version]
    if not chosen:
        if any(info.version == version for info in manual):
            _refuse_manual(module_id, manual)
        _refuse(
            'the repository holds no %s version %s for this server (it has: %s)' % (module_id, version, ', '.join(info.version for info in usable) or 'none'),
            'version_not_available',
            module_id,
        )
    info = chosen[-1]
    if state.current is not None and info.version == state.current and (latest_only or not info.downgrade_supported):
        return None  # §2.1.1.2: the same version again only with latest_only off and a package that supports downgrade
    if latest_only and not (info is usable[-1] and _newer(info.version, state.current)):
        _refuse(
            '%s %s is not the newest version above the current one (%s): set latest_only to false to apply it' % (module_id, info.version, state.current),
            'latest_only',
            module_id,
        )
    if not _newer(info.version, state.current) and not info.downgrade_supported:
        _refuse('package %s does not support downgrade from %s to %s' % (info.package_id, state.current, info.version), 'downgrade_not_supported', module_id)
    return _item(info, 'install', state)


def _refuse_manual(module_id: str, manual: Iterable[PackageInfo]) -> typing.NoReturn:
    ids = ', '.join(sorted(info.package_id for info in manual))
    _refuse(
        '%s has only packages that are not auto-update (%s): export them (exup.fleet.exup_package state=exported) '
        'and apply them by hand as their readme says' % (module_id, ids),
        'not_auto_update',
        module_id,
        packages=sorted(info.package_id for info in manual),
    )


def select_uninstall(state: ModuleState, packages: Iterable[PackageInfo], kinds: Container[str] = ('linux',)) -> PlanItem | None:
    """The package whose uninstall command removes the module, or None when it is not installed."""
    module_id = state.module_id
    if state.current is None:
        return None
    candidates = [info for info in by_module(packages).get(module_id, []) if info.compatible and info.kind in kinds]
    supporting = [info for info in candidates if info.uninstall_supported and info.uninstall_command]
    if not supporting:
        _refuse('%s cannot be uninstalled: no package in the repository supports uninstall for it' % module_id, 'uninstall_not_supported', module_id)
    same = [info for info in supporting if info.version == state.current]
    return _item((same or supporting)[-1], 'uninstall', state)


def stepping_stones(state: ModuleState, item: PlanItem, packages: Sequence[PackageInfo], kinds: Container[str] = ('linux',)) -> list[PlanItem]:
    """``item`` alone, or the steps of its path this run applies (rules/stepping.py). Raises PlanError without a path."""
    usable = by_module(applicable(packages, kinds)).get(state.module_id, [])
    target = next((info for info in usable if info.package_id == item.package_id), None)
    if item.action != 'install' or target is None or not _newer(target.version, state.current):
        return [item]
    verdict = stepping.plan_path(state.current, target, usable)
    if verdict.steps is None:
        _refuse(verdict.reason, 'upgrade_path_missing', state.module_id, needed=verdict.needed, target=target.version)
    if len(verdict.steps) == 1:
        return [item]
    run = stepping.run_steps(verdict.steps)
    path = [
        {'version': info.version, 'package_id': info.package_id, 'reboot_required': info.reboot_required, 'this_run': index < len(run)}
        for index, info in enumerate(verdict.steps)
    ]
    items, running = [], state.current
    for info in run:
        step = _item(info, 'install', dataclasses.replace(state, current=running))
        step.path = path
        items.append(step)
        running = info.version
    return items


def order(items: Iterable[PlanItem]) -> list[PlanItem]:
    """§2.1.7: no-reboot first, then release date (oldest first); the update agent's uninstall last."""

    def key(item: PlanItem) -> tuple[bool, bool, str, str]:
        agent_uninstall = item.action == 'uninstall' and item.module_id == support.AGENT_MODULE
        return (agent_uninstall, item.reboot_required, item.release_date, item.package_id)

    items = list(items)
    ordered = sorted(items, key=key)
    # the steps of one module's path keep their order (they take the places its items sort into)
    steps: dict[str, list[PlanItem]] = {}
    for item in items:
        if item.path is not None:
            steps.setdefault(item.module_id, []).append(item)
    return [steps[item.module_id].pop(0) if item.path is not None else item for item in ordered]


def displayed_packages(infos: Sequence[PackageInfo], models: Iterable[str] | None = None) -> set[str]:
    """003 Table 17 "save only the displayed version": per module, the one version a server shows.

    A server of a model and OS shows, for each module, the newest package for its model
    and OS, multi-model or not. A package is kept when some (model, OS) it targets
    shows it; ``models`` limits the models looked at. Returns the kept package ids.
    """
    points = {(info.module_id, model, os_name) for info in infos for model in info.models for os_name in info.os if not models or model in models}
    kept: set[str] = set()
    for module_id, model, os_name in points:
        shown = [info for info in infos if info.module_id == module_id and info.targets(model, os_name)]
        kept.add(max(shown, key=lambda info: (version_key(info.version), info.package_id)).package_id)
    return kept


def blocked_modules(states: Mapping[str, ModuleState]) -> list[str]:
    return sorted(state.module_id for state in states.values() if state.block in BLOCKING)


def build_plan(
    states: Mapping[str, ModuleState],
    packages: Sequence[PackageInfo],
    requests: Mapping[str, str] | None,
    action: str = 'install',
    latest_only: bool = True,
    kinds: Container[str] = ('linux',),
) -> tuple[list[PlanItem], dict[str, str]]:
    """The ordered plan for one server.

    ``states``: module_id -> ModuleState; ``packages``: PackageInfos for the
    server's model and OS; ``requests``: module_id -> version ('latest',
    'previous' or a version), or None for "every module with an update".
    Returns (items, skipped) where skipped maps module_id -> why nothing is done.
    Raises PlanError when the rules refuse (nothing is applied then).
    """
    restarting = sorted(state.module_id for state in states.values() if state.activity == 'rebooting')
    if restarting:
        # Table 8: while the server restarts after an apply, no package can be applied
        raise PlanError(
            'the server is restarting after an apply (%s): apply again once it is back' % ', '.join(restarting), code='server_rebooting', modules=restarting
        )
    skipped: dict[str, str] = {}
    usable_modules = by_module(packages)
    if requests is None:
        if action != 'install':
            raise PlanError('name the modules to uninstall', code='modules_required')
        requests = {module_id: LATEST for module_id in sorted(usable_modules) if module_id in states and states[module_id].current is not None}
        implicit = True
    else:
        implicit = False
    items: list[PlanItem] = []
    for module_id, version in sorted(requests.items()):
        if module_id not in MODULE_KINDS:
            raise PlanError('unknown module %r: the modules are %s' % (module_id, ', '.join(sorted(MODULE_KINDS))), code='unknown_module', module=module_id)
        state = states.get(module_id) or ModuleState(module_id)
        if action == 'uninstall':
            item = select_uninstall(state, packages, kinds)
            if item is None:
                skipped[module_id] = 'not installed'
        else:
            if state.current is None and module_id not in _INSTALLABLE and not implicit:
                raise PlanError('%s is not present on this server' % module_id, code='module_not_present', module=module_id)
            if state.block == 'reboot_required' and state.staged and version in (LATEST, state.staged):
                skipped[module_id] = 'version %s is staged and becomes active at the next restart' % state.staged
                continue
            try:
                item = select_install(state, packages, version, latest_only, kinds)
            except PlanError as exc:
                if implicit and exc.code == 'not_auto_update':
                    skipped[module_id] = exc.msg
                    continue
                raise
            if item is None:
                skipped[module_id] = 'already at %s' % state.current if state.current else 'no package'
        if item is not None:
            try:
                items.extend(stepping_stones(state, item, packages, kinds))
            except PlanError as exc:
                if not implicit or exc.code != 'upgrade_path_missing':
                    raise
                # no module named: one module without a path does not hold back the others
                skipped[module_id] = '%s (%s)' % (exc.msg, exc.code)
    blocked = blocked_modules(states)
    if items and blocked:
        causes = ', '.join('%s (%s)' % (name, states[name].block.replace('_', ' ')) for name in blocked)  # type: ignore[union-attr]  # blocked: a block is set
        raise PlanError('the server must restart before more packages are applied: %s' % causes, code='blocked_until_reboot', blocked=blocked)
    return order(items), skipped


#: software modules may be installed where they are absent; firmware needs its hardware present
_INSTALLABLE = ('server-agent', 'agent-extension', 'update-agent', 'raid-utility', 'bmc-configuration', 'sdr')


def reboot_needed(results: Iterable[Mapping[str, Any]]) -> bool:
    """At least one package that succeeded needs a restart."""
    return any(result['status'] == 'succeeded' and result['reboot_required'] for result in results)


def reboot_allowed(results: Sequence[Mapping[str, Any]]) -> bool:
    """§2.1.2: a reboot-requiring package was applied AND every selected package succeeded."""
    return bool(results) and reboot_needed(results) and all(result['status'] == 'succeeded' for result in results)
