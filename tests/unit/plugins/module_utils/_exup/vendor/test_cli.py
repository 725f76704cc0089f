# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup-tool's own logic (issue 12 item 3): passphrases, error codes and exit codes, verify --feed, the wrapper."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor import cli
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import verify_feed

BUILD = ['--module', 'system-bios', '--version', '1.00', '--release-date', '2026-01-01', '--model', 'M1', '--os', 'any']


def run(capsys, *argv):
    """(exit code, parsed stdout or None, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@pytest.fixture
def vendor(tmp_path, capsys):
    """keys/vendor.key, a payload and two packages in pk/."""
    assert run(capsys, 'keygen', '--out', str(tmp_path / 'keys'))[0] == 0
    (tmp_path / 'payload').mkdir()
    (tmp_path / 'payload' / 'install.sh').write_text('#!/bin/sh\nexit 0\n')
    for package_id in ('p1', 'p2'):
        cli_words = ['build', '--payload', str(tmp_path / 'payload'), '--key', str(tmp_path / 'keys' / 'vendor.key')]
        assert run(capsys, *cli_words, '--out', str(tmp_path / 'pk' / (package_id + '.zip')), '--package-id', package_id, *BUILD)[0] == 0
    return tmp_path


# --------------------------------------------------------------------------- passphrases


def test_keygen_encrypts_with_the_passphrase_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(cli.PASSPHRASE_ENV, 's3cret')
    code, out, _err = run(capsys, 'keygen', '--out', str(tmp_path))
    assert code == 0 and out['encrypted'] is True
    text = (tmp_path / 'vendor.key').read_text()
    assert text.startswith('-----BEGIN ENCRYPTED PRIVATE KEY-----') and 's3cret' not in text
    assert SigningKey.load(str(tmp_path / 'vendor.key'), passphrase=b's3cret').key_id == out['key_id']


def test_passphrase_file_drops_one_newline_and_stdin_works(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.PASSPHRASE_ENV, raising=False)
    (tmp_path / 'pw').write_text('s3cret\n')
    assert run(capsys, 'keygen', '--out', str(tmp_path / 'k'), '--passphrase-file', str(tmp_path / 'pw'))[0] == 0
    assert SigningKey.load(str(tmp_path / 'k' / 'vendor.key'), passphrase=b's3cret')

    class Stdin:
        buffer = __import__('io').BytesIO(b's3cret\r\n')

    monkeypatch.setattr(cli.sys, 'stdin', Stdin)
    key = cli.load_key(str(tmp_path / 'k' / 'vendor.key'), cli.parser().parse_args(['synth', '--feed', 'f', '--key', 'k', '--passphrase-file', '-']))
    assert key.key_id == SigningKey.load(str(tmp_path / 'k' / 'vendor.key'), passphrase=b's3cret').key_id


@pytest.mark.parametrize(
    ('passphrase', 'code'),
    [(None, 'key_passphrase_required'), ('wrong', 'key_passphrase_wrong')],
)
def test_an_encrypted_key_without_its_passphrase_is_refused(tmp_path, capsys, monkeypatch, passphrase, code):
    monkeypatch.setenv(cli.PASSPHRASE_ENV, 's3cret')
    assert run(capsys, 'keygen', '--out', str(tmp_path))[0] == 0
    if passphrase is None:
        monkeypatch.delenv(cli.PASSPHRASE_ENV)
    else:
        monkeypatch.setenv(cli.PASSPHRASE_ENV, passphrase)
    status, out, err = run(capsys, 'synth', '--feed', str(tmp_path / 'feed'), '--key', str(tmp_path / 'vendor.key'), '--entries', '1')
    assert (status, out) == (1, None)
    assert err.startswith('exup-tool: error [%s]: ' % code) and 'Traceback' not in err and 's3cret' not in err
    assert not (tmp_path / 'feed').exists()


def test_empty_or_unreadable_passphrase_file(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.PASSPHRASE_ENV, raising=False)
    (tmp_path / 'empty').write_text('\n')
    assert '[passphrase_invalid]' in run(capsys, 'keygen', '--out', str(tmp_path / 'k'), '--passphrase-file', str(tmp_path / 'empty'))[2]
    assert '[passphrase_unreadable]' in run(capsys, 'keygen', '--out', str(tmp_path / 'k'), '--passphrase-file', str(tmp_path / 'none'))[2]
    assert not (tmp_path / 'k' / 'vendor.key').exists()


def test_a_plain_key_loads_whatever_passphrase_is_set(tmp_path):
    key = SigningKey.generate()
    key.save(str(tmp_path / 'k.key'), str(tmp_path / 'k.pub'))
    assert SigningKey.load(str(tmp_path / 'k.key'), passphrase=b'ignored').key_id == key.key_id


# --------------------------------------------------------------------------- hostile input: codes, exit codes, no traceback


@pytest.mark.parametrize(
    ('argv', 'status', 'code'),
    [
        (['bogus'], 2, 'usage'),
        (['verify', '--trusted-key', 'keys/vendor.pub'], 2, 'usage'),
        (['verify', 'pk/p1.zip', '--feed', 'pk', '--trusted-key', 'keys/vendor.pub'], 2, 'usage'),
        (['build', '--payload', 'payload', '--key', 'keys/vendor.key', '--out', 'x.zip'], 1, 'argument_invalid'),
        (['build', '--payload', 'nowhere', '--key', 'keys/vendor.key', '--out', 'x.zip', '--package-id', 'p', *BUILD], 1, 'payload_invalid'),
        (['build', '--payload', 'payload', '--key', 'nokey', '--out', 'x.zip', '--package-id', 'p', *BUILD], 1, 'not_found'),
        (['build', '--payload', 'payload', '--key', 'payload/install.sh', '--out', 'x.zip', '--package-id', 'p', *BUILD], 1, 'key_invalid'),
        (['build', '--payload', 'payload', '--key', 'keys/vendor.key', '--out', 'x.zip', '--info', 'payload/install.sh'], 1, 'info_invalid'),
        (['build', '--payload', 'payload', '--key', 'keys/vendor.key', '--out', 'x.zip', '--info', 'list.json'], 1, 'info_invalid'),
        (['build', '--payload', 'payload', '--key', 'keys/vendor.key', '--out', 'x.zip', '--info', 'partial.json'], 1, 'info_invalid'),
        (['verify', 'payload/install.sh', '--trusted-key', 'keys/vendor.pub'], 1, 'zip_invalid'),
        (['verify', 'pk/p1.zip', '--trusted-key', 'keys/vendor.key'], 1, 'key_invalid'),
        (['verify', '--feed', 'pk', '--trusted-key', 'keys/vendor.pub'], 1, 'not_found'),
        (['publish', '--packages', 'nowhere', '--feed', 'feed', '--key', 'keys/vendor.key'], 1, 'packages_invalid'),
        (['keygen', '--out', 'payload/install.sh'], 1, 'path_invalid'),
    ],
)
def test_hostile_input_has_a_code_and_no_traceback(vendor, capsys, monkeypatch, argv, status, code):
    monkeypatch.chdir(vendor)
    (vendor / 'list.json').write_text('[1, 2]')
    (vendor / 'partial.json').write_text('{"package_id": "p"}')
    result, out, err = run(capsys, *argv)
    assert (result, out) == (status, None)
    assert ('exup-tool: error [%s]: ' % code) in err and 'Traceback' not in err
    assert not os.path.exists('x.zip') and not os.path.exists('feed')


def test_an_unexpected_error_is_one_line_unless_debugging(capsys, monkeypatch):
    def boom(_args):
        raise RuntimeError('a bug')

    monkeypatch.setattr(cli, 'cmd_schema', boom)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert run(capsys, 'schema', '--out', 'x') == (1, None, 'exup-tool: error [internal_error]: RuntimeError: a bug (set EXUP_DEBUG=1 for the traceback)\n')
    monkeypatch.setenv(cli.DEBUG_ENV, '1')
    with pytest.raises(RuntimeError):
        cli.main(['schema', '--out', 'x'])


def test_interrupted_exits_130(capsys, monkeypatch):
    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, 'cmd_schema', interrupted)
    assert run(capsys, 'schema', '--out', 'x') == (130, None, 'exup-tool: error [interrupted]: interrupted\n')


# --------------------------------------------------------------------------- verify --feed


def test_verify_feed_checks_catalog_and_every_package(vendor, capsys):
    feed = vendor / 'feed'
    assert run(capsys, 'publish', '--packages', str(vendor / 'pk'), '--feed', str(feed), '--key', str(vendor / 'keys' / 'vendor.key'))[0] == 0
    code, out, _err = run(capsys, 'verify', '--feed', str(feed), '--trusted-key', str(vendor / 'keys' / 'vendor.pub'))
    assert code == 0 and out['entries'] == 2 and out['version'] == 1 and out['feed_id'].startswith('feed-')
    keyring = KeyRing.from_pem_list([str(vendor / 'keys' / 'vendor.pub')])

    other = SigningKey.generate()
    other.save(str(vendor / 'o.key'), str(vendor / 'o.pub'))
    code, _out, err = run(capsys, 'verify', '--feed', str(feed), '--trusted-key', str(vendor / 'o.pub'))
    assert code == 1 and '[unknown_key]' in err

    package = feed / 'packages' / 'p2.zip'
    original = package.read_bytes()
    package.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ExupError) as info:
        verify_feed(str(feed), keyring)
    assert info.value.code == 'feed_package_mismatch' and info.value.details['package_id'] == 'p2'

    # same bytes as another package of the feed: size and digest differ from what the catalog signed
    package.write_bytes((feed / 'packages' / 'p1.zip').read_bytes())
    with pytest.raises(ExupError) as info:
        verify_feed(str(feed), keyring)
    assert info.value.code == 'feed_package_mismatch'

    package.unlink()
    code, _out, err = run(capsys, 'verify', '--feed', str(feed), '--trusted-key', str(vendor / 'keys' / 'vendor.pub'))
    assert code == 1 and '[feed_package_missing]' in err and 'Traceback' not in err


def test_verify_feed_refuses_a_tampered_catalog(vendor, capsys):
    feed = vendor / 'feed'
    assert run(capsys, 'publish', '--packages', str(vendor / 'pk'), '--feed', str(feed), '--key', str(vendor / 'keys' / 'vendor.key'))[0] == 0
    catalog = json.loads((feed / 'catalog.json').read_text())
    catalog['signed']['entries'] = catalog['signed']['entries'][:1]
    (feed / 'catalog.json').write_text(json.dumps(catalog))
    code, _out, err = run(capsys, 'verify', '--feed', str(feed), '--trusted-key', str(vendor / 'keys' / 'vendor.pub'))
    assert code == 1 and '[bad_signature]' in err


def test_verify_package_refuses_a_changed_member(vendor, capsys):
    source, tampered = vendor / 'pk' / 'p1.zip', vendor / 'tampered.zip'
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(tampered, 'w') as new:
        for item in old.infolist():
            data = old.read(item.filename)
            new.writestr(item, data.replace(b'exit 0', b'exit 1') if item.filename.endswith('install.sh') else data)
    code, out, err = run(capsys, 'verify', str(tampered), '--trusted-key', str(vendor / 'keys' / 'vendor.pub'))
    assert (code, out) == (1, None) and err.startswith('exup-tool: error [') and 'Traceback' not in err


# --------------------------------------------------------------------------- wrapper


def test_wrapper_script_quotes_its_paths():
    text = cli.wrapper_script("/opt/py th'on/bin/python", '/srv/my collections')
    assert text.startswith('#!/bin/sh\n')
    assert "PYTHONPATH='/srv/my collections'${PYTHONPATH:+:$PYTHONPATH}\n" in text
    assert "exec '/opt/py th'\"'\"'on/bin/python' -m %s \"$@\"\n" % cli.ENTRY_MODULE in text


def test_wrapper_writes_an_executable_and_keeps_an_existing_file(tmp_path, capsys):
    out = tmp_path / 'bin' / 'exup-tool'
    code, result, _err = run(capsys, 'wrapper', '--out', str(out))
    assert code == 0 and os.access(out, os.X_OK)
    assert os.path.isdir(os.path.join(result['collections_path'], 'ansible_collections', 'exup', 'fleet'))
    assert result['collections_path'] in out.read_text() or "'" in out.read_text()
    code, _result, err = run(capsys, 'wrapper', '--out', str(out))
    assert code == 1 and '[exists]' in err
    assert run(capsys, 'wrapper', '--out', str(out), '--force', '--python', '/usr/bin/python3')[0] == 0
    assert 'exec /usr/bin/python3 -m ' in out.read_text()
