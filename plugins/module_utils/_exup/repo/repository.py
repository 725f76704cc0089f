# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository operations (003 §2.2): needs of managers, add, delete, deletion history, save, listing.

Every write happens under the store's writer lock and leaves an event. A change
of state (rows and the event that tells of it) is one transaction. An event
alone (package_add_failed, package_delete_failed, the sync's log lines of
``Sync.log``) is one INSERT in autocommit mode, atomic by itself.
Decisions come from ``generations`` (pure); this module only
gathers the data (through the data layer, db.py) and applies the result.
Saving an archive is export.py's. ``Repository`` implements interface.RepositoryApi,
the conn-less operations the faces use; the methods that take an index are the
rules' own (and the tests').
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import importlib
import importlib.machinery
import json
import os
import pkgutil
import shutil
import tempfile
import types
import typing
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import CatalogEntry, format_time, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, PackageError, RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo, file_digest, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index, PackageRow, PruneRow, RebootRow, ServerRow
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.fingerprint import FingerprintInputs, fingerprint
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, FleetPage, Refusal, StoredPackage, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import Sync, SyncOptions, SyncResult
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Candidate, CandidateLike, GenerationPlan, Server, generation_plan
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.plan import (
    DEFAULT_MANUAL_ICON,
    MANUAL_ICONS,
    choose_manual_icon,
    manual_arrivals,
    rebooting,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import VerifiedPackage
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
    from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient

#: A manager that has not reported presence for this long is forgotten (003 §2.2.8).
PRESENCE_LIFETIME = datetime.timedelta(days=60)

#: Codes only a download gives. Stores written before issue 8 remembered some of them as refusals;
#: they say nothing about the vendor's bytes, so such rows no longer block (see is_remembered).
_TRANSPORT_ONLY_CODES = frozenset(
    [
        'download_too_long',
        'download_truncated',
        'connection_failed',
        'http_status',
        'tls_failed',
        'proxy_failed',
        'proxy_invalid',
        'proxy_auth_failed',
        'proxy_auth_required',
        'proxy_auth_unsupported',
        'proxy_ntlm_unsupported',
        'proxy_tunnel_407',
        'transport_failed',
        'missing_library',
    ]
)
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


#: the repository's settings (003 §3.3): name -> (allowed values or None for a rule of its own, default as stored text).
#: The download schedule (§3.3 4-(ア)-①, §3.4.1), the proxy (②, §2.2.7), the webhooks told of new packages (§3.4.4)
#: and the initial status icon (step 5). Stored as text with their history; read back typed (``decode_setting``).
#: The secrets (the proxy password, the service passwords of ③) are not settings: service/credentials.py keeps them.
SETTINGS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    'initial_manual_icon': (MANUAL_ICONS, DEFAULT_MANUAL_ICON),
    'download_interval_hours': (None, '0'),
    'download_at': (None, '03:00'),
    'notify_webhooks': (None, '[]'),
    'proxy_url': (None, ''),
    'proxy_username': (None, ''),
    'proxy_auth': (('basic', 'digest'), 'basic'),
}
#: a server name or module id longer than this is no name (hostile input)
NAME_LIMIT = 255
PROXY_URL_LIMIT = 2048
#: the secrets a settings change takes besides the settings (credentials.SECRETS; kept here so no import is needed)
SECRET_NAMES = ('admin_password', 'read_password', 'proxy_password', 'webhook_secret')
_UNSAFE_TEXT = frozenset(chr(code) for code in list(range(33)) + [127])  # controls and the space


def _proxy_url_problem(value: str) -> str | None:
    """Why ``value`` is no proxy URL (http://host:port), or None. The message never repeats the value."""
    if len(value) > PROXY_URL_LIMIT or any(char in _UNSAFE_TEXT for char in value):
        return 'has a space or a control character, or is longer than %d characters' % PROXY_URL_LIMIT
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018  # urlsplit checks the port only when asked
    except ValueError as exc:
        return 'is not a URL (%s)' % exc
    if parts.scheme.lower() not in ('http', 'https') or not parts.hostname:
        return 'must look like http://host:port'
    if '@' in parts.netloc:
        return 'carries a user name or password: give proxy_username and proxy_password instead'
    return None


def check_setting(name: str, value: object) -> str:
    """The stored text of setting ``name`` set to ``value``; a bad value is ExupError setting_invalid with its rule.

    The schedule's and the webhooks' rules are service/schedule.py's and service/notify.py's own.
    """
    from ansible_collections.exup.fleet.plugins.module_utils._exup.service import notify, schedule

    choices, _default = SETTINGS[name]
    if choices is not None:
        if value not in choices:
            raise ExupError('setting %s must be one of %s, not %r' % (name, ', '.join(choices), str(value)[:NAME_LIMIT]), code='setting_invalid', setting=name)
        return str(value)
    if name == 'download_interval_hours':
        return str(schedule.DownloadSchedule.from_settings({name: value}).interval_hours)
    if name == 'download_at':
        return schedule.DownloadSchedule.from_settings({name: value}).at
    if name == 'notify_webhooks':
        return json.dumps(notify.check_targets(value), separators=(',', ':'))
    if not isinstance(value, str):
        raise ExupError('setting %s must be a text, not %s' % (name, type(value).__name__), code='setting_invalid', setting=name)
    if name == 'proxy_url':
        problem = _proxy_url_problem(value) if value else None
        if problem:
            raise ExupError('setting proxy_url %s (or empty for no proxy)' % problem, code='setting_invalid', setting=name)
        return value
    # proxy_username: a Basic user-id has no colon (RFC 7617), and no control character goes into a header
    if len(value) > NAME_LIMIT or ':' in value or any(char in _UNSAFE_TEXT and char != ' ' for char in value):
        raise ExupError(
            'setting proxy_username must be a name of at most %d characters without a colon or a control character (or empty)' % NAME_LIMIT,
            code='setting_invalid',
            setting=name,
        )
    return value


def decode_setting(name: str, text: str) -> typing.Any:
    """The typed value of a stored setting (an interval is a number, the webhooks a list); a stored value this code
    cannot read (a hand-edited row) is the default, so a bad row turns the schedule off instead of failing every read."""
    try:
        check_setting(name, text if name != 'notify_webhooks' else json.loads(text))
    except (ExupError, ValueError, RecursionError):
        text = SETTINGS[name][1]
    if name == 'download_interval_hours':
        return int(text)
    if name == 'notify_webhooks':
        return json.loads(text)
    return text


def logged_setting(name: str, value: typing.Any) -> typing.Any:
    """A setting's value as the event log shows it: a webhook as its origin only (scheme://host:port/...), since its path
    may be the secret (chat webhooks' are); every other value as it is."""
    if name != 'notify_webhooks' or not isinstance(value, list):
        return value
    shown = []
    for url in value:
        parts = urllib.parse.urlsplit(url)
        shown.append('%s://%s/...' % (parts.scheme, parts.netloc.rpartition('@')[2]))
    return shown


def check_settings(wanted: object) -> tuple[dict[str, str], dict[str, str]]:
    """(settings as stored text, secrets) of a settings change; every value checked before anything changes.

    A bad setting is ExupError setting_invalid; a bad password password_weak or password_invalid (service/auth.py).
    """
    if not isinstance(wanted, dict) or not wanted:
        raise ExupError('give at least one setting: %s' % ', '.join(sorted(SETTINGS) + list(SECRET_NAMES)), code='setting_invalid')
    settings: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in wanted.items():
        if key in SETTINGS:
            settings[key] = check_setting(key, value)
        elif key in SECRET_NAMES:
            from ansible_collections.exup.fleet.plugins.module_utils._exup.service import credentials

            secrets[key] = credentials.check_secret(key, value)
        else:
            raise ExupError(
                'unknown setting %r: the settings are %s' % (str(key)[:NAME_LIMIT], ', '.join(sorted(SETTINGS) + list(SECRET_NAMES))), code='setting_invalid'
            )
    return settings, secrets


def settings_problem(wanted: object) -> str | None:
    """Why ``wanted`` (setting -> value) cannot be applied, or None."""
    try:
        check_settings(wanted)
    except ExupError as exc:
        return exc.msg
    return None


def icon_problem(server: object, module_ids: Collection[str], icon: object) -> tuple[str, str] | None:
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


#: The package whose code decides what a sync plans, selects and prunes. Every module of it that this process can import
#: enters the code digest (not a list of the deciding ones, which misses one sooner or later, and not the modules loaded so
#: far, which differ between the sync that stores the memo and the one that reads it): another exup.fleet gives another
#: fingerprint, so its first re-sync does the real work.
_CODE_PACKAGE = 'ansible_collections.exup.fleet.plugins.module_utils._exup'


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the source of every module of _CODE_PACKAGE, by name; '' when one cannot be read (then no sync is
    skipped). About 2 ms for the 39 modules of the collection. Inside AnsiballZ's zip the package holds the module_utils
    the module ships, the same in every run of that module."""
    digest = hashlib.sha256()
    for name, source in code_sources(_CODE_PACKAGE):
        if source is None:
            return ''
        digest.update(b'%s %d\n' % (name.encode('utf-8'), len(source)))
        digest.update(source)
    return digest.hexdigest()


def code_sources(package_name: str) -> list[tuple[str, bytes | None]]:
    """(name, source bytes or None when unreadable) of the package and every module under it, by name, read through the
    finders of its path (a directory, or the zip AnsiballZ imports from: no file path is assumed), importing none but
    the subpackages."""
    package = importlib.import_module(package_name)
    found = [(package_name, module_source(package))]
    for info in pkgutil.walk_packages(package.__path__, package_name + '.'):
        spec = info.module_finder.find_spec(info.name)  # type: ignore[call-arg]
        found.append((info.name, spec_source(spec)))
    return sorted(found, key=lambda item: item[0])


def spec_source(spec: importlib.machinery.ModuleSpec | None) -> bytes | None:
    if spec is None or spec.loader is None or not spec.origin:
        return None
    try:
        return spec.loader.get_data(spec.origin)  # type: ignore[attr-defined]
    except (AttributeError, ImportError, OSError):
        return None


def module_source(module: types.ModuleType | None) -> bytes | None:
    """The bytes ``module`` was loaded from, read through its loader; b'' for what has no code (a namespace package);
    None when unknown."""
    if module is None:
        return b''
    loader = getattr(module, '__loader__', None)
    path = getattr(module, '__file__', None)
    try:
        if path:
            return loader.get_data(path)  # type: ignore[union-attr]
        if getattr(module, '__path__', None) is not None:
            return b''
        source = loader.get_source(module.__name__)  # type: ignore[union-attr]
    except (AttributeError, ImportError, OSError, TypeError):
        return None
    return source.encode('utf-8') if isinstance(source, str) else None


#: the keys of one entry of the module option ``servers`` (the module leaves their checks to server_from_dict)
SERVER_KEYS = ('name', 'model', 'os', 'modules')


def server_from_dict(manager_id: str, data: object) -> Server:
    """Validate one managed server given by a manager (module option ``servers``)."""
    if not isinstance(data, dict):
        raise ExupError('each server must be a dict with name, model and os', code='server_invalid')
    unknown = sorted(str(key)[:NAME_LIMIT] for key in data if key not in SERVER_KEYS)
    if unknown:
        raise ExupError('server %r: unknown key %s; a server has %s' % (data.get('name'), ', '.join(unknown), ', '.join(SERVER_KEYS)), code='server_invalid')
    texts = {key: _server_text(data, key) for key in ('name', 'model', 'os')}
    modules = data.get('modules') or {}
    if not isinstance(modules, dict):
        raise ExupError('server %s: modules must map a module id to {current, previous}' % texts['name'], code='server_invalid')
    clean = {}
    for module_id, state in modules.items():
        if isinstance(state, str):
            state = {'current': state}
        if not isinstance(state, dict):
            raise ExupError('server %s: module %s must be a version or {current, previous}' % (texts['name'], module_id), code='server_invalid')
        clean[str(module_id)] = {key: str(state[key]) for key in ('current', 'previous') if state.get(key)}
    return Server(manager_id=manager_id, modules=clean, **texts)


def _server_text(data: dict, key: str) -> str:
    """A server's name, model or os: a non-empty string; a number is taken as its text (YAML reads 1234 as one)."""
    value = data.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if value is None or value == '':
        raise ExupError('server %r has no %s' % (data.get('name'), key), code='server_invalid')
    if not isinstance(value, str):
        raise ExupError('server %r: %s must be a string, not %s' % (data.get('name'), key, type(value).__name__), code='server_invalid')
    return value


class PlanState(typing.NamedTuple):
    """The generation plan and what it was made of: stored rows, feed entries, active servers."""

    plan: GenerationPlan
    stored: dict[str, PackageRow]
    feed: dict[str, CatalogEntry]
    servers: list[Server]


def is_remembered(refusal: Refusal | dict) -> bool:
    """A refusal (Refusal or its dict) blocks downloads only when it is about the package's own bytes, not a failed download."""
    code, reason = (refusal['code'], refusal['reason']) if isinstance(refusal, dict) else (refusal.code, refusal.reason)
    return code not in _TRANSPORT_ONLY_CODES and not (code == 'digest_mismatch' and _CATALOG_DIGEST_WORDS in reason)


def candidates(
    stored: dict[str, PackageRow], feed: dict[str, CatalogEntry], extra: Iterable[PackageInfo] = (), tombstones: dict[str, Tombstone] | None = None
) -> list[CandidateLike]:
    """Every package the repository knows: store, feed, deletion history and ``extra`` PackageInfos.

    Deleted packages keep their rank (see generations.py), so their targets are kept in the tombstone. Entries and
    infos are candidates as they are (no copy of 30,000 objects); a later source wins for the same id.
    """
    seen: dict[str, CandidateLike] = {}
    for tombstone in (tombstones or {}).values():
        if tombstone.models:
            seen[tombstone.package_id] = Candidate(tombstone.package_id, tombstone.module_id, tombstone.version, tombstone.models, tombstone.os)
    seen.update(feed)
    for row in stored.values():
        seen[row.package_id] = row.info
    for info in extra:
        seen[info.package_id] = info
    return list(seen.values())


@dataclasses.dataclass
class AddBatch:
    """One call of ``add_files``: where it writes, how it decides, and what it added so far."""

    index: Index
    keyring: typing.Any
    mode: str  # needed (subject to generation management) or pinned
    check_mode: bool
    plan: GenerationPlan | None  # over the store and the whole batch; None when pinned
    package_ids: set[str]  # of every valid file given
    done: set[str] = dataclasses.field(default_factory=set)  # ids added (in check mode: that would be) by this call


@dataclasses.dataclass(frozen=True)
class DeleteBatch:
    """One call of ``delete``: where it writes, the plan and rows it decides over, who asks and how."""

    index: Index
    plan: GenerationPlan
    stored: dict[str, PackageRow]
    manager_id: str
    force: bool
    check_mode: bool


class Repository:
    """One repository store and its rules."""

    def __init__(self, root: str, clock: Callable[[], datetime.datetime] = utc_now) -> None:
        self.store = Store(root)
        self.clock = clock

    def now_text(self) -> str:
        return format_time(self.clock())

    def read(self) -> Index:
        """A reader's index (query-only; empty when the store does not exist): close it, or use it in a ``with``."""
        return self.store.reader()

    # ----------------------------------------------------------------- interface.RepositoryApi: conn-less operations
    def exists(self) -> bool:
        return self.store.exists

    def readable(self) -> bool:
        return self.store.exists and os.access(self.store.db_path, os.R_OK)

    def packages(self, module_id: str | None = None) -> list[StoredPackage]:
        with self.read() as index:
            rows = index.packages()
        return [self.stored_package(row) for row in rows.values() if module_id is None or row.module_id == module_id]

    def packages_for(self, model: str, os_name: str, trusted_key_ids: Iterable[str] | None = None) -> list[StoredPackage]:
        trusted = None if trusted_key_ids is None else set(trusted_key_ids)
        return [package for package in self.packages() if package.info.targets(model, os_name) and (trusted is None or package.key_id in trusted)]

    def deleted_packages(self) -> list[Tombstone]:
        with self.read() as index:
            rows = index.tombstones()
        return [rows[package_id] for package_id in sorted(rows)]

    def record_server(self, manager_id: str, server: Server) -> bool:
        with self.store.writer() as index:
            return self.register_server(index, manager_id, server)

    def forget_server(self, manager_id: str, name: str, cause: str | None = None) -> bool:
        with self.store.writer() as index:
            return self.unregister_server(index, manager_id, name, cause)

    def server_record_differs(self, manager_id: str, server: Server) -> bool:
        with self.read() as index:
            return self.server_differs(index, manager_id, server)

    def bmc_module_records(self, manager_id: str, server: str) -> dict[str, BmcModuleRecord]:
        with self.read() as index:
            return index.bmc_modules(manager_id, server)

    def fleet(self, after: tuple[str, str] | None = None, limit: int | None = None) -> FleetPage:
        with self.read() as index:
            servers = index.server_page(after, limit)
            more = limit is not None and len(servers) == limit
            span = ((servers[0].manager_id, servers[0].name), (servers[-1].manager_id, servers[-1].name)) if servers and limit is not None else (None, None)
            bmc: dict[tuple[str, str], dict[str, BmcModuleRecord]] = {}
            for manager_id, server, record in index.bmc_module_span(*span):
                bmc.setdefault((manager_id, server), {})[record.module_id] = record
            icons: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
            for manager_id, server, module_id, icon, set_at in index.icon_span(*span):
                icons.setdefault((manager_id, server), {})[module_id] = (icon, set_at)
            history = index.setting_history('initial_manual_icon')
            readings = index.reading_span(*span)
        initial = [('', decode_setting('initial_manual_icon', SETTINGS['initial_manual_icon'][1]))]
        initial += [(changed_at, decode_setting('initial_manual_icon', value)) for changed_at, value in history]
        last = (servers[-1].manager_id, servers[-1].name) if more else None
        listed = {(server.manager_id, server.name) for server in servers}
        read_at = {key: value for key, value in readings.items() if key in listed}
        return FleetPage(servers=servers, bmc=bmc, icons=icons, initial_icons=initial, next=last, read_at=read_at)

    def status_icons(self, manager_id: str, server: str, infos: Iterable[PackageInfo], kinds: Iterable[str] = ('linux',)) -> dict[str, str]:
        with self.read() as index:
            return self.manual_icons(index, manager_id, server, infos, kinds)

    def job_reported(self, job_id: str) -> bool:
        with self.read() as index:
            return index.job_outcome_logged(job_id)

    def recent_events(self, limit: int, server: str | None = None) -> list[dict]:
        with self.read() as index:
            return index.recent_events(limit, server)

    def sync(self, client: HttpClient, keyring: KeyRing, options: SyncOptions, check_mode: bool = False) -> SyncResult:
        if not check_mode:
            code_digest()  # read near import time: the sources that run, even if the collection is replaced on disk mid-sync
        return Sync(self, client, keyring, options).run(check_mode)

    def rebuild(self, keyring: KeyRing, check_mode: bool = False) -> dict:
        # Imported here, as export below: a module process that only syncs does not compile them (AnsiballZ imports from a zip, no .pyc).
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.rebuild import rebuild_index

        return rebuild_index(self, keyring, check_mode=check_mode)

    def stored_package(self, row: PackageRow) -> StoredPackage:
        return StoredPackage(
            info=row.info,
            sha256=row.sha256,
            size=row.size,
            path=self.store.pool_path(row.sha256),
            key_id=row.key_id,
            source=row.source,
            pinned=row.pinned,
            added_at=row.added_at,
        )

    # ----------------------------------------------------------------- refusals (issue 8: one bad answer never blocks for good)
    @staticmethod
    def remembered_refusals(index: Index) -> dict[str, Refusal]:
        """package_id -> the remembered refusal that a sync honours."""
        return {refusal.package_id: refusal for refusal in index.refusals() if is_remembered(refusal)}

    def remember_refusal(self, index: Index, package_id: str, sha256: str, error: ExupError) -> None:
        """Remember that the bytes ``sha256`` of ``package_id`` failed the package's own checks (sync.BytesRefused)."""
        index.put_refusal(Refusal(package_id, sha256, error.code, error.msg, self.now_text()))

    @staticmethod
    def forget_refusal(index: Index, package_id: str) -> None:
        index.delete_refusals([package_id])

    def clear_refusals(self, package_ids: list[str] | None = None, check_mode: bool = False) -> list[dict]:
        """Forget remembered refusals (all, or of ``package_ids``) so the next sync tries them again; returns those cleared."""
        with self.store.session(check_mode) as index:
            cleared = [refusal for refusal in self.remembered_refusals(index).values() if package_ids is None or refusal.package_id in package_ids]
            if cleared and not check_mode:
                with index.transaction():
                    index.delete_refusals([refusal.package_id for refusal in cleared])
                    self.record(index, 'refusals_cleared', package_ids=[refusal.package_id for refusal in cleared])
        return [refusal.as_dict() for refusal in cleared]

    # ----------------------------------------------------------------- generation management over the stored state
    def active_servers(self, index: Index, override: tuple[str, list[Server]] | None = None) -> list[Server]:
        """Servers of managers seen within the presence lifetime.

        ``override`` (manager_id, [Server]) replaces one manager's servers, for
        check mode and for the manager registering in this very run.
        """
        active = index.managers_seen_since(format_time(self.clock() - PRESENCE_LIFETIME))
        servers = index.servers(managers=active, but=override[0] if override else None)
        if override:
            servers.extend(override[1])
        return servers

    def plan(
        self,
        index: Index,
        override: tuple[str, list[Server]] | None = None,
        extra: Iterable[PackageInfo] = (),
        feed_overlay: dict[str, CatalogEntry] | None = None,
        feed_replace: bool = False,
    ) -> PlanState:
        """Generation plan for the current state, with what it was made of.

        ``override`` replaces one manager's servers, ``extra`` adds PackageInfos and
        ``feed_overlay`` adds catalog entries (replaces them all with ``feed_replace``):
        check mode sees the outcome without writing. A replacing overlay is taken as the feed (not copied, the index's
        feed not read).
        """
        stored = index.packages()
        if feed_overlay is not None and feed_replace:
            feed = feed_overlay
        else:
            feed = index.feed_entries() if feed_overlay is None else {**index.feed_entries(), **feed_overlay}
        servers = self.active_servers(index, override)
        return PlanState(generation_plan(candidates(stored, feed, extra, index.tombstones()), servers), stored, feed, servers)

    def sync_fingerprint(self, index: Index, manager_id: str, feed_url: str, key_ids: Iterable[str]) -> str | None:
        """repo/fingerprint.py's digest of the state a sync plans over, now; None when the code's digest is unknown."""
        code = code_digest()
        if not code:
            return None
        active = index.managers_seen_since(format_time(self.clock() - PRESENCE_LIFETIME))
        return fingerprint(FingerprintInputs(code, index.data_generation(), index.feed_state(), active, manager_id, feed_url, tuple(key_ids)))

    @staticmethod
    def prunable(plan: GenerationPlan, stored: Mapping[str, PackageRow | PruneRow]) -> list[dict]:
        """The stored packages generation management no longer keeps (pinned ones stay), by package id."""
        keep = plan.kept(stored)
        return [
            {'package_id': package_id, 'module_id': row.module_id, 'version': row.version}
            for package_id, row in sorted(stored.items())
            if not row.pinned and package_id not in keep
        ]

    def prune(self, index: Index, plan: GenerationPlan, stored: Mapping[str, PackageRow | PruneRow]) -> list[dict]:
        """Apply generation management: remove stored packages outside the keep set (pinned stay). Check mode uses ``prunable``."""
        removed = self.prunable(plan, stored)
        for item in removed:
            self.remove_package(
                index,
                item['package_id'],
                stored[item['package_id']].sha256,
                event=('package_removed', {'package_id': item['package_id'], 'version': item['version']}),
            )
        return removed

    # ----------------------------------------------------------------- writing helpers
    @staticmethod
    def forget_sync_memo(index: Index) -> None:
        """Clear the sync memo (committed at once: autocommit) before a file goes into tmp/ or pool/. A kill from there on
        can leave an orphan that only garbage collection removes, and a skipped re-sync collects none: without a memo
        the next sync does the real work, collection included (issue 10). A sync clears it itself (update_locked)."""
        if index.sync_memo() is not None:
            index.set_sync_memo(None)

    def record(self, index: Index, code: str, cause: str | None = None, **detail: typing.Any) -> dict:
        return ev.record(index, self.now_text(), ev.event(code, cause, **detail))

    def register_manager(self, index: Index, manager_id: str, servers: list[Server] | None) -> list[str]:
        """Record presence and the servers a manager manages (its needs); forget expired managers."""
        named = [server.name for server in servers or ()]
        twice = sorted({name for name in named if named.count(name) > 1}) if len(set(named)) != len(named) else []
        if twice:
            raise RepositoryError('servers names a server more than once: %s' % ', '.join(twice[:5]), code='server_invalid')
        with index.transaction():
            index.touch_manager(manager_id, self.now_text())
            if servers is not None:
                rows = sorted(ServerRow.of(manager_id, server) for server in servers)
                if rows != index.server_rows(manager_id):
                    index.replace_servers(manager_id, rows)
                    self.record(index, 'manager_registered', manager_id=manager_id, servers=len(rows))
            expired = index.managers_not_seen_since(format_time(self.clock() - PRESENCE_LIFETIME))
            for old in expired:
                index.forget_manager(old)
                self.record(index, 'manager_expired', manager_id=old)
        return expired

    def register_server(self, index: Index, manager_id: str, server: Server) -> bool:
        """Record one server of a manager (presence too), leaving its other servers as they are.

        Its versions were read just now (exup_info register_server): the reading time is kept each time (readings),
        even when the record is unchanged; that alone is no change (``changed`` says whether the versions changed).
        """
        with index.transaction():
            now = self.now_text()
            index.touch_manager(manager_id, now)
            index.put_reading(manager_id, server.name, now)
            row = ServerRow.of(manager_id, server)
            changed = index.server_row(manager_id, server.name) != row
            if changed:
                index.put_server(row)
                self.record(index, 'server_registered', server=server.name, manager_id=manager_id, model=server.model, os=server.os)
        return changed

    def unregister_server(self, index: Index, manager_id: str, name: str, cause: str | None = None) -> bool:
        """Forget a server whose agent was removed (003 §3.9: agent management of it ends)."""
        with index.transaction():
            gone = index.delete_server(manager_id, name)
            if gone:
                self.record(index, 'server_unregistered', cause, server=name, manager_id=manager_id)
        return gone

    @staticmethod
    def server_differs(index: Index, manager_id: str, server: Server) -> bool:
        """True when registering ``server`` would change the repository's record of it (check mode of exup_info)."""
        return index.server_row(manager_id, server.name) != ServerRow.of(manager_id, server)

    def note_presence(self, manager_id: str, wait_seconds: float = 600) -> None:
        """A manager used the repository (003 §2.2.8): its presence window starts again."""
        with self.store.writer(wait_seconds) as index, index.transaction():
            index.touch_manager(manager_id, self.now_text())

    def announce(self, manager_id: str, servers: list[Server] | None = None) -> list[str]:
        """A remote manager's presence report, with its servers (its needs) when given; the managers it expired.

        A manager forgotten here takes its needs with it (003 §2.2.8): the packages only its servers needed are removed
        at once, by the rules a sync prunes by (generation management over the stored feed; pinned ones stay).
        """
        with self.store.writer() as index:
            expired = self.register_manager(index, manager_id, servers)
            if expired:
                state = self.plan(index)
                self.prune(index, state.plan, state.stored)
            return expired

    def set_bmc_module(self, manager_id: str, server: str, module_id: str, **fields: typing.Any) -> None:
        """Update one module's record (previous generation, block until reset, staged version) in its own transaction."""
        with self.store.writer() as index, index.transaction():
            record = index.bmc_modules(manager_id, server).get(module_id) or BmcModuleRecord(module_id)
            index.put_bmc_module(manager_id, server, dataclasses.replace(record, since=self.now_text(), **fields))

    def index_package(self, index: Index, verified: VerifiedPackage, digest: str, size: int, source: str, pinned: bool = False) -> None:
        """Insert the row of a verified file already in the pool (its own transaction)."""
        with index.transaction():
            index.put_package(verified.info, verified.key_id, digest, size, source, pinned, self.now_text())

    def put_packages(self, index: Index, items: Iterable[tuple[VerifiedPackage, str, int]], source: str) -> None:
        """The rows of verified files (VerifiedPackage, digest, size) whose pool files and directories are durable,
        inside the caller's transaction (a sync batch: rows, refusals and events commit together)."""
        now = self.now_text()
        for verified, digest, size in items:
            index.put_package(verified.info, verified.key_id, digest, size, source, False, now)

    def remove_package(
        self, index: Index, package_id: str, digest: str, tombstone: Tombstone | None = None, event: tuple[str, dict[str, typing.Any]] | None = None
    ) -> None:
        """Delete the row (with an optional tombstone and event) and commit, then unlink the file.

        A crash between the two leaves an orphan file, which ``collect_garbage``
        removes; never a row whose file is gone.
        """
        with index.transaction():
            index.delete_package(package_id)
            if tombstone:
                index.put_tombstone(tombstone)
            if event:
                self.record(index, event[0], **event[1])
            others = index.digest_users(digest)
        if not others:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.store.pool_path(digest))

    def log_events(self, items: list[dict]) -> list[dict]:
        """Write events (dicts of events.event) in one transaction; returns them with their time."""
        with self.store.writer() as index, index.transaction():
            return [ev.record(index, self.now_text(), item) for item in items]

    # ----------------------------------------------------------------- settings and statuses (003 §3.3 step 5, Tables 8-9)
    @staticmethod
    def settings(index: Index, at: str | None = None) -> dict[str, typing.Any]:
        """Setting name -> value (typed: decode_setting), as it was at time ``at`` (UTC text; default now): settings keep
        their history."""
        values = {name: default for name, (_choices, default) in SETTINGS.items()}
        for key, value in index.setting_changes(at):
            if key in values:
                values[key] = value
        return {name: decode_setting(name, text) for name, text in values.items()}

    def secret_states(self) -> dict[str, str]:
        """Whether each secret is set ('set' / 'not set'), never its value (service/credentials.py)."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service import credentials

        return credentials.states(self.store.root)

    def read_settings(self, check_mode: bool = False) -> dict[str, typing.Any]:
        """The repository's settings and the state of each secret; reading them leaves settings_read (003 Table 18),
        not in check mode."""
        with self.read() as index:
            values = self.settings(index)
        values.update(self.secret_states())
        if not check_mode:
            self.log_events([ev.event('settings_read', settings=sorted(values))])
        return values

    def change_settings(self, wanted: dict, check_mode: bool = False) -> tuple:
        """Change settings and secrets; returns (before, after), the settings typed and each secret as its state
        ('not set', 'set'; 'changed' after). Every value is checked first: a bad one changes nothing, logs
        settings_change_failed and raises setting_invalid (password_weak, password_invalid for a password).
        A password that verifies against the stored hash is not changed."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service import credentials

        try:
            clean, secrets = check_settings(wanted)
            with self.store.session(check_mode) as index:
                before = self.settings(index)
                planned = credentials.plan_changes(self.store.root, secrets, hash_new=not check_mode)
                changes = {key: value for key, value in clean.items() if before[key] != decode_setting(key, value)}
                after = dict(before, **{key: decode_setting(key, value) for key, value in clean.items()})
                before.update(planned.before)
                after.update(planned.after)
                changed = sorted(key for key in after if after[key] != before[key])
                if changed and not check_mode:
                    credentials.write_changes(self.store.root, planned)
                    with index.transaction():
                        if changes:
                            index.add_setting_changes(changes, self.now_text())
                        self.record(
                            index,
                            'settings_changed',
                            before={key: logged_setting(key, before[key]) for key in changed},
                            after={key: logged_setting(key, after[key]) for key in changed},
                        )
        except ExupError as exc:
            if exc.code in ('repository_busy', 'store_damaged', 'store_too_new'):
                raise
            if not check_mode and self.store.exists:
                names = sorted(str(key)[:NAME_LIMIT] for key in wanted) if isinstance(wanted, dict) else []
                self.log_events([ev.event('settings_change_failed', exc.msg, settings=names, error=exc.code)])
            raise RepositoryError(exc.msg, code=exc.code) from None
        return before, after

    def proxy_options(self) -> dict[str, typing.Any]:
        """HttpClient keyword arguments for the repository's own downloads (003 §3.3 4-(ア)-②, §2.2.7): the proxy of the
        settings with the kept proxy password; no proxy_url set: all None (direct)."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service import credentials

        with self.read() as index:
            values = self.settings(index)
        if not values['proxy_url']:
            return {'proxy_url': None, 'proxy_username': None, 'proxy_password': None, 'proxy_auth': values['proxy_auth']}
        return {
            'proxy_url': values['proxy_url'],
            'proxy_username': values['proxy_username'] or None,
            'proxy_password': credentials.kept_secret(self.store.root, 'proxy_password') if values['proxy_username'] else None,
            'proxy_auth': values['proxy_auth'],
        }

    def manual_icons(self, index: Index, manager_id: str, server: str, infos: Iterable[PackageInfo], kinds: Iterable[str] = ('linux',)) -> dict[str, str]:
        """module_id -> the Table 9 icon of each module that has packages of the server not auto-update on this path."""
        added = index.added_times()
        chosen = index.chosen_icons(manager_id, server)
        arrivals = manual_arrivals(infos, added, tuple(kinds))
        return {
            module_id: choose_manual_icon(chosen.get(module_id), arrived, self.settings(index, arrived)['initial_manual_icon'])
            for module_id, arrived in arrivals.items()
        }

    def set_manual_icons(self, manager_id: str, server: str, module_ids: Collection[str], icon: str, check_mode: bool = False) -> list[dict]:
        """Set the Table 9 icon of modules of one server; each change leaves status_changed. Returns [{module_id, before, after}]."""
        problem = icon_problem(server, module_ids, icon)
        if problem:
            if not check_mode and self.store.exists:
                self.log_events([ev.event('status_change_failed', problem[0], server=str(server), error=problem[1])])
            raise RepositoryError(problem[0], code=problem[1])
        with self.store.session(check_mode) as index:
            chosen = index.chosen_icons(manager_id, server)
            rows: list[dict[str, typing.Any]] = [
                {'module_id': module_id, 'before': (chosen.get(module_id) or (None,))[0], 'after': icon} for module_id in sorted(set(module_ids))
            ]
            changes = [row for row in rows if row['before'] != icon]
            if changes and not check_mode:
                now = self.now_text()
                with index.transaction():
                    for row in changes:
                        index.put_icon(manager_id, server, row['module_id'], icon, now)
                        self.record(index, 'status_changed', server=server, manager_id=manager_id, module=row['module_id'], before=row['before'], after=icon)
        return rows

    def request_reboot(self, manager_id: str, server: str, modules: Iterable[str], boot_id: str | None = None, seconds: int = 3600) -> None:
        """Record a restart exup allowed or did (Table 8 "rebooting") until ``seconds`` from now at most."""
        now = self.clock()
        reboot = RebootRow(boot_id, sorted(modules), format_time(now), format_time(now + datetime.timedelta(seconds=seconds)))
        with self.store.writer() as index, index.transaction():
            index.put_reboot(manager_id, server, reboot)

    def restarting(self, manager_id: str, server: str, boot_id: str | None = None, power: str | None = None) -> list[str]:
        """The modules a restart under way is for (Table 8 "rebooting"), or [] when none is."""
        with self.read() as index:
            reboot = index.reboot(manager_id, server)
        if reboot is None:
            return []
        request = {'boot_id': reboot.boot_id, 'modules': reboot.modules, 'deadline': reboot.deadline}
        return reboot.modules if rebooting(request, boot_id, power, self.now_text()) else []

    # ----------------------------------------------------------------- manual add (003 §2.2.3, Tables 13-14)
    def add_files(self, paths: list[str], keyring: KeyRing, mode: str = 'needed', check_mode: bool = False) -> list[dict]:
        """Add package files. ``mode`` is 'needed' (subject to generations) or 'pinned' (kept until deleted)."""
        if mode not in ('needed', 'pinned'):
            raise ExupError('mode must be needed or pinned, not %r' % mode, code='argument_invalid')
        results = []
        with self.store.session(check_mode) as index:
            # Verify every file first, then decide over the whole batch (003 Table 13: "from the list
            # given, only what generation management needs"): otherwise the order of the files would
            # let an old version in ahead of the newer ones that push it out of the window.
            checked = [(path, self._verify_for_add(index, path, keyring, check_mode)) for path in paths]
            infos = [item.info for _path, item in checked if not isinstance(item, dict)]
            batch = AddBatch(
                index, keyring, mode, check_mode, self.plan(index, extra=infos).plan if mode == 'needed' else None, {info.package_id for info in infos}
            )
            for path, item in checked:
                results.append(item if isinstance(item, dict) else self._add_one(batch, path, item))
        return results

    def _verify_for_add(self, index: Index, path: str, keyring: KeyRing, check_mode: bool) -> VerifiedPackage | dict:
        """The VerifiedPackage of ``path``, or the Table 14 error result when it is invalid."""
        try:
            return verify_package(path, keyring)
        except PackageError as exc:
            if not check_mode:
                self.record(index, 'package_add_failed', exc.msg, file=os.path.basename(path), error=exc.code)
            return {'file': os.path.basename(path), 'result': ADD_ERROR_BAD_HASH, 'msg': 'The update package is invalid: %s' % exc.msg, 'error': exc.code}

    def _add_one(self, batch: AddBatch, path: str, verified: VerifiedPackage) -> dict:
        info = verified.info
        base = {'file': os.path.basename(path), 'package_id': info.package_id, 'module_id': info.module_id, 'version': info.version}
        stored = batch.index.package_digests()
        if info.package_id in stored or info.package_id in batch.done:
            return dict(base, result=ADD_WARN_PRESENT, msg='The same update package is already in the repository.')
        if batch.plan is not None and info.package_id not in batch.plan.kept(set(stored) | batch.package_ids):
            return dict(
                base,
                result=ADD_WARN_NOT_NEEDED,
                msg='No managed server can use this package, or generation management would remove it at once; it was not added.',
            )
        batch.done.add(info.package_id)
        pinned = batch.mode == 'pinned'
        if batch.check_mode:
            return dict(base, result=ADDED, msg='The package would be added.', pinned=pinned)
        self.forget_sync_memo(batch.index)
        digest = self._install_copy(path, info, batch.keyring)
        with batch.index.transaction():  # the row and its event together
            batch.index.put_package(info, verified.key_id, digest, os.path.getsize(self.store.pool_path(digest)), 'manual', pinned, self.now_text())
            self.record(batch.index, 'package_added', package_id=info.package_id, version=info.version, mode=batch.mode)
        return dict(base, result=ADDED, msg='The update package was added.', pinned=pinned, sha256=digest)

    def _install_copy(self, path: str, info: PackageInfo, keyring: KeyRing) -> str:
        """Copy ``path`` into the pool; what enters it is the copy, verified again (the source could change after the first check)."""
        name = os.path.basename(path)
        fd, tmp = tempfile.mkstemp(dir=self.store.tmp_dir, suffix='.add')
        os.close(fd)
        shutil.copyfile(path, tmp)
        try:
            copy = verify_package(tmp, keyring)
        except PackageError as exc:
            os.unlink(tmp)
            raise RepositoryError('%s changed while it was being added: %s' % (name, exc.msg), code='package_changed') from None
        if copy.info != info:
            os.unlink(tmp)
            raise RepositoryError('%s changed while it was being added' % name, code='package_changed')
        digest = file_digest(tmp)[1]
        self.store.install(tmp, digest)
        return digest

    # ----------------------------------------------------------------- delete (003 §2.2.4, Tables 15-16)
    def delete(self, package_ids: list[str], manager_id: str, force: bool = False, check_mode: bool = False) -> list[dict]:
        results = []
        with self.store.session(check_mode) as index:
            plan, stored = self.plan(index)[:2]
            batch = DeleteBatch(index, plan, stored, manager_id, force, check_mode)
            for package_id in package_ids:
                results.append(self._delete_one(batch, package_id))
        return results

    def _delete_one(self, batch: DeleteBatch, package_id: str) -> dict:
        index, manager_id, force, check_mode = batch.index, batch.manager_id, batch.force, batch.check_mode
        row = batch.stored.get(package_id)
        if row is None:
            if not check_mode:
                self.record(index, 'package_delete_failed', 'no such package', package_id=package_id)
            return {'package_id': package_id, 'result': DELETE_ERROR_MISSING, 'msg': 'The specified update package does not exist.'}
        if not force and batch.plan.used_by_other_manager(package_id, manager_id):
            others = sorted(batch.plan.needed_by[package_id] - {manager_id})
            if not check_mode:
                self.record(index, 'package_delete_failed', 'in use by another manager', package_id=package_id, managers=others)
            return {
                'package_id': package_id,
                'result': DELETE_ERROR_IN_USE,
                'managers': others,
                'msg': 'Another manager (%s) uses this package; delete it with force to remove it anyway.' % ', '.join(others),
            }
        if not check_mode:
            tombstone = Tombstone(
                package_id, row.module_id, row.version, row.sha256, self.now_text(), manager_id, bool(force), tuple(row.info.models), tuple(row.info.os)
            )
            self.remove_package(
                index,
                package_id,
                row.sha256,
                tombstone=tombstone,
                event=('package_deleted', {'package_id': package_id, 'version': row.version, 'forced': force}),
            )
        return {'package_id': package_id, 'result': DELETED, 'msg': 'The update package was deleted.', 'forced': force}

    def clear_tombstones(self, check_mode: bool = False) -> list[str]:
        """Clear the whole deletion history at once (003 §2.2.5); returns the ids cleared."""
        with self.store.session(check_mode) as index:
            cleared = sorted(index.tombstones())
            if cleared and not check_mode:
                with index.transaction():
                    index.clear_tombstones()
                    self.record(index, 'deletion_history_cleared', count=len(cleared))
        return cleared

    # ----------------------------------------------------------------- save (003 §2.2.6): export.py
    def export(
        self,
        dest: str,
        package_ids: Iterable[str] | None = None,
        module_ids: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        displayed_only: bool = True,
        check_mode: bool = False,
    ) -> list[dict]:
        """Save packages as one zip archive: packages/, index.html, css/ (003 Fig. 27); see export.save_archive."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import export

        request = export.ExportRequest(dest, package_ids=package_ids, module_ids=module_ids, models=models, displayed_only=displayed_only)
        return export.save_archive(self, request, check_mode)

    # ----------------------------------------------------------------- listing (003 Fig. 10-11, Table 20)
    def listing(self, manager_id: str, event_limit: int = 100, module_ids: Iterable[str] | None = None, models: Iterable[str] | None = None) -> dict:
        """Packages with their flags, by component and by model, plus tombstones, events, managers, feed state.

        ``module_ids`` and ``models`` narrow the packages listed.
        """
        with self.read() as index:
            plan, stored, feed, servers = self.plan(index)
            tombstones = index.tombstones()
            refusals = [refusal.as_dict() for refusal in self.remembered_refusals(index).values()]
            state = index.feed_state()
            events_out = index.recent_events(event_limit)
            managers = [dataclasses.asdict(manager) for manager in index.managers()]
        packages = [
            package_listing(row, plan, manager_id)
            for package_id, row in sorted(stored.items())
            if not ((module_ids and row.module_id not in module_ids) or (models and not set(models) & set(row.info.models)))
        ]
        by_component, by_model = group_listing(packages, models)
        return {
            'packages': packages,
            'by_component': by_component,
            'by_model': by_model,
            'tombstones': [tombstones[package_id].as_dict() for package_id in sorted(tombstones)],
            'refusals': refusals,
            'events': events_out,
            'managers': managers,
            'servers': len(servers),
            'feed_entries': len(feed),
            'feed': {key: state[key] for key in ('feed_url', 'catalog_version', 'last_access', 'catalog_expires', 'feed_id') if key in state},
        }


def package_listing(row: PackageRow, plan: GenerationPlan, manager_id: str) -> dict:
    """One package as exup_package_info lists it."""
    info = row.info
    return {
        'package_id': row.package_id,
        'module_id': info.module_id,
        'module_name': info.module_name,
        'version': info.version,
        'release_date': info.release_date,
        'models': info.models,
        'os': info.os,
        'kind': info.kind,
        'size': row.size,
        'sha256': row.sha256,
        'severity': info.severity,
        'source': row.source,
        'auto_update': info.auto_update,
        'downgrade_supported': info.downgrade_supported,
        'multi_model': info.multi_model,
        'reboot_required': info.reboot_required,
        'uninstall_supported': info.uninstall_supported,
        'used_by_other_manager': plan.used_by_other_manager(row.package_id, manager_id),
        'pinned': row.pinned,
        'generation': plan.generation.get(row.package_id),
        'previous_generation_only': row.package_id in plan.previous,
        'compatible': row.compatible,
        'key_id': row.key_id,
    }


def group_listing(packages: list[dict], models: Iterable[str] | None) -> tuple:
    """(by_component, by_model) of listed packages, newest version first."""
    by_component: dict[str, list] = {}
    by_model: dict[str, dict] = {}
    for package in packages:
        by_component.setdefault(package['module_id'], []).append(package['package_id'])
        for model in package['models']:
            if models and model not in models:
                continue
            by_model.setdefault(model, {}).setdefault(package['module_id'], []).append(package['package_id'])
    order = {package['package_id']: version_key(package['version']) for package in packages}
    for ids in list(by_component.values()) + [ids for modules in by_model.values() for ids in modules.values()]:
        ids.sort(key=lambda package_id: order[package_id], reverse=True)
    return by_component, by_model
