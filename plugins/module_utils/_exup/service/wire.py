# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service's wire format, declared once for both sides (the service and ``repo/remote.py``).

Paths, the API version and the features each version has (003 §1.3, Fig. 3: a remote repository older
than the caller limits features), the records as JSON, and how an ``ExupError`` crosses the wire. Pure:
no I/O, no HTTP library.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, FleetPage, Refusal, StoredPackage, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

SERVICE = 'exup.fleet repository'
#: the API this code speaks. Raise it when a route or record changes, and say in FEATURES what the new version brings.
API_VERSION = 4
#: feature -> the first API version that has it. A repository older than the caller has only those up to its version.
FEATURES = {
    'packages': 1,
    'pool': 1,
    'presence': 1,
    'servers': 1,
    'download': 1,
    'add': 1,
    'listing': 1,
    'events': 1,
    'settings': 1,
    'statuses': 1,
    'feed': 1,
    'export': 1,
    'rebuild': 1,
    'fleet': 2,  # GET /v1/servers: the registered servers, for the inventory plugin (issue 12)
    'read_at': 3,  # GET /v1/servers: read_at of each server, when its versions were last read (issue 13); older: none known
    'events_read': 4,  # GET /v1/events: the newest events of the log, of one server (issue 13); older: no history, the default estimate
}
DEFAULT_PORT = 8080  # 003 Table 2

#: the biggest JSON body either side reads: 2,000 servers with their modules fit many times over
MAX_JSON_BYTES = 8 * 1024 * 1024
#: servers per page of GET /v1/servers by default and at most (a page of 5,000 with a few modules each is about 2 MiB)
FLEET_PAGE, FLEET_PAGE_MAX = 5000, 10000
#: events GET /v1/events sends at most (the maintenance window's estimate reads 5,000 of a server's)
EVENTS_MAX = 5000
#: the biggest package a manager may upload (manual add, 003 §3.4.3)
MAX_UPLOAD_BYTES = 4 * 1024 * 1024 * 1024

POOL_PATH = re.compile(r'/v1/pool/sha256/(?P<digest>[0-9a-f]{64})\.zip')
ERROR_CODE = re.compile(r'[a-z][a-z0-9_]{0,63}')
MSG_LIMIT = 2000
#: the keys of an error answer that reach a task's result besides error and msg
ERROR_DETAILS = ('download_id', 'retry_after', 'limited', 'package_id', 'managers', 'user', 'status', 'key_id', 'server', 'module_id')

#: the HTTP status each refusal of the service answers with (any other ExupError: 422; a bug: 500)
STATUS_OF = {
    'auth_required': 401,
    'auth_failed': 401,
    'auth_rate_limited': 429,
    'forbidden': 403,
    'remote_delete_refused': 403,
    'not_found': 404,
    'method_not_allowed': 405,
    'body_too_large': 413,
    'request_invalid': 400,
    'repository_busy': 409,
    'download_running': 409,
    'service_unavailable': 503,
    'ticket_invalid': 403,
    'ticket_expired': 403,
}

#: the longest a pool ticket (a signed URL a BMC or host fetches a package with, no password) may live
TICKET_MAX_SECONDS = 86400


def pool_path(sha256: str) -> str:
    """The content-addressed path of a package file: the same bytes always have the same URL, so caches may keep it."""
    return '/v1/pool/sha256/%s.zip' % sha256


def etag_of(sha256: str) -> str:
    return '"sha256-%s"' % sha256


def if_none_match_hits(header: str | None, sha256: str) -> bool:
    """True when an If-None-Match header names this file's ETag (or is ``*``): answer 304."""
    if not header:
        return False
    wanted = etag_of(sha256)
    for tag in header.split(','):
        tag = tag.strip()
        if tag == '*' or tag.removeprefix('W/') == wanted:
            return True
    return False


#: a year: the bytes at a pool URL never change (the most RFC 9111 asks a cache to honour is about 68 years)
POOL_MAX_AGE = 31536000
#: every Cache-Control a pool file answers with (pool_headers)
POOL_CACHE_CONTROL = re.compile(r'(?:private, max-age=31536000|public, max-age=[0-9]{1,8}), immutable')


def pool_headers(sha256: str, ticket_seconds: int | None = None) -> dict[str, str]:
    """Caching headers of a content-addressed file: immutable, and who may keep it (docs/scale.md, HTTP caches).

    Asked with credentials (Basic): ``private``. A shared cache must not answer anyone else with it: ``public`` would
    let it store the answer under the URL alone and give it to a client with no login (RFC 9111 §3.5), and the pool
    asks for one. A cache that authorizes every request itself (docs/examples/nginx-pool-cache.conf) may keep it.
    Asked with a pool ticket (``ticket_seconds`` left of it): ``public`` until the ticket expires and no longer, so
    a shared cache keyed by the whole URL answers only holders of that ticket, and only while it is valid.
    """
    if ticket_seconds is None:
        cache = 'private, max-age=%d, immutable' % POOL_MAX_AGE
    else:
        cache = 'public, max-age=%d, immutable' % max(0, min(int(ticket_seconds), POOL_MAX_AGE))
    return {'ETag': etag_of(sha256), 'Cache-Control': cache, 'X-Content-Type-Options': 'nosniff'}


# ----------------------------------------------------------------- pool tickets: signed, expiring URLs of one file
def ticket_signature(key: bytes, sha256: str, expires: int) -> str:
    return hmac.new(key, ('%s:%d' % (sha256, expires)).encode('ascii'), hashlib.sha256).hexdigest()


def ticket_query(key: bytes, sha256: str, expires: int) -> str:
    """The query that lets anyone holding the URL fetch this one file until ``expires`` (UNIX time), and nothing else."""
    return 'expires=%d&ticket=%s' % (expires, ticket_signature(key, sha256, expires))


def ticket_problem(key: bytes, sha256: str, expires: str | None, ticket: str | None, now: float) -> str | None:
    """None when the ticket admits this file now, else the refusal's code (ticket_invalid, ticket_expired)."""
    if not expires or not ticket or not (expires.isascii() and expires.isdigit()) or len(expires) > 12 or not ticket.isascii():
        return 'ticket_invalid'  # compare_digest raises TypeError on non-ASCII texts, int() on '²' (schemathesis, OPENAPI)
    if not hmac.compare_digest(ticket_signature(key, sha256, int(expires)), ticket):
        return 'ticket_invalid'
    return 'ticket_expired' if int(expires) < now else None


def status_of(code: str) -> int:
    return STATUS_OF.get(code, 422)


# ----------------------------------------------------------------- versions (003 §1.3, Fig. 3)
def limited_features(remote_version: int) -> list[str]:
    """The features this code has that a repository speaking ``remote_version`` lacks."""
    return sorted(name for name, since in FEATURES.items() if since > remote_version)


def about(collection_version: str) -> dict[str, typing.Any]:
    """What GET /v1/about answers: who this is and what it can do."""
    return {'service': SERVICE, 'api_version': API_VERSION, 'collection_version': collection_version, 'features': sorted(FEATURES)}


def check_about(answer: object, url: str) -> dict[str, typing.Any]:
    """Validate a service's /v1/about; what it lacks of this code's features is in ``limited``."""
    if not isinstance(answer, dict) or answer.get('service') != SERVICE:
        raise ExupError('%s is not an exup.fleet repository service (its /v1/about says otherwise)' % url, code='repository_unavailable')
    version = answer.get('api_version')
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExupError('%s answered an API version that is not a positive number: %r' % (url, str(version)[:40]), code='repository_unavailable')
    if version > API_VERSION:  # newer than this code: it still speaks every version up to its own
        version = API_VERSION
    return dict(answer, api_version=version, limited=limited_features(version))


def refuse_limited(about_answer: dict, feature: str, url: str) -> None:
    """A feature the remote repository is too old for is refused cleanly, naming what to update (Fig. 3)."""
    if feature in about_answer.get('limited', ()):
        raise ExupError(
            'the repository at %s speaks API version %s, older than this collection (%s): it lacks %s. '
            'Update the exup.fleet collection on the repository host to use %s.'
            % (url, about_answer['api_version'], API_VERSION, ', '.join(about_answer['limited']), feature),
            code='repository_too_old',
            limited=about_answer['limited'],
        )


# ----------------------------------------------------------------- errors across the wire
def error_body(error: ExupError) -> dict[str, typing.Any]:
    return dict(error.details, error=error.code, msg=error.msg)


def error_from_body(status: int, body: object, url: str) -> ExupError:
    """The ExupError a service answered with; anything else is a clear service_failed, never trusted blindly."""
    if isinstance(body, dict) and isinstance(body.get('error'), str) and ERROR_CODE.fullmatch(body['error']) and isinstance(body.get('msg'), str):
        # only details the faces know: a hostile answer must not set a task result's changed, ansible_facts, warnings ...
        details = {key: body[key] for key in ERROR_DETAILS if key in body}
        return ExupError(body['msg'][:MSG_LIMIT], code=body['error'], **details)
    return ExupError('the repository service at %s answered HTTP %d without an exup error' % (url, status), code='service_failed', status=status)


# ----------------------------------------------------------------- records as JSON
def stored_package_as_dict(package: StoredPackage) -> dict[str, typing.Any]:
    return {
        'info': dataclasses.asdict(package.info),
        'sha256': package.sha256,
        'size': package.size,
        'key_id': package.key_id,
        'source': package.source,
        'pinned': package.pinned,
        'added_at': package.added_at,
        'url': pool_path(package.sha256),
    }


def stored_package_from_dict(data: object, base_url: str) -> StoredPackage:
    """A package the service listed; its ``path`` is the URL of its file at the service."""
    record = _record(data, ('info', 'sha256', 'size', 'key_id', 'source', 'pinned', 'added_at'), 'package')
    if not isinstance(record['sha256'], str) or not re.fullmatch(r'[0-9a-f]{64}', record['sha256']):
        raise _invalid('package', 'sha256')
    if not isinstance(record['info'], dict):
        raise _invalid('package', 'info')
    for field in ('key_id', 'source', 'added_at'):
        if not isinstance(record[field], str):
            raise _invalid('package', field)
    if not isinstance(record['pinned'], bool):  # bool('false') is True: a wrong type must not pin a package
        raise _invalid('package', 'pinned')
    try:
        info = PackageInfo.from_dict(record['info'])
    except TypeError as exc:
        raise _invalid('package', 'info (%s)' % exc) from None
    return StoredPackage(
        info=info,
        sha256=record['sha256'],
        size=_integer(record['size'], 'package', 'size'),
        path=base_url.rstrip('/') + pool_path(record['sha256']),
        key_id=record['key_id'],
        source=record['source'],
        pinned=record['pinned'],
        added_at=record['added_at'],
    )


def server_as_dict(server: Server) -> dict[str, typing.Any]:
    return {'name': server.name, 'model': server.model, 'os': server.os, 'modules': server.modules}


def tombstone_from_dict(data: object) -> Tombstone:
    record = _record(data, [field.name for field in dataclasses.fields(Tombstone)], 'tombstone')
    return Tombstone(**dict(record, forced=bool(record['forced']), models=tuple(record['models'] or ()), os=tuple(record['os'] or ())))


def refusal_from_dict(data: object) -> Refusal:
    return Refusal(**_record(data, [field.name for field in dataclasses.fields(Refusal)], 'refusal'))


def bmc_record_as_dict(record: BmcModuleRecord) -> dict[str, typing.Any]:
    return dataclasses.asdict(record)


def bmc_record_from_dict(data: object) -> BmcModuleRecord:
    record = _record(data, ['module_id'], 'bmc module record')
    fields = {name: data.get(name) for name in ('previous', 'block', 'staged', 'since')} if isinstance(data, dict) else {}
    if not all(value is None or isinstance(value, str) for value in fields.values()) or not isinstance(record['module_id'], str):
        raise _invalid('bmc module record', 'field (texts or null)')
    return BmcModuleRecord(record['module_id'], **fields)


def fleet_page_as_dict(page: FleetPage) -> dict[str, typing.Any]:
    """GET /v1/servers: one page of registered servers with their BMC records and chosen icons (the inventory plugin)."""
    return {
        'servers': [
            dict(server_as_dict(server), manager_id=server.manager_id, read_at=page.read_at.get((server.manager_id, server.name))) for server in page.servers
        ],
        'bmc_modules': [dict(bmc_record_as_dict(record), manager_id=key[0], server=key[1]) for key, records in page.bmc.items() for record in records.values()],
        'manual_icons': [
            {'manager_id': key[0], 'server': key[1], 'module_id': module_id, 'icon': icon, 'set_at': set_at}
            for key, chosen in page.icons.items()
            for module_id, (icon, set_at) in chosen.items()
        ],
        'initial_icons': [{'changed_at': changed_at, 'icon': icon} for changed_at, icon in page.initial_icons],
        'next': {'manager_id': page.next[0], 'name': page.next[1]} if page.next else None,
    }


def fleet_page_from_dict(data: object) -> FleetPage:
    """A page of GET /v1/servers, every field checked (service_answer_invalid naming what is wrong)."""
    record = _record(data, ('servers', 'bmc_modules', 'manual_icons', 'initial_icons', 'next'), 'server listing')
    for field in ('servers', 'bmc_modules', 'manual_icons', 'initial_icons'):
        if not isinstance(record[field], list):
            raise _invalid('server listing', field)
    servers, read_at = [], {}
    for item in record['servers']:
        texts = _texts(_record(item, ('manager_id', 'name', 'model', 'os', 'modules'), 'server'), ('manager_id', 'name', 'model', 'os'), 'server')
        modules = item['modules']
        if not isinstance(modules, dict) or not all(
            isinstance(state, dict) and all(isinstance(key, str) and isinstance(value, str) for key, value in state.items()) for state in modules.values()
        ):
            raise _invalid('server', 'modules (module id -> {current, previous})')
        servers.append(Server(modules={str(key): dict(value) for key, value in modules.items()}, **texts))
        stamp = item.get('read_at')  # absent from a service of API 2: not known
        if stamp is not None and not isinstance(stamp, str):
            raise _invalid('server', 'read_at (a text or null)')
        if stamp is not None:
            read_at[(texts['manager_id'], texts['name'])] = stamp
    bmc: dict[tuple[str, str], dict[str, BmcModuleRecord]] = {}
    for item in record['bmc_modules']:
        where = _texts(_record(item, ('manager_id', 'server'), 'bmc module record'), ('manager_id', 'server'), 'bmc module record')
        module = bmc_record_from_dict(item)
        bmc.setdefault((where['manager_id'], where['server']), {})[module.module_id] = module
    icons: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for item in record['manual_icons']:
        chosen = _texts(
            _record(item, ('manager_id', 'server', 'module_id', 'icon', 'set_at'), 'icon'), ('manager_id', 'server', 'module_id', 'icon', 'set_at'), 'icon'
        )
        icons.setdefault((chosen['manager_id'], chosen['server']), {})[chosen['module_id']] = (chosen['icon'], chosen['set_at'])
    initial = []
    for item in record['initial_icons']:
        change = _texts(_record(item, ('changed_at', 'icon'), 'initial icon'), ('changed_at', 'icon'), 'initial icon', empty=True)
        initial.append((change['changed_at'], change['icon']))
    after = record['next']
    if after is not None:
        after = _texts(_record(after, ('manager_id', 'name'), 'next'), ('manager_id', 'name'), 'next')
    return FleetPage(
        servers=servers, bmc=bmc, icons=icons, initial_icons=initial, next=(after['manager_id'], after['name']) if after else None, read_at=read_at
    )


def events_from_dict(data: object, limit: int, server: str | None = None) -> list[dict[str, typing.Any]]:
    """The events of GET /v1/events, every field checked: at most ``limit``, each of ``server`` when given (service_answer_invalid)."""
    items = _record(data, ('events',), 'event list')['events']
    if not isinstance(items, list) or len(items) > limit:
        raise _invalid('event list', 'events (a list of at most %d)' % limit)
    out = []
    for item in items:
        record = _record(item, ('time', 'level', 'code', 'message', 'detail'), 'event')
        _texts(record, ('time', 'code'), 'event')
        _texts(record, ('message',), 'event', empty=True)
        if record['level'] not in ('normal', 'error'):
            raise _invalid('event', 'level')
        if not isinstance(record['detail'], dict):
            raise _invalid('event', 'detail')
        if server is not None and record['detail'].get('server') != server:
            raise _invalid('event', 'detail (not of server %s)' % server)
        if 'id' in item:
            record['id'] = _integer(item['id'], 'event', 'id')
        out.append(record)
    return out


def _texts(record: dict[str, typing.Any], fields: typing.Sequence[str], what: str, empty: bool = False) -> dict[str, str]:
    for field in fields:
        if not isinstance(record[field], str) or not (empty or record[field]):
            raise _invalid(what, field)
    return {field: record[field] for field in fields}


def _record(data: object, keys: typing.Sequence[str], what: str) -> dict[str, typing.Any]:
    """The named fields of an answer's object (others are ignored: a newer service may send more)."""
    if not isinstance(data, dict):
        raise ExupError('the repository service sent a %s that is not an object' % what, code='service_answer_invalid')
    missing = [key for key in keys if key not in data]
    if missing:
        raise _invalid(what, ', '.join(missing) + ' (missing)')
    return {key: data[key] for key in keys}


def _integer(value: object, what: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _invalid(what, field)
    return value


def _invalid(what: str, field: str) -> ExupError:
    return ExupError('the repository service sent a %s with a bad %s' % (what, field), code='service_answer_invalid')
