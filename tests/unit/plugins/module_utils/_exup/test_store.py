# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store's crash-safety invariants: atomic install, garbage collection of orphans, one writer.

A crash is simulated by stopping half-way through the steps the repository takes (the pieces
are public methods), then checking what the next writer finds and cleans.
"""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.store import Store


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
        conn.execute("INSERT INTO packages (package_id, sha256, size, module_id, version, info, key_id, source, added_at) "
                     "VALUES ('P', ?, 7, 'm', '1', '{}', 'k', 'manual', 'now')", (hashlib.sha256(b'indexed').hexdigest(),))
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
        stored = repo.stored_packages(conn)
    assert len(stored) == 2
    assert repo.store.pool_digests() == {item['sha256'] for item in stored.values()}
    for item in stored.values():
        assert verify_package(repo.store.pool_path(item['sha256']), keyring).info.package_id == item['package_id']


def test_one_writer_at_a_time(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    with store.writer():
        with pytest.raises(RepositoryError) as caught:
            with Store(store.root).writer(wait_seconds=0):
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
        with pytest.raises(Exception, match='readonly|query_only|attempt to write'):
            conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    finally:
        conn.close()
