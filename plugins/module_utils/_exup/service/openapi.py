# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service's OpenAPI 3.1 description, built in code so that it ships inside the collection.

GET /v1/openapi.json serves it (no login: it holds no data of the repository). docs/service-api.md says
how to read it; tests/system/test_service_openapi.py checks that it covers every route of app.py and
runs schemathesis against the running service. Every record here is the one wire.py (or the
repository) writes: change both together, and raise wire.API_VERSION when a route or record changes.
"""

from __future__ import annotations

import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

OPENAPI_PATH = '/v1/openapi.json'
FEED_PREFIX, FEED_CATALOG_PATH = '/v1/feed/', '/v1/feed/catalog.json'  # service/feed.py (imported with starlette there)
#: the role each operation needs: x-exup-role of the operation (read: any login; admin: the admin user only)
READ, ADMIN = 'read', 'admin'

JsonSchema = dict  # a JSON Schema (or OpenAPI object) as a dict

# ----------------------------------------------------------------- value rules (app.py's _id, _text; package.py)
#: package.is_id: schemas.TOKEN_PATTERN, anchored (JSON Schema patterns are not)
ID: JsonSchema = {'type': 'string', 'pattern': '^[A-Za-z0-9][A-Za-z0-9._+\\-]{0,63}$'}
#: app.py's _text: 1-256 characters, no control character below U+0020
TEXT: JsonSchema = {'type': 'string', 'minLength': 1, 'maxLength': 256, 'pattern': '^[^\\u0000-\\u001f]*$'}
#: a server name in a path: a TEXT without "/" (a path segment), and not a dot segment ("." and ".." are no names in a URL)
SERVER_NAME: JsonSchema = {'type': 'string', 'minLength': 1, 'maxLength': 256, 'pattern': '^[^\\u0000-\\u001f/]*$', 'not': {'enum': ['.', '..']}}
SHA256: JsonSchema = {'type': 'string', 'pattern': '^[0-9a-f]{64}$'}
TIME: JsonSchema = {'type': 'string', 'description': 'UTC time, ISO 8601 with Z (catalog.format_time)'}
STRINGS: JsonSchema = {'type': 'array', 'items': {'type': 'string'}}
NULLABLE_TEXT: JsonSchema = {'type': ['string', 'null']}
#: app.py's _flag in a JSON body: a boolean (the texts "true", "false", "1", "0" are taken too)
FLAG: JsonSchema = {'type': 'boolean', 'default': False}
CHECK_MODE: JsonSchema = dict(FLAG, description='Only say what would change; nothing is written.')
MANUAL_ICONS = ['latest', 'update_available', 'no_package']  # rules/plan.py MANUAL_ICONS (003 Table 9)


def _ref(kind: str, name: str) -> JsonSchema:
    return {'$ref': '#/components/%s/%s' % (kind, name)}


def _schema(name: str) -> JsonSchema:
    return _ref('schemas', name)


def _object(properties: dict[str, JsonSchema], required: typing.Sequence[str] = (), closed: bool = False, **more: typing.Any) -> JsonSchema:
    result: JsonSchema = {'type': 'object', 'properties': properties}
    if required:
        result['required'] = list(required)
    if closed:
        result['additionalProperties'] = False
    result.update(more)
    return result


def _json(schema: JsonSchema, description: str) -> dict[str, typing.Any]:
    return {'description': description, 'content': {'application/json': {'schema': schema}}}


# ----------------------------------------------------------------- records (wire.py, repo/interface.py, repo/repository.py)
def _schemas() -> dict[str, JsonSchema]:
    package_info = _object(
        {
            'package_id': ID,
            'module_id': ID,
            'module_name': {'type': 'string'},
            'version': ID,
            'release_date': {'type': 'string', 'description': 'YYYY-MM-DD'},
            'models': STRINGS,
            'os': STRINGS,
            'kind': {'type': 'string', 'description': 'linux, windows, bmc or offline (package.KINDS)'},
            'auto_update': {'type': 'boolean'},
            'reboot_required': {'type': 'boolean'},
            'downgrade_supported': {'type': 'boolean'},
            'uninstall_supported': {'type': 'boolean'},
            'install_command': {'type': 'string'},
            'uninstall_command': {'type': 'string'},
            'severity': {'type': 'string', 'description': 'critical, recommended or optional (package.SEVERITIES)'},
            'schema_version': {'type': 'integer', 'minimum': 0},
        },
        required=(
            'package_id',
            'module_id',
            'module_name',
            'version',
            'release_date',
            'models',
            'os',
            'kind',
            'auto_update',
            'reboot_required',
            'downgrade_supported',
            'uninstall_supported',
            'install_command',
        ),
        description="What the package's ExUpInfo.xml says (package.PackageInfo).",
    )
    module_state = {
        'oneOf': [
            {'type': 'string', 'description': 'the current version'},
            _object({'current': {'type': 'string'}, 'previous': {'type': 'string'}}),
        ]
    }
    server_fields: dict[str, JsonSchema] = {
        'name': {'type': ['string', 'number'], 'minLength': 1, 'description': 'a number is taken as its text'},
        'model': {'type': ['string', 'number'], 'minLength': 1},
        'os': {'type': ['string', 'number'], 'minLength': 1},
        'modules': {'type': 'object', 'additionalProperties': module_state, 'description': 'module id -> version, or {current, previous}'},
    }
    event_in = _object(
        {
            'level': {'enum': ['normal', 'error']},
            'code': {'type': 'string', 'pattern': '^[a-z][a-z0-9_]{0,63}$'},
            'message': {'type': 'string'},
            'detail': {'type': 'object'},
        },
        required=('level', 'code', 'message', 'detail'),
        description='An event as events.event builds it (docs/events.md lists the codes).',
    )
    return {
        'Error': _object(
            {
                'error': {'type': 'string', 'pattern': '^[a-z][a-z0-9_]{0,63}$', 'description': 'the stable code of the refusal (ExupError.code)'},
                'msg': {'type': 'string', 'description': 'what went wrong, in English, for people'},
            },
            required=('error', 'msg'),
            description='Every refusal (wire.error_body): more keys may carry details of the error (for example retry_after).',
        ),
        'About': _object(
            {
                'service': {'const': wire.SERVICE},
                'api_version': {'type': 'integer', 'minimum': 1},
                'collection_version': {'type': 'string'},
                'features': STRINGS,
            },
            required=('service', 'api_version', 'collection_version', 'features'),
            description='wire.about: who answers and which features its API version has (wire.FEATURES).',
        ),
        'PackageInfo': package_info,
        'StoredPackage': _object(
            {
                'info': _schema('PackageInfo'),
                'sha256': SHA256,
                'size': {'type': 'integer', 'minimum': 0},
                'key_id': {'type': 'string'},
                'source': {'type': 'string', 'description': 'feed or manual'},
                'pinned': {'type': 'boolean'},
                'added_at': TIME,
                'url': {'type': 'string', 'pattern': '^/v1/pool/sha256/[0-9a-f]{64}\\.zip$', 'description': 'the path of its file (GET it)'},
            },
            required=('info', 'sha256', 'size', 'key_id', 'source', 'pinned', 'added_at', 'url'),
            description='wire.stored_package_as_dict.',
        ),
        'Packages': _object({'packages': {'type': 'array', 'items': _schema('StoredPackage')}}, required=('packages',)),
        'Tombstone': _object(
            {
                'package_id': {'type': 'string'},
                'module_id': {'type': 'string'},
                'version': {'type': 'string'},
                'sha256': {'type': 'string'},
                'deleted_at': TIME,
                'deleted_by': {'type': 'string', 'description': 'the manager id that deleted it'},
                'forced': {'enum': [0, 1]},
                'models': STRINGS,
                'os': STRINGS,
            },
            required=('package_id', 'module_id', 'version', 'sha256', 'deleted_at', 'deleted_by', 'forced', 'models', 'os'),
            description='A deleted package (Tombstone.as_dict): no sync fetches it again until the deletion history is cleared.',
        ),
        'Refusal': _object(
            {
                'package_id': {'type': 'string'},
                'sha256': {'type': 'string'},
                'code': {'type': 'string'},
                'reason': {'type': 'string'},
                'refused_at': TIME,
            },
            required=('package_id', 'sha256', 'code', 'reason', 'refused_at'),
            description='Bytes of a package that failed its own checks (Refusal.as_dict).',
        ),
        'Event': _object(
            {
                'id': {'type': 'integer'},
                'time': TIME,
                'level': {'enum': ['normal', 'error']},
                'code': {'type': 'string'},
                'message': {'type': 'string'},
                'detail': {'type': 'object'},
            },
            required=('time', 'level', 'code', 'message', 'detail'),
            description='An event of the log (docs/events.md); id only in a listing and in GET /v1/events.',
        ),
        'EventIn': event_in,
        'ListedPackage': _object(
            {
                'package_id': {'type': 'string'},
                'module_id': {'type': 'string'},
                'module_name': {'type': 'string'},
                'version': {'type': 'string'},
                'release_date': {'type': 'string'},
                'models': STRINGS,
                'os': STRINGS,
                'kind': {'type': 'string'},
                'size': {'type': 'integer', 'minimum': 0},
                'sha256': SHA256,
                'severity': {'type': 'string'},
                'source': {'type': 'string'},
                'auto_update': {'type': 'boolean'},
                'downgrade_supported': {'type': 'boolean'},
                'multi_model': {'type': 'boolean'},
                'reboot_required': {'type': 'boolean'},
                'uninstall_supported': {'type': 'boolean'},
                'used_by_other_manager': {'type': 'boolean'},
                'pinned': {'type': 'boolean'},
                'generation': {'type': ['integer', 'null']},
                'previous_generation_only': {'type': 'boolean'},
                'compatible': {'type': 'boolean'},
                'key_id': {'type': 'string'},
            },
            required=('package_id', 'module_id', 'version', 'models', 'os', 'size', 'sha256', 'pinned', 'generation', 'compatible', 'key_id'),
            description='One package as exup_package_info lists it (repository.package_listing).',
        ),
        'Listing': _object(
            {
                'packages': {'type': 'array', 'items': _schema('ListedPackage')},
                'by_component': {'type': 'object', 'additionalProperties': STRINGS, 'description': 'module id -> package ids, newest first'},
                'by_model': {
                    'type': 'object',
                    'additionalProperties': {'type': 'object', 'additionalProperties': STRINGS},
                    'description': 'model -> module id -> package ids, newest first',
                },
                'tombstones': {'type': 'array', 'items': _schema('Tombstone')},
                'refusals': {'type': 'array', 'items': _schema('Refusal')},
                'events': {'type': 'array', 'items': _schema('Event')},
                'managers': {
                    'type': 'array',
                    'items': _object({'manager_id': {'type': 'string'}, 'last_seen': TIME}, required=('manager_id', 'last_seen')),
                },
                'servers': {'type': 'integer', 'minimum': 0, 'description': 'how many managed servers the repository knows'},
                'feed_entries': {'type': 'integer', 'minimum': 0},
                'feed': _object(
                    {
                        'feed_url': {'type': 'string'},
                        'catalog_version': {'type': 'string'},
                        'last_access': {'type': 'string'},
                        'catalog_expires': {'type': 'string'},
                        'feed_id': {'type': 'string'},
                    }
                ),
            },
            required=('packages', 'by_component', 'by_model', 'tombstones', 'refusals', 'events', 'managers', 'servers', 'feed_entries', 'feed'),
            description='What exup_package_info returns (Repository.listing).',
        ),
        'Server': _object(
            server_fields,
            required=('name', 'model', 'os'),
            closed=True,
            description='A managed server (repository.server_from_dict); unknown keys are refused.',
        ),
        'ServerRecord': _object(
            server_fields,
            required=('model', 'os'),
            closed=True,
            description='A server whose name is in the path (a name here is ignored).',
        ),
        'BmcModuleRecord': _object(
            {'module_id': {'type': 'string'}, 'previous': NULLABLE_TEXT, 'block': NULLABLE_TEXT, 'staged': NULLABLE_TEXT, 'since': NULLABLE_TEXT},
            required=('module_id', 'previous', 'block', 'staged', 'since'),
            description='What the repository remembers of one module of a server managed through its BMC (wire.bmc_record_as_dict).',
        ),
        'AddResult': _object(
            {
                'file': {'type': 'string'},
                'result': {'enum': ['added', 'error_invalid_package', 'warning_not_needed', 'warning_already_present']},
                'msg': {'type': 'string'},
                'package_id': {'type': 'string'},
                'module_id': {'type': 'string'},
                'version': {'type': 'string'},
                'pinned': {'type': 'boolean'},
                'sha256': SHA256,
                'error': {'type': 'string'},
            },
            required=('file', 'result', 'msg'),
            description='One file of a manual add (003 Tables 13-14).',
        ),
        'Settings': _object(
            {
                'initial_manual_icon': {'enum': MANUAL_ICONS, 'description': 'the icon of a module whose manual package just arrived (003 §3.3)'},
                'download_interval_hours': {'type': 'integer', 'minimum': 0, 'maximum': 744, 'description': 'automatic download every N hours; 0: off'},
                'download_at': {'type': 'string', 'pattern': '^[0-2][0-9]:[0-5][0-9]$', 'description': 'the time (UTC) the slots count from'},
                'notify_webhooks': {'type': 'array', 'items': {'type': 'string'}, 'maxItems': 8, 'description': 'told of new packages (003 §3.4.4)'},
                'proxy_url': {'type': 'string', 'description': "the repository's own downloads go through it; empty: direct"},
                'proxy_username': {'type': 'string'},
                'proxy_auth': {'enum': ['basic', 'digest']},
                **{
                    name: {'type': 'string', 'description': 'whether the secret is set (never its value); a change sets the secret itself'}
                    for name in ('admin_password', 'read_password', 'proxy_password', 'webhook_secret')
                },
            },
            description='Setting name -> value (repository.SETTINGS), and the state of each secret (not set, set, changed).',
        ),
        'DownloadState': _object(
            {
                'download_id': {'type': 'string', 'pattern': '^[0-9a-f]{16}$'},
                'state': {'enum': ['running', 'finished', 'failed']},
                'result': {'type': 'object', 'description': 'finished: what the sync did (SyncResult.as_dict)'},
                'error': {'type': 'string', 'description': 'failed: the code'},
                'msg': {'type': 'string', 'description': 'failed: the message'},
            },
            required=('download_id', 'state'),
        ),
    }


# ----------------------------------------------------------------- answers
#: why each refused status happens; the codes of wire.STATUS_OF are listed per status
STATUS_WHY = {
    400: 'The request is malformed: a parameter, header or body the service cannot use.',
    401: 'No login, or a wrong user name or password.',
    403: 'The user may not do this (read may not write), or nobody may (a package is never deleted through the service).',
    404: 'No such resource.',
    405: 'The path has no such method (starlette refuses it, in the same shape); no operation below answers with it.',
    409: 'The repository is busy (another writer), or a download is already running.',
    413: 'The request body is larger than the service reads.',
    422: 'The repository refused the request: any other stable code (for example server_invalid, setting_invalid, download_unavailable).',
    429: 'Too many failed logins from this address, or across all addresses: wait Retry-After seconds.',
    500: 'A bug of the service: service_failed, never a traceback.',
    503: 'The service cannot answer now.',
}


def _codes_of(status: int) -> list[str]:
    return sorted(code for code, its in wire.STATUS_OF.items() if its == status) + (['service_failed'] if status == 500 else [])


def _responses() -> dict[str, typing.Any]:
    responses: dict[str, typing.Any] = {}
    for status, why in STATUS_WHY.items():
        codes = _codes_of(status)
        text = why + (' Codes: %s.' % ', '.join(codes) if codes else '')
        responses['Error%d' % status] = _json(_schema('Error'), text)
    responses['Error401']['headers'] = {'WWW-Authenticate': {'required': True, 'schema': {'type': 'string', 'pattern': '^Basic '}}}
    responses['Error429']['headers'] = {'Retry-After': {'required': True, 'schema': {'type': 'integer', 'minimum': 0}, 'description': 'seconds'}}
    return responses


def _errors(*statuses: int) -> dict[str, typing.Any]:
    return {str(status): _ref('responses', 'Error%d' % status) for status in statuses}


def _parameters() -> dict[str, typing.Any]:
    return {
        'Manager': {
            'name': 'X-Exup-Manager',
            'in': 'header',
            'required': False,
            'schema': ID,
            'description': "The calling manager's id: every call of a manager counts as its presence (003 §2.2.8).",
        },
        'ManagerId': {'name': 'manager_id', 'in': 'path', 'required': True, 'schema': ID},
        'ServerName': {'name': 'name', 'in': 'path', 'required': True, 'schema': SERVER_NAME, 'description': 'the managed server'},
        'CheckMode': {'name': 'check_mode', 'in': 'query', 'required': False, 'schema': {'type': 'boolean'}},
    }


def _operation(
    role: str | None,
    summary: str,
    answers: dict[str, typing.Any],
    *,
    tag: str,
    operation_id: str,
    statuses: typing.Sequence[int] = (),
    parameters: typing.Sequence[dict[str, typing.Any]] = (),
    body: dict[str, typing.Any] | None = None,
    description: str | None = None,
    guarded: bool = True,
) -> dict[str, typing.Any]:
    """One operation: a role (None: no login), its answers, and the refusals it may meet.

    A guarded operation (app.py's ``guarded``) also reads X-Exup-Manager, the caller's presence: it may meet
    every refusal of a login, of that header and of a write (the presence is one).
    """
    operation: dict[str, typing.Any] = {'operationId': operation_id, 'summary': summary, 'tags': [tag]}
    if description:
        operation['description'] = description
    responses = dict(answers)
    if role is None:
        operation['security'] = []
    else:
        operation['x-exup-role'] = role
    refusals = set(statuses)
    if role is not None and guarded:
        parameters = [_ref('parameters', 'Manager'), *parameters]
        refusals |= {400, 401, 409, 422, 429, 500, 503} | ({403} if role == ADMIN else set()) | ({413} if body else set())
    for status, answer in _errors(*sorted(refusals)).items():
        responses.setdefault(status, answer)  # an answer of the operation's own (a file route's 400) stays
    if parameters:
        operation['parameters'] = list(parameters)
    if body is not None:
        operation['requestBody'] = body
    operation['responses'] = dict(sorted(responses.items()))
    return operation


def _body(schema: JsonSchema, required: bool = False, description: str | None = None) -> dict[str, typing.Any]:
    result: dict[str, typing.Any] = {'required': required, 'content': {'application/json': {'schema': schema}}}
    if description:
        result['description'] = description
    return result


def _query(name: str, schema: JsonSchema, required: bool = False, description: str | None = None) -> dict[str, typing.Any]:
    result = {'name': name, 'in': 'query', 'required': required, 'schema': schema}
    if description:
        result['description'] = description
    return result


def _path(name: str, schema: JsonSchema) -> dict[str, typing.Any]:
    return {'name': name, 'in': 'path', 'required': True, 'schema': schema}


ETAG_HEADER = {'required': True, 'schema': {'type': 'string', 'pattern': '^"sha256-[0-9a-f]{64}"$'}, 'description': 'wire.etag_of: the SHA-256 of the bytes'}
TEXT_BODY = {'text/plain': {'schema': {'type': 'string'}}}
FILE_PARAMETERS = [
    {'name': 'If-None-Match', 'in': 'header', 'required': False, 'schema': {'type': 'string'}, 'description': 'ETags the client holds: 304 when one is this'},
    {
        'name': 'Range',
        'in': 'header',
        'required': False,
        'schema': {'type': 'string', 'pattern': '^bytes=[0-9]{0,9}-[0-9]{0,9}$'},
        'description': 'bytes=FIRST-LAST (resuming a download)',
    },
    {'name': 'If-Range', 'in': 'header', 'required': False, 'schema': {'type': 'string'}, 'description': 'the ETag the resumed copy had'},
]


def _file_answers(cache_control: str | dict[str, typing.Any], what: str, range_errors_json: bool) -> dict[str, typing.Any]:
    """The answers of a file route (starlette's FileResponse): 200, Range's 206, 400 and 416, If-None-Match's 304.

    ``cache_control``: the header's one value, or the schema of its values.
    """
    cache = {'required': True, 'schema': {'const': cache_control} if isinstance(cache_control, str) else cache_control}
    headers = {
        'ETag': ETAG_HEADER,
        'Cache-Control': cache,
        'Accept-Ranges': {'required': True, 'schema': {'const': 'bytes'}},
        'Content-Length': {'required': True, 'schema': {'type': 'integer', 'minimum': 0}},
        'X-Content-Type-Options': {'required': True, 'schema': {'const': 'nosniff'}},
    }
    zip_body = {'application/zip': {'schema': {'type': 'string', 'contentMediaType': 'application/zip'}}}
    bad_range = 'A Range header the server cannot parse (text/plain, from starlette)'
    return {
        '200': {'description': what, 'headers': headers, 'content': zip_body},
        '206': {
            'description': 'The bytes of the Range asked for (several ranges: multipart/byteranges).',
            'headers': dict(headers, **{'Content-Range': {'required': True, 'schema': {'type': 'string', 'pattern': '^bytes '}}}),
            'content': dict(zip_body, **{'multipart/byteranges': {'schema': {'type': 'string'}}}),
        },
        '304': {
            'description': 'If-None-Match named this ETag (or *): the copy the client has is this file.',
            'headers': {'ETag': ETAG_HEADER, 'Cache-Control': cache},
        },
        '400': (
            {
                'description': bad_range + ', or a bad X-Exup-Manager (JSON error).',
                'content': dict(TEXT_BODY, **{'application/json': {'schema': _schema('Error')}}),
            }
            if range_errors_json
            else {'description': bad_range + '.', 'content': TEXT_BODY}
        ),
        '416': {
            'description': 'The Range starts past the end of the file (text/plain, from starlette).',
            'headers': {'Content-Range': {'required': True, 'schema': {'type': 'string', 'pattern': '^bytes \\*/[0-9]+$'}}},
            'content': TEXT_BODY,
        },
    }


def _get_and_head(summary: str, operation_id: str, answers: dict[str, typing.Any], **options: typing.Any) -> dict[str, typing.Any]:
    """GET and HEAD of one file route (HEAD: the same headers, no body)."""
    return {
        'get': _operation(READ, summary, answers, operation_id='get' + operation_id, **options),  # pylint: disable=missing-kwoa  # tag is in options
        'head': _operation(  # pylint: disable=missing-kwoa
            READ, summary + ': its headers only (size, ETag)', answers, operation_id='head' + operation_id, **options
        ),
    }


def _pool() -> dict[str, typing.Any]:
    """GET and HEAD of a package file: content-addressed and immutable, so any HTTP cache or CDN may keep it."""
    description = (
        'The file of a stored package, by the SHA-256 of its bytes (StoredPackage.url): the same bytes always have the same URL. '
        'A digest that is no stored file is 404 (a malformed one even before the login is looked at). '
        'Cache-Control is private when asked with a login and public for the rest of the ticket\'s life when asked with a ticket. '
        'Log in as read, or present a pool ticket (POST /v1/pool/tickets): the query expires=...&ticket=... of a signed URL, no password. '
        'This route does not read X-Exup-Manager.'
    )
    operations = _get_and_head(
        'A package file',
        'PoolFile',
        _file_answers(
            {
                'type': 'string',
                'pattern': '^%s$' % wire.POOL_CACHE_CONTROL.pattern,
                'description': 'private when asked with a login (no shared cache may answer others with it), public for the rest of a ticket',
            },
            'The package file.',
            range_errors_json=False,
        ),
        tag='packages',
        statuses=(401, 403, 404, 429, 500),
        parameters=[
            _path('digest', SHA256),
            *FILE_PARAMETERS,
            _query('expires', {'type': 'string', 'pattern': '^[0-9]{1,12}$'}, description='with ticket: the UNIX time the ticket ends'),
        ],
        description=description,
        guarded=False,
    )
    for operation in operations.values():
        operation['security'] = [{'basic': []}, {'poolTicket': []}]
    return operations


def _feed() -> dict[str, typing.Any]:
    """The feed view (service/feed.py): what a chained repository syncs from instead of the vendor (003 §1.3, Fig. 5)."""
    catalog_headers = {
        'ETag': ETAG_HEADER,
        'Cache-Control': {'required': True, 'schema': {'const': 'no-cache'}},
        'X-Content-Type-Options': {'required': True, 'schema': {'const': 'nosniff'}},
    }
    catalog_answers = {
        '200': {
            'description': 'The last complete catalog this repository verified, byte for byte as the vendor signed it (docs/feed-format.md).',
            'headers': catalog_headers,
            'content': {'application/json': {'schema': {'type': 'object'}}},
        },
        '304': {'description': 'If-None-Match named this ETag (or *).', 'headers': {'ETag': ETAG_HEADER, 'Cache-Control': catalog_headers['Cache-Control']}},
    }
    not_modified = [FILE_PARAMETERS[0]]
    return {
        FEED_CATALOG_PATH: _get_and_head(
            'The catalog of the feed view',
            'FeedCatalog',
            catalog_answers,
            tag='feed',
            statuses=(404,),
            parameters=not_modified,
            description='404 not_found until the repository kept a verified catalog (at its next download from its feed). A query (since) is ignored.',
        ),
        FEED_PREFIX + '{path}': _get_and_head(
            'A package file of the feed view',
            'FeedFile',
            _file_answers('no-cache', 'The package file the kept catalog names at this url.', range_errors_json=True),
            tag='feed',
            statuses=(404,),
            parameters=[
                {
                    'name': 'path',
                    'in': 'path',
                    'required': True,
                    'schema': {'type': 'string', 'minLength': 1},
                    'description': 'the url of a catalog entry, relative to the catalog as on the vendor server: it may hold "/"',
                },
                *FILE_PARAMETERS,
            ],
            description='404 not_found when the kept catalog names no file at this url or the pool does not hold it. Not immutable: '
            'a later catalog may name other bytes at the same url.',
        ),
    }


RESULTS = {'type': 'array', 'items': {'type': 'object'}}


def _paths() -> dict[str, typing.Any]:
    ok = _json
    manager, server = _ref('parameters', 'ManagerId'), _ref('parameters', 'ServerName')
    on_server = (manager, server)
    check_mode_body = _body(_object({'check_mode': CHECK_MODE}))
    return {
        OPENAPI_PATH: {
            'get': _operation(
                None,
                'This description',
                {'200': ok({'type': 'object'}, 'The OpenAPI 3.1 description of this service.')},
                tag='service',
                operation_id='getOpenapi',
            )
        },
        '/v1/about': {
            'get': _operation(
                READ,
                'Who answers: the service, its API version and features',
                {'200': ok(_schema('About'), 'The service.')},
                tag='service',
                operation_id='getAbout',
                description='A caller newer than the service uses only the features of its api_version (003 §1.3, Fig. 3).',
            )
        },
        '/v1/pool/sha256/{digest}.zip': _pool(),
        **_feed(),
        '/v1/pool/tickets': {
            'post': _operation(
                READ,
                'Signed URLs of package files, for a BMC or host that has no password',
                {
                    '200': ok(
                        _object(
                            {
                                'urls': {
                                    'type': 'object',
                                    'additionalProperties': {
                                        'type': 'string',
                                        'pattern': '^/v1/pool/sha256/[0-9a-f]{64}\\.zip\\?expires=[0-9]+&ticket=[0-9a-f]{64}$',
                                    },
                                    'description': 'digest -> the path and query of its file',
                                },
                                'expires': {'type': 'integer', 'description': 'UNIX time the tickets end'},
                            },
                            required=('urls', 'expires'),
                        ),
                        'Each URL fetches its one file, and nothing else, until expires.',
                    )
                },
                tag='packages',
                operation_id='poolTickets',
                body=_body(
                    _object(
                        {
                            'sha256': {'type': 'array', 'minItems': 1, 'maxItems': 1000, 'items': SHA256},
                            'seconds': {'type': 'integer', 'minimum': 1, 'maximum': wire.TICKET_MAX_SECONDS, 'default': 3600},
                        },
                        required=('sha256',),
                    ),
                    required=True,
                    description='A ticket is made for any digest: one that is no stored file is 404 when fetched.',
                ),
            )
        },
        '/v1/packages': {
            'get': _operation(
                READ,
                'The stored packages',
                {'200': ok(_schema('Packages'), 'Every stored package, of module_id only when given.')},
                tag='packages',
                operation_id='listPackages',
                parameters=[_query('module_id', ID)],
            ),
            'post': _operation(
                ADMIN,
                'Add uploaded package files (manual add, 003 §2.2.3)',
                {'200': ok(_object({'results': {'type': 'array', 'items': _schema('AddResult')}}, required=('results',)), 'One result per file.')},
                tag='packages',
                operation_id='addPackages',
                body=_body(
                    _object(
                        {
                            'uploads': {'type': 'array', 'minItems': 1, 'items': {'type': 'string', 'pattern': '^[0-9a-f]{16}$'}},
                            'mode': {'enum': ['needed', 'pinned'], 'default': 'needed', 'description': 'another is 422 argument_invalid'},
                            'trusted_keys': dict(STRINGS, description="PEM public keys to verify with (none: the service's trusted_keys)"),
                            'check_mode': CHECK_MODE,
                        },
                        required=('uploads',),
                    ),
                    required=True,
                    description='upload_id of files POSTed to /v1/uploads; each upload is used once (removed after the add).',
                ),
            ),
        },
        '/v1/packages/for': {
            'get': _operation(
                READ,
                "The stored packages for a server's model and OS",
                {'200': ok(_schema('Packages'), 'Compatible or not; with keys=given, only those signed by one of key_id.')},
                tag='packages',
                operation_id='packagesFor',
                parameters=[
                    _query('model', TEXT, required=True),
                    _query('os', TEXT, required=True),
                    _query('keys', {'enum': ['given']}, description='given: only packages signed by a key_id below (none given: none)'),
                    dict(_query('key_id', STRINGS), style='form', explode=True),
                ],
            )
        },
        '/v1/packages/{package_id}': {
            'delete': _operation(
                READ,
                'Refused: nobody deletes a package through the service',
                {},
                tag='packages',
                operation_id='deletePackage',
                statuses=(403,),
                parameters=[_path('package_id', ID)],
                description='Always 403 remote_delete_refused (003 §3.6): delete packages on the repository host itself.',
            )
        },
        '/v1/uploads': {
            'post': _operation(
                ADMIN,
                'Upload one package file for a later add',
                {
                    '201': ok(
                        _object(
                            {
                                'upload_id': {'type': 'string', 'pattern': '^[0-9a-f]{16}$'},
                                'file': {'type': 'string'},
                                'size': {'type': 'integer', 'minimum': 0},
                            },
                            required=('upload_id', 'file', 'size'),
                        ),
                        'Kept until an add uses it.',
                    )
                },
                tag='packages',
                operation_id='uploadPackage',
                parameters=[
                    {
                        'name': 'X-Exup-File-Name',
                        'in': 'header',
                        'required': False,
                        'schema': dict(TEXT, default='package.zip'),
                        'description': 'the file name (its last path element is kept)',
                    }
                ],
                body={
                    'required': True,
                    'description': 'The bytes of the package (at most %d).' % wire.MAX_UPLOAD_BYTES,
                    'content': {'application/octet-stream': {'schema': {'type': 'string', 'contentMediaType': 'application/octet-stream'}}},
                },
            )
        },
        '/v1/tombstones': {
            'get': _operation(
                READ,
                'The deletion history',
                {'200': ok(_object({'tombstones': {'type': 'array', 'items': _schema('Tombstone')}}, required=('tombstones',)), 'By package id.')},
                tag='packages',
                operation_id='listTombstones',
            )
        },
        '/v1/tombstones/clear': {
            'post': _operation(
                ADMIN,
                'Clear the deletion history (003 §2.2.5)',
                {'200': ok(_object({'cleared': STRINGS}, required=('cleared',)), 'The package ids cleared.')},
                tag='packages',
                operation_id='clearTombstones',
                body=check_mode_body,
            )
        },
        '/v1/refusals/clear': {
            'post': _operation(
                ADMIN,
                'Forget remembered refusals so the next sync tries them again',
                {'200': ok(_object({'cleared': {'type': 'array', 'items': _schema('Refusal')}}, required=('cleared',)), 'The refusals cleared.')},
                tag='packages',
                operation_id='clearRefusals',
                body=_body(_object({'package_ids': {'type': ['array', 'null'], 'items': {'type': 'string'}, 'maxItems': 10000}, 'check_mode': CHECK_MODE})),
            )
        },
        '/v1/exports': {
            'post': _operation(
                ADMIN,
                'Save packages as one archive (003 §2.2.6), built on the repository host',
                {
                    '200': ok(_object({'results': {'type': 'array', 'items': {'type': 'object'}}}, required=('results',)), 'Check mode: what it would hold.'),
                    '201': ok(
                        _object(
                            {
                                'export_id': {'type': 'string', 'pattern': '^[0-9a-f]{16}$'},
                                'size': {'type': 'integer', 'minimum': 0},
                                'results': {'type': 'array'},
                            },
                            required=('export_id', 'size', 'results'),
                        ),
                        'Built: fetch /v1/exports/{export_id}.zip, then DELETE /v1/exports/{export_id} (else it goes after an hour).',
                    ),
                },
                tag='packages',
                operation_id='makeExport',
                body=_body(
                    _object(
                        {
                            'package_ids': {'type': 'array', 'items': {'type': 'string'}, 'maxItems': 10000},
                            'module_ids': {'type': 'array', 'items': {'type': 'string'}, 'maxItems': 10000},
                            'models': {'type': 'array', 'items': {'type': 'string'}, 'maxItems': 10000},
                            'displayed_only': {'type': 'boolean'},
                            'check_mode': CHECK_MODE,
                        }
                    )
                ),
            )
        },
        '/v1/exports/{export_id}.zip': {
            'get': _operation(
                ADMIN,
                'The archive built by POST /v1/exports',
                {
                    '200': {'description': 'The archive (packages/, index.html, css/).', 'content': {'application/zip': {'schema': {'type': 'string'}}}},
                    '206': {'description': 'The bytes of the Range asked for.', 'content': {'application/zip': {'schema': {'type': 'string'}}}},
                    '416': {'description': 'A Range past the end (text/plain, from starlette).', 'content': TEXT_BODY},
                },
                tag='packages',
                operation_id='getExport',
                parameters=[_path('export_id', {'type': 'string'})],
                statuses=(404,),
            )
        },
        '/v1/exports/{export_id}': {
            'delete': _operation(
                ADMIN,
                'Remove a fetched archive',
                {'200': ok(_object({'deleted': {'const': True}}, required=('deleted',)), 'Removed.')},
                tag='packages',
                operation_id='deleteExport',
                parameters=[_path('export_id', {'type': 'string'})],
                statuses=(404,),
            )
        },
        '/v1/rebuild': {
            'post': _operation(
                ADMIN,
                'Rebuild a missing, damaged or lost index from the pool (003 §4.4), every file verified again',
                {
                    '200': ok(
                        _object({'changed': {'type': 'boolean'}, 'packages': {'type': 'array'}}, required=('changed',)),
                        'What exup_package state=rebuilt returns.',
                    )
                },
                tag='packages',
                operation_id='rebuildIndex',
                body=_body(_object({'trusted_keys': {'type': 'array', 'items': {'type': 'string'}, 'maxItems': 64}, 'check_mode': CHECK_MODE})),
            )
        },
        '/v1/listing': {
            'get': _operation(
                READ,
                'What exup_package_info returns',
                {'200': ok(_schema('Listing'), 'Packages with their flags, by component and by model, tombstones, events, managers, feed.')},
                tag='packages',
                operation_id='getListing',
                parameters=[
                    _query('manager_id', ID, required=True, description='the manager the flags are for (used_by_other_manager)'),
                    _query('event_limit', {'type': 'integer', 'minimum': 0, 'maximum': 10000, 'default': 100}, description='the newest events'),
                    dict(_query('module_id', STRINGS, description='only these modules'), style='form', explode=True),
                    dict(_query('model', STRINGS, description='only these models'), style='form', explode=True),
                ],
            )
        },
        '/v1/servers': {
            'get': _operation(
                READ,
                'The registered servers of every manager, a page at a time (the inventory plugin exup.fleet.exup)',
                {
                    '200': ok(
                        _object(
                            {
                                'servers': {
                                    'type': 'array',
                                    'items': _object(
                                        {
                                            'manager_id': ID,
                                            'name': {'type': 'string'},
                                            'model': {'type': 'string'},
                                            'os': {'type': 'string'},
                                            'modules': {
                                                'type': 'object',
                                                'additionalProperties': _object({'current': {'type': 'string'}, 'previous': {'type': 'string'}}),
                                            },
                                            'read_at': {
                                                'type': ['string', 'null'],
                                                'description': 'when exup_info last read and registered the versions (UTC, ISO 8601 with Z as stored); '
                                                'null: never read (declared servers); API 3',
                                            },
                                        },
                                        required=('manager_id', 'name', 'model', 'os', 'modules'),
                                    ),
                                },
                                'bmc_modules': {
                                    'type': 'array',
                                    'items': {
                                        'allOf': [
                                            _schema('BmcModuleRecord'),
                                            _object({'manager_id': ID, 'server': {'type': 'string'}}, required=('manager_id', 'server')),
                                        ]
                                    },
                                },
                                'manual_icons': {
                                    'type': 'array',
                                    'items': _object(
                                        {'manager_id': ID, 'server': {'type': 'string'}, 'module_id': ID, 'icon': {'enum': MANUAL_ICONS}, 'set_at': TIME},
                                        required=('manager_id', 'server', 'module_id', 'icon', 'set_at'),
                                    ),
                                },
                                'initial_icons': {
                                    'type': 'array',
                                    'items': _object({'changed_at': {'type': 'string'}, 'icon': {'enum': MANUAL_ICONS}}, required=('changed_at', 'icon')),
                                    'description': "the setting initial_manual_icon through time, oldest first; its default first, changed_at ''",
                                },
                                'next': {
                                    'oneOf': [{'type': 'null'}, _object({'manager_id': ID, 'name': {'type': 'string'}}, required=('manager_id', 'name'))],
                                    'description': 'pass as after_manager and after_name for the next page; null: the last page',
                                },
                            },
                            required=('servers', 'bmc_modules', 'manual_icons', 'initial_icons', 'next'),
                        ),
                        'Servers in (manager_id, name) order with the BMC records and the Table 9 icons chosen for them.',
                    )
                },
                tag='servers',
                operation_id='listServers',
                parameters=[
                    _query(
                        'limit', {'type': 'integer', 'minimum': 1, 'maximum': wire.FLEET_PAGE_MAX, 'default': wire.FLEET_PAGE}, description='servers per page'
                    ),
                    _query('after_manager', ID, description='with after_name: the page after this server'),
                    _query('after_name', SERVER_NAME, description='with after_manager'),
                ],
            )
        },
        '/v1/managers/{manager_id}/presence': {
            'post': _operation(
                ADMIN,
                "A remote manager's presence report, with its servers (its needs) when given",
                {
                    '200': ok(
                        _object({'manager_id': {'type': 'string'}, 'expired': STRINGS}, required=('manager_id', 'expired')),
                        'The managers whose presence expired (forgotten with their servers).',
                    )
                },
                tag='managers',
                operation_id='reportPresence',
                parameters=[manager],
                body=_body(
                    _object({'servers': {'type': ['array', 'null'], 'items': _schema('Server'), 'description': 'all its servers; null or absent: unchanged'}})
                ),
            )
        },
        '/v1/managers/{manager_id}/servers/{name}': {
            'put': _operation(
                ADMIN,
                'Record one server of a manager',
                {'200': ok(_object({'changed': {'type': 'boolean'}}, required=('changed',)), 'Whether its record changed.')},
                tag='managers',
                operation_id='recordServer',
                parameters=on_server,
                body=_body(_schema('ServerRecord'), required=True),
            ),
            'delete': _operation(
                ADMIN,
                'Forget a server whose agent was removed',
                {'200': ok(_object({'known': {'type': 'boolean'}}, required=('known',)), 'Whether it was known.')},
                tag='managers',
                operation_id='forgetServer',
                parameters=[*on_server, _query('cause', dict(TEXT, maxLength=2000), description='why, for the log')],
            ),
        },
        '/v1/managers/{manager_id}/servers/{name}/differs': {
            'post': _operation(
                ADMIN,
                'Would recording this server change its record? (check mode)',
                {'200': ok(_object({'differs': {'type': 'boolean'}}, required=('differs',)), 'True when PUT would change the record.')},
                tag='managers',
                operation_id='serverDiffers',
                parameters=on_server,
                body=_body(_schema('ServerRecord'), required=True),
            )
        },
        '/v1/managers/{manager_id}/servers/{name}/bmc-modules': {
            'get': _operation(
                ADMIN,
                'What the repository remembers of the modules of a server managed through its BMC',
                {
                    '200': ok(
                        _object({'modules': {'type': 'object', 'additionalProperties': _schema('BmcModuleRecord')}}, required=('modules',)),
                        'module id -> record.',
                    )
                },
                tag='servers',
                operation_id='bmcModules',
                parameters=on_server,
            )
        },
        '/v1/managers/{manager_id}/servers/{name}/bmc-modules/{module_id}': {
            'patch': _operation(
                ADMIN,
                "Change fields of one module's BMC record",
                {'200': ok(_object({'module_id': {'type': 'string'}}, required=('module_id',)), 'Changed.')},
                tag='servers',
                operation_id='setBmcModule',
                parameters=[*on_server, _path('module_id', ID)],
                body=_body(
                    _object({'previous': NULLABLE_TEXT, 'block': NULLABLE_TEXT, 'staged': NULLABLE_TEXT}, closed=True),
                    description='Only the fields given change; other keys are refused.',
                ),
            )
        },
        '/v1/managers/{manager_id}/servers/{name}/icons': {
            'post': _operation(
                ADMIN,
                'The Table 9 icons of the modules whose packages are not auto-update on this path',
                {'200': ok(_object({'icons': {'type': 'object', 'additionalProperties': {'enum': MANUAL_ICONS}}}, required=('icons',)), 'module id -> icon.')},
                tag='servers',
                operation_id='statusIcons',
                parameters=on_server,
                body=_body(
                    _object(
                        {
                            'infos': {'type': 'array', 'items': _schema('PackageInfo'), 'description': "the server's packages"},
                            'kinds': dict(STRINGS, default=['linux'], description='the package kinds this path applies automatically'),
                        },
                        required=('infos',),
                    ),
                    required=True,
                ),
            ),
            'put': _operation(
                ADMIN,
                'Set the Table 9 icon of modules of one server',
                {
                    '200': ok(
                        _object(
                            {
                                'results': {
                                    'type': 'array',
                                    'items': _object(
                                        {'module_id': {'type': 'string'}, 'before': {'type': ['string', 'null']}, 'after': {'enum': MANUAL_ICONS}},
                                        required=('module_id', 'before', 'after'),
                                    ),
                                }
                            },
                            required=('results',),
                        ),
                        'One row per module.',
                    )
                },
                tag='servers',
                operation_id='setIcons',
                parameters=on_server,
                body=_body(
                    _object(
                        {'module_ids': dict(STRINGS, maxItems=10000), 'icon': {'enum': MANUAL_ICONS}, 'check_mode': CHECK_MODE}, required=('module_ids', 'icon')
                    ),
                    required=True,
                    description='module_ids of 003 Table 6 (package.MODULE_KINDS); an unknown one is 422 unknown_module.',
                ),
            ),
        },
        '/v1/managers/{manager_id}/servers/{name}/restarting': {
            'get': _operation(
                ADMIN,
                'The modules a restart under way is for (Table 8 "rebooting")',
                {'200': ok(_object({'modules': STRINGS}, required=('modules',)), 'Empty when no restart is under way.')},
                tag='servers',
                operation_id='restarting',
                parameters=[
                    *on_server,
                    _query('boot_id', {'type': 'string'}, description='the boot id the server runs now (agent path)'),
                    _query('power', {'type': 'string'}, description='the power state its BMC reports (BMC path): on ends the restart'),
                ],
            )
        },
        '/v1/managers/{manager_id}/servers/{name}/reboots': {
            'post': _operation(
                ADMIN,
                'Record a restart exup allowed or did',
                {'200': ok(_object({'recorded': {'const': True}}, required=('recorded',)), 'Recorded.')},
                tag='servers',
                operation_id='requestReboot',
                parameters=on_server,
                body=_body(
                    _object(
                        {
                            'modules': dict(STRINGS, maxItems=10000),
                            'boot_id': {'type': ['string', 'null'], 'description': 'the boot id before the restart (agent path)'},
                            'seconds': {'type': 'integer', 'minimum': 1, 'maximum': 86400, 'default': 3600, 'description': 'how long the restart may take'},
                        }
                    )
                ),
            )
        },
        '/v1/settings': {
            'get': _operation(
                ADMIN,
                "The repository's settings",
                {'200': ok(_object({'settings': _schema('Settings')}, required=('settings',)), 'Reading them leaves settings_read (not in check mode).')},
                tag='settings',
                operation_id='readSettings',
                parameters=[_ref('parameters', 'CheckMode')],
            ),
            'patch': _operation(
                ADMIN,
                'Change settings',
                {'200': ok(_object({'before': _schema('Settings'), 'settings': _schema('Settings')}, required=('before', 'settings')), 'Before and after.')},
                tag='settings',
                operation_id='changeSettings',
                body=_body(
                    _object({'settings': _schema('Settings'), 'check_mode': CHECK_MODE}, required=('settings',)),
                    required=True,
                    description='An unknown setting or value changes nothing: 422 setting_invalid.',
                ),
            ),
        },
        '/v1/events': {
            'get': _operation(
                READ,
                'The newest events of the log (the maintenance window estimate of exup_apply reads them; API version 4)',
                {'200': ok(_object({'events': {'type': 'array', 'items': _schema('Event')}}, required=('events',)), 'Newest first, each with its id.')},
                tag='events',
                operation_id='readEvents',
                parameters=[
                    _query('limit', {'type': 'integer', 'minimum': 1, 'maximum': wire.EVENTS_MAX, 'default': 100}, description='the newest events, at most'),
                    _query('server', TEXT, description='only the events whose detail names this server'),
                ],
            ),
            'post': _operation(
                ADMIN,
                'Write events into the log',
                {'200': ok(_object({'events': {'type': 'array', 'items': _schema('Event')}}, required=('events',)), 'The events with their time.')},
                tag='events',
                operation_id='logEvents',
                body=_body(_object({'events': {'type': 'array', 'maxItems': 1000, 'items': _schema('EventIn')}}, required=('events',)), required=True),
            ),
        },
        '/v1/jobs/{job_id}/reported': {
            'get': _operation(
                ADMIN,
                'Does the log hold an outcome of this host job?',
                {'200': ok(_object({'reported': {'type': 'boolean'}}, required=('reported',)), 'True when an event other than a start names the job.')},
                tag='events',
                operation_id='jobReported',
                parameters=[_path('job_id', ID)],
            )
        },
        '/v1/downloads': {
            'post': _operation(
                ADMIN,
                'Download now from the vendor feed (003 §3.4.2)',
                {'202': ok(_schema('DownloadState'), 'Started: poll /v1/downloads/{download_id}.')},
                tag='downloads',
                operation_id='startDownload',
                body=_body(
                    _object(
                        {
                            'manager_id': ID,
                            'servers': {'type': ['array', 'null'], 'items': _schema('Server')},
                            'check_mode': CHECK_MODE,
                            'accept_version_reset': FLAG,
                        },
                        required=('manager_id',),
                    ),
                    required=True,
                    description='A service configured without feed_url answers 422 download_unavailable.',
                ),
            )
        },
        '/v1/downloads/{download_id}': {
            'get': _operation(
                ADMIN,
                'The state of a download',
                {'200': ok(_schema('DownloadState'), 'running, finished (with its result) or failed (with its error).')},
                tag='downloads',
                operation_id='downloadState',
                statuses=(404,),
                parameters=[_path('download_id', {'type': 'string', 'pattern': '^[0-9a-f]{16}$'})],
            )
        },
    }


def description(collection_version: str) -> dict[str, typing.Any]:
    """The OpenAPI 3.1 document of the service (a new dict each call)."""
    return {
        'openapi': '3.1.0',
        'info': {
            'title': wire.SERVICE,
            'version': '%d' % wire.API_VERSION,
            'summary': 'The exup.fleet repository service: packages, managed servers and the log of one repository, for remote managers and hosts.',
            'description': (
                'API version %d, served by exup.fleet %s. Every refusal is a JSON object {error, msg} with a stable code; '
                'docs/service-api.md lists the codes and their statuses. Log in with HTTP Basic as read (GET) or admin (everything); '
                'x-exup-role of each operation names the user it needs.' % (wire.API_VERSION, collection_version)
            ),
            'license': {'name': 'GPL-3.0-or-later', 'identifier': 'GPL-3.0-or-later'},
        },
        'security': [{'basic': []}],
        'tags': [{'name': name} for name in ('service', 'packages', 'feed', 'managers', 'servers', 'settings', 'events', 'downloads')],
        'paths': _paths(),
        'components': {
            'securitySchemes': {
                'basic': {
                    'type': 'http',
                    'scheme': 'basic',
                    'description': 'Users read (GET only) and admin (everything). There is no default password: the repository settings set them.',
                },
                'poolTicket': {
                    'type': 'apiKey',
                    'in': 'query',
                    'name': 'ticket',
                    'description': 'A pool ticket with its expires (POST /v1/pool/tickets): fetches one package file until then.',
                },
            },
            'schemas': _schemas(),
            'responses': _responses(),
            'parameters': _parameters(),
        },
    }
