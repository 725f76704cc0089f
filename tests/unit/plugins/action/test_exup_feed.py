# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup.fleet.exup_feed (issue 12 item 3): publish idempotently with check mode and diff, verify, and its RETURN.

The module runs in-process as test_return_samples runs the others (controller unit tests).
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import parse_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor import cli
from ansible_collections.exup.fleet.tests.unit.plugins.action.test_return_samples import check, run_module

BUILD = ['--module', 'system-bios', '--release-date', '2026-01-01', '--model', 'M1', '--os', 'any']


def build(tmp_path, package_id, version, key='keys/vendor.key', script='exit 0'):
    payload = tmp_path / ('payload-' + package_id)
    payload.mkdir(exist_ok=True)
    (payload / 'install.sh').write_text('#!/bin/sh\n%s\n' % script)
    cli_words = ['build', '--payload', str(payload), '--key', str(tmp_path / key), '--out', str(tmp_path / 'pk' / (package_id + '.zip'))]
    assert cli.main([*cli_words, '--package-id', package_id, '--version', version, *BUILD]) == 0


@pytest.fixture
def vendor(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.PASSPHRASE_ENV, raising=False)
    assert cli.main(['keygen', '--out', str(tmp_path / 'keys')]) == 0
    build(tmp_path, 'bios-1.00', '1.00')
    build(tmp_path, 'bios-1.02', '1.02')
    capsys.readouterr()
    return tmp_path


def publish(vendor, check_mode=False, **extra):
    args = {'path': str(vendor / 'feed'), 'packages': str(vendor / 'pk'), 'signing_keys': [str(vendor / 'keys/vendor.key')]}
    result = run_module('exup_feed', dict(args, **extra), check_mode=check_mode)
    check('exup_feed', result)
    return result


def verify(vendor, key='keys/vendor.pub'):
    result = run_module('exup_feed', {'path': str(vendor / 'feed'), 'state': 'verified', 'trusted_keys': [str(vendor / key)]})
    check('exup_feed', result)
    return result


def test_check_mode_publishes_nothing_then_publish_is_idempotent(vendor):
    planned = publish(vendor, check_mode=True)
    assert planned['changed'] and planned['new'] == ['bios-1.00', 'bios-1.02'] and planned['version'] == 1
    assert planned['diff'] == {'before': {'packages': []}, 'after': {'packages': ['bios-1.00', 'bios-1.02']}}
    assert not (vendor / 'feed').exists()

    done = publish(vendor)
    assert done['changed'] and done['version'] == 1 and done['entries'] == 2 and done['expires']
    catalog = parse_catalog((vendor / 'feed/catalog.json').read_bytes(), KeyRing.from_pem_list([str(vendor / 'keys/vendor.pub')]))
    assert sorted(entry.package_id for entry in catalog.entries) == ['bios-1.00', 'bios-1.02']

    again = publish(vendor)
    assert not again['changed'] and (again['new'], again['removed'], again['replaced']) == ([], [], []) and again['version'] == 1
    assert publish(vendor, check_mode=True)['changed'] is False
    forced = publish(vendor, force=True)
    assert forced['changed'] and forced['version'] == 2

    shown = verify(vendor)
    assert not shown['changed'] and shown['version'] == 2 and shown['entries'] == 2 and shown['feed_id'].startswith('feed-')


def test_new_removed_replaced_and_renewal(vendor):
    publish(vendor, expires_days=30)
    (vendor / 'pk/bios-1.00.zip').unlink()
    build(vendor, 'bios-1.02', '1.02', script='exit 0 # rebuilt')
    build(vendor, 'bios-1.04', '1.04')
    planned = publish(vendor, check_mode=True)
    assert (planned['new'], planned['removed'], planned['replaced']) == (['bios-1.04'], ['bios-1.00'], ['bios-1.02'])
    assert planned['diff']['after'] == {'packages': ['bios-1.02', 'bios-1.04']} and planned['version'] == 2
    assert publish(vendor)['version'] == 2

    short = publish(vendor, force=True, expires_days=3)
    assert short['changed'] and short['version'] == 3
    renewed = publish(vendor)  # expires in 3 days, less than renew_days (7): signed again
    assert renewed['changed'] and renewed['version'] == 4
    assert not publish(vendor)['changed']


def test_another_signing_key_signs_again(vendor):
    publish(vendor)
    SigningKey.generate().save(str(vendor / 'keys/new.key'), str(vendor / 'keys/new.pub'))
    both = [str(vendor / 'keys/vendor.key'), str(vendor / 'keys/new.key')]
    assert publish(vendor, signing_keys=both)['changed']
    assert not publish(vendor, signing_keys=both)['changed']
    # the catalog verifies with new.pub alone, its packages (signed by vendor.key) do not
    assert verify(vendor, 'keys/new.pub')['error'] == 'unknown_key'
    result = run_module(
        'exup_feed', {'path': str(vendor / 'feed'), 'state': 'verified', 'trusted_keys': [str(vendor / 'keys/new.pub'), str(vendor / 'keys/vendor.pub')]}
    )
    assert sorted(result['key_ids']) == sorted(SigningKey.load(path).key_id for path in both)


def test_encrypted_key_with_its_passphrase(vendor):
    key = SigningKey.generate()
    key.save(str(vendor / 'keys/enc.key'), str(vendor / 'keys/enc.pub'), passphrase=b's3cret')
    signing = [str(vendor / 'keys/enc.key')]
    missing = publish(vendor, signing_keys=signing)
    assert missing['failed'] and missing['error'] == 'key_passphrase_required'
    wrong = publish(vendor, signing_keys=signing, key_passphrase='nope')
    assert wrong['failed'] and wrong['error'] == 'key_passphrase_wrong' and not (vendor / 'feed').exists()
    # packages signed by vendor.key do not verify with enc.key's public key alone: refused before anything is written
    refused = publish(vendor, signing_keys=signing, key_passphrase='s3cret')
    assert refused['failed'] and refused['error'] == 'unknown_key' and not (vendor / 'feed/catalog.json').exists()
    assert publish(vendor, signing_keys=[*signing, str(vendor / 'keys/vendor.key')], key_passphrase='s3cret')['changed']


def test_verified_refuses_a_tampered_feed_without_a_traceback(vendor):
    publish(vendor)
    package = vendor / 'feed/packages/bios-1.02.zip'
    data = package.read_bytes()
    package.write_bytes(data[:50] + bytes([data[50] ^ 1]) + data[51:])
    result = verify(vendor)
    assert result['failed'] and result['error'] == 'feed_package_mismatch' and 'exception' not in result
    catalog = json.loads((vendor / 'feed/catalog.json').read_text())
    catalog['signed']['version'] = 99
    (vendor / 'feed/catalog.json').write_text(json.dumps(catalog))
    assert verify(vendor)['error'] == 'bad_signature'


def test_bad_arguments(vendor):
    result = run_module('exup_feed', {'path': str(vendor / 'feed'), 'packages': str(vendor / 'nowhere'), 'signing_keys': [str(vendor / 'keys/vendor.key')]})
    assert result['failed'] and result['error'] == 'packages_invalid'
    result = run_module('exup_feed', {'path': str(vendor / 'feed'), 'state': 'verified'})
    assert result['failed'] and 'trusted_keys' in result['msg']
