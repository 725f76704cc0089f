# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The signed feed catalog: roundtrip, trust, rollback, expiry, strict entry fields, ``since``."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import catalog as catalog_module
from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import EPOCH, CatalogEntry, build_catalog, canonical_json, parse_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError

NOW = datetime.datetime(2025, 3, 1, 0, 0, 0, tzinfo=datetime.timezone.utc)
SHA = 'ab' * 32


def entry(**fields):
    values = {
        'package_id': 'BIOS-R120-1.10',
        'module_id': 'system-bios',
        'module_name': 'System BIOS',
        'version': '1.10',
        'release_date': '2025-01-15',
        'published': '2025-01-20T09:00:00Z',
        'models': ['R120h-1M'],
        'os': ['linux'],
        'kind': 'linux',
        'auto_update': True,
        'size': 4096,
        'sha256': SHA,
        'url': 'packages/BIOS-R120-1.10.zip',
    }
    values.update(fields)
    if 'sha256' not in fields:  # a digest of its own for each package, as in a real catalog
        values['sha256'] = hashlib.sha256(values['package_id'].encode()).hexdigest()
    return values


def build(entries, key, version=5, generated=NOW - datetime.timedelta(days=1), expires_in=datetime.timedelta(days=30)):
    return build_catalog(entries, version, [key], generated=generated, expires_in=expires_in)


def sign(signed, keys):
    """A catalog envelope around an arbitrary ``signed`` dict, correctly signed (to reach later checks)."""
    message = canonical_json(signed)
    return json.dumps({'signed': signed, 'signatures': [{'keyid': k.key_id, 'sig': k.sign(message)} for k in keys]}).encode()


def signed_part(**fields):
    signed = {
        'type': 'exup-catalog',
        'spec_version': 1,
        'version': 5,
        'generated': '2025-02-28T00:00:00Z',
        'expires': '2025-03-30T00:00:00Z',
        'entries': [entry()],
    }
    signed.update(fields)
    return signed


def refused(data, keyring, code, min_version=0):
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data, keyring, min_version=min_version, now=NOW)
    assert caught.value.code == code, caught.value.msg
    return caught.value


def test_roundtrip(signing_key, keyring):
    bmc = entry(package_id='BMC-1', module_id='bmc-firmware', version='R1.5a', kind='bmc', url='packages/BMC-1.zip', auto_update=False)
    bmc.update(models=('A', 'B'), os=('any',))  # build_catalog takes CatalogEntry objects (tuples) as well as dicts
    entries = [entry(), CatalogEntry(**bmc)]
    parsed = parse_catalog(build(entries, signing_key), keyring, min_version=5, now=NOW)
    assert parsed.version == 5 and parsed.key_ids == [signing_key.key_id]
    assert parsed.generated == '2025-02-28T00:00:00Z' and parsed.expires == '2025-03-30T00:00:00Z'
    first, second = parsed.entries
    assert first.as_dict() == entry()
    assert second.models == ('A', 'B') and second.targets('B', 'windows') and not second.targets('C', 'linux')
    assert second.auto_update is False and second.kind == 'bmc'


def test_unknown_key(other_key, keyring):
    error = refused(build([entry()], other_key), keyring, 'unknown_key')
    assert other_key.key_id in error.msg


def test_one_trusted_signature_among_others_is_enough(signing_key, other_key, keyring):
    data = build_catalog([entry()], 5, [other_key, signing_key], generated=NOW)
    assert parse_catalog(data, keyring, now=NOW).key_ids == [signing_key.key_id]


def test_entry_altered_after_signing(signing_key, keyring):
    envelope = json.loads(build([entry()], signing_key))
    envelope['signed']['entries'][0]['sha256'] = 'cd' * 32  # points the repository at another file
    error = refused(json.dumps(envelope).encode(), keyring, 'bad_signature')
    assert 'catalog has a bad signature' in error.msg


def test_signature_not_base64(signing_key, keyring):
    envelope = json.loads(build([entry()], signing_key))
    envelope['signatures'][0]['sig'] = 'not base64 !'
    refused(json.dumps(envelope).encode(), keyring, 'bad_signature')


def test_rollback(signing_key, keyring):
    error = refused(build([entry()], signing_key, version=4), keyring, 'catalog_rollback', min_version=5)
    assert 'version 4 is lower than version 5' in error.msg
    assert error.details == {'version': 4, 'min_version': 5}


def test_equal_version_is_accepted(signing_key, keyring):
    """The same catalog served again (e.g. by a second mirror) is not a rollback."""
    assert parse_catalog(build([entry()], signing_key, version=5), keyring, min_version=5, now=NOW).version == 5


@pytest.mark.parametrize('version', [0, -1, True, '6', 1.5])
def test_version_must_be_a_positive_integer(signing_key, keyring, version):
    refused(sign(signed_part(version=version), [signing_key]), keyring, 'catalog_invalid')


def test_expired(signing_key, keyring):
    data = build([entry()], signing_key, generated=NOW - datetime.timedelta(days=31))
    error = refused(data, keyring, 'catalog_expired')
    assert 'catalog expired at 2025-02-28T00:00:00Z' in error.msg


def test_expiring_exactly_now_is_expired(signing_key, keyring):
    refused(build([entry()], signing_key, generated=NOW - datetime.timedelta(days=30)), keyring, 'catalog_expired')


@pytest.mark.parametrize(
    'field, value',
    [
        ('generated', '2025-02-28 00:00:00'),
        ('generated', '2025-02-28T00:00:00+09:00'),
        ('expires', '2025-03-30'),
        ('expires', 1743292800),
        ('generated', None),
    ],
)
def test_bad_time_format(signing_key, keyring, field, value):
    error = refused(sign(signed_part(**{field: value}), [signing_key]), keyring, 'catalog_invalid')
    assert 'is not a UTC time of the form YYYY-MM-DDTHH:MM:SSZ' in error.msg


def test_bad_published_time_in_entry(signing_key, keyring):
    error = refused(build([entry(published='2025-01-20')], signing_key), keyring, 'catalog_invalid')
    assert 'published time of catalog entry 0' in error.msg


@pytest.mark.parametrize(
    'fields, fragment',
    [
        ({'url': 'https://evil.example/pkg.zip'}, 'not a plain relative path'),
        ({'url': '/etc/passwd'}, 'not a plain relative path'),
        ({'url': 'packages/../../secret.zip'}, 'not a plain relative path'),
        ({'url': '../pkg.zip'}, 'not a plain relative path'),
        ({'url': 'packages//pkg.zip'}, 'not a plain relative path'),
        ({'url': 'packages/pkg.zip?x=1'}, 'not a plain relative path'),
        ({'sha256': 'AB' * 32}, 'invalid sha256'),
        ({'sha256': 'ab' * 31}, 'invalid sha256'),
        ({'size': 0}, 'size 0 outside'),
        ({'size': -5}, 'size -5 outside'),
        ({'size': 65 * 1024**3}, 'outside'),
        ({'size': True}, 'no valid size'),
        ({'size': '4096'}, 'no valid size'),
        ({'auto_update': 1}, 'no valid auto_update'),
        ({'kind': 'firmware'}, "unknown kind 'firmware'"),
        ({'package_id': '../x'}, 'invalid package_id'),
        ({'version': ''}, 'invalid version'),
        ({'models': []}, 'no valid models or os'),
        ({'os': ['linux', 3]}, 'no valid models or os'),
        ({'models': 'R120h-1M'}, 'no valid models'),
        ({'release_date': '15/01/2025'}, 'invalid release_date'),
    ],
    ids=lambda value: str(value)[:30],
)
def test_invalid_entry_fields(signing_key, keyring, fields, fragment):
    error = refused(build([entry(), entry(**dict({'package_id': 'X-2'}, **fields))], signing_key), keyring, 'catalog_invalid')
    assert fragment in error.msg
    assert 'catalog entry 1' in error.msg


def test_entry_not_an_object(signing_key, keyring):
    error = refused(sign(signed_part(entries=[entry(), 'BIOS-R120-1.10']), [signing_key]), keyring, 'catalog_invalid')
    assert 'catalog entry 1 is not an object' in error.msg


def test_duplicate_package(signing_key, keyring):
    error = refused(build([entry(), entry(url='packages/other.zip')], signing_key), keyring, 'catalog_invalid')
    assert 'lists package BIOS-R120-1.10 twice' in error.msg


def test_entries_since(signing_key, keyring):
    entries = [entry(package_id='P%d' % day, published='2025-01-%02dT00:00:00Z' % day) for day in (1, 2, 3)]
    parsed = parse_catalog(build(entries, signing_key), keyring, now=NOW)
    assert [e.package_id for e in parsed.entries_since(EPOCH)] == ['P1', 'P2', 'P3']
    # Inclusive: an entry published in the very second of the last access must not be missed.
    assert [e.package_id for e in parsed.entries_since('2025-01-02T00:00:00Z')] == ['P2', 'P3']
    assert [e.package_id for e in parsed.entries_since('2025-01-02T00:00:01Z')] == ['P3']
    assert parsed.entries_since('2025-01-03T00:00:01Z') == []


def test_spec_version_unsupported(signing_key, keyring):
    error = refused(sign(signed_part(spec_version=2), [signing_key]), keyring, 'catalog_unsupported')
    assert 'spec_version 2 is not supported' in error.msg


@pytest.mark.parametrize(
    'data',
    [
        b'not json',
        b'[]',
        b'{"signed": {}, "signatures": {}}',
        json.dumps({'signed': {'type': 'other'}, 'signatures': []}).encode(),
        '{"signed": 1}'.encode('utf-16'),
    ],
    ids=['text', 'list', 'signatures-not-list', 'wrong-type', 'utf16'],
)
def test_malformed_envelope(keyring, data):
    refused(data, keyring, 'catalog_invalid')


def test_no_signatures(signing_key, keyring):
    envelope = json.loads(build([entry()], signing_key))
    envelope['signatures'] = []
    error = refused(json.dumps(envelope).encode(), keyring, 'unknown_key')
    assert 'signed by: none' in error.msg


def test_entries_not_a_list(signing_key, keyring):
    refused(sign(signed_part(entries={'a': 1}), [signing_key]), keyring, 'catalog_invalid')


def test_too_large(signing_key, keyring, monkeypatch):
    data = build([entry()], signing_key)
    monkeypatch.setattr(catalog_module, 'MAX_CATALOG_BYTES', len(data) - 1)
    error = refused(data, keyring, 'catalog_invalid')
    assert 'larger than %d bytes' % (len(data) - 1) in error.msg


def test_two_packages_with_one_digest_are_refused(signing_key, keyring):
    data = build([entry(package_id='P1', sha256=SHA), entry(package_id='P2', sha256=SHA)], signing_key)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data, keyring, now=NOW)
    assert caught.value.code == 'catalog_invalid'
    assert 'catalog gives packages P1 and P2 the same SHA-256' in caught.value.msg


# ----------------------------------------------------------------- hostile bytes: clean errors, no traceback (issue 8 items 5, 6)


@pytest.mark.parametrize(
    'data',
    [
        b'[' * 100000 + b']' * 100000,
        b'{"signed": ' + b'{"a": ' * 100000 + b'1' + b'}' * 100000 + b', "signatures": []}',
    ],
    ids=['list', 'in-signed'],
)
def test_catalog_nested_100000_levels_is_invalid(keyring, data):
    error = refused(data, keyring, 'catalog_invalid')
    assert 'catalog is nested too deeply to be a catalog' in error.msg


def lone_surrogate_catalog(signing_key, where):
    """A catalog whose JSON holds the escape \\ud800 (a lone surrogate) in ``where``, signed as far as it can be."""
    signed = signed_part()
    if where == 'entry':
        signed['entries'][0]['module_name'] = 'BIOS \ud800'
    else:
        signed['comment'] = '\ud800'
    envelope = {'signed': signed, 'signatures': [{'keyid': signing_key.key_id, 'sig': signing_key.sign(b'anything')}]}
    return json.dumps(envelope).encode('ascii')  # ensure_ascii: the surrogate travels as the text \ud800


@pytest.mark.parametrize('where', ['entry', 'unknown-key'])
def test_lone_surrogate_in_signed_is_invalid(signing_key, keyring, where):
    data = lone_surrogate_catalog(signing_key, where)
    assert b'\\ud800' in data
    error = refused(data, keyring, 'catalog_invalid')
    assert 'catalog holds a lone surrogate (\\ud800), which is not text' in error.msg


def test_utf8_encoded_surrogate_is_not_utf8(signing_key, keyring):
    # json.loads alone decodes bytes with 'surrogatepass': the three bytes of an encoded surrogate got in.
    data = lone_surrogate_catalog(signing_key, 'entry').replace(b'\\ud800', b'\xed\xa0\x80')
    error = refused(data, keyring, 'catalog_invalid')
    assert 'catalog is not UTF-8' in error.msg


def test_size_limit_refuses_before_any_parse(keyring, monkeypatch):
    """An unsigned 250 MiB catalog cost 2 GiB of RSS and 17 s before unknown_key: the limit is a few times a
    20,000-entry catalog (8.2 MiB), and bytes over it are refused without decoding or parsing them."""
    assert catalog_module.MAX_CATALOG_BYTES == 32 * 1024 * 1024
    data = b'{"signed": {}, "signatures": [], "x": "' + b' ' * catalog_module.MAX_CATALOG_BYTES + b'"}'

    def no_parse(*_args, **_kwargs):
        raise AssertionError('an oversize catalog was parsed')

    monkeypatch.setattr(json, 'loads', no_parse)
    monkeypatch.setattr(json, 'JSONDecoder', no_parse)
    error = refused(data, keyring, 'catalog_invalid')
    assert 'catalog is larger than %d bytes (%d bytes): refused before parsing' % (catalog_module.MAX_CATALOG_BYTES, len(data)) in error.msg


@pytest.mark.parametrize(
    'fields, fragment',
    [
        ({'release_date': '\u0662\u0660\u0662\u0666-01-15'}, 'invalid release_date'),  # Arabic-Indic digits matched \d
        ({'release_date': '2026-01-15\n'}, 'invalid release_date'),  # $ matched before a final newline
        ({'package_id': 'system-bios-1.02\n'}, 'invalid package_id'),
        ({'module_id': 'system-bios\n'}, 'invalid module_id'),
        ({'version': '1.\u0660\u0662'}, 'invalid version'),
        ({'version': '1.02\n'}, 'invalid version'),
        ({'sha256': 'ab' * 32 + '\n'}, 'invalid sha256'),
        ({'url': 'packages/pkg.zip\n'}, 'not a plain relative path'),
        ({'published': '\u0662\u0660\u0662\u0666-01-20T09:00:00Z'}, 'is not a UTC time'),
        ({'published': '2026-01-20T09:00:00Z\n'}, 'is not a UTC time'),
        ({'module_name': ['System', 'BIOS']}, 'no valid module_name'),
        ({'module_name': 'System\nBIOS'}, 'no valid module_name'),
        ({'models': ['R120h-1M\n']}, 'no valid models or os'),
        ({'os': ['linux\n']}, 'no valid models or os'),
        ({'os': ['../linux']}, 'no valid models or os'),
    ],
    ids=lambda value: ascii(value)[:40],
)
def test_field_patterns_are_ascii_with_no_trailing_newline(signing_key, keyring, fields, fragment):
    error = refused(build([entry(), entry(**dict({'package_id': 'X-2'}, **fields))], signing_key), keyring, 'catalog_invalid')
    assert fragment in error.msg
    assert 'catalog entry 1' in error.msg


@pytest.mark.parametrize(
    'field, value',
    [('generated', '\u0662\u0660\u0662\u0665-02-28T00:00:00Z'), ('expires', '2025-03-30T00:00:00Z\n'), ('feed_id', 'vendor-feed\n')],
    ids=['generated', 'expires', 'feed_id'],
)
def test_catalog_times_and_feed_id_are_ascii_with_no_trailing_newline(signing_key, keyring, field, value):
    refused(sign(signed_part(**{field: value}), [signing_key]), keyring, 'catalog_invalid')


def test_unknown_key_message_is_bounded(keyring):
    signatures = [{'keyid': 'k%06d' % index, 'sig': ''} for index in range(10000)]
    error = refused(json.dumps({'signed': signed_part(), 'signatures': signatures}).encode(), keyring, 'unknown_key')
    assert 'k000000' in error.msg and '9995 more' in error.msg and len(error.msg) < 300


HUGE = 'x' * (1024 * 1024)


@pytest.mark.parametrize(
    'signed, fragment',
    [
        (signed_part(type=HUGE), "catalog type is 'xxxx"),
        (signed_part(spec_version=HUGE), 'catalog spec_version'),
        (signed_part(version=[[1]] * 100000), 'catalog version a JSON array is not a positive integer'),
        (signed_part(feed_id=HUGE), 'catalog feed_id'),
        (signed_part(generated=HUGE), 'catalog generated time'),
        (signed_part(entries=[entry(package_id=HUGE)]), 'catalog entry 0'),
        (signed_part(entries=[entry(kind=HUGE)]), 'unknown kind'),
        (signed_part(entries=[entry(url=HUGE)]), 'not a plain relative path'),
    ],
    ids=['type', 'spec_version', 'version', 'feed_id', 'generated', 'package_id', 'kind', 'url'],
)
def test_messages_do_not_carry_megabytes_of_the_catalog(signing_key, keyring, signed, fragment):
    with pytest.raises(CatalogError) as caught:
        parse_catalog(sign(signed, [signing_key]), keyring, now=NOW)
    assert caught.value.code in ('catalog_invalid', 'catalog_unsupported')
    assert fragment in caught.value.msg and len(caught.value.msg) < 300, caught.value.msg[:300]


def test_entries_hold_repeated_values_once_and_no_dict(signing_key, keyring):
    """20,000 entries of a few models, OS lists and modules: each value once in memory, and slots instead of a __dict__."""
    first, second = parse_catalog(build([entry(package_id='A-1.0'), entry(package_id='A-2.0', version='2.0')], signing_key), keyring, now=NOW).entries
    assert first.models is second.models and first.os is second.os
    assert first.module_id is second.module_id and first.module_name is second.module_name and first.kind is second.kind
    assert first.models == ('R120h-1M',) and first.version == '1.10' and second.version == '2.0'
    assert not hasattr(first, '__dict__')
    with pytest.raises(AttributeError):
        first.version = '3.0'  # still frozen
