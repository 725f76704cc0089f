# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What exup_info reports of a server's modules (the ``modules`` rows, the server status): both paths.

The statuses are ``plan.py``'s (Tables 8-10); this file shapes them into the rows the agent path
(states from the host's agent) and the BMC path (states from the BMC and the repository) return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key


@dataclasses.dataclass(frozen=True)
class ServerView:
    """What is known of one server to report its modules."""

    states: Mapping[str, plan.ModuleState]
    packages: Sequence[PackageInfo] = ()  # the repository's packages for this server (and path)
    icons: Mapping[str, str] = dataclasses.field(default_factory=dict)  # Table 9 icons set by hand
    kinds: tuple = ('linux',)  # the package kinds this path applies
    repository: bool = True  # without a repository every module is no_package
    agent_installed: bool = True
    #: the modules to report, in this order (BMC path: what it manages); None: the agent path's rule (see shown_modules)
    listed: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class StatusReport:
    """The module rows and statuses of one server."""

    modules: dict  # module_id -> row (see module_row)
    available: list  # modules the repository has packages for that the server does not show
    unknown: bool  # a package uses a schema newer than this code knows (003 §2.1.4)
    server_status: str  # Table 10, or agent_not_installed

    @property
    def newest(self) -> dict:
        """module_id -> the newest version the repository offers for it (None: none)."""
        return {module_id: max((row['version'] for row in module['versions']), key=version_key, default=None) for module_id, module in self.modules.items()}


def shown_modules(states: Mapping[str, plan.ModuleState], grouped: Mapping[str, list]) -> list:
    """Modules the agent path reports: those present, blocked or busy, of the host or the repository."""
    shown = []
    for module_id in sorted(set(states) | set(grouped)):
        state = states.get(module_id)
        if state is not None and (state.current is not None or state.activity is not None or state.block):
            shown.append(module_id)
    return shown


def module_row(state: plan.ModuleState, packages: Sequence[PackageInfo], view: ServerView) -> dict:
    """One row of exup_info's ``modules``: versions, Table 8-9 status and icon, block, the versions offered."""
    if view.repository:
        status, icon = plan.module_status(state, packages, kinds=view.kinds, manual_icon=view.icons.get(state.module_id))
    else:
        status, icon = 'no_package', None
    return {
        'name': MODULE_KINDS.get(state.module_id, state.module_id),
        'current': state.current,
        'previous': state.previous,
        'status': status,
        'manual_icon': icon,
        'block': state.block,
        'staged': state.staged,
        'versions': plan.versions_offered(state, packages),
    }


def status_report(view: ServerView) -> StatusReport:
    """The rows of the listed (or shown) modules, the modules only the repository has, and the server status."""
    grouped = plan.by_module(view.packages)
    listed = shown_modules(view.states, grouped) if view.listed is None else view.listed
    modules = {module_id: module_row(view.states.get(module_id) or plan.ModuleState(module_id), grouped.get(module_id, []), view) for module_id in listed}
    unknown = any(not info.compatible for info in view.packages)
    server_status = plan.server_status([module['status'] for module in modules.values()], unknown=unknown)
    if not view.agent_installed:
        server_status = 'agent_not_installed'
    available = sorted(module_id for module_id in grouped if module_id not in modules)
    return StatusReport(modules=modules, available=available, unknown=unknown, server_status=server_status)
