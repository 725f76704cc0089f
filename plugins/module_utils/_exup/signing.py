# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ed25519 signing keys, key ids and the ring of trusted public keys."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Union

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module wrapper
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

if TYPE_CHECKING:
    StrPath = Union[str, os.PathLike[str]]  # Union: pylint reads module_utils as Python 3.9

KeyReader = Callable[[str], bytes]  # path -> bytes, or OSError

KEYID_HEX_LENGTH = 16
#: a PEM Ed25519 public key is about 113 bytes; anything far larger is not one (and is not read whole)
MAX_KEY_FILE_BYTES = 64 * 1024
PEM_MARKER = '-----BEGIN'


def _raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Key id: the first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    return hashlib.sha256(_raw_public_bytes(public_key)).hexdigest()[:KEYID_HEX_LENGTH]


class SigningKey:
    """A private Ed25519 key used by the vendor side (CLI) to sign packages and catalogs."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: StrPath, passphrase: bytes | None = None) -> SigningKey:
        """The private key in the PEM file at ``path``; ``passphrase`` decrypts an encrypted one.

        Codes: ``key_invalid`` (not an Ed25519 PEM private key), ``key_passphrase_required`` (encrypted,
        no passphrase given), ``key_passphrase_wrong`` (the passphrase does not decrypt it).
        """
        with open(path, 'rb') as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ExupError('%s is larger than %d bytes, not a private key' % (path, MAX_KEY_FILE_BYTES), code='key_invalid')
        encrypted = b'-----BEGIN ENCRYPTED' in data or b'Proc-Type: 4,ENCRYPTED' in data
        if encrypted and not passphrase:
            raise ExupError('%s is encrypted: give its passphrase (EXUP_KEY_PASSPHRASE or --passphrase-file)' % path, code='key_passphrase_required')
        try:
            private_key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
        except (ValueError, TypeError) as exc:
            if encrypted:
                raise ExupError('%s: the passphrase does not decrypt this key' % path, code='key_passphrase_wrong') from None
            raise ExupError('%s is not a PEM private key: %s' % (path, exc), code='key_invalid') from None
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ExupError('%s is not an Ed25519 private key' % path, code='key_invalid')
        return cls(private_key)

    def save(self, private_path: StrPath, public_path: StrPath, passphrase: bytes | None = None) -> None:
        """Write the private key (mode 0600, also over an existing file of any mode) and its public key (PEM).

        With ``passphrase`` the private key is encrypted (PKCS#8, the best encryption cryptography offers).
        """
        encryption: serialization.KeySerializationEncryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        private_pem = self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        _replace_file(private_path, private_pem, 0o600)
        _replace_file(public_path, self.public_pem(), 0o644)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, message: bytes) -> str:
        """Return the base64 signature of ``message`` (bytes)."""
        return base64.b64encode(self.private_key.sign(message)).decode('ascii')


def _replace_file(path: StrPath, data: bytes, mode: int) -> None:
    """Atomically put data at path with exactly mode: a new file (mkstemp makes it 0600), chmod, fsync, rename.

    Writing into an existing file would keep its old mode (keygen --force over a 0644 key kept 0644).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_key_file(path: StrPath) -> bytes:
    """The bytes of a key file on this machine, bounded: a FIFO, a device or a huge file is refused, never waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: opening a FIFO does not wait for a writer
    with os.fdopen(fd, 'rb') as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, 'not a regular file', path)
        data = handle.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise OSError(0, 'larger than %d bytes, not a public key' % MAX_KEY_FILE_BYTES, path)
    return data


def key_texts(items: Iterable[str] | None, read: KeyReader = read_key_file) -> list[str]:
    """trusted_keys entries as PEM texts: inline PEM passes, anything else is a path read with ``read``.

    ``read(path)`` returns bytes or raises OSError. Action plugins pass a reader of controller files,
    so that a managed host only ever gets key material (``exup_host`` takes no paths).
    Raises ``key_unreadable`` for a path that cannot be read and ``key_invalid`` for a text that is
    not one Ed25519 public key.
    """
    texts = []
    for item in items or ():
        text = item
        if PEM_MARKER not in item:
            try:
                text = read(item).decode('ascii', 'replace')
            except OSError as exc:
                raise ExupError('cannot read trusted key file %s: %s' % (item, exc.strerror or exc), code='key_unreadable', path=item) from exc
        load_public_pem(text)
        texts.append(text)
    return texts


def load_public_pem(text: str) -> Ed25519PublicKey:
    """One Ed25519 public key from PEM text (``key_invalid`` otherwise)."""
    try:
        public_key = serialization.load_pem_public_key(text.encode('ascii', 'replace'))
    except (ValueError, TypeError) as exc:
        raise ExupError('trusted key is not a PEM public key: %s' % exc, code='key_invalid') from exc
    if not isinstance(public_key, Ed25519PublicKey):
        raise ExupError('trusted key is not an Ed25519 public key', code='key_invalid')
    return public_key


class KeyRing:
    """Trusted public keys by key id. Keys rotate by adding the new key before signing with it."""

    def __init__(self, public_keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for public_key in public_keys:
            self._keys[key_id(public_key)] = public_key

    @classmethod
    def from_pem_list(cls, items: Iterable[str] | None) -> KeyRing:
        """Build a ring from PEM texts or paths of PEM files on this machine (module option ``trusted_keys``)."""
        return cls.from_pem_texts(key_texts(items))

    @classmethod
    def from_pem_texts(cls, texts: Iterable[str] | None) -> KeyRing:
        """Build a ring from PEM texts only: what a managed host is sent (a path is refused, never opened)."""
        keys = []
        for text in texts or ():
            if PEM_MARKER not in text:
                raise ExupError('trusted key material must be PEM text; key files are read on the controller, not on the host', code='key_invalid')
            keys.append(load_public_pem(text))
        if not keys:
            raise ExupError('no trusted keys given: packages and catalogs cannot be verified', code='key_invalid')
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def pem_texts(self) -> list[str]:
        """The trusted keys as PEM texts, by key id: what a remote repository is sent to verify with."""
        pem, spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        return [self._keys[keyid].public_bytes(pem, spki).decode('ascii') for keyid in self.key_ids]

    def verify(self, keyid: str, signature_b64: str, message: bytes, error_class: type[ExupError], what: str) -> None:
        """Verify ``signature_b64`` over ``message`` with the trusted key ``keyid``.

        Raises ``error_class`` with code ``unknown_key`` or ``bad_signature``.
        """
        public_key = self._keys.get(keyid)
        if public_key is None:
            raise error_class('%s is signed with key %s, which is not a trusted key' % (what, keyid), code='unknown_key', key_id=keyid)
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            raise error_class('%s has a signature that is not valid base64' % what, code='bad_signature', key_id=keyid) from None
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            raise error_class(
                '%s has a bad signature (key %s): it was altered or not signed by that key' % (what, keyid), code='bad_signature', key_id=keyid
            ) from None
