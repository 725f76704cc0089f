# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service: a starlette ASGI app over ``Repository``, served by granian (``service/main.py``).

A thin face: it checks credentials (``auth.py``), reads bounded bodies, calls the repository's
operations in a thread (each is one read or one writer session) and answers JSON in the records of
``wire.py``. Package files are content-addressed and immutable: ETag, Range and caching headers let
any HTTP cache or CDN sit in front (docs/architecture.md says why starlette on granian).

Who may do what: ``read`` (managed hosts, BMCs, readers) may GET; ``admin`` (managers) may also
write. Nobody may delete a package through the service (003 §3.6): that is the repository host's own
manager's, on its local path.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import stat
import threading
import time
import typing

from ansible_collections.exup.fleet.plugins.module_utils._exup import events
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth, openapi, wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.feed import routes as feed_routes  # chained repositories (CHAIN)

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    HAS_STARLETTE = True
    STARLETTE_IMPORT_ERROR = None
except ImportError as exc:  # the service's host needs it; nothing else does
    HAS_STARLETTE = False
    STARLETTE_IMPORT_ERROR = exc

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
    from ansible_collections.exup.fleet.plugins.module_utils._exup.service.config import ServiceConfig

COLLECTION_VERSION = '0.1.0'
PRESENCE_WAIT_SECONDS = 0.2  # how long a presence write waits for the writer lock before it is left for the next call
PRESENCE_EVERY_SECONDS = 60  # a manager's calls count as presence (003 §2.2.8); one write a minute is enough
UPLOAD_LIFETIME_SECONDS = 3600  # uploads never added, and archives never fetched, are removed after it
EXPORT_NAME = 'packages.zip'
DOWNLOAD_STATE_SECONDS = 86400
TICKET_KEY_FILE = 'service-ticket-key'  # in the store, 0600: signs pool tickets; every worker reads the same


def ticket_key(path: str) -> bytes:
    """The key of pool tickets: made once (the first worker to start wins the exclusive create), then read."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(handle, 'wb') as out:
            out.write(secrets.token_bytes(32))
    for attempt in range(50):  # another worker may be between its create and its write
        with open(path, 'rb') as handle_in:
            key = handle_in.read()
        if len(key) == 32:
            return key
        time.sleep(0.01 * (attempt + 1))
    raise ExupError('the pool ticket key %s is damaged: remove it and restart the service' % path, code='config_invalid')


class Service:
    """What every request handler needs: the repository, the credentials and the configuration."""

    def __init__(self, config: ServiceConfig, repository: Repository, authenticator: auth.Authenticator) -> None:
        self.config = config
        self.repository = repository
        self.authenticator = authenticator
        self.credentials_mtime = _mtime(config.credentials_path)
        self.presence_seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # set when the app shuts down: a download in flight stops
        self.downloads = Downloads(self)
        self.ticket_key = ticket_key(os.path.join(config.store, TICKET_KEY_FILE))

    # ----------------------------------------------------------------- credentials
    def refresh_credentials(self) -> None:
        """A password changed by another worker or by the settings module takes effect at the next request."""
        mtime = _mtime(self.config.credentials_path)
        if mtime != self.credentials_mtime:
            with self.lock:
                self.authenticator.replace(load_credentials(self.config.credentials_path))
                self.credentials_mtime = mtime

    def role(self, request: Request, needed: str, cached_only: bool = False) -> str | None:
        """The request's role, or its refusal raised. With ``cached_only`` (in the event loop), None when only Argon2
        could tell: the caller asks again in a thread, where a verification stalls no other request."""
        self.refresh_credentials()
        client = request.client.host if request.client else '-'
        header = request.headers.get('authorization')
        result = self.authenticator.cached_role(header, client) if cached_only else self.authenticator.role_for(header, client)
        if result is None:
            return None
        if not result.ok:
            raise result.error()
        if not result.allows(needed):
            raise auth.forbidden(str(result.role), needed)
        return str(result.role)

    def presence(self, manager_id: str | None) -> None:
        """Every call of a manager counts as its presence (003 §2.2.8), written at most once a minute per worker."""
        if not manager_id:
            return
        now = time.monotonic()
        with self.lock:
            if now - self.presence_seen.get(manager_id, -PRESENCE_EVERY_SECONDS) < PRESENCE_EVERY_SECONDS:
                return
            self.presence_seen[manager_id] = now
        try:
            # best effort: a sync holds the writer lock for its whole download, and a manager's call must not wait for it
            self.repository.note_presence(_id(manager_id, 'manager id'), wait_seconds=PRESENCE_WAIT_SECONDS)
        except ExupError as exc:
            if exc.code != 'repository_busy':
                raise
            with self.lock:
                self.presence_seen.pop(manager_id, None)  # the next call tries again


class Downloads:
    """ "Download now" (003 §3.4.2): the repository's side downloads; the state is a file, so any worker can answer a poll."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.folder = os.path.join(service.config.store, 'service', 'downloads')

    def start(self, manager_id: str, servers: list | None, check_mode: bool, accept_version_reset: bool) -> dict:
        config = self.service.config
        if not config.feed_url:
            raise ExupError('this repository service has no feed_url: it cannot download (its configuration names none)', code='download_unavailable')
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        download_id = secrets.token_hex(8)
        sweep_stale(self.folder, time.time(), DOWNLOAD_STATE_SECONDS)  # states no poller asked for in a day
        # the pid: a poll that finds this worker gone answers download_lost, not "running" until the poller's limit
        self._write(download_id, {'download_id': download_id, 'state': 'running', 'pid': os.getpid()})
        thread = threading.Thread(target=self._run, args=(download_id, manager_id, servers, check_mode, accept_version_reset), daemon=True)
        thread.start()
        return {'download_id': download_id, 'state': 'running'}

    def _run(self, download_id: str, manager_id: str, servers: list | None, check_mode: bool, accept_version_reset: bool) -> None:
        """The download, as a scheduled one runs (scheduler.prepared_sync): cancelled when the service stops, and new
        packages announced (packages_arrived, webhooks: 003 §3.4.4)."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import code_digest
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service import scheduler

        repo = self.service.repository
        try:
            sync = scheduler.prepared_sync(repo, self.service.config, manager_id, self.service.stopping, servers, accept_version_reset)
            if not check_mode:
                code_digest()  # as Repository.sync does: the sources that run
            result = sync.run(check_mode)
            state = {'download_id': download_id, 'state': 'finished', 'result': dict(result.as_dict(), changed=result.changed)}
            if result.added and not check_mode:
                announce = functools.partial(scheduler.log_event, repo)
                scheduler.announce_arrivals(repo, result, announce, self.service.stopping, scheduler.WEBHOOK_TIMEOUT)
        except scheduler.RunCancelled:
            state = {'download_id': download_id, 'state': 'failed', 'error': 'download_cancelled', 'msg': 'the repository service stopped during the download'}
        except ExupError as exc:
            state = {'download_id': download_id, 'state': 'failed', 'error': exc.code, 'msg': exc.msg}
        except Exception as exc:  # pylint: disable=broad-except  # the poller must learn the end, whatever it was
            state = {'download_id': download_id, 'state': 'failed', 'error': 'service_failed', 'msg': '%s: %s' % (type(exc).__name__, exc)}
        self._write(download_id, state)

    def state(self, download_id: str) -> dict:
        if not download_id.isalnum() or len(download_id) != 16:
            raise ExupError('no such download', code='not_found')
        try:
            with open(os.path.join(self.folder, download_id + '.json'), encoding='utf-8') as handle:
                state = json.load(handle)
        except FileNotFoundError:
            raise ExupError('no such download: %s' % download_id, code='not_found') from None
        if state.get('state') == 'running' and not _alive(state.get('pid')):
            lost = 'the repository service worker that ran download %s stopped before it ended (restart or crash): start it again' % download_id
            return {'download_id': download_id, 'state': 'failed', 'error': 'download_lost', 'msg': lost}
        return {key: value for key, value in state.items() if key != 'pid'}

    def _write(self, download_id: str, state: dict) -> None:
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import write_json_atomically

        write_json_atomically(os.path.join(self.folder, download_id + '.json'), state)


def load_credentials(path: str) -> auth.Credentials:
    """The hashes the settings keep (0600 in the store); none set is credentials_missing: there is no default password."""
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError:
        data = {}
    except ValueError:
        raise ExupError('the service credentials file %s is not JSON' % path, code='credentials_invalid') from None
    return auth.Credentials.from_dict(data)


# ----------------------------------------------------------------- request helpers
async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, never more than ``limit`` bytes held: a stated or streamed excess is body_too_large."""
    stated = request.headers.get('content-length')
    if stated is not None and (not (stated.isascii() and stated.isdigit()) or int(stated) > limit):
        raise ExupError('the request body is larger than %d bytes' % limit, code='body_too_large')
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ExupError('the request body is larger than %d bytes' % limit, code='body_too_large')
    return bytes(body)


async def json_body(request: Request) -> dict:
    body = await read_bounded(request, wire.MAX_JSON_BYTES)
    try:
        data = json.loads(body or b'{}')
    except (ValueError, RecursionError):
        raise ExupError('the request body is not JSON', code='request_invalid') from None
    if not isinstance(data, dict):
        raise ExupError('the request body must be a JSON object', code='request_invalid')
    return data


def _id(value: object, what: str) -> str:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import is_id

    if not is_id(value):
        raise ExupError('%s is not an id (letters, digits, . _ - at most 64)' % what, code='request_invalid')
    return str(value)


def _text(value: object, what: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or any(ord(char) < 32 for char in value):
        raise ExupError('%s must be a non-empty text of at most %d characters' % (what, limit), code='request_invalid')
    return value


def _flag(value: object, what: str) -> bool:
    if value in (None, False, 'false', '0', ''):
        return False
    if value in (True, 'true', '1'):
        return True
    raise ExupError('%s must be true or false' % what, code='request_invalid')


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value) or len(value) > 10000:
        raise ExupError('%s must be a list of texts' % what, code='request_invalid')
    return value


def _is_event(item: object) -> bool:
    """An event as events.event builds it: the log's columns, each of its type."""
    return (
        isinstance(item, dict)
        and item.get('level') in (events.NORMAL, events.ERROR)
        and isinstance(item.get('code'), str)
        and wire.ERROR_CODE.fullmatch(item['code']) is not None
        and isinstance(item.get('message'), str)
        and isinstance(item.get('detail'), dict)
    )


def _typed_info(info: typing.Any) -> bool:
    """True when a PackageInfo a caller sent has each field of its type (from_dict checks only the names)."""
    texts = ('package_id', 'module_id', 'module_name', 'version', 'release_date', 'kind', 'install_command', 'uninstall_command', 'severity')
    flags = ('auto_update', 'reboot_required', 'downgrade_supported', 'uninstall_supported')
    return (
        all(isinstance(getattr(info, name), str) for name in texts)
        and all(isinstance(getattr(info, name), bool) for name in flags)
        and all(isinstance(getattr(info, name), list) and all(isinstance(item, str) for item in getattr(info, name)) for name in ('models', 'os'))
        and isinstance(info.schema_version, int)
        and not isinstance(info.schema_version, bool)
    )


def sweep_stale(folder: str, now: float, lifetime: float = 0) -> None:
    """Remove what lies in ``folder`` untouched for ``lifetime`` (default UPLOAD_LIFETIME_SECONDS): uploads never added,
    archives never fetched, download states. An upload still being written is touched by every write: it stays."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            inside = [os.path.join(path, child) for child in os.listdir(path)] if os.path.isdir(path) else []
            touched = max(os.stat(item).st_mtime for item in [path, *inside])
        except (FileNotFoundError, NotADirectoryError):
            continue  # added (and removed) meanwhile
        if now - touched > (lifetime or UPLOAD_LIFETIME_SECONDS):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def _alive(pid: object) -> bool:
    """True when process ``pid`` (a worker of this service on this host) still runs; an unknown pid counts as alive."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mtime(path: str) -> tuple[int, int] | None:
    """The file's identity for a change check: its inode and mtime (a replaced file in the same nanosecond still differs)."""
    try:
        stat = os.stat(path)
        return (stat.st_ino, stat.st_mtime_ns)
    except OSError:
        return None


def error_response(error: ExupError) -> JSONResponse:
    status = wire.status_of(error.code)
    headers = {}
    if status == 401:
        headers['WWW-Authenticate'] = 'Basic realm="exup", charset="UTF-8"'
    if error.code == 'auth_rate_limited':
        headers['Retry-After'] = str(error.details.get('retry_after', 60))
    return JSONResponse(wire.error_body(error), status_code=status, headers=headers)


# ----------------------------------------------------------------- the app
def check_startup(config: ServiceConfig) -> None:
    """What must hold before the service takes its port: starlette, credentials (no default password), TLS files."""
    if not HAS_STARLETTE:
        raise ExupError('the repository service needs the starlette Python library: %s' % STARLETTE_IMPORT_ERROR, code='missing_library')
    load_credentials(config.credentials_path)  # none set: credentials_missing
    for path in (config.tls_certificate, config.tls_key):
        if path and not os.access(path, os.R_OK):
            raise ExupError('cannot read the TLS file %s' % path, code='config_invalid')


def app_from_environment() -> Starlette:
    """granian's factory target in each worker: the app of the configuration file main.py named."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup.service.config import read_config
    from ansible_collections.exup.fleet.plugins.module_utils._exup.service.main import CONFIG_ENV

    return create_app(read_config(os.environ[CONFIG_ENV]))


def create_app(config: ServiceConfig, repository: Repository | None = None) -> Starlette:
    """The ASGI app for one configuration. Refuses to start without credentials: there is no default password."""
    if not HAS_STARLETTE:
        raise ExupError('the repository service needs the starlette Python library: %s' % STARLETTE_IMPORT_ERROR, code='missing_library')
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository

    service = Service(config, repository or Repository(config.store), auth.Authenticator(load_credentials(config.credentials_path)))
    return Starlette(
        routes=routes(service), exception_handlers={ExupError: _refused, HTTPException: _http_error, Exception: _failure}, lifespan=scheduled_downloads(service)
    )


def scheduled_downloads(service: Service) -> typing.Callable:
    """The app's lifespan: the scheduled download (service/scheduler.py) runs while the app serves; at shutdown it
    stops, cancelling a run in flight. Each granian worker starts one; the store's flock lets one of them schedule."""

    @contextlib.asynccontextmanager
    async def lifespan(app: typing.Any) -> typing.AsyncIterator[None]:
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service.scheduler import for_service

        scheduler = for_service(service.repository, service.config)
        scheduler.start()
        try:
            yield
        finally:
            service.stopping.set()
            await run_in_threadpool(scheduler.stop)

    return lifespan


def _refused(request: Request, exc: Exception) -> JSONResponse:
    return error_response(typing.cast(ExupError, exc))


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """starlette's own refusals (no such route, method not allowed) in the service's error shape."""
    status = typing.cast(HTTPException, exc).status_code
    code = {404: 'not_found', 405: 'method_not_allowed'}.get(status, 'request_invalid')
    return JSONResponse(
        {'error': code, 'msg': 'no such resource: %s %s' % (request.method, request.url.path[:200]) if status == 404 else str(exc)}, status_code=status
    )


def _failure(request: Request, exc: Exception) -> JSONResponse:
    """A bug answers 500 with a code, never a traceback to the client."""
    return JSONResponse({'error': 'service_failed', 'msg': 'the repository service failed: %s' % type(exc).__name__}, status_code=500)


def routes(service: Service) -> list:
    repo = service.repository

    async def authorized(request: Request, needed: str) -> str:
        """The credentials' check, the role; without a thread hop when the answer is known (a hop per download cost throughput)."""
        role = service.role(request, needed, cached_only=True)
        if role is None:
            role = await run_in_threadpool(service.role, request, needed)
        return str(role)

    def guarded(needed: str, handler: typing.Callable) -> typing.Callable:
        async def endpoint(request: Request) -> Response:
            role = await authorized(request, needed)
            manager_id = request.headers.get('x-exup-manager')
            if manager_id and role == 'admin':  # a manager's call; a reader's (or a host's, a BMC's) is no presence
                await run_in_threadpool(service.presence, manager_id)
            return await handler(request)

        return endpoint

    def threaded(function: typing.Callable) -> typing.Callable:
        async def call(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
            return await run_in_threadpool(function, *args, **kwargs)

        return call

    async def about(request: Request) -> Response:
        return JSONResponse(wire.about(COLLECTION_VERSION))

    described = openapi.description(COLLECTION_VERSION)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(described)  # the description itself needs no login: it holds no data of the repository

    async def pool(request: Request) -> Response:
        digest = request.path_params['digest']
        if len(digest) != 64 or any(char not in '0123456789abcdef' for char in digest):
            raise ExupError('no such package file', code='not_found')
        params = request.query_params
        ticket_seconds: int | None = None  # Basic: a private answer; a ticket: public while it lasts (wire.pool_headers)
        if 'ticket' in params:  # a BMC or managed host with a signed URL: no password
            now = time.time()
            problem = wire.ticket_problem(service.ticket_key, digest, params.get('expires'), params.get('ticket'), now)
            if problem:
                raise ExupError('this pool ticket %s' % ('has expired' if problem == 'ticket_expired' else 'is not valid for this file'), code=problem)
            ticket_seconds = int(int(params['expires']) - now)  # rounded down: a cache keeps it no longer than the ticket admits
        else:
            await authorized(request, 'read')
        path = repo.store.pool_path(digest)
        try:
            found = os.stat(path)  # here, not in FileResponse's thread: no thread hop per download
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            raise ExupError('no such package file', code='not_found')
        headers = wire.pool_headers(digest, ticket_seconds)
        if wire.if_none_match_hits(request.headers.get('if-none-match'), digest):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, headers=headers, media_type='application/zip', content_disposition_type='inline', stat_result=found)

    async def tickets(request: Request) -> Response:
        body = await json_body(request)
        seconds = body.get('seconds', 3600)
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 < seconds <= wire.TICKET_MAX_SECONDS:
            raise ExupError('seconds must be a number from 1 to %d' % wire.TICKET_MAX_SECONDS, code='request_invalid')
        digests = _strings(body.get('sha256'), 'sha256')
        if not digests or len(digests) > 1000 or not all(wire.POOL_PATH.fullmatch(wire.pool_path(digest)) for digest in digests):
            raise ExupError('sha256 must list 1 to 1000 package digests (64 hex digits)', code='request_invalid')
        expires = int(time.time()) + seconds
        urls = {digest: '%s?%s' % (wire.pool_path(digest), wire.ticket_query(service.ticket_key, digest, expires)) for digest in digests}
        return JSONResponse({'urls': urls, 'expires': expires})

    async def packages(request: Request) -> Response:
        module_id = request.query_params.get('module_id')
        found = await threaded(repo.packages)(_id(module_id, 'module_id') if module_id else None)
        return JSONResponse({'packages': [wire.stored_package_as_dict(package) for package in found]})

    async def packages_for(request: Request) -> Response:
        params = request.query_params
        key_ids = params.getlist('key_id') if params.get('keys') == 'given' else None
        found = await threaded(repo.packages_for)(_text(params.get('model'), 'model'), _text(params.get('os'), 'os'), key_ids)
        return JSONResponse({'packages': [wire.stored_package_as_dict(package) for package in found]})

    async def delete_package(request: Request) -> Response:
        raise ExupError(
            'a manager that uses a remote repository cannot delete its packages (003 §3.6): delete them on the repository host itself',
            code='remote_delete_refused',
        )

    async def tombstones(request: Request) -> Response:
        found = await threaded(repo.deleted_packages)()
        return JSONResponse({'tombstones': [tombstone.as_dict() for tombstone in found]})

    async def clear_tombstones(request: Request) -> Response:
        body = await json_body(request)
        return JSONResponse({'cleared': await threaded(repo.clear_tombstones)(_flag(body.get('check_mode'), 'check_mode'))})

    async def clear_refusals(request: Request) -> Response:
        body = await json_body(request)
        ids = _strings(body.get('package_ids'), 'package_ids') if body.get('package_ids') is not None else None
        return JSONResponse({'cleared': await threaded(repo.clear_refusals)(ids, _flag(body.get('check_mode'), 'check_mode'))})

    # ----- save as an archive (003 §2.2.6) and rebuild (§4.4): the repository host's work, asked by a manager
    async def export_make(request: Request) -> Response:
        body = await json_body(request)
        selection = {
            'package_ids': _strings(body.get('package_ids'), 'package_ids') or None,
            'module_ids': _strings(body.get('module_ids'), 'module_ids') or None,
            'models': _strings(body.get('models'), 'models') or None,
            'displayed_only': _flag(body.get('displayed_only', True), 'displayed_only'),
        }
        exports = os.path.join(repo.store.tmp_dir, 'exports')
        await run_in_threadpool(sweep_stale, exports, time.time())  # archives never fetched: the uploads' lifetime
        export_id = secrets.token_hex(8)
        folder = os.path.join(exports, export_id)
        check_mode = _flag(body.get('check_mode'), 'check_mode')
        if check_mode:
            return JSONResponse({'results': await threaded(repo.export)(os.path.join(folder, EXPORT_NAME), check_mode=True, **selection)})
        os.makedirs(folder, mode=0o700)
        try:
            results = await threaded(repo.export)(os.path.join(folder, EXPORT_NAME), **selection)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        size = os.stat(os.path.join(folder, EXPORT_NAME)).st_size
        return JSONResponse({'export_id': export_id, 'size': size, 'results': results}, status_code=201)

    def export_path(request: Request) -> str:
        export_id = request.path_params['export_id']
        path = os.path.join(repo.store.tmp_dir, 'exports', export_id, EXPORT_NAME)
        if len(export_id) != 16 or not all(char in '0123456789abcdef' for char in export_id) or not os.path.isfile(path):
            raise ExupError('no such archive', code='not_found')
        return path

    async def export_get(request: Request) -> Response:
        return FileResponse(export_path(request), media_type='application/zip', content_disposition_type='attachment', filename=EXPORT_NAME)

    async def export_delete(request: Request) -> Response:
        shutil.rmtree(os.path.dirname(export_path(request)), ignore_errors=True)
        return JSONResponse({'deleted': True})

    async def rebuild(request: Request) -> Response:
        from ansible_collections.exup.fleet.plugins.module_utils._exup import signing

        body = await json_body(request)
        keys = _strings(body.get('trusted_keys'), 'trusted_keys')
        keyring = signing.KeyRing.from_pem_texts(keys) if keys else signing.KeyRing.from_pem_list(list(service.config.trusted_keys))
        return JSONResponse(await threaded(repo.rebuild)(keyring, _flag(body.get('check_mode'), 'check_mode')))

    async def listing(request: Request) -> Response:
        params = request.query_params
        limit = params.get('event_limit', '100')
        if not (limit.isascii() and limit.isdigit()) or int(limit) > 10000:  # '²' is a digit to isdigit, not to int
            raise ExupError('event_limit must be a number up to 10000', code='request_invalid')
        answer = await threaded(repo.listing)(
            _id(params.get('manager_id'), 'manager_id'), int(limit), params.getlist('module_id') or None, params.getlist('model') or None
        )
        return JSONResponse(answer)

    async def servers(request: Request) -> Response:
        params = request.query_params
        limit = params.get('limit', str(wire.FLEET_PAGE))
        if not (limit.isascii() and limit.isdigit()) or not 0 < int(limit) <= wire.FLEET_PAGE_MAX:
            raise ExupError('limit must be a number from 1 to %d' % wire.FLEET_PAGE_MAX, code='request_invalid')
        after = None
        if 'after_manager' in params or 'after_name' in params:
            after = (_id(params.get('after_manager'), 'after_manager'), _text(params.get('after_name'), 'after_name'))
        return JSONResponse(wire.fleet_page_as_dict(await threaded(repo.fleet)(after, int(limit))))

    async def upload(request: Request) -> Response:
        name = os.path.basename(_text(request.headers.get('x-exup-file-name', 'package.zip'), 'file name'))
        if name in ('', '.', '..'):
            raise ExupError('the file name must name a file, not a folder', code='request_invalid')
        stated = request.headers.get('content-length')
        if stated is not None and (not (stated.isascii() and stated.isdigit()) or int(stated) > wire.MAX_UPLOAD_BYTES):  # refused before a byte is written
            raise ExupError('the package is larger than %d bytes' % wire.MAX_UPLOAD_BYTES, code='body_too_large')
        upload_id = secrets.token_hex(8)
        uploads = os.path.join(repo.store.tmp_dir, 'uploads')
        await run_in_threadpool(sweep_stale, uploads, time.time())
        folder = os.path.join(uploads, upload_id)
        os.makedirs(folder, mode=0o700)
        try:
            with open(os.path.join(folder, name), 'xb') as handle:
                written = 0
                async for chunk in request.stream():
                    written += len(chunk)
                    if written > wire.MAX_UPLOAD_BYTES:
                        raise ExupError('the package is larger than %d bytes' % wire.MAX_UPLOAD_BYTES, code='body_too_large')
                    handle.write(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse({'upload_id': upload_id, 'file': name, 'size': written}, status_code=201)

    async def add(request: Request) -> Response:
        body = await json_body(request)
        upload_ids = _strings(body.get('uploads'), 'uploads')
        folders = [os.path.join(repo.store.tmp_dir, 'uploads', upload) for upload in upload_ids]
        if not upload_ids or not all(len(upload) == 16 and upload.isalnum() for upload in upload_ids) or not all(os.path.isdir(folder) for folder in folders):
            raise ExupError('uploads must name files uploaded to /v1/uploads before', code='request_invalid')
        keys = _strings(body.get('trusted_keys'), 'trusted_keys')
        try:
            held = [os.listdir(folder) for folder in folders]
            if not all(held):  # swept, or never written
                raise ExupError('uploads must name files uploaded to /v1/uploads before', code='request_invalid')
            paths = [os.path.join(folder, names[0]) for folder, names in zip(folders, held)]
            results = await threaded(add_uploaded)(paths, _text(body.get('mode', 'needed'), 'mode'), keys, _flag(body.get('check_mode'), 'check_mode'))
        finally:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
        return JSONResponse({'results': results})

    def add_uploaded(paths: list[str], mode: str, keys: list[str], check_mode: bool) -> list[dict]:
        """Verified with the keys the caller trusts (PEM texts, never paths of this host), else the service's own."""
        from ansible_collections.exup.fleet.plugins.module_utils._exup import signing

        keyring = signing.KeyRing.from_pem_texts(keys) if keys else signing.KeyRing.from_pem_list(list(service.config.trusted_keys))
        return repo.add_files(paths, keyring, mode=mode, check_mode=check_mode)

    async def presence(request: Request) -> Response:
        manager_id = _id(request.path_params['manager_id'], 'manager id')
        body = await json_body(request)
        servers = body.get('servers')
        expired = await threaded(repo.announce)(manager_id, None if servers is None else _servers(manager_id, servers))
        return JSONResponse({'manager_id': manager_id, 'expired': expired})

    async def server_put(request: Request) -> Response:
        manager_id, server = await _server_of(request)
        return JSONResponse({'changed': await threaded(repo.record_server)(manager_id, server)})

    async def server_differs(request: Request) -> Response:
        manager_id, server = await _server_of(request)
        return JSONResponse({'differs': await threaded(repo.server_record_differs)(manager_id, server)})

    async def server_delete(request: Request) -> Response:
        manager_id, name = _server_path(request)
        cause = request.query_params.get('cause')
        return JSONResponse({'known': await threaded(repo.forget_server)(manager_id, name, _text(cause, 'cause', 2000) if cause else None)})

    async def bmc_modules(request: Request) -> Response:
        manager_id, name = _server_path(request)
        records = await threaded(repo.bmc_module_records)(manager_id, name)
        return JSONResponse({'modules': {module_id: wire.bmc_record_as_dict(record) for module_id, record in records.items()}})

    async def bmc_module_set(request: Request) -> Response:
        manager_id, name = _server_path(request)
        module_id = _id(request.path_params['module_id'], 'module id')
        body = await json_body(request)
        fields = {key: body[key] for key in ('previous', 'block', 'staged') if key in body}
        if len(fields) != len(body) or not all(value is None or isinstance(value, str) for value in fields.values()):
            raise ExupError('a BMC module record takes previous, block and staged (texts or null)', code='request_invalid')
        await threaded(repo.set_bmc_module)(manager_id, name, module_id, **fields)
        return JSONResponse({'module_id': module_id})

    async def icons(request: Request) -> Response:
        from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo

        manager_id, name = _server_path(request)
        body = await json_body(request)
        infos = body.get('infos')
        if not isinstance(infos, list) or not all(isinstance(info, dict) for info in infos):
            raise ExupError('infos must be a list of package infos', code='request_invalid')
        try:
            parsed = [PackageInfo.from_dict(info) for info in infos]
        except TypeError as exc:
            raise ExupError('a package info is incomplete: %s' % exc, code='request_invalid') from None
        if not all(_typed_info(info) for info in parsed):  # the rules compare and hash these fields: a {} there was HTTP 500
            raise ExupError('a package info has a field of the wrong type (texts, booleans, lists of texts, schema_version a number)', code='request_invalid')
        kinds = tuple(_strings(body.get('kinds', ['linux']), 'kinds'))
        return JSONResponse({'icons': await threaded(repo.status_icons)(manager_id, name, parsed, kinds)})

    async def icons_set(request: Request) -> Response:
        manager_id, name = _server_path(request)
        body = await json_body(request)
        results = await threaded(repo.set_manual_icons)(
            manager_id, name, _strings(body.get('module_ids'), 'module_ids'), _text(body.get('icon'), 'icon'), _flag(body.get('check_mode'), 'check_mode')
        )
        return JSONResponse({'results': results})

    async def restarting(request: Request) -> Response:
        manager_id, name = _server_path(request)
        params = request.query_params
        return JSONResponse({'modules': await threaded(repo.restarting)(manager_id, name, params.get('boot_id'), params.get('power'))})

    async def reboot(request: Request) -> Response:
        manager_id, name = _server_path(request)
        body = await json_body(request)
        seconds = body.get('seconds', 3600)
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 < seconds <= 86400:
            raise ExupError('seconds must be a number from 1 to 86400', code='request_invalid')
        boot_id = body.get('boot_id')
        await threaded(repo.request_reboot)(manager_id, name, _strings(body.get('modules'), 'modules'), boot_id if isinstance(boot_id, str) else None, seconds)
        return JSONResponse({'recorded': True})

    async def settings_get(request: Request) -> Response:
        return JSONResponse({'settings': await threaded(repo.read_settings)(_flag(request.query_params.get('check_mode'), 'check_mode'))})

    async def settings_patch(request: Request) -> Response:
        body = await json_body(request)
        wanted = body.get('settings')
        if not isinstance(wanted, dict):
            raise ExupError('settings must be an object of setting name to value', code='request_invalid')
        before, after = await threaded(repo.change_settings)(wanted, _flag(body.get('check_mode'), 'check_mode'))
        return JSONResponse({'before': before, 'settings': after})

    async def events_post(request: Request) -> Response:
        body = await json_body(request)
        items = body.get('events')
        if not isinstance(items, list) or len(items) > 1000 or not all(_is_event(item) for item in items):
            raise ExupError('events must be a list of at most 1000 events, each with a level, code, message and detail', code='request_invalid')
        return JSONResponse({'events': await threaded(repo.log_events)(items)})

    async def events_get(request: Request) -> Response:
        params = request.query_params
        limit = params.get('limit', '100')
        if not (limit.isascii() and limit.isdigit() and len(limit) <= 8) or not 0 < int(limit) <= wire.EVENTS_MAX:  # '²' is a digit to isdigit
            raise ExupError('limit must be a number from 1 to %d' % wire.EVENTS_MAX, code='request_invalid')
        server = _text(params['server'], 'server') if 'server' in params else None
        return JSONResponse({'events': await threaded(repo.recent_events)(int(limit), server)})

    async def job_reported(request: Request) -> Response:
        return JSONResponse({'reported': await threaded(repo.job_reported)(_id(request.path_params['job_id'], 'job id'))})

    async def download_start(request: Request) -> Response:
        body = await json_body(request)
        manager_id = _id(body.get('manager_id'), 'manager_id')
        servers = body.get('servers')
        parsed = None if servers is None else _servers(manager_id, servers)
        answer = await threaded(service.downloads.start)(
            manager_id, parsed, _flag(body.get('check_mode'), 'check_mode'), _flag(body.get('accept_version_reset'), 'accept_version_reset')
        )
        return JSONResponse(answer, status_code=202)

    async def download_state(request: Request) -> Response:
        return JSONResponse(await threaded(service.downloads.state)(request.path_params['download_id']))

    read, admin = 'read', 'admin'
    return [
        Route('/v1/about', guarded(read, about), methods=['GET']),
        Route(openapi.OPENAPI_PATH, openapi_json, methods=['GET']),
        Route('/v1/pool/sha256/{digest}.zip', pool, methods=['GET', 'HEAD']),  # Basic auth (read) or a pool ticket
        Route('/v1/pool/tickets', guarded(read, tickets), methods=['POST']),
        Route('/v1/packages', guarded(read, packages), methods=['GET']),
        Route('/v1/packages/for', guarded(read, packages_for), methods=['GET']),
        Route('/v1/packages', guarded(admin, add), methods=['POST']),
        Route('/v1/packages/{package_id}', guarded(read, delete_package), methods=['DELETE']),
        Route('/v1/uploads', guarded(admin, upload), methods=['POST']),
        Route('/v1/tombstones', guarded(read, tombstones), methods=['GET']),
        Route('/v1/tombstones/clear', guarded(admin, clear_tombstones), methods=['POST']),
        Route('/v1/refusals/clear', guarded(admin, clear_refusals), methods=['POST']),
        Route('/v1/exports', guarded(admin, export_make), methods=['POST']),
        Route('/v1/exports/{export_id}.zip', guarded(admin, export_get), methods=['GET']),
        Route('/v1/exports/{export_id}', guarded(admin, export_delete), methods=['DELETE']),
        Route('/v1/rebuild', guarded(admin, rebuild), methods=['POST']),
        Route('/v1/listing', guarded(read, listing), methods=['GET']),
        Route('/v1/servers', guarded(read, servers), methods=['GET']),
        Route('/v1/managers/{manager_id}/presence', guarded(admin, presence), methods=['POST']),
        Route('/v1/managers/{manager_id}/servers/{name}', guarded(admin, server_put), methods=['PUT']),
        Route('/v1/managers/{manager_id}/servers/{name}', guarded(admin, server_delete), methods=['DELETE']),
        Route('/v1/managers/{manager_id}/servers/{name}/differs', guarded(admin, server_differs), methods=['POST']),
        Route('/v1/managers/{manager_id}/servers/{name}/bmc-modules', guarded(admin, bmc_modules), methods=['GET']),
        Route('/v1/managers/{manager_id}/servers/{name}/bmc-modules/{module_id}', guarded(admin, bmc_module_set), methods=['PATCH']),
        Route('/v1/managers/{manager_id}/servers/{name}/icons', guarded(admin, icons), methods=['POST']),
        Route('/v1/managers/{manager_id}/servers/{name}/icons', guarded(admin, icons_set), methods=['PUT']),
        Route('/v1/managers/{manager_id}/servers/{name}/restarting', guarded(admin, restarting), methods=['GET']),
        Route('/v1/managers/{manager_id}/servers/{name}/reboots', guarded(admin, reboot), methods=['POST']),
        Route('/v1/settings', guarded(admin, settings_get), methods=['GET']),
        Route('/v1/settings', guarded(admin, settings_patch), methods=['PATCH']),
        Route('/v1/events', guarded(read, events_get), methods=['GET']),  # read, as /v1/listing shows events
        Route('/v1/events', guarded(admin, events_post), methods=['POST']),
        Route('/v1/jobs/{job_id}/reported', guarded(admin, job_reported), methods=['GET']),
        Route('/v1/downloads', guarded(admin, download_start), methods=['POST']),
        Route('/v1/downloads/{download_id}', guarded(admin, download_state), methods=['GET']),
        # the feed view chained repositories sync from (service/feed.py, docs/architecture.md "Chained repositories")
        *feed_routes(repo.store, lambda handler: guarded(read, handler)),
    ]


def _server_path(request: Request) -> tuple[str, str]:
    name = _text(request.path_params['name'], 'server name')
    if name in ('.', '..'):  # a dot segment: clients and proxies would resolve it away before it got here
        raise ExupError('a server name cannot be . or .. in a URL path', code='request_invalid')
    return _id(request.path_params['manager_id'], 'manager id'), name


async def _server_of(request: Request) -> tuple[str, typing.Any]:
    manager_id, name = _server_path(request)
    body = await json_body(request)
    server = _servers(manager_id, [dict(body, name=name)])[0]
    return manager_id, server


def _servers(manager_id: str, servers: object) -> list:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import server_from_dict

    if not isinstance(servers, list) or len(servers) > 100000:
        raise ExupError('servers must be a list of servers', code='request_invalid')
    parsed = [server_from_dict(manager_id, server) for server in servers]
    names = [server.name for server in parsed]
    if len(set(names)) != len(names):  # the index keeps one row per name: a second was IntegrityError, HTTP 500
        twice = sorted({name for name in names if names.count(name) > 1})[:5]
        raise ExupError('servers names a server more than once: %s' % ', '.join(twice), code='server_invalid')
    return parsed
