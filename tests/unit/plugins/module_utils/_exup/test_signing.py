# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys: where trusted keys are read (controller) and what a host accepts (PEM only); key files' modes."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import MAX_KEY_FILE_BYTES, KeyRing, SigningKey, key_texts, read_key_file
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor import cli


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def listing(folder):
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------- keygen (issue 8 item 9)


def test_keygen_force_over_a_0644_key_leaves_0600(tmp_path, capsys):
    private = tmp_path / 'vendor.key'
    private.write_text('old key, readable by everyone\n')
    os.chmod(private, 0o644)
    assert cli.main(['keygen', '--out', str(tmp_path), '--force']) == 0
    assert mode(private) == 0o600
    assert mode(tmp_path / 'vendor.pub') == 0o644
    assert SigningKey.load(str(private)).public_pem() == (tmp_path / 'vendor.pub').read_bytes()
    assert listing(tmp_path) == ['vendor.key', 'vendor.pub']  # no temporary file left
    assert '"key_id"' in capsys.readouterr().out


def test_keygen_without_force_keeps_the_existing_key(tmp_path, capsys):
    private = tmp_path / 'vendor.key'
    private.write_text('old key\n')
    os.chmod(private, 0o644)
    assert cli.main(['keygen', '--out', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert '[exists]' in err and 'pass --force' in err
    assert private.read_text() == 'old key\n' and mode(private) == 0o644 and listing(tmp_path) == ['vendor.key']


def test_save_replaces_a_file_others_could_read_atomically(tmp_path):
    key = SigningKey.generate()
    private, public = tmp_path / 'k.key', tmp_path / 'k.pub'
    for path in (private, public):
        path.write_text('x')
        os.chmod(path, 0o666)
    key.save(str(private), str(public))
    assert (mode(private), mode(public)) == (0o600, 0o644)
    assert SigningKey.load(str(private)).key_id == key.key_id


# --------------------------------------------------------------------------- key_texts (controller side)


def test_key_texts_passes_inline_pem_and_reads_paths(tmp_path, signing_key, other_key):
    path = tmp_path / 'vendor.pub'
    path.write_bytes(other_key.public_pem())
    inline = signing_key.public_pem().decode('ascii')
    texts = key_texts([inline, str(path)])
    assert texts == [inline, other_key.public_pem().decode('ascii')]
    assert KeyRing.from_pem_texts(texts).key_ids == sorted([signing_key.key_id, other_key.key_id])


def test_key_texts_uses_the_reader_it_is_given(signing_key):
    asked = []

    def controller(path):
        asked.append(path)
        return signing_key.public_pem()

    assert key_texts(['keys/vendor.pub'], controller) == [signing_key.public_pem().decode('ascii')]
    assert asked == ['keys/vendor.pub']


def test_key_texts_missing_file_is_key_unreadable(tmp_path):
    missing = tmp_path / 'no-such.pub'
    with pytest.raises(ExupError) as caught:
        key_texts([str(missing)])
    assert caught.value.code == 'key_unreadable'
    assert 'cannot read trusted key file %s' % missing in caught.value.msg and 'No such file' in caught.value.msg
    assert caught.value.details['path'] == str(missing)
    assert not missing.exists()


def test_key_texts_refuses_a_fifo_without_waiting(tmp_path):
    fifo = tmp_path / 'key.fifo'
    os.mkfifo(fifo)
    outcome = {}

    def resolve():
        try:
            key_texts([str(fifo)])
        except ExupError as exc:
            outcome['error'] = exc

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), 'reading a FIFO as a key file hung'
    assert outcome['error'].code == 'key_unreadable' and 'not a regular file' in outcome['error'].msg
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_key_texts_refuses_a_huge_file(tmp_path):
    big = tmp_path / 'big.pub'
    big.write_bytes(b'A' * (MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(ExupError) as caught:
        key_texts([str(big)])
    assert caught.value.code == 'key_unreadable' and 'larger than' in caught.value.msg
    assert big.stat().st_size == MAX_KEY_FILE_BYTES + 1


def test_read_key_file_refuses_a_directory(tmp_path):
    with pytest.raises(OSError):
        read_key_file(str(tmp_path))


@pytest.mark.parametrize(
    'text, words',
    [
        ('-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n', 'not a PEM public key'),
        ('-----BEGIN PUBLIC KEY-----\n\udcff\n-----END PUBLIC KEY-----\n', 'not a PEM public key'),
    ],
)
def test_key_texts_refuses_text_that_is_no_key(text, words):
    with pytest.raises(ExupError) as caught:
        key_texts([text])
    assert caught.value.code == 'key_invalid' and words in caught.value.msg


def test_key_texts_refuses_a_file_that_is_no_key(tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_text('hello\n')
    with pytest.raises(ExupError) as caught:
        key_texts([str(path)])
    assert caught.value.code == 'key_invalid' and 'not a PEM public key' in caught.value.msg
    assert path.read_text() == 'hello\n'


# --------------------------------------------------------------------------- from_pem_texts (host side)


def test_host_ring_refuses_a_path_and_never_opens_it(tmp_path, signing_key):
    """exup_host gets key material only: a path (even of a good key on this machine) is refused, not read."""
    path = tmp_path / 'vendor.pub'
    path.write_bytes(signing_key.public_pem())
    os.chmod(path, 0)  # a read would fail differently; the refusal must come first
    with pytest.raises(ExupError) as caught:
        KeyRing.from_pem_texts([str(path)])
    assert caught.value.code == 'key_invalid'
    assert 'must be PEM text' in caught.value.msg and 'read on the controller' in caught.value.msg
    assert mode(path) == 0


def test_host_ring_needs_a_key():
    with pytest.raises(ExupError) as caught:
        KeyRing.from_pem_texts([])
    assert caught.value.code == 'key_invalid' and 'no trusted keys given' in caught.value.msg


def test_from_pem_list_reads_local_files_with_the_same_rules(tmp_path, signing_key):
    path = tmp_path / 'vendor.pub'
    path.write_bytes(signing_key.public_pem())
    assert KeyRing.from_pem_list([str(path)]).key_ids == [signing_key.key_id]
    with pytest.raises(ExupError) as caught:
        KeyRing.from_pem_list([str(tmp_path / 'missing.pub')])
    assert caught.value.code == 'key_unreadable'
