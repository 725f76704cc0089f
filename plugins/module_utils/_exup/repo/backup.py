# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent copy of a repository while its service runs, and its restore on another machine (003 §4.3).

The guide moves a repository by stopping its services and copying the package folder and the ``db`` folder. Here the
copy is taken while the service answers: the writer lock is held (a sync, an add or a delete waits; every reader goes
on), repo.db is copied with SQLite's online backup API (a snapshot of one transaction, the WAL included), and the pool
files the snapshot's rows name are copied with their SHA-256 checked against their names. Everything lands in one
uncompressed tar file (the packages are zips already), written beside its destination, 0600, fsynced and renamed into
place, so a stop midway leaves no partial backup. Its first member ``backup.json`` lists every other member with its
size and SHA-256.

The tar holds: ``backup.json``, ``repo.db``, the store's small files (``recovery.json``, the service credentials (Argon2id
hashes), the kept secrets (the proxy password as it is: keep the backup as private as the store), the pool ticket key),
the feed view's kept catalog (``feed/``) and ``pool/sha256/<ab>/<digest>.zip``. Not in it: tmp/, quarantine/, the
service's download states and schedule (a new machine starts them again).

Restore is hostile-input safe: the members must be exactly those the manifest names (regular files, known names, the
stated sizes and digests), a pool file's content must match its name, repo.db must pass SQLite's integrity check and be
of a store format this code knows (a repository moves to the same or a newer version only, §4.3: store_too_new). It
restores into an empty store only (``store_not_empty``); repo.db is put in place last, so a restore cut short leaves a
pool without an index, which ``exup_package state=rebuilt`` recovers. ``pool_only`` restores the pool files and the
recovery record without repo.db: the fallback when the index copy is refused, followed by the rebuild from the pool (§4.4).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index, connect
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.rebuild import index_state
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import STORE_VERSION, check_store_version

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store

FORMAT = 'exup-repository-backup'
FORMAT_VERSION = 1
MANIFEST = 'backup.json'
DB_MEMBER = 'repo.db'
RESTORED_FILE = 'restored-from.json'  # in the store after a restore: which backup it came from (a second run changes nothing)
#: the store's small files copied as they are (those that exist); the secret ones are written 0600 again
ROOT_FILES = ('recovery.json', 'service-credentials.json', 'service-secrets.json', 'service-ticket-key')
SECRET_FILES = ('service-credentials.json', 'service-secrets.json', 'service-ticket-key')
SMALL_FILE_LIMIT = 16 * 1024 * 1024  # a small file (or the manifest) larger than this is refused, never read whole
POOL_MEMBER = re.compile(r'pool/sha256/([0-9a-f]{2})/([0-9a-f]{64})\.zip', re.ASCII)
FEED_MEMBER = re.compile(r'feed/(kept\.json|downstream-id|catalog-[0-9a-f]{64}\.json)', re.ASCII)
CHUNK = 1024 * 1024


def _now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _damaged(path: str, why: str) -> ExupError:
    return ExupError('the backup %s cannot be restored: %s; nothing was changed' % (path, why), code='backup_invalid')


def _sha256_file(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


# ---------------------------------------------------------------------------------------------------------------- backup
def snapshot_index(store: Store, target: str) -> None:
    """Copy repo.db to ``target`` with SQLite's online backup API: one consistent state, readers and the WAL included."""
    source = connect(store.db_path)
    try:
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()


def _small_files(store: Store) -> dict[str, bytes]:
    """member name -> bytes of the store's small files and the feed view's kept catalog that exist."""
    found: dict[str, bytes] = {}
    names = list(ROOT_FILES)
    if os.path.isdir(store.feed_dir):
        names += ['feed/' + name for name in sorted(os.listdir(store.feed_dir)) if FEED_MEMBER.fullmatch('feed/' + name)]
    for name in names:
        path = os.path.join(store.root, name)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        with open(path, 'rb') as handle:
            data = handle.read(SMALL_FILE_LIMIT + 1)
        if len(data) > SMALL_FILE_LIMIT:
            raise RepositoryError('the store file %s is larger than %d bytes: it is not one this code wrote' % (path, SMALL_FILE_LIMIT), code='store_damaged')
        found[name] = data
    return found


def _pool_member(digest: str) -> str:
    return 'pool/sha256/%s/%s.zip' % (digest[:2], digest)


def plan_backup(store: Store, snapshot: str) -> dict[str, typing.Any]:
    """The manifest of a backup of ``store`` whose index snapshot is the file ``snapshot`` (small files read, pool files stat'ed)."""
    index = Index(connect(snapshot))
    try:
        version = index.store_version()
        digests = index.package_digests()
    finally:
        index.close()
    members: dict[str, dict[str, typing.Any]] = {}
    size, digest = _sha256_file(snapshot)
    members[DB_MEMBER] = {'size': size, 'sha256': digest}
    small = _small_files(store)
    for name, data in small.items():
        members[name] = {'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
    missing = []
    for pool_digest in sorted(set(digests.values())):
        try:
            info = os.stat(store.pool_path(pool_digest))
        except FileNotFoundError:
            missing.append(pool_digest)
            continue
        members[_pool_member(pool_digest)] = {'size': info.st_size, 'sha256': pool_digest}
    if missing:
        raise RepositoryError(
            'the repository %s has rows without their pool files (%s): rebuild its index from the pool first (exup_package state=rebuilt)'
            % (store.root, ', '.join(missing[:5])),
            code='store_damaged',
        )
    return {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'backup_id': secrets.token_hex(8),
        'created_at': _now_text(),
        'store_version': version,
        'packages': len(digests),
        'members': members,
        'small': small,
    }


def summary(manifest: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """What a result says of a backup: its id, time, store format, packages, pool files and bytes of its members."""
    members = manifest['members']
    return {
        'backup_id': manifest['backup_id'],
        'created_at': manifest['created_at'],
        'store_version': manifest['store_version'],
        'packages': manifest['packages'],
        'pool_files': sum(1 for name in members if name.startswith('pool/')),
        'bytes': sum(int(item['size']) for item in members.values()),
    }


class _Hashing(io.RawIOBase):
    """A file read through, counting and hashing what tarfile copies out of it."""

    def __init__(self, handle: typing.BinaryIO) -> None:
        super().__init__()
        self.handle = handle
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = 0
    return info


def _write_archive(store: Store, snapshot: str, manifest: dict[str, typing.Any], path: str) -> None:
    small = manifest['small']
    public = {key: value for key, value in manifest.items() if key != 'small'}
    body = json.dumps(public, sort_keys=True, indent=1).encode('utf-8')
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_member(MANIFEST, len(body)), io.BytesIO(body))
        with open(snapshot, 'rb') as handle:
            archive.addfile(_member(DB_MEMBER, manifest['members'][DB_MEMBER]['size']), handle)
        for name, data in sorted(small.items()):
            archive.addfile(_member(name, len(data)), io.BytesIO(data))
        for name, item in sorted(manifest['members'].items()):
            if not name.startswith('pool/'):
                continue
            with open(store.pool_path(item['sha256']), 'rb') as handle:
                reader = _Hashing(handle)
                archive.addfile(_member(name, item['size']), reader)  # type: ignore[arg-type]
            if reader.digest.hexdigest() != item['sha256']:
                raise RepositoryError(
                    'the pool file %s does not match its name (SHA-256 %s): the store is damaged; no backup was written'
                    % (store.pool_path(item['sha256']), reader.digest.hexdigest()),
                    code='store_damaged',
                )


def make_backup(repo: Repository, path: str, check_mode: bool = False, wait_seconds: float = 600) -> dict[str, typing.Any]:
    """Write a backup of ``repo`` to the file ``path`` (replaced if it is there) while its service may run.

    Returns {'changed', 'path', 'backup': summary, 'events'}. Check mode reads the store and writes nothing."""
    store = repo.store
    path = os.path.abspath(path)
    if _inside(path, store.root):
        raise ExupError('the backup %s must not be inside the repository %s' % (path, store.root), code='backup_inside_store')
    state = index_state(store)
    if state != 'sound':
        why = 'it does not exist yet' if state == 'empty' else 'its index is %s: rebuild it from the pool first (exup_package state=rebuilt)' % state
        raise RepositoryError('cannot back up the repository %s: %s' % (store.root, why), code='store_not_sound', index_state=state)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise ExupError('the backup path %s is a directory: give the path of the backup file' % path, code='backup_invalid')
    if check_mode:
        with store.reader() as index:
            packages = len(index.package_digests())
        return {'changed': True, 'path': path, 'backup': {'packages': packages}, 'events': []}
    os.makedirs(folder, mode=0o700, exist_ok=True)
    token = secrets.token_hex(6)
    snapshot = '%s.%s.db.tmp' % (path, token)
    partial = '%s.%s.tmp' % (path, token)
    with store.locked(wait_seconds):
        try:
            os.close(os.open(snapshot, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            snapshot_index(store, snapshot)
            manifest = plan_backup(store, snapshot)
            check_store_version(store, manifest['store_version'])
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            _write_archive(store, snapshot, manifest, partial)
            with open(partial, 'rb') as handle:
                os.fsync(handle.fileno())
            os.replace(partial, path)
            _fsync_dir(folder)
        finally:
            for leftover in (snapshot, partial):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        done = summary(manifest)
        with store.open_index() as index:
            event = repo.record(index, 'store_backed_up', None, path=path, **done)
    return {'changed': True, 'path': path, 'backup': done, 'events': [event]}


# --------------------------------------------------------------------------------------------------------------- restore
def _check_manifest(path: str, data: bytes) -> dict[str, typing.Any]:
    try:
        manifest = json.loads(data.decode('utf-8'))
    except (ValueError, RecursionError):
        raise _damaged(path, '%s is not JSON' % MANIFEST) from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise _damaged(path, 'it is not an exup repository backup (no %s of format %s)' % (MANIFEST, FORMAT))
    if manifest.get('format_version') != FORMAT_VERSION:
        raise _damaged(path, 'its backup format %r is not %d, the one this code reads' % (manifest.get('format_version'), FORMAT_VERSION))
    version = manifest.get('store_version')
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _damaged(path, 'its store_version is not a positive number')
    if version > STORE_VERSION:
        raise RepositoryError(
            'the backup %s was made by a newer exup.fleet (store format %d, this code knows up to %d): a repository moves only to the '
            'same or a newer version (003 §4.3); upgrade the collection on this host' % (path, version, STORE_VERSION),
            code='store_too_new',
            store_version=version,
            supported=STORE_VERSION,
        )
    if not isinstance(manifest.get('backup_id'), str) or not re.fullmatch(r'[0-9a-f]{16}', manifest['backup_id']):
        raise _damaged(path, 'its backup_id is not 16 hex digits')
    if not isinstance(manifest.get('packages'), int) or not isinstance(manifest.get('created_at'), str):
        raise _damaged(path, 'its packages or created_at are missing')
    members = manifest.get('members')
    if not isinstance(members, dict) or DB_MEMBER not in members:
        raise _damaged(path, 'its member list is missing or names no %s' % DB_MEMBER)
    for name, item in members.items():
        known = name == DB_MEMBER or name in ROOT_FILES or FEED_MEMBER.fullmatch(name) or POOL_MEMBER.fullmatch(name)
        if not known:
            raise _damaged(path, 'it names a member %r that no backup holds' % name[:200])
        if (
            not isinstance(item, dict)
            or not isinstance(item.get('size'), int)
            or item['size'] < 0
            or not re.fullmatch(r'[0-9a-f]{64}', str(item.get('sha256')))
        ):
            raise _damaged(path, 'the entry of %s has no size and SHA-256' % name)
        pool = POOL_MEMBER.fullmatch(name)
        if pool and (pool.group(2) != item['sha256'] or pool.group(1) != pool.group(2)[:2]):
            raise _damaged(path, 'the pool member %s is not named by its SHA-256' % name)
    return manifest


def read_manifest(path: str) -> dict[str, typing.Any]:
    """The checked manifest of the backup file ``path`` (its first member)."""
    try:
        with tarfile.open(path, 'r:') as archive:
            first = archive.next()
            if first is None or first.name != MANIFEST or not first.isreg() or first.size > SMALL_FILE_LIMIT:
                raise _damaged(path, 'its first member is not %s' % MANIFEST)
            handle = archive.extractfile(first)
            if handle is None:  # a regular member always has a file object; this only satisfies the type
                raise _damaged(path, 'its first member %s cannot be read' % MANIFEST)
            data = handle.read()
    except tarfile.TarError as exc:
        raise _damaged(path, 'it is not a readable tar file (%s)' % exc) from None
    return _check_manifest(path, data)


def _copy_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> str:
    """Write a member to ``target`` (0600, new file), returning the SHA-256 of what was written."""
    source = archive.extractfile(member)
    if source is None:  # only regular members are copied, and those always have a file object
        raise TypeError('not a regular tar member: %s' % member.name)
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, 'wb') as out:
        for chunk in iter(lambda: source.read(CHUNK), b''):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _stage(path: str, manifest: dict[str, typing.Any], staging: str, pool_only: bool) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Every member checked and written under ``staging`` (member name -> staged path); pool_only: pool and recovery record
    only, and a pool file that fails is left out (returned as skipped) instead of refusing the backup."""
    try:
        return _stage_members(path, manifest, staging, pool_only)
    except (tarfile.TarError, EOFError) as exc:
        raise _damaged(path, 'its tar structure is broken (%s): the file was cut short or altered' % exc) from None
    except OSError as exc:
        if 'unexpected end of data' in str(exc):  # tarfile's short read of a member
            raise _damaged(path, 'a member is cut short: the file was cut short') from None
        raise


def _stage_members(path: str, manifest: dict[str, typing.Any], staging: str, pool_only: bool) -> tuple[dict[str, str], list[dict[str, str]]]:
    members = manifest['members']
    wanted = {name for name in members if not pool_only or name.startswith('pool/') or name == 'recovery.json'}
    staged: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    with tarfile.open(path, 'r:') as archive:
        for number, member in enumerate(archive):
            if number == 0:
                continue  # the manifest, read already
            name = member.name
            if name in seen or name not in members:
                raise _damaged(path, 'it holds a member %r its manifest does not list (or twice)' % name[:200])
            seen.add(name)
            if not member.isreg():
                raise _damaged(path, 'its member %s is not a regular file' % name)
            if name not in wanted:
                continue  # (pool_only: repo.db and the rest are not read, whatever they hold)
            if member.size != members[name]['size']:
                raise _damaged(path, 'its member %s has %d bytes, the manifest says %d' % (name, member.size, members[name]['size']))
            target = os.path.join(staging, '%06d' % number)
            digest = _copy_member(archive, member, target)
            if digest != members[name]['sha256']:
                if pool_only and name.startswith('pool/'):
                    os.unlink(target)
                    skipped.append({'member': name, 'code': 'digest_mismatch', 'msg': 'its SHA-256 is %s' % digest})
                    continue
                raise _damaged(path, 'its member %s does not match the SHA-256 of its manifest' % name)
            staged[name] = target
    missing = sorted(set(members) - seen)
    if missing:
        raise _damaged(path, 'it lacks members its manifest lists (%s): the file was cut short' % ', '.join(missing[:5]))
    if not pool_only:
        _check_index(path, staged[DB_MEMBER], manifest)
    return staged, skipped


def _check_index(path: str, staged_db: str, manifest: dict[str, typing.Any]) -> None:
    try:
        index = Index(connect(staged_db))
        try:
            problem = index.conn.execute('PRAGMA integrity_check').fetchone()[0]
            if problem != 'ok':
                raise _damaged(path, 'its repo.db fails SQLite integrity_check (%s)' % problem)
            if index.store_version() != manifest['store_version']:
                raise _damaged(path, 'its repo.db is of store format %d, the manifest says %d' % (index.store_version(), manifest['store_version']))
            digests = set(index.package_digests().values())
        finally:
            index.close()
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, 'its repo.db is not an SQLite database SQLite can read (%s)' % exc) from None
    named = {name.rsplit('/', 1)[1][:-4] for name in manifest['members'] if name.startswith('pool/')}
    if digests - named:
        raise _damaged(path, 'its repo.db names %d pool file(s) the backup does not hold' % len(digests - named))


def _restored_from(store: Store) -> dict[str, typing.Any] | None:
    try:
        with open(os.path.join(store.root, RESTORED_FILE), 'rb') as handle:
            data = json.loads(handle.read(SMALL_FILE_LIMIT).decode('utf-8'))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _place(store: Store, staged: dict[str, str]) -> list[str]:
    """Move the staged files into the store, repo.db last; the secret files a store has already are kept. Returns those kept."""
    kept = []
    dirs = set()
    for name, source in sorted(staged.items()):
        if name.startswith('pool/'):
            target = os.path.join(store.root, name)
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            os.chmod(source, 0o444)  # pool files are immutable (store.place)
            os.replace(source, target)
            dirs.add(os.path.dirname(target))
    for name, source in sorted(staged.items()):
        if name.startswith('pool/') or name == DB_MEMBER:
            continue
        target = os.path.join(store.root, name)
        if name in SECRET_FILES and os.path.exists(target):
            kept.append(name)  # this host's own passwords (set before the restore) win over the old host's
            continue
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        os.chmod(source, 0o600 if name in SECRET_FILES else 0o644)
        os.replace(source, target)
        dirs.add(os.path.dirname(target))
    for folder in sorted(dirs):
        _fsync_dir(folder)
    if DB_MEMBER in staged:
        os.chmod(staged[DB_MEMBER], 0o644)
        os.replace(staged[DB_MEMBER], store.db_path)
        _fsync_dir(store.root)
    return kept


def _remove_made(store: Store, made: list[str]) -> None:
    """A refused restore leaves the store as it found it: the folders the lock made are removed again (when empty)."""
    if store.root in made:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store.lock_path)
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def restore_backup(repo: Repository, path: str, pool_only: bool = False, check_mode: bool = False, wait_seconds: float = 600) -> dict[str, typing.Any]:
    """Restore the backup file ``path`` into ``repo``, which must be empty (only its service's secret files may be there).

    Returns {'changed', 'path', 'backup': summary, 'pool_only', 'kept', 'skipped', 'events'}. Restoring the same backup
    again changes nothing. ``pool_only``: the pool files and recovery record only; then rebuild the index (rebuild.py)."""
    store = repo.store
    path = os.path.abspath(path)
    manifest = read_manifest(path)
    done = summary(manifest)
    result = {'changed': False, 'path': path, 'backup': done, 'pool_only': pool_only, 'kept': [], 'skipped': [], 'events': []}
    previous = _restored_from(store)
    state = index_state(store)
    if previous and previous.get('backup_id') == manifest['backup_id'] and (state == 'sound' or (pool_only and previous.get('pool_only'))):
        return result
    if state != 'empty':
        raise RepositoryError(
            'the repository %s is not empty (its index is %s): a backup is restored into a new, empty repository only' % (store.root, state),
            code='store_not_empty',
            index_state=state,
        )
    if check_mode:
        return dict(result, changed=True)
    made = [folder for folder in (store.root, os.path.dirname(store.pool_dir), store.pool_dir, store.tmp_dir) if not os.path.exists(folder)]
    with store.locked(wait_seconds):
        if index_state(store) != 'empty':
            raise RepositoryError('the repository %s was filled while the restore waited' % store.root, code='store_not_empty')
        staging = os.path.join(store.tmp_dir, 'restore-%s' % secrets.token_hex(6))
        os.makedirs(staging, mode=0o700)
        try:
            try:
                staged, skipped = _stage(path, manifest, staging, pool_only)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                _remove_made(store, made)
                raise
            kept = _place(store, staged)
            record = {'backup_id': manifest['backup_id'], 'created_at': manifest['created_at'], 'restored_at': _now_text(), 'pool_only': pool_only}
            with open(os.path.join(store.root, RESTORED_FILE), 'w', encoding='utf-8') as handle:
                json.dump(record, handle, sort_keys=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        events = []
        if not pool_only:
            with store.open_index() as index:  # a restored older store format is migrated here, by its first writer
                events.append(repo.record(index, 'store_restored', None, path=path, **done))
    return dict(result, changed=True, kept=kept, skipped=skipped, events=events)
