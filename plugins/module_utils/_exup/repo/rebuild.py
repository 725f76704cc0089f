# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rebuild a lost or damaged repository index from the pool (003 §4.4).

The guide's procedure is: delete the index, let it be made again, add every package file of the pool
back. Here the writer lock is held throughout, a damaged repo.db is moved aside (kept for the
operator), every pool file is verified again with the trusted keys, and what the pool cannot say is
taken from the recovery record (store.py ``recovery.json``): pins, sources and dates, tombstones, and the
feed's rollback state. Files that fail verification move to ``quarantine/``, never deleted.
Not restored: managers and their servers (their next presence report brings them back), events,
refusals, settings and status icons; the catalog entries come back with the next sync.
"""

from __future__ import annotations

import os
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import file_digest, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import RECOVERED_FEED_STATE

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import VerifiedPackage
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing

    #: package_id -> (digest, verified package, size) of the pool files a rebuild keeps
    Kept = dict[str, tuple[str, VerifiedPackage, int]]

#: index states that a rebuild repairs
NEEDS_REBUILD = ('missing', 'damaged', 'lost')


def index_state(store: Store) -> str:
    """'empty' (no store yet), 'missing' (repo.db gone, pool or record left), 'damaged', 'lost' (flagged), or 'sound'.

    'damaged': SQLite cannot read repo.db, or a row no longer decodes (db.Index.check_rows)."""
    if not store.exists:
        return 'missing' if store.pool_digests() or os.path.exists(store.recovery_path) else 'empty'
    try:
        index = store.reader()
    except RepositoryError as exc:
        if exc.code == 'store_damaged':
            return 'damaged'
        raise
    with index:
        if index.rebuild_needed():
            return 'lost'
        try:
            index.check_rows()
        except RepositoryError as exc:
            if exc.code == 'store_damaged':
                return 'damaged'  # a row that no longer decodes: the index is replaced like one SQLite cannot read
            raise
        return 'sound'


def check_pool_file(store: Store, digest: str, keyring: KeyRing) -> tuple[tuple[VerifiedPackage, int] | None, dict[str, str] | None]:
    """(VerifiedPackage, None) for a pool file that passes every check under its own name, else (None, why)."""
    path = store.pool_path(digest)
    try:
        size, actual = file_digest(path)
        if actual != digest:
            return None, {'code': 'digest_mismatch', 'msg': 'the file is named %s but its SHA-256 is %s' % (digest, actual)}
        return (verify_package(path, keyring), size), None
    except ExupError as exc:
        return None, {'code': exc.code, 'msg': exc.msg}
    except OSError as exc:
        return None, {'code': 'os_error', 'msg': str(exc)}


def choose(store: Store, keyring: KeyRing, indexed: dict[str, str], record: dict[str, typing.Any]) -> tuple[Kept, list[dict[str, str]]]:
    """Verify every pool file; returns (kept: package_id -> (digest, verified, size), quarantined: [dict])."""
    kept: Kept = {}
    quarantined: list[dict[str, str]] = []
    for digest in sorted(store.pool_digests()):
        checked, why = check_pool_file(store, digest, keyring)
        if why:
            quarantined.append(dict(why, sha256=digest))
            continue
        checked = typing.cast('tuple[VerifiedPackage, int]', checked)  # no why: the file passed
        package_id = checked[0].info.package_id
        known = indexed.get(package_id) or record['packages'].get(package_id, {}).get('sha256')
        if package_id in kept and known != digest:
            quarantined.append({'sha256': digest, 'code': 'duplicate_package_id', 'msg': 'another pool file holds %s' % package_id})
            continue
        if package_id in kept:
            quarantined.append({'sha256': kept[package_id][0], 'code': 'duplicate_package_id', 'msg': 'another pool file holds %s' % package_id})
        kept[package_id] = (digest, checked[0], checked[1])
    return kept, quarantined


def _summary(package_id: str, digest: str, verified: VerifiedPackage, meta: dict[str, typing.Any]) -> dict[str, typing.Any]:
    info = verified.info
    return {
        'package_id': package_id,
        'module_id': info.module_id,
        'version': info.version,
        'sha256': digest,
        'pinned': bool(meta.get('pinned')),
        'source': meta.get('source') or 'rebuilt',
    }


def plan_rebuild(store: Store, keyring: KeyRing, index: Index) -> dict[str, typing.Any]:
    """What a rebuild would do over ``index`` (possibly empty): a dict of the result keys."""
    record = store.load_recovery()
    indexed = index.package_digests()
    kept, quarantined = choose(store, keyring, indexed, record)
    # a file left by a deletion cut short: the tombstone wins, the file stays an orphan
    deleted = {row.get('package_id') for row in record['tombstones'] if isinstance(row, dict)}
    deleted |= set(index.tombstones())
    kept = {pid: item for pid, item in kept.items() if pid in indexed or pid in record['packages'] or pid not in deleted}
    meta_of = {
        pid: record['packages'].get(pid, {}) if record['packages'].get(pid, {}).get('sha256') == digest else {} for pid, (digest, _v, _s) in kept.items()
    }
    record['tombstones'] = [row for row in record['tombstones'] if isinstance(row, dict) and row.get('package_id') not in kept]
    return {
        'kept': kept,
        'meta': meta_of,
        'quarantined': quarantined,
        'indexed': indexed,
        'record': record,
        'tombstones': record['tombstones'],
        'feed_state': record['feed_state'],
        'packages': [_summary(pid, digest, verified, meta_of[pid]) for pid, (digest, verified, _s) in sorted(kept.items())],
    }


def _move_aside(store: Store, now_text: str) -> str:
    """Keep a damaged repo.db (and its WAL) for the operator under a new name; returns that name."""
    aside = '%s.damaged-%s' % (store.db_path, now_text.replace(':', ''))
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(store.db_path + suffix):
            os.replace(store.db_path + suffix, aside + suffix)
    return aside


def _quarantine(store: Store, quarantined: list[dict[str, str]]) -> None:
    os.makedirs(store.quarantine_dir, mode=0o755, exist_ok=True)
    for item in quarantined:
        source = store.pool_path(item['sha256'])
        if os.path.exists(source):
            os.replace(source, os.path.join(store.quarantine_dir, item['sha256'] + '.zip'))


def _restore(repo: Repository, index: Index, planned: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """Rows for verified files, then pins, dates, tombstones and feed state in one transaction that also ends the 'lost' mark."""
    for package_id, (digest, verified, size) in sorted(planned['kept'].items()):
        if planned['indexed'].get(package_id) != digest:
            repo.index_package(index, verified, digest, size, source=planned['meta'][package_id].get('source') or 'rebuilt')
    with index.transaction():
        for package_id in set(planned['indexed']) - set(planned['kept']):
            index.delete_package(package_id)  # its file failed or is gone
        for package_id, meta in planned['meta'].items():
            if meta.get('pinned'):
                index.pin_package(package_id)
            if isinstance(meta.get('added_at'), str):
                index.set_added_at(package_id, meta['added_at'])
        tombstones, _feed = repo.store.restore_records(index, planned['record'])
        index.clear_rebuild_needed()
        return repo.record(
            index,
            'store_rebuilt',
            None,
            packages=len(planned['kept']),
            pinned=sum(1 for p in planned['packages'] if p['pinned']),
            tombstones=tombstones,
            quarantined=len(planned['quarantined']),
        )


def _result(state: str, planned: dict[str, typing.Any] | None, changed: bool, **extra: typing.Any) -> dict[str, typing.Any]:
    return dict(
        {
            'state': state,
            'changed': changed,
            'packages': planned['packages'] if planned else [],
            'quarantined': planned['quarantined'] if planned else [],
            'tombstones': len(planned['tombstones']) if planned else 0,
            'feed_state': sorted(k for k in planned['feed_state'] if k in RECOVERED_FEED_STATE) if planned else [],
        },
        **extra,
    )


def rebuild_index(repo: Repository, keyring: KeyRing, check_mode: bool = False, wait_seconds: float = 600) -> dict[str, typing.Any]:
    """Rebuild ``repo``'s index from its pool when it is missing, damaged or lost; nothing to do when it is sound."""
    store = repo.store
    state = index_state(store)
    if state not in NEEDS_REBUILD:
        return _result(state, None, False)
    if check_mode:
        with store.reader() if state == 'lost' else store.empty_index() as index:
            return _result(state, plan_rebuild(store, keyring, index), True)
    with store.locked(wait_seconds):
        state = index_state(store)  # again, under the lock: another rebuild may have just run
        if state not in NEEDS_REBUILD:
            return _result(state, None, False)
        aside = _move_aside(store, repo.now_text()) if state == 'damaged' else None
        with store.open_index() as index:
            planned = plan_rebuild(store, keyring, index)
            _quarantine(store, planned['quarantined'])
            event = _restore(repo, index, planned)
            store.save_recovery(index)
    return _result(state, planned, True, moved_aside=aside, events=[event])
