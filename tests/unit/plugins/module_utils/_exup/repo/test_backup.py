# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent backup while the repository is read, and its restore into a new store (003 §4.3, issue 12)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import backup
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.rebuild import index_state, rebuild_index
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository

SERVER = {'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}


def populate(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER])
    repo.add_files([build_pkg(package_id='P1', version='1'), build_pkg(package_id='P2', version='2')], keyring)
    repo.add_files([build_pkg(package_id='OLD', version='0.1')], keyring, mode='pinned')
    repo.delete(['P1'], 'mgr-a')


def packages_of(repository):
    with repository.read() as conn:
        return {pid: (item.sha256, item.pinned, item.source) for pid, item in conn.packages().items()}


def members(path):
    with tarfile.open(path) as archive:
        return [member.name for member in archive]


def rewrite(source, target, edit):
    """Copy the backup ``source`` to ``target`` member by member; ``edit(name, data)`` returns [(name, data), ...] to write."""
    with tarfile.open(source) as old, tarfile.open(target, 'w') as new:
        for member in old:
            data = old.extractfile(member).read()
            for name, body in edit(member.name, data):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                new.addfile(info, io.BytesIO(body))


def test_a_backup_taken_while_a_reader_is_open_restores_the_same_repository(repo, keyring, build_pkg, register, snapshot, tmp_path, clock):
    populate(repo, keyring, build_pkg, register)
    reader = sqlite3.connect(repo.store.db_path)  # a service worker in the middle of a read (WAL not checkpointed)
    reader.execute('BEGIN')
    reader.execute('SELECT COUNT(*) FROM packages').fetchone()
    try:
        made = backup.make_backup(repo, str(tmp_path / 'out' / 'repo.tar'))
    finally:
        reader.close()
    assert made['changed'] and made['backup']['packages'] == 2 and made['backup']['pool_files'] == 2
    assert [event['code'] for event in made['events']] == ['store_backed_up']
    assert os.stat(made['path']).st_mode & 0o777 == 0o600
    names = members(made['path'])
    assert names[:2] == ['backup.json', 'repo.db'] and 'recovery.json' in names and sum(name.startswith('pool/') for name in names) == 2
    assert not [name for name in os.listdir(tmp_path / 'out') if name != 'repo.tar']  # no temp file left

    target = Repository(str(tmp_path / 'moved'), clock=clock)
    restored = backup.restore_backup(target, made['path'])
    assert restored['changed'] and restored['backup']['backup_id'] == made['backup']['backup_id']
    assert packages_of(target) == packages_of(repo)
    assert snapshot(target)['tables'] == snapshot(repo)['tables']
    assert index_state(target.store) == 'sound'
    with target.read() as conn:
        assert set(conn.tombstones()) == {'P1'}
    again = backup.restore_backup(target, made['path'])
    assert again['changed'] is False


def test_a_backup_waits_for_the_writer_and_check_mode_writes_nothing(repo, keyring, build_pkg, register, snapshot, tmp_path):
    populate(repo, keyring, build_pkg, register)
    before = snapshot(repo, with_events=True)
    planned = backup.make_backup(repo, str(tmp_path / 'b.tar'), check_mode=True)
    assert planned['changed'] and planned['backup'] == {'packages': 2}
    assert not (tmp_path / 'b.tar').exists() and snapshot(repo, with_events=True) == before
    with repo.store.writer(), pytest.raises(ExupError) as caught:
        backup.make_backup(repo, str(tmp_path / 'b.tar'), wait_seconds=0.05)
    assert caught.value.code == 'repository_busy' and not os.listdir(tmp_path / 'repo' / 'tmp')
    assert not [name for name in os.listdir(tmp_path) if name.startswith('b.tar')]


def test_a_backup_refuses_an_empty_store_and_a_path_inside_it(repo, keyring, build_pkg, register, tmp_path):
    with pytest.raises(ExupError) as caught:
        backup.make_backup(repo, str(tmp_path / 'b.tar'))
    assert caught.value.code == 'store_not_sound'
    populate(repo, keyring, build_pkg, register)
    with pytest.raises(ExupError) as caught:
        backup.make_backup(repo, str(tmp_path / 'repo' / 'b.tar'))
    assert caught.value.code == 'backup_inside_store'


def test_restore_refuses_a_store_that_is_not_empty(repo, keyring, build_pkg, register, snapshot, tmp_path, clock):
    populate(repo, keyring, build_pkg, register)
    path = backup.make_backup(repo, str(tmp_path / 'b.tar'))['path']
    other = Repository(str(tmp_path / 'other'), clock=clock)
    other.add_files([build_pkg(package_id='X1', version='9')], keyring, mode='pinned')
    before = snapshot(other, with_events=True)
    with pytest.raises(ExupError) as caught:
        backup.restore_backup(other, path)
    assert caught.value.code == 'store_not_empty' and snapshot(other, with_events=True) == before


def test_restore_keeps_the_new_hosts_own_passwords(repo, keyring, build_pkg, register, tmp_path, clock):
    populate(repo, keyring, build_pkg, register)
    (tmp_path / 'repo' / 'service-credentials.json').write_text('{"admin_hash": "old"}')
    path = backup.make_backup(repo, str(tmp_path / 'b.tar'))['path']
    (tmp_path / 'new').mkdir()
    (tmp_path / 'new' / 'service-credentials.json').write_text('{"admin_hash": "new"}')
    restored = backup.restore_backup(Repository(str(tmp_path / 'new'), clock=clock), path)
    assert restored['kept'] == ['service-credentials.json']
    assert json.loads((tmp_path / 'new' / 'service-credentials.json').read_text()) == {'admin_hash': 'new'}
    fresh = backup.restore_backup(Repository(str(tmp_path / 'fresh'), clock=clock), path)
    assert fresh['kept'] == [] and os.stat(tmp_path / 'fresh' / 'service-credentials.json').st_mode & 0o777 == 0o600


def flip_pool_byte(name, data):
    if name.startswith('pool/'):
        data = data[:-1] + bytes([data[-1] ^ 1])
    return [(name, data)]


def newer_store(name, data):
    if name == 'backup.json':
        manifest = json.loads(data)
        manifest['store_version'] = 99
        data = json.dumps(manifest).encode()
    return [(name, data)]


@pytest.mark.parametrize(
    ('edit', 'code'),
    [
        pytest.param(flip_pool_byte, 'backup_invalid', id='a pool file altered'),
        pytest.param(lambda name, data: [(name, data)] + ([('../escape', b'x')] if name == 'repo.db' else []), 'backup_invalid', id='a path outside'),
        pytest.param(lambda name, data: [] if name.startswith('pool/') else [(name, data)], 'backup_invalid', id='a member missing'),
        pytest.param(lambda name, data: [(name, b'garbage' * 100 if name == 'repo.db' else data)], 'backup_invalid', id='a changed repo.db'),
        pytest.param(newer_store, 'store_too_new', id='a newer store format'),
        pytest.param(lambda name, data: [] if name == 'backup.json' else [(name, data)], 'backup_invalid', id='no manifest'),
    ],
)
def test_a_hostile_or_damaged_backup_is_refused_and_changes_nothing(repo, keyring, build_pkg, register, tmp_path, clock, edit, code):
    populate(repo, keyring, build_pkg, register)
    good = backup.make_backup(repo, str(tmp_path / 'good.tar'))['path']
    bad = str(tmp_path / 'bad.tar')
    rewrite(good, bad, edit)
    target = Repository(str(tmp_path / 'target'), clock=clock)
    with pytest.raises(ExupError) as caught:
        backup.restore_backup(target, bad)
    assert caught.value.code == code, caught.value.msg
    assert 'Traceback' not in caught.value.msg
    assert index_state(target.store) == 'empty' and not os.path.exists(tmp_path / 'escape') and not os.path.exists(tmp_path / 'target' / 'pool' / 'sha256')
    assert not os.path.exists(tmp_path / 'target' / 'tmp') or os.listdir(tmp_path / 'target' / 'tmp') == []


def test_a_file_that_is_no_backup_is_refused(repo, tmp_path):
    for name, data in (('empty', b''), ('text', b'hello'), ('cut', None)):
        path = tmp_path / name
        path.write_bytes(data if data is not None else b'\0' * 100)
        with pytest.raises(ExupError) as caught:
            backup.restore_backup(repo, str(path))
        assert caught.value.code == 'backup_invalid'


def test_the_pool_only_fallback_and_the_rebuild_give_back_the_packages(repo, keyring, build_pkg, register, tmp_path, clock):
    populate(repo, keyring, build_pkg, register)
    good = backup.make_backup(repo, str(tmp_path / 'good.tar'))['path']
    bad = str(tmp_path / 'bad.tar')
    rewrite(good, bad, lambda name, data: [(name, b'garbage' * 100 if name == 'repo.db' else data)])
    target = Repository(str(tmp_path / 'target'), clock=clock)
    with pytest.raises(ExupError):
        backup.restore_backup(target, bad)
    restored = backup.restore_backup(target, bad, pool_only=True)
    assert restored['changed'] and restored['skipped'] == [] and restored['events'] == []
    assert index_state(target.store) == 'missing'
    rebuilt = rebuild_index(target, keyring)
    assert rebuilt['state'] == 'missing' and {p['package_id'] for p in rebuilt['packages']} == {'P2', 'OLD'}
    assert packages_of(target)['OLD'][1] is True  # the pin came back from recovery.json


def test_a_backup_cut_short_is_refused(repo, keyring, build_pkg, register, tmp_path, clock):
    populate(repo, keyring, build_pkg, register)
    good = backup.make_backup(repo, str(tmp_path / 'good.tar'))['path']
    data = open(good, 'rb').read()
    for cut in (len(data) // 3, len(data) // 2, 3000):  # (the last blocks are the tar's zero padding: cutting them loses nothing)
        path = tmp_path / ('cut-%d.tar' % cut)
        path.write_bytes(data[:cut])
        target = Repository(str(tmp_path / ('target-%d' % cut)), clock=clock)
        with pytest.raises(ExupError) as caught:
            backup.restore_backup(target, str(path))
        assert caught.value.code == 'backup_invalid', caught.value.msg
        assert not os.path.exists(target.store.root)
