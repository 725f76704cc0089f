# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sync's download pipeline (repo/pipeline.py, Sync.download): the window, the batches, and a sync whose batch holds
a package, a refusal of the vendor's bytes and a cut by the deadline. The feed is an in-process fake."""

from __future__ import annotations

import os
import shutil
import threading
import types

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import build_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.pipeline import run_pipeline
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import Sync, SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import entry_for

FEED = 'http://127.0.0.1:9/catalog.json'
MODEL = 'R120h-1M'


# ----------------------------------------------------------------- run_pipeline
def counted(items, pulled):
    for item in items:
        pulled.append(item)
        yield item


@pytest.mark.parametrize('workers, window', [(1, 1), (2, 3), (4, 16)])
def test_the_window_bounds_what_is_in_flight_and_everything_is_committed_once(workers, window):
    pulled, committed, in_flight, finished = [], [], [], []

    def work(item):
        in_flight.append(len(pulled) - len(finished))  # submitted and not yet finished, this one included
        finished.append(item)
        return item * 2

    run_pipeline(counted(range(100), pulled), work, committed.extend, workers, window)
    assert sorted(committed) == [item * 2 for item in range(100)]
    assert max(in_flight) <= window


def test_batches_are_not_bounded_by_the_window_but_by_the_limit():
    batches = []
    run_pipeline(range(100), lambda item: item, lambda batch: batches.append(len(batch)), workers=2, window=4, batch_limit=30, batch_seconds=60)
    assert batches == [30, 30, 30, 10]  # 4 in flight at a time, 30 to a transaction, the rest at the end


def test_a_batch_is_committed_when_its_time_is_up_although_the_limit_is_not_reached():
    batches, release = [], threading.Event()

    def work(item):
        if item == 3:
            release.wait(30)  # the last one hangs until the first three were committed on time
        return item

    def commit(batch):
        batches.append(list(batch))
        release.set()

    run_pipeline(range(4), work, commit, workers=2, window=4, batch_limit=100, batch_seconds=0.05)
    assert batches[-1] == [3] and sorted(item for batch in batches for item in batch) == [0, 1, 2, 3]  # without the time bound: one batch after 30 s


def test_what_finished_while_a_batch_was_committed_is_the_next_batch_cut_to_the_limit():
    window, done, all_done = 9, [], threading.Event()
    batches = []

    def work(item):
        done.append(item)
        if len(done) == window:
            all_done.set()
        return item

    def commit(batch):
        if not batches:
            all_done.wait(30)  # the workers finish the rest of the window meanwhile
        batches.append(list(batch))

    run_pipeline(range(window), work, commit, workers=3, window=window, batch_limit=3)
    assert sorted(item for batch in batches for item in batch) == list(range(window))
    assert max(len(batch) for batch in batches) == 3
    assert len(batches) < window  # batches, not one commit per package


def test_a_failure_calls_abort_before_it_waits_for_the_work_that_runs():
    running, aborted, order = threading.Event(), threading.Event(), []

    def work(item):
        if item == 0:
            running.set()
            aborted.wait(30)  # a download that would go on for long: it ends once abort is called
            order.append('work ended' if aborted.is_set() else 'work ran to its end')
        return item

    def commit(batch):
        running.wait(30)
        raise KeyboardInterrupt  # Ctrl-C while item 0 is still running

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(range(3), work, commit, workers=2, window=3, batch_limit=1, abort=lambda: (order.append('abort'), aborted.set()))
    assert order == ['abort', 'work ended']


def test_a_failing_work_stops_the_pipeline_and_what_had_not_started_never_starts():
    pulled, started = [], []

    def work(item):
        started.append(item)
        if item == 2:
            raise RuntimeError('boom')
        return item

    with pytest.raises(RuntimeError, match='boom'):
        run_pipeline(counted(range(1000), pulled), work, lambda batch: None, workers=1, window=4)
    assert len(pulled) < 1000 and len(started) < 1000


# ----------------------------------------------------------------- a sync through the pipeline
class Feed:
    """A signed catalog and package files; ``cut`` package ids end the sync's time limit while they download."""

    def __init__(self, signing_key, keyring, tmp_path):
        self.key, self.keyring, self.dir = signing_key, keyring, tmp_path
        self.entries, self.files, self.cut, self.kept = {}, {}, set(), []

    def publish(self, paths):
        for path in paths:
            info = verify_package(path, self.keyring).info
            self.entries[info.package_id] = entry_for(info, path, 'packages/%s.zip' % info.package_id, '2025-01-01T00:00:00Z')
            self.files[self.entries[info.package_id].sha256] = path
        self.body = build_catalog(list(self.entries.values()), 1, [self.key], feed_id='feed-1')

    def get_conditional(self, url, etag=None, last_modified=None, params=None, max_bytes=None, deadline=None):
        return {'status': 200, 'body': self.body, 'final_url': url, 'redirected': False, 'etag': '"v1"', 'last_modified': None}

    def fetch(self, url, part_path, size, sha256, keep_bytes=False, progress=None, deadline=None, stop=None):
        package_id = os.path.basename(url)[: -len('.zip')]
        if package_id in self.cut:
            deadline.ends = 0.0  # the sync's own deadline (its limit is shorter than a request's): time is up
            raise TransportError('timed out', code='request_timeout')
        shutil.copyfile(self.files[sha256], part_path)
        self.kept.append(keep_bytes)
        with open(part_path, 'rb') as handle:
            data = handle.read()
        return types.SimpleNamespace(path=part_path, data=data if keep_bytes else None, fetched=size)


@pytest.fixture
def feed(tmp_path, signing_key, other_key, keyring, build_pkg):
    good = [build_pkg(version='1.%d' % minor, package_id='BIOS-1.%d' % minor) for minor in range(3)]
    foreign = build_pkg(version='1.3', package_id='BIOS-1.3', key=other_key)  # signed by a key the repository does not trust
    feed = Feed(signing_key, keyring, tmp_path)
    feed.publish(good)
    feed.entries['BIOS-1.3'] = entry_for(verify_package(foreign, feed_keyring(other_key)).info, foreign, 'packages/BIOS-1.3.zip', '2025-01-01T00:00:00Z')
    feed.files[feed.entries['BIOS-1.3'].sha256] = foreign
    feed.body = build_catalog(list(feed.entries.values()), 1, [signing_key], feed_id='feed-1')
    return feed


def feed_keyring(key):
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing

    return KeyRing([key.public_key])


def sync(repo, feed, keyring, **options):
    servers = [server_from_dict('mgr-a', {'name': 'h0', 'model': MODEL, 'os': 'linux'})]
    return repo.sync(feed, keyring, SyncOptions(FEED, 'mgr-a', servers=servers, **options))


def test_a_batch_holds_rows_refusals_and_events_and_commits_them_together(repo, feed, keyring, monkeypatch):
    batches, progress = [], []
    index_batch = Sync.index_batch
    monkeypatch.setattr(Sync, 'index_batch', lambda self, batch, tally: (batches.append(len(batch)), index_batch(self, batch, tally)))
    result = sync(repo, feed, keyring, workers=2, progress=lambda *args: progress.append(args))

    assert sorted(item['package_id'] for item in result.added) == ['BIOS-1.1', 'BIOS-1.2']  # the generation window wants 1.1-1.3
    refused = {item['package_id']: item['code'] for item in result.refused}
    assert refused == {'BIOS-1.3': 'unknown_key'}
    with repo.read() as index:
        assert list(repo.remembered_refusals(index)) == ['BIOS-1.3']
    codes = sorted(event['code'] for event in result.events if event['code'].startswith('package_'))
    assert codes == ['package_downloaded', 'package_downloaded', 'package_refused']
    assert sum(batches) == 3 and progress and progress[-1][:2] == (3, 3)
    assert feed.kept == [True, True, True]  # small packages are verified from the bytes in hand
    assert sorted(os.listdir(repo.store.tmp_dir)) == []


def test_a_deadline_cut_in_a_batch_keeps_what_was_indexed_and_refuses_nothing(repo, feed, keyring):
    feed.cut = {'BIOS-1.2'}
    with pytest.raises(ExupError) as caught:
        sync(repo, feed, keyring, workers=1, time_limit=5)
    assert caught.value.code == 'sync_timeout'
    assert [item['package_id'] for item in caught.value.details['added']] == ['BIOS-1.1']
    assert caught.value.details['not_fetched'] == ['BIOS-1.2', 'BIOS-1.3']
    assert sorted(package.info.package_id for package in repo.packages()) == ['BIOS-1.1']
    with repo.read() as index:
        assert repo.remembered_refusals(index) == {}
