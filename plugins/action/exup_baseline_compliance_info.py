# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of exup_baseline_compliance_info: a server (or every registered server) against its baseline.

Runs on the controller only; reads the repository, never the host and never writes. The rules are rules/baseline.py.
"""

from __future__ import annotations

import datetime

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import baseline as rules
from ansible_collections.exup.fleet.plugins.module_utils._exup_module import REMOTE_SPEC
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_action import ExupAction

SPEC = dict(REMOTE_SPEC, **rules.OPTIONS)

#: a host variable of the exup.fleet.exup inventory plugin is used when no reading is given
INVENTORY_MODULES = 'exup_modules'


def _now():
    return datetime.datetime.now(datetime.UTC)


def _states(modules):
    """module_id -> {'current', 'previous'} from exup_info's ``modules`` (or the inventory plugin's exup_modules)."""
    if not isinstance(modules, dict):
        raise ExupError('reading.modules must be a mapping of module id to its state (exup_info modules)', code='reading_invalid', field='reading.modules')
    states = {}
    for module_id, state in modules.items():
        if isinstance(state, dict):
            states[str(module_id)] = {'current': state.get('current'), 'previous': state.get('previous')}
        elif isinstance(state, str) or state is None:
            states[str(module_id)] = {'current': state, 'previous': None}
        else:
            raise ExupError('reading.modules.%s must be a mapping or a version' % module_id, code='reading_invalid', field='reading.modules')
    return states


def _offered(modules):
    """Candidates from exup_info's per-module ``versions`` (no severity there); None when none are listed."""
    found = None
    if not isinstance(modules, dict):
        return None
    for module_id, state in modules.items():
        versions = state.get('versions') if isinstance(state, dict) else None
        if not isinstance(versions, list):
            continue
        found = found or []
        for item in versions:
            if isinstance(item, dict) and isinstance(item.get('version'), str) and item.get('compatible', True):
                found.append(rules.Candidate(str(module_id), item['version'], str(item.get('release_date') or ''), item.get('severity')))
    return found


def _candidates(infos):
    return [rules.Candidate(info.module_id, info.version, info.release_date, info.severity) for info in infos if info.compatible]


class ActionModule(ExupAction):
    SPEC = SPEC
    _requires_connection = False

    def act(self):
        args = self.args
        raw = args['baseline'] if 'baseline' in self._task.args else self.host_var('exup_baseline')
        baseline = rules.combine(raw)
        repo = self.repository(required=args['scope'] == 'repository')
        now = _now()
        trusted = args['trusted_keys'] or None
        if args['scope'] == 'repository':
            return self.whole_repository(repo, baseline, now, trusted)
        reading = args['reading']
        if reading is not None:
            modules, model, os_name = reading.get('modules'), reading.get('model'), reading.get('os')
            read_at = args['read_at'] or reading.get('read_at') or now.isoformat(timespec='seconds')  # a result of this play: read now
            source = 'reading'
        else:
            modules = self.host_var(INVENTORY_MODULES)
            model, os_name = self.host_var('exup_model'), self.host_var('exup_os')
            read_at = args['read_at'] or self.host_var('exup_read_at')
            source = 'inventory'
            if modules is None:
                raise ExupError(
                    'no reading: give reading (a registered exup.fleet.exup_info result) or use the exup.fleet.exup inventory (exup_modules)',
                    code='reading_missing',
                )
        states = _states(modules)
        if repo is not None and isinstance(model, str) and isinstance(os_name, str):
            candidates = _candidates(package.info for package in self.packages_for_server(repo, {'model': model, 'os': os_name}, trusted))
        else:
            candidates = _offered(modules)
        result = rules.server_verdict(baseline, rules.Reading(states, read_at, model or '', os_name or ''), candidates, now, args['max_reading_age_hours'])
        result.update(changed=False, server=self.server_name, source=source, checked_at=now.isoformat(timespec='seconds'))
        return result

    def whole_repository(self, repo, baseline, now, trusted):
        """Every server registered in the repository (of manager_id, if given) against one baseline."""
        servers, after, seen, stored = [], None, set(), {}
        while True:
            page = repo.fleet(after, 1000 if hasattr(repo, 'base_url') else None)
            servers.extend(server for server in page.servers if not self.args['manager_id'] or server.manager_id == self.args['manager_id'])
            stored.update(page.read_at)
            if page.next is None or page.next in seen:
                break
            seen.add(page.next)
            after = page.next
        offered = {}
        results = []
        for server in servers:
            pair = (server.model, server.os)
            if pair not in offered:
                offered[pair] = _candidates(package.info for package in self.packages_for_server(repo, {'model': server.model, 'os': server.os}, trusted))
            states = _states(server.modules)
            read_at = self.args['read_at'] or stored.get((server.manager_id, server.name))  # never read: None, reading_time_unknown
            item = rules.server_verdict(
                baseline, rules.Reading(states, read_at, server.model, server.os), offered[pair], now, self.args['max_reading_age_hours']
            )
            item.update(server=server.name, manager_id=server.manager_id, model=server.model, os=server.os)
            results.append(item)
        return {
            'changed': False,
            'servers': results,
            'summary': rules.summary(results),
            'source': 'repository',
            'checked_at': now.isoformat(timespec='seconds'),
        }
