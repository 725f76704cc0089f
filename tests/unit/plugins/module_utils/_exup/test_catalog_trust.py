# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog trust rules of issue 8 (items 4 and 6) as pure functions: the version rules, the feed's identity,
``feed_id``, which refusals a sync honours, and the vendor side keeping its feed_id."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import (
    MAX_VERSION_STEP,
    Catalog,
    build_catalog,
    canonical_json,
    check_version,
    parse_catalog,
    same_feed,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError, ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import is_remembered
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import write_catalog

NOW = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)


def catalog(feed_id='', key_ids=('k1',)):
    return Catalog(version=1, generated='', expires='', entries=[], key_ids=list(key_ids), feed_id=feed_id)


def build(key, version=5, feed_id=None):
    return build_catalog([], version, [key], generated=NOW - datetime.timedelta(days=1), feed_id=feed_id)


def rejected(version, min_version, code):
    with pytest.raises(CatalogError) as caught:
        check_version(version, min_version)
    assert caught.value.code == code
    assert caught.value.details == {'version': version, 'min_version': min_version}
    return caught.value


# --------------------------------------------------------------------------- version rules


def test_equal_and_higher_versions_within_the_step_are_accepted():
    check_version(5, 5)
    check_version(5 + MAX_VERSION_STEP, 5)
    check_version(MAX_VERSION_STEP, 0)  # a first catalog too


def test_lower_version_is_a_rollback():
    error = rejected(4, 5, 'catalog_rollback')
    assert error.msg == 'catalog version 4 is lower than version 5 accepted before: refusing a rollback'


@pytest.mark.parametrize('version,min_version', [(6 + MAX_VERSION_STEP, 5), (2**63, 5), (2**63, 0), (MAX_VERSION_STEP + 1, 0)])
def test_a_jump_beyond_the_step_is_refused(version, min_version):
    error = rejected(version, min_version, 'catalog_version_jump')
    assert error.msg.startswith('catalog version %d is more than %d above version %d accepted before' % (version, MAX_VERSION_STEP, min_version))
    assert 'accept_catalog_version_reset' in error.msg


def test_parse_catalog_applies_the_jump_rule(signing_key, keyring):
    with pytest.raises(CatalogError) as caught:
        parse_catalog(build(signing_key, version=2**63), keyring, min_version=3, now=NOW)
    assert caught.value.code == 'catalog_version_jump'


def test_parse_catalog_without_min_version_leaves_the_version_to_the_caller(signing_key, keyring):
    assert parse_catalog(build(signing_key, version=2), keyring, min_version=None, now=NOW).version == 2


# --------------------------------------------------------------------------- the feed's identity


def test_feed_id_is_signed_and_parsed(signing_key, keyring):
    parsed = parse_catalog(build(signing_key, feed_id='vendor-feed-1'), keyring, now=NOW)
    assert parsed.feed_id == 'vendor-feed-1'
    assert parse_catalog(build(signing_key), keyring, now=NOW).feed_id == ''
    assert 'feed_id' not in json.loads(build(signing_key))['signed']  # catalogs without it keep their exact form


@pytest.mark.parametrize('feed_id', ['../x', 'a b', 'feed\n', 7, '', '٢٠٢٦'])
def test_feed_id_must_be_a_token(signing_key, keyring, feed_id):
    signed = json.loads(build(signing_key))['signed']
    signed['feed_id'] = feed_id
    data = json.dumps({'signed': signed, 'signatures': [{'keyid': signing_key.key_id, 'sig': signing_key.sign(canonical_json(signed))}]})
    if feed_id == '':
        assert parse_catalog(data.encode(), keyring, now=NOW).feed_id == ''  # empty: no feed id, the keys decide
        return
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data.encode(), keyring, now=NOW)
    assert caught.value.code == 'catalog_invalid' and 'feed_id' in caught.value.msg


def test_same_feed_by_feed_id_whatever_the_keys():
    assert same_feed('vendor', ['k1'], catalog('vendor', ['k2']))
    assert not same_feed('vendor', ['k1'], catalog('other', ['k1']))


def test_same_feed_by_a_shared_key_when_a_feed_id_is_missing():
    assert same_feed('', ['k1'], catalog('', ['k1', 'k2']))  # rotation: the new catalog carries both keys
    assert same_feed('', ['k1', 'k2'], catalog('', ['k2']))  # rotation done: the old key is gone
    assert same_feed('vendor', ['k1'], catalog('', ['k1']))  # a mirror serving a catalog from before feed_id
    assert not same_feed('', ['k1'], catalog('', ['k3']))


# --------------------------------------------------------------------------- which refusals are honoured


@pytest.mark.parametrize(
    'code,reason,honoured',
    [
        ('bad_signature', 'ExUpHash.xml has a bad signature', True),
        ('catalog_mismatch', 'package does not match its catalog entry', True),
        ('digest_mismatch', 'payload/image.bin does not match its SHA-256 in ExUpHash.xml: the package was altered', True),
        ('digest_mismatch', 'http://m/p.zip does not match the SHA-256 the catalog states: it was altered in transit or on the server', False),
        ('download_too_long', 'http://m/p.zip is 9 bytes long, more than the 4 bytes the catalog states', False),
        ('proxy_tunnel_407', 'tunnel refused (407)', False),
    ],
)
def test_only_refusals_of_the_vendors_bytes_are_honoured(code, reason, honoured):
    assert is_remembered({'code': code, 'reason': reason}) is honoured


# --------------------------------------------------------------------------- the vendor side keeps the feed's identity


def test_write_catalog_keeps_the_feed_id(tmp_path, signing_key):
    write_catalog(str(tmp_path), [], [signing_key])
    first = json.loads((tmp_path / 'catalog.json').read_text())['signed']['feed_id']
    assert first.startswith('feed-')
    write_catalog(str(tmp_path), [], [signing_key])
    assert json.loads((tmp_path / 'catalog.json').read_text())['signed']['feed_id'] == first
    write_catalog(str(tmp_path / '..' / tmp_path.name), [], [signing_key], feed_id='named-feed')
    assert json.loads((tmp_path / 'catalog.json').read_text())['signed']['feed_id'] == 'named-feed'


def test_a_new_feed_gets_its_own_feed_id(tmp_path, signing_key):
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        write_catalog(str(tmp_path / name), [], [signing_key])
    ids = {json.loads((tmp_path / name / 'catalog.json').read_text())['signed']['feed_id'] for name in ('a', 'b')}
    assert len(ids) == 2


def test_publishing_refuses_a_version_repositories_would_refuse(tmp_path, signing_key):
    write_catalog(str(tmp_path), [], [signing_key], version=3)
    before = (tmp_path / 'catalog.json').read_bytes()
    with pytest.raises(ExupError) as caught:
        write_catalog(str(tmp_path), [], [signing_key], version=4 + MAX_VERSION_STEP)
    assert caught.value.code == 'catalog_version_jump'
    assert caught.value.msg == 'catalog version %d would be more than %d above the published version 3' % (4 + MAX_VERSION_STEP, MAX_VERSION_STEP)
    assert (tmp_path / 'catalog.json').read_bytes() == before
    assert write_catalog(str(tmp_path), [], [signing_key], version=3 + MAX_VERSION_STEP) == 3 + MAX_VERSION_STEP
