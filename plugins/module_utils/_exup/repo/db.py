# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository's data layer: the schema of repo.db and every SQL statement of the repository.

``Index`` wraps one open repo.db (or the empty in-memory index a reader sees of a store not made yet).
Reads return small records (``PackageRow``, ``Tombstone``, ``Refusal``, ``ManagerRow``, ...), writes
take them. ``Index.transaction()`` is the one way to group writes: BEGIN IMMEDIATE, COMMIT, ROLLBACK
on an error (a failed COMMIT too). Opening, locking and durability settings are the store's (store.py);
the rules are repository.py's. The tables added after the first store format (refusals, bmc_modules,
settings, manual_icons, reboots) read as empty where a store written by older code lacks them (a
reader never creates them). A row whose JSON or fields no longer decode is ``store_damaged``, naming
the table and the row, never a traceback (``decoded``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import typing
from collections.abc import Callable, Container, Iterable, Iterator

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import CatalogEntry, shared
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, Refusal, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packages (
    package_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    module_id TEXT NOT NULL,
    version TEXT NOT NULL,
    info TEXT NOT NULL,
    key_id TEXT NOT NULL,
    source TEXT NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    compatible INTEGER NOT NULL DEFAULT 1,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS packages_sha256 ON packages (sha256);
CREATE TABLE IF NOT EXISTS feed_entries (
    package_id TEXT PRIMARY KEY,
    entry TEXT NOT NULL,
    published TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (
    package_id TEXT PRIMARY KEY,
    module_id TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    deleted_at TEXT NOT NULL,
    deleted_by TEXT NOT NULL,
    forced INTEGER NOT NULL,
    models TEXT NOT NULL DEFAULT '[]',
    os TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS managers (manager_id TEXT PRIMARY KEY, last_seen TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS servers (
    manager_id TEXT NOT NULL,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    os TEXT NOT NULL,
    modules TEXT NOT NULL,
    PRIMARY KEY (manager_id, name)
);
CREATE TABLE IF NOT EXISTS refusals (
    package_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    refused_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feed_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    level TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bmc_modules (
    manager_id TEXT NOT NULL,
    server TEXT NOT NULL,
    module_id TEXT NOT NULL,
    previous TEXT,
    block TEXT,
    staged TEXT,
    since TEXT NOT NULL,
    PRIMARY KEY (manager_id, server, module_id)
);
CREATE TABLE IF NOT EXISTS settings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS manual_icons (
    manager_id TEXT NOT NULL,
    server TEXT NOT NULL,
    module_id TEXT NOT NULL,
    icon TEXT NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (manager_id, server, module_id)
);
CREATE TABLE IF NOT EXISTS reboots (
    manager_id TEXT NOT NULL,
    server TEXT NOT NULL,
    boot_id TEXT,
    modules TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    PRIMARY KEY (manager_id, server)
);
CREATE TABLE IF NOT EXISTS readings (
    manager_id TEXT NOT NULL,
    name TEXT NOT NULL,
    read_at TEXT NOT NULL,
    PRIMARY KEY (manager_id, name)
);
"""

#: The tables the sync's plan and download selection read (see repo/fingerprint.py). Every INSERT, UPDATE or DELETE
#: of one of them bumps ``meta.data_generation`` by a trigger: the sync fingerprint reads one counter instead of
#: decoding 20,000 rows, and no write can slip past it (a trigger fires for any code, older versions' and tools' too).
GENERATION_TABLES = ('packages', 'feed_entries', 'feed_state', 'tombstones', 'refusals', 'servers')
GENERATION_SCHEMA = "INSERT OR IGNORE INTO meta (key, value) VALUES ('data_generation', '0');\n" + ''.join(
    'CREATE TRIGGER IF NOT EXISTS %s_%s_counted AFTER %s ON %s BEGIN '
    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'data_generation'; END;\n" % (table, verb.lower(), verb, table)
    for table in GENERATION_TABLES
    for verb in ('INSERT', 'UPDATE', 'DELETE')
)

#: the columns of a tombstone row, in the order of the table (the recovery record keeps rows as they are)
TOMBSTONE_COLUMNS = ('package_id', 'module_id', 'version', 'sha256', 'deleted_at', 'deleted_by', 'forced', 'models', 'os')


_MODULES_JSON = json.JSONEncoder(sort_keys=True).encode


@dataclasses.dataclass(frozen=True)
class PackageRow:
    """One row of ``packages``, its info decoded."""

    package_id: str
    sha256: str
    size: int
    module_id: str
    version: str
    info: PackageInfo
    key_id: str
    source: str
    pinned: bool
    compatible: bool
    added_at: str


class PruneRow(typing.NamedTuple):
    """What generation management reads of a stored package, its info not decoded: a sync that added packages reads
    this of every row before it prunes (10,000 infos decoded there made the peak of a full sync, issue 10)."""

    package_id: str
    sha256: str
    module_id: str
    version: str
    pinned: bool


@dataclasses.dataclass(frozen=True)
class ManagerRow:
    manager_id: str
    last_seen: str


class ServerRow(typing.NamedTuple):
    """A server as stored: its modules as the JSON text compared to see whether a report changes it."""

    manager_id: str
    name: str
    model: str
    os: str
    modules: str

    @classmethod
    def of(cls, manager_id: str, server: Server) -> ServerRow:
        # json.dumps(modules, sort_keys=True), without its per-call setup: a sync compares 2,000 of these
        return cls(manager_id, server.name, server.model, server.os, _MODULES_JSON(server.modules) if server.modules else '{}')


@dataclasses.dataclass(frozen=True)
class RebootRow:
    """A restart exup allowed or did, until ``deadline`` at most."""

    boot_id: str | None
    modules: list
    requested_at: str
    deadline: str


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), rows by name, waiting for a busy database."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute('PRAGMA busy_timeout = 30000')
    return conn


def _is_missing_table(exc: sqlite3.OperationalError) -> bool:
    return 'no such table' in str(exc)


Decoded = typing.TypeVar('Decoded')


def decoded(table: str, key: object, decode: Callable[[typing.Any], Decoded], value: typing.Any) -> Decoded:
    """``decode(value)`` (a row or a column of it), or store_damaged naming the table and the row's key when it no longer decodes."""
    try:
        return decode(value)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RepositoryError(
            'the repository index is damaged: row %s of table %s does not decode (%s: %s); '
            'rebuild the index from the pool with exup_package state=rebuilt, the package files are kept'
            % (ascii(key)[:200], table, type(exc).__name__, str(exc)[:200]),
            code='store_damaged',
            table=table,
            row=str(key)[:200],
        ) from None


def decoded_rows(table: str, rows: list, key: Callable[[typing.Any], object], decode: Callable[[typing.Any], Decoded]) -> list[Decoded]:
    """``decode`` of every row; on the first failure, store_damaged naming that row (as ``decoded``).

    One try around the whole list: the rows of a sound index (every re-sync reads thousands) pay no call per row for it.
    """
    try:
        return [decode(row) for row in rows]
    except (ValueError, TypeError, KeyError, AttributeError):
        for row in rows:
            decoded(table, key(row), decode, row)
        raise


class Index:
    """One open repo.db. Close it, or use it as a context manager (closes on exit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # ----------------------------------------------------------------- connection
    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """Raw SQL, for tests and tools that inspect a store; the repository's code uses the typed queries."""
        return self.conn.execute(sql, args)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Index]:
        """BEGIN IMMEDIATE (the write lock at once, no upgrade deadlock) ... COMMIT; ROLLBACK when the block fails.

        Never nested: what follows a commit (a file removed once its row is gone) must follow the real commit."""
        self.conn.execute('BEGIN IMMEDIATE')
        try:
            yield self
            self.conn.execute('COMMIT')  # inside: a COMMIT that fails (disk full, I/O error) rolls back too
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute('ROLLBACK')
            raise

    def _select(self, query: str, args: tuple = ()) -> list:
        """Rows of a table that a store written by older code may lack (a reader never creates it): none then."""
        try:
            return self.conn.execute(query, args).fetchall()
        except sqlite3.OperationalError as exc:
            if _is_missing_table(exc):
                return []
            raise

    # ----------------------------------------------------------------- schema and meta
    def create_schema(self) -> None:
        self.conn.executescript(SCHEMA + GENERATION_SCHEMA)

    def make_durable(self) -> None:
        """WAL (readers never block the writer) and a full fsync at each commit (a committed row survives power loss)."""
        self.conn.execute('PRAGMA journal_mode = WAL')
        self.conn.execute('PRAGMA synchronous = FULL')

    def make_query_only(self) -> None:
        self.conn.execute('PRAGMA query_only = ON')

    def has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def store_version(self) -> int:
        """The store format recorded in meta; 1 for a store that has no record (format 1 always wrote one)."""
        if not self.has_table('meta'):
            return 1
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0]) if row else 1
        except ValueError:
            raise sqlite3.DatabaseError('meta schema_version is %r, not a number' % row[0]) from None

    def set_store_version(self, version: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),))

    def rebuild_needed(self) -> str | None:
        """When the index was lost (repo.db made again over a pool): the time it was noticed, else None."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'rebuild_needed'").fetchone()
        return row[0] if row else None

    def mark_rebuild_needed(self, now: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rebuild_needed', ?)", (now,))

    def clear_rebuild_needed(self) -> None:
        self.conn.execute("DELETE FROM meta WHERE key = 'rebuild_needed'")

    def data_generation(self) -> int:
        """The write counter of GENERATION_TABLES (0 on a store that never had the triggers, or a reader's empty index)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'data_generation'").fetchone()
        try:
            return int(row[0]) if row else 0
        except ValueError:
            return -1  # not a number: matches no fingerprint stored (one was stored with a number)

    def sync_memo(self) -> str | None:
        """What the last sync that left nothing to retry stored (``set_sync_memo``), or None."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'sync_memo'").fetchone()
        return row[0] if row else None

    def set_sync_memo(self, text: str | None) -> None:
        """Store the sync memo (JSON text), or clear it with None. meta is not a counted table: this bumps nothing."""
        if text is None:
            self.conn.execute("DELETE FROM meta WHERE key = 'sync_memo'")
        else:
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('sync_memo', ?)", (text,))

    def recovery_written(self) -> str | None:
        """'<store version>:<data_generation>' of the recovery record last written (store.save_recovery), or None."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'recovery_written'").fetchone()
        return row[0] if row else None

    def set_recovery_written(self, text: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('recovery_written', ?)", (text,))

    def check_rows(self) -> None:
        """Decode every row that holds JSON: store_damaged for the first that does not (a rebuild then replaces the index)."""
        self.packages()
        self.feed_entries()
        self.tombstones()
        self.servers()
        for row in self._select('SELECT manager_id, server, boot_id, modules, requested_at, deadline FROM reboots'):
            decoded('reboots', (row[0], row[1]), self._reboot, tuple(row)[2:])
        for row in self.conn.execute('SELECT id, detail FROM events'):
            decoded('events', row[0], json.loads, row[1])

    # ----------------------------------------------------------------- packages
    def packages(self) -> dict[str, PackageRow]:
        """package_id -> its row."""
        rows = self.conn.execute('SELECT * FROM packages').fetchall()
        return {row.package_id: row for row in decoded_rows('packages', rows, lambda row: row['package_id'], self._package_row)}

    @staticmethod
    def _package_row(row: sqlite3.Row) -> PackageRow:
        return PackageRow(
            package_id=row['package_id'],
            sha256=row['sha256'],
            size=row['size'],
            module_id=row['module_id'],
            version=row['version'],
            info=PackageInfo.from_dict(json.loads(row['info'])),
            key_id=row['key_id'],
            source=row['source'],
            pinned=bool(row['pinned']),
            compatible=bool(row['compatible']),
            added_at=row['added_at'],
        )

    def prune_rows(self) -> dict[str, PruneRow]:
        """package_id -> what pruning reads of its row (no info decoded)."""
        query = 'SELECT package_id, sha256, module_id, version, pinned FROM packages'
        return {row[0]: PruneRow(row[0], row[1], row[2], row[3], bool(row[4])) for row in self.conn.execute(query)}

    def package_digests(self) -> dict[str, str]:
        """package_id -> sha256 of every row (no info decoded)."""
        return {row[0]: row[1] for row in self.conn.execute('SELECT package_id, sha256 FROM packages')}

    def added_times(self) -> dict[str, str]:
        """package_id -> when it reached the repository."""
        return {row[0]: row[1] for row in self._select('SELECT package_id, added_at FROM packages')}

    def recovery_packages(self) -> dict[str, dict]:
        """What the recovery record keeps of each package: its pin, source and date."""
        query = 'SELECT package_id, sha256, pinned, source, added_at FROM packages ORDER BY package_id'
        return {
            row['package_id']: {'sha256': row['sha256'], 'pinned': bool(row['pinned']), 'source': row['source'], 'added_at': row['added_at']}
            for row in self.conn.execute(query)
        }

    def put_package(self, info: PackageInfo, key_id: str, digest: str, size: int, source: str, pinned: bool, now: str) -> None:
        self.conn.execute(
            'INSERT OR REPLACE INTO packages (package_id, sha256, size, module_id, version, info, key_id, source, pinned, compatible, '
            'added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (
                info.package_id,
                digest,
                size,
                info.module_id,
                info.version,
                json.dumps(info.as_dict(), sort_keys=True),
                key_id,
                source,
                int(pinned),
                int(info.compatible),
                now,
            ),
        )

    def delete_package(self, package_id: str) -> None:
        self.conn.execute('DELETE FROM packages WHERE package_id = ?', (package_id,))

    def digest_users(self, digest: str) -> int:
        """How many rows point at the file ``digest``."""
        return self.conn.execute('SELECT COUNT(*) FROM packages WHERE sha256 = ?', (digest,)).fetchone()[0]

    def pin_package(self, package_id: str) -> None:
        self.conn.execute('UPDATE packages SET pinned = 1 WHERE package_id = ?', (package_id,))

    def set_added_at(self, package_id: str, added_at: str) -> None:
        self.conn.execute('UPDATE packages SET added_at = ? WHERE package_id = ?', (added_at, package_id))

    # ----------------------------------------------------------------- the feed
    def feed_entries(self) -> dict[str, CatalogEntry]:
        rows = self.conn.execute('SELECT package_id, entry FROM feed_entries').fetchall()
        common: dict = {}  # values that repeat over the rows (models, OS lists, kinds), held once (see catalog.shared)
        entries = decoded_rows('feed_entries', rows, lambda row: row[0], lambda row: self._feed_entry(row[1], common))
        return {entry.package_id: entry for entry in entries}

    @staticmethod
    def _feed_entry(text: str, common: dict) -> CatalogEntry:
        data = json.loads(text)
        return CatalogEntry(
            data['package_id'],
            shared(common, data['module_id']),
            shared(common, data['module_name']),
            data['version'],
            shared(common, data['release_date']),
            data['published'],
            shared(common, tuple(shared(common, model) for model in data['models'])),
            shared(common, tuple(shared(common, name) for name in data['os'])),
            shared(common, data['kind']),
            data['auto_update'],
            data['size'],
            data['sha256'],
            data['url'],
        )

    def save_feed_entries(self, entries: Iterable[CatalogEntry], replace: bool) -> None:
        """Merge ``entries`` into the known feed, or make them the whole feed with ``replace``."""
        if replace:
            self.conn.execute('DELETE FROM feed_entries')
        self.conn.executemany(
            'INSERT OR REPLACE INTO feed_entries (package_id, entry, published) VALUES (?, ?, ?)',
            [(entry.package_id, json.dumps(entry.as_dict(), sort_keys=True), entry.published) for entry in entries],
        )

    def feed_state(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.conn.execute('SELECT key, value FROM feed_state')}

    def set_feed_state(self, pairs: Iterable[tuple[str, str]]) -> None:
        for key, value in pairs:
            self.conn.execute('INSERT OR REPLACE INTO feed_state (key, value) VALUES (?, ?)', (key, value))

    def restore_feed_state(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Feed state from a recovery record, keeping what the index has."""
        self.conn.executemany('INSERT OR IGNORE INTO feed_state (key, value) VALUES (?, ?)', list(pairs))

    # ----------------------------------------------------------------- tombstones
    def tombstones(self) -> dict[str, Tombstone]:
        return {row['package_id']: decoded('tombstones', row['package_id'], self._tombstone, row) for row in self.conn.execute('SELECT * FROM tombstones')}

    @staticmethod
    def _tombstone(row: sqlite3.Row) -> Tombstone:
        return Tombstone(
            package_id=row['package_id'],
            module_id=row['module_id'],
            version=row['version'],
            sha256=row['sha256'],
            deleted_at=row['deleted_at'],
            deleted_by=row['deleted_by'],
            forced=bool(row['forced']),
            models=tuple(json.loads(row['models'])),
            os=tuple(json.loads(row['os'])),
        )

    def tombstone_records(self) -> list[dict]:
        """The rows as stored (models and os as JSON text), for the recovery record."""
        return [dict(row) for row in self.conn.execute('SELECT * FROM tombstones ORDER BY package_id')]

    def put_tombstone(self, tombstone: Tombstone) -> None:
        self.restore_tombstones([tombstone.as_record()], replace=True)

    def restore_tombstones(self, records: list[dict], replace: bool = False) -> None:
        """Insert rows as stored (``tombstone_records``); keep existing ones unless ``replace``."""
        verb = 'INSERT OR REPLACE' if replace else 'INSERT OR IGNORE'
        self.conn.executemany(
            '%s INTO tombstones (%s) VALUES (%s)' % (verb, ', '.join(TOMBSTONE_COLUMNS), ', '.join('?' * len(TOMBSTONE_COLUMNS))),
            [tuple(record[column] for column in TOMBSTONE_COLUMNS) for record in records],
        )

    def clear_tombstones(self) -> None:
        self.conn.execute('DELETE FROM tombstones')

    # ----------------------------------------------------------------- refusals
    def refusals(self) -> list[Refusal]:
        return [
            Refusal(row['package_id'], row['sha256'], row['code'], row['reason'], row['refused_at'])
            for row in self._select('SELECT * FROM refusals ORDER BY package_id')
        ]

    def put_refusal(self, refusal: Refusal) -> None:
        self.conn.execute(
            'INSERT OR REPLACE INTO refusals (package_id, sha256, code, reason, refused_at) VALUES (?, ?, ?, ?, ?)',
            (refusal.package_id, refusal.sha256, refusal.code, refusal.reason, refusal.refused_at),
        )

    def delete_refusals(self, package_ids: Iterable[str]) -> None:
        self.conn.executemany('DELETE FROM refusals WHERE package_id = ?', [(package_id,) for package_id in package_ids])

    # ----------------------------------------------------------------- managers and their servers
    def managers(self) -> list[ManagerRow]:
        return [ManagerRow(row['manager_id'], row['last_seen']) for row in self.conn.execute('SELECT * FROM managers ORDER BY manager_id')]

    def touch_manager(self, manager_id: str, now: str) -> None:
        self.conn.execute(
            'INSERT INTO managers (manager_id, last_seen) VALUES (?, ?) ON CONFLICT(manager_id) DO UPDATE SET last_seen = excluded.last_seen', (manager_id, now)
        )

    def managers_seen_since(self, cutoff: str) -> set[str]:
        return {row[0] for row in self.conn.execute('SELECT manager_id FROM managers WHERE last_seen >= ?', (cutoff,))}

    def managers_not_seen_since(self, cutoff: str) -> list[str]:
        return [row[0] for row in self.conn.execute('SELECT manager_id FROM managers WHERE last_seen < ?', (cutoff,))]

    def forget_manager(self, manager_id: str) -> None:
        self.conn.execute('DELETE FROM servers WHERE manager_id = ?', (manager_id,))
        self.conn.execute('DELETE FROM managers WHERE manager_id = ?', (manager_id,))
        self._write('DELETE FROM readings WHERE manager_id = ?', (manager_id,))

    def servers(self, managers: Container[str] | None = None, but: str | None = None) -> list[Server]:
        """The stored servers, of ``managers`` only when given, never of the manager ``but``.

        Rows left out are not decoded: a sync that registers its own servers skips the JSON of all of them.
        """
        return [
            decoded('servers', (row['manager_id'], row['name']), self._server, row)
            for row in self.conn.execute('SELECT * FROM servers')
            if (managers is None or row['manager_id'] in managers) and row['manager_id'] != but
        ]

    @staticmethod
    def _server(row: sqlite3.Row) -> Server:
        modules = json.loads(row['modules'])
        if not isinstance(modules, dict):
            raise TypeError('modules is %s, not an object' % type(modules).__name__)
        return Server(manager_id=row['manager_id'], name=row['name'], model=row['model'], os=row['os'], modules=modules)

    def server_rows(self, manager_id: str) -> list[ServerRow]:
        """The servers of one manager as stored, sorted."""
        query = 'SELECT manager_id, name, model, os, modules FROM servers WHERE manager_id = ?'
        return sorted(ServerRow(*row) for row in self.conn.execute(query, (manager_id,)))

    def server_row(self, manager_id: str, name: str) -> ServerRow | None:
        row = self.conn.execute('SELECT manager_id, name, model, os, modules FROM servers WHERE manager_id = ? AND name = ?', (manager_id, name)).fetchone()
        return ServerRow(*row) if row else None

    def replace_servers(self, manager_id: str, rows: list[ServerRow]) -> None:
        """A manager's servers as declared (not read): the reading time of a server whose record changes or goes is dropped."""
        kept = set(rows)
        changed = [(manager_id, row.name) for row in self.server_rows(manager_id) if row not in kept]
        self._write_many('DELETE FROM readings WHERE manager_id = ? AND name = ?', changed)
        self.conn.execute('DELETE FROM servers WHERE manager_id = ?', (manager_id,))
        self.conn.executemany('INSERT INTO servers (manager_id, name, model, os, modules) VALUES (?, ?, ?, ?, ?)', rows)

    def put_server(self, row: ServerRow) -> None:
        self.conn.execute('INSERT OR REPLACE INTO servers (manager_id, name, model, os, modules) VALUES (?, ?, ?, ?, ?)', row)

    def delete_server(self, manager_id: str, name: str) -> bool:
        self._write('DELETE FROM readings WHERE manager_id = ? AND name = ?', (manager_id, name))
        return self.conn.execute('DELETE FROM servers WHERE manager_id = ? AND name = ?', (manager_id, name)).rowcount > 0

    # ----------------------------------------------------------------- when a server's versions were last read (issue 13.1)
    def put_reading(self, manager_id: str, name: str, read_at: str) -> None:
        """When exup_info last read this server's versions (UTC, catalog.format_time). Not a GENERATION_TABLES table:
        a reading that changes no version bumps no sync fingerprint and no locked plan."""
        self.conn.execute('INSERT OR REPLACE INTO readings (manager_id, name, read_at) VALUES (?, ?, ?)', (manager_id, name, read_at))

    def reading_span(self, first: tuple[str, str] | None = None, last: tuple[str, str] | None = None) -> dict[tuple[str, str], str]:
        """(manager_id, name) -> read_at as stored (a text; its rules check it), from ``first`` to ``last`` (all when not
        given). A store older code wrote has no readings table: no server has a reading time there."""
        where = ' WHERE (manager_id, name) >= (?, ?) AND (manager_id, name) <= (?, ?)' if first is not None and last is not None else ''
        args = tuple(first) + tuple(last) if first is not None and last is not None else ()
        rows = self._select('SELECT manager_id, name, read_at FROM readings' + where, args)
        return {(row[0], row[1]): row[2] for row in rows if isinstance(row[2], str)}  # a number or blob put there by hand: not known

    def _write(self, sql: str, args: tuple) -> None:
        """A write to a table a store of older code may lack (readings): nothing to change there."""
        self._write_many(sql, [args])

    def _write_many(self, sql: str, rows: list) -> None:
        if rows:
            try:
                self.conn.executemany(sql, rows)
            except sqlite3.OperationalError as exc:
                if not _is_missing_table(exc):
                    raise

    # ----------------------------------------------------------------- the whole fleet at once (the inventory plugin, issue 12)
    def server_page(self, after: tuple[str, str] | None = None, limit: int | None = None) -> list[Server]:
        """Servers in (manager_id, name) order, only those after ``after``, at most ``limit``: one query for any number."""
        query = 'SELECT * FROM servers' + (' WHERE (manager_id, name) > (?, ?)' if after else '') + ' ORDER BY manager_id, name'
        args: tuple = tuple(after) if after else ()
        if limit is not None:
            query, args = query + ' LIMIT ?', args + (limit,)
        rows = self.conn.execute(query, args).fetchall()
        return decoded_rows('servers', rows, lambda row: (row['manager_id'], row['name']), self._server)

    @staticmethod
    def _span(first: tuple[str, str] | None, last: tuple[str, str] | None) -> tuple[str, tuple]:
        if first is None or last is None:
            return '', ()
        return ' WHERE (manager_id, server) >= (?, ?) AND (manager_id, server) <= (?, ?)', tuple(first) + tuple(last)

    def bmc_module_span(self, first: tuple[str, str] | None = None, last: tuple[str, str] | None = None) -> list[tuple[str, str, BmcModuleRecord]]:
        """(manager_id, server, record) of every server from ``first`` to ``last`` (all when not given): one query."""
        where, args = self._span(first, last)
        rows = self._select('SELECT manager_id, server, module_id, previous, block, staged, since FROM bmc_modules' + where, args)
        return [(row[0], row[1], BmcModuleRecord(*row[2:])) for row in rows]

    def icon_span(self, first: tuple[str, str] | None = None, last: tuple[str, str] | None = None) -> list[tuple[str, str, str, str, str]]:
        """(manager_id, server, module_id, icon, set_at) the operators chose, from ``first`` to ``last`` (all when not given)."""
        where, args = self._span(first, last)
        return [tuple(row) for row in self._select('SELECT manager_id, server, module_id, icon, set_at FROM manual_icons' + where, args)]

    def setting_history(self, key: str) -> list[tuple[str, str]]:
        """(changed_at, value) of every change of one setting, oldest first."""
        return [(row[0], row[1]) for row in self._select('SELECT changed_at, value FROM settings WHERE key = ? ORDER BY id', (key,))]

    # ----------------------------------------------------------------- servers managed through their BMC
    def bmc_modules(self, manager_id: str, server: str) -> dict[str, BmcModuleRecord]:
        query = 'SELECT module_id, previous, block, staged, since FROM bmc_modules WHERE manager_id = ? AND server = ?'
        return {row[0]: BmcModuleRecord(*row) for row in self._select(query, (manager_id, server))}

    def put_bmc_module(self, manager_id: str, server: str, record: BmcModuleRecord) -> None:
        self.conn.execute(
            'INSERT OR REPLACE INTO bmc_modules (manager_id, server, module_id, previous, block, staged, since) VALUES (?, ?, ?, ?, ?, ?, ?)',
            (manager_id, server, record.module_id, record.previous, record.block, record.staged, record.since),
        )

    # ----------------------------------------------------------------- settings, status icons, restarts
    def setting_changes(self, at: str | None = None) -> list[tuple[str, str]]:
        """(key, value) of every settings change up to ``at`` (UTC text; default all), oldest first."""
        query = 'SELECT key, value FROM settings' + (' WHERE changed_at <= ?' if at else '') + ' ORDER BY id'
        return [(row[0], row[1]) for row in self._select(query, (at,) if at else ())]

    def add_setting_changes(self, changes: dict[str, str], now: str) -> None:
        self.conn.executemany('INSERT INTO settings (key, value, changed_at) VALUES (?, ?, ?)', [(k, v, now) for k, v in sorted(changes.items())])

    def chosen_icons(self, manager_id: str, server: str) -> dict[str, tuple[str, str]]:
        """module_id -> (icon, set_at) the operator chose for one server."""
        query = 'SELECT module_id, icon, set_at FROM manual_icons WHERE manager_id = ? AND server = ?'
        return {row[0]: (row[1], row[2]) for row in self._select(query, (manager_id, server))}

    def put_icon(self, manager_id: str, server: str, module_id: str, icon: str, now: str) -> None:
        self.conn.execute(
            'INSERT OR REPLACE INTO manual_icons (manager_id, server, module_id, icon, set_at) VALUES (?, ?, ?, ?, ?)',
            (manager_id, server, module_id, icon, now),
        )

    def reboot(self, manager_id: str, server: str) -> RebootRow | None:
        rows = self._select('SELECT boot_id, modules, requested_at, deadline FROM reboots WHERE manager_id = ? AND server = ?', (manager_id, server))
        return decoded('reboots', (manager_id, server), self._reboot, rows[0]) if rows else None

    @staticmethod
    def _reboot(row: typing.Sequence) -> RebootRow:
        modules = json.loads(row[1])
        if not isinstance(modules, list):
            raise TypeError('modules is %s, not a list' % type(modules).__name__)
        return RebootRow(row[0], modules, row[2], row[3])

    def put_reboot(self, manager_id: str, server: str, reboot: RebootRow) -> None:
        self.conn.execute(
            'INSERT OR REPLACE INTO reboots (manager_id, server, boot_id, modules, requested_at, deadline) VALUES (?, ?, ?, ?, ?, ?)',
            (manager_id, server, reboot.boot_id, json.dumps(sorted(reboot.modules)), reboot.requested_at, reboot.deadline),
        )

    # ----------------------------------------------------------------- the event log
    def add_event(self, time_text: str, level: str, code: str, message: str, detail: dict) -> None:
        self.conn.execute(
            'INSERT INTO events (time, level, code, message, detail) VALUES (?, ?, ?, ?, ?)',
            (time_text, level, code, message, json.dumps(detail, sort_keys=True)),
        )

    def recent_events(self, limit: int, server: str | None = None) -> list[dict]:
        """The newest ``limit`` events, newest first, their detail decoded; with ``server``, only those whose detail names it."""
        if server is None:
            rows = self.conn.execute('SELECT * FROM events ORDER BY id DESC LIMIT ?', (limit,)).fetchall()
            return [decoded('events', row['id'], self._event, row) for row in rows]
        # detail is json.dumps(sort_keys=True): '"server": "<name>"' narrows in SQL, the decoded detail decides (a nested key may match too)
        literal = ('"server": %s' % json.dumps(server)).replace('\\', '\\\\').replace('%', '\\%').replace('_', '\\_')
        out: list[dict] = []
        if limit <= 0:
            return out
        for row in self.conn.execute("SELECT * FROM events WHERE detail LIKE ? ESCAPE '\\' ORDER BY id DESC", ('%' + literal + '%',)):
            event = decoded('events', row['id'], self._event, row)
            if isinstance(event['detail'], dict) and event['detail'].get('server') == server:
                out.append(event)
                if len(out) >= limit:
                    break
        return out

    @staticmethod
    def _event(row: sqlite3.Row) -> dict:
        return dict(row, detail=json.loads(row['detail']))

    def job_outcome_logged(self, job_id: str) -> bool:
        """True when an event other than a start names host job ``job_id``."""
        literal = job_id.replace('\\', '\\\\').replace('%', '\\%').replace('_', '\\_')  # LIKE's wildcards in an id are its own characters
        pattern = '%%"job_id": "%s"%%' % literal
        return bool(self._select("SELECT 1 FROM events WHERE detail LIKE ? ESCAPE '\\' AND code NOT LIKE '%\\_started' ESCAPE '\\' LIMIT 1", (pattern,)))
