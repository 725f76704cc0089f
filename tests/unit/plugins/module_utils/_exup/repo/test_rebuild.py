# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rebuilding a lost or damaged index from the pool (003 §4.4, issue 8 item 10)."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.rebuild import index_state, rebuild_index

SERVER = {'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}


def populate(repo, keyring, build_pkg, register):
    """Three packages (one pinned), one deleted (a tombstone), and a feed's rollback state."""
    register('mgr-a', [SERVER])
    repo.add_files([build_pkg(package_id='P1', version='1'), build_pkg(package_id='P2', version='2')], keyring)
    repo.add_files([build_pkg(package_id='OLD', version='0.1')], keyring, mode='pinned')
    repo.add_files([build_pkg(package_id='P3', version='3')], keyring)
    repo.delete(['P1'], 'mgr-a')
    with repo.store.writer() as conn:
        conn.execute("INSERT INTO feed_state (key, value) VALUES ('catalog_version', '7'), ('etag', '\"abc\"')")
    return state_of(repo)


def state_of(repo):
    with repo.read() as conn:
        packages = {pid: (item.sha256, item.pinned, item.source, item.added_at) for pid, item in conn.packages().items()}
        tombstones = {pid: (t.sha256, t.deleted_by) for pid, t in conn.tombstones().items()}
        return packages, tombstones, conn.feed_state().get('catalog_version')


def drop_index(store):
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(store.db_path + suffix):
            os.unlink(store.db_path + suffix)


def test_deleted_repo_db_is_rebuilt_with_the_same_packages_pins_and_tombstones(repo, keyring, build_pkg, register):
    before = populate(repo, keyring, build_pkg, register)
    assert set(before[0]) == {'P2', 'P3', 'OLD'} and before[0]['OLD'][1] is True and set(before[1]) == {'P1'}
    drop_index(repo.store)
    assert index_state(repo.store) == 'missing'

    result = rebuild_index(repo, keyring)

    assert result['changed'] and result['state'] == 'missing' and result['quarantined'] == []
    assert state_of(repo) == before
    assert [e['code'] for e in result['events']] == ['store_rebuilt'] and result['events'][0]['detail']['pinned'] == 1
    with repo.read() as conn:
        assert 'etag' not in conn.feed_state()  # the catalog entries were lost: the next sync asks for the full catalog
        assert not repo.store.rebuild_needed(conn)
    assert index_state(repo.store) == 'sound'
    again = rebuild_index(repo, keyring)
    assert again['changed'] is False and again['state'] == 'sound'


def test_a_sync_or_any_writer_after_the_loss_then_the_rebuild(repo, keyring, build_pkg, register):
    """The loss is noticed by the next writer (it marks the index lost); the rebuild merges into that index."""
    before = populate(repo, keyring, build_pkg, register)
    drop_index(repo.store)
    register('mgr-a', [SERVER])  # e.g. the manager's next presence report
    with repo.store.writer() as conn:
        assert repo.store.collect_garbage(conn) == []
    assert index_state(repo.store) == 'lost'
    result = rebuild_index(repo, keyring)
    assert result['state'] == 'lost' and state_of(repo) == before
    assert repo.listing('mgr-a')['managers']  # what was written after the loss stays


def test_damaged_repo_db_is_rebuilt_and_kept_aside(repo, keyring, build_pkg, register):
    before = populate(repo, keyring, build_pkg, register)
    drop_index(repo.store)
    garbage = os.urandom(4096)
    with open(repo.store.db_path, 'wb') as handle:
        handle.write(garbage)
    assert index_state(repo.store) == 'damaged'

    result = rebuild_index(repo, keyring)

    assert result['state'] == 'damaged' and state_of(repo) == before
    assert open(result['moved_aside'], 'rb').read() == garbage  # kept for the operator


def test_unverifiable_pool_files_go_to_quarantine(repo, keyring, other_key, build_pkg, register, tmp_path):
    before = populate(repo, keyring, build_pkg, register)
    stranger = build_pkg(package_id='STRANGER', version='9', key=other_key, name='stranger.zip')
    digest = '0' * 64  # a file named by a digest it does not have
    os.makedirs(os.path.dirname(repo.store.pool_path(digest)), exist_ok=True)
    shutil.copyfile(stranger, repo.store.pool_path(digest))
    drop_index(repo.store)

    result = rebuild_index(repo, keyring)

    assert [(q['sha256'], q['code']) for q in result['quarantined']] == [(digest, 'digest_mismatch')]
    assert os.path.exists(os.path.join(repo.store.quarantine_dir, digest + '.zip'))
    assert digest not in repo.store.pool_digests() and state_of(repo) == before


def test_rebuild_in_check_mode_changes_nothing(repo, keyring, build_pkg, register):
    populate(repo, keyring, build_pkg, register)
    drop_index(repo.store)
    pool = repo.store.pool_digests()
    result = rebuild_index(repo, keyring, check_mode=True)
    assert result['changed'] and sorted(p['package_id'] for p in result['packages']) == ['OLD', 'P2', 'P3']
    assert [p['pinned'] for p in result['packages'] if p['package_id'] == 'OLD'] == [True]
    assert not repo.store.exists and repo.store.pool_digests() == pool


def test_rebuild_without_a_recovery_record_restores_the_packages(repo, keyring, build_pkg, register):
    before = populate(repo, keyring, build_pkg, register)
    drop_index(repo.store)
    os.unlink(repo.store.recovery_path)
    rebuild_index(repo, keyring)
    packages, tombstones, version = state_of(repo)
    assert set(packages) == set(before[0]) and tombstones == {} and version is None
    assert all(source == 'rebuilt' and not pinned for _sha, pinned, source, _at in packages.values())


def test_a_row_that_does_not_decode_is_store_damaged_and_the_rebuild_it_names_repairs_it(repo, keyring, build_pkg, register):
    """Issue 9 review F3: the msg of store_damaged points at state=rebuilt, so that rebuild must take the index as damaged."""
    before = populate(repo, keyring, build_pkg, register)
    with repo.store.writer() as conn:
        conn.execute("UPDATE packages SET info = '{not json' WHERE package_id = 'P2'")
    with pytest.raises(RepositoryError) as caught:
        repo.packages()
    assert caught.value.code == 'store_damaged' and "row 'P2' of table packages" in caught.value.msg
    assert 'exup_package state=rebuilt' in caught.value.msg
    assert index_state(repo.store) == 'damaged'

    result = rebuild_index(repo, keyring)

    assert result['state'] == 'damaged' and state_of(repo) == before and os.path.exists(result['moved_aside'])
    assert index_state(repo.store) == 'sound'
