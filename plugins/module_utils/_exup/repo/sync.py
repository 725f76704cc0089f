# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository sync from a vendor feed (003 §2.2.1-2.2.2), in the manner of TUF's updater.

1. record this manager's presence and servers (its needs);
2. fetch the catalog with a conditional GET (an unchanged feed costs one 304)
   and the time of the last access as ``since``; verify it (trusted signature,
   no rollback, not expired);
3. merge the entries published since the last access into the known feed;
4. run generation management over feed + store for every active manager's
   servers: what to download, what to keep;
5. download the missing packages in parallel, each bounded by its stated size,
   hashed while it arrives, then verified as a package (signature, every file)
   and checked against its catalog entry before it is indexed;
6. remove what generation management no longer keeps.
"""

from __future__ import annotations

import concurrent.futures
import os
import urllib.parse

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import (
    EPOCH,
    MAX_CATALOG_BYTES,
    check_version,
    parse_catalog,
    parse_time,
    same_feed,
    utc_now,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import Deadline, request_deadline
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError, ExupError, PackageError, TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package

DEFAULT_SYNC_TIMEOUT = 3600  # seconds: exup_repo_sync's sync_timeout


class BytesRefused(Exception):
    """A download with exactly the SHA-256 the catalog states failed the package's own checks.

    Only this is a statement about the vendor's bytes, so only this refusal is remembered (for that
    sha256) and not downloaded again until the catalog points at other bytes or an operator clears it.
    Every other failure (digest or size against the catalog, a cut, a timeout, HTTP, TLS, proxy) is the
    mirror's or the network's and is tried again at the next sync.
    """

    def __init__(self, error):
        super().__init__(error.msg)
        self.error = error


def entry_matches_package(entry, info):
    """The package must be what the signed catalog said it is."""
    mismatches = []
    for name in ('package_id', 'module_id', 'version'):
        if getattr(entry, name) != getattr(info, name):
            mismatches.append('%s %r != %r' % (name, getattr(info, name), getattr(entry, name)))
    if sorted(entry.models) != sorted(info.models) or sorted(entry.os) != sorted(info.os):
        mismatches.append('targets differ')
    if mismatches:
        raise PackageError('package does not match its catalog entry: %s' % '; '.join(mismatches), code='catalog_mismatch')


class SyncResult:
    def __init__(self):
        self.added = []
        self.removed = []
        self.refused = []
        self.events = []
        self.skipped_tombstoned = []
        self.catalog = {}
        self.bytes_downloaded = 0
        self.feed_unchanged = False

    @property
    def changed(self):
        return bool(self.added or self.removed)

    def as_dict(self):
        return {'added': self.added, 'removed': self.removed, 'refused': self.refused, 'events': self.events,
                'skipped_tombstoned': self.skipped_tombstoned, 'catalog': self.catalog, 'bytes_downloaded': self.bytes_downloaded,
                'feed_unchanged': self.feed_unchanged, 'changed': self.changed}


def sync_repository(repo, client, feed_url, keyring, manager_id, servers=None, check_mode=False, workers=4, progress=None,
                    accept_version_reset=False, time_limit=DEFAULT_SYNC_TIMEOUT):
    """Sync ``repo`` (Repository) from ``feed_url`` (the catalog URL). Returns a SyncResult.

    ``servers`` is this manager's list of Server (None: keep what it registered before).
    ``progress`` is called with (done_packages, total_packages, bytes) as downloads finish.
    ``accept_version_reset``: the operator accepts the catalog served now even if its version is lower
    than, or jumps too far above, the one accepted before (catalog_version_reset event).
    ``time_limit``: seconds the whole sync may take, every request included (sync_timeout); what was indexed by then stays.
    """
    deadline = Deadline(time_limit, what="the sync's time limit of %g s" % time_limit)
    result = SyncResult()
    with repo.store.session(check_mode) as conn:
        if not check_mode:
            repo.register_manager(conn, manager_id, servers)
            result.events.append(repo.record(conn, 'repository_update_started', feed=feed_url))
        try:
            _sync_locked(repo, conn, client, feed_url, keyring, manager_id, servers, check_mode, workers, progress, result,
                         accept_version_reset=accept_version_reset, deadline=deadline)
        except ExupError as exc:
            if not check_mode:
                result.events.append(repo.record(conn, 'repository_update_failed', exc.msg, error=exc.code))
            exc.details.setdefault('events', result.events)
            raise
        except KeyboardInterrupt:
            # Ctrl-C or a job cancelled by AWX: what was indexed stays, and the log says so.
            if not check_mode:
                repo.record(conn, 'repository_update_cancelled', added=len(result.added))
            raise
        if not check_mode:
            result.events.append(repo.record(conn, 'repository_update_finished', added=len(result.added), removed=len(result.removed),
                                             refused=len(result.refused)))
    return result


def _check_304_expected(state, conditional, feed_url):
    """304 Not Modified answers a conditional request about a catalog we hold: to anything else it is a protocol error."""
    if not conditional:
        raise TransportError('the feed %s answered 304 Not Modified to a request that was not conditional (no If-None-Match nor '
                             'If-Modified-Since was sent): it must send the catalog' % feed_url, code='catalog_unexpected_304')
    if 'catalog_expires' not in state:
        raise TransportError('the feed %s answered 304 Not Modified, but this repository holds no catalog from it: it must send the catalog'
                             % feed_url, code='catalog_unexpected_304')


def _sync_timed_out(deadline, where, **details):
    return TransportError('the sync did not finish within %s: it stopped %s; what was indexed stays, partial downloads resume at the next sync'
                          % (deadline.what, where), code='sync_timeout', **details)


def _stored_key_ids(state):
    return [key_id for key_id in state.get('catalog_key_ids', '').split(',') if key_id]


def _check_stored_catalog_trusted(state, keyring):
    """A 304 reuses the catalog accepted before without verifying it again: only while a key that signed it is trusted.

    So removing a key from trusted_keys ends the catalog it signed at the next sync, even with a server
    that answers 304 to anything.
    """
    signed_by = _stored_key_ids(state)
    if 'catalog_version' in state and not set(signed_by) & set(keyring.key_ids):
        raise CatalogError('the feed answered 304 Not Modified, but the catalog accepted before is signed by no trusted key (signed by: %s): '
                           'it no longer stands' % (', '.join(signed_by) or 'unknown'), code='unknown_key', key_ids=signed_by)


def _same_feed(state, catalog, same_url):
    """Is ``catalog`` from the feed accepted before (by its feed_id or signing keys, not its URL)?"""
    if 'catalog_version' not in state:
        return False
    if not state.get('feed_id') and not _stored_key_ids(state):
        return same_url  # a store from before key ids were recorded: the URL is all it knows
    return same_feed(state.get('feed_id', ''), _stored_key_ids(state), catalog)


def _check_feed_version(state, catalog, same, accept_reset):
    """Rollback and jump rules against the version accepted before from the same feed.

    Returns None, or when the operator accepted a version the rules refuse, (cause, detail) of the
    catalog_version_reset event to record.
    """
    min_version = int(state['catalog_version']) if same else 0
    try:
        check_version(catalog.version, min_version)
    except CatalogError as exc:
        if not accept_reset:
            raise
        return 'accepted by the operator: %s' % exc.msg, {'from_version': min_version, 'to_version': catalog.version, 'refused': exc.code}
    return None


def _sync_locked(repo, conn, client, feed_url, keyring, manager_id, servers, check_mode, workers, progress, result, accept_version_reset=False,
                 deadline=None):
    state = repo.feed_state(conn)
    same_url = state.get('feed_url') == feed_url
    since = state.get('last_access', EPOCH) if same_url else EPOCH
    # Conditional only while the stored catalog could stand (see _check_stored_catalog_trusted): else ask for it whole.
    conditional = same_url and bool(set(_stored_key_ids(state)) & set(keyring.key_ids))
    etag = state.get('etag') if conditional else None
    last_modified = state.get('last_modified') if conditional else None
    request = request_deadline(deadline)
    try:
        response = client.get_conditional(feed_url, etag=etag, last_modified=last_modified, params={'since': since}, max_bytes=MAX_CATALOG_BYTES,
                                          deadline=request)
    except TransportError as exc:
        if exc.code == 'request_timeout' and deadline is not None and (request is deadline or deadline.expired()):
            raise _sync_timed_out(deadline, 'while fetching the catalog %s' % feed_url) from None
        raise
    base_url = response['final_url']
    if response['redirected'] and not check_mode:
        result.events.append(repo.record(conn, 'feed_address_changed', feed=feed_url, now=base_url))
    new_entries = []
    replace_feed = False
    if response['status'] == 304:
        # Unchanged: the catalog we accepted before still rules, and so does its expiry (freeze attack).
        result.feed_unchanged = True
        _check_stored_catalog_trusted(state, keyring)
        _check_304_expected(state, bool(etag or last_modified), feed_url)
        if parse_time(state['catalog_expires']) <= utc_now():
            raise CatalogError('catalog expired at %s and the feed still serves it unchanged: the feed is stale or frozen' % state['catalog_expires'],
                               code='catalog_expired')
        base_url = state.get('base_url', base_url)
        result.catalog = {'version': int(state['catalog_version']), 'generated': state['last_access'], 'expires': state['catalog_expires'], 'entries_new': 0}
    else:
        catalog = parse_catalog(response['body'], keyring, min_version=None)
        # Rollback protection follows the feed (a mirror, a new URL of it), not the URL; another feed starts over.
        same = _same_feed(state, catalog, same_url)
        reset = _check_feed_version(state, catalog, same, accept_version_reset)
        if reset and not check_mode:
            result.events.append(repo.record(conn, 'catalog_version_reset', reset[0], **reset[1]))
        same_history = same and same_url
        # A full catalog (what any static server serves) is the whole truth: what it no longer lists was
        # withdrawn and is not asked for again. A catalog the server filtered by ``since`` is merged.
        replace_feed = not same_history or catalog.is_complete(since)
        new_entries = catalog.entries if replace_feed else catalog.entries_since(since)
        result.catalog = {'version': catalog.version, 'generated': catalog.generated, 'expires': catalog.expires,
                          'entries_new': len(catalog.entries_since(since)) if same_history else len(catalog.entries),
                          'entries_total': len(catalog.entries), 'key_ids': catalog.key_ids, 'feed_id': catalog.feed_id}
        if not check_mode:
            with conn.transaction():
                conn.save_feed_entries(new_entries, replace_feed)
                conn.set_feed_state((('feed_url', feed_url), ('base_url', base_url), ('catalog_version', str(catalog.version)),
                                     ('last_access', catalog.generated), ('catalog_expires', catalog.expires),
                                     ('etag', response['etag'] or ''), ('last_modified', response['last_modified'] or ''),
                                     ('catalog_key_ids', ','.join(catalog.key_ids)), ('feed_id', catalog.feed_id)))

    # In check mode nothing was written: this manager's servers and the new entries are laid over the stored state.
    override = (manager_id, servers) if servers is not None else None
    overlay = {entry.package_id: entry for entry in new_entries} if check_mode else None
    plan, stored, feed = repo.plan(conn, override=override, feed_overlay=overlay, feed_replace=replace_feed)[:3]
    tombstones = conn.tombstones()
    refusals = repo.remembered_refusals(conn)
    to_fetch = []
    for package_id in sorted(plan.wanted()):
        if package_id in stored or package_id not in feed:
            continue
        if package_id in tombstones:
            result.skipped_tombstoned.append(package_id)
            continue
        entry = feed[package_id]
        refusal = refusals.get(package_id)
        if refusal and refusal.sha256 == entry.sha256:
            result.refused.append({'package_id': package_id, 'version': entry.version, 'module_id': entry.module_id, 'code': refusal.code,
                                   'reason': refusal.reason, 'resumable': False, 'refused_at': refusal.refused_at, 'repeated': True})
            continue
        to_fetch.append(entry)

    if check_mode:
        result.added = [{'package_id': e.package_id, 'module_id': e.module_id, 'version': e.version, 'size': e.size} for e in to_fetch]
        result.removed = repo.prune(conn, plan, stored, check_mode=True)
        return

    cut = _download_all(repo, conn, client, base_url, keyring, to_fetch, workers, progress, result, deadline)
    if cut:
        # No pruning (what replaces a package may not have arrived) and no garbage collection (the .part files resume).
        raise _sync_timed_out(deadline, 'after %d of %d downloads' % (len(result.added), len(to_fetch)), added=result.added, not_fetched=cut)
    if result.added:  # else the store is as plan() read it (we hold the writer lock)
        stored = conn.packages()
    result.removed = repo.prune(conn, plan, stored)
    keep_parts = {entry.sha256 for entry in to_fetch if any(r['package_id'] == entry.package_id and r.get('resumable') for r in result.refused)}
    repo.store.collect_garbage(conn, keep_parts=keep_parts)
    if repo.store.rebuild_needed(conn):  # the index was lost: its pool files stay until exup_package state=rebuilt
        result.events.append(repo.record(conn, 'store_rebuild_needed', 'rebuild it with exup_package state=rebuilt',
                                         unindexed=len(repo.store.unindexed(conn))))


def _refuse(repo, conn, entry, exc, result):
    result.refused.append({'package_id': entry.package_id, 'version': entry.version, 'module_id': entry.module_id, 'code': exc.code,
                           'reason': exc.msg, 'resumable': exc.code in ('download_truncated', 'request_timeout')})
    result.events.append(repo.record(conn, 'package_refused', exc.msg, package_id=entry.package_id, error=exc.code))


class _TimeIsUp(Exception):
    """A download not started, or cut, because the sync's time limit struck: not a refusal of the package."""


def _download_all(repo, conn, client, base_url, keyring, entries, workers, progress, result, deadline=None):
    """Download in parallel; the writer connection is used only from this thread.

    Returns the ids of the packages the sync's ``deadline`` left without a download (not started or cut).
    """
    total = len(entries)
    done = 0
    cut = []

    def fetch_and_verify(entry):
        if deadline is not None and deadline.expired():
            raise _TimeIsUp()
        url = urllib.parse.urljoin(base_url, entry.url)
        final = repo.store.pool_path(entry.sha256)
        if os.path.exists(final):
            # Left by a crash between rename and index: already complete; verify it again below.
            path = final
        else:
            request = request_deadline(deadline, entry.size)
            try:
                path = client.download(url, repo.store.part_path(entry.sha256), entry.size, entry.sha256, deadline=request)
            except ExupError as exc:
                if exc.code == 'request_timeout' and deadline is not None and (request is deadline or deadline.expired()):
                    raise _TimeIsUp() from None
                raise
        try:
            verified = verify_package(path, keyring)
            entry_matches_package(entry, verified.info)
        except PackageError as exc:
            if path == final:
                raise  # not checked against the catalog's digest here: say nothing about the vendor's bytes
            os.unlink(path)
            raise BytesRefused(exc) from None
        return path, verified

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(fetch_and_verify, entry): entry for entry in entries}
        for future in concurrent.futures.as_completed(futures):
            entry = futures[future]
            done += 1
            try:
                path, verified = future.result()
            except _TimeIsUp:
                cut.append(entry.package_id)
                continue
            except BytesRefused as refused:
                _refuse(repo, conn, entry, refused.error, result)
                repo.remember_refusal(conn, entry.package_id, entry.sha256, refused.error)
                continue
            except ExupError as exc:
                _refuse(repo, conn, entry, exc, result)
                continue
            if path != repo.store.pool_path(entry.sha256):
                repo.store.install(path, entry.sha256)
                result.bytes_downloaded += entry.size
            repo.index_package(conn, verified, entry.sha256, entry.size, source='feed')
            repo.forget_refusal(conn, entry.package_id)
            result.added.append({'package_id': entry.package_id, 'module_id': entry.module_id, 'version': entry.version, 'size': entry.size,
                                 'sha256': entry.sha256})
            result.events.append(repo.record(conn, 'package_downloaded', package_id=entry.package_id, version=entry.version))
            if progress:
                progress(done, total, result.bytes_downloaded)
    return sorted(cut)
