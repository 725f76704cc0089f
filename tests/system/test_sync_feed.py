"""Repository sync from a synthetic vendor feed served by a real nginx on 127.0.0.1.

What is checked against what: the packages a sync downloads against the generation rule written
out again in helpers.reference_wanted and against the core's generation_plan run on the catalog
itself; the requests against nginx's own access log (count, status, bytes, query); the store
against its files (every pool file hashed and verified as a package).
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import synthesize_feed, write_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key
from ansible_collections.exup.fleet.tests.services.nginx import NginxServer
from ansible_collections.exup.fleet.tests.system import helpers as h


@dataclasses.dataclass
class Feed:
    """A synthetic feed on nginx, a repository and the servers it manages."""

    feed_dir: Path
    nginx: NginxServer
    key: SigningKey
    models: list
    servers: list
    repo: Repository

    @property
    def url(self) -> str:
        return self.nginx.url(h.CATALOG)

    @property
    def trusted(self):
        return h.keyring(self.key)

    @property
    def root(self) -> Path:
        return Path(self.repo.store.root)

    def sync(self, client=None, check_mode=False, **options):
        return self.repo.sync(client or HttpClient(), self.trusted, SyncOptions(self.url, h.MANAGER, servers=self.servers, **options), check_mode=check_mode)

    def entries(self) -> list[dict]:
        return h.catalog_entries(self.feed_dir)

    def versions(self, module_id: str, model: str) -> list[dict]:
        """Catalog entries of one module for one model, newest first."""
        found = [e for e in self.entries() if e["module_id"] == module_id and model in e["models"]]
        return sorted(found, key=lambda e: version_key(e["version"]), reverse=True)


@pytest.fixture
def feed(tmp_path: Path, tmp_feed_dir: Path, nginx) -> Feed:
    key = SigningKey.generate()
    # 60 small packages: two models, the ten module kinds, five versions each, multi-model
    # controller firmware, Linux- and Windows-only software (synthesize_feed's realistic mix).
    count, models = synthesize_feed(str(tmp_feed_dir), key, entries=60, versions_per_module=5, avg_size=2048, seed=3)
    assert count == 60 and len(models) == 2
    servers = [h.server("db01", models[0], "rhel9"), h.server("ad01", models[0], "win2022"), h.server("web01", models[1], "sles15")]
    return Feed(tmp_feed_dir, nginx, key, models, servers, h.frozen_repo(tmp_path / "repo"))


def test_first_sync_downloads_exactly_what_generation_management_wants(feed: Feed):
    wanted = h.reference_wanted(feed.entries(), feed.servers)
    # The core's own rule, run on the verified catalog, agrees with the rule written out plainly.
    assert h.planned_wanted(feed.feed_dir, feed.trusted, feed.servers) == wanted
    # Not everything: older generations, other models' and other OSes' packages stay on the feed.
    assert 10 < len(wanted) < len(feed.entries())

    result = feed.sync(workers=4)

    assert sorted(a["package_id"] for a in result.added) == sorted(wanted)
    assert result.removed == [] and result.refused == [] and result.skipped_tombstoned == []
    sizes = {e["package_id"]: e["size"] for e in feed.entries()}
    assert result.bytes_downloaded == sum(sizes[p] for p in wanted)
    assert result.catalog["version"] == 1 and result.catalog["entries_new"] == 60

    # The store: exactly the wanted packages, each pool file hashed, named by its digest and verified.
    stored = h.check_store(feed.root, feed.trusted)
    assert set(stored) == wanted
    assert sorted(h.pool_files(feed.root).values()) == sorted(stored.values())
    assert h.tmp_files(feed.root) == {}

    # nginx saw one catalog request and one complete GET per wanted package, nothing else.
    catalog, packages = h.sync_requests(feed.nginx.wait_for_log(1 + len(wanted)))
    assert [(e["status"], e["method"]) for e in catalog] == [(200, "GET")]
    assert h.requested_ids(packages) == sorted(wanted)
    assert all(e["status"] == 200 and e["body_bytes_sent"] == sizes[h.requested_ids([e])[0]] for e in packages)


def test_unchanged_feed_costs_one_304_and_no_package_bytes(feed: Feed):
    feed.sync()
    first_log = len(feed.nginx.wait_for_log(1))
    before = h.snapshot(feed.root)

    result = feed.sync()

    assert result.feed_unchanged and not result.changed
    assert result.added == [] and result.removed == [] and result.bytes_downloaded == 0
    time.sleep(0.2)  # give nginx time to log anything else it might have served
    new = feed.nginx.access_log()[first_log:]
    assert [(e["status"], e["body_bytes_sent"]) for e in new] == [(304, 0)]
    assert new[0]["uri"].startswith("/catalog.json?") and new[0]["if_none_match"]
    assert h.snapshot(feed.root) == before


def test_new_version_is_downloaded_and_the_fourth_generation_removed(feed: Feed):
    first = feed.sync()
    model = feed.models[0]
    bios = feed.versions("system-bios", model)
    kept_before = {e["package_id"] for e in bios[:3]}
    assert kept_before <= set(h.indexed(feed.root)) and not {e["package_id"] for e in bios[3:]} & set(h.indexed(feed.root))
    first_log = len(feed.nginx.wait_for_log(1))

    newest = h.info("system-bios-newest-9.00", "system-bios", "9.00", models=(model,))
    h.publish_package(feed.feed_dir, feed.key, newest)  # catalog version 2
    result = feed.sync()

    assert [a["package_id"] for a in result.added] == [newest.package_id]
    # The old third generation is now the fourth: generation management removes it.
    assert [r["package_id"] for r in result.removed] == [bios[2]["package_id"]]
    assert result.catalog["version"] == 2 and result.catalog["entries_new"] >= 1
    stored = h.check_store(feed.root, feed.trusted)
    assert newest.package_id in stored and bios[2]["package_id"] not in stored
    assert bios[2]["sha256"] not in h.pool_files(feed.root).values()

    catalog, packages = h.sync_requests(feed.nginx.wait_for_log(first_log + 2)[first_log:])
    assert [e["status"] for e in catalog] == [200]
    # The request says what the repository already has: since = the last catalog's generation time.
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(catalog[0]["uri"]).query)
    assert query == {"since": [first.catalog["generated"]]}
    assert h.requested_ids(packages) == [newest.package_id]


def test_check_mode_reports_and_changes_nothing(feed: Feed):
    # On a repository that does not exist yet: reports the whole download, creates nothing.
    wanted = h.reference_wanted(feed.entries(), feed.servers)
    preview = feed.sync(check_mode=True)
    assert sorted(a["package_id"] for a in preview.added) == sorted(wanted)
    assert not feed.root.exists()
    assert h.sync_requests(feed.nginx.wait_for_log(1))[1] == []  # the catalog only, no package

    feed.sync()
    newest = h.info("system-bios-newest-9.00", "system-bios", "9.00", models=(feed.models[0],))
    h.publish_package(feed.feed_dir, feed.key, newest)
    before = h.snapshot(feed.root, skip_tables=())  # events included: check mode logs nothing either
    log_before = len(feed.nginx.wait_for_log(1))

    preview = feed.sync(check_mode=True)

    third = feed.versions("system-bios", feed.models[0])[3]["package_id"]
    assert [a["package_id"] for a in preview.added] == [newest.package_id]
    assert [r["package_id"] for r in preview.removed] == [third]
    assert h.snapshot(feed.root, skip_tables=()) == before
    time.sleep(0.2)
    assert h.sync_requests(feed.nginx.access_log()[log_before:])[1] == []

    # What check mode announced is what the real run does.
    real = feed.sync()
    assert real.added and [a["package_id"] for a in real.added] == [a["package_id"] for a in preview.added]
    assert real.removed == preview.removed


def test_tombstoned_package_is_never_downloaded_until_history_cleared(feed: Feed):
    feed.sync()
    model = feed.models[0]
    bios = [e["package_id"] for e in feed.versions("system-bios", model)]  # newest first, 5 versions
    assert len(bios) == 5
    deleted = bios[:2]
    results = feed.repo.delete(deleted, h.MANAGER)
    assert [r["result"] for r in results] == ["deleted", "deleted"]

    # The feed changes (a new catalog, a new package for another module) so the sync re-reads it all.
    other = h.info("sdr-newest-9.00", "sdr", "9.00", models=(model,))
    h.publish_package(feed.feed_dir, feed.key, other)
    log_before = len(feed.nginx.wait_for_log(1))
    result = feed.sync()

    assert sorted(result.skipped_tombstoned) == sorted(deleted)
    assert [a["package_id"] for a in result.added] == [other.package_id]
    stored = h.check_store(feed.root, feed.trusted)
    # Deleting the two newest never pulls the 4th and 5th generations into the window.
    assert [p for p in bios if p in stored] == [bios[2]]
    requested = h.requested_ids(h.sync_requests(feed.nginx.wait_for_log(log_before + 2)[log_before:])[1])
    assert requested == [other.package_id]

    assert sorted(feed.repo.clear_tombstones()) == sorted(deleted)
    log_before = len(feed.nginx.wait_for_log(log_before + 2))
    result = feed.sync()

    # Cleared: the deleted packages come back; packages 3 or more generations behind the newest do not.
    assert sorted(a["package_id"] for a in result.added) == sorted(deleted)
    assert result.skipped_tombstoned == []
    stored = h.check_store(feed.root, feed.trusted)
    assert [p for p in bios if p in stored] == bios[:3]
    requested = h.requested_ids(h.sync_requests(feed.nginx.wait_for_log(log_before + 3)[log_before:])[1])
    assert requested == sorted(deleted)


def test_parallel_workers_download_at_the_same_time(tmp_path: Path, tmp_feed_dir: Path, hostile_server):
    """Eight packages that each take >= 0.4 s to serve: four workers need about a quarter of the time.

    The hostile server (a real threaded HTTP server) is used for its 'slow' pacing; nginx cannot
    be slowed down per file.
    """
    key = SigningKey.generate()
    trusted = h.keyring(key)
    servers = [h.server(f"s{i}", model=f"Express5800/P{i}") for i in range(8)]
    for i in range(8):
        h.publish_package(tmp_feed_dir, key, h.info(f"bios-p{i}", models=(f"Express5800/P{i}",)), published="2026-01-01T00:00:00Z")
    slow = {e["url"]: {"slow": 0.1, "chunk_size": 1024} for e in h.catalog_entries(tmp_feed_dir)}  # >= 4 chunks each
    url = h.serve_feed_dir(hostile_server, tmp_feed_dir, **slow)
    per_package = 0.1 * (min(e["size"] for e in h.catalog_entries(tmp_feed_dir)) // 1024)
    assert per_package >= 0.4

    # Control: the server really paces its answers (one package alone takes per_package).
    first = h.catalog_entries(tmp_feed_dir)[0]
    began = time.monotonic()
    HttpClient().download(hostile_server.url(first["url"]), str(tmp_path / "one.part"), first["size"], first["sha256"])
    assert time.monotonic() - began >= 0.1 * (first["size"] // 1024)

    began = time.monotonic()
    result = Repository(str(tmp_path / "parallel")).sync(HttpClient(), trusted, SyncOptions(url, h.MANAGER, servers=servers, workers=4))
    elapsed = time.monotonic() - began

    assert len(result.added) == 8 and result.refused == []
    # One after the other would take at least 8 * per_package; four at a time about 2 * per_package.
    assert 2 * per_package <= elapsed < 4 * per_package + 0.5, f"{elapsed:.2f} s: downloads did not overlap"
    h.check_store(tmp_path / "parallel", trusted)


def test_tls_feed_with_ca_path_and_refused_without(tmp_path: Path, tmp_feed_dir: Path, nginx_tls):
    key = SigningKey.generate()
    trusted = h.keyring(key)
    h.simple_feed(tmp_feed_dir, key, versions=("1.00", "1.01"))
    url = nginx_tls.url(h.CATALOG)
    assert url.startswith("https://")
    repo = h.frozen_repo(tmp_path / "repo")
    servers = [h.server("db01")]

    result = repo.sync(HttpClient(ca_path=str(nginx_tls.ca_path)), trusted, SyncOptions(url, h.MANAGER, servers=servers))
    assert len(result.added) == 4
    h.check_store(tmp_path / "repo", trusted)

    # Default verification (the system CA store) does not know the test CA.
    h.publish_package(tmp_feed_dir, key, h.info("system-bios-1.02", version="1.02"))
    before = h.snapshot(tmp_path / "repo")
    with pytest.raises(TransportError) as caught:
        repo.sync(HttpClient(), trusted, SyncOptions(url, h.MANAGER, servers=servers))
    assert caught.value.code == "tls_failed"
    assert f"TLS verification of https://127.0.0.1:{nginx_tls.port} failed" in caught.value.msg
    assert "unable to get local issuer certificate" in caught.value.msg  # OpenSSL's reason, in libcurl's message as in Python's
    assert h.snapshot(tmp_path / "repo") == before


def test_withdrawn_package_is_not_asked_for_again(tmp_path: Path, tmp_feed_dir: Path, nginx):
    # A full catalog (a static server serves nothing else) is the whole truth: a package the vendor
    # withdrew is dropped from the feed the repository knows, so a missing file stops failing every sync.
    key = SigningKey.generate()
    h.simple_feed(tmp_feed_dir, key, versions=("1.00", "1.01"), modules=("system-bios",))
    gone = h.publish_package(tmp_feed_dir, key, h.info("system-bios-1.02", version="1.02"))
    (tmp_feed_dir / gone["url"]).unlink()  # the vendor took the file down...
    repo = h.frozen_repo(tmp_path / "repo")

    def sync(check_mode=False):
        return repo.sync(HttpClient(), h.keyring(key), SyncOptions(nginx.url(h.CATALOG), h.MANAGER, servers=[h.server("db01")]), check_mode=check_mode)

    first = sync()
    assert [(r["package_id"], r["code"]) for r in first.refused] == [("system-bios-1.02", "http_status")]
    assert sorted(a["package_id"] for a in first.added) == ["system-bios-1.00", "system-bios-1.01"]

    # ...and then withdrew its entry: a new catalog version without it.
    write_catalog(str(tmp_feed_dir), [e for e in h.catalog_entries(tmp_feed_dir) if e["package_id"] != gone["package_id"]], [key])
    h.catalog_changed(tmp_feed_dir)
    requests_before = len(nginx.access_log())

    preview = sync(check_mode=True)
    assert preview.refused == [] and preview.added == []  # check mode sees the withdrawal too
    second = sync()
    assert second.refused == [] and second.added == [] and second.removed == []
    with repo.read() as conn:
        assert sorted(conn.feed_entries()) == ["system-bios-1.00", "system-bios-1.01"]
    asked = [e["uri"] for e in nginx.wait_for_log(requests_before + 2)[requests_before:]]
    assert all(uri.startswith("/catalog.json") for uri in asked), asked  # nothing asked for the withdrawn file
