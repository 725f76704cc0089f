# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Update packages: build and verify, and every refusal with its exact error code.

Hostile packages are written with zipfile directly and, where the check under test comes after
the signature, carry a correctly signed ExUpHash.xml, so the refusal proves that very check works.
"""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import sqlite3
import stat
import tracemalloc
import warnings
import zipfile

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import package
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import PackageError, RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import (
    HASH_NAME,
    INFO_NAME,
    build_package,
    build_package_from_bytes,
    render_hash_xml,
    render_info_xml,
    safe_extract,
    verify_package,
    verify_package_bytes,
)

PAYLOAD = {'install.sh': b'#!/bin/sh\necho flashing\n', 'image/fw.bin': b'\x01\x02' * 512}


def refused(path, keyring, code):
    """Verify ``path`` expecting a refusal with ``code``; return the error for message checks.

    Every refusal is checked twice: from the file (verify_package) and from its bytes in hand
    (verify_package_bytes, the sync's path): the same code, message and details."""
    with pytest.raises(PackageError) as caught:
        verify_package(str(path), keyring)
    assert caught.value.code == code, caught.value.msg
    if os.path.exists(path):
        with open(path, 'rb') as handle:
            data = handle.read()
        with pytest.raises(PackageError) as from_bytes:
            verify_package_bytes(data, keyring, os.path.basename(path))
        assert (from_bytes.value.code, from_bytes.value.msg, from_bytes.value.details) == (caught.value.code, caught.value.msg, caught.value.details)
    return caught.value


def members_of(path):
    """(name, bytes) of every member of a zip, in archive order."""
    with zipfile.ZipFile(path) as archive:
        return [(item.filename, archive.read(item)) for item in archive.infolist()]


def rewrite(path, out, replace=None, drop=()):
    """Rewrite a package as a tamperer would: same members, some replaced or dropped, valid zip CRCs."""
    replace = replace or {}
    members = [(name, replace.get(name, data)) for name, data in members_of(path) if name not in drop]
    with zipfile.ZipFile(out, 'w') as archive:
        for name, data in members:
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return str(out)


# ----------------------------------------------------------------- roundtrip
def test_build_and_verify_roundtrip(build_pkg, keyring, signing_key):
    path = build_pkg(
        payload=dict(PAYLOAD),
        package_id='BIOS-R120-1.10',
        version='1.10',
        models=['R120h-1M', 'R120h-2M'],
        os=['any'],
        kind='bmc',
        auto_update=False,
        uninstall_command='sh remove.sh',
        severity='critical',
    )
    verified = verify_package(path, keyring)
    info = verified.info
    assert (info.package_id, info.version, info.models, info.os, info.kind) == ('BIOS-R120-1.10', '1.10', ['R120h-1M', 'R120h-2M'], ['any'], 'bmc')
    assert (info.auto_update, info.reboot_required, info.uninstall_command, info.severity) == (False, True, 'sh remove.sh', 'critical')
    assert info.compatible and info.multi_model and info.targets('R120h-2M', 'windows')
    assert verified.key_id == signing_key.key_id
    assert set(verified.files) == {'install.sh', 'image/fw.bin', INFO_NAME}
    assert verified.files['image/fw.bin'] == (1024, hashlib.sha256(PAYLOAD['image/fw.bin']).hexdigest())


def test_verify_from_bytes_gives_what_verify_from_the_file_gives(build_pkg, keyring):
    path = build_pkg(payload=dict(PAYLOAD), package_id='BIOS-R120-1.10', version='1.10')
    with open(path, 'rb') as handle:
        data = handle.read()
    assert verify_package_bytes(data, keyring) == verify_package(path, keyring)
    assert verify_package_bytes(memoryview(data), keyring) == verify_package(path, keyring)


def test_build_from_directory_and_safe_extract(tmp_path, keyring, signing_key, info_factory):
    payload_dir = tmp_path / 'payload'
    (payload_dir / 'sub').mkdir(parents=True)
    (payload_dir / 'install.sh').write_bytes(b'echo hi\n')
    (payload_dir / 'sub' / 'big.bin').write_bytes(os.urandom(2 * 1024 * 1024))  # over 1 MiB: stored uncompressed
    path = build_package(str(payload_dir), info_factory(), signing_key, str(tmp_path / 'pkg.zip'))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo('sub/big.bin').compress_type == zipfile.ZIP_STORED
    dest = tmp_path / 'out'
    verified = safe_extract(path, keyring, str(dest))
    assert set(verified.files) == {'install.sh', 'sub/big.bin', INFO_NAME}
    assert (dest / 'sub' / 'big.bin').read_bytes() == (payload_dir / 'sub' / 'big.bin').read_bytes()
    assert not (dest / HASH_NAME).exists()


def test_build_refuses_a_symlink_in_the_payload(tmp_path, signing_key, info_factory):
    payload_dir = tmp_path / 'payload'
    payload_dir.mkdir()
    (payload_dir / 'link').symlink_to('/etc/passwd')
    with pytest.raises(PackageError) as caught:
        build_package(str(payload_dir), info_factory(), signing_key, str(tmp_path / 'pkg.zip'))
    assert caught.value.code == 'payload_invalid' and 'symbolic link' in caught.value.msg
    assert not (tmp_path / 'pkg.zip').exists()


@pytest.mark.parametrize('name', ['../evil.sh', '/etc/evil', 'dir\\evil.sh', 'a/../b'])
def test_build_refuses_unsafe_member_names(tmp_path, signing_key, info_factory, name):
    with pytest.raises(PackageError) as caught:
        build_package_from_bytes({name: b'x'}, info_factory(), signing_key, str(tmp_path / 'pkg.zip'))
    assert caught.value.code == 'zip_path_invalid'


def test_safe_extract_of_a_tampered_package_extracts_nothing(build_pkg, keyring, tmp_path):
    path = rewrite(build_pkg(payload=dict(PAYLOAD)), tmp_path / 'bad.zip', replace={'install.sh': b'#!/bin/sh\nrm -rf /\n'})
    with pytest.raises(PackageError) as caught:
        safe_extract(path, keyring, str(tmp_path / 'out'))
    assert caught.value.code == 'digest_mismatch'
    assert not (tmp_path / 'out').exists()


# ----------------------------------------------------------------- tampering and trust
def test_payload_tampered_same_size(build_pkg, keyring, tmp_path):
    original = PAYLOAD['install.sh']
    evil = b'#!/bin/sh\nrm -rf /;  \n'[: len(original)].ljust(len(original), b' ')
    path = rewrite(build_pkg(payload=dict(PAYLOAD)), tmp_path / 'bad.zip', replace={'install.sh': evil})
    error = refused(path, keyring, 'digest_mismatch')
    assert 'install.sh does not match its SHA-256' in error.msg and error.details['file'] == 'install.sh'


def test_payload_tampered_other_size(build_pkg, keyring, tmp_path):
    path = rewrite(build_pkg(payload=dict(PAYLOAD)), tmp_path / 'bad.zip', replace={'image/fw.bin': b'\x00' * 10})
    error = refused(path, keyring, 'digest_mismatch')
    assert 'image/fw.bin has size 10' in error.msg


def test_info_xml_tampered(build_pkg, keyring, tmp_path):
    path = build_pkg(version='1.0')
    info_xml = dict(members_of(path))[INFO_NAME].replace(b'<Version>1.0</Version>', b'<Version>9.0</Version>')
    error = refused(rewrite(path, tmp_path / 'bad.zip', replace={INFO_NAME: info_xml}), keyring, 'digest_mismatch')
    assert error.details['file'] == INFO_NAME


def test_stored_payload_byte_flipped_in_place(build_pkg, keyring, tmp_path):
    """A bit flip in the archive bytes is caught by zip's own CRC before our digest: still refused."""
    path = build_pkg(payload={'fw.bin': b'A' * (2 * 1024 * 1024)})  # stored, so its bytes sit verbatim in the file
    data = bytearray(open(path, 'rb').read())
    data[data.index(b'A' * 64) + 1000] ^= 0xFF
    with open(path, 'wb') as handle:
        handle.write(data)
    error = refused(path, keyring, 'zip_invalid')
    assert 'fw.bin cannot be read from the package' in error.msg and 'CRC' in error.msg


def test_unknown_key(build_pkg, keyring, other_key):
    error = refused(build_pkg(key=other_key), keyring, 'unknown_key')
    assert 'not a trusted key' in error.msg and error.details['key_id'] == other_key.key_id


def test_bad_signature_manifest_altered(build_pkg, keyring, tmp_path):
    """The tamperer updates ExUpHash.xml to match a new payload but cannot re-sign it."""
    path = build_pkg(payload=dict(PAYLOAD))
    evil = b'#!/bin/sh\necho evil\n'
    old = dict(members_of(path))
    hash_xml = old[HASH_NAME].replace(hashlib.sha256(PAYLOAD['install.sh']).hexdigest().encode(), hashlib.sha256(evil).hexdigest().encode())
    hash_xml = hash_xml.replace(b'size="%d"' % len(PAYLOAD['install.sh']), b'size="%d"' % len(evil))
    assert hash_xml != old[HASH_NAME]
    path = rewrite(path, tmp_path / 'bad.zip', replace={'install.sh': evil, HASH_NAME: hash_xml})
    error = refused(path, keyring, 'bad_signature')
    assert 'ExUpHash.xml has a bad signature' in error.msg


def test_bad_signature_byte_flipped(build_pkg, keyring, tmp_path, signing_key):
    path = build_pkg(payload=dict(PAYLOAD))
    hash_xml = dict(members_of(path))[HASH_NAME]
    signature = signing_key.sign(package.hash_manifest(verify_package(path, keyring).files)).encode()
    assert signature in hash_xml
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 0x01
    flipped = hash_xml.replace(signature, base64.b64encode(bytes(raw)))
    error = refused(rewrite(path, tmp_path / 'bad.zip', replace={HASH_NAME: flipped}), keyring, 'bad_signature')
    assert 'altered or not signed by that key' in error.msg


def test_file_missing(craft, keyring, manifest):
    members = [('install.sh', b'echo hi\n')]
    listed = manifest(members)
    listed['image/fw.bin'] = (3, hashlib.sha256(b'abc').hexdigest())
    error = refused(craft(members, listed=listed), keyring, 'file_missing')
    assert error.details['files'] == ['image/fw.bin'] and 'missing image/fw.bin' in error.msg


def test_file_extra(craft, keyring, manifest):
    members = [('install.sh', b'echo hi\n')]
    listed = manifest(members)
    error = refused(craft(members + [('backdoor.sh', b'evil')], listed=listed), keyring, 'file_extra')
    assert error.details['files'] == ['backdoor.sh']


def test_hash_xml_missing(craft, keyring):
    error = refused(craft([('install.sh', b'echo hi\n')], hash_xml=False), keyring, 'hash_missing')
    assert 'ExUpHash.xml' in error.msg


def test_info_xml_missing(craft, keyring):
    refused(craft([('install.sh', b'echo hi\n')], info=False), keyring, 'info_missing')


def test_directory_members_are_allowed(craft, keyring, manifest):
    directory = zipfile.ZipInfo('image/')
    directory.external_attr = (stat.S_IFDIR | 0o755) << 16
    path = craft([(directory, b''), ('image/fw.bin', b'fw')], listed=manifest([('image/fw.bin', b'fw')]))
    assert set(verify_package(path, keyring).files) == {INFO_NAME, 'image/fw.bin'}


# ----------------------------------------------------------------- hostile XML
BILLION_LAUGHS = b'''<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<%(root)s schemaVersion="1"><PackageId>&lol9;</PackageId></%(root)s>
'''
EXTERNAL_ENTITY = b'''<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<%(root)s schemaVersion="1"><PackageId>&xxe;</PackageId></%(root)s>
'''
DOCTYPE_ONLY = b'''<?xml version="1.0"?>
<!DOCTYPE %(root)s SYSTEM "http://127.0.0.1:9/evil.dtd">
<%(root)s schemaVersion="1"/>
'''
HOSTILE = {'billion_laughs': BILLION_LAUGHS, 'external_entity': EXTERNAL_ENTITY, 'doctype': DOCTYPE_ONLY}


def hostile(kind, root, utf16=False):
    text = HOSTILE[kind] % {b'root': root.encode()}
    if utf16:  # the byte-level DOCTYPE check cannot see UTF-16; the parser's DTD check must still refuse
        text = text.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode('utf-16')
    return text


def assert_hostile_refused(error, what, utf16):
    """UTF-8: the DOCTYPE byte check refuses. UTF-16: libxml2 itself refuses (entity amplification
    limit) or the parsed document's DTD check does; either way nothing is expanded or read."""
    if utf16:
        assert error.msg.startswith(what + ' contains a DTD') or (error.msg.startswith(what + ' is not well-formed') and 'amplification' in error.msg)
    else:
        assert error.msg.startswith(what + ' contains a DOCTYPE or ENTITY declaration')
    assert 'root:' not in error.msg  # /etc/passwd was never read


@pytest.mark.parametrize('utf16', [False, True], ids=['utf8', 'utf16'])
@pytest.mark.parametrize('kind', sorted(HOSTILE))
def test_hostile_info_xml(craft, keyring, kind, utf16):
    """Signed, so the hostile ExUpInfo.xml is really parsed (it is checked last)."""
    error = refused(craft([('install.sh', b'x')], info=hostile(kind, 'ExUpInfo', utf16)), keyring, 'xml_invalid')
    assert_hostile_refused(error, 'ExUpInfo.xml', utf16)


@pytest.mark.parametrize('utf16', [False, True], ids=['utf8', 'utf16'])
@pytest.mark.parametrize('kind', sorted(HOSTILE))
def test_hostile_hash_xml(craft, keyring, kind, utf16):
    error = refused(craft([('install.sh', b'x')], hash_xml=hostile(kind, 'ExUpHash', utf16)), keyring, 'xml_invalid')
    assert_hostile_refused(error, 'ExUpHash.xml', utf16)


@pytest.mark.parametrize(
    'old, new',
    [
        ('<Kind>linux</Kind>', '<Kind>firmware</Kind>'),  # not in the enumeration
        ('<Version>1.0</Version>', ''),  # required element missing
        ('<ReleaseDate>2024-05-01</ReleaseDate>', '<ReleaseDate>May 1</ReleaseDate>'),
        ('<AutoUpdate>true</AutoUpdate>', '<AutoUpdate>yes</AutoUpdate>'),
        ('<Severity>recommended</Severity>', '<Severity>recommended</Severity><Extra/>'),  # unknown element in schema 1
        ('schemaVersion="1"', 'schemaVersion="0"'),
    ],
    ids=['kind', 'missing-version', 'date', 'boolean', 'extra-element', 'schema-0'],
)
def test_info_xml_schema_violations(craft, keyring, info_xml_text, old, new):
    text = info_xml_text
    assert old in text
    error = refused(craft([('install.sh', b'x')], info=text.replace(old, new).encode()), keyring, 'xml_invalid')
    assert 'ExUpInfo.xml' in error.msg


@pytest.mark.parametrize('change', ['sha-uppercase', 'no-signature', 'bad-algorithm', 'no-keyid'])
def test_hash_xml_schema_violations(craft, keyring, manifest, signing_key, change):
    files = manifest([('install.sh', b'x')])
    text = render_hash_xml(files, signing_key).decode()
    digest = files['install.sh'][1]
    text = {
        'sha-uppercase': lambda t: t.replace(digest, digest.upper()),
        'no-signature': lambda t: t[: t.index('<Signature')] + '</ExUpHash>\n',
        'bad-algorithm': lambda t: t.replace('algorithm="Ed25519"', 'algorithm="RSA"'),
        'no-keyid': lambda t: t.replace('keyId="%s"' % signing_key.key_id, ''),
    }[change](text)
    error = refused(craft([('install.sh', b'x')], hash_xml=text.encode()), keyring, 'xml_invalid')
    assert 'ExUpHash.xml does not match its schema' in error.msg


def test_hash_xml_schema_version_unknown(craft, keyring, manifest, signing_key):
    text = render_hash_xml(manifest([('install.sh', b'x')]), signing_key).replace(b'schemaVersion="1"', b'schemaVersion="2"')
    error = refused(craft([('install.sh', b'x')], hash_xml=text), keyring, 'hash_schema_unknown')
    assert 'schema version 2' in error.msg


def test_newer_info_schema_is_accepted_and_flagged_incompatible(craft, keyring, info_xml_text):
    text = info_xml_text.replace('schemaVersion="1"', 'schemaVersion="2"')
    text = text.replace('<Severity>recommended</Severity>', '<Severity>recommended</Severity><Rollout stage="canary"><Wave>1</Wave></Rollout>')
    verified = verify_package(craft([('install.sh', b'x')], info=text.encode()), keyring)
    assert verified.info.schema_version == 2
    assert verified.info.compatible is False and verified.info.as_dict()['compatible'] is False
    assert verified.info.version == '1.0' and verified.info.models == ['R120h-1M']


@pytest.mark.parametrize('attribute', ['', 'schemaVersion="one"'], ids=['missing', 'not-a-number'])
def test_info_schema_version_missing_is_refused(craft, keyring, info_xml_text, attribute):
    text = info_xml_text.replace('schemaVersion="1"', attribute)
    error = refused(craft([('install.sh', b'x')], info=text.encode()), keyring, 'xml_invalid')
    assert 'no valid schemaVersion' in error.msg


# ----------------------------------------------------------------- hostile zips
@pytest.mark.parametrize(
    'name', ['../evil.sh', 'image/../../evil.sh', '/etc/cron.d/evil', 'C:/evil.sh', 'image\\..\\evil.sh', 'image/./fw.bin', 'image//fw.bin']
)
def test_unsafe_member_paths(craft, keyring, name):
    members = [('install.sh', b'x'), (name, b'evil')]
    error = refused(craft(members), keyring, 'zip_path_invalid')
    assert repr(name) in error.msg


def test_symlink_member(craft, keyring):
    link = zipfile.ZipInfo('install.sh')
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    error = refused(craft([(link, b'/etc/passwd')]), keyring, 'zip_link')
    assert 'symbolic link' in error.msg


def test_device_member(craft, keyring):
    fifo = zipfile.ZipInfo('install.sh')
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    error = refused(craft([(fifo, b'')]), keyring, 'zip_link')
    assert 'not a regular file' in error.msg


def test_duplicate_member_names(craft, keyring, manifest):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # zipfile warns "Duplicate name": that is the attack
        path = craft([('install.sh', b'good'), ('install.sh', b'evil')], listed=manifest([('install.sh', b'good')]))
    error = refused(path, keyring, 'zip_path_invalid')
    assert 'appears twice' in error.msg


def test_encrypted_member(craft, keyring):
    path = craft([('install.sh', b'x')])
    # zipfile cannot write encrypted members: set the "encrypted" flag in the central directory entry by hand.
    data = bytearray(open(path, 'rb').read())
    central = data.index(b'PK\x01\x02')
    while data[central + 46 : central + 56] != b'install.sh':
        central = data.index(b'PK\x01\x02', central + 4)
    data[central + 8] |= 0x1
    with open(path, 'wb') as handle:
        handle.write(data)
    error = refused(path, keyring, 'zip_path_invalid')
    assert "'install.sh' is encrypted" in error.msg


def test_zip_bomb_ratio(craft, keyring):
    bomb = zipfile.ZipInfo('fw.bin')
    bomb.compress_type = zipfile.ZIP_DEFLATED
    error = refused(craft([(bomb, b'\x00' * (4 * 1024 * 1024))]), keyring, 'zip_bomb')  # ~4 KiB deflated: ratio ~1000
    assert "'fw.bin' expands" in error.msg


def test_zip_bomb_total_size(craft, keyring, monkeypatch):
    monkeypatch.setattr(package, 'MAX_TOTAL_UNCOMPRESSED', 3000)
    error = refused(craft([('a.bin', os.urandom(2000)), ('b.bin', os.urandom(2000))]), keyring, 'zip_bomb')
    assert 'expands to more than 3000 bytes' in error.msg


def test_too_many_members(craft, keyring, monkeypatch):
    monkeypatch.setattr(package, 'MAX_MEMBERS', 3)
    error = refused(craft([('a', b'1'), ('b', b'2'), ('c', b'3')]), keyring, 'zip_bomb')
    assert 'more than the limit of 3' in error.msg


@pytest.mark.parametrize('content', [b'', b'PK\x03\x04 not really', b'<html>404</html>'], ids=['empty', 'truncated', 'html'])
def test_not_a_zip(tmp_path, keyring, content):
    path = tmp_path / 'pkg.zip'
    path.write_bytes(content)
    error = refused(path, keyring, 'zip_invalid')
    assert 'pkg.zip is not a readable zip archive' in error.msg


def test_missing_file_is_not_a_zip(tmp_path, keyring):
    refused(tmp_path / 'nothing.zip', keyring, 'zip_invalid')


# ----------------------------------------------------------------- constant memory
LARGE_SIZE = 300 * 1024 * 1024


def write_large_package(path, signing_key, info_xml):
    """A package with a 300 MB stored member, streamed in 1 MiB chunks of zeros (zipfile's own
    write() copies in 8 KiB steps and takes seconds), hashed as it is written."""
    files = {INFO_NAME: (len(info_xml), hashlib.sha256(info_xml).hexdigest())}
    chunk, digest = bytes(1024 * 1024), hashlib.sha256()
    with zipfile.ZipFile(path, 'w', allowZip64=True) as archive:
        archive.writestr(INFO_NAME, info_xml)
        with archive.open(zipfile.ZipInfo('fw.bin'), 'w', force_zip64=True) as member:  # ZipInfo default: stored
            for _index in range(LARGE_SIZE // len(chunk)):
                member.write(chunk)
                digest.update(chunk)
        files['fw.bin'] = (LARGE_SIZE, digest.hexdigest())
        archive.writestr(HASH_NAME, render_hash_xml(files, signing_key))
    return str(path)


def test_large_payload_verifies_in_constant_memory(tmp_path, keyring, signing_key, info_xml_text):
    path = write_large_package(tmp_path / 'large.zip', signing_key, info_xml_text.encode())
    assert os.path.getsize(path) > LARGE_SIZE  # stored, not compressed: the verifier really reads 300 MB

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        verified = verify_package(path, keyring)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        os.unlink(path)  # pytest keeps the last runs' tmp dirs: do not leave 300 MB behind
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert verified.files['fw.bin'][0] == LARGE_SIZE
    assert peak < 16 * 1024 * 1024, 'verify_package allocated %d bytes at peak' % peak
    assert rss_growth < 64 * 1024, 'peak RSS grew by %d KiB' % rss_growth


# ----------------------------------------------------------------- ids, whatever the schema version (issue 8 items 6 and 9)

BAD_FIELDS = [
    ('PackageId', {'package_id': '../../../../tmp/x'}),
    ('PackageId', {'package_id': 'system-bios-1.02\n'}),
    ('Module id', {'module_id': '../bios', 'package_id': 'BIOS-1.0'}),
    ('Version', {'version': '1.\u0660\u0662'}),
    ('Version', {'version': '1.02\n'}),
    ('OS', {'os': ['linux/../../x']}),
    ('Model', {'models': ['R120h\n1M']}),
    ('Module name', {'module_name': 'System\tBIOS'}),
    ('ReleaseDate', {'release_date': '\u0662\u0660\u0662\u0666-01-15'}),
    ('ReleaseDate', {'release_date': '2026-02-30'}),
    ('InstallCommand', {'install_command': 'sh install.sh\nrm -rf /'}),
]


def info_xml_of(info_factory, schema_version, **fields):
    return render_info_xml(info_factory(**fields)).replace(b'schemaVersion="1"', b'schemaVersion="%s"' % schema_version.encode())


@pytest.mark.parametrize('schema_version', ['1', '99'])
@pytest.mark.parametrize('field, fields', BAD_FIELDS, ids=lambda value: ascii(value)[:30])
def test_core_fields_follow_the_catalog_rules_whatever_the_schema_version(craft, keyring, info_factory, schema_version, field, fields):
    """A newer schemaVersion skips the XSD; the same rules as the catalog's still apply (ASCII, no newline, never a path)."""
    error = refused(craft([('install.sh', b'x')], info=info_xml_of(info_factory, schema_version, **fields)), keyring, 'xml_invalid')
    assert 'ExUpInfo.xml' in error.msg
    if schema_version == '99' or field == 'Module name':  # the XSD's text type allows a tab: only the shared rule refuses it
        assert error.msg.startswith('ExUpInfo.xml has %s ' % field), error.msg
        assert ', which is not ' in error.msg and error.details['field'] == field


def test_a_path_as_package_id_of_a_newer_schema_is_refused_with_its_rule(craft, keyring, info_factory):
    error = refused(craft([('install.sh', b'x')], info=info_xml_of(info_factory, '99', package_id='../../../../tmp/x')), keyring, 'xml_invalid')
    assert error.msg == ("ExUpInfo.xml has PackageId '../../../../tmp/x', which is not 1-64 ASCII letters, digits and ._+- starting with a letter or digit")


@pytest.mark.parametrize('value', ['\u0669\u0669', ' 99', '9_9', '+99', '99 '], ids=ascii)
def test_schema_version_is_ascii_digits(craft, keyring, info_xml_text, value):
    # int() took all of these, and a number over 1 skips the XSD.
    text = info_xml_text.replace('schemaVersion="1"', 'schemaVersion="%s"' % value)
    error = refused(craft([('install.sh', b'x')], info=text.encode()), keyring, 'xml_invalid')
    assert 'no valid schemaVersion' in error.msg


def test_a_valid_newer_package_keeps_its_fields_as_written(craft, keyring, info_factory):
    verified = verify_package(craft([('install.sh', b'x')], info=info_xml_of(info_factory, '99', package_id='BIOS-1.0')), keyring)
    assert (verified.info.package_id, verified.info.schema_version, verified.info.compatible) == ('BIOS-1.0', 99, False)


def test_add_refuses_a_newer_package_whose_id_is_a_path(repo, keyring, craft, info_factory, register, snapshot):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    before = snapshot(repo)
    path = craft([('install.sh', b'x')], info=info_xml_of(info_factory, '99', package_id='../../../../tmp/x'))
    [result] = repo.add_files([path], keyring)
    assert (result['result'], result['error']) == ('error_invalid_package', 'xml_invalid')
    assert "ExUpInfo.xml has PackageId '../../../../tmp/x'" in result['msg']
    assert snapshot(repo) == before
    event = repo.listing('mgr-a', event_limit=1)['events'][0]
    assert (event['code'], event['detail']['error']) == ('package_add_failed', 'xml_invalid')


def test_export_never_writes_a_member_outside_its_root(repo, keyring, build_pkg, register, snapshot, tmp_path):
    """An index written before ids were checked for every schema version may hold a path as an id: export refuses it."""
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    assert repo.add_files([build_pkg(package_id='BIOS-1.0')], keyring)[0]['result'] == 'added'
    conn = sqlite3.connect(repo.store.db_path)
    with conn:
        conn.execute("UPDATE packages SET package_id = '../../../../tmp/x', info = json_set(info, '$.package_id', '../../../../tmp/x')")
    conn.close()
    before = snapshot(repo)
    dest = str(tmp_path / 'saved.zip')
    for selection in ({'package_ids': ['../../../../tmp/x']}, {'module_ids': ['system-bios']}):
        with pytest.raises(RepositoryError) as caught:
            repo.export(dest, **selection)
        assert caught.value.code == 'package_id_invalid', caught.value.msg
        assert "package '../../../../tmp/x' in the index has an id that is not 1-64 ASCII letters" in caught.value.msg
        assert not os.path.exists(dest) and not os.path.exists(dest + '.tmp')
    assert snapshot(repo) == before
