"""Tests of the test servers themselves (tests/services): fast checks that each one is real and behaves.

The requests/requests-toolbelt checks pin down the proxy behaviour the core's transport is
written against; they are skipped when those libraries are missing.
"""

import http.client
import os
import socket
import ssl
import subprocess
import time
import typing
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.tests.services.hostile import hostile_http_server
from ansible_collections.exup.fleet.tests.services.nginx import nginx_server
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, port_accepts
from ansible_collections.exup.fleet.tests.services.processes import ServiceError
from ansible_collections.exup.fleet.tests.services.squid import squid_proxy

# curl must not pick up a proxy from the environment of the machine running the tests.
CURL_ENV = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


class Answer(typing.NamedTuple):
    status: int
    headers: typing.Any  # str from curl(), http.client.HTTPMessage from fetch()
    body: bytes = b""
    complete: bool = True


def curl(*args: str) -> Answer:
    """Run curl; the answer carries the status and the response headers as text."""
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-D", "-", "-w", "\n%{http_code}", *args], capture_output=True, text=True, env=CURL_ENV, timeout=30, check=False
    )
    headers, _sep, status = result.stdout.rpartition("\n")
    return Answer(int(status), headers)


def direct_opener() -> urllib.request.OpenerDirector:
    """urllib without any proxy from the environment."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def busy_port():
    """A loopback port that is already taken, to make a server fail to start."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield sock.getsockname()[1]


# --------------------------------------------------------------------------- nginx


def test_nginx_serves_files_with_validators_ranges_and_log(nginx, tmp_feed_dir: Path):
    (tmp_feed_dir / "pkg.bin").write_bytes(bytes(range(256)) * 4)
    opener = direct_opener()

    with opener.open(nginx.url("pkg.bin")) as response:
        assert response.read() == bytes(range(256)) * 4
        etag, last_modified = response.headers["ETag"], response.headers["Last-Modified"]
    assert etag and last_modified

    request = urllib.request.Request(nginx.url("pkg.bin"), headers={"Range": "bytes=1000-"})
    with opener.open(request) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 1000-1023/1024"
        assert len(response.read()) == 24

    request = urllib.request.Request(nginx.url("pkg.bin"), headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request)
    assert caught.value.code == 304

    entries = nginx.wait_for_log(3)
    assert [(e["status"], e["body_bytes_sent"], e["range"]) for e in entries] == [(200, 1024, ""), (206, 24, "bytes=1000-"), (304, 0, "")]
    assert entries[2]["if_none_match"] == etag
    assert nginx.access_log_path.exists()


def test_nginx_tls_with_test_ca(nginx_tls, tmp_feed_dir: Path):
    (tmp_feed_dir / "catalog.xml").write_text("<catalog/>")
    # The default context is strict on Python 3.13: the test CA must satisfy it.
    context = ssl.create_default_context(cafile=str(nginx_tls.ca_path))
    with urllib.request.urlopen(nginx_tls.url("catalog.xml"), context=context) as response:
        assert response.read() == b"<catalog/>"
    assert nginx_tls.base_url.startswith("https://127.0.0.1:")


def test_nginx_failed_start_raises_with_error_log(tmp_path: Path, busy_port: int):
    with pytest.raises(ServiceError, match="Address already in use"), nginx_server(tmp_path, port=busy_port):
        pass


def test_nginx_stop_leaves_nothing(tmp_path: Path):
    with nginx_server(tmp_path) as server:
        pid, workdir, port = server.pid, server.workdir, server.port
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # neither the master nor a worker is left
    assert not workdir.exists()
    assert not port_accepts(port)


# --------------------------------------------------------------------------- squid


@pytest.mark.parametrize("auth_flag, proxy_fixture", [("--proxy-basic", "squid_basic"), ("--proxy-digest", "squid_digest")])
def test_squid_auth_with_curl(request, nginx, tmp_feed_dir: Path, auth_flag: str, proxy_fixture: str):
    proxy = request.getfixturevalue(proxy_fixture)
    (tmp_feed_dir / "a.txt").write_text("hello")

    assert curl("-x", proxy.url, auth_flag, "--proxy-user", f"{proxy.user}:{proxy.password}", nginx.url("a.txt")).status == 200
    assert curl("-x", proxy.url, auth_flag, "--proxy-user", f"{proxy.user}:wrong", nginx.url("a.txt")).status == 407
    answer = curl("-x", proxy.url, nginx.url("a.txt"))
    assert answer.status == 407
    scheme = "Basic" if auth_flag == "--proxy-basic" else "Digest"
    assert f"Proxy-Authenticate: {scheme} realm=\"{proxy.realm}\"" in answer.headers

    entries = nginx.wait_for_log(1)
    assert len(entries) == 1, "only the authenticated request reaches the origin"
    assert "squid" in entries[0]["via"]


def test_squid_connect_to_https_origin(squid_basic, nginx_tls, tmp_feed_dir: Path):
    (tmp_feed_dir / "a.txt").write_text("hello")
    answer = curl(
        "-x",
        squid_basic.url,
        "--proxy-basic",
        "--proxy-user",
        f"{squid_basic.user}:{squid_basic.password}",
        "--cacert",
        str(nginx_tls.ca_path),
        nginx_tls.url("a.txt"),
    )
    assert answer.status == 200


def test_squid_open_proxy_logs_requests(nginx, tmp_feed_dir: Path):
    (tmp_feed_dir / "a.txt").write_text("hello")
    with squid_proxy() as proxy:
        assert curl("-x", proxy.url, nginx.url("a.txt")).status == 200
        [entry] = proxy.access_log()
    assert (entry["status"], entry["method"], entry["url"]) == (200, "GET", nginx.url("a.txt"))


def test_squid_ntlm_demands_ntlm_only(squid_ntlm, nginx):
    answer = curl("-x", squid_ntlm.url, nginx.url("a.txt"))
    assert answer.status == 407
    challenges = [line.split(":", 1)[1].strip() for line in answer.headers.splitlines() if line.lower().startswith("proxy-authenticate:")]
    assert challenges == ["NTLM"]


def test_squid_failed_start_raises_with_cache_log(busy_port: int):
    with pytest.raises(ServiceError, match="Address already in use"), squid_proxy(port=busy_port):
        pass


def test_squid_stop_leaves_nothing():
    with squid_proxy("basic") as proxy:
        pid, workdir, name = proxy.pid, proxy.workdir, proxy.service_name
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # squid and its auth helpers are gone
    assert not workdir.exists()
    assert not list(Path("/dev/shm").glob(f"{name}-*"))


# ------------------------------------------------- facts the core's transport relies on (requests)


def _requests_session():
    requests = pytest.importorskip("requests")
    session = requests.Session()
    session.trust_env = False  # no proxy or netrc from the environment
    return session


def test_requests_proxy_url_credentials_pass_basic(squid_basic, nginx, tmp_feed_dir: Path):
    session = _requests_session()
    (tmp_feed_dir / "a.txt").write_text("hello")
    response = session.get(nginx.url("a.txt"), proxies={"http": squid_basic.url_with_credentials}, timeout=10)
    assert (response.status_code, response.text) == (200, "hello")

    wrong = squid_basic.url_with_credentials.replace(f":{squid_basic.password}@", ":wrong@")
    assert session.get(nginx.url("a.txt"), proxies={"http": wrong}, timeout=10).status_code == 407


def test_requests_toolbelt_proxy_digest_passes(squid_digest, nginx, tmp_feed_dir: Path):
    session = _requests_session()
    toolbelt = pytest.importorskip("requests_toolbelt.auth.http_proxy_digest")
    (tmp_feed_dir / "a.txt").write_text("hello")
    proxies = {"http": squid_digest.url}

    auth = toolbelt.HTTPProxyDigestAuth(squid_digest.user, squid_digest.password)
    response = session.get(nginx.url("a.txt"), proxies=proxies, auth=auth, timeout=10)
    assert (response.status_code, response.text) == (200, "hello")

    auth = toolbelt.HTTPProxyDigestAuth(squid_digest.user, "wrong")
    assert session.get(nginx.url("a.txt"), proxies=proxies, auth=auth, timeout=10).status_code == 407


def test_requests_sees_ntlm_challenge(squid_ntlm, nginx):
    session = _requests_session()
    response = session.get(nginx.url("a.txt"), proxies={"http": squid_ntlm.url}, timeout=10)
    assert response.status_code == 407
    assert response.headers["Proxy-Authenticate"] == "NTLM"


def test_requests_proxy_url_credentials_pass_basic_connect(squid_basic, nginx_tls, tmp_feed_dir: Path):
    session = _requests_session()
    (tmp_feed_dir / "a.txt").write_text("hello")
    response = session.get(nginx_tls.url("a.txt"), proxies={"https": squid_basic.url_with_credentials}, verify=str(nginx_tls.ca_path), timeout=10)
    assert response.status_code == 200


def test_requests_toolbelt_proxy_digest_fails_on_connect(squid_digest, nginx_tls, tmp_feed_dir: Path):
    """Limitation: the 407 to CONNECT never reaches requests' auth hooks, so https:// through Digest fails."""
    session = _requests_session()
    toolbelt = pytest.importorskip("requests_toolbelt.auth.http_proxy_digest")
    (tmp_feed_dir / "a.txt").write_text("hello")
    auth = toolbelt.HTTPProxyDigestAuth(squid_digest.user, squid_digest.password)
    with pytest.raises(Exception, match="Tunnel connection failed: 407") as caught:
        session.get(nginx_tls.url("a.txt"), proxies={"https": squid_digest.url}, auth=auth, verify=str(nginx_tls.ca_path), timeout=10)
    assert type(caught.value).__name__ == "ProxyError"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_pycurl_proxy_digest_passes(squid_digest, nginx, nginx_tls, tmp_feed_dir: Path, scheme: str):
    pycurl = pytest.importorskip("pycurl")
    (tmp_feed_dir / "a.txt").write_text("hello")
    origin = nginx if scheme == "http" else nginx_tls
    body = bytearray()
    handle = pycurl.Curl()
    try:
        handle.setopt(pycurl.URL, origin.url("a.txt"))
        handle.setopt(pycurl.PROXY, squid_digest.url)
        handle.setopt(pycurl.PROXYUSERPWD, f"{squid_digest.user}:{squid_digest.password}")
        handle.setopt(pycurl.PROXYAUTH, pycurl.HTTPAUTH_DIGEST)
        if origin.ca_path:
            handle.setopt(pycurl.CAINFO, str(origin.ca_path))
        handle.setopt(pycurl.WRITEFUNCTION, body.extend)
        handle.perform()
        assert (handle.getinfo(pycurl.RESPONSE_CODE), bytes(body)) == (200, b"hello")
    finally:
        handle.close()


# --------------------------------------------------------------------------- hostile server


def fetch(server, path: str, headers: dict | None = None, method: str = "GET") -> Answer:
    """GET with http.client, which reports a short body (complete=False) instead of hiding it."""
    connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        try:
            return Answer(response.status, response.headers, response.read())
        except http.client.IncompleteRead as exc:
            return Answer(response.status, response.headers, exc.partial, complete=False)
    finally:
        connection.close()


def test_hostile_serves_ranges_validators_and_records_requests(hostile_server):
    data = bytes(range(256)) * 100
    hostile_server.add("/pkg.bin", data)

    answer = fetch(hostile_server, "/pkg.bin")
    assert (answer.status, answer.body, answer.headers["Content-Length"]) == (200, data, str(len(data)))
    etag = answer.headers["ETag"]

    answer = fetch(hostile_server, "/pkg.bin", {"Range": "bytes=100-", "If-Range": etag})
    assert (answer.status, answer.body) == (206, data[100:])
    assert answer.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    answer = fetch(hostile_server, "/pkg.bin", {"Range": "bytes=100-", "If-Range": '"changed"'})
    assert (answer.status, answer.body) == (200, data)
    answer = fetch(hostile_server, "/pkg.bin", {"Range": f"bytes={len(data)}-"})
    assert (answer.status, answer.headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    assert fetch(hostile_server, "/pkg.bin", {"If-None-Match": etag}).status == 304
    assert fetch(hostile_server, "/missing").status == 404

    assert hostile_server.request_count("/pkg.bin") == 5
    seen = hostile_server.requests_for("/pkg.bin")
    assert [r.headers.get("range") for r in seen] == [None, "bytes=100-", "bytes=100-", f"bytes={len(data)}-", None]
    assert seen[4].headers["If-None-Match"] == etag


def test_hostile_misbehaviours(hostile_server):
    data = b"0123456789" * 1000
    hostile_server.add("/truncated", data, truncate_at=4000)
    hostile_server.add("/overlong", data, overlong=500)
    hostile_server.add("/overlong-no-length", data, overlong=500, no_length=True)
    hostile_server.add("/no-range", data, no_range=True)
    hostile_server.add("/flaky", data, status=503, fail_times=2, headers={"Retry-After": "1"})

    answer = fetch(hostile_server, "/truncated")
    assert (answer.status, answer.headers["Content-Length"]) == (200, str(len(data)))
    assert (answer.body, answer.complete) == (data[:4000], False)

    answer = fetch(hostile_server, "/overlong")
    assert answer.headers["Content-Length"] == str(len(data) + 500)
    assert (answer.body, answer.complete) == (data + b"X" * 500, True)

    answer = fetch(hostile_server, "/overlong-no-length")
    assert "Content-Length" not in answer.headers
    assert (answer.body, answer.complete) == (data + b"X" * 500, True)

    answer = fetch(hostile_server, "/no-range", {"Range": "bytes=10-"})
    assert (answer.status, answer.body, answer.headers["Accept-Ranges"]) == (200, data, None)

    answers = [fetch(hostile_server, "/flaky") for attempt in range(3)]
    assert [a.status for a in answers] == [503, 503, 200]
    assert (answers[0].headers["Retry-After"], answers[2].body) == ("1", data)


def test_hostile_slow_and_stops_promptly():
    with hostile_http_server({"/slow": b"x" * 40}, {"/slow": {"slow": 0.05, "chunk_size": 10}}) as server:
        began = time.monotonic()
        assert fetch(server, "/slow").body == b"x" * 40
        assert time.monotonic() - began >= 0.15  # three pauses between four chunks

        server.add("/very-slow", b"x" * 100, slow=30, chunk_size=1)
        connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=10)
        connection.request("GET", "/very-slow")
        response = connection.getresponse()
        assert response.read(1) == b"x"
        began = time.monotonic()
    assert time.monotonic() - began < 2, "stop() must not wait for a slow response"
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    connection.close()
