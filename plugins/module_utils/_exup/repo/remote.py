# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A repository reached over HTTP(S): ``RemoteRepository`` implements ``RepositoryApi`` against the repository service.

The faces use it as they use the local ``Repository``; each call is one request (a sync is a request
and a poll). Every answer is hostile until checked: bounded in size, JSON of the expected shape
(``wire.py`` decodes the records), and a refusal comes back as the service's own ``ExupError``.

The first call checks the connection, the password and the API version (003 §1.3, Fig. 2-3), so an
unreachable repository or a wrong password is one clear error before anything else is done; a feature
the remote repository is too old for is refused naming what it lacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import time
import typing
import urllib.parse
from collections.abc import Iterable

from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import Deadline
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo, file_digest
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, FleetPage, StoredPackage, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

if typing.TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions, SyncResult
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
    from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient

SCHEMES = ('http://', 'https://')
ID_PATTERN = re.compile(r'[0-9a-f]{16}')  # a download's or an archive's id at the service
#: a whole file from the service may take 60 s plus its size at 64 KiB/s (the sync's rule for one request)
BASE_SECONDS = 60
SLOWEST_BYTES_PER_SECOND = 64 * 1024
DOWNLOAD_POLL_SECONDS = 1.0  # the longest pause between two polls of a download
FIRST_POLL_SECONDS = 0.02
CHUNK = 1024 * 1024


def open_repository(params: typing.Mapping[str, typing.Any], check_mode: bool = False) -> typing.Any:
    """The repository a task's options name: a ``RemoteRepository`` for a URL, else the local store at that path.

    ``params`` holds ``repository``, ``manager_id`` and the ``repository_*`` options (REMOTE_SPEC). In check mode a
    remote repository is not told of this manager's presence (check mode records nothing).
    """
    location = params['repository']
    if is_remote(location):
        return RemoteRepository(
            RemoteOptions(
                url=location,
                password=params.get('repository_password'),
                user=params.get('repository_user') or 'admin',
                ca_path=params.get('repository_ca_path'),
                validate_certs=params.get('repository_validate_certs', True),
                timeout=params.get('repository_timeout') or 30,
                manager_id=params.get('manager_id') or 'local',
                presence=not check_mode,
            )
        )
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository

    return Repository(os.path.abspath(os.path.expanduser(os.path.expandvars(location))))


def is_remote(repository: object) -> bool:
    """True when a ``repository`` option names a repository service (a URL), not a local store path."""
    return isinstance(repository, str) and repository.lower().startswith(SCHEMES)


@dataclasses.dataclass(frozen=True)
class RemoteOptions:
    """How to reach one repository service (the module options ``repository_*``)."""

    url: str
    password: str | None = None
    user: str = 'admin'
    ca_path: str | None = None
    validate_certs: bool = True
    timeout: float = 30
    manager_id: str = 'local'
    presence: bool = True  # send X-Exup-Manager: the calls count as this manager's presence (003 §2.2.8)

    def __post_init__(self) -> None:
        from ansible_collections.exup.fleet.plugins.module_utils._exup.package import is_id

        try:
            parsed = urllib.parse.urlsplit(self.url)
            parsed.port  # noqa: B018  # urlsplit checks the port only when asked
        except ValueError:
            shown = _shown(self.url)
            raise ExupError('repository %s is not a repository service URL (its host or port cannot be read)' % shown, code='argument_invalid') from None
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not self.timeout > 0:
            raise ExupError('repository_timeout must be a positive number of seconds', code='argument_invalid')
        if not is_id(self.manager_id):
            raise ExupError('manager_id must be an id (letters, digits, . _ - at most 64)', code='argument_invalid')
        if parsed.scheme not in ('http', 'https') or not parsed.hostname or parsed.username or parsed.password or parsed.query or parsed.fragment:
            raise ExupError(
                'repository %s is not a repository service URL: give http(s)://host[:port], the password in repository_password' % _shown(self.url),
                code='argument_invalid',
            )
        if not self.password:
            raise ExupError('repository %s is a remote repository: give repository_password (there is no default password)' % self.url, code='argument_invalid')

    @property
    def base_url(self) -> str:
        parsed = urllib.parse.urlsplit(self.url)
        port = parsed.port or wire.DEFAULT_PORT
        host = '[%s]' % parsed.hostname if parsed.hostname and ':' in parsed.hostname else parsed.hostname
        return '%s://%s:%d%s' % (parsed.scheme, host, port, parsed.path.rstrip('/'))


def _shown(url: str) -> str:
    """A URL for a message, without any user:password it may carry."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.username or parsed.password:
        return parsed._replace(netloc=parsed.hostname or '').geturl()
    return url[:200]


class RemoteRepository:
    """``RepositoryApi`` over the repository service (``service/app.py``)."""

    def __init__(self, options: RemoteOptions) -> None:
        self.options = options
        self.base_url = options.base_url
        self._session: typing.Any = None
        self._about: dict[str, typing.Any] | None = None

    # ----------------------------------------------------------------- the wire
    @property
    def session(self) -> typing.Any:
        if self._session is None:
            from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HAS_REQUESTS, REQUESTS_IMPORT_ERROR

            if not HAS_REQUESTS:
                raise ExupError('a remote repository needs the requests Python library: %s' % REQUESTS_IMPORT_ERROR, code='missing_library')
            import requests

            session = requests.Session()
            session.auth = (self.options.user, str(self.options.password))
            session.verify = (self.options.ca_path or True) if self.options.validate_certs else False
            session.trust_env = False  # a repository is reached directly; an environment proxy would see its password
            session.headers.update({'Accept': 'application/json', 'Accept-Encoding': 'identity'})
            if self.options.presence:
                session.headers['X-Exup-Manager'] = self.options.manager_id
            self._session = session
        return self._session

    def about(self) -> dict[str, typing.Any]:
        """The service's /v1/about, checked once: connection, password and API version (003 §1.3, Fig. 2-3)."""
        if self._about is None:
            self._about = wire.check_about(self._request('GET', '/v1/about'), self.base_url)
        return self._about

    def call(self, feature: str, method: str, path: str, **kwargs: typing.Any) -> typing.Any:
        """One request of ``feature``: refused first if the repository is too old for it."""
        wire.refuse_limited(self.about(), feature, self.base_url)
        return self._request(method, path, **kwargs)

    def _request(self, method: str, path: str, **kwargs: typing.Any) -> typing.Any:
        import requests

        url = self.base_url + path
        timeout = self.options.timeout
        try:
            response = self.session.request(method, url, timeout=(timeout, timeout), stream=True, allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise ExupError('the TLS connection to the repository at %s failed: %s' % (self.base_url, _reason(exc)), code='repository_unreachable') from None
        except requests.exceptions.Timeout:
            raise ExupError('the repository at %s did not answer within %s s' % (self.base_url, timeout), code='repository_unreachable') from None
        except requests.exceptions.RequestException as exc:
            raise ExupError('cannot reach the repository at %s: %s' % (self.base_url, _reason(exc)), code='repository_unreachable') from None
        with response:
            body = self._bounded_json(response, url)
        if response.status_code >= 300:
            raise wire.error_from_body(response.status_code, body, self.base_url)
        return body

    def _bounded_json(self, response: typing.Any, url: str) -> typing.Any:
        import json

        import requests

        data = bytearray()
        deadline = Deadline(BASE_SECONDS + wire.MAX_JSON_BYTES / SLOWEST_BYTES_PER_SECOND, 'an answer of the repository')
        try:
            for chunk in response.iter_content(65536):
                if deadline.expired():
                    slow = 'the repository at %s sent its answer too slowly (over %.0f s)' % (self.base_url, deadline.seconds)
                    raise ExupError(slow, code='repository_unreachable')
                data += chunk
                if len(data) > wire.MAX_JSON_BYTES:
                    raise ExupError(
                        'the repository at %s sent an answer larger than %d bytes' % (self.base_url, wire.MAX_JSON_BYTES), code='service_answer_invalid'
                    )
        except requests.exceptions.RequestException as exc:
            raise ExupError('the answer of the repository at %s broke off: %s' % (self.base_url, _reason(exc)), code='repository_unreachable') from None
        if not data and response.status_code >= 300:
            return None
        try:
            return json.loads(bytes(data))
        except (ValueError, RecursionError):
            if response.status_code >= 300:
                return None
            raise ExupError(
                'the repository at %s answered %s with something that is not JSON' % (self.base_url, url[len(self.base_url) :]), code='service_answer_invalid'
            ) from None

    def _field(self, answer: typing.Any, name: str, kind: type | tuple[type, ...]) -> typing.Any:
        if not isinstance(answer, dict) or not isinstance(answer.get(name), kind):
            raise ExupError('the repository at %s sent an answer without a valid %s' % (self.base_url, name), code='service_answer_invalid')
        return answer[name]

    def _packages(self, answer: typing.Any) -> list[StoredPackage]:
        return [wire.stored_package_from_dict(item, self.base_url) for item in self._field(answer, 'packages', list)]

    @staticmethod
    def _server_path(manager_id: str, name: str, tail: str = '') -> str:
        return '/v1/managers/%s/servers/%s%s' % (urllib.parse.quote(manager_id, safe=''), urllib.parse.quote(name, safe=''), tail)

    # ----------------------------------------------------------------- RepositoryApi: presence of the store
    def exists(self) -> bool:
        self.about()
        return True

    def readable(self) -> bool:
        return self.exists()

    # ----------------------------------------------------------------- packages
    def packages(self, module_id: str | None = None) -> list[StoredPackage]:
        return self._packages(self.call('packages', 'GET', '/v1/packages', params={'module_id': module_id} if module_id else None))

    def packages_for(self, model: str, os_name: str, trusted_key_ids: Iterable[str] | None = None) -> list[StoredPackage]:
        params: dict[str, typing.Any] = {'model': model, 'os': os_name}
        if trusted_key_ids is not None:
            params.update(keys='given', key_id=list(trusted_key_ids))
        return self._packages(self.call('packages', 'GET', '/v1/packages/for', params=params))

    def deleted_packages(self) -> list[Tombstone]:
        return [wire.tombstone_from_dict(item) for item in self._field(self.call('packages', 'GET', '/v1/tombstones'), 'tombstones', list)]

    def add_files(self, paths: list[str], keyring: KeyRing, mode: str = 'needed', check_mode: bool = False) -> list[dict]:
        """Upload each file, then add them in one request: the repository verifies them with the keys the caller trusts."""
        uploads = [self._upload(path) for path in paths]
        answer = self.call(
            'add', 'POST', '/v1/packages', json={'uploads': uploads, 'mode': mode, 'check_mode': check_mode, 'trusted_keys': keyring.pem_texts()}
        )
        return self._field(answer, 'results', list)

    def _upload(self, path: str) -> str:
        name = os.path.basename(path)
        if not name.isascii() or not name.isprintable():  # an HTTP header carries ASCII: the repository keeps its own name
            name = 'package.zip'
        headers = {'X-Exup-File-Name': name, 'Content-Type': 'application/zip'}
        try:
            with open(path, 'rb') as handle:  # requests streams it
                answer = self.call('add', 'POST', '/v1/uploads', data=handle, headers=headers)
        except OSError as exc:
            raise ExupError('cannot read %s: %s' % (path, exc.strerror), code='file_unreadable', path=path) from None
        return str(self._field(answer, 'upload_id', str))

    def delete(self, package_ids: list[str], manager_id: str, force: bool = False, check_mode: bool = False) -> list[dict]:
        """Refused by the service for every caller (003 §3.6): asked, so the rule and its message stay the service's."""
        for package_id in package_ids:
            self.call('packages', 'DELETE', '/v1/packages/%s' % urllib.parse.quote(package_id, safe=''))
        return []

    def clear_tombstones(self, check_mode: bool = False) -> list[str]:
        return self._field(self.call('packages', 'POST', '/v1/tombstones/clear', json={'check_mode': check_mode}), 'cleared', list)

    def clear_refusals(self, package_ids: list[str] | None = None, check_mode: bool = False) -> list[dict]:
        body = {'package_ids': package_ids, 'check_mode': check_mode}
        return self._field(self.call('packages', 'POST', '/v1/refusals/clear', json=body), 'cleared', list)

    def export(
        self,
        dest: str,
        package_ids: Iterable[str] | None = None,
        module_ids: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        displayed_only: bool = True,
        check_mode: bool = False,
    ) -> list[dict]:
        """Save packages as one archive (003 §2.2.6): the repository builds it, this side fetches it to ``dest`` (beside it, renamed)."""
        body = {
            'package_ids': list(package_ids or ()),
            'module_ids': list(module_ids or ()),
            'models': list(models or ()),
            'displayed_only': displayed_only,
            'check_mode': check_mode,
        }
        made = self.call('export', 'POST', '/v1/exports', json=body)
        results = self._field(made, 'results', list)
        if check_mode:
            return results
        export_id = str(self._field(made, 'export_id', str))
        if not ID_PATTERN.fullmatch(export_id):
            raise ExupError('the repository at %s sent an export id that is not one' % self.base_url, code='service_answer_invalid')
        try:
            self._fetch_to(self.base_url + wire_export_path(export_id), dest, int(self._field(made, 'size', int)), 'the archive')
        finally:
            with contextlib.suppress(ExupError):
                self.call('export', 'DELETE', '/v1/exports/%s' % export_id)
        return results

    def _fetch_to(self, url: str, dest: str, size: int, what: str, sha256: str | None = None) -> None:
        """A file of the service to ``dest``: written beside it, exactly ``size`` bytes (and this SHA-256), then renamed.

        Errors: ``file_unavailable`` (the service refused it), ``repository_unreachable`` (broken off),
        ``digest_mismatch`` (not the bytes listed). Nothing is left at ``dest`` or beside it on a failure.
        """
        import requests

        tmp = dest + '.part'
        digest = hashlib.sha256()
        received = 0
        try:
            get = {'stream': True, 'timeout': (self.options.timeout, self.options.timeout), 'headers': {'Accept': '*/*'}, 'allow_redirects': False}
            with self.session.get(url, **get) as answer:
                if answer.status_code != 200:
                    raise ExupError('the repository at %s answered HTTP %d for %s' % (self.base_url, answer.status_code, what), code='file_unavailable')
                deadline = Deadline(BASE_SECONDS + size / SLOWEST_BYTES_PER_SECOND, 'the download of %s' % what)
                with open(tmp, 'wb') as handle:
                    for chunk in answer.iter_content(CHUNK):
                        received += len(chunk)
                        if received > size or deadline.expired():
                            break
                        digest.update(chunk)
                        handle.write(chunk)
                if deadline.expired():
                    slow = 'the download of %s from %s took longer than %.0f s' % (what, self.base_url, deadline.seconds)
                    raise ExupError(slow, code='repository_unreachable')
            if received != size or (sha256 is not None and digest.hexdigest() != sha256):
                raise ExupError('%s from %s is not the file the repository listed (size or SHA-256 differs)' % (what, self.base_url), code='digest_mismatch')
            os.replace(tmp, dest)
        except requests.exceptions.RequestException as exc:
            raise ExupError('the download of %s from %s broke off: %s' % (what, self.base_url, _reason(exc)), code='repository_unreachable') from None
        except OSError as exc:
            raise ExupError('cannot write %s: %s' % (tmp, exc.strerror or exc), code='os_error') from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def listing(self, manager_id: str, event_limit: int = 100, module_ids: Iterable[str] | None = None, models: Iterable[str] | None = None) -> dict:
        params = {'manager_id': manager_id, 'event_limit': event_limit, 'module_id': list(module_ids or ()), 'model': list(models or ())}
        answer = self.call('listing', 'GET', '/v1/listing', params=params)
        self._field(answer, 'packages', list)
        return answer

    # ----------------------------------------------------------------- downloads (003 §3.4.2: the repository's side downloads)
    def sync(self, client: HttpClient | None, keyring: KeyRing | None, options: SyncOptions, check_mode: bool = False) -> SyncResult:
        """Ask the repository to download now for this manager's servers, and wait for it within ``options.time_limit``.

        ``client`` and ``keyring`` are not used: the repository downloads with its own, from the feed it is configured with.
        """
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncResult

        body: dict[str, typing.Any] = {'manager_id': options.manager_id, 'check_mode': check_mode, 'accept_version_reset': options.accept_version_reset}
        if options.servers is not None:
            body['servers'] = [wire.server_as_dict(server) for server in options.servers]
        started = self.call('download', 'POST', '/v1/downloads', json=body)
        download_id = str(self._field(started, 'download_id', str))
        if not ID_PATTERN.fullmatch(download_id):
            raise ExupError('the repository at %s sent a download id that is not one' % self.base_url, code='service_answer_invalid')
        ends = time.monotonic() + options.time_limit
        state = started
        pause = FIRST_POLL_SECONDS  # a download that finds nothing new ends in milliseconds: ask soon, then less often
        while state.get('state') == 'running':
            if time.monotonic() >= ends:
                raise ExupError(
                    'the repository at %s did not finish its download within %s s (download %s goes on there)'
                    % (self.base_url, options.time_limit, download_id),
                    code='sync_timeout',
                    download_id=download_id,
                )
            time.sleep(min(pause, max(0.0, ends - time.monotonic())))
            pause = min(pause * 1.5, DOWNLOAD_POLL_SECONDS)
            state = self.call('download', 'GET', '/v1/downloads/%s' % download_id)
            if not isinstance(state, dict):
                raise ExupError('the repository at %s sent a download state that is not an object' % self.base_url, code='service_answer_invalid')
        if state.get('state') == 'failed':
            code = state.get('error')
            code = code if isinstance(code, str) and wire.ERROR_CODE.fullmatch(code) else 'service_failed'
            raise ExupError(str(state.get('msg', 'the download failed'))[: wire.MSG_LIMIT], code=code, download_id=download_id)
        return sync_result_from_dict(self._field(state, 'result', dict), SyncResult())

    def rebuild(self, keyring: KeyRing, check_mode: bool = False) -> dict:
        """Rebuild the repository's index from its pool (003 §4.4), on the repository host, with the keys the caller trusts."""
        answer = self.call('rebuild', 'POST', '/v1/rebuild', json={'trusted_keys': keyring.pem_texts(), 'check_mode': check_mode})
        self._field(answer, 'changed', bool)
        return answer

    # ----------------------------------------------------------------- servers of this manager
    def record_server(self, manager_id: str, server: Server) -> bool:
        answer = self.call('servers', 'PUT', self._server_path(manager_id, server.name), json=wire.server_as_dict(server))
        return bool(self._field(answer, 'changed', bool))

    def forget_server(self, manager_id: str, name: str, cause: str | None = None) -> bool:
        answer = self.call('servers', 'DELETE', self._server_path(manager_id, name), params={'cause': cause} if cause else None)
        return bool(self._field(answer, 'known', bool))

    def server_record_differs(self, manager_id: str, server: Server) -> bool:
        answer = self.call('servers', 'POST', self._server_path(manager_id, server.name, '/differs'), json=wire.server_as_dict(server))
        return bool(self._field(answer, 'differs', bool))

    def announce(self, manager_id: str, servers: list[Server] | None = None) -> list[str]:
        body = {} if servers is None else {'servers': [wire.server_as_dict(server) for server in servers]}
        answer = self.call('presence', 'POST', '/v1/managers/%s/presence' % urllib.parse.quote(manager_id, safe=''), json=body)
        return self._field(answer, 'expired', list)

    def bmc_module_records(self, manager_id: str, server: str) -> dict[str, BmcModuleRecord]:
        modules = self._field(self.call('servers', 'GET', self._server_path(manager_id, server, '/bmc-modules')), 'modules', dict)
        return {str(module_id): wire.bmc_record_from_dict(record) for module_id, record in modules.items()}

    def fleet(self, after: tuple[str, str] | None = None, limit: int | None = None) -> FleetPage:
        params: dict[str, typing.Any] = {'limit': limit or wire.FLEET_PAGE}
        if after:
            params.update(after_manager=after[0], after_name=after[1])
        return wire.fleet_page_from_dict(self.call('fleet', 'GET', '/v1/servers', params=params))

    def set_bmc_module(self, manager_id: str, server: str, module_id: str, **fields: typing.Any) -> None:
        self.call('servers', 'PATCH', self._server_path(manager_id, server, '/bmc-modules/%s' % urllib.parse.quote(module_id, safe='')), json=fields)

    # ----------------------------------------------------------------- statuses, restarts, settings
    def status_icons(self, manager_id: str, server: str, infos: Iterable[PackageInfo], kinds: Iterable[str] = ('linux',)) -> dict[str, str]:
        body = {'infos': [dataclasses.asdict(info) for info in infos], 'kinds': list(kinds)}
        return self._field(self.call('statuses', 'POST', self._server_path(manager_id, server, '/icons'), json=body), 'icons', dict)

    def set_manual_icons(self, manager_id: str, server: str, module_ids: Iterable[str], icon: str, check_mode: bool = False) -> list[dict]:
        body = {'module_ids': list(module_ids), 'icon': icon, 'check_mode': check_mode}
        return self._field(self.call('statuses', 'PUT', self._server_path(manager_id, server, '/icons'), json=body), 'results', list)

    def restarting(self, manager_id: str, server: str, boot_id: str | None = None, power: str | None = None) -> list[str]:
        params = {key: value for key, value in (('boot_id', boot_id), ('power', power)) if value}
        return self._field(self.call('statuses', 'GET', self._server_path(manager_id, server, '/restarting'), params=params), 'modules', list)

    def request_reboot(self, manager_id: str, server: str, modules: Iterable[str], boot_id: str | None = None, seconds: int = 3600) -> None:
        body = {'modules': list(modules), 'boot_id': boot_id, 'seconds': seconds}
        self.call('statuses', 'POST', self._server_path(manager_id, server, '/reboots'), json=body)

    def read_settings(self, check_mode: bool = False) -> dict:
        return self._field(self.call('settings', 'GET', '/v1/settings', params={'check_mode': 'true' if check_mode else 'false'}), 'settings', dict)

    def change_settings(self, wanted: dict, check_mode: bool = False) -> tuple:
        answer = self.call('settings', 'PATCH', '/v1/settings', json={'settings': wanted, 'check_mode': check_mode})
        return self._field(answer, 'before', dict), self._field(answer, 'settings', dict)

    # ----------------------------------------------------------------- the log
    def log_events(self, items: list[dict]) -> list[dict]:
        return self._field(self.call('events', 'POST', '/v1/events', json={'events': items}), 'events', list)

    def job_reported(self, job_id: str) -> bool:
        return bool(self._field(self.call('events', 'GET', '/v1/jobs/%s/reported' % urllib.parse.quote(job_id, safe='')), 'reported', bool))

    def recent_events(self, limit: int, server: str | None = None) -> list[dict]:
        """GET /v1/events (read user); a service of API version 3 or older has no such route: no events, as a log without history."""
        limit = min(limit, wire.EVENTS_MAX)
        if limit <= 0 or 'events_read' in self.about().get('limited', ()):
            return []
        params: dict[str, typing.Any] = {'limit': limit}
        if server is not None:
            params['server'] = server
        return wire.events_from_dict(self.call('events_read', 'GET', '/v1/events', params=params), limit, server)

    # ----------------------------------------------------------------- package files
    def ticket_urls(self, packages: Iterable[StoredPackage], seconds: int = 3600, base_url: str | None = None) -> dict[str, str]:
        """sha256 -> a signed URL of each package's file that a BMC or managed host fetches without a password, for ``seconds``.

        ``base_url``: the service as those machines reach it, when not as this controller does (a NAT, another name).
        """
        digests = sorted({package.sha256 for package in packages})
        answer = self.call('pool', 'POST', '/v1/pool/tickets', json={'sha256': digests, 'seconds': seconds})
        urls = self._field(answer, 'urls', dict)
        base = (base_url or self.base_url).rstrip('/')
        found = {}
        for digest in digests:
            relative = urls.get(digest)
            if not isinstance(relative, str) or not relative.startswith(wire.pool_path(digest) + '?'):
                raise ExupError('the repository at %s sent no valid ticket for %s' % (self.base_url, digest), code='service_answer_invalid')
            found[digest] = base + relative
        return found

    def fetch_file(self, package: StoredPackage, folder: str) -> str:
        """Download a package's file into ``folder`` (the controller's): exactly its size, its SHA-256 checked. The local path."""
        path = os.path.join(folder, '%s.zip' % package.sha256)
        if not (os.path.exists(path) and file_digest(path) == (package.size, package.sha256)):
            self._fetch_to(package.path, path, package.size, 'package %s' % package.package_id, package.sha256)
        return path


def wire_export_path(export_id: str) -> str:
    return '/v1/exports/%s.zip' % urllib.parse.quote(export_id, safe='')


def sync_result_from_dict(data: dict, result: SyncResult) -> SyncResult:
    """A SyncResult from the download state the service answered (lists and counts only)."""
    for name in ('added', 'removed', 'refused', 'events', 'skipped_tombstoned'):
        value = data.get(name, [])
        setattr(result, name, value if isinstance(value, list) else [])
    result.catalog = data['catalog'] if isinstance(data.get('catalog'), dict) else {}
    bytes_downloaded = data.get('bytes_downloaded', 0)
    result.bytes_downloaded = bytes_downloaded if isinstance(bytes_downloaded, int) else 0
    result.feed_unchanged = bool(data.get('feed_unchanged'))
    result.plan_skipped = bool(data.get('plan_skipped'))
    return result


def _reason(exc: Exception) -> str:
    """The innermost reason of a requests error, short (no URL with credentials: the session sends them in a header)."""
    text = str(exc)
    return text[:300]
