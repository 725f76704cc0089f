"""The scheduled download inside the repository service (service/scheduler.py), against real servers on 127.0.0.1.

The service (granian, tests/services/repo_service.py) syncs by itself from a signed feed on nginx when the repository's
settings say so, logs its run, keeps the last run in the store, tells a loopback webhook receiver, goes through the
proxy of the settings (squid with Digest auth), and cancels a run in flight when it is stopped.

No clock is faked here: the schedule's slot is put at the current minute (``download_at``), and schedule.py makes a
slot due during DUE_WINDOW (15 minutes) after it starts, so the service runs it as soon as it is up. The loop itself
runs against a fake clock in tests/unit/plugins/module_utils/_exup/service/test_scheduler.py.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import format_time, parse_time, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository, server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port
from ansible_collections.exup.fleet.tests.services.repo_service import RepoService
from ansible_collections.exup.fleet.tests.system import helpers as h

SECRET = "webhook signing key for tests"
PATIENCE = 90.0  # seconds a wait for the service may take at most (a loaded 2-CPU machine)
SCHEDULED = ("scheduled_", "packages_arrived", "webhook_", "repository_update_")


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that records each POST and answers 204."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.received: list[dict] = []

    def url(self, path: str) -> str:
        return "http://%s:%d%s" % (LOOPBACK, self.server_address[1], path)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def do_POST(self) -> None:  # pylint: disable=invalid-name  # http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Feed:
    """A signed feed on nginx for a repository whose manager mgr-a manages web1 (the feed's model) and db1 (another)."""

    def __init__(self, tmp_path: Path, feed_dir: Path, url: str) -> None:
        key = SigningKey.generate()
        self.entries = h.simple_feed(feed_dir, key, versions=("1.00", "1.01"), modules=("system-bios", "bmc-firmware"))
        self.pub = tmp_path / "vendor.pub"
        self.pub.write_bytes(key.public_pem())
        self.url = url
        self.store = tmp_path / "store"
        self.repo = Repository(str(self.store))
        servers = [{"name": "web1", "model": h.MODEL, "os": "rhel9"}, {"name": "db1", "model": "Express5800/R120h-2M", "os": "rhel9"}]
        self.repo.announce("mgr-a", [server_from_dict("mgr-a", server) for server in servers])

    def service(self, **kwargs) -> RepoService:
        return RepoService(self.store, feed_url=self.url, trusted_keys=[str(self.pub)], **kwargs)

    def schedule_now(self, **settings) -> str:
        """Every hour from the current minute (UTC): the service runs the slot when it starts."""
        at = utc_now().strftime("%H:%M")
        self.repo.change_settings(dict({"download_interval_hours": 1, "download_at": at}, **settings))
        return at


@pytest.fixture
def feed(tmp_path: Path, tmp_feed_dir: Path, nginx) -> Feed:
    return Feed(tmp_path, tmp_feed_dir, nginx.url(h.CATALOG))


def events(store: Path, prefixes=SCHEDULED) -> list[tuple[str, str, dict]]:
    """(code, message, detail) of the store's events whose code starts with one of ``prefixes``, oldest first."""
    conn = sqlite3.connect("file:%s?mode=ro" % (store / "repo.db"), uri=True)
    try:
        rows = conn.execute("SELECT code, message, detail FROM events ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(code, message, json.loads(detail)) for code, message, detail in rows if code.startswith(prefixes)]


def codes(store: Path) -> list[str]:
    return [item[0] for item in events(store)]


def state(store: Path) -> dict:
    path = store / "service" / "schedule.json"
    return json.loads(path.read_text()) if path.exists() else {}


def wait_for(what: str, predicate, timeout: float = PATIENCE):
    """Poll ``predicate`` until it is true (returns its value), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "the service did not get there: %s" % what
        time.sleep(0.1)


def test_the_service_downloads_on_schedule_tells_the_webhooks_and_keeps_the_last_run(feed: Feed, receiver: Receiver):
    closed = "http://%s:%d/down" % (LOOPBACK, free_port())  # nothing listens: webhook_failed, and nothing else stops
    at = feed.schedule_now(notify_webhooks=[receiver.url("/hooks/secret-path-1"), closed], webhook_secret=SECRET)
    wanted = sorted(entry["package_id"] for entry in feed.entries)
    with feed.service(workers=2):  # two workers, one schedule: the store's flock
        wait_for("the second webhook's failure", lambda: "webhook_failed" in codes(feed.store))
    assert codes(feed.store) == [
        "scheduled_download_started",
        "repository_update_started",
        "repository_update_finished",
        "scheduled_download_finished",
        "packages_arrived",
        "webhook_sent",
        "webhook_failed",
    ]
    found = {code: (message, detail) for code, message, detail in events(feed.store)}
    slot = found["scheduled_download_started"][1]["slot"]
    assert slot.endswith("T%s:00Z" % at)  # the slot of the current minute, not when the service happened to start
    assert found["scheduled_download_started"][1]["feed"] == feed.url
    finished = found["scheduled_download_finished"][1]
    assert (finished["added"], finished["removed"], finished["refused"]) == (len(wanted), 0, 0)
    assert finished["next_run"] == format_time(parse_time(slot) + datetime.timedelta(hours=1))
    assert sorted(package.info.package_id for package in feed.repo.packages()) == wanted

    # 003 §3.4.4: the event lists the packages and the managed servers they concern; the webhook gets the same notice
    notice = found["packages_arrived"][1]
    assert sorted(item["package_id"] for item in notice["packages"]) == wanted and notice["package_count"] == len(wanted)
    assert notice["servers"] == [{"manager_id": "mgr-a", "name": "web1", "model": h.MODEL, "os": "rhel9", "package_ids": wanted}]
    assert len(receiver.received) == 1
    posted = receiver.received[0]
    assert posted["path"] == "/hooks/secret-path-1" and posted["headers"]["X-Exup-Event"] == "packages_arrived"
    assert posted["headers"]["X-Exup-Signature"] == "sha256=" + hmac.new(SECRET.encode(), posted["body"], hashlib.sha256).hexdigest()
    body = json.loads(posted["body"])
    assert body == {"event": "packages_arrived", "packages": notice["packages"], "servers": notice["servers"]}
    assert found["webhook_sent"][1] == {"webhook": 0, "origin": receiver.url(""), "status": 204}
    failed_message, failed = found["webhook_failed"]
    assert failed["webhook"] == 1 and failed["error"] == "webhook_unreachable" and "cannot reach the webhook at" in failed_message
    logged = json.dumps(events(feed.store, prefixes=("",)))
    assert "secret-path" not in logged and SECRET not in logged  # a webhook's path and the signing key are never logged

    kept = state(feed.store)
    assert kept["last_outcome"] == "finished" and kept["last_slot"] == slot and kept["next_run"] == finished["next_run"]

    # a restart does not run the slot again: the kept last run counts
    with feed.service():
        wait_for("the restarted scheduler's decision", lambda: state(feed.store).get("pid") not in (None, kept["pid"]))
    assert codes(feed.store).count("scheduled_download_started") == 1
    assert state(feed.store)["next_run"] == kept["next_run"]

    # down over a slot: the missed slot runs once when the service is back (the feed has nothing new: no notice)
    path = feed.store / "service" / "schedule.json"
    path.write_text(json.dumps(dict(state(feed.store), last_run=format_time(parse_time(kept["last_run"]) - datetime.timedelta(hours=3)))))
    with feed.service():
        wait_for("the missed slot's run", lambda: codes(feed.store).count("scheduled_download_finished") == 2)
    assert codes(feed.store).count("scheduled_download_started") == 2
    assert events(feed.store)[-1][2]["added"] == 0 and len(receiver.received) == 1


def test_the_scheduled_download_goes_through_the_proxy_of_the_settings(feed: Feed, squid_digest):
    feed.schedule_now(proxy_url=squid_digest.url, proxy_username=squid_digest.user, proxy_password=squid_digest.password, proxy_auth="digest")
    start = len(squid_digest.access_log())
    with feed.service():
        wait_for("the run's end", lambda: {"scheduled_download_finished", "scheduled_download_failed"} & set(codes(feed.store)))
    assert "scheduled_download_finished" in codes(feed.store), events(feed.store)
    seen = [entry for entry in squid_digest.access_log()[start:] if feed.url.rsplit("/", 1)[0] in entry["url"]]
    passed = [entry for entry in seen if "/407" not in entry["result"]]  # Digest: a challenge first, then the answer
    assert passed and {entry["user"] for entry in passed} == {squid_digest.user}
    assert any(entry["url"].startswith(feed.url) for entry in passed)
    assert squid_digest.password.encode() not in (feed.store / "repo.db").read_bytes()


def test_stopping_the_service_cancels_a_scheduled_run_in_flight(tmp_path: Path, tmp_feed_dir: Path, hostile_server):
    key = SigningKey.generate()
    big = h.info("system-bios-2.00", "system-bios", "2.00")
    h.publish_bytes(tmp_feed_dir, key, big, h.package_bytes(big, key, payload={"image/fw.bin": os.urandom(512 * 1024)}))
    url = h.serve_feed_dir(hostile_server, tmp_feed_dir, **{"packages/system-bios-2.00.zip": {"slow": 0.05, "chunk_size": 2048}})  # 13 s
    pub = tmp_path / "vendor.pub"
    pub.write_bytes(key.public_pem())
    store = tmp_path / "store"
    repo = Repository(str(store))
    repo.announce("mgr-a", [server_from_dict("mgr-a", {"name": "web1", "model": h.MODEL, "os": "rhel9"})])
    repo.change_settings({"download_interval_hours": 1, "download_at": utc_now().strftime("%H:%M")})
    service = RepoService(store, feed_url=url, trusted_keys=[str(pub)])
    with service:
        wait_for("the package download", lambda: any(r.path.endswith(".zip") for r in hostile_server.requests))
    # the service is stopped (SIGTERM): its lifespan's shutdown stopped the scheduler, which cancelled the run
    assert codes(store) == ["scheduled_download_started", "repository_update_started", "repository_update_cancelled", "scheduled_download_cancelled"]
    assert state(store)["last_outcome"] == "cancelled" and "last_run" not in state(store)
    assert repo.packages() == []
    # the service is back: the cancelled slot runs again
    hostile_server.behaviours["/packages/system-bios-2.00.zip"].slow = 0.0
    with RepoService(store, feed_url=url, trusted_keys=[str(pub)]):
        wait_for("the run again", lambda: "scheduled_download_finished" in codes(store))
    assert [package.info.package_id for package in repo.packages()] == ["system-bios-2.00"]
