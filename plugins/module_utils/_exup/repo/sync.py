# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository sync from a vendor feed (003 §2.2.1-2.2.2), in the manner of TUF's updater (python-tuf ngclient).

``Sync`` holds the repository, the HTTP client, the key ring and the options, and runs these steps:

1. record this manager's presence and servers (its needs);
2. fetch the catalog with a conditional GET (an unchanged feed costs one 304) and the time of the
   last access as ``since`` (``fetch_catalog``), and verify the answer (``verify_answer``, pure:
   trusted signature, no rollback, not expired, the 304 rules);
3. record it: the entries published since the last access merge into the known feed (``record_catalog``);
4. run generation management over feed + store for every active manager's servers and select what
   to download (``select_downloads``, pure: what to fetch, what is skipped and why);
5. download the missing packages in parallel, each bounded by its stated size, hashed while it
   arrives, then verified as a package (signature, every file) and checked against its catalog
   entry before it is indexed (``download``);
6. remove what generation management no longer keeps (``prune``).

Check mode (``preview``) runs the pure steps only: the fetch, its verification, and the plan over
the stored state with this manager's servers and the new entries laid over it. Nothing is written.

A complete catalog that verifies is kept as it was received (``Store.keep_catalog``): the feed view of
the repository service (service/feed.py) serves it to chained repositories. A chained sync
(``upstream_options``: the upstream is a repository service, not the vendor) first announces this
repository's active servers to the upstream and has it download for them (``Upstream.prepare``), then
syncs from the upstream's feed view exactly as from a vendor feed, verifying everything again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import typing
import urllib.parse
from collections.abc import Callable, Container, Iterable, Mapping

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import (
    EPOCH,
    MAX_CATALOG_BYTES,
    CatalogEntry,
    check_version,
    parse_catalog,
    parse_time,
    same_feed,
    utc_now,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import Deadline, request_deadline
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError, ExupError, PackageError, TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package, verify_package_bytes
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.fingerprint import SyncMemo, memo_text, read_memo
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import Refusal
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.pipeline import MEMORY_BOUND, WINDOW_PER_WORKER, Finished, Tally, run_pipeline
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.feed import feed_view_url, upstream_base

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import Catalog
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo, VerifiedPackage
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import PlanState, Repository
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import StagedCatalog
    from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
    from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient

DEFAULT_SYNC_TIMEOUT = 3600  # seconds: exup_repo_sync's sync_timeout
# The upstream's download, polled: first soon (a warm upstream finishes in 10-40 ms: a 304 and a skipped plan), then
# UPSTREAM_POLL_GROWTH times longer each time up to UPSTREAM_POLL_MAX: the poll that sees the end comes at most a third
# of the whole wait, or UPSTREAM_POLL_MAX, after the download ended (benchmarks/bench_chain.py measures it).
UPSTREAM_POLL_FIRST = 0.02  # seconds
UPSTREAM_POLL_GROWTH = 1.5
UPSTREAM_POLL_MAX = 1.0


class BytesRefused(Exception):
    """A download with exactly the SHA-256 the catalog states failed the package's own checks.

    Only this is a statement about the vendor's bytes, so only this refusal is remembered (for that
    sha256) and not downloaded again until the catalog points at other bytes or an operator clears it.
    Every other failure (digest or size against the catalog, a cut, a timeout, HTTP, TLS, proxy) is the
    mirror's or the network's and is tried again at the next sync.
    """

    def __init__(self, error: ExupError) -> None:
        super().__init__(error.msg)
        self.error = error


def entry_matches_package(entry: CatalogEntry, info: PackageInfo) -> None:
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
    def __init__(self) -> None:
        self.added: list[dict] = []
        self.removed: list = []
        self.refused: list[dict] = []
        self.events: list[dict] = []
        self.skipped_tombstoned: list[str] = []
        self.catalog: dict = {}
        self.bytes_downloaded = 0
        self.feed_unchanged = False
        self.plan_skipped = False  # a 304 and the fingerprint of the last complete sync: nothing to plan, fetch or prune
        self.upstream: dict = {}  # a chained sync: what the upstream repository did for it (Upstream.prepare)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def as_dict(self) -> dict[str, typing.Any]:
        return {
            'added': self.added,
            'removed': self.removed,
            'refused': self.refused,
            'events': self.events,
            'skipped_tombstoned': self.skipped_tombstoned,
            'catalog': self.catalog,
            'bytes_downloaded': self.bytes_downloaded,
            'feed_unchanged': self.feed_unchanged,
            'plan_skipped': self.plan_skipped,
            'upstream': self.upstream,
            'changed': self.changed,
        }


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    """What one sync is asked to do.

    ``servers``: this manager's list of Server (None: keep what it registered before). ``progress`` is
    called with (done_packages, total_packages, bytes) as downloads finish. ``accept_version_reset``:
    the operator accepts the catalog served now even if its version is lower than, or jumps too far
    above, the one accepted before. ``time_limit``: seconds the whole sync may take, every request
    included (sync_timeout); what was indexed by then stays.

    ``upstream_url``: the base URL of an upstream repository service whose feed view ``feed_url`` is
    (``upstream_options`` sets both); None for a vendor feed. ``upstream_id``: this repository's manager
    id at the upstream (None: the store's own, ``Store.downstream_id``). ``full_catalog``: ask for the
    whole catalog (``since`` 1970-01-01), as a repository that serves a feed view does, so that the
    catalog it keeps is never a vendor's answer filtered by ``since``.
    """

    feed_url: str
    manager_id: str
    servers: list | None = None
    workers: int = 4
    time_limit: float = DEFAULT_SYNC_TIMEOUT
    accept_version_reset: bool = False
    progress: Callable | None = None
    upstream_url: str | None = None
    upstream_id: str | None = None
    full_catalog: bool = False


def upstream_options(repository_url: str, manager_id: str, **fields: typing.Any) -> SyncOptions:
    """The options of a sync whose upstream is the repository service at ``repository_url`` (its address, or its feed
    view's catalog URL): the sync announces its servers there, has it download, then syncs from its feed view."""
    return chained_options(SyncOptions(feed_url=repository_url, manager_id=manager_id, **fields))


def chained_options(options: SyncOptions) -> SyncOptions:
    """``options`` whose ``feed_url`` names an upstream repository service (exup_repo_sync ``upstream: repository``)."""
    base = upstream_base(options.feed_url)
    return dataclasses.replace(options, feed_url=feed_view_url(base), upstream_url=base)


# ----------------------------------------------------------------- the trust rules of the catalog (pure)
def _stored_key_ids(state: Mapping[str, str]) -> list[str]:
    return [key_id for key_id in state.get('catalog_key_ids', '').split(',') if key_id]


@dataclasses.dataclass(frozen=True)
class FeedRequest:
    """The catalog request the stored feed state calls for."""

    since: str
    etag: str | None
    last_modified: str | None
    same_url: bool
    # the last access, what entries_new counts from (``since`` is the epoch for a full catalog); derived, not compared
    known_since: str = dataclasses.field(default=EPOCH, compare=False)

    @property
    def conditional(self) -> bool:
        return bool(self.etag or self.last_modified)


def feed_request(state: dict, feed_url: str, key_ids: Iterable[str], full: bool = False, refetch: bool = False) -> FeedRequest:
    """Conditional only while the stored catalog could stand (see check_stored_catalog_trusted): else ask for it whole.

    ``full``: ``since`` is the epoch (the whole catalog, not the entries published since the last access).
    ``refetch``: not conditional either (the catalog accepted before was not kept: a 304 would not bring it).
    """
    same_url = state.get('feed_url') == feed_url
    conditional = same_url and bool(set(_stored_key_ids(state)) & set(key_ids)) and not refetch
    known_since = state.get('last_access', EPOCH) if same_url else EPOCH
    return FeedRequest(
        since=EPOCH if full else known_since,
        etag=state.get('etag') if conditional else None,
        last_modified=state.get('last_modified') if conditional else None,
        same_url=same_url,
        known_since=known_since,
    )


def check_304_expected(state: Mapping[str, str], conditional: bool, feed_url: str) -> None:
    """304 Not Modified answers a conditional request about a catalog we hold: to anything else it is a protocol error."""
    if not conditional:
        raise TransportError(
            'the feed %s answered 304 Not Modified to a request that was not conditional (no If-None-Match nor '
            'If-Modified-Since was sent): it must send the catalog' % feed_url,
            code='catalog_unexpected_304',
        )
    if 'catalog_expires' not in state:
        raise TransportError(
            'the feed %s answered 304 Not Modified, but this repository holds no catalog from it: it must send the catalog' % feed_url,
            code='catalog_unexpected_304',
        )


def check_stored_catalog_trusted(state: Mapping[str, str], keyring: KeyRing) -> None:
    """A 304 reuses the catalog accepted before without verifying it again: only while a key that signed it is trusted.

    So removing a key from trusted_keys ends the catalog it signed at the next sync, even with a server
    that answers 304 to anything.
    """
    signed_by = _stored_key_ids(state)
    if 'catalog_version' in state and not set(signed_by) & set(keyring.key_ids):
        raise CatalogError(
            'the feed answered 304 Not Modified, but the catalog accepted before is signed by no trusted key (signed by: %s): '
            'it no longer stands' % (', '.join(signed_by) or 'unknown'),
            code='unknown_key',
            key_ids=signed_by,
        )


def is_same_feed(state: Mapping[str, str], catalog: Catalog, same_url: bool) -> bool:
    """Is ``catalog`` from the feed accepted before (by its feed_id or signing keys, not its URL)?"""
    if 'catalog_version' not in state:
        return False
    if not state.get('feed_id') and not _stored_key_ids(state):
        return same_url  # a store from before key ids were recorded: the URL is all it knows
    return same_feed(state.get('feed_id', ''), _stored_key_ids(state), catalog)


def check_feed_version(state: Mapping[str, str], catalog: Catalog, same: bool, accept_reset: bool) -> tuple[str, dict[str, typing.Any]] | None:
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


@dataclasses.dataclass(frozen=True)
class CatalogUpdate:
    """A verified answer of the feed: what the sync records and plans with."""

    base_url: str
    summary: dict  # SyncResult.catalog
    unchanged: bool = False  # a 304: the catalog accepted before still rules
    new_entries: tuple = ()
    replace_feed: bool = False  # the entries are the whole feed, not an addition to it
    reset: tuple | None = None  # (cause, detail) of catalog_version_reset
    feed_state: tuple = ()  # (key, value) pairs to store
    complete: bool = False  # the catalog lists the whole feed (not filtered by ``since``): it may be kept for the feed view


def verify_answer(state: dict, request: FeedRequest, response: dict, keyring: KeyRing, options: SyncOptions) -> CatalogUpdate:
    """The feed's answer checked against the stored state and the trusted keys (pure: the clock is the only input besides them)."""
    if response['status'] == 304:
        # Unchanged: the catalog we accepted before still rules, and so does its expiry (freeze attack).
        check_stored_catalog_trusted(state, keyring)
        check_304_expected(state, request.conditional, options.feed_url)
        if parse_time(state['catalog_expires']) <= utc_now():
            raise CatalogError(
                'catalog expired at %s and the feed still serves it unchanged: the feed is stale or frozen' % state['catalog_expires'], code='catalog_expired'
            )
        summary = {'version': int(state['catalog_version']), 'generated': state['last_access'], 'expires': state['catalog_expires'], 'entries_new': 0}
        return CatalogUpdate(base_url=state.get('base_url', response['final_url']), summary=summary, unchanged=True)
    # Taken out of the response: parse_catalog then holds its last reference and lets the 8 MiB body go once decoded.
    catalog = parse_catalog(response.pop('body'), keyring, min_version=None)
    # Rollback protection follows the feed (a mirror, a new URL of it), not the URL; another feed starts over.
    same = is_same_feed(state, catalog, request.same_url)
    reset = check_feed_version(state, catalog, same, options.accept_version_reset)
    same_history = same and request.same_url
    # A full catalog (what any static server serves) is the whole truth: what it no longer lists was
    # withdrawn and is not asked for again. A catalog the server filtered by ``since`` is merged.
    complete = catalog.is_complete(request.since)
    replace_feed = not same_history or complete
    base_url = response['final_url']
    summary = {
        'version': catalog.version,
        'generated': catalog.generated,
        'expires': catalog.expires,
        'entries_new': len(catalog.entries_since(request.known_since)) if same_history else len(catalog.entries),
        'entries_total': len(catalog.entries),
        'key_ids': catalog.key_ids,
        'feed_id': catalog.feed_id,
    }
    feed_state = (
        ('feed_url', options.feed_url),
        ('base_url', base_url),
        ('catalog_version', str(catalog.version)),
        ('last_access', catalog.generated),
        ('catalog_expires', catalog.expires),
        ('etag', response['etag'] or ''),
        ('last_modified', response['last_modified'] or ''),
        ('catalog_key_ids', ','.join(catalog.key_ids)),
        ('feed_id', catalog.feed_id),
    )
    return CatalogUpdate(
        base_url=base_url,
        summary=summary,
        new_entries=tuple(catalog.entries if replace_feed else catalog.entries_since(request.since)),
        replace_feed=replace_feed,
        reset=reset,
        feed_state=feed_state,
        complete=complete,
    )


# ----------------------------------------------------------------- what to download (pure)
@dataclasses.dataclass(frozen=True)
class Selection:
    """What a sync downloads, and what it skips and why."""

    to_fetch: list
    skipped_tombstoned: list  # package ids deleted by an operator: not fetched again until the history is cleared
    repeated_refusals: list  # SyncResult.refused items of bytes refused before


def select_downloads(
    wanted: Iterable[str], stored: Container[str], feed: dict[str, CatalogEntry], tombstones: Container[str], refusals: dict[str, Refusal]
) -> Selection:
    """From the ids generation management wants: those not stored that the feed offers, less the deleted and the refused bytes."""
    to_fetch: list[CatalogEntry] = []
    skipped: list[str] = []
    repeated: list[dict] = []
    for package_id in sorted(wanted):
        if package_id in stored or package_id not in feed:
            continue
        if package_id in tombstones:
            skipped.append(package_id)
            continue
        entry = feed[package_id]
        refusal = refusals.get(package_id)
        if refusal and refusal.sha256 == entry.sha256:
            repeated.append(repeated_refusal(package_id, entry.version, entry.module_id, refusal))
            continue
        to_fetch.append(entry)
    return Selection(to_fetch, skipped, repeated)


def repeated_refusal(package_id: str, version: str, module_id: str, refusal: Refusal) -> dict:
    """The SyncResult.refused item of bytes refused before, not asked for again."""
    return {
        'package_id': package_id,
        'version': version,
        'module_id': module_id,
        'code': refusal.code,
        'reason': refusal.reason,
        'resumable': False,
        'refused_at': refusal.refused_at,
        'repeated': True,
    }


def leaves_nothing_to_retry(refused: Iterable[dict], remembered: Mapping[str, Refusal], fetched_sha256: Mapping[str, str]) -> bool:
    """True when every refusal of a sync is one a next sync repeats without asking (the refused bytes are remembered).

    A refusal not remembered for the bytes asked for (a cut, a timeout, HTTP, TLS, a proxy, a pool file left by a crash
    that failed) is tried again by the next sync: its fingerprint must not be stored.
    """
    for item in refused:
        refusal = remembered.get(item['package_id'])
        if item.get('repeated') and refusal:
            continue
        if item.get('resumable') or refusal is None or refusal.sha256 != fetched_sha256.get(item['package_id']):
            return False
    return True


def _sync_timed_out(deadline: Deadline, where: str, **details: typing.Any) -> TransportError:
    return TransportError(
        'the sync did not finish within %s: it stopped %s; what was indexed stays, partial downloads resume at the next sync' % (deadline.what, where),
        code='sync_timeout',
        **details,
    )


class _TimeIsUp(Exception):
    """A download not started, or cut, because the sync's time limit struck: not a refusal of the package."""


def _part_left(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def _entry_summary(entry: CatalogEntry) -> dict:
    return {'package_id': entry.package_id, 'module_id': entry.module_id, 'version': entry.version, 'size': entry.size}


# ----------------------------------------------------------------- the updater
class Sync:
    """One sync of ``repo`` (Repository) from the feed of ``options`` (SyncOptions): ``run()`` returns a SyncResult.

    The faces start it through the repository's interface, ``RepositoryApi.sync``."""

    index: Index  # the store's index, while run() holds it

    def __init__(self, repo: Repository, client: HttpClient, keyring: KeyRing, options: SyncOptions) -> None:
        self.repo = repo
        self.client = client
        self.keyring = keyring
        self.options = options
        self.deadline = Deadline(options.time_limit, what="the sync's time limit of %g s" % options.time_limit)
        self.stopping = threading.Event()  # set when the sync ends while it downloads: its downloads stop (fetch's stop)
        self.result = SyncResult()
        self.staged: StagedCatalog | None = None  # the catalog answer written to tmp/ to be kept once verified (update only)

    def run(self, check_mode: bool = False) -> SyncResult:
        return self.preview() if check_mode else self.update()

    # --- check mode: the pure steps only
    def preview(self) -> SyncResult:
        """What a sync would do, from a reader's index (the store is not created)."""
        with self.repo.read() as index:
            self.index = index
            if self.options.upstream_url:  # announcing needs and downloading change the upstream: not in check mode
                self.result.upstream = {'url': self.options.upstream_url, 'download': 'skipped'}
            try:
                update = self.fetch_and_verify()
                state = self.plan(update, overlay=True)
                selection = self.select(state)
            except ExupError as exc:
                exc.details.setdefault('events', self.result.events)
                raise
        self.result.added = [_entry_summary(entry) for entry in selection.to_fetch]
        self.result.removed = self.repo.prunable(state.plan, state.stored)
        return self.result

    # --- the sync
    def update(self) -> SyncResult:
        with self.repo.store.writer() as index:
            self.index = index
            self.repo.register_manager(index, self.options.manager_id, self.options.servers)
            self.log('repository_update_started', feed=self.options.feed_url)
            try:
                if self.options.upstream_url:
                    Upstream(self).prepare()
                self.update_locked()
            except ExupError as exc:
                self.log('repository_update_failed', exc.msg, error=exc.code)
                exc.details.setdefault('events', self.result.events)
                raise
            except KeyboardInterrupt:
                # Ctrl-C or a job cancelled by AWX: what was indexed stays, and the log says so.
                self.repo.record(index, 'repository_update_cancelled', added=len(self.result.added))
                raise
            self.log('repository_update_finished', added=len(self.result.added), removed=len(self.result.removed), refused=len(self.result.refused))
        return self.result

    def update_locked(self) -> None:
        update = self.fetch_and_verify(on_redirect=lambda final_url: self.log('feed_address_changed', feed=self.options.feed_url, now=final_url), keep=True)
        memo = read_memo(self.index.sync_memo())
        if update.unchanged and memo and memo.fingerprint == self.fingerprint():
            self.replay(memo)
            return
        if memo:
            self.index.set_sync_memo(None)  # from here the state moves: a cut, a failure or a kill leaves no memo behind
        self.record_catalog(update)
        # A catalog that replaces the feed is what the index now holds: the plan takes its entries as they are, instead of
        # reading 20,000 rows back (once in memory, not twice). A merged one is planned over the index.
        state = self.plan(update, overlay=update.replace_feed)
        selection = self.select(state)
        cut = self.download(update.base_url, selection.to_fetch)
        if cut:
            # No pruning (what replaces a package may not have arrived) and no garbage collection (the .part files resume).
            raise _sync_timed_out(
                self.deadline, 'after %d of %d downloads' % (len(self.result.added), len(selection.to_fetch)), added=self.result.added, not_fetched=cut
            )
        self.prune(state, selection)
        self.remember_outcome(selection)

    def fingerprint(self) -> str | None:
        return self.repo.sync_fingerprint(self.index, self.options.manager_id, self.options.feed_url, self.keyring.key_ids)

    def replay(self, memo: SyncMemo) -> None:
        """A skipped sync reports what a full one over the same state would: the refusals it repeats, the tombstones it skips."""
        self.result.plan_skipped = True
        self.result.refused.extend(dict(item) for item in memo.repeated_refusals)
        self.result.skipped_tombstoned.extend(memo.skipped_tombstoned)

    def remember_outcome(self, selection: Selection) -> None:
        """Store the fingerprint of the state after this sync, when a next sync with nothing new would have nothing to do."""
        remembered = self.repo.remembered_refusals(self.index)
        fetched = {entry.package_id: entry.sha256 for entry in selection.to_fetch}
        if self.index.rebuild_needed() or not leaves_nothing_to_retry(self.result.refused, remembered, fetched):
            return
        fingerprint = self.fingerprint()
        if fingerprint is None:
            return
        refused = sorted(self.result.refused, key=lambda item: item['package_id'])
        repeated = tuple(repeated_refusal(item['package_id'], item['version'], item['module_id'], remembered[item['package_id']]) for item in refused)
        self.index.set_sync_memo(memo_text(SyncMemo(fingerprint, repeated, tuple(sorted(self.result.skipped_tombstoned)))))

    def log(self, code: str, cause: str | None = None, **detail: typing.Any) -> dict:
        event = self.repo.record(self.index, code, cause, **detail)
        self.result.events.append(event)
        return event

    # --- steps
    def fetch_catalog(self, request: FeedRequest) -> dict:
        """The feed's answer to ``request``, within the sync's time limit."""
        bounded = request_deadline(self.deadline)
        try:
            return self.client.get_conditional(
                self.options.feed_url,
                etag=request.etag,
                last_modified=request.last_modified,
                params={'since': request.since},
                max_bytes=MAX_CATALOG_BYTES,
                deadline=bounded,
            )
        except TransportError as exc:
            if exc.code == 'request_timeout' and (bounded is self.deadline or self.deadline.expired()):
                raise _sync_timed_out(self.deadline, 'while fetching the catalog %s' % self.options.feed_url) from None
            raise

    def fetch_and_verify(self, on_redirect: Callable[[str], object] | None = None, keep: bool = False) -> CatalogUpdate:
        """Fetch the catalog and verify the answer; ``on_redirect`` hears of a redirect before the answer is judged.

        ``keep`` (the writer's sync): the answer is written to tmp/ as received before it is parsed (the parse lets
        the body go), for record_catalog to keep when it verified and is complete."""
        state = self.index.feed_state()
        refetch = False
        if keep and self.options.full_catalog:
            # A repository serving a feed view must hold the catalog it accepted: a 304 would not bring one it lacks.
            kept = self.repo.store.kept_catalog()
            refetch = kept is None or str(kept.version) != state.get('catalog_version')
        request = feed_request(state, self.options.feed_url, self.keyring.key_ids, full=self.options.full_catalog, refetch=refetch)
        response = self.fetch_catalog(request)
        if response['redirected'] and on_redirect:
            on_redirect(response['final_url'])
        if keep and response['status'] == 200:
            self.staged = self.repo.store.stage_catalog(response['body'])
        try:
            update = verify_answer(state, request, response, self.keyring, self.options)
        except BaseException:
            self.drop_staged()
            raise
        self.result.feed_unchanged = update.unchanged
        self.result.catalog = update.summary
        return update

    def drop_staged(self) -> None:
        staged, self.staged = self.staged, None
        if staged is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged.path)

    def record_catalog(self, update: CatalogUpdate) -> None:
        if update.reset:
            self.log('catalog_version_reset', update.reset[0], **update.reset[1])
        if update.unchanged:
            return
        if self.staged is not None and update.complete:
            # Kept before the index names the new version: a crash between leaves a newer kept catalog (verified,
            # served), and the next sync fetches it again; never a kept one older than what the index accepted.
            self.repo.store.keep_catalog(self.staged, int(update.summary['version']))
            self.staged = None
        self.drop_staged()  # a catalog filtered by ``since``: the view keeps serving the last complete one
        with self.index.transaction():
            self.index.save_feed_entries(update.new_entries, update.replace_feed)
            self.index.set_feed_state(update.feed_state)

    def plan(self, update: CatalogUpdate, overlay: bool = False) -> PlanState:
        """Generation plan over the store, with this manager's servers. ``overlay`` lays the new entries over the stored
        feed (check mode: nothing was written), or stands for it when they replace it."""
        override = (self.options.manager_id, self.options.servers) if self.options.servers is not None else None
        entries = {entry.package_id: entry for entry in update.new_entries} if overlay else None
        return self.repo.plan(self.index, override=override, feed_overlay=entries, feed_replace=update.replace_feed)

    def select(self, state: PlanState) -> Selection:
        selection = select_downloads(state.plan.wanted(), state.stored, state.feed, self.index.tombstones(), self.repo.remembered_refusals(self.index))
        self.result.skipped_tombstoned.extend(selection.skipped_tombstoned)
        self.result.refused.extend(selection.repeated_refusals)
        return selection

    def download(self, base_url: str, entries: list) -> list:
        """Download, verify and place in worker threads; index in batches from this thread, the only one using the index
        (see pipeline.py). Returns the ids of the packages the sync's deadline left without a download (not started or cut).
        """
        tally = Tally(total=len(entries))
        workers = max(1, self.options.workers)
        run_pipeline(
            entries,
            lambda entry: self.fetch_package(base_url, entry),
            lambda batch: self.index_batch(batch, tally),
            workers,
            window=WINDOW_PER_WORKER * workers,
            abort=self.stopping.set,  # Ctrl-C or a failure: the downloads in flight stop at their next piece of data
        )
        return sorted(tally.cut)

    def fetch_package(self, base_url: str, entry: CatalogEntry) -> Finished:
        """One entry downloaded (or left complete in the pool by a crash), verified and placed in the pool. In a worker thread."""
        if self.deadline.expired():
            return Finished(entry, cut=True)
        final = self.repo.store.pool_path(entry.sha256)
        try:
            if os.path.exists(final):
                # Left by a crash between rename and index: already complete; verify it again. Not checked against the
                # catalog's digest here: a refusal says nothing about the vendor's bytes.
                return Finished(entry, verified=self.verified(entry, final, None))
            path, data = self.fetch(base_url, entry)
        except _TimeIsUp:
            return Finished(entry, cut=True)
        except ExupError as exc:
            return Finished(entry, error=exc)
        try:
            verified = self.verified(entry, path, data)
        except PackageError as exc:
            os.unlink(path)
            return Finished(entry, error=exc, bytes_refused=True)
        del data  # the bytes are verified: only the VerifiedPackage waits for the batch
        self.repo.store.place(path, entry.sha256)
        return Finished(entry, verified=verified, downloaded=True)

    def fetch(self, base_url: str, entry: CatalogEntry) -> tuple[str, bytes | None]:
        """(the complete .part, its bytes when small enough to keep) within the sync's deadline."""
        bounded = request_deadline(self.deadline, entry.size)
        url = urllib.parse.urljoin(base_url, entry.url)
        part = self.repo.store.part_path(entry.sha256)
        try:
            download = self.client.fetch(url, part, entry.size, entry.sha256, keep_bytes=entry.size <= MEMORY_BOUND, deadline=bounded, stop=self.stopping)
        except ExupError as exc:
            if exc.code == 'request_timeout' and (bounded is self.deadline or self.deadline.expired()):
                raise _TimeIsUp() from None
            raise
        return download.path, download.data

    def verified(self, entry: CatalogEntry, path: str, data: bytes | None) -> VerifiedPackage:
        """The package checked (from ``data`` when in hand, else from the file) and matched to its catalog entry."""
        verified = verify_package(path, self.keyring) if data is None else verify_package_bytes(data, self.keyring, os.path.basename(path))
        entry_matches_package(entry, verified.info)
        return verified

    def index_batch(self, batch: list[Finished], tally: Tally) -> None:
        """Index what the workers finished: the batch's pool directories flushed once, then its rows, refusals and events in
        one transaction. Only then do they count in the result (a kill before the commit leaves pool files without rows)."""
        indexed = [item for item in batch if item.verified is not None]
        rows = [(item.verified, item.entry.sha256, item.entry.size) for item in batch if item.verified is not None]
        self.repo.store.flush_dirs(os.path.dirname(self.repo.store.pool_path(item.entry.sha256)) for item in indexed)
        if any(not item.cut for item in batch):
            events = []
            with self.index.transaction():
                self.repo.put_packages(self.index, rows, source='feed')
                self.index.delete_refusals([item.entry.package_id for item in indexed])
                for item in batch:
                    events.extend(self.batch_outcome(item))
            self.result.events.extend(events)
        for item in indexed:
            self.index_download(item)
        tally.cut.extend(item.entry.package_id for item in batch if item.cut)
        tally.done += len(batch)
        if self.options.progress:
            self.options.progress(tally.done, tally.total, self.result.bytes_downloaded)

    def batch_outcome(self, item: Finished) -> list[dict]:
        """The events (and remembered refusal) of one finished item, inside the batch's transaction."""
        entry = item.entry
        if item.verified is not None:
            return [self.repo.record(self.index, 'package_downloaded', package_id=entry.package_id, version=entry.version)]
        if item.error is None:  # cut by the deadline: reported by the sync_timeout error
            return []
        if item.bytes_refused:
            self.repo.remember_refusal(self.index, entry.package_id, entry.sha256, item.error)
        return [self.refuse(entry, item.error)]

    def index_download(self, item: Finished) -> None:
        """A committed package in the result: its summary only."""
        if item.downloaded:
            self.result.bytes_downloaded += item.entry.size
        self.result.added.append(dict(_entry_summary(item.entry), sha256=item.entry.sha256))

    def refuse(self, entry: CatalogEntry, exc: ExupError) -> dict:
        """The refusal in the result and its event (returned, for the caller's result once its transaction commits)."""
        self.result.refused.append(
            {
                'package_id': entry.package_id,
                'version': entry.version,
                'module_id': entry.module_id,
                'code': exc.code,
                'reason': exc.msg,
                # Also a failure after some bytes arrived (the server stopped mid-download, then refused connections):
                # its .part is kept, and the next sync resumes it (transport deletes a .part whose bytes it refused).
                'resumable': exc.code in ('download_truncated', 'request_timeout') or _part_left(self.repo.store.part_path(entry.sha256)),
            }
        )
        return self.repo.record(self.index, 'package_refused', exc.msg, package_id=entry.package_id, error=exc.code)

    def prune(self, state: PlanState, selection: Selection) -> None:
        """Remove what generation management no longer keeps, then the orphan files and the .part files that will not resume."""
        stored = self.index.prune_rows() if self.result.added else state.stored  # else the store is as plan() read it (we hold the writer lock)
        self.result.removed = self.repo.prune(self.index, state.plan, stored)
        resumable = {item['package_id'] for item in self.result.refused if item.get('resumable')}
        self.repo.store.collect_garbage(self.index, keep_parts={entry.sha256 for entry in selection.to_fetch if entry.package_id in resumable})
        if self.index.rebuild_needed():  # the index was lost: its pool files stay until exup_package state=rebuilt
            self.log('store_rebuild_needed', 'rebuild it with exup_package state=rebuilt', unindexed=len(self.repo.store.unindexed(self.index)))


# ----------------------------------------------------------------- a chained repository's upstream
def upstream_servers(servers: Iterable[Server]) -> list[dict]:
    """This repository's active servers as one manager of the upstream announces them: each named ``manager/name``
    (two managers here may both have a db01), with its model, OS and module versions (the previous generation too)."""
    return sorted(
        ({'name': '%s/%s' % (server.manager_id, server.name), 'model': server.model, 'os': server.os, 'modules': server.modules} for server in servers),
        key=lambda item: item['name'],
    )


class Upstream:
    """The calls of a chained sync to its upstream repository service, before it syncs from the upstream's feed view.

    1. ``POST /v1/managers/<id>/presence`` with this repository's active servers: the upstream's generation management
       keeps what they need (003 §2.2.2), as for any of its managers; ``id`` is ``Store.downstream_id``.
    2. ``POST /v1/downloads`` for that manager, then ``GET /v1/downloads/<download_id>`` until it ends, within the
       sync's time limit: the upstream fetches from its vendor what this repository's servers need.

    The presence must pass (a refusal fails the sync: without it the upstream does not know what to download). The
    download may fail or be unavailable (an upstream with no feed of its own, filled by hand): that is an
    ``upstream_download_failed`` event and the sync goes on with what the upstream holds.
    """

    def __init__(self, sync: Sync) -> None:
        self.sync = sync
        self.base = typing.cast(str, sync.options.upstream_url)

    def prepare(self) -> None:
        sync = self.sync
        manager_id = sync.options.upstream_id or sync.repo.store.downstream_id()
        override = (sync.options.manager_id, sync.options.servers) if sync.options.servers is not None else None
        servers = upstream_servers(sync.repo.active_servers(sync.index, override))
        sync.result.upstream = outcome = {'url': self.base, 'manager_id': manager_id, 'servers': len(servers), 'download': 'failed'}
        self.call('POST', '/v1/managers/%s/presence' % urllib.parse.quote(manager_id, safe=''), {'servers': servers})
        try:
            started = self.call('POST', '/v1/downloads', {'manager_id': manager_id})
            answer = self.wait(self.text(started, 'download_id'))
        except TransportError:
            raise  # the upstream cannot be reached (or the time is up): its feed view cannot either
        except ExupError as exc:
            outcome.update(error=exc.code, msg=exc.msg)
            sync.log('upstream_download_failed', exc.msg, upstream=self.base, error=exc.code)
            return
        if answer.get('state') != 'finished':
            code, msg = str(answer.get('error', 'service_failed')), str(answer.get('msg', 'the upstream download failed'))[:2000]
            outcome.update(error=code, msg=msg)
            sync.log('upstream_download_failed', msg, upstream=self.base, error=code)
            return
        result = answer.get('result')
        listed = result if isinstance(result, dict) else {}
        counts = {key: len(listed[key]) if isinstance(listed.get(key), list) else 0 for key in ('added', 'removed', 'refused')}
        outcome.update(download='finished', **counts)
        sync.log('upstream_download_finished', None, upstream=self.base, **counts)

    def wait(self, download_id: str) -> dict:
        """The upstream download's last state, polled until it is no longer running, or sync_timeout at the time limit."""
        delay = UPSTREAM_POLL_FIRST
        path = '/v1/downloads/%s' % urllib.parse.quote(download_id, safe='')
        while True:
            answer = self.call('GET', path)
            if not isinstance(answer, dict) or not isinstance(answer.get('state'), str):
                raise self.invalid('a download state that is not an object with a state')
            if answer['state'] != 'running':
                return answer
            if self.sync.deadline.remaining() <= delay:
                raise _sync_timed_out(self.sync.deadline, 'while the upstream repository %s downloaded for this repository' % self.base)
            time.sleep(delay)
            delay = min(delay * UPSTREAM_POLL_GROWTH, UPSTREAM_POLL_MAX)

    def call(self, method: str, path: str, body: typing.Any = None) -> typing.Any:
        """One call within the sync's time limit; the upstream's refusal is its ExupError, with what to do about it."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

        url = self.base + path
        bounded = request_deadline(self.sync.deadline)
        try:
            status, answer = self.sync.client.request_json(method, url, body, deadline=bounded)
        except TransportError as exc:
            if exc.code == 'request_timeout' and (bounded is self.sync.deadline or self.sync.deadline.expired()):
                raise _sync_timed_out(self.sync.deadline, 'while calling the upstream repository %s' % self.base) from None
            raise
        if 200 <= status < 300:
            return answer
        error = wire.error_from_body(status, answer, url)
        hint = ''
        if status == 401:
            hint = ': give the upstream user and password in feed_username and feed_password'
        elif status == 403:
            hint = ': announcing needs and downloading need the upstream user of the admin role'
        raise ExupError(
            'the upstream repository %s refused %s %s: %s%s' % (self.base, method, path, error.msg, hint), code=error.code, upstream=self.base, status=status
        )

    def text(self, answer: typing.Any, key: str) -> str:
        value = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(value, str) or not value or len(value) > 64:
            raise self.invalid('an answer without %s' % key)
        return value

    def invalid(self, what: str) -> ExupError:
        return ExupError('the upstream repository %s sent %s' % (self.base, what), code='service_answer_invalid', upstream=self.base)
