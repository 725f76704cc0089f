# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure rules of chained repositories (docs/architecture.md "Chained repositories"): the upstream's address, the
full-catalog request, what is kept of a verified catalog (store.py), the feed view's look-ups (service/feed.py), the
servers announced upstream, and the credentials' scope (transport.py). The HTTP side is tests/system/test_service_chain.py."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import transport
from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import EPOCH, CatalogEntry, build_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import feed_request, upstream_options, upstream_servers, verify_answer
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.feed import FeedView, catalog_files, request_paths, upstream_base
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey

VIEW = 'https://dmz.example:8080/v1/feed/catalog.json'


def entry(package_id, url=None, published='2025-01-01T00:00:00Z', sha256=None):
    return CatalogEntry(
        package_id=package_id,
        module_id='system-bios',
        module_name='System BIOS',
        version='1.0',
        release_date='2025-01-01',
        published=published,
        models=('R120h-1M',),
        os=('any',),
        kind='linux',
        auto_update=True,
        size=10,
        sha256=sha256 or (package_id[0] * 64),
        url=url or 'packages/%s.zip' % package_id,
    )


@pytest.mark.parametrize(
    ('given', 'base'),
    [
        ('https://dmz.example:8080', 'https://dmz.example:8080'),
        ('https://dmz.example:8080/', 'https://dmz.example:8080'),
        ('https://dmz.example:8080/v1/feed/catalog.json', 'https://dmz.example:8080'),
        ('https://dmz.example/exup/v1/feed/', 'https://dmz.example/exup'),
        ('http://10.0.0.5:8080/exup', 'http://10.0.0.5:8080/exup'),
    ],
)
def test_the_upstream_is_known_by_its_base_address_whatever_form_is_given(given, base):
    assert upstream_base(given) == base
    options = upstream_options(given, 'local', servers=[])
    assert (options.upstream_url, options.feed_url, options.manager_id) == (base, base + '/v1/feed/catalog.json', 'local')


@pytest.mark.parametrize(
    ('given', 'words'),
    [
        ('ftp://dmz.example/', 'http:// or https://'),
        ('dmz.example:8080', 'http:// or https://'),
        ('https://admin:secret@dmz.example:8080', 'no user, password'),
        ('https://dmz.example:8080/?x=1', 'no user, password, query'),
        ('https://dmz.example:8080/#top', 'fragment'),
    ],
)
def test_an_upstream_address_with_credentials_or_another_scheme_is_refused(given, words):
    with pytest.raises(ExupError) as caught:
        upstream_options(given, 'local')
    assert caught.value.code == 'feed_invalid' and words in caught.value.msg
    assert 'secret' not in caught.value.msg


def test_a_full_catalog_request_asks_since_the_epoch_and_refetch_drops_the_conditions():
    state = {'feed_url': VIEW, 'catalog_version': '5', 'last_access': '2025-02-01T00:00:00Z', 'etag': '"e0"', 'catalog_key_ids': 'k1'}
    plain = feed_request(state, VIEW, ['k1'])
    assert (plain.since, plain.etag, plain.known_since) == ('2025-02-01T00:00:00Z', '"e0"', '2025-02-01T00:00:00Z')
    full = feed_request(state, VIEW, ['k1'], full=True)
    assert (full.since, full.etag, full.known_since, full.conditional) == (EPOCH, '"e0"', '2025-02-01T00:00:00Z', True)
    again = feed_request(state, VIEW, ['k1'], full=True, refetch=True)
    assert (again.since, again.etag, again.last_modified, again.conditional) == (EPOCH, None, None, False)


def test_a_catalog_filtered_by_since_is_not_complete_and_a_full_one_counts_only_the_new_entries_as_new():
    key = SigningKey.generate()
    ring = KeyRing([key.public_key])
    state = {
        'feed_url': VIEW,
        'catalog_version': '1',
        'catalog_expires': '2999-01-01T00:00:00Z',
        'last_access': '2025-02-01T00:00:00Z',
        'catalog_key_ids': ','.join(ring.key_ids),
    }
    options = upstream_options(VIEW, 'local')
    old, new = entry('a-old', published='2025-01-01T00:00:00Z'), entry('b-new', published='2025-03-01T00:00:00Z')
    delta = build_catalog([new], 2, [key])
    update = verify_answer(
        state, feed_request(state, VIEW, ring.key_ids), {'status': 200, 'body': delta, 'final_url': VIEW, 'etag': None, 'last_modified': None}, ring, options
    )
    assert not update.complete and not update.replace_feed
    whole = build_catalog([old, new], 3, [key])
    request = feed_request(state, VIEW, ring.key_ids, full=True)
    update = verify_answer(state, request, {'status': 200, 'body': whole, 'final_url': VIEW, 'etag': None, 'last_modified': None}, ring, options)
    assert update.complete and update.replace_feed and update.summary['entries_new'] == 1 and update.summary['entries_total'] == 2


def test_a_kept_catalog_replaces_the_last_one_whole_and_an_unreadable_record_is_no_catalog(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    assert store.kept_catalog() is None
    first = store.keep_catalog(store.stage_catalog(b'{"one": 1}'), 4)
    assert (first.version, first.size) == (4, 10) and open(first.path, 'rb').read() == b'{"one": 1}'
    second = store.keep_catalog(store.stage_catalog(bytearray(b'{"two": 2}')), 5)
    assert store.kept_catalog() == second and not os.path.exists(first.path)
    assert sorted(os.listdir(store.feed_dir)) == sorted(['kept.json', os.path.basename(second.path)])
    assert os.listdir(store.tmp_dir) == []  # the staged file was moved, not copied
    record = os.path.join(store.feed_dir, 'kept.json')
    for broken in (b'not json', b'[]', json.dumps({'version': 5, 'sha256': 'f' * 64, 'size': 10, 'file': '../../etc/passwd'}).encode()):
        os.chmod(record, 0o644)
        with open(record, 'wb') as handle:
            handle.write(broken)
        assert store.kept_catalog() is None


def test_the_downstream_id_is_made_once_and_kept(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    made = store.downstream_id()
    assert made.startswith('chain-') and len(made) <= 64 and store.downstream_id() == made
    assert Store(str(tmp_path / 'repo')).downstream_id() == made
    assert Store(str(tmp_path / 'other')).downstream_id() != made


def test_the_servers_announced_upstream_are_named_by_their_manager():
    servers = [Server('local', 'db01', 'R1', 'rhel9', {'bios': {'current': '1.0'}}), Server('m2', 'db01', 'R2', 'win2022')]
    assert upstream_servers(servers) == [
        {'name': 'local/db01', 'model': 'R1', 'os': 'rhel9', 'modules': {'bios': {'current': '1.0'}}},
        {'name': 'm2/db01', 'model': 'R2', 'os': 'win2022', 'modules': {}},
    ]


def test_the_feed_view_finds_a_file_by_the_url_its_catalog_names_and_only_when_the_pool_holds_it(tmp_path):
    store = Store(str(tmp_path / 'repo'))
    view = FeedView(store)
    with pytest.raises(ExupError) as caught:
        view.catalog()
    assert caught.value.code == 'not_found' and 'verified catalog' in caught.value.msg
    key = SigningKey.generate()
    held, missing = entry('a-held', url='packages/a%20held.zip'), entry('b-missing')
    data = build_catalog([held, missing], 1, [key])
    store.keep_catalog(store.stage_catalog(data), 1)
    assert catalog_files(data) == {'packages/a%20held.zip': (held.sha256, 10), 'packages/b-missing.zip': (missing.sha256, 10)}
    pool = store.pool_path(held.sha256)
    os.makedirs(os.path.dirname(pool))
    with open(pool, 'wb') as handle:
        handle.write(b'0123456789')
    paths = request_paths(b'/v1/feed/packages/a%20held.zip?x=1', '/v1/feed/packages/a held.zip')
    assert paths == ['packages/a%20held.zip', 'packages/a held.zip']
    assert view.package(paths)[:2] == (pool, held.sha256)
    assert view.package(request_paths(None, '/v1/feed/packages/a held.zip'))[:2] == (pool, held.sha256)  # no raw_path: escaped again
    for asked, words in ((['packages/b-missing.zip'], 'the package file'), (['packages/none.zip'], 'its catalog names none')):
        with pytest.raises(ExupError) as caught:
            view.package(asked)
        assert caught.value.code == 'not_found' and words in caught.value.msg


def test_credentials_go_to_their_origin_only_and_never_into_a_message():
    client = transport.HttpClient()
    client.use_credentials('https://dmz.example:8080/v1/feed/catalog.json', 'admin', 'p@ss word')
    assert client._credentials_for('https://DMZ.example:8080/v1/feed/packages/x.zip') == ('admin', 'p@ss word')
    for other in ('http://dmz.example:8080/', 'https://dmz.example/', 'https://dmz.example:8443/', 'https://evil.example:8080/'):
        assert client._credentials_for(other) is None
    assert client._with_credentials('https://evil.example:8080/', {'A': 'b'}) == {'A': 'b'}
    assert client._with_credentials('https://dmz.example:8080/x', None)['Authorization'] == 'Basic YWRtaW46cEBzcyB3b3Jk'
    assert client._scrub('failed with p@ss word and p%40ss%20word') == 'failed with ******** and ********'
    assert transport.origin_of('HTTPS://Host.example/path') == ('https', 'host.example', 443)
    with pytest.raises(TransportError) as caught:
        client.use_credentials('dmz.example:8080', 'admin', 'x')
    assert caught.value.code == 'feed_invalid'


def test_a_401_says_whether_credentials_are_missing_or_refused():
    missing = transport.status_refusal('https://dmz.example/v1/feed/catalog.json', 401)
    assert missing.code == 'feed_auth_required' and 'feed_username, feed_password' in missing.msg
    refused = transport.status_refusal('https://dmz.example/v1/feed/catalog.json', 401, 'reader')
    assert refused.code == 'feed_auth_failed' and 'user reader' in refused.msg
    assert transport.status_refusal('https://dmz.example/x', 404, 'reader').code == 'http_status'
