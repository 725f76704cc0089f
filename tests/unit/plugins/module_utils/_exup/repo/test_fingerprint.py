# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sync fingerprint (repo/fingerprint.py) and the skip of a re-sync with nothing new (Sync.update_locked, issue 10).

Each input the plan or the selection depends on gets a test that changes it and proves the re-sync then does the
real work; one test proves the skip happens (the plan is not even called). The feed is an in-process fake: a catalog
answered 304 to its own ETag, packages copied from files built here."""

from __future__ import annotations

import datetime
import importlib
import os
import shutil
import sys
import tempfile
import types
import zipfile

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import build_catalog, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError, TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import repository as repository_module, sync as sync_module
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.fingerprint import FingerprintInputs, SyncMemo, fingerprint, memo_text, read_memo
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import Refusal
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository, server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import DEFAULT_SYNC_TIMEOUT, SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import entry_for

FEED = 'http://127.0.0.1:9/catalog.json'
MODEL, MODEL_2 = 'R120h-1M', 'R220h-2M'
BIOS_2 = 'system-bios_2.0_%s_linux' % MODEL_2
BIOS = ['system-bios_1.%d_%s_linux' % (minor, MODEL) for minor in range(4)]  # 1.0 .. 1.3: the window keeps 1.1-1.3


# ----------------------------------------------------------------- the pure digest
BASE = FingerprintInputs('code-1', 7, {'catalog_version': '3', 'etag': '"e1"'}, ['mgr-a', 'mgr-b'], 'mgr-a', FEED, ['key-1'])


@pytest.mark.parametrize(
    'change',
    [
        {'code': 'code-2'},
        {'data_generation': 8},
        {'feed_state': {'catalog_version': '3', 'etag': '"e2"'}},
        {'feed_state': {'catalog_version': '3', 'etag': '"e1"', 'base_url': 'http://127.0.0.2/'}},
        {'active_managers': ['mgr-a']},
        {'manager_id': 'mgr-b'},
        {'feed_url': FEED + '?mirror=2'},
        {'trusted_key_ids': ['key-1', 'key-2']},
    ],
)
def test_every_input_changes_the_fingerprint(change):
    assert fingerprint(BASE) != fingerprint(FingerprintInputs(**dict(BASE.__dict__, **change)))


def test_the_fingerprint_does_not_depend_on_order():
    reordered = FingerprintInputs('code-1', 7, {'etag': '"e1"', 'catalog_version': '3'}, ['mgr-b', 'mgr-a'], 'mgr-a', FEED, ['key-1'])
    assert fingerprint(BASE) == fingerprint(reordered)


def test_a_memo_round_trips_and_a_bad_one_skips_nothing():
    memo = SyncMemo('f' * 64, ({'package_id': 'P', 'repeated': True},), ('T',))
    assert read_memo(memo_text(memo)) == memo
    for text in (None, '', 'not json', '[]', '{"fingerprint": "x"}', '{"fingerprint": "x", "repeated_refusals": [1], "skipped_tombstoned": []}'):
        assert read_memo(text) is None


# ----------------------------------------------------------------- an in-process feed
class Feed:
    """Serves a signed catalog (200 with an ETag, 304 to it) and the package files; counts what is asked."""

    def __init__(self, signing_key, tmp_path):
        self.key = signing_key
        self.dir = tmp_path / 'feed'
        self.dir.mkdir()
        self.entries = {}
        self.files = {}
        self.version = 0
        self.body = b''
        self.downloads = []
        self.fail = set()  # package ids whose download fails (connection_failed)
        self.interrupt = set()  # package ids whose download meets Ctrl-C
        self.always_304 = False  # a server that answers 304 to anything

    def publish(self, paths):
        for path in paths:
            from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package

            info = verify_package(path, self.key_ring).info
            self.entries[info.package_id] = entry_for(info, path, 'packages/%s.zip' % info.package_id, '2025-01-01T00:00:00Z')
            self.files[self.entries[info.package_id].sha256] = path
        self.version += 1
        self.body = build_catalog(list(self.entries.values()), self.version, [self.key], feed_id='feed-1')

    def get_conditional(self, url, etag=None, last_modified=None, params=None, max_bytes=None, deadline=None):
        tag = '"v%d"' % self.version
        status = 304 if etag == tag or self.always_304 else 200
        return {'status': status, 'body': None if status == 304 else self.body, 'final_url': url, 'redirected': False, 'etag': tag, 'last_modified': None}

    def fetch(self, url, part_path, size, sha256, keep_bytes=False, progress=None, deadline=None, stop=None):
        package_id = os.path.basename(url)[: -len('.zip')]
        self.downloads.append(package_id)
        if package_id in self.interrupt:
            raise KeyboardInterrupt()
        if package_id in self.fail:
            raise TransportError('connection refused', code='connection_failed')
        shutil.copyfile(self.files[sha256], part_path)
        with open(part_path, 'rb') as handle:
            data = handle.read()
        return types.SimpleNamespace(path=part_path, data=data if keep_bytes else None, fetched=size)

    def download(self, url, part_path, size, sha256, progress=None, deadline=None):
        return self.fetch(url, part_path, size, sha256, deadline=deadline).path


@pytest.fixture
def world(tmp_path, signing_key, keyring, build_pkg, repo):
    feed = Feed(signing_key, tmp_path)
    feed.key_ring = keyring
    feed.publish([build_pkg(version='1.%d' % minor) for minor in range(4)] + [build_pkg(version='2.0', models=[MODEL_2])])

    def sync(manager_id='mgr-a', models=(MODEL,), servers=None, check_mode=False, keys=None, feed_url=FEED, time_limit=DEFAULT_SYNC_TIMEOUT):
        given = servers if servers is not None else [server_from_dict(manager_id, {'name': 'h%d' % i, 'model': m, 'os': 'linux'}) for i, m in enumerate(models)]
        feed.downloads = []
        options = SyncOptions(feed_url, manager_id, servers=given, time_limit=time_limit)
        return repo.sync(feed, keys or keyring, options, check_mode=check_mode)

    return types.SimpleNamespace(feed=feed, repo=repo, sync=sync, keyring=keyring, build_pkg=build_pkg)


def stored(repo: Repository):
    return sorted(package.info.package_id for package in repo.packages())


def write(repo, *statements):
    """Raw writes, as another tool or an older exup would make them: the triggers count them too."""
    with repo.store.writer() as index, index.transaction():
        for sql, args in statements:
            index.execute(sql, args)


def settled(world, also=()):
    """A first sync, then a re-sync that skips: the state the tests change one input of."""
    first = world.sync()
    assert sorted(a['package_id'] for a in first.added) == sorted(BIOS[1:] + list(also)) and not first.plan_skipped
    again = world.sync()
    assert again.feed_unchanged and again.plan_skipped and world.feed.downloads == []
    return again


# ----------------------------------------------------------------- the skip
def test_a_re_sync_with_nothing_new_skips_the_plan(world, monkeypatch):
    settled(world)

    def no_plan(*args, **kwargs):
        raise AssertionError('the plan must not be made')

    monkeypatch.setattr(Repository, 'plan', no_plan)
    result = world.sync()
    assert result.plan_skipped and result.as_dict()['plan_skipped'] and not result.changed
    assert [event['code'] for event in result.events] == ['repository_update_started', 'repository_update_finished']
    assert stored(world.repo) == BIOS[1:]


def test_check_mode_never_writes_the_memo(world):
    world.sync()
    with world.repo.read() as index:
        memo = index.sync_memo()
    write(world.repo, ("DELETE FROM meta WHERE key = 'sync_memo'", ()))
    preview = world.sync(check_mode=True)
    assert not preview.plan_skipped
    with world.repo.read() as index:
        assert memo and index.sync_memo() is None


# ----------------------------------------------------------------- each input, changed, makes the re-sync work
def test_feed_state_changed(world):
    settled(world)
    write(world.repo, ("UPDATE feed_state SET value = ? WHERE key = 'base_url'", ('http://127.0.0.2/',)))
    assert not world.sync().plan_skipped
    world.feed.publish([world.build_pkg(version='1.4')])  # a new catalog: 200, new entries
    result = world.sync()
    assert not result.feed_unchanged and world.feed.downloads == ['system-bios_1.4_%s_linux' % MODEL]
    assert [r['package_id'] for r in result.removed] == [BIOS[1]]


def test_a_stored_package_removed(world):
    settled(world)
    write(world.repo, ('DELETE FROM packages WHERE package_id = ?', (BIOS[2],)))
    result = world.sync()
    assert [a['package_id'] for a in result.added] == [BIOS[2]] and stored(world.repo) == BIOS[1:]


def test_a_stored_package_added(world):
    settled(world)
    newer = world.build_pkg(version='1.4')
    assert world.repo.add_files([newer], world.keyring)[0]['result'] == 'added'
    result = world.sync()
    assert [r['package_id'] for r in result.removed] == [BIOS[1]]  # 1.4 pushed 1.1 out of the window


def test_a_stored_package_unpinned(world):
    world.repo.add_files([world.build_pkg(version='1.0')], world.keyring, mode='pinned')
    settled(world)
    assert BIOS[0] in stored(world.repo)
    write(world.repo, ('UPDATE packages SET pinned = 0 WHERE package_id = ?', (BIOS[0],)))
    result = world.sync()
    assert [r['package_id'] for r in result.removed] == [BIOS[0]]


def test_a_tombstone_added_then_cleared(world):
    settled(world)
    world.repo.delete([BIOS[3]], 'mgr-a')
    deleted = world.sync()
    assert not deleted.plan_skipped and deleted.skipped_tombstoned == [BIOS[3]]
    replayed = world.sync()
    assert replayed.plan_skipped and replayed.skipped_tombstoned == [BIOS[3]]  # reported as a full sync would
    world.repo.clear_tombstones()
    result = world.sync()
    assert [a['package_id'] for a in result.added] == [BIOS[3]]


def test_a_refusal_added_then_cleared(world):
    settled(world)
    sha = world.feed.entries[BIOS[3]].sha256
    write(
        world.repo,
        ('DELETE FROM packages WHERE package_id = ?', (BIOS[3],)),
        ('INSERT INTO refusals VALUES (?, ?, ?, ?, ?)', (BIOS[3], sha, 'bad_signature', 'refused', '2025-01-01T00:00:00Z')),
    )
    refused = world.sync()
    assert [(r['package_id'], r.get('repeated')) for r in refused.refused] == [(BIOS[3], True)] and world.feed.downloads == []
    replayed = world.sync()
    assert replayed.plan_skipped and replayed.refused == refused.refused
    world.repo.clear_refusals()
    result = world.sync()
    assert [a['package_id'] for a in result.added] == [BIOS[3]]


def test_this_managers_servers_changed(world):
    settled(world)
    result = world.sync(models=(MODEL, MODEL_2))
    assert world.feed.downloads == [BIOS_2]
    assert not result.plan_skipped


def test_another_managers_servers(world, register):
    settled(world)
    register('mgr-b', [{'name': 'b1', 'model': MODEL_2, 'os': 'linux'}])
    world.sync()
    assert world.feed.downloads == [BIOS_2]


def test_a_manager_expiring_by_the_clock(world, register, clock):
    register('mgr-b', [{'name': 'b1', 'model': MODEL_2, 'os': 'linux'}])
    settled(world, also=[BIOS_2])
    assert 'system-bios_2.0_%s_linux' % MODEL_2 in stored(world.repo)
    clock.advance(days=61)  # mgr-b did not report for longer than the presence lifetime
    result = world.sync()
    assert [r['package_id'] for r in result.removed] == [BIOS_2]


def test_the_active_managers_alone_change_the_fingerprint(world, register, clock):
    """Expiry by the clock without any write (a reader's view, or between register_manager and the plan)."""
    register('mgr-b', [{'name': 'b1', 'model': MODEL_2, 'os': 'linux'}])
    settled(world, also=[BIOS_2])
    with world.repo.read() as index:
        before = world.repo.sync_fingerprint(index, 'mgr-a', FEED, world.keyring.key_ids)
        clock.advance(days=61)
        assert world.repo.sync_fingerprint(index, 'mgr-a', FEED, world.keyring.key_ids) != before


def test_a_previous_sync_that_left_a_retry(world):
    world.feed.fail = {BIOS[3]}
    first = world.sync()
    assert [r['code'] for r in first.refused] == ['connection_failed']
    world.feed.fail = set()
    result = world.sync()
    assert result.feed_unchanged and not result.plan_skipped and [a['package_id'] for a in result.added] == [BIOS[3]]
    assert world.sync().plan_skipped  # and now nothing is left


def test_a_failed_download_leaves_no_memo(world):
    settled(world)
    write(world.repo, ('DELETE FROM packages WHERE package_id = ?', (BIOS[3],)))
    os.unlink(world.repo.store.pool_path(world.feed.entries[BIOS[3]].sha256))
    world.feed.fail = {BIOS[3]}
    world.sync()
    with world.repo.read() as index:
        assert index.sync_memo() is None


def test_other_code_does_not_skip(world, monkeypatch):
    settled(world)
    monkeypatch.setattr(repository_module, 'code_digest', lambda: 'another exup.fleet')
    assert not world.sync().plan_skipped
    assert world.sync().plan_skipped  # the new code's fingerprint stands from then on
    monkeypatch.setattr(repository_module, 'code_digest', lambda: '')  # unknown: never skip
    assert not world.sync().plan_skipped


# ----------------------------------------------------------------- the code digest: every loaded _exup module
PROBE_TREE = {'__init__.py': b'', 'rules.py': b'RULE = 1\n', 'deep/__init__.py': b'', 'deep/never_imported.py': b'LIMIT = 1\n'}


def probe_digest(monkeypatch, name):
    """code_digest over the package ``name`` instead of _exup, uncached, its modules forgotten first."""
    for loaded in [key for key in sys.modules if key == name or key.startswith(name + '.')]:
        monkeypatch.delitem(sys.modules, loaded)
    importlib.invalidate_caches()
    monkeypatch.setattr(repository_module, '_CODE_PACKAGE', name)
    return repository_module.code_digest.__wrapped__()


def write_tree(root, name, tree):
    for relative, source in tree.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source)


def test_the_code_digest_covers_every_exup_module_loaded_or_not():
    """Issue 10 review: a list of the deciding modules missed repo.store, repo.pipeline, repo.interface, rules.plan; the
    modules loaded so far differ between the sync that stores the memo and the re-sync that reads it."""
    names = {name.split('._exup')[-1] for name, source in repository_module.code_sources(repository_module._CODE_PACKAGE) if source is not None}
    assert {'.repo.store', '.repo.pipeline', '.repo.interface', '.rules.plan', '.rules.generations', '.requests_path', '.repo.rebuild'} <= names
    assert len(repository_module.code_digest()) == 64


def test_changing_a_module_never_imported_changes_the_code_digest(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_tree(tmp_path, 'exupprobe_dir', PROBE_TREE)
    before = probe_digest(monkeypatch, 'exupprobe_dir')
    assert 'exupprobe_dir.deep.never_imported' not in sys.modules
    (tmp_path / 'exupprobe_dir' / 'deep' / 'never_imported.py').write_bytes(b'LIMIT = 2\n')
    after = probe_digest(monkeypatch, 'exupprobe_dir')
    assert len(before) == len(after) == 64 and before != after
    (tmp_path / 'exupprobe_dir' / 'deep' / 'added.py').write_bytes(b'')
    assert probe_digest(monkeypatch, 'exupprobe_dir') not in (before, after)


def test_a_package_run_from_a_zip_enters_the_code_digest(tmp_path, monkeypatch):
    """AnsiballZ imports module_utils from a zip: the sources are found and read through the zipimporter."""
    digests = []
    for number, rule in enumerate((b'RULE = 1\n', b'RULE = 2\n')):
        archive = tmp_path / ('payload%d.zip' % number)
        with zipfile.ZipFile(archive, 'w') as payload:
            for relative, source in {**PROBE_TREE, 'rules.py': rule}.items():
                payload.writestr('exupprobe_zip/' + relative, source)
        with monkeypatch.context() as patch:
            patch.syspath_prepend(str(archive))
            digests.append(probe_digest(patch, 'exupprobe_zip'))
    assert len(set(digests)) == 2 and all(len(item) == 64 for item in digests)


def test_an_unreadable_module_gives_no_code_digest(tmp_path, monkeypatch):
    """Unknown code: no sync is skipped."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write_tree(tmp_path, 'exupprobe_bad', PROBE_TREE)
    monkeypatch.setattr(repository_module, 'spec_source', lambda spec: None)
    assert probe_digest(monkeypatch, 'exupprobe_bad') == ''


def test_the_code_digest_is_taken_before_the_syncs_first_request(world, monkeypatch):
    """A module imported on first use (requests_path) must enter every run of a module alike, or the memo never matches."""
    seen = []
    real = world.feed.get_conditional

    def get_conditional(*args, **kwargs):
        seen.append(repository_module.code_digest.cache_info().currsize)
        return real(*args, **kwargs)

    monkeypatch.setattr(world.feed, 'get_conditional', get_conditional)
    repository_module.code_digest.cache_clear()
    world.sync()
    assert seen == [1]


# ----------------------------------------------------------------- what a skip must not hide
class Killed(BaseException):
    """SIGKILL as far as the code under test can tell: nothing after it runs, no handler sees it."""


def memo_of(repo):
    with repo.read() as index:
        return index.sync_memo()


def test_a_catalog_expired_while_the_feed_answers_304_is_refused_not_skipped(world, monkeypatch, snapshot):
    settled(world)
    before = snapshot(world.repo)
    later = utc_now() + datetime.timedelta(days=31)  # the catalog was signed to expire in 30 days
    monkeypatch.setattr(sync_module, 'utc_now', lambda: later)
    with pytest.raises(CatalogError) as caught:
        world.sync()
    assert caught.value.code == 'catalog_expired' and 'the feed still serves it unchanged: the feed is stale or frozen' in caught.value.msg
    assert snapshot(world.repo) == before and world.feed.downloads == []


def test_a_trusted_key_removed(world, signing_key, other_key, snapshot):
    both = KeyRing([signing_key.public_key, other_key.public_key])
    assert not world.sync(keys=both).plan_skipped and world.sync(keys=both).plan_skipped
    assert not world.sync().plan_skipped  # other_key no longer trusted: another fingerprint
    assert world.sync().plan_skipped
    # The key that signed the stored catalog removed, and a server that answers 304 to anything: refused, not skipped.
    world.feed.always_304 = True
    before = snapshot(world.repo)
    with pytest.raises(CatalogError) as caught:
        world.sync(keys=KeyRing([other_key.public_key]))
    assert caught.value.code == 'unknown_key' and 'the catalog accepted before is signed by no trusted key' in caught.value.msg
    assert snapshot(world.repo) == before and world.feed.downloads == []


def test_another_feed_url(world, snapshot):
    settled(world)
    mirror = FEED + '?mirror=2'
    moved = world.sync(feed_url=mirror)
    assert not moved.feed_unchanged and not moved.plan_skipped  # asked whole, planned
    assert world.sync(feed_url=mirror).plan_skipped
    assert not world.sync().plan_skipped
    world.feed.always_304 = True  # a 304 to a request about another feed's catalog is no answer
    before = snapshot(world.repo)
    with pytest.raises(TransportError) as caught:
        world.sync(feed_url=mirror)
    assert caught.value.code == 'catalog_unexpected_304' and 'to a request that was not conditional' in caught.value.msg
    assert snapshot(world.repo) == before


def lose_a_package(world, package_id):
    """A stored package gone, row and file: the next sync has one download to do."""
    write(world.repo, ('DELETE FROM packages WHERE package_id = ?', (package_id,)))
    os.unlink(world.repo.store.pool_path(world.feed.entries[package_id].sha256))


def test_a_sync_interrupted_by_ctrl_c_stores_no_memo(world):
    settled(world)
    lose_a_package(world, BIOS[3])
    world.feed.interrupt = {BIOS[3]}
    with pytest.raises(KeyboardInterrupt):
        world.sync()
    assert memo_of(world.repo) is None
    world.feed.interrupt = set()
    result = world.sync()
    assert not result.plan_skipped and world.feed.downloads == [BIOS[3]] and world.sync().plan_skipped


def test_a_sync_cut_by_its_time_limit_stores_no_memo(world):
    settled(world)
    lose_a_package(world, BIOS[3])
    with pytest.raises(TransportError) as caught:
        world.sync(time_limit=1e-9)
    assert caught.value.code == 'sync_timeout' and caught.value.details['not_fetched'] == [BIOS[3]]
    assert memo_of(world.repo) is None
    result = world.sync()
    assert not result.plan_skipped and [a['package_id'] for a in result.added] == [BIOS[3]]


def drop_index(store):
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(store.db_path + suffix):
            os.unlink(store.db_path + suffix)


def test_a_lost_index_stores_no_memo_until_its_rebuild(world):
    """While the index is lost, garbage collection keeps the unindexed pool files for the rebuild: no sync may skip it."""
    settled(world)
    drop_index(world.repo.store)
    lost = world.sync()
    assert not lost.plan_skipped and not lost.feed_unchanged  # the ETag was lost with the index: asked whole
    with world.repo.read() as index:
        assert index.rebuild_needed() and index.sync_memo() is None
    assert world.sync().feed_unchanged and memo_of(world.repo) is None
    assert world.repo.rebuild(world.keyring)['state'] == 'lost'
    rebuilt = world.sync()
    assert rebuilt.feed_unchanged and not rebuilt.plan_skipped and world.sync().plan_skipped


def test_the_rebuild_of_a_damaged_index_leaves_no_memo(world):
    settled(world)
    assert memo_of(world.repo)
    drop_index(world.repo.store)
    with open(world.repo.store.db_path, 'wb') as handle:
        handle.write(b'not a database' * 100)
    assert world.repo.rebuild(world.keyring)['state'] == 'damaged'
    assert memo_of(world.repo) is None
    assert not world.sync().plan_skipped and world.sync().plan_skipped


def kill_the_add_in_tmp(world, monkeypatch):
    """exup_package add killed once its copy exists in tmp/ (empty yet); before it, the memo is gone for good."""
    real = tempfile.mkstemp

    def mkstemp_then_die(*args, **kwargs):
        assert memo_of(world.repo) is None  # committed: a reader sees it
        os.close(real(*args, **kwargs)[0])
        raise Killed()

    monkeypatch.setattr(tempfile, 'mkstemp', mkstemp_then_die)


def kill_the_add_in_pool(world, monkeypatch):
    """exup_package add killed once its file is in the pool, before its row."""
    real = Store.install

    def install_then_die(store, source, digest):
        real(store, source, digest)
        raise Killed()

    monkeypatch.setattr(Store, 'install', install_then_die)


@pytest.mark.parametrize('kill', [kill_the_add_in_tmp, kill_the_add_in_pool])
def test_garbage_of_a_killed_add_is_collected_by_the_next_re_sync(world, monkeypatch, kill):
    """Issue 10 review: a skipped re-sync collects no garbage, so an add clears the memo before it writes a file."""
    settled(world)
    newer = world.build_pkg(version='1.4')
    store = world.repo.store
    with monkeypatch.context() as patch:
        kill(world, patch)
        with pytest.raises(Killed):
            world.repo.add_files([newer], world.keyring)
    with world.repo.read() as index:
        assert os.listdir(store.tmp_dir) or store.unindexed(index)  # the orphan is there
    result = world.sync()
    assert result.feed_unchanged and not result.plan_skipped
    with world.repo.read() as index:
        assert os.listdir(store.tmp_dir) == [] and store.unindexed(index) == []
    assert stored(world.repo) == BIOS[1:] and world.sync().plan_skipped


def test_an_add_that_writes_nothing_keeps_the_memo(world):
    settled(world)
    assert world.repo.add_files([world.build_pkg(version='1.0')], world.keyring)[0]['result'] == 'warning_not_needed'
    assert world.sync().plan_skipped


def test_the_data_generation_counts_writes_to_the_planned_tables(repo):
    with repo.store.writer() as index:
        start = index.data_generation()
        index.put_refusal(Refusal('P', 'a' * 64, 'bad_signature', 'r', 't'))
        index.delete_refusals(['P'])
        index.delete_refusals(['nothing'])  # no row, no write
        assert index.data_generation() == start + 2
        index.add_event('t', 'info', 'x', 'm', {})  # events are no input of the plan
        index.touch_manager('mgr-a', 't')  # presence enters as the active managers, not as a write
        assert index.data_generation() == start + 2


def test_the_recovery_record_is_rewritten_after_a_counted_write_only(world):
    settled(world)
    path = world.repo.store.recovery_path
    os.unlink(path)
    world.sync()
    assert os.path.exists(path)  # a missing record is written again even when nothing changed
    before = os.stat(path).st_mtime_ns, open(path, 'rb').read()
    world.sync()
    assert (os.stat(path).st_mtime_ns, open(path, 'rb').read()) == before
    world.repo.delete([BIOS[3]], 'mgr-a')
    assert BIOS[3] in open(path).read() and '"tombstones": []' not in open(path).read()
