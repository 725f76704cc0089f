# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository store on the embedded default: a directory plus SQLite.

Layout under the root::

    pool/sha256/<ab>/<digest>.zip   immutable package files, named by their SHA-256
    tmp/<digest>.part               downloads in progress (resumable)
    repo.db                         SQLite index (WAL): a row exists only for a verified file
    repo.lock                       one writer at a time (flock); readers never block

Crash safety: a file reaches the pool by write-to-temp, fsync, rename, fsync of
the directory, and only then gets its row. Deleting removes the row first, then
the file. A crash at any point leaves either an orphan pool file (collected by
``collect_garbage``) or a stale .part (resumed), never a row without its file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError

SCHEMA_VERSION = 1

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
"""


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """Files and index of one repository. ``Store(root)`` opens read-only if it does not exist."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.db_path = os.path.join(self.root, 'repo.db')
        self.lock_path = os.path.join(self.root, 'repo.lock')
        self.pool_dir = os.path.join(self.root, 'pool', 'sha256')
        self.tmp_dir = os.path.join(self.root, 'tmp')

    @property
    def exists(self):
        return os.path.exists(self.db_path)

    def _connect(self, path):
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute('PRAGMA busy_timeout = 30000')
        return conn

    def reader(self):
        """A connection for reading; an empty in-memory index when the store does not exist yet."""
        if self.exists:
            conn = self._connect(self.db_path)
            conn.execute('PRAGMA query_only = ON')
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'packages'").fetchone():
                return conn
            # The first writer was killed between creating repo.db and its schema (or is just
            # creating it): the store is still empty, and reading it must not fail.
            conn.close()
        conn = self._connect(':memory:')
        conn.executescript(SCHEMA)
        return conn

    @contextlib.contextmanager
    def writer(self, wait_seconds=600):
        """Hold the writer lock and yield a connection; creates the store on first use."""
        for path in (self.root, self.pool_dir, self.tmp_dir):
            os.makedirs(path, mode=0o755, exist_ok=True)
        lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise RepositoryError('repository %s is busy: another writer holds %s' % (self.root, self.lock_path), code='repository_busy')
                    time.sleep(0.2)
            conn = self._connect(self.db_path)
            try:
                conn.execute('PRAGMA journal_mode = WAL')
                conn.execute('PRAGMA synchronous = FULL')
                conn.executescript(SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                yield conn
            finally:
                conn.close()
        finally:
            os.close(lock_fd)  # closing the descriptor releases the flock

    def pool_path(self, digest):
        return os.path.join(self.pool_dir, digest[:2], digest + '.zip')

    def part_path(self, digest):
        return os.path.join(self.tmp_dir, digest + '.part')

    def install(self, source_path, digest):
        """Move a complete, verified file into the pool atomically and durably."""
        target = self.pool_path(digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(source_path, 'rb') as handle:
            os.fsync(handle.fileno())
        os.chmod(source_path, 0o444)
        os.replace(source_path, target)
        _fsync_dir(os.path.dirname(target))
        return target

    def pool_digests(self):
        """Digests of every file in the pool (for garbage collection and checks)."""
        found = set()
        if not os.path.isdir(self.pool_dir):
            return found
        for prefix in os.listdir(self.pool_dir):
            for name in os.listdir(os.path.join(self.pool_dir, prefix)):
                if name.endswith('.zip'):
                    found.add(name[:-4])
        return found

    def collect_garbage(self, conn, keep_parts=()):
        """Remove pool files no row points to and .part files not in ``keep_parts``. Writer only."""
        indexed = {row[0] for row in conn.execute('SELECT sha256 FROM packages')}
        removed = []
        for digest in self.pool_digests() - indexed:
            os.unlink(self.pool_path(digest))
            removed.append(digest)
        if os.path.isdir(self.tmp_dir):
            for name in os.listdir(self.tmp_dir):
                if name[:-len('.part')] not in keep_parts:
                    os.unlink(os.path.join(self.tmp_dir, name))
        return removed
