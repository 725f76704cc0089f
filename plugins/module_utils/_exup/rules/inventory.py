# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet as an Ansible inventory (the inventory plugin exup.fleet.exup, issue 12): pure, data in, data out.

From what a repository keeps of its registered servers (their model, OS and module versions, the BMC path's
records, the Table 9 icons chosen by hand) and the packages it holds, this decides each host's name, its
variables (prefixed ``exup_``) and its groups (by model, OS, server status and manager). The statuses are
``status_report``'s and ``plan``'s (Tables 8-10), as for exup_info: the repository's view of the server,
without what only the host knows now (a job running, a restart under way, a reboot-required block of the
agent path). Work grows with servers + packages: the packages of a model and OS are chosen once for all
servers that share them.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterable, Mapping, Sequence

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan, status_report
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.blocks import BlockEvidence, block_in_force

if typing.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord
    from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

#: the prefix of every host variable and, by default, of every group the plugin makes
PREFIX = 'exup_'
#: the groups each host joins: kind -> the host variable (without prefix) it is keyed by
GROUP_KINDS = (('model', 'model'), ('os', 'os'), ('status', 'server_status'), ('manager', 'manager_id'))
_UNSAFE = re.compile(r'[^A-Za-z0-9_]')


def safe_group_name(text: str) -> str:
    """A group name Ansible takes without a warning: every character but letters, digits and _ becomes _ (case kept)."""
    return _UNSAFE.sub('_', text) or '_'


@dataclasses.dataclass(frozen=True)
class InventoryHost:
    """One host of the inventory: its name, its variables and the groups it joins."""

    name: str
    variables: dict[str, typing.Any]
    groups: tuple[str, ...]


def host_names(servers: Iterable[Server]) -> dict[tuple[str, str], str]:
    """(manager_id, name) -> the host's name: the server's name, or ``name@manager_id`` when two managers register one name."""
    keys = [(server.manager_id, server.name) for server in servers]
    counts: dict[str, int] = {}
    for _manager, name in keys:
        counts[name] = counts.get(name, 0) + 1
    return {(manager, name): name if counts[name] == 1 else '%s@%s' % (name, manager) for manager, name in keys}


def initial_icon_at(history: Sequence[tuple[str, str]], at: str) -> str | None:
    """The setting initial_manual_icon as it was at ``at``: the last change not after it (``history`` oldest first)."""
    value = None
    for changed_at, icon in history:
        if changed_at > at:
            break
        value = icon
    return value


def module_states(server: Server, bmc: Mapping[str, BmcModuleRecord]) -> dict[str, plan.ModuleState]:
    """The server's modules as the repository last saw them; a BMC path's block holds until its staged version runs."""
    states = {}
    for module_id, versions in server.modules.items():
        states[module_id] = plan.ModuleState(module_id, current=versions.get('current'), previous=versions.get('previous'))
    for module_id, record in bmc.items():
        state = states.get(module_id) or plan.ModuleState(module_id)
        block, staged = block_in_force(dataclasses.asdict(record), BlockEvidence(version=state.current))
        states[module_id] = dataclasses.replace(state, previous=state.previous or record.previous, block=block, staged=staged)
    return states


def fleet_hosts(
    servers: Sequence[Server],
    infos: Sequence[PackageInfo],
    added: Mapping[str, str],
    bmc: Mapping[tuple[str, str], Mapping[str, BmcModuleRecord]],
    icons: Mapping[tuple[str, str], Mapping[str, tuple[str, str]]],
    initial_icons: Sequence[tuple[str, str]],
    group_prefix: str = PREFIX,
    names: Mapping[tuple[str, str], str] | None = None,
    kinds: tuple = ('linux',),
    read_at: Mapping[tuple[str, str], str] | None = None,
) -> list[InventoryHost]:
    """Every server as an inventory host (``names``: host_names of all servers, when ``servers`` is one page of them).

    ``infos`` are the repository's packages and ``added`` when each arrived (package_id -> UTC text); ``bmc``,
    ``icons`` and ``read_at`` (when the versions were last read, FleetPage.read_at) are keyed by (manager_id, server
    name); ``initial_icons`` is the setting's history (initial_icon_at).
    """
    read_at = read_at or {}
    names = host_names(servers) if names is None else names
    targeted: dict[tuple[str, str], tuple[list[PackageInfo], dict[str, str]]] = {}
    hosts = []
    for server in servers:
        key = (server.manager_id, server.name)
        pair = (server.model, server.os)
        if pair not in targeted:
            chosen = [info for info in infos if info.targets(server.model, server.os)]
            targeted[pair] = (chosen, plan.manual_arrivals(chosen, added, kinds))
        packages, arrivals = targeted[pair]
        records = bmc.get(key, {})
        chosen_icons = icons.get(key, {})
        shown_icons = {
            module_id: plan.choose_manual_icon(chosen_icons.get(module_id), arrived, initial_icon_at(initial_icons, arrived))
            for module_id, arrived in arrivals.items()
        }
        report = status_report.status_report(status_report.ServerView(module_states(server, records), packages, shown_icons, kinds=kinds))
        variables = host_variables(server, report, bool(records), read_at.get(key))
        groups = tuple(
            sorted({group_prefix + kind + '_' + safe_group_name(str(variables[PREFIX + field])) for kind, field in GROUP_KINDS if variables[PREFIX + field]})
        )
        hosts.append(InventoryHost(names.get(key, server.name), variables, groups))
    return hosts


def host_variables(server: Server, report: status_report.StatusReport, bmc_known: bool, read_at: str | None = None) -> dict[str, typing.Any]:
    """The host's variables (docs: the plugin's documentation lists them); no secret is among them.

    ``exup_read_at`` is the repository's reading time as stored, None when the server was never read: the compliance
    rule (rules/baseline.py) decides whether it is a time at all (else ``reading_time_unknown``).
    """
    newest = report.newest
    modules = {
        module_id: {
            'name': row['name'],
            'current': row['current'],
            'previous': row['previous'],
            'status': row['status'],
            'manual_icon': row['manual_icon'],
            'block': row['block'],
            'newest': newest.get(module_id),
        }
        for module_id, row in report.modules.items()
    }
    return {
        PREFIX + 'server_name': server.name,
        PREFIX + 'manager_id': server.manager_id,
        PREFIX + 'model': server.model,
        PREFIX + 'os': server.os,
        PREFIX + 'server_status': report.server_status,
        PREFIX + 'modules': modules,
        PREFIX + 'module_versions': {module_id: row['current'] for module_id, row in modules.items()},
        PREFIX + 'module_statuses': {module_id: row['status'] for module_id, row in modules.items()},
        PREFIX + 'modules_available': list(report.available),
        PREFIX + 'unknown_packages': report.unknown,
        PREFIX + 'paths': ['agent', 'bmc'] if bmc_known else ['agent'],
        PREFIX + 'read_at': read_at if isinstance(read_at, str) else None,
    }
