# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The locked plan of GitOps (issue 13.7) as pure functions: the artifact, its digests, the refusal.

A plan step (playbooks/plan.yml: exup_apply in check mode over the inventory) gives, per server, the
ordered packages exup_apply would run and the packages the repository offers that server. From that
and the inventory this module makes one reviewable artifact (``artifact``): per server its packages in
order, its wave and its restart, and the digests of what it was made from:

- ``repository``: the packages offered to the planned servers (package id, module, version, SHA-256;
  never file times, paths or the order the repository lists them in);
- ``baseline``: the baseline variables each server of the target sees (``exup_baseline``), or
  ``none`` when no server has one;
- ``inventory``: the target, the servers it matches and which of them were chosen, the settings that
  change the plan (modules, versions, latest_only, serial, reboots...) and each server's variables that
  do (host root, BMC address...). The order of hosts in the inventory and of keys in a mapping is noise.
- ``plan``: the servers' ordered packages themselves (a hand edit of the artifact shows there).

The apply step gathers the same inputs again and ``verify`` compares: any digest that differs, a planned
package the repository no longer offers, or a server whose plan came out different refuses the run with
``plan_stale`` before any server is touched. Every digest is ``sha256:`` plus the hex SHA-256 of the
canonical JSON (sorted keys, no spaces, UTF-8) of its input.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

if typing.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

#: bump when the artifact's shape or a digest's input changes meaning
FORMAT = 1
NONE = 'none'
DIGESTS = ('repository', 'baseline', 'inventory', 'plan')
#: the apply settings (apply_<name>) that change what is applied where, and when
PLAN_SETTINGS = ('modules', 'versions', 'latest_only', 'status_filter', 'serial', 'allow_reboot', 'reboot_delay_minutes', 'via', 'state')
#: the per-server inventory variables that change the plan or the path to the server
HOST_VARIABLES = ('exup_host_root', 'exup_bmc_address', 'exup_bmc_port', 'exup_bmc_protocol', 'exup_bmc_system')
#: what of a planned package is locked (and compared)
ITEM_KEYS = ('package_id', 'module_id', 'action', 'from_version', 'to_version', 'sha256', 'reboot_required')
#: a stepping-stone item also locks its whole path (every step, which of them this run applies) and its final target
PATH_KEYS = ('version', 'package_id', 'reboot_required', 'this_run')
OFFERED_KEYS = ('package_id', 'module_id', 'version', 'sha256')


class LockedPlanError(ExupError):
    """The artifact cannot be used; nothing was touched."""


# --------------------------------------------------------------------------- canonical form and digests


def canonical(value: Any) -> str:
    """The canonical JSON text of a value: sorted keys, no spaces, tuples as lists, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=canonical)
    raise TypeError('not JSON data: %r' % (value,))


def digest(value: Any) -> str:
    return 'sha256:' + hashlib.sha256(canonical(value).encode('utf-8')).hexdigest()


def offered(stored: Iterable[Any]) -> list[dict[str, Any]]:
    """The packages a server is offered (StoredPackage-like: package_id, module_id, version, sha256), sorted by id."""
    rows = [{key: getattr(package, key) for key in OFFERED_KEYS} for package in stored]
    return sorted(rows, key=lambda row: (row['package_id'], row['sha256']))


def _offered_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    unique = {canonical({key: row.get(key) for key in OFFERED_KEYS}): {key: row.get(key) for key in OFFERED_KEYS} for row in rows}
    return [unique[key] for key in sorted(unique)]


def repository_digest(offered_by_server: Mapping[str, Iterable[Mapping[str, Any]]]) -> str:
    """Server -> the packages offered to it: ids, modules, versions, SHA-256 (the order they came in is noise)."""
    return digest({'format': FORMAT, 'offered': {server: _offered_rows(rows) for server, rows in offered_by_server.items()}})


def baseline_digest(baseline_by_server: Mapping[str, Any]) -> str:
    """Server -> the baseline variables it sees (None: none); ``none`` when no server has a baseline."""
    seen = {server: value for server, value in baseline_by_server.items() if value is not None}
    if not seen:
        return NONE
    return digest({'format': FORMAT, 'baseline': seen})


def settings_of(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The plan-relevant settings, with the defaults of playbooks/apply.yml for those not given."""
    defaults: dict[str, Any] = {
        'modules': None,
        'versions': {},
        'latest_only': True,
        'status_filter': 'update_available',
        'serial': '100%',
        'allow_reboot': False,
        'reboot_delay_minutes': 0,
        'via': 'agent',
        'state': 'present',
    }
    result = {}
    for name in PLAN_SETTINGS:
        value = settings.get(name)
        result[name] = defaults[name] if value is None else value
    result['latest_only'] = _truth(result['latest_only'])
    result['allow_reboot'] = _truth(result['allow_reboot'])
    result['reboot_delay_minutes'] = _whole(result['reboot_delay_minutes'], 'reboot_delay_minutes')
    if isinstance(result['modules'], (list, tuple)):
        result['modules'] = sorted({str(module) for module in result['modules']})
    result['serial'] = _serial_value(result['serial'])
    return result


def inventory_digest(target: str, hosts: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any]) -> str:
    """The target, its servers (chosen or not, their plan-relevant variables) and the settings."""
    servers = {
        server: {'chosen': bool(data.get('chosen')), 'vars': {name: value for name, value in sorted((data.get('vars') or {}).items()) if value is not None}}
        for server, data in hosts.items()
    }
    return digest({'format': FORMAT, 'target': target, 'servers': servers, 'settings': settings_of(settings)})


def plan_digest(servers: Mapping[str, Mapping[str, Any]]) -> str:
    """Server -> its ordered packages (order matters here: it is the order they run in) and wave."""
    return digest({'format': FORMAT, 'servers': {name: {'wave': row.get('wave'), 'packages': row.get('packages', [])} for name, row in servers.items()}})


# --------------------------------------------------------------------------- waves (Ansible's serial)


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ('1', 'true', 'yes', 'on', 'y', 't')
    return bool(value)


def _whole(value: Any, name: str) -> int:
    text = str(value).strip()
    if not re.match('^[0-9]+$', text):
        raise LockedPlanError('%s must be a whole number, not %r' % (name, value), code='invalid_settings')
    return int(text)


def _serial_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        if not value:
            raise LockedPlanError('serial must not be an empty list', code='invalid_settings')
        return [_serial_step(step) for step in value]
    return _serial_step(value)


def _serial_step(step: Any) -> Any:
    text = str(step).strip()
    if re.match(r'^[0-9]+(\.[0-9]+)?%$', text):
        return text
    if re.match('^[0-9]+$', text) and int(text) > 0:
        return int(text)
    raise LockedPlanError('serial must be a count, a percentage or a list of them, not %r' % (step,), code='invalid_settings')


def waves(servers: Sequence[str], serial: Any) -> list[list[str]]:
    """The batches Ansible's ``serial`` makes of ``servers`` (in this order): a count, a percentage, or a list
    of them where the last one repeats (a canary first wave: ``[1, '50%']``). A percentage is of all the
    servers, rounded down, at least one (ansible.playbook.helpers / PlaybookExecutor._get_serialized_batches)."""
    steps = _serial_value(serial)
    steps = steps if isinstance(steps, list) else [steps]
    total = len(servers)
    batches: list[list[str]] = []
    rest = list(servers)
    index = 0
    while rest:
        step = steps[min(index, len(steps) - 1)]
        size = max(1, int(total * float(step[:-1]) / 100.0)) if isinstance(step, str) else step
        batches.append(rest[:size])
        rest = rest[size:]
        index += 1
    return batches


# --------------------------------------------------------------------------- the artifact


def _item(row: Mapping[str, Any]) -> dict[str, Any]:
    item = {key: row.get(key) for key in ITEM_KEYS}
    if row.get('path'):
        # stepping stones (rules/plan.py): the reviewer sees the remaining steps, the apply pins the final target
        path = [{key: step.get(key) for key in PATH_KEYS} for step in row['path']]
        item['path'], item['target_version'] = path, path[-1]['version']
    return item


def server_plan(result: Mapping[str, Any]) -> dict[str, Any]:
    """One server's part from its exup_apply check-mode result: packages in order, or why none."""
    if result.get('failed') or result.get('unreachable') or 'plan' not in result:
        return {
            'packages': [],
            'error': result.get('error') or ('unreachable' if result.get('unreachable') else 'failed'),
            'reason': str(result.get('msg') or 'exup_apply failed'),
        }
    packages = [_item(row) for row in result['plan']]
    row: dict[str, Any] = {'packages': packages}
    if result.get('model'):
        row['model'] = result['model']
    if result.get('skipped_modules'):
        row['skipped_modules'] = dict(sorted(result['skipped_modules'].items()))
    return row


class Inputs(typing.NamedTuple):
    """What a plan is made of: per server of the target, as the playbook gathered it."""

    target: str
    settings: Mapping[str, Any]
    #: server -> {'chosen': bool, 'vars': {...}, 'baseline': value or None, 'result': exup_apply check-mode result or None}
    hosts: Mapping[str, Mapping[str, Any]]


def _planned_servers(inputs: Inputs) -> dict[str, dict[str, Any]]:
    servers = {}
    for name in sorted(inputs.hosts):
        data = inputs.hosts[name]
        if data.get('chosen') and data.get('result') is not None:
            servers[name] = server_plan(data['result'])
    return servers


def _offered_by_server(inputs: Inputs) -> dict[str, list[dict[str, Any]]]:
    return {
        name: _offered_rows((data.get('result') or {}).get('offered') or [])
        for name, data in inputs.hosts.items()
        if data.get('chosen') and data.get('result') is not None
    }


def _waved(servers: dict[str, dict[str, Any]], settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each server's wave (the servers with packages, sorted by name, batched by serial) and restart."""
    with_packages = [name for name in sorted(servers) if servers[name]['packages']]
    for number, batch in enumerate(waves(with_packages, settings['serial']), start=1):
        for name in batch:
            servers[name]['wave'] = number
    for row in servers.values():
        row.setdefault('wave', None)
        needs = any(item['reboot_required'] for item in row['packages'])
        row['reboot'] = 'allowed' if needs and settings['allow_reboot'] else ('staged until a restart' if needs else 'none')
    return servers


def digests(inputs: Inputs, servers: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {
        'repository': repository_digest(_offered_by_server(inputs)),
        'baseline': baseline_digest({name: data.get('baseline') for name, data in inputs.hosts.items()}),
        'inventory': inventory_digest(inputs.target, inputs.hosts, inputs.settings),
        'plan': plan_digest(servers),
    }


def artifact(inputs: Inputs) -> dict[str, Any]:
    """The locked plan: settings, digests, and per server its wave, packages in order and restart."""
    settings = settings_of(inputs.settings)
    if settings['state'] != 'present':
        raise LockedPlanError('a locked plan applies packages (state present), not %s' % settings['state'], code='invalid_settings')
    servers = _waved(_planned_servers(inputs), settings)
    with_packages = [name for name in sorted(servers) if servers[name]['packages']]
    not_planned = {name: 'not chosen' if not data.get('chosen') else 'not queried' for name, data in inputs.hosts.items() if name not in servers}
    return {
        'format': FORMAT,
        'target': inputs.target,
        'settings': settings,
        'digests': digests(inputs, servers),
        'waves': waves(with_packages, settings['serial']),
        'servers': servers,
        'not_planned': dict(sorted(not_planned.items())),
    }


def render(document: Mapping[str, Any]) -> str:
    """The artifact as text: JSON with sorted keys, two-space indent, one newline at the end (a stable diff)."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + '\n'


# --------------------------------------------------------------------------- verify


def _refuse(msg: str, code: str, **details: Any) -> typing.NoReturn:
    raise LockedPlanError(msg, code=code, **details)


#: the type of each locked key of a planned package (None: may be null)
_ITEM_TYPES: dict[str, tuple[type, ...]] = {
    'package_id': (str,),
    'module_id': (str,),
    'action': (str,),
    'from_version': (str, type(None)),
    'to_version': (str, type(None)),
    'sha256': (str,),
    'reboot_required': (bool,),
}
_STEP_TYPES: dict[str, tuple[type, ...]] = {'version': (str,), 'package_id': (str,), 'reboot_required': (bool,), 'this_run': (bool,)}


def _shape_error(where: str, row: Any, types: Mapping[str, tuple[type, ...]]) -> str | None:
    """Why ``row`` is not a mapping with these keys of these types, or None."""
    if not isinstance(row, dict):
        return '%s is not a mapping' % where
    missing = [key for key in types if key not in row]
    if missing:
        return '%s has no %s' % (where, ', '.join(missing))
    wrong = [key for key, allowed in types.items() if not isinstance(row[key], allowed)]
    if wrong:
        return '%s has %s of the wrong type' % (where, ', '.join(wrong))
    return None


def _item_error(where: str, item: Any) -> str | None:
    problem = _shape_error(where, item, _ITEM_TYPES)
    if problem or 'path' not in item:
        return problem
    path = item['path']
    if not isinstance(path, list) or not path:
        return '%s has a path that is not a list of steps' % where
    for number, step in enumerate(path, start=1):
        problem = _shape_error('%s step %d' % (where, number), step, _STEP_TYPES)
        if problem:
            return problem
    if item.get('target_version') != path[-1]['version']:
        return "%s has a target_version that is not its path's last version" % where
    return None


def _servers_error(servers: Mapping[str, Any]) -> str | None:
    """Why the artifact's servers are not what ``artifact`` writes (each a mapping, its packages a list of items), or None."""
    for name in sorted(servers, key=str):
        row = servers[name]
        if not isinstance(row, dict):
            return 'server %s is not a mapping' % name
        packages = row.get('packages', [])
        if not isinstance(packages, list):
            return 'server %s has packages that are not a list' % name
        if not (row.get('wave') is None or (isinstance(row['wave'], int) and not isinstance(row['wave'], bool))):
            return 'server %s has a wave that is not a number' % name
        for number, item in enumerate(packages, start=1):
            problem = _item_error('server %s package %d' % (name, number), item)
            if problem:
                return problem
    return None


def check_artifact(document: Any) -> Mapping[str, Any]:
    """Refuse an artifact that is not one (plan_invalid), of another format, of another shape, or whose plan was edited by hand."""
    if not isinstance(document, dict) or not isinstance(document.get('digests'), dict) or not isinstance(document.get('servers'), dict):
        _refuse('the plan file is not a locked plan (no digests and servers): write it with playbooks/plan.yml', 'plan_invalid')
    if document.get('format') != FORMAT:
        _refuse('the plan file has format %r; this collection reads format %d: make the plan again' % (document.get('format'), FORMAT), 'plan_invalid')
    problem = _servers_error(document['servers'])
    if problem:
        _refuse('the plan file is not a locked plan as playbooks/plan.yml writes it: %s; make the plan again' % problem, 'plan_invalid')
    recorded = plan_digest(document['servers'])
    if recorded != document['digests'].get('plan'):
        _refuse('the plan file was edited after it was made: its packages do not match its plan digest; make the plan again', 'plan_invalid')
    return document


def verify(document: Any, inputs: Inputs) -> dict[str, Any]:
    """Refuse (plan_stale) unless the inputs now give the same digests and each server the same packages.

    Returns {'servers': server -> its locked part, for the servers with packages} when the plan still holds.
    """
    check_artifact(document)
    locked = document['servers']
    now_servers = _waved(_planned_servers(inputs), settings_of(inputs.settings))
    now = digests(inputs, now_servers)
    changed = [name for name in DIGESTS if now[name] != document['digests'].get(name)]
    offered_now = _offered_by_server(inputs)
    missing: list[dict[str, Any]] = []
    for server in sorted(locked):
        have = {(row['package_id'], row['sha256']) for row in offered_now.get(server, [])}
        missing.extend(
            {'server': server, 'package_id': item['package_id'], 'sha256': item['sha256']}
            for item in locked[server].get('packages', [])
            if (item['package_id'], item['sha256']) not in have
        )
    differs = sorted(
        server
        for server in set(locked) | set(now_servers)
        if [_item(item) for item in locked.get(server, {}).get('packages', [])] != now_servers.get(server, {}).get('packages', [])
    )
    if changed or missing or differs:
        parts = []
        if changed:
            parts.append('changed since the review: %s' % ', '.join(changed))
        if missing:
            parts.append('no longer offered: %s' % ', '.join('%s on %s' % (row['package_id'], row['server']) for row in missing))
        if differs:
            parts.append('the plan of %s comes out different now' % ', '.join(differs))
        _refuse(
            'the locked plan is stale (%s); nothing was applied: make the plan again and review it' % '; '.join(parts),
            'plan_stale',
            stale=changed,
            missing_packages=missing,
            servers_differ=differs,
            digests_locked={name: document['digests'].get(name) for name in DIGESTS},
            digests_now=now,
        )
    return {'servers': {name: dict(row, versions=pinned_versions(row)) for name, row in locked.items() if row.get('packages')}}


def pinned_versions(server: Mapping[str, Any]) -> dict[str, str]:
    """exup_apply's ``versions`` for one locked server: each module to the version the plan installs.

    A stepping-stone module is pinned to its path's final target (``target_version``), not to the stone: that is
    the version the plan step asked for (so ``latest_only`` accepts it as it did then), and with the repository
    unchanged the planner takes the same steps to it, the locked ones.
    """
    pinned = {}
    for item in server.get('packages', []):
        version = item.get('target_version') or item.get('to_version')
        if version:
            pinned[item['module_id']] = version
    return pinned
