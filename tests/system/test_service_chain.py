"""Chained repositories (issue 11 item 4; 003 §1.3, Fig. 5): an inner repository syncs from a DMZ repository service.

vendor feed (nginx) -> outer repository service (RepoService: feed_url and trusted_keys set) -> inner repository (a
local store synced through Repository.sync with ``upstream_options``: it knows only the outer's URL) -> the inner
manager's servers. What is checked against what: the inner's packages against the generation rule written out again
(helpers.reference_wanted) for the inner's servers only; nginx's access log for who reached the vendor; the inner's
store against its files (every pool file hashed and verified as a package); the inner's whole state before and after
each refusal (helpers.snapshot).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import typing
import zipfile
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import transport
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import CatalogError, ExupError, TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import upstream_options
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import write_catalog
from ansible_collections.exup.fleet.tests.services.hostile import hostile_http_server
from ansible_collections.exup.fleet.tests.services.ports import free_port
from ansible_collections.exup.fleet.tests.services.repo_service import ADMIN_PASSWORD, READ_PASSWORD, RepoService
from ansible_collections.exup.fleet.tests.system import helpers as h

INNER_MODEL = "Express5800/R120a-1M"  # the inner manager's servers
OUTER_MODEL = "Express5800/R120b-1M"  # the DMZ repository's own manager's servers
OTHER_MODEL = "Express5800/R120c-1M"  # nobody's
BIG_MODEL = "Express5800/R120d-1M"  # the one server of the resume test
UPSTREAM_ID = "chain-test-inner"


class Chain:
    """The vendor feed on nginx, the outer service over its store, and the inner repository with its servers."""

    def __init__(self, tmp_path: Path, feed_dir: Path, nginx, key: SigningKey) -> None:
        self.tmp_path, self.feed_dir, self.nginx, self.key = tmp_path, feed_dir, nginx, key
        self.outer_store = tmp_path / "outer"
        self.outer = RepoService(self.outer_store, port=free_port(), feed_url=nginx.url(h.CATALOG), trusted_keys=[key.public_pem().decode()])
        self.inner = h.frozen_repo(tmp_path / "inner")
        self.inner_servers = [h.server("db01", INNER_MODEL, "rhel9"), h.server("db02", INNER_MODEL, "rhel9")]
        self.outer_servers: list[dict] = [{"name": "web01", "model": OUTER_MODEL, "os": "rhel9", "modules": {}}]

    @property
    def inner_root(self) -> Path:
        return Path(self.inner.store.root)

    def client(self, user: str = "admin", client: HttpClient | None = None) -> HttpClient:
        made = client or HttpClient(retries=0)
        made.use_credentials(self.outer.base_url, user, ADMIN_PASSWORD if user == "admin" else READ_PASSWORD)
        return made

    def sync_inner(self, client: HttpClient | None = None, **options):
        options.setdefault("servers", self.inner_servers)
        options.setdefault("upstream_id", UPSTREAM_ID)
        return self.inner.sync(client or self.client(), h.keyring(self.key), upstream_options(self.outer.base_url, h.MANAGER, **options))

    def outer_download(self, manager_id: str, servers: list | None = None) -> dict:
        """The outer's own manager (or any other) announces servers and has the outer download for them."""
        if servers is not None:
            assert self.outer.request("POST", f"/v1/managers/{manager_id}/presence", json={"servers": servers}).status_code == 200
        started = self.outer.request("POST", "/v1/downloads", json={"manager_id": manager_id})
        assert started.status_code == 202, started.text
        while True:
            state = self.outer.get(f"/v1/downloads/{started.json()['download_id']}").json()
            if state["state"] != "running":
                return state

    def entries(self) -> list[dict]:
        return h.catalog_entries(self.feed_dir)


def publish_models(feed_dir: Path, key: SigningKey, models=(INNER_MODEL, OUTER_MODEL, OTHER_MODEL)) -> None:
    """Two modules in four versions for each model: a window of three kept per model, OS and module, one older left out."""
    for model in models:
        tag = model.rsplit("/", 1)[1].lower()
        for module_id in ("system-bios", "bmc-firmware"):
            for version in ("1.00", "1.01", "1.02", "1.03"):
                h.publish_package(feed_dir, key, h.info(f"{module_id}-{tag}-{version}", module_id, version, models=(model,)), published="2026-01-20T00:00:00Z")


@pytest.fixture
def chain(tmp_path: Path, tmp_feed_dir: Path, nginx):
    key = SigningKey.generate()
    publish_models(tmp_feed_dir, key)
    made = Chain(tmp_path, tmp_feed_dir, nginx, key)
    with made.outer:
        yield made


def test_the_inner_repository_gets_exactly_what_its_servers_need_through_the_outer_and_never_reaches_the_vendor(chain: Chain):
    # The DMZ repository's own manager needs its own model's packages.
    own = chain.outer_download("dmz", chain.outer_servers)
    assert own["state"] == "finished", own
    want_outer = h.reference_wanted(chain.entries(), [h.server(s["name"], s["model"], s["os"]) for s in chain.outer_servers])
    want_inner = h.reference_wanted(chain.entries(), chain.inner_servers)
    assert set(h.indexed(chain.outer_store)) == want_outer
    assert want_inner and not want_inner & want_outer

    # Check mode announces nothing to the outer (that would change it) and reads its feed view only.
    options = upstream_options(chain.outer.base_url, h.MANAGER, servers=chain.inner_servers)
    preview = chain.inner.sync(chain.client(), h.keyring(chain.key), options, check_mode=True)
    assert preview.upstream == {"url": chain.outer.base_url, "download": "skipped"}
    assert sorted(item["package_id"] for item in preview.added) == sorted(want_inner)
    assert not chain.inner_root.exists()

    result = chain.sync_inner()

    # The outer downloaded for the inner's servers first (announced as one manager of the outer), then the inner took
    # exactly what its servers need from the outer's feed view: not the outer's own, nor the models nobody has.
    assert result.upstream == {
        "url": chain.outer.base_url,
        "manager_id": UPSTREAM_ID,
        "servers": 2,
        "download": "finished",
        "added": len(want_inner),
        "removed": 0,
        "refused": 0,
    }
    assert sorted(item["package_id"] for item in result.added) == sorted(want_inner)
    assert result.refused == []
    assert set(h.check_store(chain.inner_root, h.keyring(chain.key))) == want_inner  # every file verified again here
    assert set(h.indexed(chain.outer_store)) == want_outer | want_inner
    codes = [event["code"] for event in result.events]
    assert codes.index("upstream_download_finished") < codes.index("package_downloaded")

    # The vendor saw the outer only: each package once, although both repositories hold the inner's; the inner's store
    # names the outer's feed view, never the vendor.
    _catalog_requests, package_requests = h.sync_requests(chain.nginx.wait_for_log(2 + len(want_outer | want_inner)))
    assert h.requested_ids(package_requests) == sorted(want_outer | want_inner)
    inner_state = json.dumps(h.db_rows(chain.inner_root, skip_tables=()))
    assert chain.nginx.base_url not in inner_state and chain.outer.url("/v1/feed/catalog.json") in inner_state
    assert json.loads((chain.inner_root / "feed" / "kept.json").read_text())["version"] == result.catalog["version"]

    # Nothing new: the outer answers from its 304, the inner's view answers 304, the inner's plan is skipped.
    again = chain.sync_inner()
    assert again.added == [] and again.feed_unchanged and again.plan_skipped and again.upstream["download"] == "finished"

    # The vendor is gone: the outer's download fails, the inner still syncs from what the outer holds.
    chain.nginx.stop()
    chain.inner_servers.append(h.server("db03", INNER_MODEL, "rhel9"))  # same model: nothing more to fetch
    cut_off = chain.sync_inner()
    assert cut_off.upstream["download"] == "failed" and cut_off.upstream["error"] == "connection_failed"
    failed = [event for event in cut_off.events if event["code"] == "upstream_download_failed"]
    assert len(failed) == 1 and failed[0]["level"] == "error" and failed[0]["detail"]["error"] == "connection_failed"
    assert cut_off.refused == [] and set(h.indexed(chain.inner_root)) == want_inner


def test_the_feed_view_needs_the_read_role_and_announcing_needs_admin(chain: Chain):
    assert chain.outer_download("dmz", chain.outer_servers)["state"] == "finished"
    assert chain.outer.request("GET", "/v1/feed/catalog.json", user=None).status_code == 401
    view = chain.outer.get("/v1/feed/catalog.json", user="read")
    assert view.status_code == 200 and view.content == (chain.feed_dir / h.CATALOG).read_bytes()  # the vendor's bytes
    assert chain.outer.get("/v1/feed/catalog.json", user="read", headers={"If-None-Match": view.headers["ETag"]}).status_code == 304
    held = next(e for e in chain.entries() if e["models"] == [OUTER_MODEL] and e["version"] == "1.03")
    missing = next(e for e in chain.entries() if e["models"] == [OTHER_MODEL])
    answer = chain.outer.get("/v1/feed/" + held["url"], user="read", headers={"Range": "bytes=10-"})
    assert answer.status_code == 206 and len(answer.content) == held["size"] - 10
    assert hashlib.sha256((chain.feed_dir / held["url"]).read_bytes()[10:]).digest() == hashlib.sha256(answer.content).digest()
    refused = chain.outer.get("/v1/feed/" + missing["url"], user="read")
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"

    # With the read role only, the inner cannot announce its needs: the sync fails at once with the outer's code, saying what to do.
    with pytest.raises(ExupError) as caught:
        chain.sync_inner(client=chain.client("read"))
    assert caught.value.code == "forbidden"
    assert "refused POST /v1/managers/%s/presence" % UPSTREAM_ID in caught.value.msg and "admin role" in caught.value.msg
    assert h.pool_files(chain.inner_root) == {} and h.indexed(chain.inner_root) == {} and h.tmp_files(chain.inner_root) == {}

    # Without credentials: feed_auth names the options to set; the password never shows.
    with pytest.raises(ExupError) as caught:
        chain.sync_inner(client=HttpClient(retries=0))
    assert caught.value.code == "auth_required" and "feed_username and feed_password" in caught.value.msg
    wrong = HttpClient(retries=0)
    wrong.use_credentials(chain.outer.base_url, "admin", "not-the-password-%s" % os.getpid())
    with pytest.raises(ExupError) as caught:
        chain.sync_inner(client=wrong)
    assert caught.value.code == "auth_failed" and "not-the-password" not in caught.value.msg


def test_a_tampered_file_on_the_outer_pool_is_refused_by_the_inner_and_not_indexed(chain: Chain):
    want_inner = h.reference_wanted(chain.entries(), chain.inner_servers)
    # The outer downloads for the inner first (as the inner's sync would), then one of its pool files is altered.
    outer_servers = [{"name": "%s/%s" % (s.manager_id, s.name), "model": s.model, "os": s.os, "modules": {}} for s in chain.inner_servers]
    assert chain.outer_download(UPSTREAM_ID, outer_servers)["state"] == "finished"
    victim = next(e for e in chain.entries() if e["package_id"] in want_inner)
    pool_file = Path(Store(str(chain.outer_store)).pool_path(victim["sha256"]))
    pool_file.chmod(0o644)
    data = bytearray(pool_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pool_file.write_bytes(bytes(data))  # same size: only the digest tells

    result = chain.sync_inner()

    assert [(item["package_id"], item["code"]) for item in result.refused] == [(victim["package_id"], "digest_mismatch")]
    assert "does not match the SHA-256 the catalog states" in result.refused[0]["reason"]
    assert set(h.indexed(chain.inner_root)) == want_inner - {victim["package_id"]}
    assert not Path(chain.inner.store.pool_path(victim["sha256"])).exists() and h.tmp_files(chain.inner_root) == {}
    refused = [event for event in result.events if event["code"] == "package_refused"]
    assert [(event["detail"]["package_id"], event["detail"]["error"]) for event in refused] == [(victim["package_id"], "digest_mismatch")]
    h.check_store(chain.inner_root, h.keyring(chain.key))


def _resigned(feed_dir: Path, key: SigningKey, **catalog) -> bytes:
    """The feed's entries in a catalog signed by ``key`` with ``catalog`` (version, expiry...), written aside."""
    aside = feed_dir.parent / ("aside-%d" % os.getpid())
    aside.mkdir(exist_ok=True)
    write_catalog(str(aside), h.catalog_entries(feed_dir), [key], **catalog)
    return (aside / h.CATALOG).read_bytes()


@pytest.mark.parametrize(
    ("hostile", "code", "words"),
    [
        ("rolled_back", "catalog_rollback", "refusing a rollback"),
        ("expired", "catalog_expired", "stale or frozen"),
        ("resigned", "unknown_key", "signed by no trusted key"),
    ],
)
def test_a_hostile_catalog_on_the_outer_is_refused_by_the_inner_and_changes_nothing(chain: Chain, hostile: str, code: str, words: str):
    older = (chain.feed_dir / h.CATALOG).read_bytes()  # a catalog the vendor really signed, before its last change
    h.publish_package(chain.feed_dir, chain.key, h.info("system-bios-r120a-1m-1.04", "system-bios", "1.04", models=(INNER_MODEL,)))
    first = chain.sync_inner()
    assert first.refused == [] and "system-bios-r120a-1m-1.04" in h.indexed(chain.inner_root)
    version = first.catalog["version"]
    planted = {
        "rolled_back": lambda: older,
        "expired": lambda: _resigned(chain.feed_dir, chain.key, version=version + 1, now=h.days_ago(40), expires_days=30),
        "resigned": lambda: _resigned(chain.feed_dir, SigningKey.generate(), version=version + 1),
    }[hostile]()
    # The outer is compromised or frozen, and cut off from the vendor (else its next download would keep the real one).
    chain.nginx.stop()
    outer_store = Store(str(chain.outer_store))
    outer_store.keep_catalog(outer_store.stage_catalog(planted), 1)
    before = h.snapshot(chain.inner_root)

    with pytest.raises(CatalogError) as caught:
        chain.sync_inner()

    assert caught.value.code == code and words in caught.value.msg
    assert h.snapshot(chain.inner_root) == before  # nothing indexed, removed, left in tmp/ or recorded of the feed
    kept = json.loads((chain.inner_root / "feed" / "kept.json").read_text())
    assert kept["version"] == version and kept["sha256"] == hashlib.sha256((chain.feed_dir / h.CATALOG).read_bytes()).hexdigest()


def big_package(key: SigningKey, package_id: str, size: int) -> bytes:
    """A signed package with one payload of ``size`` random bytes, stored (a deflate of random bytes gains nothing)."""
    package_info = h.info(package_id, "system-bios", "2.00", models=(BIG_MODEL,))
    members = h.package_members(package_info, key, payload={"payload/bios.rom": os.urandom(size), "install.sh": b"#!/bin/sh\nexit 0\n"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


class GatedClient(HttpClient):
    """HttpClient whose package downloads report what each fetch call moved, and can hold one download mid-body.

    The gate holds libcurl's write callback once ``gate_at`` bytes arrived, until the test releases it: the test
    stops the outer service meanwhile, so the download is cut by the service going away, not by the test."""

    def __init__(self, gate_at: int | None = None) -> None:
        super().__init__(retries=0)
        self.gate_at = gate_at
        self.reached = threading.Event()
        self.release = threading.Event()
        self.fetches: list[tuple[str, str, int | None, int]] = []

    def fetch(self, url, part_path, size, sha256, **kwargs):
        arrived = 0

        def progress(count: int) -> None:
            nonlocal arrived
            arrived += count
            if self.gate_at is not None and arrived >= self.gate_at and not self.reached.is_set():
                self.reached.set()
                self.release.wait(60)

        kwargs["progress"] = progress
        try:
            download = super().fetch(url, part_path, size, sha256, **kwargs)
        except TransportError as exc:
            self.fetches.append((url, exc.code, None, size))
            raise
        self.fetches.append((url, "ok", download.fetched, size))
        return download


def test_the_outer_service_stopped_in_the_middle_of_a_download_and_started_again_the_inner_resumes(chain: Chain):
    data = big_package(chain.key, "system-bios-r120d-1m-2.00", 24 * 1024 * 1024)
    size = len(data)
    entry = h.publish_bytes(chain.feed_dir, chain.key, h.info("system-bios-r120d-1m-2.00", "system-bios", "2.00", models=(BIG_MODEL,)), data)
    chain.inner_servers[:] = [h.server("big01", BIG_MODEL, "rhel9")]  # one download: the one the service's stop cuts
    gated = GatedClient(gate_at=4 * 1024 * 1024)
    chain.client(client=gated)
    outcome: dict = {}

    def first_sync() -> None:
        try:
            outcome["result"] = chain.sync_inner(client=gated)
        except BaseException as exc:  # reported by the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=first_sync)
    worker.start()
    try:
        assert gated.reached.wait(60), outcome
        # The service goes away abruptly (a crash, or a stop that outlived its grace): its connections are cut.
        os.kill(typing.cast(int, chain.outer.pid), signal.SIGKILL)
        chain.outer.stop()
    finally:
        gated.release.set()
        worker.join(60)
    assert "error" not in outcome, outcome
    first = outcome["result"]
    refused = [item for item in first.refused if item["package_id"] == entry["package_id"]]
    assert len(refused) == 1 and refused[0]["code"] in ("connection_failed", "download_truncated") and refused[0]["resumable"]
    part = Path(chain.inner.store.part_path(entry["sha256"]))
    kept_bytes = part.stat().st_size  # the .part outlived the failed sync, for the next one
    assert 4 * 1024 * 1024 <= kept_bytes < size
    assert entry["package_id"] not in h.indexed(chain.inner_root)

    chain.outer.start()  # the same port, the same store
    resumed = GatedClient()
    second = chain.sync_inner(client=chain.client(client=resumed))

    assert second.refused == [] and [item["package_id"] for item in second.added] == [entry["package_id"]]
    big_fetches = [item for item in resumed.fetches if item[0].endswith(entry["url"])]
    assert big_fetches == [(chain.outer.url("/v1/feed/" + entry["url"]), "ok", size - kept_bytes, size)]  # a Range from the .part
    assert h.check_store(chain.inner_root, h.keyring(chain.key))[entry["package_id"]] == entry["sha256"]
    assert not part.exists()


@pytest.mark.parametrize("path", ["libcurl", "requests"])
def test_feed_credentials_go_to_their_origin_only_never_to_a_redirect_elsewhere(path: str, monkeypatch, tmp_path: Path):
    if path == "requests":
        monkeypatch.setattr(transport, "HAS_PYCURL", False)
    body = os.urandom(50000)
    with hostile_http_server() as upstream, hostile_http_server() as elsewhere:
        elsewhere.add("catalog.json", b"{}")
        elsewhere.add("packages/a.zip", body)
        upstream.add("v1/feed/catalog.json", b"", status=302, headers={"Location": elsewhere.url("catalog.json")})
        upstream.add("v1/feed/packages/a.zip", b"", status=302, headers={"Location": elsewhere.url("packages/a.zip")})
        upstream.add("v1/feed/packages/b.zip", body)
        client = HttpClient(retries=0)
        client.use_credentials(upstream.base_url, "reader", "pw-%d" % os.getpid())
        assert client.fast_path() is (path == "libcurl")

        assert client.get_conditional(upstream.url("v1/feed/catalog.json"))["body"] == b"{}"
        sha = hashlib.sha256(body).hexdigest()
        assert client.fetch(upstream.url("v1/feed/packages/a.zip"), str(tmp_path / "a.part"), len(body), sha).fetched == len(body)
        assert client.fetch(upstream.url("v1/feed/packages/b.zip"), str(tmp_path / "b.part"), len(body), sha).fetched == len(body)

        token = "Basic " + base64.b64encode(("reader:pw-%d" % os.getpid()).encode()).decode()
        sent = [request.headers.get("Authorization") for request in upstream.requests]
        assert sent == [token, token, token]
        assert [request.headers.get("Authorization") for request in elsewhere.requests] == [None, None]


def run_sync_module(tmp_path: Path, collections_path: Path, params: dict) -> tuple[dict, str]:
    """exup_repo_sync run as a process (what AnsiballZ ends up running): its result and everything it printed."""
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
    module = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "exup_repo_sync.py"
    env = dict(os.environ, PYTHONPATH=str(collections_path))
    proc = subprocess.run([sys.executable, str(module), str(args)], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


def test_the_sync_module_chains_to_an_upstream_repository_with_feed_credentials(chain: Chain, tmp_path: Path, collections_path: Path):
    pub = tmp_path / "vendor.pub"
    pub.write_bytes(chain.key.public_pem())
    servers = [{"name": s.name, "model": s.model, "os": s.os} for s in chain.inner_servers]
    params = {
        "repository": str(chain.inner_root),
        "feed_url": chain.outer.base_url + "/",
        "upstream": "repository",
        "trusted_keys": [str(pub)],
        "servers": servers,
        "feed_username": "admin",
        "feed_password": ADMIN_PASSWORD,
    }
    result, printed = run_sync_module(tmp_path, collections_path, params)
    assert not result.get("failed"), result
    want_inner = h.reference_wanted(chain.entries(), chain.inner_servers)
    assert result["changed"] and sorted(item["package_id"] for item in result["added"]) == sorted(want_inner)
    assert result["upstream"]["download"] == "finished" and result["upstream"]["manager_id"].startswith("chain-")
    assert (chain.inner_root / "feed" / "downstream-id").read_text().strip() == result["upstream"]["manager_id"]
    assert ADMIN_PASSWORD not in printed

    wrong = "wrong-%d-password" % os.getpid()
    result, printed = run_sync_module(tmp_path, collections_path, dict(params, feed_password=wrong))
    assert result["failed"] and result["error"] == "auth_failed" and "refused POST" in result["msg"]
    assert wrong not in printed and ADMIN_PASSWORD not in printed

    result, _printed = run_sync_module(tmp_path, collections_path, dict(params, feed_password=None))
    assert result["failed"] and "feed_username" in result["msg"] and "feed_password" in result["msg"]  # required together


def test_an_upstream_that_is_no_repository_service_fails_the_sync_clearly_and_changes_nothing(tmp_path: Path, tmp_feed_dir: Path, nginx):
    # A common slip: upstream: repository with the vendor's own address. nginx refuses the POST of the presence.
    key = SigningKey.generate()
    publish_models(tmp_feed_dir, key, models=(INNER_MODEL,))
    inner = h.frozen_repo(tmp_path / "inner")
    options = upstream_options(nginx.base_url, h.MANAGER, servers=[h.server("db01", INNER_MODEL)], upstream_id=UPSTREAM_ID)
    with pytest.raises(ExupError) as caught:
        inner.sync(HttpClient(retries=0), h.keyring(key), options)
    assert caught.value.code == "service_failed"
    assert caught.value.msg.startswith("the upstream repository %s refused POST /v1/managers/%s/presence" % (nginx.base_url, UPSTREAM_ID))
    assert "without an exup error" in caught.value.msg
    assert h.indexed(tmp_path / "inner") == {} and h.pool_files(tmp_path / "inner") == {} and h.tmp_files(tmp_path / "inner") == {}
    assert [e["uri"] for e in nginx.wait_for_log(1)] == ["/v1/managers/%s/presence" % UPSTREAM_ID]  # nothing else was asked


class _EndlessDownloads(http.server.BaseHTTPRequestHandler):
    """An upstream whose download never ends: presence accepted, the download always "running"."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin  # keep test output clean
        pass

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # pylint: disable=invalid-name  # name fixed by http.server
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/presence"):
            self.answer(200, {"manager_id": UPSTREAM_ID, "expired": []})
        else:
            self.answer(202, {"download_id": "0123456789abcdef", "state": "running"})

    def do_GET(self):  # pylint: disable=invalid-name
        self.answer(200, {"download_id": "0123456789abcdef", "state": "running"})


def test_an_upstream_download_that_never_ends_is_bounded_by_the_sync_time_limit(tmp_path: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EndlessDownloads)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        base = "http://127.0.0.1:%d" % server.server_address[1]
        inner = h.frozen_repo(tmp_path / "inner")
        options = upstream_options(base, h.MANAGER, servers=[h.server("db01", INNER_MODEL)], upstream_id=UPSTREAM_ID, time_limit=2)
        with pytest.raises(TransportError) as caught:
            inner.sync(HttpClient(retries=0), h.keyring(SigningKey.generate()), options)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert caught.value.code == "sync_timeout"
    # Ended while waiting between polls, or during a poll the deadline cut: the same limit either way.
    assert any(
        words % base in caught.value.msg
        for words in ("while the upstream repository %s downloaded for this repository", "while calling the upstream repository %s")
    )
    assert h.indexed(tmp_path / "inner") == {} and h.pool_files(tmp_path / "inner") == {} and h.tmp_files(tmp_path / "inner") == {}


def test_a_repository_service_chained_to_another_downloads_through_it(chain: Chain, tmp_path: Path):
    """Both repositories as services (003 Fig. 5): the inner service's configuration names the outer as its upstream;
    a manager of the inner asks it to download, and it gets exactly its servers' packages through the outer."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.remote import RemoteOptions, RemoteRepository
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions

    password_file = tmp_path / "outer-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    password_file.chmod(0o600)
    config: dict[str, typing.Any] = {
        "feed_url": chain.outer.base_url,
        "upstream": "repository",
        "feed_username": "admin",
        "feed_password_file": str(password_file),
        "trusted_keys": [chain.key.public_pem().decode()],
    }
    with RepoService(tmp_path / "inner-service", **config) as inner:
        manager = RemoteRepository(RemoteOptions(inner.base_url, ADMIN_PASSWORD, manager_id="inner-site"))
        result = manager.sync(None, None, SyncOptions(feed_url="", manager_id="inner-site", servers=chain.inner_servers))
        want_inner = h.reference_wanted(chain.entries(), chain.inner_servers)
        assert {item["package_id"] for item in result.added} == want_inner
        assert set(h.indexed(tmp_path / "inner-service")) == want_inner
        assert set(h.indexed(chain.outer_store)) >= want_inner  # the outer downloaded them for the inner
        managers = {row[0] for row in h.db_rows(chain.outer_store)["managers"]}
        assert any(name.startswith("chain-") for name in managers), managers  # the inner service is one manager of the outer
