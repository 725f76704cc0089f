# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The same content-addressed file route as a WSGI app (werkzeug) and as an ASGI app (starlette), for
benchmarks/bench_servers.py: GET /pool/<ab>/<sha256>.zip from EXUP_BENCH_POOL, with Range, ETag (the digest) and
immutable caching. Not the service: only what the candidates' file serving costs."""

from __future__ import annotations

import os
import re

POOL = os.environ.get('EXUP_BENCH_POOL', '/nonexistent')
ROUTE = re.compile(r'^/pool/([0-9a-f]{2})/([0-9a-f]{64})\.zip$')
IMMUTABLE = 'public, max-age=31536000, immutable'


def pool_file(path: str) -> tuple[str, str] | None:
    """(file, digest) for a well-formed pool path whose prefix matches its digest; None otherwise (no traversal)."""
    found = ROUTE.match(path)
    if not found or found.group(2)[:2] != found.group(1):
        return None
    return os.path.join(POOL, found.group(1), found.group(2) + '.zip'), found.group(2)


def wsgi_app(environ, start_response):
    from werkzeug.exceptions import NotFound
    from werkzeug.utils import send_file
    from werkzeug.wrappers import Request

    request = Request(environ)
    found = pool_file(request.path)
    if found is None or not os.path.isfile(found[0]):
        return NotFound()(environ, start_response)
    response = send_file(found[0], environ, mimetype='application/zip', conditional=True, etag=found[1], max_age=31536000)
    response.headers['Cache-Control'] = IMMUTABLE
    return response(environ, start_response)


async def asgi_app(scope, receive, send):
    from starlette.responses import FileResponse, PlainTextResponse

    if scope['type'] != 'http':
        return
    found = pool_file(scope['path'])
    if found is None or not os.path.isfile(found[0]):
        response = PlainTextResponse('not found', status_code=404)
    else:
        response = FileResponse(found[0], media_type='application/zip', headers={'Cache-Control': IMMUTABLE, 'ETag': '"%s"' % found[1]})
    await response(scope, receive, send)
