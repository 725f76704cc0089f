# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP for the repository: retries, proxy Basic/Digest auth, TLS, conditional GET, bounded resumable download.

A client may also hold credentials for one origin (``use_credentials``): an upstream repository service's
feed view asks for Basic auth (docs/architecture.md "Chained repositories"). They go to that origin only
(scheme, host and port), never to a redirect elsewhere, and never into a message or a log.

With pycurl, every request goes through libcurl (one handle per thread, kept alive), which does proxy
Basic and Digest itself, also for the CONNECT of https:// feeds. Without it, or for an https:// proxy
URL, requests does the HTTP (``requests_path``, imported only then: its imports cost about 60 ms of a
module run). NTLM is refused with a clear message, as 003 §2.2.7 says it is not supported.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import email.utils
import hashlib
import http.client
import importlib.util
import json
import math
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import retry_sleep
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import TransportError

# Looked up, not imported: requests is imported by the first request that takes its path.
HAS_REQUESTS = importlib.util.find_spec('requests') is not None
REQUESTS_IMPORT_ERROR = None if HAS_REQUESTS else ImportError('No module named requests')

try:
    import pycurl

    HAS_PYCURL = True
except ImportError:  # the package downloads then take requests' path
    HAS_PYCURL = False

try:
    import certifi

    CA_BUNDLE: str | None = certifi.where()  # requests' default trust store: the fast path trusts the same CAs
except ImportError:  # pragma: no cover - certifi comes with requests
    CA_BUNDLE = None

HAS_TOOLBELT = importlib.util.find_spec('requests_toolbelt') is not None  # Digest proxies on requests' path


if TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import Deadline

#: called with the byte count of each piece of a download as it arrives
Progress = Callable[[int], object]

CHUNK = 1024 * 1024
USER_AGENT = 'exup.fleet/0.1'
RESUME_ATTEMPTS = 3
MAX_JSON_ANSWER = 8 * 1024 * 1024  # the biggest JSON answer request_json reads (the service's own bound, wire.MAX_JSON_BYTES)


def _proxy_url_with_credentials(proxy_url: str, username: str, password: str) -> str:
    parts = urllib.parse.urlsplit(proxy_url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise TransportError('proxy URL %r must look like http://host:port' % proxy_url, code='proxy_invalid')
    netloc = '%s:%s@%s' % (urllib.parse.quote(username, safe=''), urllib.parse.quote(password, safe=''), parts.netloc.rpartition('@')[2])
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, '', ''))


def digest_authorization(challenge: str, username: str, password: str, method: str, uri: str, nonce_count: int) -> str:
    """The Proxy-Authorization value answering a Digest ``challenge`` (RFC 7616, qop auth or none).

    Written here because requests' HTTPDigestAuth builds the digest URI from a
    URL path, while a CONNECT's URI is ``host:port``; the hashing is hashlib's.
    """
    scheme, _sep, rest = challenge.partition(' ')
    if scheme.lower() != 'digest':
        raise TransportError('not a Digest challenge: %s' % scheme, code='proxy_auth_failed')
    import urllib.request  # pylint: disable=import-outside-toplevel  # only for a Digest tunnel on requests' path

    params: dict[str, Any] = urllib.request.parse_keqv_list(urllib.request.parse_http_list(rest))
    algorithm = params.get('algorithm', 'MD5')
    hash_name = {'MD5': 'md5', 'SHA-256': 'sha256'}.get(algorithm.upper())
    if hash_name is None or 'nonce' not in params or 'realm' not in params:
        raise TransportError('the proxy offers Digest with %s, which is not supported' % algorithm, code='proxy_auth_unsupported')

    def digest(text: str) -> str:
        return hashlib.new(hash_name, text.encode('utf-8')).hexdigest()

    ha1 = digest('%s:%s:%s' % (username, params['realm'], password))
    ha2 = digest('%s:%s' % (method, uri))
    fields = {'username': username, 'realm': params['realm'], 'nonce': params['nonce'], 'uri': uri, 'algorithm': algorithm}
    if 'auth' in [item.strip() for item in params.get('qop', '').split(',')]:
        cnonce = os.urandom(8).hex()
        fields['response'] = digest('%s:%s:%08x:%s:auth:%s' % (ha1, params['nonce'], nonce_count, cnonce, ha2))
        fields.update(cnonce=cnonce)
        unquoted = ', qop=auth, nc=%08x' % nonce_count
    else:
        fields['response'] = digest('%s:%s:%s' % (ha1, params['nonce'], ha2))
        unquoted = ''
    if 'opaque' in params:
        fields['opaque'] = params['opaque']
    return 'Digest ' + ', '.join('%s="%s"' % item for item in fields.items()) + unquoted


def _ntlm_only(offered: list[str]) -> bool:
    """True when the Proxy-Authenticate values offer only NTLM or Negotiate (not supported, 003 §2.2.7)."""
    schemes = {value.strip().split(' ')[0].lower() for value in offered if value.strip()}
    return bool(schemes) and schemes <= {'ntlm', 'negotiate'}


_ACTIVE = threading.local()  # .watch: the _RequestWatch of the request this thread is making


class _RequestWatch:
    """Ends one request at its deadline, wherever it waits: connect, proxy tunnel, headers or body.

    A socket timeout bounds each read only, so a server trickling a byte every 2 s is never cut.
    At the deadline a timer shuts the request's socket down (through a duplicate of its descriptor,
    which also reaches a TLS socket), so the blocked read returns at once; the request then fails
    with the deadline's error. Connections register their socket with the watch of their thread.
    """

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline.remaining(), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _RequestWatch:
        _ACTIVE.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _ACTIVE.watch = None
        with self._lock:
            self._release()

    def attach(self, sock: socket.socket) -> None:
        """The socket the request now waits on."""
        with self._lock:
            self._release()
            try:
                self._sock = socket.socket(sock.family, sock.type, sock.proto, os.dup(sock.fileno()))
            except OSError:
                return  # already closed: nothing to wait on
            if self.fired:
                self._shut()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _attach(sock: socket.socket | None) -> None:
    watch = getattr(_ACTIVE, 'watch', None)
    if watch is not None and sock is not None:
        watch.attach(sock)


def _active_deadline() -> Deadline | None:
    watch = getattr(_ACTIVE, 'watch', None)
    return watch.deadline if watch is not None else None


def _requests_path() -> Any:
    """The requests side of the client (module requests_path), imported on first use."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup import requests_path  # pylint: disable=import-outside-toplevel

    return requests_path


@dataclasses.dataclass(frozen=True)
class Download:
    """A finished download: the complete .part file, and its bytes when the caller asked to keep them."""

    path: str  # exactly the size asked for, with the SHA-256 asked for; written, NOT fsynced (the store does that)
    data: bytes | None  # the whole body when keep_bytes was True, else None
    fetched: int  # bytes that came over the network in this call (a resume fetches fewer than size)


# --- the decisions both download paths make (libcurl's callbacks, requests' loops): one place for each ----------
#
# Each returns the refusal (a TransportError) or None when the answer passes; the callers raise it, and delete
# the .part for a verdict on the bytes (download_too_long, digest_mismatch).


def stated_length(value: str | None) -> int | None:
    """A Content-Length value as a number; None when absent or not a number (requests' path reads it as no length).

    isascii: headers are read as Latin-1, and "\u00b2" (byte 0xb2) passed isdigit() but not int().
    """
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def status_refusal(url: str, status: int, user: str | None = None) -> TransportError:
    """An answer that is neither a body to keep nor "unchanged" (a 407 is the proxy's refusal, decided apart).

    A 401 says the server wants credentials: ``user`` is the one sent to it (None: none were)."""
    if status == 401 and user is None:
        return TransportError(
            'GET %s answered HTTP 401: the server asks for credentials; give its user and password (feed_username, feed_password)' % url,
            code='feed_auth_required',
            status=status,
        )
    if status == 401:
        return TransportError('GET %s answered HTTP 401: the server refused the credentials of user %s' % (url, user), code='feed_auth_failed', status=status)
    return TransportError('GET %s answered HTTP %d' % (url, status), code='http_status', status=status)


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``, the port filled in: where credentials given for ``url`` may go."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or '').lower(), port or {'http': 80, 'https': 443}.get(scheme, 0)


def part_mode(status: int, have: int, content_range: str | None) -> str | None:
    """How a download's answer goes to a .part holding ``have`` bytes: 'ab' for a 206 from byte ``have``, 'wb' for a
    200 (the whole file again), None when it is no body to keep (status_refusal)."""
    if status == 206 and have and (content_range or '').startswith('bytes %d-' % have):
        return 'ab'
    return 'wb' if status == 200 else None


def bound_refusal(url: str, max_bytes: int | None, stated: str | None) -> TransportError | None:
    """A conditional GET's answer that states more than ``max_bytes``."""
    length = stated_length(stated)
    if max_bytes and length is not None and length > max_bytes:
        return TransportError('%s is larger than %d bytes (it states %s)' % (url, max_bytes, stated), code='download_too_long')
    return None


def past_bound_refusal(url: str, max_bytes: int | None, have: int, more: int) -> TransportError | None:
    """A conditional GET's body that, with ``more`` bytes after ``have``, would pass ``max_bytes``."""
    if max_bytes and have + more > max_bytes:
        return TransportError('%s is larger than %d bytes' % (url, max_bytes), code='download_too_long')
    return None


def size_refusal(url: str, size: int, have: int, stated: str | None) -> TransportError | None:
    """A download's answer that states more bytes, after the ``have`` of the .part, than the catalog's ``size``."""
    length = stated_length(stated)
    if length is not None and have + length > size:
        return TransportError('%s is %d bytes long, more than the %d bytes the catalog states' % (url, have + length, size), code='download_too_long')
    return None


def past_size_refusal(url: str, size: int, have: int, more: int) -> TransportError | None:
    """A download's body that, with ``more`` bytes after ``have``, would pass the catalog's ``size``."""
    if have + more > size:
        return TransportError('%s sent more than the %d bytes the catalog states; download stopped' % (url, size), code='download_too_long')
    return None


def answer_cut(url: str, have: int, text: str, stalled_for: float | None = None) -> TransportError:
    """A conditional GET's body broken off after ``have`` bytes; ``stalled_for``: nothing came for that many seconds."""
    if stalled_for is not None:
        return TransportError('%s sent nothing for %s s after %d bytes: %s' % (url, stalled_for, have, text), code='read_timeout')
    return TransportError('the answer of %s was cut after %d bytes: %s' % (url, have, text), code='download_truncated')


def download_cut(url: str, have: int, size: int, text: str) -> TransportError:
    """A download broken off, by a cut or a stall alike: download_truncated, which fetch resumes."""
    return TransportError('download of %s was cut after %d of %d bytes: %s' % (url, have, size, text), code='download_truncated')


def cancelled_refusal(url: str, have: int, size: int) -> TransportError:
    """A download ended by its ``stop`` event (the sync ends: Ctrl-C or a failure); the .part is kept for a resume."""
    return TransportError('download of %s stopped after %d of %d bytes: the sync is ending' % (url, have, size), code='download_cancelled')


def short_refusal(url: str, have: int, size: int) -> TransportError | None:
    """A download whose answer ended before the catalog's ``size`` (resumable: the .part is kept)."""
    if have < size:
        return TransportError('download of %s ended after %d of %d bytes' % (url, have, size), code='download_truncated')
    return None


def digest_refusal(url: str, digest: str, sha256: str) -> TransportError | None:
    """A complete download whose SHA-256 is not the catalog's."""
    if digest != sha256:
        return TransportError('%s does not match the SHA-256 the catalog states: it was altered in transit or on the server' % url, code='digest_mismatch')
    return None


def tls_refusal(url: str, text: str) -> TransportError:
    return TransportError('TLS verification of %s failed: %s' % (_host(url), text), code='tls_failed')


def proxy_failure(proxy_url: str | None, url: str, text: str) -> TransportError:
    return TransportError('the proxy %s refused or failed the request for %s: %s' % (proxy_url, _host(url), text), code='proxy_failed')


def unreachable(url: str, text: str) -> TransportError:
    return TransportError('cannot reach %s: %s' % (_host(url), text), code='connection_failed')


def _raise_if(error: TransportError | None) -> None:
    if error is not None:
        raise error


class HttpClient:
    """One configured HTTP client, safe to share between download threads (a session per thread)."""

    def __init__(
        self,
        proxy_url: str | None = None,
        proxy_username: str | None = None,
        proxy_password: str | None = None,
        proxy_auth: str = 'basic',
        validate_certs: bool = True,
        ca_path: str | None = None,
        timeout: float = 30,
        retries: int = 3,
    ) -> None:
        if proxy_auth not in ('basic', 'digest'):
            raise TransportError('proxy_auth %r is not supported: use basic or digest (NTLM is not supported)' % proxy_auth, code='proxy_auth_unsupported')
        if proxy_auth == 'digest' and proxy_username and not HAS_TOOLBELT:
            raise TransportError('proxy Digest authentication needs the requests-toolbelt Python library', code='missing_library')
        self.proxy_url = proxy_url
        self.proxy_username = proxy_username
        self.proxy_password = proxy_password
        self.proxy_auth = proxy_auth
        self.verify: str | bool = ca_path if (validate_certs and ca_path) else bool(validate_certs)
        self.timeout = timeout
        self.retries = retries
        self._local = threading.local()
        self._challenges: dict[str, str] = {}  # tunnel target -> Digest challenge, shared by the download threads
        self._credentials: dict[tuple[str, str, int], tuple[str, str]] = {}  # origin -> (user, password): see use_credentials
        self._nonce_count = 0
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        """This thread's requests.Session (requests is imported on the first use: the libcurl path does without it)."""
        session = getattr(self._local, 'session', None)
        if session is None:
            session = self._local.session = _requests_path().make_session(self)
        return session

    def use_credentials(self, url: str, username: str, password: str) -> None:
        """Send Basic auth ``username``/``password`` with every request to the origin of ``url`` (scheme, host, port), and only there.

        libcurl and requests both drop them on a redirect to another host; a catalog entry's URL is relative to the
        catalog's, so the packages of a feed stay on its origin.
        """
        origin = origin_of(url)
        if origin[0] not in ('http', 'https') or not origin[1]:
            raise TransportError('credentials need an http:// or https:// URL, not %r' % url, code='feed_invalid')
        self._credentials[origin] = (username, password)

    def _credentials_for(self, url: str) -> tuple[str, str] | None:
        return self._credentials.get(origin_of(url)) if self._credentials else None

    def _user_for(self, url: str) -> str | None:
        credentials = self._credentials_for(url)
        return credentials[0] if credentials else None

    def _with_credentials(self, url: str, headers: dict[str, str] | None) -> dict[str, str] | None:
        """``headers`` with the Authorization of ``url``'s origin (requests drops it on a redirect to another host)."""
        credentials = self._credentials_for(url)
        if credentials is None:
            return headers
        token = base64.b64encode(('%s:%s' % (credentials[0], credentials[1])).encode('utf-8')).decode('ascii')
        return dict(headers or {}, Authorization='Basic ' + token)

    def _scrub(self, text: str) -> str:
        """Never let a proxy or feed password reach a message or a log."""
        secrets = [self.proxy_password] + [password for _user, password in self._credentials.values()]
        for secret in secrets:
            if secret:
                for form in (secret, urllib.parse.quote(secret, safe='')):
                    text = text.replace(form, '********')
        return text

    def tunnel_challenges(self, target: str) -> tuple[int, list[str]]:
        """Ask the proxy for a tunnel to ``target`` without credentials; return its Proxy-Authenticate values."""
        parts = urllib.parse.urlsplit(self.proxy_url)
        deadline = _active_deadline()
        # cast: only called with a proxy configured
        connection = http.client.HTTPConnection(cast(str, parts.hostname), parts.port or 80, timeout=deadline.wait(self.timeout) if deadline else self.timeout)
        try:
            connection.connect()
            _attach(connection.sock)
            connection.request('CONNECT', target, headers={'Host': target, 'User-Agent': USER_AGENT})
            response = connection.getresponse()
            return response.status, response.msg.get_all('Proxy-Authenticate') or []
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError('cannot reach the proxy %s: %s' % (self.proxy_url, exc), code='proxy_failed') from exc
        finally:
            connection.close()

    def tunnel_authorization(self, target: str) -> str:
        """Digest Proxy-Authorization for a CONNECT to ``target`` (the challenge is asked for once)."""
        with self._lock:
            challenge = self._challenges.get(target)
            if challenge is None:
                _status, offered = self.tunnel_challenges(target)
                digests = [value for value in offered if value.lower().startswith('digest ')]
                if not digests:
                    raise self._scheme_error(offered)
                challenge = self._challenges[target] = digests[0]
            self._nonce_count += 1
            # cast: a Digest tunnel is set up only with a proxy user name
            return digest_authorization(challenge, cast(str, self.proxy_username), self.proxy_password or '', 'CONNECT', target, self._nonce_count)

    def _scheme_error(self, offered: list[str]) -> TransportError:
        """The proxy offers no scheme we can use for a tunnel."""
        if _ntlm_only(offered):
            return self._proxy_refusal(offered)
        return TransportError(
            'the proxy %s does not offer %s authentication (it offers %s)' % (self.proxy_url, self.proxy_auth, ', '.join(offered) or 'none'),
            code='proxy_auth_failed',
        )

    def _proxy_refusal(self, offered: list[str], tunnel_to: str | None = None) -> TransportError:
        """The error for a 407 (``offered``: its Proxy-Authenticate values): NTLM, no credentials, or credentials refused."""
        if _ntlm_only(offered):
            return TransportError(
                'the proxy %s asks for NTLM authentication, which is not supported; configure Basic or Digest auth on the proxy (003 §2.2.7)' % self.proxy_url,
                code='proxy_ntlm_unsupported',
            )
        if not self.proxy_username:
            return TransportError(
                'the proxy %s requires authentication (%s): set proxy_username and proxy_password' % (self.proxy_url, ', '.join(offered) or 'no scheme given'),
                code='proxy_auth_required',
            )
        where = ' for a tunnel to %s' % tunnel_to if tunnel_to else ''
        return TransportError(
            'the proxy %s refused the credentials of user %s%s (407): wrong user name or password, or wrong proxy_auth (%s; proxy offers %s)'
            % (self.proxy_url, self.proxy_username, where, self.proxy_auth, ', '.join(offered) or 'nothing'),
            code='proxy_auth_failed',
        )

    def _tunnel_refused(self, url: str) -> TransportError:
        """The error for a CONNECT answered 407: asks the proxy which schemes it offers, to say why."""
        parts = urllib.parse.urlsplit(url)
        target = '%s:%d' % (parts.hostname, parts.port or 443)
        try:
            _status, offered = self.tunnel_challenges(target)
        except TransportError:
            offered = []
        return self._proxy_refusal(offered, tunnel_to=target)

    def _get(self, url: str, **kwargs: Any) -> Any:
        kwargs['headers'] = self._with_credentials(url, kwargs.get('headers'))
        try:
            return self._get_once(url, **kwargs)
        except TransportError as exc:
            if exc.code != 'proxy_tunnel_407':
                raise
        if self.proxy_auth == 'digest' and self.proxy_username:
            # The challenge may have gone stale: ask for a new one, on a new session, once.
            with self._lock:
                self._challenges.clear()
            self._local.session = None
            try:
                return self._get_once(url, **kwargs)
            except TransportError as exc:
                if exc.code != 'proxy_tunnel_407':
                    raise
        raise self._tunnel_refused(url)

    def _get_once(self, url: str, method: str = 'GET', **kwargs: Any) -> Any:
        deadline = _active_deadline()
        rp = _requests_path()
        kwargs.setdefault('allow_redirects', True)
        try:
            response = self.session.request(method, url, timeout=deadline.wait(self.timeout) if deadline else self.timeout, **kwargs)
        except rp.SSLError as exc:
            raise tls_refusal(url, self._scrub(_short(exc))) from exc
        except rp.ProxyError as exc:
            if '407' in str(exc):
                raise TransportError('tunnel refused (407)', code='proxy_tunnel_407') from exc
            raise proxy_failure(self.proxy_url, url, self._scrub(_short(exc))) from exc
        except rp.RequestException as exc:
            raise unreachable(url, self._scrub(_short(exc))) from exc
        if response.status_code == 407:
            response.close()
            raise self._proxy_refusal(response.raw.headers.getlist('Proxy-Authenticate'))
        return response

    @contextlib.contextmanager
    def _within(self, deadline: Deadline | None, url: str, watch: bool = True) -> Iterator[None]:
        """Make one request end by ``deadline`` (None: per-read timeouts only). Past it, a failure is request_timeout.

        A verdict on the bytes (too long, digest) stands; a cut, a stall or a short body caused by the
        deadline's shutting the socket is the deadline's.
        """
        if deadline is None:
            yield
            return
        if deadline.expired():
            raise _timed_out(deadline, url)
        if not watch:  # libcurl ends the request itself (TIMEOUT_MS): no timer thread
            try:
                yield
            except TransportError as exc:
                if exc.code not in _VERDICTS and deadline.expired():
                    raise _timed_out(deadline, url) from None
                raise
            return
        with _RequestWatch(deadline) as request_watch:
            try:
                yield
            except TransportError as exc:
                if exc.code not in _VERDICTS and (request_watch.fired or deadline.expired()):
                    raise _timed_out(deadline, url) from None
                raise
            if request_watch.fired:
                raise _timed_out(deadline, url)

    def get_conditional(
        self,
        url: str,
        etag: str | None = None,
        last_modified: str | None = None,
        params: Mapping[str, Any] | None = None,
        max_bytes: int | None = None,
        deadline: Deadline | None = None,
    ) -> dict[str, Any]:
        """GET with If-None-Match / If-Modified-Since. Returns a dict with status, body, etag, last_modified, final_url.

        status 304 means unchanged (body None). The body (a bytearray) is read up to ``max_bytes``.
        ``deadline`` (a Deadline): the whole request, connect to last byte, ends by it (request_timeout).
        """
        if self.fast_path():
            try:
                with self._within(deadline, url, watch=False):
                    return self._curl_conditional(url, etag, last_modified, params, max_bytes, deadline)
            except _Malformed:
                pass  # requests' path reads what libcurl refuses (a Content-Length that is not a number), as it always did
        with self._within(deadline, url):
            return self._get_conditional(url, etag, last_modified, params, max_bytes)

    def _curl_conditional(
        self, url: str, etag: str | None, last_modified: str | None, params: Mapping[str, Any] | None, max_bytes: int | None, deadline: Deadline | None
    ) -> dict[str, Any]:
        """``get_conditional`` on libcurl: the same result, refusals and error codes as on requests."""
        asked = url + ('&' if '?' in url else '?') + urllib.parse.urlencode(params, doseq=True) if params else url
        headers = ['If-None-Match: %s' % etag] if etag else []
        if last_modified:
            headers.append('If-Modified-Since: %s' % last_modified)
        answer = _Answer(url, asked, headers, max_bytes)
        self._curl_get(answer, deadline)
        curl = self._curl()
        return {
            'status': answer.status,
            'etag': answer.header('etag'),
            'final_url': str(curl.getinfo(pycurl.EFFECTIVE_URL)).split('?', maxsplit=1)[0],
            'last_modified': answer.header('last-modified'),
            'redirected': curl.getinfo(pycurl.REDIRECT_COUNT) > 0,
            'body': None if answer.status == 304 else answer.body,
        }

    def _get_conditional(
        self, url: str, etag: str | None, last_modified: str | None, params: Mapping[str, Any] | None, max_bytes: int | None
    ) -> dict[str, Any]:
        headers = {}
        if etag:
            headers['If-None-Match'] = etag
        if last_modified:
            headers['If-Modified-Since'] = last_modified
        response = self._get(url, headers=headers, params=params, stream=True)
        with response:
            result: dict[str, Any] = {
                'status': response.status_code,
                'etag': response.headers.get('ETag'),
                'final_url': response.url.split('?')[0],
                'last_modified': response.headers.get('Last-Modified'),
                'redirected': bool(response.history),
                'body': None,
            }
            if response.status_code == 304:
                return result
            if response.status_code != 200:
                raise status_refusal(url, response.status_code, self._user_for(url))
            # One buffer, never more than max_bytes: a list of chunks joined at the end held the body twice.
            _raise_if(bound_refusal(url, max_bytes, response.headers.get('Content-Length', '')))
            result['body'] = self._read_body(url, response, max_bytes)
        return result

    def _read_body(self, url: str, response: Any, max_bytes: int | None) -> bytearray:
        """The whole body of ``response`` in one buffer; a cut or a stall mid-body is a transport error, not a traceback."""
        body = bytearray()
        rp = _requests_path()
        try:
            for chunk in rp.body_as_it_arrives(response):
                _raise_if(past_bound_refusal(url, max_bytes, len(body), len(chunk)))
                body += chunk
        except rp.ReadTimeout as exc:
            raise answer_cut(url, len(body), self._scrub(_short(exc)), stalled_for=self.timeout) from exc
        except rp.RequestException as exc:
            raise answer_cut(url, len(body), self._scrub(_short(exc))) from exc
        return body

    def request_json(self, method: str, url: str, body: Any = None, deadline: Deadline | None = None, max_bytes: int = MAX_JSON_ANSWER) -> tuple[int, Any]:
        """One JSON exchange with a repository service (a chained repository's calls to its upstream): (status, answer).

        The answer is the decoded JSON body, or None when there is none or it is not JSON; the caller reads the status.
        Redirects are not followed (a POST is not sent again elsewhere). On requests' path: a few calls per sync.
        ``deadline`` (a Deadline): the whole exchange ends by it (request_timeout).
        """
        with self._within(deadline, url):
            return self._request_json(method, url, body, max_bytes)

    def _request_json(self, method: str, url: str, body: Any, max_bytes: int) -> tuple[int, Any]:
        headers = {'Accept': 'application/json'}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(',', ':')).encode('utf-8')
            headers['Content-Type'] = 'application/json'
        response = self._get(url, method=method, headers=headers, data=data, stream=True, allow_redirects=False)
        with response:
            _raise_if(bound_refusal(url, max_bytes, response.headers.get('Content-Length', '')))
            raw = self._read_body(url, response, max_bytes)
        try:
            answer = json.loads(bytes(raw).decode('utf-8')) if raw else None
        except (ValueError, RecursionError):
            answer = None
        return response.status_code, answer

    def download(self, url: str, part_path: str, size: int, sha256: str, progress: Progress | None = None, deadline: Deadline | None = None) -> str:
        """Fetch ``url`` into ``part_path`` (see ``fetch``); returns ``part_path``."""
        return self.fetch(url, part_path, size, sha256, progress=progress, deadline=deadline).path

    def fetch(
        self,
        url: str,
        part_path: str,
        size: int,
        sha256: str,
        keep_bytes: bool = False,
        progress: Progress | None = None,
        deadline: Deadline | None = None,
        stop: threading.Event | None = None,
    ) -> Download:
        """Fetch ``url`` into ``part_path``: exactly ``size`` bytes whose SHA-256 is ``sha256``.

        Resumes from an existing .part (Range request), retrying a cut
        connection up to RESUME_ATTEMPTS times; the digest is computed while
        downloading. Never writes past ``size``: a longer answer is refused and
        its .part deleted. A truncated download keeps its .part for the next try.
        ``deadline`` (a Deadline): each attempt ends by it (request_timeout); the .part is kept.
        ``keep_bytes``: the Download also carries the whole body (the caller bounds ``size``).
        ``stop``: set by another thread (the sync's, when it ends on Ctrl-C or a failure), it ends the download at its
        next piece of data and refuses a next attempt (download_cancelled, the .part kept). One that receives nothing
        ends at its read timeout.
        The .part is written, not fsynced: making it durable is the store's job.
        """
        last_error: TransportError | None = None
        restarted = False
        tally = _Tally(stop)
        fast = self.fast_path()
        for _attempt in range(RESUME_ATTEMPTS):
            if tally.stopped():
                raise cancelled_refusal(url, tally.fetched, size)
            resumed = os.path.exists(part_path)
            try:
                with self._within(deadline, url, watch=not fast):
                    data = self._attempt(fast, url, part_path, size, sha256, progress, keep_bytes, tally, deadline)
                return Download(part_path, data, tally.fetched)
            except TransportError as exc:
                # A resumed .part may hold bytes from an earlier, different file: start over once.
                if exc.code == 'digest_mismatch' and resumed and not restarted:
                    restarted = True
                    last_error = exc
                    continue
                if exc.code != 'download_truncated':
                    raise
                last_error = exc
        # cast: RESUME_ATTEMPTS >= 1, and every pass that did not return set it (ansible-test forbids assert)
        raise cast(TransportError, last_error)

    def _attempt(
        self,
        fast: bool,
        url: str,
        part_path: str,
        size: int,
        sha256: str,
        progress: Progress | None,
        keep_bytes: bool,
        tally: _Tally,
        deadline: Deadline | None,
    ) -> bytes | None:
        """One attempt of ``fetch``: on libcurl, or on requests when there is no pycurl or libcurl finds the answer malformed."""
        if fast:
            try:
                return self._curl_once(_Transfer(url, part_path, size, keep_bytes, progress, tally), sha256, deadline)
            except _Malformed:
                pass  # e.g. a Content-Length that is not a number: requests' path reads it as no length, as it always did
        return self._download_once(url, part_path, size, sha256, progress, keep_bytes, tally)

    def fast_path(self) -> bool:
        """True when package downloads go through libcurl (pycurl); else through requests, as the catalog does.

        An https:// proxy URL (TLS to the proxy itself) stays on requests' path: it would need its own TLS options.
        """
        return HAS_PYCURL and not (self.proxy_url or '').lower().startswith('https:')

    def _curl(self) -> Any:
        """This thread's libcurl handle: reused for every package, so its connection is kept alive between them."""
        curl = getattr(self._local, 'curl', None)
        if curl is None:
            curl = self._local.curl = pycurl.Curl()
            curl.setopt(pycurl.NOSIGNAL, 1)  # required with threads: no SIGALRM for DNS timeouts
            curl.setopt(pycurl.BUFFERSIZE, CURL_BUFFER)
            curl.setopt(pycurl.USERAGENT, USER_AGENT)
            curl.setopt(pycurl.FOLLOWLOCATION, 1)
            curl.setopt(pycurl.MAXREDIRS, 30)  # requests' limit
            curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
            curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
            curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self.timeout * 1000)))
            # requests' read timeout: nothing received for ``timeout`` seconds ends the transfer
            curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
            curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(self.timeout)))
            self._curl_tls(curl)
            curl.setopt(pycurl.HTTPAUTH, pycurl.HTTPAUTH_BASIC)  # credentials (use_credentials) go with the first request
            # '' and not unset: libcurl would otherwise take http_proxy from the environment (requests' trust_env=False)
            curl.setopt(pycurl.PROXY, self.proxy_url or '')
            if self.proxy_url and self.proxy_username:
                curl.setopt(pycurl.PROXYUSERNAME, self.proxy_username)
                curl.setopt(pycurl.PROXYPASSWORD, self.proxy_password or '')
                # only the configured scheme: never NTLM or Negotiate (003 §2.2.7)
                curl.setopt(pycurl.PROXYAUTH, pycurl.HTTPAUTH_DIGEST if self.proxy_auth == 'digest' else pycurl.HTTPAUTH_BASIC)
        return curl

    def _curl_tls(self, curl: Any) -> None:
        if self.verify is False:
            curl.setopt(pycurl.SSL_VERIFYPEER, 0)
            curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        elif isinstance(self.verify, str):  # ca_path: a CA file or a directory of hashed certificates, as requests takes it
            # None clears libcurl's built-in defaults: trust exactly ca_path, as requests does
            directory = os.path.isdir(self.verify)
            curl.setopt(pycurl.CAINFO, None if directory else self.verify)
            curl.setopt(pycurl.CAPATH, self.verify if directory else None)
        elif CA_BUNDLE:
            curl.setopt(pycurl.CAINFO, CA_BUNDLE)
            curl.setopt(pycurl.CAPATH, None)

    def _curl_once(self, transfer: _Transfer, sha256: str, deadline: Deadline | None) -> bytes | None:
        """One attempt of ``fetch`` on libcurl: the same answers, refusals and error codes as ``_download_once``."""
        try:
            if transfer.have < transfer.size:
                self._curl_get(transfer, deadline)
            return transfer.finish(sha256)
        finally:
            transfer.close()

    def _curl_get(self, transfer: _Exchange, deadline: Deadline | None) -> None:
        """GET with the retries of the requests path: connect failures and 500-504 (Retry-After honoured, capped)."""
        for attempt in range(self.retries + 1):
            try:
                self._curl_perform(transfer, deadline)
            except _Retryable as exc:
                if attempt == self.retries:
                    raise exc.error from None
                wait = _backoff(attempt)
            else:
                if transfer.status not in RETRY_STATUSES or attempt == self.retries:
                    break
                asked = _retry_after(transfer.header('retry-after'))
                wait = _backoff(attempt) if asked is None else asked
            time.sleep(retry_sleep(wait, deadline))
            transfer.again()
        self._check_answer(transfer)

    def _check_answer(self, transfer: _Exchange) -> None:
        status = transfer.status
        if status == 407:
            raise self._proxy_refusal(transfer.offered)
        if not transfer.accepted():
            raise status_refusal(transfer.url, status, self._user_for(transfer.url))

    def _curl_perform(self, transfer: _Exchange, deadline: Deadline | None) -> None:
        curl = self._curl()
        curl.setopt(pycurl.URL, transfer.request_url)
        start = transfer.range_start()
        curl.setopt(pycurl.RANGE, '%d-' % start if start else None)
        curl.setopt(pycurl.HTTPHEADER, [*_HEADERS, *transfer.extra_headers])
        if self._credentials:  # this origin's, or none: the handle goes from one URL to the next
            credentials = self._credentials_for(transfer.request_url)
            curl.setopt(pycurl.USERNAME, credentials[0] if credentials else None)
            curl.setopt(pycurl.PASSWORD, credentials[1] if credentials else None)
        curl.setopt(pycurl.TIMEOUT_MS, max(1, int(deadline.remaining() * 1000)) if deadline else 0)
        curl.setopt(pycurl.HEADERFUNCTION, transfer.take_header)
        curl.setopt(pycurl.WRITEFUNCTION, transfer.take_body)
        try:
            curl.perform()
        except pycurl.error as exc:
            if transfer.error is not None:  # our own verdict (too long, a failed write) stopped the transfer
                raise transfer.error from None
            code, message = exc.args[0], str(exc.args[1])
            raise self._curl_error(curl, transfer, code, message) from None
        finally:
            curl.setopt(pycurl.HEADERFUNCTION, _ignore)
            curl.setopt(pycurl.WRITEFUNCTION, _ignore)
        if transfer.error is not None:
            raise transfer.error
        transfer.status = curl.getinfo(pycurl.RESPONSE_CODE)
        if transfer.status in (200, 206):
            transfer.begin()  # an empty body never reached take_body

    def _curl_error(self, curl: Any, transfer: _Exchange, code: int, message: str) -> Exception:
        """The TransportError for a libcurl failure, with the codes and messages of the requests path."""
        url, text = transfer.url, self._scrub(message if len(message) < 300 else message[:300] + '...')
        if curl.getinfo(pycurl.HTTP_CONNECTCODE) == 407 or transfer.status == 407:
            parts = urllib.parse.urlsplit(url)
            return self._proxy_refusal(transfer.offered, tunnel_to='%s:%d' % (parts.hostname, parts.port or 443))
        if code in _CURL_TLS_ERRORS:
            return tls_refusal(url, text)
        if self.proxy_url and (code in _CURL_PROXY_ERRORS or curl.getinfo(pycurl.HTTP_CONNECTCODE) not in (0, 200)):
            return proxy_failure(self.proxy_url, url, text)
        if code == _CURL_WEIRD_SERVER_REPLY and not transfer.begun:
            return _Malformed(message)
        if transfer.begun:
            return transfer.cut(code, text, self.timeout)
        return _Retryable(unreachable(url, text))

    def _download_once(self, url: str, part_path: str, size: int, sha256: str, progress: Progress | None, keep_bytes: bool, tally: _Tally) -> bytes | None:
        rp = _requests_path()
        digest = hashlib.sha256()
        kept = bytearray() if keep_bytes else None
        have = os.path.getsize(part_path) if os.path.exists(part_path) else 0
        if have > size:
            have = 0
        if have:
            with open(part_path, 'rb') as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b''):
                    digest.update(chunk)
                    if kept is not None:
                        kept += chunk
        if have < size:
            headers = {'Range': 'bytes=%d-' % have} if have else {}
            response = self._get(url, headers=headers, stream=True)
            with response:
                mode = part_mode(response.status_code, have, response.headers.get('Content-Range'))
                if mode is None:
                    raise status_refusal(url, response.status_code, self._user_for(url))
                if mode == 'wb':
                    have, digest = 0, hashlib.sha256()
                    kept = bytearray() if keep_bytes else None
                too_long = size_refusal(url, size, have, response.headers.get('Content-Length'))
                if too_long is not None:
                    _unlink(part_path)
                    raise too_long
                with open(part_path, mode) as sink:
                    try:
                        for chunk in rp.body_as_it_arrives(response):
                            if tally.stopped():
                                raise cancelled_refusal(url, have, size)
                            too_long = past_size_refusal(url, size, have, len(chunk))
                            if too_long is not None:
                                sink.close()
                                _unlink(part_path)
                                raise too_long
                            sink.write(chunk)
                            digest.update(chunk)
                            if kept is not None:
                                kept += chunk
                            have += len(chunk)
                            tally.fetched += len(chunk)
                            if progress:
                                progress(len(chunk))
                    except rp.RequestException as exc:
                        raise download_cut(url, have, size, self._scrub(_short(exc))) from exc
        _raise_if(short_refusal(url, have, size))
        altered = digest_refusal(url, digest.hexdigest(), sha256)
        if altered is not None:
            _unlink(part_path)
            raise altered
        return None if kept is None else bytes(kept)


class _Tally:
    """One fetch over all its attempts: the bytes that came over the network, and the event that ends it early."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.fetched = 0
        self.stop = stop

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


class _Retryable(Exception):
    """A failure before any byte of the answer: retried like urllib3's connect and read retries."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class _Malformed(Exception):
    """libcurl refused the answer's status line or headers before any body byte: the attempt goes to requests' path."""


class _Exchange:
    """One request on libcurl as its callbacks see it: the answer's status and the headers the checks read.

    libcurl calls take_header and take_body from perform(); they never raise (an exception would leave
    libcurl's stack): a verdict is kept in ``error`` and the transfer aborted by returning a short count.
    """

    extra_headers: tuple[str, ...] = ()  # request headers beside _HEADERS

    def __init__(self, url: str, request_url: str) -> None:
        self.url, self.request_url = url, request_url
        self.error: BaseException | None = None
        self.again()

    def again(self) -> None:
        """Forget the answer before a retry of the request."""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.offered: list[str] = []  # Proxy-Authenticate values of the last 407
        self.begun = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def take_header(self, line: bytes) -> None:
        if line.startswith(b'HTTP/'):  # a new answer (a redirect, a 407 answered by libcurl, a CONNECT): start over
            self.headers, self.offered = {}, []
            fields = line.split(None, 2)
            self.status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
            return
        name, sep, value = line.partition(b':')
        name = name.strip().lower()
        if sep and name in _KEPT_HEADERS:  # only what the checks read: the others cost a decode each
            text = value.strip().decode('iso-8859-1')
            self.headers[name.decode('ascii')] = text
            if name == b'proxy-authenticate':
                self.offered.append(text)

    def range_start(self) -> int:
        return 0

    def accepted(self) -> bool:
        raise NotImplementedError

    def begin(self) -> bool:
        raise NotImplementedError

    def take_body(self, chunk: bytes) -> int:
        raise NotImplementedError

    def cut(self, code: int, text: str, timeout: float) -> TransportError:
        raise NotImplementedError


class _Answer(_Exchange):
    """A conditional GET on libcurl: the body in one buffer, never more than ``max_bytes``."""

    def __init__(self, url: str, request_url: str, headers: list[str], max_bytes: int | None) -> None:
        self.extra_headers, self.max_bytes = tuple(headers), max_bytes
        self.body = bytearray()
        super().__init__(url, request_url)

    def again(self) -> None:
        super().again()
        self.body = bytearray()

    def accepted(self) -> bool:
        return self.status in (200, 304)

    def begin(self) -> bool:
        if self.begun:
            return True
        if self.status != 200:
            return False
        too_long = bound_refusal(self.url, self.max_bytes, self.headers.get('content-length', ''))
        if too_long is not None:
            self.error = too_long
            raise too_long
        self.begun = True
        return True

    def take_body(self, chunk: bytes) -> int:
        try:
            if not self.begun and not self.begin():
                return len(chunk)  # the body of an error answer
            too_long = past_bound_refusal(self.url, self.max_bytes, len(self.body), len(chunk))
            if too_long is not None:
                self.error = too_long
                return 0
            self.body += chunk
        except BaseException as exc:  # pylint: disable=broad-exception-caught  # re-raised after perform(), out of libcurl's stack
            self.error = exc
            return 0
        return len(chunk)

    def cut(self, code: int, text: str, timeout: float) -> TransportError:
        # LOW_SPEED_TIME: nothing for ``timeout`` seconds (a deadline's cut is the caller's)
        return answer_cut(self.url, len(self.body), text, stalled_for=timeout if code == _CURL_TIMED_OUT else None)


class _Transfer(_Exchange):  # pylint: disable=too-many-instance-attributes  # the state of one attempt, read by libcurl's callbacks
    """One attempt of a download on libcurl: the .part, the digest and kept bytes so far, the answer's status and headers.

    With keep_bytes the body is only gathered while it arrives, then written to the .part in one write and
    hashed in one call when the attempt ends (also when it is cut, so a resume finds every byte received):
    a write and a digest update per piece, each taking the GIL, cost more than the transfer itself.
    """

    def __init__(self, url: str, part_path: str, size: int, keep_bytes: bool, progress: Progress | None, tally: _Tally) -> None:
        self.part_path, self.size, self.progress, self.tally = part_path, size, progress, tally
        self.digest = hashlib.sha256()  # without keep_bytes: updated as the bytes come
        self.kept: bytearray | None = bytearray() if keep_bytes else None
        self.have = 0
        earlier = os.path.getsize(part_path) if os.path.exists(part_path) else 0
        if 0 < earlier <= size:
            with open(part_path, 'rb') as handle:  # a resumed part's earlier bytes, for the digest (and the kept body)
                for chunk in iter(lambda: handle.read(CHUNK), b''):
                    self._add(chunk)
        self.on_disk = self.have  # bytes of ``kept`` already in the .part
        self.mode = 'ab'
        self.sink: Any = None
        super().__init__(url, url)

    def range_start(self) -> int:
        return self.have

    def accepted(self) -> bool:
        return self.status in (200, 206) and self.begun

    def cut(self, code: int, text: str, timeout: float) -> TransportError:
        return download_cut(self.url, self.have, self.size, text)

    def take_body(self, chunk: bytes) -> int:
        try:
            if not self.begun and not self.begin():
                return len(chunk)  # the body of an error answer: not ours to keep
            if self.tally.stopped():
                self.error = cancelled_refusal(self.url, self.have, self.size)
                return 0  # libcurl ends the transfer; what came so far goes to the .part (close), for a resume
            too_long = past_size_refusal(self.url, self.size, self.have, len(chunk))
            if too_long is not None:
                self._refuse(too_long)
                return 0
            if self.kept is None:
                self.sink.write(chunk)
            self._add(chunk)
            self.tally.fetched += len(chunk)
            if self.progress:
                self.progress(len(chunk))
        except BaseException as exc:  # pylint: disable=broad-exception-caught  # re-raised after perform(), out of libcurl's stack
            self.error = exc
            return 0
        return len(chunk)

    def begin(self) -> bool:
        """At the first byte of a 200 or 206: append to the .part (a matching 206) or start it anew (200). False: not a body to keep."""
        if self.begun:
            return True
        mode = part_mode(self.status, self.have, self.headers.get('content-range'))
        if mode is None:
            return False
        self.mode = mode
        if mode == 'wb':
            self.have, self.on_disk, self.digest = 0, 0, hashlib.sha256()
            self.kept = None if self.kept is None else bytearray()
        too_long = size_refusal(self.url, self.size, self.have, self.headers.get('content-length'))
        if too_long is not None:
            self._refuse(too_long)
            raise too_long
        if self.kept is None:
            self.sink = open(self.part_path, self.mode)  # noqa: SIM115  # pylint: disable=consider-using-with  # closed by close(), after perform()
        self.begun = True
        return True

    def _refuse(self, error: TransportError) -> None:
        self.error = error
        self.begun = False  # nothing more goes to the .part
        self.close()
        _unlink(self.part_path)

    def _add(self, chunk: bytes) -> None:
        self.have += len(chunk)
        if self.kept is None:
            self.digest.update(chunk)
        else:
            self.kept += chunk

    def close(self) -> None:
        """The bytes received so far into the .part (written, not fsynced)."""
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self.kept is not None and self.begun and (self.on_disk < len(self.kept) or self.mode == 'wb'):
            with open(self.part_path, self.mode) as sink:
                sink.write(memoryview(self.kept)[self.on_disk :])
            self.on_disk, self.mode = len(self.kept), 'ab'

    def finish(self, sha256: str) -> bytes | None:
        self.close()
        _raise_if(short_refusal(self.url, self.have, self.size))
        digest = self.digest if self.kept is None else hashlib.sha256(self.kept)
        altered = digest_refusal(self.url, digest.hexdigest(), sha256)
        if altered is not None:
            _unlink(self.part_path)
            raise altered
        return None if self.kept is None else bytes(self.kept)


def _ignore(data: bytes) -> None:
    """Callbacks parked on an idle handle, so it holds no reference to the last transfer."""


def _backoff(attempt: int) -> float:
    """urllib3's backoff with factor 0.5 before retry ``attempt + 1``: 0 s, then 1 s, 2 s, ..."""
    return 0.0 if attempt == 0 else 0.5 * 2**attempt


def _retry_after(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After value, a number or an HTTP date as urllib3 reads them; None when absent or not valid."""
    value = (value or '').strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # not a number nor a date: back off as without one
    if when is None:  # pragma: no cover - Python 3.9 returned None for some invalid dates
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - time.time())


CURL_BUFFER = 256 * 1024  # bytes libcurl hands over per write callback at most
RETRY_STATUSES = frozenset([500, 502, 503, 504])  # as the requests path's status_forcelist
# libcurl's error numbers (curl/curl.h): certificate and TLS handshake failures; proxy failures
_CURL_TLS_ERRORS = frozenset([35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98])
_CURL_PROXY_ERRORS = frozenset([5, 7, 97])
_CURL_WEIRD_SERVER_REPLY = 8
_KEPT_HEADERS = frozenset([b'content-length', b'content-range', b'retry-after', b'proxy-authenticate', b'etag', b'last-modified'])
_CURL_TIMED_OUT = 28
_HEADERS = ['Accept-Encoding: identity']  # sizes and digests are of the bytes on the wire


_VERDICTS = frozenset(['download_too_long', 'digest_mismatch'])  # about the bytes: they stand whatever the clock says


def _timed_out(deadline: Deadline, url: str) -> TransportError:
    return TransportError('GET %s did not finish within %s: the server is too slow or stalled' % (url, deadline.what), code='request_timeout')


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return '%s://%s' % (parts.scheme, parts.netloc.rpartition('@')[2])


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + '...'
