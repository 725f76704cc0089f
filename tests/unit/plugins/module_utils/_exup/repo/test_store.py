# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store's crash-safety invariants: atomic install, garbage collection of orphans, one writer.

A crash is simulated by stopping half-way through the steps the repository takes (the pieces
are public methods), then checking what the next writer finds and cleans.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import db as db_module, store as store_module
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.pipeline import Finished, Tally
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import STORE_VERSION, Store
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import Sync, SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import entry_for


def put_part(store, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(store.tmp_dir, exist_ok=True)
    with open(store.part_path(digest), 'wb') as handle:
        handle.write(data)
    return digest


def test_install_moves_the_part_into_the_pool(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    with store.writer():
        digest = put_part(store, b'package bytes')
        part = store.part_path(digest)
        target = store.install(part, digest)
    assert target == os.path.join(store.root, 'pool', 'sha256', digest[:2], digest + '.zip')
    assert not os.path.exists(part)  # a rename, not a copy: never two half-states of one file
    assert open(target, 'rb').read() == b'package bytes'
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444  # pool files are immutable
    assert store.pool_digests() == {digest}


def test_collect_garbage_removes_orphans_and_stale_parts(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    with store.writer() as conn:
        kept = store.install(store.part_path(put_part(store, b'indexed')), hashlib.sha256(b'indexed').hexdigest())
        conn.execute(
            "INSERT INTO packages (package_id, sha256, size, module_id, version, info, key_id, source, added_at) "
            "VALUES ('P', ?, 7, 'm', '1', '{}', 'k', 'manual', 'now')",
            (hashlib.sha256(b'indexed').hexdigest(),),
        )
        orphan = put_part(store, b'crashed before its row was written')
        store.install(store.part_path(orphan), orphan)
        resumable = put_part(store, b'half a download')
        stale = put_part(store, b'an abandoned download')
        with open(os.path.join(store.tmp_dir, 'tmpabc.add'), 'wb') as handle:  # a manual add cut short
            handle.write(b'x')
        removed = store.collect_garbage(conn, keep_parts={resumable})
    assert removed == [orphan]
    assert store.pool_digests() == {hashlib.sha256(b'indexed').hexdigest()} and os.path.exists(kept)
    assert sorted(os.listdir(store.tmp_dir)) == [resumable + '.part']
    assert not os.path.exists(store.part_path(stale))


def test_crash_between_install_and_index_leaves_only_an_orphan(repo, keyring, build_pkg, register, snapshot):
    """The package file reaches the pool, the process dies before the row: nothing is indexed, the
    listing is unaffected, and the next writer's garbage collection removes the file."""
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    before = snapshot(repo)
    path = build_pkg()
    digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    with repo.store.writer():
        with open(repo.store.part_path(digest), 'wb') as handle:
            handle.write(open(path, 'rb').read())
        repo.store.install(repo.store.part_path(digest), digest)
        # -- crash here: no index_package --
    assert repo.listing('mgr-a')['packages'] == []
    with repo.store.writer() as conn:
        assert repo.store.collect_garbage(conn) == [digest]
    assert snapshot(repo) == before


def test_crash_after_row_delete_before_unlink(repo, keyring, build_pkg, register, snapshot):
    """Deleting commits the row removal first: a crash before the unlink leaves an orphan file only."""
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    before = snapshot(repo)
    digest = repo.add_files([build_pkg(package_id='P')], keyring)[0]['sha256']
    with repo.store.writer() as conn:
        conn.execute('BEGIN IMMEDIATE')
        conn.execute("DELETE FROM packages WHERE package_id = 'P'")
        conn.execute('COMMIT')
        # -- crash here: the file is still in the pool --
    assert os.path.exists(repo.store.pool_path(digest)) and repo.listing('mgr-a')['packages'] == []
    with repo.store.writer() as conn:
        assert repo.store.collect_garbage(conn) == [digest]
    assert snapshot(repo) == before


def test_every_indexed_row_has_a_verified_file(repo, keyring, build_pkg, register):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    repo.add_files([build_pkg(version=v) for v in ('1', '2', '3')], keyring)
    repo.delete([repo.listing('mgr-a')['packages'][0]['package_id']], 'mgr-a')
    with repo.read() as conn:
        stored = conn.packages()
    assert len(stored) == 2
    assert repo.store.pool_digests() == {item.sha256 for item in stored.values()}
    for item in stored.values():
        assert verify_package(repo.store.pool_path(item.sha256), keyring).info.package_id == item.package_id


def test_one_writer_at_a_time(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    with store.writer():
        with pytest.raises(RepositoryError) as caught, Store(store.root).writer(wait_seconds=0):
            pass  # pragma: no cover - must not be reached
        assert caught.value.code == 'repository_busy'
        with store.reader() as conn:  # readers never block
            assert conn.execute('SELECT COUNT(*) FROM packages').fetchone()[0] == 0
    with Store(store.root).writer(wait_seconds=0):  # released when the first writer leaves
        pass


def test_reader_of_a_missing_store_creates_nothing(tmp_path):
    store = Store(str(tmp_path / 'nothing'))
    conn = store.reader()
    try:
        assert conn.execute('SELECT COUNT(*) FROM packages').fetchone()[0] == 0
    finally:
        conn.close()
    assert not store.exists and not os.path.exists(store.root)
    assert store.pool_digests() == set()


def test_reader_cannot_write(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    with store.writer():
        pass
    conn = store.reader()
    try:
        with pytest.raises(Exception, match=r'readonly|query_only|attempt to write'):
            conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    finally:
        conn.close()


# ----------------------------------------------------------------------------- the writer lock (issue 8 items 3 and 9)
HOLD_LOCK = """
import sys
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import STORE_VERSION, Store
with Store(sys.argv[1]).writer():
    print('held', flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


def hold_lock(root):
    """A real second process holding the writer lock until its stdin is closed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))  # ansible-test sets sys.path, not the environment
    holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == 'held'
    return holder


def release(holder):
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def test_a_second_writer_waits_a_bounded_time_then_is_busy(repo, register, snapshot):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    before = snapshot(repo, with_events=True)
    holder = hold_lock(repo.store.root)
    try:
        started = time.monotonic()
        with pytest.raises(RepositoryError) as caught, repo.store.writer(wait_seconds=1):
            pass  # pragma: no cover - must not be reached
        waited = time.monotonic() - started
    finally:
        release(holder)
    assert caught.value.code == 'repository_busy' and 'busy' in caught.value.msg and repo.store.lock_path in caught.value.msg
    assert 1 <= waited < 5  # it waited, and not for ever
    assert snapshot(repo, with_events=True) == before


def test_a_waiting_writer_proceeds_when_the_lock_is_released(repo):
    holder = hold_lock(repo.store.root)
    threading.Timer(0.5, release, (holder,)).start()
    started = time.monotonic()
    with repo.store.writer(wait_seconds=20):
        pass
    assert time.monotonic() - started < 15


class LockWaits:
    """A clock and a sleep for Store._lock: the sleeps are recorded (no real waiting), and ``release`` runs after
    ``release_after`` of them (the other writer leaving)."""

    def __init__(self, release_after=None, release=None):
        self.now = 100.0
        self.slept = []
        self.release_after, self.release = release_after, release

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        if len(self.slept) == self.release_after:
            self.release()


def held_flock(store):
    """The writer lock held through another open file description (flock conflicts even within one process)."""
    os.makedirs(store.root, exist_ok=True)
    other = os.open(store.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return other


def test_the_lock_wait_backs_off_from_5_ms_to_200_ms_and_takes_the_lock_once_free(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    other = held_flock(store)
    waits = LockWaits(release_after=9, release=lambda: os.close(other))
    mine = store._open_lock()
    try:
        store._lock(mine, 600, clock=waits.clock, sleep=waits.sleep)
        with pytest.raises(BlockingIOError):  # it holds the lock now: nobody else gets it
            probe = os.open(store.lock_path, os.O_RDWR)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(probe)
    finally:
        os.close(mine)
    assert waits.slept == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2])


def test_the_lock_wait_ends_at_wait_seconds_with_busy(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    other = held_flock(store)
    waits = LockWaits()
    mine = store._open_lock()
    try:
        with pytest.raises(RepositoryError) as caught:
            store._lock(mine, 0.5, clock=waits.clock, sleep=waits.sleep)
    finally:
        os.close(mine)
        os.close(other)
    assert caught.value.code == 'repository_busy' and store.lock_path in caught.value.msg
    assert waits.slept[:6] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.16])
    assert sum(waits.slept) == pytest.approx(0.5)  # the last wait is cut to what is left of wait_seconds, none after it
    assert waits.slept[-1] == pytest.approx(0.5 - 0.315)


def test_a_free_lock_is_taken_without_waiting(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    os.makedirs(store.root)
    waits = LockWaits()
    mine = store._open_lock()
    try:
        store._lock(mine, 0, clock=waits.clock, sleep=waits.sleep)
    finally:
        os.close(mine)
    assert waits.slept == []


def test_lock_file_is_for_the_owner_only(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    with store.writer():
        pass
    assert stat.S_IMODE(os.stat(store.lock_path).st_mode) == 0o600
    os.chmod(store.lock_path, 0o644)  # as every store before issue 8 made it
    with store.writer():
        pass
    assert stat.S_IMODE(os.stat(store.lock_path).st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason='changing to another user needs root')
def test_another_user_cannot_block_the_writers():
    """Before issue 8 any local user could open repo.lock read-only and flock it: every write then failed busy."""
    nobody = pwd.getpwnam('nobody')
    parent = tempfile.mkdtemp(prefix='exup-lock-')
    try:
        os.chmod(parent, 0o755)  # the other user may reach the store, as under /var/lib
        store = Store(os.path.join(parent, 'repo'))
        with store.writer():
            pass
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 3
            try:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                fd = os.open(store.lock_path, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                code = 0  # it holds the lock
            except PermissionError:
                code = 1
            finally:
                os._exit(code)
        assert os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 1
        with store.writer(wait_seconds=0):  # nothing blocks the owner
            pass
    finally:
        shutil.rmtree(parent)


# ----------------------------------------------------------------------------- store format (003 §4.3)
def meta(store, key):
    conn = sqlite3.connect(store.db_path)
    try:
        row = conn.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def set_meta(store, key, value):
    conn = sqlite3.connect(store.db_path)
    try:
        conn.execute('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)', (key, value))
        conn.commit()
    finally:
        conn.close()


def test_a_new_store_records_the_format_it_was_written_in(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    with store.writer():
        pass
    assert meta(store, 'schema_version') == str(STORE_VERSION) and STORE_VERSION >= 2
    assert meta(store, 'rebuild_needed') is None


def test_a_store_newer_than_the_code_is_refused(repo, register, snapshot):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    set_meta(repo.store, 'schema_version', str(STORE_VERSION + 1))
    before = snapshot(repo, with_events=True)
    for open_it in (repo.store.reader, repo.store.writer):
        with pytest.raises(RepositoryError) as caught, open_it():
            pass  # pragma: no cover - must not be reached
        assert caught.value.code == 'store_too_new'
        assert 'newer exup.fleet' in caught.value.msg and 'store format %d' % (STORE_VERSION + 1) in caught.value.msg
        assert caught.value.details == {'store_version': STORE_VERSION + 1, 'supported': STORE_VERSION}
    assert snapshot(repo, with_events=True) == before


def test_an_older_store_is_migrated_by_the_first_writer(repo, keyring, build_pkg, register):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    repo.add_files([build_pkg(package_id='P', version='1')], keyring, mode='pinned')
    os.unlink(repo.store.recovery_path)  # format 1 wrote none
    set_meta(repo.store, 'schema_version', '1')
    with repo.read() as conn:  # reads never migrate (they never write)
        assert [row['package_id'] for row in conn.execute('SELECT package_id FROM packages')] == ['P']
    assert meta(repo.store, 'schema_version') == '1'
    with repo.store.writer():
        pass
    assert meta(repo.store, 'schema_version') == str(STORE_VERSION)
    with repo.read() as conn:
        migrated = [dict(row) for row in conn.execute("SELECT code, detail FROM events WHERE code = 'store_migrated'")]
    assert len(migrated) == 1 and '"from_version": 1' in migrated[0]['detail']
    assert json.load(open(repo.store.recovery_path))['packages']['P']['pinned'] is True


def test_a_damaged_index_is_a_clear_error_and_the_pool_stays(repo, keyring, build_pkg, register):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    repo.add_files([build_pkg(package_id='P')], keyring, mode='pinned')
    for suffix in ('-wal', '-shm'):
        if os.path.exists(repo.store.db_path + suffix):
            os.unlink(repo.store.db_path + suffix)
    with open(repo.store.db_path, 'wb') as handle:
        handle.write(os.urandom(8192))
    before = every_file(repo.store)
    for open_it in (repo.store.reader, repo.store.writer):
        with pytest.raises(RepositoryError) as caught, open_it():
            pass  # pragma: no cover - must not be reached
        assert caught.value.code == 'store_damaged'
        assert 'damaged' in caught.value.msg and 'state=rebuilt' in caught.value.msg
    assert every_file(repo.store) == before and len(repo.store.pool_digests()) == 1


def every_file(store):
    """relative path -> SHA-256 of every file of the store (repo.db included, whatever its bytes)."""
    found = {}
    for dirpath, _dirnames, filenames in os.walk(store.root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            with open(full, 'rb') as handle:
                found[os.path.relpath(full, store.root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def test_a_lost_index_keeps_every_pool_file_until_the_rebuild(repo, keyring, build_pkg, register):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    repo.add_files([build_pkg(package_id='P', version='1')], keyring, mode='pinned')
    record = open(repo.store.recovery_path).read()
    pool = repo.store.pool_digests()
    os.unlink(repo.store.db_path)  # lost (WAL files left behind too, as after a bad restore)
    with repo.store.writer() as conn:
        assert repo.store.rebuild_needed(conn)
        assert repo.store.collect_garbage(conn) == []
        assert repo.store.unindexed(conn) == sorted(pool)
    assert repo.store.pool_digests() == pool
    assert open(repo.store.recovery_path).read() == record  # the only copy of the pin is not overwritten


# ----------------------------------------------------------------------------- durability order of a sync batch (issue 10)
def placed(store, keyring, path):
    """A package as a sync's worker leaves it: verified, renamed into the pool (its directory not flushed yet)."""
    verified = verify_package(path, keyring)
    entry = entry_for(verified.info, path, 'packages/%s.zip' % verified.info.package_id, '2025-01-01T00:00:00Z')
    shutil.copyfile(path, store.part_path(entry.sha256))
    store.place(store.part_path(entry.sha256), entry.sha256)
    return Finished(entry, verified=verified, downloaded=True)


def test_a_batch_flushes_the_pool_directories_of_its_files_before_its_commit(repo, keyring, build_pkg, monkeypatch):
    """A row may name a pool file only once the rename into its directory survives a power loss: every directory
    fsync a file needs comes after that file's rename and before the COMMIT of the batch that gives it its row."""
    order = []
    monkeypatch.setattr(store_module, '_fsync_dir', lambda path: order.append(('fsync', path)))
    real_place, real_transaction = Store.place, Index.transaction

    def place(store, source, digest):
        order.append(('place', os.path.dirname(store.pool_path(digest)), digest))
        return real_place(store, source, digest)

    @contextlib.contextmanager
    def transaction(index):
        with real_transaction(index):
            yield index
        order.append(('commit', set(index.package_digests().values())))

    monkeypatch.setattr(Store, 'place', place)
    monkeypatch.setattr(Index, 'transaction', transaction)
    batches = [[build_pkg(version='1.%d' % minor) for minor in range(3)], [build_pkg(version='2.%d' % minor) for minor in range(2)]]
    sync = Sync(repo, None, keyring, SyncOptions('http://feed.example/catalog.json', 'mgr-a'))
    with repo.store.writer() as index:
        sync.index = index
        for paths in batches:
            sync.index_batch([placed(repo.store, keyring, path) for path in paths], Tally(total=5))
    renames = [(at, step[1], step[2]) for at, step in enumerate(order) if step[0] == 'place']
    assert len(renames) == 5
    for at, directory, digest in renames:
        committed = next(later for later in range(at, len(order)) if order[later][0] == 'commit' and digest in order[later][1])
        assert ('fsync', directory) in order[at:committed], digest


# ----------------------------------------------------------------- write_json_atomically (the recovery record)
def test_a_json_record_is_streamed_to_the_bytes_json_dumps_makes_and_not_rewritten_when_unchanged(tmp_path, monkeypatch):
    path = str(tmp_path / 'recovery.json')
    value = {'packages': {'P%04d' % number: {'pinned': number % 2 == 0, 'sha256': '%064x' % number} for number in range(2000)}, 'tombstones': []}
    fsynced = []
    real_fsync = os.fsync
    monkeypatch.setattr(store_module.os, 'fsync', lambda fd: (fsynced.append(fd), real_fsync(fd)))

    assert store_module.write_json_atomically(path, value) is True
    assert open(path, 'rb').read() == json.dumps(value, sort_keys=True, indent=1).encode()
    assert len(fsynced) == 2  # the file, then its directory
    inode = os.stat(path).st_ino

    fsynced.clear()
    assert store_module.write_json_atomically(path, value) is False  # the same bytes: the file is left as it is
    assert os.stat(path).st_ino == inode and not fsynced
    assert sorted(os.listdir(tmp_path)) == ['recovery.json']  # no temp file left

    value['tombstones'].append({'package_id': 'P0001'})
    assert store_module.write_json_atomically(path, value) is True
    assert json.load(open(path))['tombstones'] == [{'package_id': 'P0001'}]
    assert sorted(os.listdir(tmp_path)) == ['recovery.json']


def test_prune_rows_say_what_the_full_rows_say_without_decoding_the_info(repo, keyring, build_pkg, monkeypatch):
    repo.add_files([build_pkg(version='1.0', package_id='BIOS-1.0')], keyring, mode='pinned')
    repo.record_server('mgr-a', server_from_dict('mgr-a', {'name': 'h0', 'model': 'R120h-1M', 'os': 'linux'}))
    repo.add_files([build_pkg(version='1.1', package_id='BIOS-1.1')], keyring)  # needed by h0
    with repo.read() as index:
        full = index.packages()
        monkeypatch.setattr(db_module.json, 'loads', None)  # prune_rows decodes no info (json.loads would fail now)
        light = index.prune_rows()
    assert sorted(light) == sorted(full) == ['BIOS-1.0', 'BIOS-1.1']
    for package_id, row in light.items():
        assert (row.sha256, row.module_id, row.version, row.pinned) == (
            full[package_id].sha256,
            full[package_id].module_id,
            full[package_id].version,
            full[package_id].pinned,
        )
    assert light['BIOS-1.0'].pinned is True and light['BIOS-1.1'].pinned is False
