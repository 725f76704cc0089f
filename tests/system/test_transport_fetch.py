"""HttpClient.fetch on libcurl (the fast path of package downloads, issue 10) against real nginx, squid and the hostile server.

Every test here runs with requests' download path made to fail (``fast_only``): a test that passes went through
libcurl. The refusals assert the error code, the message and what is left on disk, as the requests path did.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import transport
from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import Deadline
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files

pytest.importorskip("pycurl")  # the fast path needs it; requirements.txt lists it

BODY = os.urandom(106 * 1024 + 17)
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture(autouse=True)
def fast_only(monkeypatch):
    """requests' download path fails loudly: whatever passes took libcurl's."""

    def not_this_path(*_args, **_kwargs):
        raise AssertionError("the download took requests' path")

    monkeypatch.setattr(HttpClient, "_download_once", not_this_path)
    monkeypatch.setattr(HttpClient, "_get_conditional", not_this_path)


@pytest.fixture
def feed(tmp_feed_dir: Path) -> Path:
    (tmp_feed_dir / "p.bin").write_bytes(BODY)
    return tmp_feed_dir


def fetch(client: HttpClient, url: str, part: Path, keep: bool = True, **kwargs) -> transport.Download:
    assert client.fast_path()
    got = client.fetch(url, str(part), len(BODY), SHA, keep_bytes=keep, **kwargs)
    assert got.data == (BODY if keep else None) and part.read_bytes() == BODY
    return got


def refused(client: HttpClient, url: str, part: Path, **kwargs) -> TransportError:
    with pytest.raises(TransportError) as caught:
        fetch(client, url, part, **kwargs)
    return caught.value


# --- direct and TLS ---------------------------------------------------------------------------------------


def test_direct_http(feed, nginx, tmp_path):
    got = fetch(HttpClient(), nginx.url("p.bin"), tmp_path / "p.part")
    assert (got.data, got.fetched) == (BODY, len(BODY))
    assert (tmp_path / "p.part").read_bytes() == BODY
    [entry] = nginx.wait_for_log(1)
    assert (entry["status"], entry["user_agent"]) == (200, transport.USER_AGENT)


def test_https_with_ca_path(feed, nginx_tls, tmp_path):
    got = fetch(HttpClient(ca_path=str(nginx_tls.ca_path)), nginx_tls.url("p.bin"), tmp_path / "p.part")
    assert got.data == BODY


def test_https_with_validate_certs_false(feed, nginx_tls, tmp_path):
    got = fetch(HttpClient(validate_certs=False), nginx_tls.url("p.bin"), tmp_path / "p.part")
    assert got.data == BODY


def test_https_with_an_unknown_ca_is_refused(feed, nginx_tls, tmp_path):
    error = refused(HttpClient(), nginx_tls.url("p.bin"), tmp_path / "p.part")
    assert error.code == "tls_failed"
    assert f"TLS verification of {nginx_tls.base_url} failed" in error.msg
    assert not (tmp_path / "p.part").exists() and nginx_tls.access_log() == []


# --- trust: exactly ca_path (two CAs) ---------------------------------------------------------------------


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A second test CA: it did not issue nginx_tls's certificate."""
    directory = tmp_path / "other-ca"
    directory.mkdir()
    return make_tls_files(directory).ca_path


def ca_path_as(layout: str, ca_file: Path, where: Path) -> str:
    """``ca_path`` holding only ``ca_file``: the file itself, or a directory in OpenSSL's hashed layout (libcurl's CAPATH)."""
    if layout == "file":
        return str(ca_file)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to hash a CA directory")
    where.mkdir()
    shutil.copy(ca_file, where / "ca.pem")
    subprocess.run([openssl, "rehash", str(where)], check=True, capture_output=True)
    assert [p.name for p in where.iterdir() if p.name.endswith(".0")], "openssl rehash made no hashed link"
    return str(where)


@pytest.fixture
def nothing_else_trusted(monkeypatch, nginx_tls, tmp_path):
    """Every default trust store holds nginx_tls's CA: the client's own (certifi's bundle) and OpenSSL's (SSL_CERT_FILE,
    SSL_CERT_DIR). A client given another CA in ca_path must still refuse the server: it trusts exactly ca_path."""
    monkeypatch.setattr(transport, "CA_BUNDLE", str(nginx_tls.ca_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(nginx_tls.ca_path))
    monkeypatch.setenv("SSL_CERT_DIR", ca_path_as("directory", nginx_tls.ca_path, tmp_path / "default-dir"))


def test_the_default_trust_store_is_the_client_bundle(feed, nginx_tls, nothing_else_trusted, tmp_path):
    """The control of the tests below: with nginx_tls's CA in the default store, a client without ca_path trusts it."""
    assert fetch(HttpClient(), nginx_tls.url("p.bin"), tmp_path / "p.part").data == BODY


@pytest.mark.parametrize("layout", ["file", "directory"])
def test_libcurl_trusts_the_ca_in_ca_path(feed, nginx_tls, tmp_path, layout):
    ca_path = ca_path_as(layout, nginx_tls.ca_path, tmp_path / "trusted")
    assert fetch(HttpClient(ca_path=ca_path), nginx_tls.url("p.bin"), tmp_path / "p.part").data == BODY
    assert [entry["status"] for entry in nginx_tls.wait_for_log(1)] == [200]


@pytest.mark.parametrize("layout", ["file", "directory"])
def test_libcurl_trusts_no_other_ca_than_ca_path(feed, nginx_tls, other_ca, nothing_else_trusted, tmp_path, layout):
    url = nginx_tls.url("p.bin")
    assert fetch(HttpClient(ca_path=str(nginx_tls.ca_path)), url, tmp_path / "first.part").data == BODY  # kept alive on this thread
    nginx_tls.wait_for_log(1)
    error = refused(HttpClient(ca_path=ca_path_as(layout, other_ca, tmp_path / "other")), url, tmp_path / "p.part")
    assert error.code == "tls_failed"
    assert error.msg.startswith(f"TLS verification of {nginx_tls.base_url} failed: ") and "certificate" in error.msg
    assert not (tmp_path / "p.part").exists() and len(nginx_tls.access_log()) == 1  # nothing asked of the server


# --- proxies ----------------------------------------------------------------------------------------------


def went_through(proxy, server, user) -> list:
    """squid's entries for ``server`` as ``user``: a tunnel (CONNECT) is logged when it closes, so wait for it a little."""
    for _poll in range(200):
        entries = [e for e in proxy.access_log() if f"127.0.0.1:{server.port}" in e["url"] and e["status"] == 200]
        if entries:
            break
        threading.Event().wait(0.02)
    assert entries and {e["user"] for e in entries} == {user}
    return entries


def in_a_thread(work) -> None:
    """Run ``work`` in a thread that then ends: its libcurl handle, and so its kept-alive connection, go with it."""
    errors = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_through_an_authenticating_proxy(feed, nginx, nginx_tls, squid_basic, squid_digest, tmp_path, auth, scheme):
    proxy = squid_basic if auth == "basic" else squid_digest
    web = nginx_tls if scheme == "https" else nginx
    client = HttpClient(proxy_url=proxy.url, proxy_username=proxy.user, proxy_password=proxy.password, proxy_auth=auth, ca_path=str(nginx_tls.ca_path))

    def two_packages() -> None:
        assert fetch(client, web.url("p.bin"), tmp_path / "a.part").data == BODY
        assert fetch(client, web.url("p.bin"), tmp_path / "b.part").data == BODY

    in_a_thread(two_packages)
    went_through(proxy, web, proxy.user)
    if scheme == "http":
        assert len(web.wait_for_log(2)) == 2 and all("squid" in e["via"] for e in web.access_log())


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_wrong_proxy_password_is_refused(feed, nginx, nginx_tls, squid_basic, squid_digest, tmp_path, auth, scheme):
    proxy = squid_basic if auth == "basic" else squid_digest
    web = nginx_tls if scheme == "https" else nginx
    client = HttpClient(proxy_url=proxy.url, proxy_username=proxy.user, proxy_password="not-the-password", proxy_auth=auth, ca_path=str(nginx_tls.ca_path))
    error = refused(client, web.url("p.bin"), tmp_path / "p.part")
    assert error.code == "proxy_auth_failed"
    assert f"the proxy {proxy.url} refused the credentials of user {proxy.user}" in error.msg
    assert "not-the-password" not in error.msg
    assert not (tmp_path / "p.part").exists() and web.access_log() == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_ntlm_proxy_is_refused_as_unsupported(feed, nginx, nginx_tls, squid_ntlm, tmp_path, scheme):
    web = nginx_tls if scheme == "https" else nginx
    client = HttpClient(proxy_url=squid_ntlm.url, proxy_username="exup", proxy_password="s3cret", ca_path=str(nginx_tls.ca_path))
    error = refused(client, web.url("p.bin"), tmp_path / "p.part")
    assert error.code == "proxy_ntlm_unsupported"
    assert f"the proxy {squid_ntlm.url} asks for NTLM authentication, which is not supported" in error.msg
    assert not (tmp_path / "p.part").exists() and web.access_log() == []


def test_proxy_without_credentials_is_told_to_set_them(feed, nginx, squid_basic, tmp_path):
    error = refused(HttpClient(proxy_url=squid_basic.url), nginx.url("p.bin"), tmp_path / "p.part")
    assert error.code == "proxy_auth_required"
    assert f"the proxy {squid_basic.url} requires authentication (Basic realm=" in error.msg


# --- hostile answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [True, False])  # gathered in memory, or written as it comes (a big package)
def test_resume_after_a_cut(hostile_server, tmp_path, keep):
    url = hostile_server.add("/p.bin", BODY, truncate_at=60000)
    got = fetch(HttpClient(timeout=5), url, tmp_path / "p.part", keep=keep)
    assert got.fetched == len(BODY)
    assert [r.headers["Range"] for r in hostile_server.requests_for("/p.bin")] == [None, "bytes=60000-"]


@pytest.mark.parametrize("keep", [True, False])
def test_resume_of_a_part_left_by_an_earlier_run(hostile_server, tmp_path, keep):
    url = hostile_server.add("/p.bin", BODY)
    (tmp_path / "p.part").write_bytes(BODY[:5000])
    got = fetch(HttpClient(timeout=5), url, tmp_path / "p.part", keep=keep)
    assert got.fetched == len(BODY) - 5000
    assert hostile_server.requests_for("/p.bin")[0].headers["Range"] == "bytes=5000-"


@pytest.mark.parametrize("keep", [True, False])
def test_a_part_of_other_bytes_is_started_over_once(hostile_server, tmp_path, keep):
    url = hostile_server.add("/p.bin", BODY)
    (tmp_path / "p.part").write_bytes(b"x" * 5000)
    got = fetch(HttpClient(timeout=5), url, tmp_path / "p.part", keep=keep)
    assert got.fetched == len(BODY) - 5000 + len(BODY)  # the resume, refused by its digest, then the whole body
    assert [r.headers["Range"] for r in hostile_server.requests_for("/p.bin")] == ["bytes=5000-", None]


def test_a_server_ignoring_range_sends_the_whole_body_again(hostile_server, tmp_path):
    url = hostile_server.add("/p.bin", BODY, no_range=True)
    (tmp_path / "p.part").write_bytes(BODY[:5000])
    assert fetch(HttpClient(timeout=5), url, tmp_path / "p.part").fetched == len(BODY)


@pytest.mark.parametrize("no_length", [False, True])
def test_a_body_longer_than_the_size_is_refused_and_its_part_deleted(hostile_server, tmp_path, no_length):
    url = hostile_server.add("/p.bin", BODY, overlong=1000, no_length=no_length)
    error = refused(HttpClient(timeout=5), url, tmp_path / "p.part")
    assert error.code == "download_too_long"
    said = "sent more than the %d bytes the catalog states" if no_length else "is %d bytes long, more than the %%d bytes" % (len(BODY) + 1000)
    assert (said % len(BODY)) in error.msg
    assert not (tmp_path / "p.part").exists()


def test_other_bytes_are_refused_and_their_part_deleted(hostile_server, tmp_path):
    url = hostile_server.add("/p.bin", bytes(reversed(BODY)))
    error = refused(HttpClient(timeout=5), url, tmp_path / "p.part")
    assert error.code == "digest_mismatch"
    assert f"{url} does not match the SHA-256 the catalog states" in error.msg
    assert not (tmp_path / "p.part").exists()


@pytest.mark.parametrize("keep", [True, False])
def test_a_stall_is_cut_by_the_deadline_and_the_part_kept(hostile_server, tmp_path, keep):
    url = hostile_server.add("/p.bin", BODY, stall_after=20000, stall=60)
    error = refused(HttpClient(timeout=30), url, tmp_path / "p.part", keep=keep, deadline=Deadline(1.5, what="the request time limit"))
    assert error.code == "request_timeout"
    assert f"GET {url} did not finish within the request time limit" in error.msg
    assert (tmp_path / "p.part").read_bytes() == BODY[:20000]  # kept for the next try's Range


def test_a_503_with_retry_after_is_retried_after_the_wait_asked_for(hostile_server, tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(transport.time, "sleep", slept.append)
    url = hostile_server.add("/p.bin", BODY, status=503, fail_times=1, headers={"Retry-After": "7"})
    assert fetch(HttpClient(timeout=5), url, tmp_path / "p.part").data == BODY
    assert slept == [7.0] and hostile_server.request_count("/p.bin") == 2


def test_retry_after_is_capped(hostile_server, tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(transport.time, "sleep", slept.append)
    url = hostile_server.add("/p.bin", BODY, status=503, fail_times=1, headers={"Retry-After": "3600"})
    assert fetch(HttpClient(timeout=5), url, tmp_path / "p.part").data == BODY
    assert slept == [transport.retry_sleep(3600)] and slept[0] < 3600


def test_a_503_to_the_last_retry_is_an_http_status_error(hostile_server, tmp_path, monkeypatch):
    monkeypatch.setattr(transport.time, "sleep", lambda _seconds: None)
    url = hostile_server.add("/p.bin", BODY, status=503)
    error = refused(HttpClient(timeout=5, retries=2), url, tmp_path / "p.part")
    assert (error.code, error.details.get("status")) == ("http_status", 503)
    assert f"GET {url} answered HTTP 503" in error.msg
    assert hostile_server.request_count("/p.bin") == 3 and not (tmp_path / "p.part").exists()


def test_a_closed_port_is_connection_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(transport.time, "sleep", lambda _seconds: None)
    from ansible_collections.exup.fleet.tests.services.ports import free_port

    port = free_port()
    error = refused(HttpClient(timeout=5, retries=1), f"http://127.0.0.1:{port}/p.bin", tmp_path / "p.part")
    assert error.code == "connection_failed"
    assert f"cannot reach http://127.0.0.1:{port}" in error.msg
    assert not (tmp_path / "p.part").exists()


# --- the catalog's conditional GET -----------------------------------------------------------------------


def test_conditional_get_returns_the_body_and_its_validators(hostile_server):
    url = hostile_server.add("/catalog.json", BODY)
    got = HttpClient(timeout=5).get_conditional(url, params={"feed": "a b"}, max_bytes=len(BODY))
    assert (got["status"], bytes(got["body"]), got["final_url"], got["redirected"]) == (200, BODY, url, False)
    assert got["etag"] and got["last_modified"]
    [request] = hostile_server.requests_for("/catalog.json")
    assert request.path == "/catalog.json" and request.headers["Accept-Encoding"] == "identity"
    again = HttpClient(timeout=5).get_conditional(url, etag=got["etag"], last_modified=got["last_modified"])
    assert (again["status"], again["body"]) == (304, None)
    assert hostile_server.requests_for("/catalog.json")[1].headers["If-None-Match"] == got["etag"]


def test_conditional_get_sends_its_params(nginx, feed):
    HttpClient().get_conditional(nginx.url("p.bin"), params={"feed": "a b", "n": 2})
    assert nginx.wait_for_log(1)[0]["uri"] == "/p.bin?feed=a+b&n=2"


@pytest.mark.parametrize("no_length", [False, True])
def test_conditional_get_refuses_a_body_over_its_bound(hostile_server, no_length):
    url = hostile_server.add("/catalog.json", BODY, no_length=no_length)
    with pytest.raises(TransportError) as caught:
        HttpClient(timeout=5).get_conditional(url, max_bytes=1000)
    assert caught.value.code == "download_too_long"
    said = f"{url} is larger than 1000 bytes" + ("" if no_length else f" (it states {len(BODY)})")
    assert caught.value.msg == said


def test_conditional_get_of_a_missing_file_is_an_http_status_error(hostile_server):
    with pytest.raises(TransportError) as caught:
        HttpClient(timeout=5).get_conditional(hostile_server.url("/nothing.json"))
    assert (caught.value.code, caught.value.msg) == ("http_status", f"GET {hostile_server.url('/nothing.json')} answered HTTP 404")


def test_a_module_run_on_libcurl_never_imports_requests(feed, nginx, tmp_path):
    # requests and its helpers cost 60-90 ms of CPU to import: a sync with pycurl does without them.
    code = (
        "import sys\n"
        "from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient\n"
        f"client = HttpClient()\n"
        f"client.get_conditional({nginx.url('p.bin')!r})\n"
        f"client.fetch({nginx.url('p.bin')!r}, {str(tmp_path / 'p.part')!r}, {len(BODY)}, {SHA!r})\n"
        "print(sorted(name for name in ('requests', 'urllib3', 'requests_toolbelt') if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr


# --- keep-alive -------------------------------------------------------------------------------------------


def test_each_thread_keeps_its_connection_across_packages(feed, nginx, tmp_path):
    client = HttpClient()

    def worker(index: int) -> None:
        for turn in range(5):
            assert fetch(client, nginx.url("p.bin"), tmp_path / f"{index}-{turn}.part").data == BODY

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = nginx.wait_for_log(20)
    assert len(entries) == 20 and all(e["status"] == 200 for e in entries)
    assert len({e["connection"] for e in entries}) == 4  # one connection per thread, 5 packages on each


def test_without_pycurl_fetch_takes_requests_path(feed, nginx, tmp_path, monkeypatch):
    monkeypatch.undo()  # requests' path allowed again
    monkeypatch.setattr(transport, "HAS_PYCURL", False)
    client = HttpClient()
    assert not client.fast_path()
    assert client.fetch(nginx.url("p.bin"), str(tmp_path / "p.part"), len(BODY), SHA, keep_bytes=True).data == BODY
