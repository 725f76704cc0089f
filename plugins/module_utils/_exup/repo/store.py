# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository store on the embedded default: a directory plus SQLite.

Layout under the root::

    pool/sha256/<ab>/<digest>.zip   immutable package files, named by their SHA-256
    tmp/<digest>.part               downloads in progress (resumable)
    repo.db                         SQLite index (WAL): a row exists only for a verified file
    repo.lock                       one writer at a time (flock, mode 0600: only the owner can take it); readers never block
    recovery.json                   what a rebuild of a lost repo.db cannot read from the pool: pins, sources,
                                    tombstones, the feed's rollback state (rewritten after each writer session)
    quarantine/<digest>.zip         pool files a rebuild could not verify, kept for the operator
    feed/catalog-<digest>.json      the last complete catalog a sync verified, the vendor's bytes as received (the feed
                                    view a chained repository syncs from, docs/architecture.md "Chained repositories")
    feed/kept.json                  which one it is: {version, sha256, size, file}, replaced atomically after the file
    feed/downstream-id              this repository's id as a manager of its upstream, made by its first chained sync

Crash safety: a file reaches the pool by write-to-temp, fsync, rename, fsync of
the directory, and only then gets its row. Deleting removes the row first, then
the file. A crash at any point leaves either an orphan pool file (collected by
``collect_garbage``) or a stale .part (resumed), never a row without its file.

Store format (003 §4.3): ``meta.schema_version`` is the format this code's version wrote. A store written
by a newer format is refused (store_too_new), an older one is migrated by the first writer (store_migrated).
A repo.db created while the pool already holds files means the index was lost: ``meta.rebuild_needed`` is
set, garbage collection keeps every pool file, and ``rebuild.rebuild_index`` restores the index (003 §4.4).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import socket
import sqlite3
import stat
import time
import typing
from collections.abc import Callable, Container, Iterable, Iterator

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import file_digest
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import TOMBSTONE_COLUMNS, Index, connect

#: The store format this code writes (meta ``schema_version``). 1: issues 1-7. 2: the recovery record
#: (recovery.json), the store version checks and the rebuild marker (issue 8).
STORE_VERSION = 2
SCHEMA_VERSION = STORE_VERSION  # the name older code used
#: feed_state keys kept in the recovery record: the rollback protection must survive a lost index. The
#: ETag and Last-Modified are not: the catalog entries were lost with the index, so the next sync needs the full catalog.
RECOVERED_FEED_STATE = ('feed_url', 'base_url', 'catalog_version', 'catalog_expires', 'last_access', 'catalog_key_ids', 'feed_id')


KEPT_NAME = 'kept.json'
DOWNSTREAM_ID_NAME = 'downstream-id'
_KEPT_FILE = re.compile(r'catalog-[0-9a-f]{64}\.json', re.ASCII)


class KeptCatalog(typing.NamedTuple):
    """The catalog bytes a sync kept: the last complete answer it verified (version, SHA-256 and size of the bytes)."""

    version: int
    sha256: str
    size: int
    path: str


class StagedCatalog(typing.NamedTuple):
    """A catalog answer written to tmp/ before its verification: kept if it verifies and is complete, else removed."""

    path: str
    sha256: str
    size: int


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def write_json_atomically(path: str, value: typing.Any) -> bool:
    """Write ``value`` as JSON to ``path`` by temp file, fsync and rename (a reader sees the old or the new file), unless
    ``path`` holds those bytes already. Streamed and compared by digest: a record of 10,000 packages is never a string in
    memory (it made the peak of a full sync, issue 10). True when written."""
    tmp = path + '.tmp'
    digest = hashlib.sha256()
    with open(tmp, 'w', encoding='ascii') as handle:  # ensure_ascii: the encoder writes ASCII only
        for chunk in json.JSONEncoder(sort_keys=True, indent=1).iterencode(value):
            digest.update(chunk.encode('ascii'))
            handle.write(chunk)
        try:
            unchanged = file_digest(path)[1] == digest.hexdigest()
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            handle.flush()
            os.fsync(handle.fileno())
    if unchanged:
        os.unlink(tmp)
        return False
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))
    return True


def damaged(store: Store, exc: BaseException) -> RepositoryError:
    """The error of a repo.db SQLite cannot read (garbage bytes, a cut file)."""
    return RepositoryError(
        'the repository index %s is damaged (%s): rebuild it from the pool with exup_package state=rebuilt; the package files are kept' % (store.db_path, exc),
        code='store_damaged',
    )


def check_store_version(store: Store, version: int) -> None:
    """Refuse a store written by a newer format: this code could misread it or break it (003 §4.3)."""
    if version > STORE_VERSION:
        raise RepositoryError(
            'the repository %s was written by a newer exup.fleet (store format %d, this code knows up to %d): '
            'upgrade the collection on this host; a repository moves only to the same or a newer version' % (store.root, version, STORE_VERSION),
            code='store_too_new',
            store_version=version,
            supported=STORE_VERSION,
        )


def _migrate_1_to_2(index: Index) -> str:
    """Format 2 adds no table; the recovery record is written when the migrating writer leaves."""
    del index
    return 'recovery record and store version checks'


#: from version -> the step to the next one (each returns what it changed, for the store_migrated event)
MIGRATIONS = {1: _migrate_1_to_2}


class Store:
    """Files and index of one repository. ``Store(root)`` opens read-only if it does not exist."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.db_path = os.path.join(self.root, 'repo.db')
        self.lock_path = os.path.join(self.root, 'repo.lock')
        self.pool_dir = os.path.join(self.root, 'pool', 'sha256')
        self.tmp_dir = os.path.join(self.root, 'tmp')
        self.recovery_path = os.path.join(self.root, 'recovery.json')
        self.quarantine_dir = os.path.join(self.root, 'quarantine')
        self.feed_dir = os.path.join(self.root, 'feed')

    @property
    def exists(self) -> bool:
        return os.path.exists(self.db_path)

    def reader(self) -> Index:
        """The one way to read: the index opened query-only; an empty in-memory index when the store does not exist yet
        (a read never creates it). Close it, or use it in a ``with``."""
        if self.exists:
            index = Index(connect(self.db_path))
            try:
                index.make_query_only()
                if index.has_table('packages'):
                    check_store_version(self, index.store_version())
                    return index
            except sqlite3.DatabaseError as exc:
                index.close()
                raise damaged(self, exc) from None
            except RepositoryError:
                index.close()
                raise
            # The first writer was killed between creating repo.db and its schema (or is just
            # creating it): the store is still empty, and reading it must not fail.
            index.close()
        return self.empty_index()

    @staticmethod
    def empty_index() -> Index:
        """An empty in-memory index: what readers see of a store that does not exist yet."""
        index = Index(connect(':memory:'))
        index.create_schema()
        return index

    def _open_lock(self) -> int:
        """The lock file, opened for writing and only by its owner: a reader-only descriptor could flock it too, so a
        lock file others can open would let any local user block every write (issue 8). An older 0644 file is fixed."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) != 0o600 and info.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
        return fd

    def _lock(self, lock_fd: int, wait_seconds: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        """Take the writer lock, waiting at most ``wait_seconds``: the waits start at 5 ms and double up to 200 ms, so a
        short writer (a BMC task's few rows) is followed within milliseconds, and a long one costs 5 wake-ups a second."""
        deadline = clock() + wait_seconds
        delay = 0.005
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                left = deadline - clock()
                if left <= 0:
                    raise RepositoryError('repository %s is busy: another writer holds %s' % (self.root, self.lock_path), code='repository_busy') from None
                sleep(min(delay, left))
                delay = min(delay * 2, 0.2)

    @contextlib.contextmanager
    def locked(self, wait_seconds: float = 600) -> Iterator[None]:
        """Hold the writer lock (no index opened): the writer, and the rebuild that replaces the index."""
        for path in (self.root, self.pool_dir, self.tmp_dir):
            os.makedirs(path, mode=0o755, exist_ok=True)
        lock_fd = self._open_lock()
        try:
            self._lock(lock_fd, wait_seconds)
            yield
        finally:
            os.close(lock_fd)  # closing the descriptor releases the flock

    @contextlib.contextmanager
    def writer(self, wait_seconds: float = 600) -> Iterator[Index]:
        """Hold the writer lock and yield the index; creates the store on first use. The recovery record is
        rewritten when the session ends without an error."""
        with self.locked(wait_seconds):
            index = self.open_index()
            try:
                yield index
                self.save_recovery(index)
            except sqlite3.DatabaseError as exc:
                if exc.__class__ is not sqlite3.DatabaseError:  # OperationalError and the like are not damage
                    raise
                raise damaged(self, exc) from None
            finally:
                index.close()

    @contextlib.contextmanager
    def session(self, check_mode: bool = False, wait_seconds: float = 600) -> Iterator[Index]:
        """The writer's index, or in check mode a reader's (nothing is written, the store is not created)."""
        if check_mode:
            with self.reader() as index:
                yield index
        else:
            with self.writer(wait_seconds) as index:
                yield index

    def open_index(self) -> Index:
        """Open (creating, migrating) repo.db for the writer holding the lock."""
        fresh = not self.exists
        if fresh:
            # a WAL left by a lost repo.db belongs to no database now
            for suffix in ('-wal', '-shm'):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.db_path + suffix)
        index = Index(connect(self.db_path))
        try:
            version = STORE_VERSION if fresh else index.store_version()
            check_store_version(self, version)
            index.make_durable()
            index.create_schema()
            if fresh:
                self._start_index(index)
            elif version < STORE_VERSION:
                self._migrate(index, version)
        except sqlite3.DatabaseError as exc:
            index.close()
            if exc.__class__ is not sqlite3.DatabaseError and 'not a database' not in str(exc):
                raise
            raise damaged(self, exc) from None
        except BaseException:
            index.close()
            raise
        return index

    def _start_index(self, index: Index) -> None:
        with index.transaction():
            index.set_store_version(STORE_VERSION)
            if self.pool_digests() or os.path.exists(self.recovery_path):
                # repo.db is new but the store is not: its index was lost. Nothing may delete pool files until a rebuild,
                # and the tombstones and rollback state hold at once (a sync must not fetch deleted packages meanwhile).
                index.mark_rebuild_needed(_now_text())
                self.restore_records(index, self.load_recovery())

    @staticmethod
    def restore_records(index: Index, record: dict[str, typing.Any]) -> tuple[int, list]:
        """Tombstones and feed state of a recovery record into an index, keeping what the index has (inside a transaction)."""
        rows = [row for row in record['tombstones'] if isinstance(row, dict) and all(column in row for column in TOMBSTONE_COLUMNS)]
        index.restore_tombstones(rows)
        feed = sorted((key, value) for key, value in record['feed_state'].items() if key in RECOVERED_FEED_STATE and isinstance(value, str))
        index.restore_feed_state(feed)
        return len(rows), [key for key, _value in feed]

    def _migrate(self, index: Index, version: int) -> None:
        with index.transaction():
            steps = []
            before = version
            while version < STORE_VERSION:
                steps.append(MIGRATIONS[version](index))
                version += 1
            index.set_store_version(version)
            ev.record(index, _now_text(), ev.event('store_migrated', None, from_version=before, to_version=version, changes=steps))

    @staticmethod
    def rebuild_needed(index: Index) -> str | None:
        """When the index was lost (repo.db made again over a pool): the time it was noticed, else None."""
        return index.rebuild_needed()

    # ----------------------------------------------------------------- recovery record (003 §4.4)
    @staticmethod
    def recovery_data(index: Index) -> dict:
        """What a rebuild needs and the pool cannot say: per package its pin, source and date; the tombstones; the feed's rollback state."""
        feed = {key: value for key, value in index.feed_state().items() if key in RECOVERED_FEED_STATE}
        return {'store_version': STORE_VERSION, 'packages': index.recovery_packages(), 'tombstones': index.tombstone_records(), 'feed_state': feed}

    def save_recovery(self, index: Index) -> None:
        """Rewrite recovery.json when the index says something new. Never while the index is lost: the record is
        then the only copy of the pins and tombstones."""
        if index.rebuild_needed():
            return
        # The record is made of packages, tombstones and feed_state only: while no write reached them (db.GENERATION_TABLES'
        # counter, issue 10) it is what it was, and a re-sync need not encode 10,000 rows to find that out.
        written = '%d:%d' % (STORE_VERSION, index.data_generation())
        if index.data_generation() > 0 and index.recovery_written() == written and os.path.exists(self.recovery_path):
            return
        write_json_atomically(self.recovery_path, self.recovery_data(index))
        index.set_recovery_written(written)

    def load_recovery(self) -> dict[str, typing.Any]:
        """The recovery record, or an empty one when it is missing or unreadable (the rebuild then restores less)."""
        empty: dict[str, typing.Any] = {'packages': {}, 'tombstones': [], 'feed_state': {}}
        try:
            with open(self.recovery_path, 'rb') as handle:
                data = json.loads(handle.read().decode('utf-8'))
        except (OSError, ValueError):
            return empty
        if not isinstance(data, dict):
            return empty
        return {key: data.get(key) if isinstance(data.get(key), type(value)) else value for key, value in empty.items()}

    # ----------------------------------------------------------------- the kept catalog (the feed view's, service/feed.py)
    def stage_catalog(self, body: bytes | bytearray) -> StagedCatalog:
        """Write a catalog answer to tmp/ as it was received, before it is verified (writer only; not fsynced yet)."""
        os.makedirs(self.tmp_dir, exist_ok=True)
        path = os.path.join(self.tmp_dir, 'catalog-%s.part' % secrets.token_hex(8))
        with open(path, 'wb') as handle:
            handle.write(body)
        return StagedCatalog(path, hashlib.sha256(body).hexdigest(), len(body))

    def keep_catalog(self, staged: StagedCatalog, version: int) -> KeptCatalog:
        """Make a verified, complete catalog the kept one: its file durable and renamed first, then kept.json switched to it
        atomically, then the older files removed. A crash at any point leaves the old or the new one kept, each whole."""
        os.makedirs(self.feed_dir, mode=0o755, exist_ok=True)
        name = 'catalog-%s.json' % staged.sha256
        target = os.path.join(self.feed_dir, name)
        with open(staged.path, 'rb') as handle:
            os.fsync(handle.fileno())
        os.chmod(staged.path, 0o444)
        os.replace(staged.path, target)
        _fsync_dir(self.feed_dir)
        write_json_atomically(os.path.join(self.feed_dir, KEPT_NAME), {'version': version, 'sha256': staged.sha256, 'size': staged.size, 'file': name})
        for other in os.listdir(self.feed_dir):
            if other != name and _KEPT_FILE.fullmatch(other):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.feed_dir, other))
        return KeptCatalog(version, staged.sha256, staged.size, target)

    def kept_catalog(self) -> KeptCatalog | None:
        """The kept catalog, or None when there is none (or its record is unreadable: the next complete answer replaces it)."""
        try:
            with open(os.path.join(self.feed_dir, KEPT_NAME), 'rb') as handle:
                data = json.loads(handle.read(4096).decode('utf-8'))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get('file'), str) or not _KEPT_FILE.fullmatch(data['file']):
            return None
        version, size, digest = data.get('version'), data.get('size'), data.get('sha256')
        if not isinstance(version, int) or not isinstance(size, int) or data['file'] != 'catalog-%s.json' % digest:
            return None
        return KeptCatalog(version, str(digest), size, os.path.join(self.feed_dir, data['file']))

    def downstream_id(self) -> str:
        """This repository's manager id at its upstream (made once, kept in feed/downstream-id; writer only).

        Not its own manager's id: every repository's own manager is "local", and two inner repositories of one DMZ
        repository must not replace each other's needs there. The host name makes it readable in the upstream's listing.
        """
        path = os.path.join(self.feed_dir, DOWNSTREAM_ID_NAME)
        try:
            with open(path, encoding='ascii') as handle:
                known = handle.read(80).strip()
            if re.fullmatch(r'chain-[A-Za-z0-9._+-]{1,58}', known):
                return known
        except (OSError, UnicodeDecodeError):
            pass
        host = re.sub(r'[^A-Za-z0-9.+-]+', '-', socket.gethostname().split('.')[0]).strip('.+-')[:40] or 'repository'
        made = 'chain-%s-%s' % (host, secrets.token_hex(4))
        os.makedirs(self.feed_dir, mode=0o755, exist_ok=True)
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='ascii') as handle:
            handle.write(made + '\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.feed_dir)
        return made

    def pool_path(self, digest: str) -> str:
        return os.path.join(self.pool_dir, digest[:2], digest + '.zip')

    def part_path(self, digest: str) -> str:
        return os.path.join(self.tmp_dir, digest + '.part')

    def install(self, source_path: str, digest: str) -> str:
        """Move a complete, verified file into the pool atomically and durably."""
        target = self.place(source_path, digest)
        self.flush_dirs([os.path.dirname(target)])
        return target

    def place(self, source_path: str, digest: str) -> str:
        """Make a complete, verified file durable and rename it into the pool; its directory entry is durable only
        after ``flush_dirs`` of its directory: no row may name it before (the sync flushes once per batch)."""
        target = self.pool_path(digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(source_path, 'rb') as handle:
            os.fsync(handle.fileno())
        os.chmod(source_path, 0o444)
        os.replace(source_path, target)
        return target

    @staticmethod
    def flush_dirs(dirs: Iterable[str]) -> None:
        """fsync each pool directory once: the renames into them survive a power loss from here on."""
        for path in sorted(set(dirs)):
            _fsync_dir(path)

    def pool_digests(self) -> set[str]:
        """Digests of every file in the pool (for garbage collection and checks)."""
        found: set[str] = set()
        if not os.path.isdir(self.pool_dir):
            return found
        for prefix in os.listdir(self.pool_dir):
            for name in os.listdir(os.path.join(self.pool_dir, prefix)):
                if name.endswith('.zip'):
                    found.add(name[:-4])
        return found

    def collect_garbage(self, index: Index, keep_parts: Container[str] = ()) -> list:
        """Remove pool files no row points to and .part files not in ``keep_parts``. Writer only.

        While the index is lost (``rebuild_needed``) pool files without a row are kept: they are what
        the rebuild restores the index from (003 §4.4)."""
        indexed = set(index.package_digests().values())
        removed = []
        if not index.rebuild_needed():
            for digest in sorted(self.pool_digests() - indexed):
                os.unlink(self.pool_path(digest))
                removed.append(digest)
        if os.path.isdir(self.tmp_dir):
            for name in os.listdir(self.tmp_dir):
                if name[: -len('.part')] not in keep_parts:
                    os.unlink(os.path.join(self.tmp_dir, name))
        return removed

    def unindexed(self, index: Index) -> list:
        """Digests of pool files without a row (kept while the index is lost)."""
        return sorted(self.pool_digests() - set(index.package_digests().values()))
