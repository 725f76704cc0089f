# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository's secrets (003 §3.3 4-(ア)-②③): the service passwords and the proxy password, in 0600 files.

The other settings live in repo.db with their history, and every change leaves an event with the values before
and after; a secret there would be copied into both (and into every copy of the index). So the secrets are two
small JSON files in the store, readable by their owner only, rewritten whole (temp file, fsync, rename):

- ``service-credentials.json`` {"admin_hash", "read_hash"}: Argon2id PHC strings (service/auth.py), what the
  service checks HTTP Basic logins against. The service reads it again when its mtime changes, so a new
  password takes effect at the next request, without a restart.
- ``service-secrets.json`` {"proxy_password", "webhook_secret"}: kept as they are, since the repository has to
  send them (to the proxy; as the HMAC key of the webhook signature).

A secret is never returned: callers see its state, ``not set``, ``set`` or ``changed``. A password given again
that verifies against its stored hash is not changed (no new salt, no rewrite): the settings module stays idempotent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import os
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth

CREDENTIALS_FILE = 'service-credentials.json'  # config.CREDENTIALS_FILE: the file the service reads
SECRETS_FILE = 'service-secrets.json'
FILE_LIMIT = 64 * 1024  # bytes read of either file at most: a planted huge file is refused, not parsed

#: the passwords of the service's users (003 §3.3 4-(ア)-③ "repository password"): option name -> key of the hash
PASSWORDS = {'admin_password': 'admin_hash', 'read_password': 'read_hash'}
#: secrets kept as they are (the repository sends them): option name -> key in service-secrets.json
KEPT = {'proxy_password': 'proxy_password', 'webhook_secret': 'webhook_secret'}
SECRETS = tuple(PASSWORDS) + tuple(KEPT)
#: what may be removed by giving '' (the admin password may not: the service would refuse to start)
REMOVABLE = ('read_password', 'proxy_password', 'webhook_secret')

NOT_SET = 'not set'
SET = 'set'
CHANGED = 'changed'

MAX_SECRET_BYTES = auth.MAX_PASSWORD_BYTES


def _file_problem(path: str, what: str) -> ExupError:
    return ExupError(
        'the %s file %s is not a JSON object of at most %d bytes: write it again with exup_repo_settings' % (what, path, FILE_LIMIT), code='credentials_invalid'
    )


def read_private_json(path: str, what: str) -> dict[str, typing.Any]:
    """The JSON object of ``path``; {} when it does not exist. Anything else than a bounded object is credentials_invalid."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read(FILE_LIMIT + 1)
    except FileNotFoundError:
        return {}
    if len(data) > FILE_LIMIT:
        raise _file_problem(path, what)
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise _file_problem(path, what) from None
    if not isinstance(value, dict):
        raise _file_problem(path, what)
    return value


def write_private_json(path: str, value: dict[str, typing.Any]) -> None:
    """Replace ``path`` by ``value`` as JSON, readable by its owner only from the first byte (never a 0644 moment).

    Temp file in the same directory, fsync, rename, fsync of the directory: a reader (the service) sees the old file
    or the new one. The owner of a file being replaced is kept when root writes it (a module run as root must not
    take the file from the service's user).
    """
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    try:
        previous = os.stat(path)
    except FileNotFoundError:
        previous = None
    tmp = '%s.%d.tmp' % (path, os.getpid())
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a killed writer of this pid: the writer lock is ours now
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask cannot widen it, but a narrower umask must not make it unreadable to its owner
        if previous is not None and os.geteuid() == 0 and (previous.st_uid, previous.st_gid) != (0, 0):
            os.fchown(fd, previous.st_uid, previous.st_gid)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            fd = -1
            json.dump(value, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def credentials_path(store: str) -> str:
    return os.path.join(store, CREDENTIALS_FILE)


def secrets_path(store: str) -> str:
    return os.path.join(store, SECRETS_FILE)


def read_credentials(store: str) -> dict[str, typing.Any]:
    """The stored hashes as they are ({} when none): the settings module reads them to compare, not to log in."""
    return read_private_json(credentials_path(store), 'service credentials')


def read_kept_secrets(store: str) -> dict[str, typing.Any]:
    """The kept secrets ({} when none)."""
    return read_private_json(secrets_path(store), 'repository secrets')


def states(store: str) -> dict[str, str]:
    """Each secret's state, ``set`` or ``not set``: what a reader of the settings may know."""
    return _states(read_credentials(store), read_kept_secrets(store))


def _states(hashes: dict[str, typing.Any], kept: dict[str, typing.Any]) -> dict[str, str]:
    found = {name: SET if hashes.get(key) else NOT_SET for name, key in PASSWORDS.items()}
    found.update({name: SET if kept.get(key) else NOT_SET for name, key in KEPT.items()})
    return found


def kept_secret(store: str, name: str) -> str | None:
    """A kept secret's value (proxy_password, webhook_secret), None when not set."""
    value = read_kept_secrets(store).get(KEPT[name])
    return value if isinstance(value, str) and value else None


def check_secret(name: str, value: object) -> str:
    """``value`` checked for the secret ``name``; a refusal never repeats the value.

    The service passwords follow auth.py's rules (password_weak: fewer than 12 characters; password_invalid: no text,
    or over 1024 bytes of UTF-8); '' removes a removable secret. The proxy password and the webhook secret are someone
    else's rules: any text up to 1024 bytes without control characters (setting_invalid).
    """
    if name not in SECRETS:
        raise ExupError('unknown secret %s' % str(name)[:64], code='setting_invalid')
    if value == '' and name in REMOVABLE:
        return ''
    if name in PASSWORDS:
        auth._password_bytes(typing.cast(str, value))  # pylint: disable=protected-access  # auth's one rule of a password, with its codes
        return typing.cast(str, value)
    rule = '%s must be text of 1 to %d bytes in UTF-8 without control characters (or empty to remove it)' % (name, MAX_SECRET_BYTES)
    if not isinstance(value, str):
        raise ExupError(rule, code='setting_invalid', setting=name)
    try:
        encoded = value.encode('utf-8')
    except UnicodeEncodeError:
        raise ExupError(rule, code='setting_invalid', setting=name) from None
    if len(encoded) > MAX_SECRET_BYTES or any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ExupError(rule, code='setting_invalid', setting=name)
    return value


@dataclasses.dataclass
class SecretChanges:
    """What a settings change does to the secrets: their states before and after, and the files to write (None: as they are)."""

    before: dict[str, str]
    after: dict[str, str]
    credentials: dict[str, typing.Any] | None = None
    kept: dict[str, typing.Any] | None = None

    @property
    def changed(self) -> list[str]:
        return sorted(name for name in self.after if self.after[name] != self.before[name])


def plan_changes(store: str, wanted: dict[str, str], hash_new: bool = True) -> SecretChanges:
    """The changes of the checked secrets ``wanted`` (check_secret) against the stored ones.

    A password that verifies against its stored hash, a kept secret equal to the stored one and a removal of what
    is not set change nothing. ``hash_new`` False (check mode): the changes are decided, no new hash is made.
    A read password without an admin password is credentials_missing: the service could not start with it.
    """
    try:
        hashes = read_credentials(store)
    except ExupError:
        if not wanted.get('admin_password'):
            raise
        hashes = {}  # a damaged file is replaced by one with the new admin password (and the read password given, if any)
    hashes = {key: value for key, value in hashes.items() if value}  # a null entry is none
    kept = read_kept_secrets(store)
    before = _states(hashes, kept)
    after = dict(before)
    new_hashes, new_kept = dict(hashes), dict(kept)
    for name, value in wanted.items():
        if name in PASSWORDS:
            key = PASSWORDS[name]
            current = hashes.get(key)
            if value == '':
                if current:
                    new_hashes.pop(key, None)
                    after[name] = CHANGED
                continue
            if isinstance(current, str) and auth.verify_password(current, value):
                continue
            new_hashes[key] = auth.hash_password(value) if hash_new else None
            after[name] = CHANGED
        else:
            key = KEPT[name]
            current = kept.get(key)
            if value == '':
                if current:
                    new_kept.pop(key, None)
                    after[name] = CHANGED
                continue
            if isinstance(current, str) and hmac.compare_digest(current.encode('utf-8'), value.encode('utf-8')):
                continue
            new_kept[key] = value
            after[name] = CHANGED
    if 'read_hash' in new_hashes and 'admin_hash' not in new_hashes:  # (in check mode a new admin hash is None: still set)
        raise ExupError(
            'set admin_password too: the repository service needs an admin password (there is no default) before a read password is of use',
            code='credentials_missing',
        )
    changes = SecretChanges(before=before, after=after)
    if any(after[name] == CHANGED for name in PASSWORDS):
        changes.credentials = new_hashes  # in check mode a new password's hash is None: decided, not made
    if any(after[name] == CHANGED for name in KEPT):
        changes.kept = new_kept
    return changes


def write_changes(store: str, changes: SecretChanges) -> None:
    """Write what ``plan_changes`` decided (with hash_new). The caller holds the store's writer lock."""
    if changes.credentials is not None:
        write_private_json(credentials_path(store), {key: value for key, value in changes.credentials.items() if value})
    if changes.kept is not None:
        write_private_json(secrets_path(store), {key: value for key, value in changes.kept.items() if value})
