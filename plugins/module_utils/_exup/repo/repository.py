# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository operations (003 §2.2): needs of managers, add, delete, deletion history, save, listing.

Every write happens under the store's writer lock, inside a transaction, and
leaves an event. Decisions come from ``generations`` (pure); this module only
gathers the data and applies the result.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
from typing import Dict, Iterable, List, Optional

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import CatalogEntry, format_time, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, PackageError, RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Candidate, Server, generation_plan
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import ID_RULE, PackageInfo, file_digest, is_id, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.plan import DEFAULT_MANUAL_ICON, MANUAL_ICONS, choose_manual_icon, displayed_packages, rebooting
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, StoredPackage, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

#: A manager that has not reported presence for this long is forgotten (003 §2.2.8).
PRESENCE_LIFETIME = datetime.timedelta(days=60)

#: Codes only a download gives. Stores written before issue 8 remembered some of them as refusals;
#: they say nothing about the vendor's bytes, so such rows no longer block (see is_remembered).
_TRANSPORT_ONLY_CODES = frozenset(['download_too_long', 'download_truncated', 'connection_failed', 'http_status', 'tls_failed',
                                   'proxy_failed', 'proxy_invalid', 'proxy_auth_failed', 'proxy_auth_required', 'proxy_auth_unsupported',
                                   'proxy_ntlm_unsupported', 'proxy_tunnel_407', 'transport_failed', 'missing_library'])
#: The transport's digest_mismatch (against the catalog) shares its code with the package's own (against ExUpHash.xml).
_CATALOG_DIGEST_WORDS = 'the SHA-256 the catalog states'

# Results of 003 Table 14 (add) and Table 16 (delete).
ADDED = 'added'
ADD_ERROR_BAD_HASH = 'error_invalid_package'
ADD_WARN_NOT_NEEDED = 'warning_not_needed'
ADD_WARN_PRESENT = 'warning_already_present'
DELETED = 'deleted'
DELETE_ERROR_IN_USE = 'error_in_use_by_other_manager'
DELETE_ERROR_MISSING = 'error_not_found'


#: the repository's settings: name -> (allowed values, default). 003 §3.3 step 5: the initial status icon.
SETTINGS = {'initial_manual_icon': (MANUAL_ICONS, DEFAULT_MANUAL_ICON)}
#: a server name or module id longer than this is no name (hostile input)
NAME_LIMIT = 255


def settings_problem(wanted):
    """Why ``wanted`` (setting -> value) cannot be applied, or None."""
    if not isinstance(wanted, dict) or not wanted:
        return 'give at least one setting: %s' % ', '.join(sorted(SETTINGS))
    for key, value in wanted.items():
        if key not in SETTINGS:
            return 'unknown setting %r: the settings are %s' % (str(key)[:NAME_LIMIT], ', '.join(sorted(SETTINGS)))
        if value not in SETTINGS[key][0]:
            return 'setting %s must be one of %s, not %r' % (key, ', '.join(SETTINGS[key][0]), str(value)[:NAME_LIMIT])
    return None


def icon_problem(server, module_ids, icon):
    """(msg, code) when an icon change is refused, or None."""
    if not isinstance(server, str) or not server.strip() or len(server) > NAME_LIMIT or not server.isprintable():
        return 'server_name must be a printable name of 1 to %d characters' % NAME_LIMIT, 'server_invalid'
    if not module_ids:
        return 'name the modules whose status icon to set', 'modules_required'
    unknown = sorted(str(module_id)[:NAME_LIMIT] for module_id in module_ids if module_id not in MODULE_KINDS)
    if unknown:
        return 'unknown module %s: the modules are %s' % (', '.join(unknown), ', '.join(sorted(MODULE_KINDS))), 'unknown_module'
    if icon not in MANUAL_ICONS:
        return 'icon must be one of %s, not %r' % (', '.join(MANUAL_ICONS), str(icon)[:NAME_LIMIT]), 'icon_invalid'
    return None


def _rows(conn, query, args=()):
    """Rows of a table that a store written by older code may lack (a reader never creates it): none then."""
    try:
        return conn.execute(query, args).fetchall()
    except sqlite3.OperationalError as exc:
        if 'no such table' in str(exc):
            return []
        raise


def server_from_dict(manager_id, data):
    """Validate one managed server given by a manager (module option ``servers``)."""
    if not isinstance(data, dict):
        raise ExupError('each server must be a dict with name, model and os', code='server_invalid')
    for key in ('name', 'model', 'os'):
        if not isinstance(data.get(key), str) or not data.get(key):
            raise ExupError('server %r has no %s' % (data.get('name'), key), code='server_invalid')
    modules = data.get('modules') or {}
    if not isinstance(modules, dict):
        raise ExupError('server %s: modules must map a module id to {current, previous}' % data['name'], code='server_invalid')
    clean = {}
    for module_id, state in modules.items():
        if isinstance(state, str):
            state = {'current': state}
        if not isinstance(state, dict):
            raise ExupError('server %s: module %s must be a version or {current, previous}' % (data['name'], module_id), code='server_invalid')
        clean[str(module_id)] = {key: str(state[key]) for key in ('current', 'previous') if state.get(key)}
    return Server(manager_id=manager_id, name=data['name'], model=data['model'], os=data['os'], modules=clean)


class Repository:
    """One repository store and its rules."""

    def __init__(self, root, clock=utc_now):
        self.store = Store(root)
        self.clock = clock

    def now_text(self):
        return format_time(self.clock())

    # ----------------------------------------------------------------- reading
    def read(self):
        return self.store.reader()

    # ----------------------------------------------------------------- interface.RepositoryApi: conn-less operations
    def exists(self) -> bool:
        return self.store.exists

    def readable(self) -> bool:
        return self.store.exists and os.access(self.store.db_path, os.R_OK)

    def packages(self, module_id: Optional[str] = None) -> List[StoredPackage]:
        with contextlib.closing(self.read()) as conn:
            rows = self.stored_packages(conn)
        return [self._stored_package(rows[package_id]) for package_id in sorted(rows)
                if module_id is None or rows[package_id]['info'].module_id == module_id]

    def packages_for(self, model: str, os_name: str, trusted_key_ids: Optional[Iterable[str]] = None) -> List[StoredPackage]:
        trusted = None if trusted_key_ids is None else set(trusted_key_ids)
        return [package for package in self.packages()
                if package.info.targets(model, os_name) and (trusted is None or package.key_id in trusted)]

    def deleted_packages(self) -> List[Tombstone]:
        with contextlib.closing(self.read()) as conn:
            rows = self.tombstones(conn)
        return [tombstone_from_row(rows[package_id]) for package_id in sorted(rows)]

    def record_server(self, manager_id: str, server: Server) -> bool:
        with self.store.writer() as conn:
            return self.register_server(conn, manager_id, server)

    def forget_server(self, manager_id: str, name: str, cause: Optional[str] = None) -> bool:
        with self.store.writer() as conn:
            return self.unregister_server(conn, manager_id, name, cause)

    def server_record_differs(self, manager_id: str, server: Server) -> bool:
        with contextlib.closing(self.read()) as conn:
            return self.server_differs(conn, manager_id, server)

    def bmc_module_records(self, manager_id: str, server: str) -> Dict[str, BmcModuleRecord]:
        with contextlib.closing(self.read()) as conn:
            rows = self.bmc_modules(conn, manager_id, server)
        return {module_id: BmcModuleRecord(module_id, **row) for module_id, row in rows.items()}

    def status_icons(self, manager_id: str, server: str, infos: Iterable[PackageInfo], kinds=('linux',)) -> Dict[str, str]:
        with contextlib.closing(self.read()) as conn:
            return self.manual_icons(conn, manager_id, server, infos, kinds)

    def job_reported(self, job_id: str) -> bool:
        pattern = '%%"job_id": "%s"%%' % job_id
        with contextlib.closing(self.read()) as conn:
            return _rows(conn, "SELECT 1 FROM events WHERE detail LIKE ? AND code NOT LIKE '%\\_started' ESCAPE '\\' LIMIT 1", (pattern,)) != []

    def _stored_package(self, row):
        return StoredPackage(info=row['info'], sha256=row['sha256'], size=row['size'], path=self.store.pool_path(row['sha256']),
                             key_id=row['key_id'], source=row['source'], pinned=row['pinned'], added_at=row['added_at'])

    @staticmethod
    def stored_packages(conn):
        """package_id -> row dict with ``info`` decoded into a PackageInfo."""
        result = {}
        for row in conn.execute('SELECT * FROM packages'):
            item = dict(row)
            item['info'] = PackageInfo.from_dict(json.loads(item['info']))
            item['pinned'] = bool(item['pinned'])
            item['compatible'] = bool(item['compatible'])
            result[item['package_id']] = item
        return result

    @staticmethod
    def feed_entries(conn):
        result = {}
        for row in conn.execute('SELECT entry FROM feed_entries'):
            data = json.loads(row[0])
            data['models'], data['os'] = tuple(data['models']), tuple(data['os'])
            result[data['package_id']] = CatalogEntry(**data)
        return result

    @staticmethod
    def tombstones(conn):
        result = {}
        for row in conn.execute('SELECT * FROM tombstones'):
            item = dict(row)
            item['models'], item['os'] = json.loads(item['models']), json.loads(item['os'])
            result[item['package_id']] = item
        return result

    @staticmethod
    def feed_state(conn):
        return {row[0]: row[1] for row in conn.execute('SELECT key, value FROM feed_state')}

    # ----------------------------------------------------------------- refusals (issue 8: one bad answer never blocks for good)
    @staticmethod
    def refusals(conn):
        """package_id -> the remembered refusal (sha256, code, reason, refused_at) that a sync honours."""
        rows = (dict(row) for row in conn.execute('SELECT * FROM refusals ORDER BY package_id'))
        return {row['package_id']: row for row in rows if is_remembered(row)}

    def remember_refusal(self, conn, package_id, sha256, error):
        """Remember that the bytes ``sha256`` of ``package_id`` failed the package's own checks (sync.BytesRefused)."""
        conn.execute('INSERT OR REPLACE INTO refusals (package_id, sha256, code, reason, refused_at) VALUES (?, ?, ?, ?, ?)',
                     (package_id, sha256, error.code, error.msg, self.now_text()))

    @staticmethod
    def forget_refusal(conn, package_id):
        conn.execute('DELETE FROM refusals WHERE package_id = ?', (package_id,))

    def clear_refusals(self, package_ids=None, check_mode=False):
        """Forget remembered refusals (all, or of ``package_ids``) so the next sync tries them again; returns those cleared."""
        with self.store.writer() if not check_mode else ReadOnlyConnection(self.store) as conn:
            cleared = [row for package_id, row in self.refusals(conn).items() if package_ids is None or package_id in package_ids]
            if cleared and not check_mode:
                conn.execute('BEGIN IMMEDIATE')
                conn.executemany('DELETE FROM refusals WHERE package_id = ?', [(row['package_id'],) for row in cleared])
                self.record(conn, 'refusals_cleared', package_ids=[row['package_id'] for row in cleared])
                conn.execute('COMMIT')
        return cleared

    def active_servers(self, conn, override=None):
        """Servers of managers seen within the presence lifetime.

        ``override`` (manager_id, [Server]) replaces one manager's servers, for
        check mode and for the manager registering in this very run.
        """
        cutoff = format_time(self.clock() - PRESENCE_LIFETIME)
        active = {row[0] for row in conn.execute('SELECT manager_id FROM managers WHERE last_seen >= ?', (cutoff,))}
        servers = []
        for row in conn.execute('SELECT * FROM servers'):
            if row['manager_id'] in active and not (override and row['manager_id'] == override[0]):
                servers.append(Server(manager_id=row['manager_id'], name=row['name'], model=row['model'], os=row['os'],
                                      modules=json.loads(row['modules'])))
        if override:
            servers.extend(override[1])
        return servers

    @staticmethod
    def candidates(stored, feed, extra=(), tombstones=None):
        """Every package the repository knows: store, feed, deletion history and ``extra`` PackageInfos.

        Deleted packages keep their rank (see generations.py), so their targets are kept in the tombstone.
        """
        seen = {}
        for item in (tombstones or {}).values():
            if item['models']:
                seen[item['package_id']] = Candidate(item['package_id'], item['module_id'], item['version'], tuple(item['models']), tuple(item['os']))
        for entry in feed.values():
            seen[entry.package_id] = Candidate(entry.package_id, entry.module_id, entry.version, tuple(entry.models), tuple(entry.os))
        for item in list(stored.values()) + [{'info': info} for info in extra]:
            info = item['info']
            seen[info.package_id] = Candidate(info.package_id, info.module_id, info.version, tuple(info.models), tuple(info.os))
        return list(seen.values())

    def plan(self, conn, override=None, extra=(), feed_overlay=None, feed_replace=False):
        """Generation plan for the current state; returns (plan, stored, feed, servers).

        ``override`` replaces one manager's servers, ``extra`` adds PackageInfos and
        ``feed_overlay`` adds catalog entries (replaces them all with ``feed_replace``):
        check mode sees the outcome without writing.
        """
        stored, feed = self.stored_packages(conn), self.feed_entries(conn)
        if feed_overlay is not None:
            feed = dict(feed_overlay) if feed_replace else {**feed, **feed_overlay}
        servers = self.active_servers(conn, override)
        return generation_plan(self.candidates(stored, feed, extra, self.tombstones(conn)), servers), stored, feed, servers

    # ----------------------------------------------------------------- writing helpers
    def record(self, conn, code, cause=None, **detail):
        return ev.record(conn, self.now_text(), ev.event(code, cause, **detail))

    def register_manager(self, conn, manager_id, servers):
        """Record presence and the servers a manager manages (its needs); forget expired managers."""
        now = self.now_text()
        conn.execute('BEGIN IMMEDIATE')
        conn.execute('INSERT INTO managers (manager_id, last_seen) VALUES (?, ?) ON CONFLICT(manager_id) DO UPDATE SET last_seen = excluded.last_seen',
                     (manager_id, now))
        if servers is not None:
            rows = sorted((manager_id, s.name, s.model, s.os, json.dumps(s.modules, sort_keys=True)) for s in servers)
            query = 'SELECT manager_id, name, model, os, modules FROM servers WHERE manager_id = ?'
            before = sorted(tuple(row) for row in conn.execute(query, (manager_id,)))
            if rows != before:
                conn.execute('DELETE FROM servers WHERE manager_id = ?', (manager_id,))
                conn.executemany('INSERT INTO servers (manager_id, name, model, os, modules) VALUES (?, ?, ?, ?, ?)', rows)
                self.record(conn, 'manager_registered', manager_id=manager_id, servers=len(rows))
        cutoff = format_time(self.clock() - PRESENCE_LIFETIME)
        expired = [row[0] for row in conn.execute('SELECT manager_id FROM managers WHERE last_seen < ?', (cutoff,))]
        for old in expired:
            conn.execute('DELETE FROM servers WHERE manager_id = ?', (old,))
            conn.execute('DELETE FROM managers WHERE manager_id = ?', (old,))
            self.record(conn, 'manager_expired', manager_id=old)
        conn.execute('COMMIT')
        return expired

    def register_server(self, conn, manager_id, server):
        """Record one server of a manager (presence too), leaving its other servers as they are."""
        conn.execute('BEGIN IMMEDIATE')
        conn.execute('INSERT INTO managers (manager_id, last_seen) VALUES (?, ?) ON CONFLICT(manager_id) DO UPDATE SET last_seen = excluded.last_seen',
                     (manager_id, self.now_text()))
        row = (manager_id, server.name, server.model, server.os, json.dumps(server.modules, sort_keys=True))
        before = conn.execute('SELECT manager_id, name, model, os, modules FROM servers WHERE manager_id = ? AND name = ?',
                              (manager_id, server.name)).fetchone()
        changed = before is None or tuple(before) != row
        if changed:
            conn.execute('INSERT OR REPLACE INTO servers (manager_id, name, model, os, modules) VALUES (?, ?, ?, ?, ?)', row)
            self.record(conn, 'server_registered', server=server.name, manager_id=manager_id, model=server.model, os=server.os)
        conn.execute('COMMIT')
        return changed

    def unregister_server(self, conn, manager_id, name, cause=None):
        """Forget a server whose agent was removed (003 §3.9: agent management of it ends)."""
        conn.execute('BEGIN IMMEDIATE')
        gone = conn.execute('DELETE FROM servers WHERE manager_id = ? AND name = ?', (manager_id, name)).rowcount
        if gone:
            self.record(conn, 'server_unregistered', cause, server=name, manager_id=manager_id)
        conn.execute('COMMIT')
        return bool(gone)

    @staticmethod
    def bmc_modules(conn, manager_id, server):
        """What the repository remembers of a server managed through its BMC (there is no agent to keep it):
        module_id -> {previous, block, staged, since}."""
        query = 'SELECT module_id, previous, block, staged, since FROM bmc_modules WHERE manager_id = ? AND server = ?'
        return {row[0]: {'previous': row[1], 'block': row[2], 'staged': row[3], 'since': row[4]} for row in conn.execute(query, (manager_id, server))}

    def set_bmc_module(self, manager_id, server, module_id, **fields):
        """Update one module's record (previous generation, block until reset, staged version) in its own transaction."""
        with self.store.writer() as conn:
            conn.execute('BEGIN IMMEDIATE')
            record = self.bmc_modules(conn, manager_id, server).get(module_id, {'previous': None, 'block': None, 'staged': None})
            record.update(fields)
            conn.execute('INSERT OR REPLACE INTO bmc_modules (manager_id, server, module_id, previous, block, staged, since) '
                         'VALUES (?, ?, ?, ?, ?, ?, ?)',
                         (manager_id, server, module_id, record.get('previous'), record.get('block'), record.get('staged'), self.now_text()))
            conn.execute('COMMIT')

    # ----------------------------------------------------------------- settings and statuses (003 §3.3 step 5, Tables 8-9)
    @staticmethod
    def settings(conn, at=None):
        """Setting name -> value, as it was at time ``at`` (UTC text; default now): settings keep their history."""
        values = {name: default for name, (_choices, default) in SETTINGS.items()}
        query = 'SELECT key, value FROM settings' + (' WHERE changed_at <= ?' if at else '') + ' ORDER BY id'
        for key, value in _rows(conn, query, (at,) if at else ()):
            if key in values:
                values[key] = value
        return values

    def read_settings(self, check_mode=False):
        """The repository's settings; reading them leaves settings_read (003 Table 18), not in check mode."""
        with self.read() as conn:
            values = self.settings(conn)
        if not check_mode:
            self.log_events([ev.event('settings_read', settings=sorted(values))])
        return values

    def change_settings(self, wanted, check_mode=False):
        """Change settings; returns (before, after). A bad name or value changes nothing and logs settings_change_failed."""
        problem = settings_problem(wanted)
        if problem:
            if not check_mode and self.store.exists:
                self.log_events([ev.event('settings_change_failed', problem, settings=sorted(str(key) for key in wanted))])
            raise RepositoryError(problem, code='setting_invalid')
        with self.store.writer() if not check_mode else ReadOnlyConnection(self.store) as conn:
            before = self.settings(conn)
            after = dict(before, **wanted)
            changes = {key: value for key, value in wanted.items() if before[key] != value}
            if changes and not check_mode:
                conn.execute('BEGIN IMMEDIATE')
                now = self.now_text()
                conn.executemany('INSERT INTO settings (key, value, changed_at) VALUES (?, ?, ?)', [(k, v, now) for k, v in sorted(changes.items())])
                self.record(conn, 'settings_changed', before={k: before[k] for k in changes}, after=changes)
                conn.execute('COMMIT')
        return before, after

    @staticmethod
    def chosen_icons(conn, manager_id, server):
        """module_id -> (icon, set_at) the operator chose for one server (003 Table 9)."""
        query = 'SELECT module_id, icon, set_at FROM manual_icons WHERE manager_id = ? AND server = ?'
        return {row[0]: (row[1], row[2]) for row in _rows(conn, query, (manager_id, server))}

    def manual_icons(self, conn, manager_id, server, infos, kinds=('linux',)):
        """module_id -> the Table 9 icon of each module that has packages of the server not auto-update on this path."""
        added = {row[0]: row[1] for row in _rows(conn, 'SELECT package_id, added_at FROM packages')}
        chosen = self.chosen_icons(conn, manager_id, server)
        arrivals = {}
        for info in infos:
            if info.compatible and not (info.auto_update and info.kind in kinds) and info.package_id in added:
                arrivals[info.module_id] = max(arrivals.get(info.module_id, ''), added[info.package_id])
        return {module_id: choose_manual_icon(chosen.get(module_id), arrived, self.settings(conn, arrived)['initial_manual_icon'])
                for module_id, arrived in arrivals.items()}

    def set_manual_icons(self, manager_id, server, module_ids, icon, check_mode=False):
        """Set the Table 9 icon of modules of one server; each change leaves status_changed. Returns [{module_id, before, after}]."""
        problem = icon_problem(server, module_ids, icon)
        if problem:
            if not check_mode and self.store.exists:
                self.log_events([ev.event('status_change_failed', problem[0], server=str(server), error=problem[1])])
            raise RepositoryError(problem[0], code=problem[1])
        rows = []
        with self.store.writer() if not check_mode else ReadOnlyConnection(self.store) as conn:
            chosen = self.chosen_icons(conn, manager_id, server)
            rows = [{'module_id': module_id, 'before': (chosen.get(module_id) or (None,))[0], 'after': icon} for module_id in sorted(set(module_ids))]
            changes = [row for row in rows if row['before'] != icon]
            if changes and not check_mode:
                now = self.now_text()
                conn.execute('BEGIN IMMEDIATE')
                for row in changes:
                    conn.execute('INSERT OR REPLACE INTO manual_icons (manager_id, server, module_id, icon, set_at) VALUES (?, ?, ?, ?, ?)',
                                 (manager_id, server, row['module_id'], icon, now))
                    self.record(conn, 'status_changed', server=server, manager_id=manager_id, module=row['module_id'], before=row['before'], after=icon)
                conn.execute('COMMIT')
        return rows

    @staticmethod
    def server_differs(conn, manager_id, server):
        """True when registering ``server`` would change the repository's record of it (check mode of exup_info)."""
        row = (manager_id, server.name, server.model, server.os, json.dumps(server.modules, sort_keys=True))
        before = conn.execute('SELECT manager_id, name, model, os, modules FROM servers WHERE manager_id = ? AND name = ?',
                              (manager_id, server.name)).fetchone()
        return before is None or tuple(before) != row

    def request_reboot(self, manager_id, server, modules, boot_id=None, seconds=3600):
        """Record a restart exup allowed or did (Table 8 "rebooting") until ``seconds`` from now at most."""
        now = self.clock()
        with self.store.writer() as conn:
            conn.execute('BEGIN IMMEDIATE')
            conn.execute('INSERT OR REPLACE INTO reboots (manager_id, server, boot_id, modules, requested_at, deadline) VALUES (?, ?, ?, ?, ?, ?)',
                         (manager_id, server, boot_id, json.dumps(sorted(modules)), format_time(now),
                          format_time(now + datetime.timedelta(seconds=seconds))))
            conn.execute('COMMIT')

    def restarting(self, manager_id, server, boot_id=None, power=None):
        """The modules a restart under way is for (Table 8 "rebooting"), or [] when none is."""
        with self.read() as conn:
            rows = _rows(conn, 'SELECT boot_id, modules, deadline FROM reboots WHERE manager_id = ? AND server = ?', (manager_id, server))
        if not rows:
            return []
        request = {'boot_id': rows[0][0], 'modules': json.loads(rows[0][1]), 'deadline': rows[0][2]}
        return request['modules'] if rebooting(request, boot_id, power, self.now_text()) else []

    def log_events(self, items):
        """Write events (dicts of events.event) in one transaction; returns them with their time."""
        with self.store.writer() as conn:
            conn.execute('BEGIN IMMEDIATE')
            written = [ev.record(conn, self.now_text(), item) for item in items]
            conn.execute('COMMIT')
        return written

    def server_packages(self, conn, model, os_name):
        """Stored packages for a server's model and OS: [(PackageInfo, sha256, size, pool path)], compatible or not."""
        result = []
        for item in self.stored_packages(conn).values():
            if item['info'].targets(model, os_name):
                result.append((item['info'], item['sha256'], item['size'], self.store.pool_path(item['sha256'])))
        return result

    def index_package(self, conn, verified, digest, size, source, pinned=False):
        """Insert the row of a verified file already in the pool (its own transaction)."""
        info = verified.info
        conn.execute('BEGIN IMMEDIATE')
        conn.execute('INSERT OR REPLACE INTO packages (package_id, sha256, size, module_id, version, info, key_id, source, pinned, compatible, added_at) '
                     'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                     (info.package_id, digest, size, info.module_id, info.version, json.dumps(info.as_dict(), sort_keys=True), verified.key_id,
                      source, int(pinned), int(info.compatible), self.now_text()))
        conn.execute('COMMIT')

    def remove_package(self, conn, package_id, digest, tombstone=None, event=None):
        """Delete the row (with an optional tombstone and event) and commit, then unlink the file.

        A crash between the two leaves an orphan file, which ``collect_garbage``
        removes; never a row whose file is gone.
        """
        conn.execute('BEGIN IMMEDIATE')
        conn.execute('DELETE FROM packages WHERE package_id = ?', (package_id,))
        if tombstone:
            conn.execute('INSERT OR REPLACE INTO tombstones (package_id, module_id, version, sha256, deleted_at, deleted_by, forced, models, os) '
                         'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', tombstone)
        if event:
            self.record(conn, *event[:1], **event[1])
        others = conn.execute('SELECT COUNT(*) FROM packages WHERE sha256 = ?', (digest,)).fetchone()[0]
        conn.execute('COMMIT')
        if not others:
            try:
                os.unlink(self.store.pool_path(digest))
            except FileNotFoundError:
                pass

    def prune(self, conn, plan, stored, check_mode=False):
        """Apply generation management: remove stored packages outside the keep set (pinned stay)."""
        keep = plan.kept(stored)
        removed = []
        for package_id, item in sorted(stored.items()):
            if item['pinned'] or package_id in keep:
                continue
            removed.append({'package_id': package_id, 'module_id': item['module_id'], 'version': item['version']})
            if not check_mode:
                self.remove_package(conn, package_id, item['sha256'],
                                    event=('package_removed', {'package_id': package_id, 'version': item['version']}))
        return removed

    # ----------------------------------------------------------------- manual add (003 §2.2.3, Tables 13-14)
    def add_files(self, paths, keyring, mode='needed', check_mode=False):
        """Add package files. ``mode`` is 'needed' (subject to generations) or 'pinned' (kept until deleted)."""
        if mode not in ('needed', 'pinned'):
            raise ExupError('mode must be needed or pinned, not %r' % mode, code='argument_invalid')
        results = []
        with self.store.writer() if not check_mode else ReadOnlyConnection(self.store) as conn:
            # Verify every file first, then decide over the whole batch (003 Table 13: "from the list
            # given, only what generation management needs"): otherwise the order of the files would
            # let an old version in ahead of the newer ones that push it out of the window.
            checked = [(path, self._verify_for_add(conn, path, keyring, check_mode)) for path in paths]
            batch = [item.info for _path, item in checked if not isinstance(item, dict)]
            plan = self.plan(conn, extra=batch)[0] if mode == 'needed' else None
            done = set()  # package ids added (in check mode: that would be) by this call
            for path, item in checked:
                results.append(item if isinstance(item, dict) else self._add_one(conn, path, item, keyring, plan, batch, done, mode, check_mode))
        return results

    def _verify_for_add(self, conn, path, keyring, check_mode):
        """The VerifiedPackage of ``path``, or the Table 14 error result when it is invalid."""
        try:
            return verify_package(path, keyring)
        except PackageError as exc:
            if not check_mode:
                self.record(conn, 'package_add_failed', exc.msg, file=os.path.basename(path), error=exc.code)
            return {'file': os.path.basename(path), 'result': ADD_ERROR_BAD_HASH, 'msg': 'The update package is invalid: %s' % exc.msg, 'error': exc.code}

    def _add_one(self, conn, path, verified, keyring, plan, batch, done, mode, check_mode):
        name = os.path.basename(path)
        info = verified.info
        base = {'file': name, 'package_id': info.package_id, 'module_id': info.module_id, 'version': info.version}
        stored = self.stored_packages(conn)
        if info.package_id in stored or info.package_id in done:
            return dict(base, result=ADD_WARN_PRESENT, msg='The same update package is already in the repository.')
        if plan is not None and info.package_id not in plan.kept(set(stored) | {item.package_id for item in batch}):
            return dict(base, result=ADD_WARN_NOT_NEEDED,
                        msg='No managed server can use this package, or generation management would remove it at once; it was not added.')
        done.add(info.package_id)
        if check_mode:
            return dict(base, result=ADDED, msg='The package would be added.', pinned=mode == 'pinned')
        # What enters the pool is the copy, verified again: the source could change after the first check.
        fd, tmp = tempfile.mkstemp(dir=self.store.tmp_dir, suffix='.add')
        os.close(fd)
        shutil.copyfile(path, tmp)
        try:
            copy = verify_package(tmp, keyring)
        except PackageError as exc:
            os.unlink(tmp)
            raise RepositoryError('%s changed while it was being added: %s' % (name, exc.msg), code='package_changed')
        if copy.info != info:
            os.unlink(tmp)
            raise RepositoryError('%s changed while it was being added' % name, code='package_changed')
        digest = file_digest(tmp)[1]
        self.store.install(tmp, digest)
        self.index_package(conn, copy, digest, os.path.getsize(self.store.pool_path(digest)), source='manual', pinned=mode == 'pinned')
        self.record(conn, 'package_added', package_id=info.package_id, version=info.version, mode=mode)
        return dict(base, result=ADDED, msg='The update package was added.', pinned=mode == 'pinned', sha256=digest)

    # ----------------------------------------------------------------- delete (003 §2.2.4, Tables 15-16)
    def delete(self, package_ids, manager_id, force=False, check_mode=False):
        results = []
        with self.store.writer() if not check_mode else ReadOnlyConnection(self.store) as conn:
            plan, stored = self.plan(conn)[:2]
            for package_id in package_ids:
                item = stored.get(package_id)
                if item is None:
                    if not check_mode:
                        self.record(conn, 'package_delete_failed', 'no such package', package_id=package_id)
                    results.append({'package_id': package_id, 'result': DELETE_ERROR_MISSING, 'msg': 'The specified update package does not exist.'})
                    continue
                if not force and plan.used_by_other_manager(package_id, manager_id):
                    others = sorted(plan.needed_by[package_id] - {manager_id})
                    if not check_mode:
                        self.record(conn, 'package_delete_failed', 'in use by another manager', package_id=package_id, managers=others)
                    results.append({'package_id': package_id, 'result': DELETE_ERROR_IN_USE, 'managers': others,
                                    'msg': 'Another manager (%s) uses this package; delete it with force to remove it anyway.' % ', '.join(others)})
                    continue
                if not check_mode:
                    tombstone = (package_id, item['module_id'], item['version'], item['sha256'], self.now_text(), manager_id, int(force),
                                 json.dumps(item['info'].models), json.dumps(item['info'].os))
                    self.remove_package(conn, package_id, item['sha256'], tombstone=tombstone,
                                        event=('package_deleted', {'package_id': package_id, 'version': item['version'], 'forced': force}))
                results.append({'package_id': package_id, 'result': DELETED, 'msg': 'The update package was deleted.', 'forced': force})
        return results

    def clear_tombstones(self, check_mode=False):
        """Clear the whole deletion history at once (003 §2.2.5); returns the ids cleared."""
        with self.store.writer() if not check_mode else ReadOnlyConnection(self.store) as conn:
            cleared = sorted(self.tombstones(conn))
            if cleared and not check_mode:
                conn.execute('BEGIN IMMEDIATE')
                conn.execute('DELETE FROM tombstones')
                self.record(conn, 'deletion_history_cleared', count=len(cleared))
                conn.execute('COMMIT')
        return cleared

    # ----------------------------------------------------------------- save (003 §2.2.6)
    def export(self, dest, package_ids=None, module_ids=None, models=None, displayed_only=True, check_mode=False):
        """Save packages as one zip archive: packages/, index.html, css/ (003 Fig. 27).

        Selection by package ids, or by modules (optionally limited to target
        models); with ``displayed_only`` a module selection saves only its newest
        version, otherwise every version.
        """
        with self.read() as conn:
            stored = self.stored_packages(conn)
        selected = select_for_export(stored, package_ids, module_ids, models, displayed_only)
        if not selected:
            raise RepositoryError('no package in the repository matches the selection to save', code='nothing_to_save')
        missing = sorted(set(package_ids or ()) - set(stored))
        if missing:
            raise RepositoryError('no such package in the repository: %s' % ', '.join(missing), code='package_not_found')
        for item in selected:  # an index from before ids were checked for every schema version (packages/<id>.zip)
            if not is_id(item['package_id']):
                raise RepositoryError('package %s in the index has an id that is not %s: it cannot be saved (delete it)'
                                      % (ascii(item['package_id'])[:100], ID_RULE), code='package_id_invalid')
        summary = [{'package_id': item['package_id'], 'module_id': item['module_id'], 'version': item['version'],
                    'file': 'packages/%s.zip' % item['package_id']} for item in selected]
        if check_mode:
            return summary
        tmp = dest + '.tmp'
        try:
            self.write_archive(tmp, selected)
            os.replace(tmp, dest)
        except (KeyboardInterrupt, SystemExit):
            self.cancel_archive(tmp, dest)
            raise
        except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure midway: no partial archive, a clean code
            cause = getattr(exc, 'strerror', None) or str(exc) or type(exc).__name__
            discard_file(tmp)
            with self.store.writer() as conn:
                self.record(conn, 'archive_save_failed', cause, path=dest)
            raise RepositoryError('cannot save the archive %s: %s' % (dest, cause), code='archive_save_failed') from None
        with self.store.writer() as conn:
            self.record(conn, 'archive_saved', path=dest, packages=[item['package_id'] for item in selected])
        return summary

    def write_archive(self, path, selected):
        with zipfile.ZipFile(path, 'w', allowZip64=True) as archive:
            for item in selected:
                archive.write(self.store.pool_path(item['sha256']), 'packages/%s.zip' % item['package_id'], compress_type=zipfile.ZIP_STORED)
            archive.writestr('index.html', render_index_html(selected, self.now_text()), compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr('css/exup.css', INDEX_CSS, compress_type=zipfile.ZIP_DEFLATED)

    def cancel_archive(self, tmp, dest):
        """A save stopped midway (Ctrl-C, a stop): remove the partial archive and log it (003 Tables 18-19)."""
        problem = discard_file(tmp)
        code = 'archive_cancel_failed' if problem else 'archive_cancelled'
        try:
            with self.store.writer() as conn:
                self.record(conn, code, problem, path=dest)
        except (ExupError, OSError):
            pass  # the interrupt goes on; a busy or unwritable log must not replace it

    # ----------------------------------------------------------------- listing (003 Fig. 10-11, Table 20)
    def listing(self, manager_id, event_limit=100, module_ids=None, models=None):
        """Packages with their flags, by component and by model, plus tombstones, events, managers, feed state.

        ``module_ids`` and ``models`` narrow the packages listed.
        """
        with self.read() as conn:
            plan, stored, feed, servers = self.plan(conn)
            tombstones = self.tombstones(conn)
            refusals = list(self.refusals(conn).values())
            state = self.feed_state(conn)
            event_rows = conn.execute('SELECT * FROM events ORDER BY id DESC LIMIT ?', (event_limit,)).fetchall()
            managers = [dict(row) for row in conn.execute('SELECT * FROM managers ORDER BY manager_id')]
        packages = []
        for package_id, item in sorted(stored.items()):
            info = item['info']
            if (module_ids and info.module_id not in module_ids) or (models and not set(models) & set(info.models)):
                continue
            packages.append({
                'package_id': package_id, 'module_id': info.module_id, 'module_name': info.module_name, 'version': info.version,
                'release_date': info.release_date, 'models': info.models, 'os': info.os, 'kind': info.kind, 'size': item['size'],
                'sha256': item['sha256'], 'severity': info.severity, 'source': item['source'],
                'auto_update': info.auto_update, 'downgrade_supported': info.downgrade_supported, 'multi_model': info.multi_model,
                'reboot_required': info.reboot_required, 'uninstall_supported': info.uninstall_supported,
                'used_by_other_manager': plan.used_by_other_manager(package_id, manager_id), 'pinned': item['pinned'],
                'generation': plan.generation.get(package_id), 'previous_generation_only': package_id in plan.previous,
                'compatible': item['compatible'], 'key_id': item['key_id'],
            })
        by_component, by_model = {}, {}
        for package in packages:
            by_component.setdefault(package['module_id'], []).append(package['package_id'])
            for model in package['models']:
                if models and model not in models:
                    continue
                by_model.setdefault(model, {}).setdefault(package['module_id'], []).append(package['package_id'])
        order = {package['package_id']: version_key(package['version']) for package in packages}
        for ids in list(by_component.values()) + [ids for modules in by_model.values() for ids in modules.values()]:
            ids.sort(key=lambda package_id: order[package_id], reverse=True)
        events_out = [dict(row, detail=json.loads(row['detail'])) for row in event_rows]
        return {'packages': packages, 'by_component': by_component, 'by_model': by_model,
                'tombstones': sorted(tombstones.values(), key=lambda t: t['package_id']), 'refusals': refusals,
                'events': events_out, 'managers': managers, 'servers': len(servers), 'feed_entries': len(feed),
                'feed': {key: state[key] for key in ('feed_url', 'catalog_version', 'last_access', 'catalog_expires', 'feed_id') if key in state}}


def tombstone_from_row(row):
    return Tombstone(package_id=row['package_id'], module_id=row['module_id'], version=row['version'], sha256=row['sha256'],
                     deleted_at=row['deleted_at'], deleted_by=row['deleted_by'], forced=bool(row['forced']),
                     models=tuple(row['models']), os=tuple(row['os']))


def is_remembered(row):
    """A refusal row blocks downloads only when it is about the package's own bytes, not a failed download."""
    return row['code'] not in _TRANSPORT_ONLY_CODES and not (row['code'] == 'digest_mismatch' and _CATALOG_DIGEST_WORDS in row['reason'])


class ReadOnlyConnection:
    """Context manager giving a read connection, for check mode (never creates the store)."""

    def __init__(self, store):
        self.conn = store.reader()

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()
        return False


def select_for_export(stored, package_ids, module_ids, models, displayed_only):
    if package_ids:
        return [stored[package_id] for package_id in sorted(package_ids) if package_id in stored]
    chosen = [item for item in stored.values()
              if (not module_ids or item['module_id'] in module_ids) and (not models or set(models) & set(item['info'].models))]
    if displayed_only:
        shown = displayed_packages([item['info'] for item in chosen], models)
        chosen = [item for item in chosen if item['package_id'] in shown]
    return sorted(chosen, key=lambda item: (item['module_id'], version_key(item['version'])))


INDEX_CSS = """body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #999; padding: 0.3em 0.6em; text-align: left; }
th { background: #eee; }
"""


def discard_file(path):
    """Remove ``path`` if it is there; None when gone, else why it could not be removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def render_index_html(selected, saved_at):
    rows = []
    for item in selected:
        info = item['info']
        rows.append('<tr><td><a href="packages/{pid}.zip">{pid}</a></td><td>{module}</td><td>{version}</td><td>{date}</td>'
                    '<td>{models}</td><td>{os}</td><td>{kind}</td><td>{auto}</td><td>{sha}</td></tr>'.format(
                        pid=html.escape(item['package_id']), module=html.escape(info.module_name), version=html.escape(info.version),
                        date=html.escape(info.release_date), models=html.escape(', '.join(info.models)), os=html.escape(', '.join(info.os)),
                        kind=html.escape(info.kind), auto='yes' if info.auto_update else 'no (apply by hand)', sha=item['sha256']))
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Update package archive</title>'
            '<link rel="stylesheet" href="css/exup.css"></head><body>\n<h1>Update package archive</h1>\n<p>Saved %s.</p>\n'
            '<table><tr><th>Package</th><th>Component</th><th>Version</th><th>Release date</th><th>Models</th><th>OS</th>'
            '<th>Kind</th><th>Auto-update</th><th>SHA-256</th></tr>\n%s\n</table></body></html>\n') % (html.escape(saved_at), '\n'.join(rows))
