# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure steps of the sync (sync.py): the request the stored feed state calls for, the verification of
the feed's answer (304 rules, rollback and jump, feed identity), the selection of downloads, and check
mode (``Sync.preview``), which runs only those steps. The HTTP side is tests/system/test_sync_*.py."""

from __future__ import annotations

import datetime
import os

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import EPOCH, CatalogEntry, build_catalog, format_time, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError, TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import Refusal
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import (
    FeedRequest,
    SyncOptions,
    feed_request,
    select_downloads,
    verify_answer,
)

FEED = 'http://feed.example/catalog.json'
MODEL = 'R120h-1M'
NOW = utc_now()


def entry(package_id, version='1.0', sha256='a' * 64, published='2025-01-01T00:00:00Z'):
    return CatalogEntry(
        package_id=package_id,
        module_id='system-bios',
        module_name='System BIOS',
        version=version,
        release_date='2025-01-01',
        published=published,
        models=(MODEL,),
        os=('linux',),
        kind='linux',
        auto_update=True,
        size=10,
        sha256=sha256,
        url='packages/%s.zip' % package_id,
    )


def answer(body=None, status=200, final_url=FEED, redirected=False, etag='"e1"', last_modified=None):
    return {'status': status, 'body': body, 'final_url': final_url, 'redirected': redirected, 'etag': etag, 'last_modified': last_modified}


def stored_state(key_ids, version=5, expires=None, feed_id='feed-1', url=FEED):
    return {
        'feed_url': url,
        'base_url': 'http://mirror.example/',
        'catalog_version': str(version),
        'last_access': '2025-02-01T00:00:00Z',
        'catalog_expires': expires or format_time(NOW + datetime.timedelta(days=3)),
        'etag': '"e0"',
        'last_modified': '',
        'catalog_key_ids': ','.join(key_ids),
        'feed_id': feed_id,
    }


OPTIONS = SyncOptions(feed_url=FEED, manager_id='mgr-a')


# ----------------------------------------------------------------- the request
def test_a_known_feed_signed_by_a_trusted_key_is_asked_conditionally(keyring):
    request = feed_request(stored_state(keyring.key_ids), FEED, keyring.key_ids)
    assert request == FeedRequest(since='2025-02-01T00:00:00Z', etag='"e0"', last_modified='', same_url=True) and request.conditional


def test_another_url_or_an_untrusted_catalog_is_asked_whole(keyring):
    other = feed_request(stored_state(keyring.key_ids), 'http://other.example/catalog.json', keyring.key_ids)
    assert (other.since, other.etag, other.conditional, other.same_url) == (EPOCH, None, False, False)
    untrusted = feed_request(stored_state(['gone-key']), FEED, keyring.key_ids)
    assert (untrusted.since, untrusted.etag, untrusted.conditional, untrusted.same_url) == ('2025-02-01T00:00:00Z', None, False, True)
    assert feed_request({}, FEED, keyring.key_ids) == FeedRequest(EPOCH, None, None, False)


# ----------------------------------------------------------------- a 304 answer
def test_304_keeps_the_catalog_accepted_before(keyring):
    state = stored_state(keyring.key_ids)
    update = verify_answer(state, feed_request(state, FEED, keyring.key_ids), answer(status=304), keyring, OPTIONS)
    assert update.unchanged and update.base_url == 'http://mirror.example/' and update.new_entries == () and update.feed_state == ()
    assert update.summary == {'version': 5, 'generated': state['last_access'], 'expires': state['catalog_expires'], 'entries_new': 0}


@pytest.mark.parametrize(
    'case,code',
    [('not_conditional', 'catalog_unexpected_304'), ('no_catalog', 'catalog_unexpected_304'), ('untrusted', 'unknown_key'), ('expired', 'catalog_expired')],
)
def test_304_that_cannot_stand(keyring, case, code):
    state = stored_state(
        ['gone-key'] if case == 'untrusted' else keyring.key_ids, expires=format_time(NOW - datetime.timedelta(seconds=1)) if case == 'expired' else None
    )
    request = feed_request(state, FEED, keyring.key_ids)
    if case == 'not_conditional':
        request = FeedRequest(request.since, None, None, True)
    if case == 'no_catalog':
        state = {'feed_url': FEED, 'etag': '"e0"'}
        request = FeedRequest(EPOCH, '"e0"', None, True)
    with pytest.raises((CatalogError, TransportError)) as caught:
        verify_answer(state, request, answer(status=304), keyring, OPTIONS)
    assert caught.value.code == code


# ----------------------------------------------------------------- a catalog
def catalog(signing_key, version, entries=(), feed_id='feed-1'):
    return build_catalog(list(entries), version, [signing_key], generated=NOW - datetime.timedelta(hours=1), feed_id=feed_id)


def test_a_first_catalog_replaces_the_feed_and_says_what_to_store(signing_key, keyring):
    body = catalog(signing_key, 3, [entry('BIOS-1.0')])
    update = verify_answer({}, feed_request({}, FEED, keyring.key_ids), answer(body, final_url='http://mirror.example/catalog.json'), keyring, OPTIONS)
    assert not update.unchanged and update.replace_feed and update.reset is None
    assert [e.package_id for e in update.new_entries] == ['BIOS-1.0']
    assert update.base_url == 'http://mirror.example/catalog.json'
    stored = dict(update.feed_state)
    assert (stored['feed_url'], stored['catalog_version'], stored['etag'], stored['feed_id']) == (FEED, '3', '"e1"', 'feed-1')
    assert update.summary['entries_new'] == update.summary['entries_total'] == 1


def test_a_rollback_of_the_same_feed_is_refused_unless_the_operator_accepts_it(signing_key, keyring):
    state = stored_state(keyring.key_ids, version=5)
    request = feed_request(state, FEED, keyring.key_ids)
    with pytest.raises(CatalogError) as caught:
        verify_answer(state, request, answer(catalog(signing_key, 4)), keyring, OPTIONS)
    assert caught.value.code == 'catalog_rollback'
    accepting = SyncOptions(feed_url=FEED, manager_id='mgr-a', accept_version_reset=True)
    update = verify_answer(state, request, answer(catalog(signing_key, 4)), keyring, accepting)
    assert update.reset[1] == {'from_version': 5, 'to_version': 4, 'refused': 'catalog_rollback'}
    assert update.reset[0].startswith('accepted by the operator: ')


def test_another_feed_starts_over(signing_key, keyring):
    state = stored_state(keyring.key_ids, version=5, feed_id='feed-1')
    update = verify_answer(state, feed_request(state, FEED, keyring.key_ids), answer(catalog(signing_key, 1, feed_id='feed-2')), keyring, OPTIONS)
    assert update.reset is None and update.replace_feed  # version 1 is no rollback of another feed


def test_a_filtered_catalog_of_the_same_feed_is_merged(signing_key, keyring):
    state = stored_state(keyring.key_ids, version=5)
    newer = entry('BIOS-1.1', version='1.1', published='2025-02-02T00:00:00Z')
    update = verify_answer(state, feed_request(state, FEED, keyring.key_ids), answer(catalog(signing_key, 6, [newer])), keyring, OPTIONS)
    assert not update.replace_feed and [e.package_id for e in update.new_entries] == ['BIOS-1.1']


# ----------------------------------------------------------------- what to download
def test_select_downloads_says_what_is_fetched_and_why_not():
    feed = {pid: entry(pid, sha256=pid[-1] * 64) for pid in ('P-a', 'P-b', 'P-c', 'P-d', 'P-e')}
    refusals = {
        'P-d': Refusal('P-d', 'd' * 64, 'bad_signature', 'bad', '2025-01-01T00:00:00Z'),
        'P-e': Refusal('P-e', 'f' * 64, 'bad_signature', 'bad', '2025-01-01T00:00:00Z'),
    }  # other bytes now: tried again
    selection = select_downloads(
        {'P-e', 'P-d', 'P-c', 'P-b', 'P-a', 'P-unknown'}, stored={'P-a': object()}, feed=feed, tombstones={'P-c': object()}, refusals=refusals
    )
    assert [e.package_id for e in selection.to_fetch] == ['P-b', 'P-e']
    assert selection.skipped_tombstoned == ['P-c']
    assert selection.repeated_refusals == [
        {
            'package_id': 'P-d',
            'version': '1.0',
            'module_id': 'system-bios',
            'code': 'bad_signature',
            'reason': 'bad',
            'resumable': False,
            'refused_at': '2025-01-01T00:00:00Z',
            'repeated': True,
        }
    ]


# ----------------------------------------------------------------- check mode runs only the pure steps
class FeedOnly:
    """An HTTP client that serves one catalog and must never be asked for a package."""

    def __init__(self, body):
        self.body = body
        self.asked = []

    def get_conditional(self, url, etag=None, last_modified=None, params=None, max_bytes=None, deadline=None):
        self.asked.append((url, etag, params))
        return answer(self.body)

    def download(self, *args, **kwargs):
        raise AssertionError('check mode downloads nothing')

    fetch = download


def test_check_mode_plans_over_the_new_entries_and_writes_nothing(repo, signing_key, keyring):
    client = FeedOnly(catalog(signing_key, 1, [entry('BIOS-1.0'), entry('BIOS-1.1', version='1.1', sha256='b' * 64)]))
    servers = [server_from_dict('mgr-a', {'name': 'a1', 'model': MODEL, 'os': 'linux'})]
    result = repo.sync(client, keyring, SyncOptions(FEED, 'mgr-a', servers=servers), check_mode=True)
    assert sorted(a['package_id'] for a in result.added) == ['BIOS-1.0', 'BIOS-1.1']
    assert result.removed == [] and result.events == [] and result.catalog['version'] == 1
    assert client.asked == [(FEED, None, {'since': EPOCH})]
    assert not os.path.exists(repo.store.root)  # not even created


def test_the_answer_gives_its_body_away_once_parsed(signing_key, keyring):
    """The 8 MiB body of a full catalog is not held through the sync: verify_answer takes it out of the response."""
    response = answer(catalog(signing_key, 3, [entry('BIOS-1.0')]))
    update = verify_answer({}, feed_request({}, FEED, keyring.key_ids), response, keyring, OPTIONS)
    assert 'body' not in response and [e.package_id for e in update.new_entries] == ['BIOS-1.0']


def test_a_replacing_catalog_is_planned_over_its_entries_not_read_back(repo, signing_key, keyring, monkeypatch):
    client = FeedOnly(catalog(signing_key, 1, [entry('BIOS-1.0'), entry('BIOS-1.1', version='1.1', sha256='b' * 64)]))
    servers = [server_from_dict('mgr-a', {'name': 'a1', 'model': 'R110h-1M', 'os': 'linux'})]  # needs none of them: no download
    monkeypatch.setattr(Index, 'feed_entries', lambda self: pytest.fail('the feed was read back from the index'))
    result = repo.sync(client, keyring, SyncOptions(FEED, 'mgr-a', servers=servers))
    assert result.added == [] and result.catalog['entries_total'] == 2
    monkeypatch.undo()
    with repo.read() as index:
        assert sorted(index.feed_entries()) == ['BIOS-1.0', 'BIOS-1.1']  # stored all the same
