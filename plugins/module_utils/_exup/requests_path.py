# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The requests side of transport.HttpClient, imported only when a request takes it (about 60 ms of imports).

requests does the HTTP and urllib3's ``Retry`` the retries. requests has no proxy Digest auth, so
requests-toolbelt's ``HTTPProxyDigestAuth`` answers the proxy's 407 challenge for http:// feeds; for
https:// feeds the tunnel's CONNECT carries an answer computed from a challenge asked for beforehand
(``_DigestTunnelAdapter``). Connections register their sockets with the request's ``_RequestWatch``.
"""

from __future__ import annotations

import socket
import types
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3 import connection as urllib3_connection, connectionpool as urllib3_pools
    from urllib3.exceptions import HTTPError as Urllib3Error, InvalidHeader, ReadTimeoutError
    from urllib3.util.retry import Retry

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - transport imports this module only where requests is; sanity's import test has none
    HAS_REQUESTS = False
    # Stand-ins so the module still imports: nothing here is used without requests.
    HTTPAdapter = Retry = object  # type: ignore[misc, assignment]
    urllib3_connection = urllib3_pools = types.SimpleNamespace(  # type: ignore[assignment]
        HTTPConnection=object, HTTPSConnection=object, HTTPConnectionPool=object, HTTPSConnectionPool=object
    )

    class Urllib3Error(Exception):  # type: ignore[no-redef]  # distinct stand-ins: one except clause each
        pass

    class ReadTimeoutError(Urllib3Error):  # type: ignore[no-redef]
        pass

    InvalidHeader = Urllib3Error  # type: ignore[misc, assignment]

from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import retry_sleep
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import (
    CHUNK,
    USER_AGENT,
    _active_deadline,
    _attach,
    _proxy_url_with_credentials,
)

try:
    from requests_toolbelt.auth.http_proxy_digest import HTTPProxyDigestAuth
except ImportError:  # pragma: no cover - HttpClient refuses Digest proxies without it
    HTTPProxyDigestAuth = None

if HAS_REQUESTS:
    RequestException = requests.exceptions.RequestException
    SSLError = requests.exceptions.SSLError
    ProxyError = requests.exceptions.ProxyError
    ReadTimeout = requests.exceptions.ReadTimeout


if TYPE_CHECKING:
    _ConnectionBase = urllib3_connection.HTTPConnection  # what the mixin is mixed into
else:
    _ConnectionBase = object


class _WatchMixin(_ConnectionBase):
    """Registers a connection's socket with the watch of the request (a new one when it connects, a kept-alive one when reused)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        _attach(self.sock)  # for https://, the TLS socket that replaced the TCP one

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _attach(self.sock)
        return super().request(*args, **kwargs)


class _WatchedConnection(_WatchMixin, urllib3_connection.HTTPConnection):
    pass


class _WatchedTLSConnection(_WatchMixin, urllib3_connection.HTTPSConnection):
    pass


class _WatchedPool(urllib3_pools.HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedTLSPool(urllib3_pools.HTTPSConnectionPool):
    ConnectionCls = _WatchedTLSConnection


_WATCHED_POOLS = {'http': _WatchedPool, 'https': _WatchedTLSPool}


class _BoundedRetry(Retry):
    """urllib3's Retry whose sleeps (Retry-After, backoff) never exceed RETRY_AFTER_CAP nor the request's deadline.

    urllib3 before 2.6 has no cap on Retry-After, and its default cap is 6 hours: a 503 with
    Retry-After: 3600 slept an hour holding the repository's writer lock.
    """

    def get_retry_after(self, response: Any) -> float | None:
        try:
            requested = super().get_retry_after(response)
        except InvalidHeader:
            return None  # not a number nor a date: back off as without one
        return None if requested is None else retry_sleep(requested, _active_deadline())

    def get_backoff_time(self) -> float:
        return retry_sleep(super().get_backoff_time(), _active_deadline())


class _WatchedAdapter(HTTPAdapter):
    """HTTPAdapter whose connections, direct or through a proxy, register with the request's watch."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class _DigestTunnelAdapter(_WatchedAdapter):
    """Sends a Digest Proxy-Authorization with the CONNECT of https:// requests through a proxy.

    urllib3 sends CONNECT itself and raises on its 407, out of reach of requests'
    auth hooks; so the answer is computed beforehand from a challenge the client
    asked for (``HttpClient.tunnel_authorization``) and set as the tunnel's header.
    """

    def __init__(self, client: Any, **kwargs: Any) -> None:  # a transport.HttpClient
        self._client = client
        self._target: str | None = None
        super().__init__(**kwargs)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None) -> Any:
        parts = urllib.parse.urlsplit(request.url)
        target = '%s:%d' % (parts.hostname, parts.port or 443)
        if parts.scheme == 'https' and target != self._target:
            # The header names the tunnel's target: a new target needs a new proxy manager.
            for manager in self.proxy_manager.values():
                manager.clear()
            self.proxy_manager.clear()
            self._target = target
        return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)

    def proxy_headers(self, proxy: str) -> dict[str, str]:
        headers = super().proxy_headers(proxy)
        if self._target:
            headers['Proxy-Authorization'] = self._client.tunnel_authorization(self._target)
        return headers


def make_session(client: Any) -> requests.Session:
    """A requests.Session configured as ``client`` (a transport.HttpClient) says."""
    session = requests.Session()
    # other=0: errors that are neither connect, read nor status errors (a failed TLS certificate check
    # above all) fail at once; retrying them only added about 3 s of backoff before the same error.
    retry = _BoundedRetry(
        total=client.retries,
        connect=client.retries,
        read=client.retries,
        status=client.retries,
        other=0,
        backoff_factor=0.5,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset(['GET', 'HEAD']),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    adapter = _WatchedAdapter(max_retries=retry, pool_connections=4, pool_maxsize=4)
    session.mount('http://', adapter)
    if client.proxy_url and client.proxy_username and client.proxy_auth == 'digest':
        adapter = _DigestTunnelAdapter(client, max_retries=retry, pool_connections=4, pool_maxsize=4)
    session.mount('https://', adapter)
    session.headers['User-Agent'] = USER_AGENT
    session.headers['Accept-Encoding'] = 'identity'  # sizes and digests are of the bytes on the wire
    session.verify = client.verify
    session.trust_env = False  # configuration says which proxy; the environment must not change it silently
    if client.proxy_url:
        url = client.proxy_url
        if client.proxy_username and client.proxy_auth == 'basic':
            url = _proxy_url_with_credentials(client.proxy_url, client.proxy_username, client.proxy_password or '')
        session.proxies = {'http': url, 'https': url}
        if client.proxy_username and client.proxy_auth == 'digest':
            session.auth = HTTPProxyDigestAuth(client.proxy_username, client.proxy_password or '')
    return session


def body_as_it_arrives(response: requests.Response) -> Iterator[bytes]:
    """Yield a streamed body in the pieces that arrive, up to CHUNK bytes each.

    iter_content(CHUNK) waits for a full CHUNK and, when the connection is cut first, raises
    without handing over what it had read: up to 1 MiB lost per cut, so a link that breaks
    before 1 MiB never made progress and a resume never happened. read1 (urllib3 >= 2.3)
    returns each piece as it comes, so a cut download keeps every byte it received.
    """
    read1 = getattr(response.raw, 'read1', None)
    if read1 is None:
        yield from response.iter_content(CHUNK)
        return
    while True:
        try:
            chunk = read1(CHUNK, decode_content=True)
        except ReadTimeoutError as exc:  # nothing for ``timeout`` seconds
            raise requests.exceptions.ReadTimeout(exc) from exc
        except Urllib3Error as exc:  # as iter_content does: a broken body is a requests error
            raise requests.exceptions.ConnectionError(exc) from exc
        if not chunk:
            return
        yield chunk
