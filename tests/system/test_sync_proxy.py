"""Repository sync through a real squid on 127.0.0.1: Basic and Digest proxy auth, and the clear failures.

That the requests really went through the proxy is read from both ends: squid's access log lists
them with the authenticated user, and nginx's log shows squid's Via header on each of them.
The squid fixtures are session scoped, so log entries are picked by this test's nginx port.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.tests.services.nginx import NginxServer
from ansible_collections.exup.fleet.tests.system import helpers as h


@dataclasses.dataclass
class Seeded:
    """A repository synced directly from nginx, then a newer package published: a proxy sync has work to do."""

    feed_dir: Path
    nginx: NginxServer
    key: SigningKey
    repo: Repository
    new_package: str

    @property
    def root(self) -> Path:
        return Path(self.repo.store.root)

    def sync(self, client):
        return self.repo.sync(client, h.keyring(self.key), SyncOptions(self.nginx.url(h.CATALOG), h.MANAGER, servers=[h.server("db01")]))

    def squid_entries(self, proxy) -> list[dict]:
        """squid's log entries for requests to this test's nginx."""
        return [e for e in proxy.access_log() if f"127.0.0.1:{self.nginx.port}/" in e["url"]]


@pytest.fixture
def seeded(tmp_path: Path, tmp_feed_dir: Path, nginx) -> Seeded:
    key = SigningKey.generate()
    h.simple_feed(tmp_feed_dir, key, versions=("1.00", "1.01"), modules=("system-bios",))
    repo = h.frozen_repo(tmp_path / "repo")
    seeded = Seeded(tmp_feed_dir, nginx, key, repo, "system-bios-1.02")
    assert len(seeded.sync(HttpClient()).added) == 2
    h.publish_package(tmp_feed_dir, key, h.info("system-bios-1.02", version="1.02"))
    nginx.wait_for_log(3)
    return seeded


def assert_went_through(seeded: Seeded, proxy, start: int) -> None:
    """The catalog and the new package went through ``proxy`` as its user, and reached nginx from squid."""
    squid = [e for e in seeded.squid_entries(proxy) if e["status"] == 200]
    paths = sorted(e["url"].split(f":{seeded.nginx.port}", 1)[1].split("?")[0] for e in squid)
    assert paths == ["/catalog.json", f"/packages/{seeded.new_package}.zip"]
    assert {e["user"] for e in squid} == {proxy.user}
    reached = seeded.nginx.wait_for_log(start + 2)[start:]
    assert len(reached) == 2 and all("squid" in e["via"] for e in reached), reached


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_sync_through_authenticating_proxy(seeded: Seeded, auth: str, squid_basic, squid_digest):
    proxy = squid_basic if auth == "basic" else squid_digest
    start = len(seeded.nginx.access_log())
    client = HttpClient(proxy_url=proxy.url, proxy_username=proxy.user, proxy_password=proxy.password, proxy_auth=auth)

    result = seeded.sync(client)

    assert [a["package_id"] for a in result.added] == [seeded.new_package]
    assert h.check_store(seeded.root, h.keyring(seeded.key))[seeded.new_package]
    assert_went_through(seeded, proxy, start)
    if auth == "digest":
        # Digest is a challenge and an answer: each request is first refused (407), then let through.
        assert [e["status"] for e in seeded.squid_entries(proxy)] == [407, 200, 407, 200]


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_wrong_proxy_password_fails_clearly_and_changes_nothing(seeded: Seeded, auth: str, squid_basic, squid_digest):
    proxy = squid_basic if auth == "basic" else squid_digest
    start = len(seeded.nginx.access_log())
    before = h.snapshot(seeded.root)
    client = HttpClient(proxy_url=proxy.url, proxy_username=proxy.user, proxy_password="not-the-password", proxy_auth=auth)

    with pytest.raises(TransportError) as caught:
        seeded.sync(client)

    assert caught.value.code == "proxy_auth_failed"
    assert f"the proxy {proxy.url} refused the credentials of user {proxy.user} (407)" in caught.value.msg
    assert "not-the-password" not in caught.value.msg
    assert h.snapshot(seeded.root) == before
    assert [e["status"] for e in seeded.squid_entries(proxy)][-1] == 407
    assert all(e["status"] == 407 for e in seeded.squid_entries(proxy))
    assert seeded.nginx.access_log()[start:] == []  # nothing got past the proxy


def test_ntlm_proxy_is_refused_as_unsupported(seeded: Seeded, squid_ntlm):
    before = h.snapshot(seeded.root)
    client = HttpClient(proxy_url=squid_ntlm.url, proxy_username="exup", proxy_password="s3cret")

    with pytest.raises(TransportError) as caught:
        seeded.sync(client)

    assert caught.value.code == "proxy_ntlm_unsupported"
    assert f"the proxy {squid_ntlm.url} asks for NTLM authentication, which is not supported" in caught.value.msg
    assert h.snapshot(seeded.root) == before
    assert [e["status"] for e in seeded.squid_entries(squid_ntlm)] == [407]


def test_auth_proxy_without_credentials_says_so(seeded: Seeded, squid_basic):
    before = h.snapshot(seeded.root)

    with pytest.raises(TransportError) as caught:
        seeded.sync(HttpClient(proxy_url=squid_basic.url))

    assert caught.value.code == "proxy_auth_required"
    assert f"the proxy {squid_basic.url} requires authentication (Basic realm=" in caught.value.msg
    assert "set proxy_username and proxy_password" in caught.value.msg
    assert h.snapshot(seeded.root) == before


def test_open_proxy_without_auth(seeded: Seeded, squid_open):
    start = len(seeded.nginx.access_log())
    result = seeded.sync(HttpClient(proxy_url=squid_open.url))
    assert [a["package_id"] for a in result.added] == [seeded.new_package]
    squid = [e for e in seeded.squid_entries(squid_open) if e["status"] == 200]
    assert len(squid) == 2 and {e["user"] for e in squid} == {"-"}
    assert all("squid" in e["via"] for e in seeded.nginx.wait_for_log(start + 2)[start:])


# ----------------------------------------------------------------- https:// feeds: the proxy sees a CONNECT tunnel
@pytest.fixture
def tls_feed(tmp_path: Path, tmp_feed_dir: Path, nginx_tls):
    """A feed over TLS (the CA is the test's own) and an empty repository."""
    key = SigningKey.generate()
    h.simple_feed(tmp_feed_dir, key, versions=("1.00", "1.01"), modules=("system-bios",))
    return nginx_tls, key, h.frozen_repo(tmp_path / "repo")


def sync_tls(tls_feed, client):
    web, key, repo = tls_feed
    return repo.sync(client, h.keyring(key), SyncOptions(web.url(h.CATALOG), h.MANAGER, servers=[h.server("db01")]))


def tunnels(proxy, web) -> list[dict]:
    return [e for e in proxy.access_log() if e["method"] == "CONNECT" and e["url"] == f"127.0.0.1:{web.port}"]


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_https_feed_through_authenticating_proxy(tls_feed, auth: str, squid_basic, squid_digest):
    # Digest for a tunnel: the answer is computed from a challenge asked for beforehand, because
    # the 407 to a CONNECT never reaches requests' auth hooks (tests/system/test_services.py shows that).
    proxy = squid_basic if auth == "basic" else squid_digest
    web = tls_feed[0]
    client = HttpClient(proxy_url=proxy.url, proxy_username=proxy.user, proxy_password=proxy.password, proxy_auth=auth, ca_path=str(web.ca_path))

    result = sync_tls(tls_feed, client)

    assert sorted(a["package_id"] for a in result.added) == ["system-bios-1.00", "system-bios-1.01"]
    assert h.check_store(Path(tls_feed[2].store.root), h.keyring(tls_feed[1]))
    passed = [e for e in tunnels(proxy, web) if e["status"] == 200]
    assert passed and {e["user"] for e in passed} == {proxy.user}
    assert len(web.wait_for_log(3)) == 3  # the catalog and both packages reached nginx, through the tunnel(s)


def test_https_feed_wrong_digest_password_fails_clearly_and_changes_nothing(tls_feed, squid_digest):
    web, _key, repo = tls_feed
    client = HttpClient(
        proxy_url=squid_digest.url, proxy_username=squid_digest.user, proxy_password="not-the-password", proxy_auth="digest", ca_path=str(web.ca_path)
    )

    with pytest.raises(TransportError) as caught:
        sync_tls(tls_feed, client)

    assert caught.value.code == "proxy_auth_failed"
    assert f"the proxy {squid_digest.url} refused the credentials of user {squid_digest.user} for a tunnel to 127.0.0.1:{web.port} (407)" in caught.value.msg
    assert "not-the-password" not in caught.value.msg
    assert not Path(repo.store.root, "pool").exists() or h.pool_files(Path(repo.store.root)) == {}
    assert all(e["status"] == 407 for e in tunnels(squid_digest, web))
    assert web.access_log() == []


def test_https_feed_through_ntlm_proxy_is_refused_as_unsupported(tls_feed, squid_ntlm):
    web = tls_feed[0]
    for auth in ("basic", "digest"):
        client = HttpClient(proxy_url=squid_ntlm.url, proxy_username="exup", proxy_password="s3cret", proxy_auth=auth, ca_path=str(web.ca_path))
        with pytest.raises(TransportError) as caught:
            sync_tls(tls_feed, client)
        assert caught.value.code == "proxy_ntlm_unsupported", auth
        assert f"the proxy {squid_ntlm.url} asks for NTLM authentication, which is not supported" in caught.value.msg
    assert web.access_log() == []
