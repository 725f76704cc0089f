# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The feed view of a repository service: what a chained repository syncs from instead of the vendor (003 §1.3, Fig. 5).

``GET /v1/feed/catalog.json`` answers the catalog the repository's last sync kept (``Store.keep_catalog``): the
last complete catalog it verified, byte for byte as the vendor signed it, so the downstream checks the vendor's
signature, rollback and expiry itself and trusts nothing of this repository. Its ETag is the SHA-256 of the bytes
(If-None-Match: 304), and ``since`` is ignored: the view always answers the whole catalog.

``GET /v1/feed/<url>`` answers the package file a catalog entry names at ``<url>`` (relative to the catalog, as on
the vendor's server), from the pool by the entry's SHA-256, with Range (a cut download resumes) and an ETag; 404
``not_found`` when this repository does not hold it. Both need the ``read`` role.

The rules here are pure or read files only; the routes are starlette's and imported with it (``routes``).
"""

from __future__ import annotations

import json
import os
import stat
import threading
import typing
import urllib.parse

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import KeptCatalog, Store

FEED_PREFIX = '/v1/feed/'
CATALOG_NAME = 'catalog.json'
FEED_CATALOG_PATH = FEED_PREFIX + CATALOG_NAME
UPSTREAM_SUFFIXES = (FEED_CATALOG_PATH, FEED_PREFIX.rstrip('/'))


def feed_view_url(base_url: str) -> str:
    """The catalog URL of the feed view of the repository service at ``base_url``."""
    return base_url.rstrip('/') + FEED_CATALOG_PATH


def upstream_base(url: str) -> str:
    """The base URL of an upstream repository service, from what an operator gives: its address, with or without a
    trailing slash, or the feed view's catalog URL. Credentials, a query or a fragment in it are refused (feed_invalid):
    the password goes in feed_password, never in a URL that reaches logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ExupError('the upstream repository %r must be an http:// or https:// address, e.g. https://dmz.example.com:8080' % url, code='feed_invalid')
    if '@' in parts.netloc or parts.query or parts.fragment:
        raise ExupError(
            'the upstream repository address must hold no user, password, query or fragment: give feed_username and feed_password', code='feed_invalid'
        )
    path = parts.path.rstrip('/')
    for suffix in UPSTREAM_SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, '', ''))


def catalog_files(data: bytes) -> dict[str, tuple[str, int]]:
    """url -> (sha256, size) of the entries of kept catalog bytes.

    Read, not verified: the sync that kept them verified them, and the downstream verifies the catalog and every
    file again. An entry without a text url and sha256 is skipped (a kept catalog always has them)."""
    signed = json.loads(data.decode('utf-8')).get('signed', {})
    files: dict[str, tuple[str, int]] = {}
    for entry in signed.get('entries', []) if isinstance(signed, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get('url'), str) and isinstance(entry.get('sha256'), str) and isinstance(entry.get('size'), int):
            files[entry['url']] = (entry['sha256'], entry['size'])
    return files


def request_paths(raw_path: bytes | None, path: str) -> list[str]:
    """The forms of a request's path under /v1/feed/ to look a catalog entry's url up by: as sent (an entry's url may
    hold %-escapes, kept as the catalog wrote them), as decoded, and decoded then escaped again."""
    found = []
    if raw_path:
        raw = raw_path.decode('latin-1').split('?', 1)[0]
        if raw.startswith(FEED_PREFIX):
            found.append(raw[len(FEED_PREFIX) :])
    if path.startswith(FEED_PREFIX):
        decoded = path[len(FEED_PREFIX) :]
        found.extend([decoded, urllib.parse.quote(decoded, safe='/._~-')])
    return list(dict.fromkeys(item for item in found if item))


def not_held(what: str) -> ExupError:
    return ExupError('this repository does not hold %s' % what, code='not_found')


class FeedView:
    """The kept catalog and the files it names, for the routes of one service worker (the url map cached per catalog)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._files: tuple[str, dict[str, tuple[str, int]]] | None = None  # (sha256 of the kept catalog, its url map)

    def kept(self) -> KeptCatalog:
        kept = self.store.kept_catalog()
        if kept is None:
            raise not_held('a verified catalog yet: it keeps one at its next download from its feed')
        return kept

    def catalog(self) -> tuple[KeptCatalog, bytes]:
        """The kept catalog and its bytes; read again once when a sync replaced it between the record and the file."""
        for attempt in range(2):
            kept = self.kept()
            try:
                with open(kept.path, 'rb') as handle:
                    return kept, handle.read()
            except FileNotFoundError:
                if attempt:
                    raise not_held('a readable catalog (it is being replaced)') from None
        raise not_held('a catalog')  # pragma: no cover - the loop returns or raises

    def files(self) -> dict[str, tuple[str, int]]:
        known = self.kept()  # the kept catalog's record: its digest says whether the table below still stands
        with self._lock:
            if self._files is not None and self._files[0] == known.sha256:
                return self._files[1]
        kept, data = self.catalog()  # read (and decoded) once per catalog, not once per package request
        files = catalog_files(data)
        with self._lock:
            self._files = (kept.sha256, files)
        return files

    def package(self, paths: list[str]) -> tuple[str, str, os.stat_result]:
        """(pool path, sha256, its stat) of the file the kept catalog names at one of ``paths``; not_found unless the pool holds it."""
        files = self.files()
        for path in paths:
            if path in files:
                digest = files[path][0]
                pool = self.store.pool_path(digest)
                try:
                    found = os.stat(pool)
                except OSError:
                    found = None
                if found is None or not stat.S_ISREG(found.st_mode):
                    raise not_held('the package file %s' % path[:200])
                return pool, digest, found  # FileResponse takes the stat: no second one
        raise not_held('a package at %s: its catalog names none there' % (paths[0][:200] if paths else 'that path'))


def routes(store: Store, guard: typing.Callable[[typing.Callable], typing.Callable]) -> list:
    """The feed view's starlette routes; ``guard`` wraps a handler with the service's credential check (role ``read``)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

    view = FeedView(store)

    async def catalog(request: Request) -> Response:
        kept, data = await run_in_threadpool(view.catalog)
        headers = {'ETag': wire.etag_of(kept.sha256), 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff'}
        if wire.if_none_match_hits(request.headers.get('if-none-match'), kept.sha256):
            return Response(status_code=304, headers=headers)
        return Response(data, headers=headers, media_type='application/json')

    async def package(request: Request) -> Response:
        paths = request_paths(request.scope.get('raw_path'), request.url.path)
        pool, digest, found = await run_in_threadpool(view.package, paths)
        # Not the pool's "immutable": a later catalog may name other bytes at the same url.
        headers = {'ETag': wire.etag_of(digest), 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff'}
        if wire.if_none_match_hits(request.headers.get('if-none-match'), digest):
            return Response(status_code=304, headers=headers)
        return FileResponse(pool, headers=headers, media_type='application/zip', content_disposition_type='inline', stat_result=found)

    return [
        Route(FEED_CATALOG_PATH, guard(catalog), methods=['GET', 'HEAD']),
        Route(FEED_PREFIX + '{path:path}', guard(package), methods=['GET', 'HEAD']),
    ]
