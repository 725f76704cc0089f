"""Nothing waits forever (issue 8 items 3 and 5): deadlines of a sync against a hostile HTTP server.

A server that trickles its headers or its body a byte at a time, a 503 with Retry-After: 3600, a
catalog cut short or stalled mid-body, a 304 to a request that was not conditional. Each case
asserts the error code, a fragment of its message, that the sync ended well within a generous
bound (a correctness bound, not a benchmark: a 3 s limit must end before 20 s), and that the
repository did not change (every database row but the event log, every pool file; tmp/ may keep a
partial download to resume). The event log says why the sync failed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import deadline as deadline_module
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.tests.system import helpers as h
from ansible_collections.exup.fleet.tests.system.test_sync_bad_input import NEW_ID, NEW_URL, Bench, _seed

BOUND = 20  # seconds: every case below has a limit of a few seconds; ending later means something waited on its own


@pytest.fixture
def bench(tmp_path: Path, tmp_feed_dir: Path, hostile_server) -> Bench:
    """A repository synced from a good feed on the hostile server; tests then make the server misbehave."""
    bench = _seed(tmp_path, tmp_feed_dir, hostile_server.url(h.CATALOG), load=lambda: h.serve_feed_dir(hostile_server, tmp_feed_dir))
    bench.hostile = hostile_server
    return bench


def new_catalog_bytes(bench: Bench) -> None:
    """Other catalog bytes, the same catalog (a space after the envelope): the hostile server's ETag is of the content,
    so the sync's conditional GET gets the body, not a 304."""
    path = bench.feed_dir / h.CATALOG
    path.write_bytes(path.read_bytes() + b" ")


def sync(bench: Bench, time_limit: float, timeout: int = 10, url: str | None = None, repo: Repository | None = None):
    options = SyncOptions(url or bench.url, h.MANAGER, servers=[h.server("db01")], time_limit=time_limit)
    return (repo or bench.repo).sync(HttpClient(timeout=timeout), bench.trusted, options)


def fails(bench: Bench, code: str, fragment: str, time_limit: float = 3, keeps_part: bool = False, catalog_accepted: bool = False, **kwargs) -> ExupError:
    """Sync with ``time_limit``; it must raise ``code`` before BOUND seconds, change nothing but the event log, and log why.

    ``catalog_accepted``: the new catalog is validly signed and stays accepted; then the indexed packages, tombstones,
    pool files must be as before. ``keeps_part``: tmp/ may keep a partial download.
    """
    snapshot = h.package_snapshot if catalog_accepted else h.snapshot
    before = snapshot(bench.root)
    started = time.monotonic()
    with pytest.raises(ExupError) as caught:
        sync(bench, time_limit, **kwargs)
    elapsed = time.monotonic() - started
    assert caught.value.code == code, caught.value.msg
    assert fragment in caught.value.msg
    assert elapsed < BOUND, elapsed
    after = snapshot(bench.root)
    if keeps_part:
        del before["tmp"], after["tmp"]
    assert after == before
    h.check_store(bench.root, bench.trusted)
    failed = [e for e in bench.repo.listing(h.MANAGER)["events"] if e["code"] == "repository_update_failed"]
    assert failed[-1]["detail"]["error"] == code and fragment in failed[-1]["message"], failed[-1]
    return caught.value


# --------------------------------------------------------------------------- whole-request deadlines (item 3)


def test_catalog_trickled_a_byte_every_2_s_ends_at_the_sync_time_limit(bench: Bench):
    # Before: each byte came within the 10 s read timeout, so the sync ran as long as the server liked (past 90 s).
    new_catalog_bytes(bench)
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"slow": 2.0, "chunk_size": 1}})
    error = fails(bench, "sync_timeout", "the sync did not finish within the sync's time limit of 3 s: it stopped while fetching the catalog")
    assert "did not finish within" in error.msg and h.CATALOG in error.msg


def test_catalog_trickled_ends_at_its_request_limit_long_before_the_sync_limit(bench: Bench, monkeypatch):
    # The sync's own limit is an hour: the catalog request's budget (REQUEST_BASE_SECONDS, cut to 3 s here) ends it.
    monkeypatch.setattr(deadline_module, "REQUEST_BASE_SECONDS", 3.0)
    new_catalog_bytes(bench)
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"slow": 2.0, "chunk_size": 1}})
    error = fails(bench, "request_timeout", "did not finish within the request time limit of 3 s", time_limit=3600)
    assert h.CATALOG in error.msg


def test_package_trickled_is_cut_at_its_request_limit_retried_later_and_resumes(bench: Bench, monkeypatch):
    # Budget 2 s plus 50 kB at 64 KiB/s: a byte-a-second package is cut there, refused for this sync only (not
    # remembered), its .part kept; the sync itself finishes, and the next one resumes it.
    monkeypatch.setattr(deadline_module, "REQUEST_BASE_SECONDS", 2.0)
    payload = {"payload/image.bin": os.urandom(50_000), "install.sh": b"#!/bin/sh\nexit 0\n"}
    entry = bench.publish(h.zip_bytes(bench.members(payload=payload)))
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{NEW_URL: {"slow": 2.0, "chunk_size": 1000}})
    started = time.monotonic()
    result = sync(bench, time_limit=3600)
    assert time.monotonic() - started < BOUND
    assert [(r["package_id"], r["code"], r["resumable"]) for r in result.refused] == [(NEW_ID, "request_timeout", True)]
    assert "did not finish within the request time limit" in result.refused[0]["reason"]
    assert bench.repo.listing(h.MANAGER)['refusals'] == []
    part = f"{entry['sha256']}.part"
    have = h.tmp_files(bench.root)[part]
    assert 0 < have < entry["size"]
    h.serve_feed_dir(bench.hostile, bench.feed_dir)
    result = sync(bench, time_limit=60)
    assert [a["package_id"] for a in result.added] == [NEW_ID] and result.refused == []
    assert bench.hostile.requests_for(NEW_URL)[-1].headers.get("Range") == f"bytes={have}-"


def test_headers_trickled_a_byte_a_second_end_at_the_sync_time_limit(bench: Bench):
    # The headers phase, before any body read: requests' timeout bounds each read there too, never the whole.
    new_catalog_bytes(bench)
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"header_trickle": 1.0}})
    fails(bench, "sync_timeout", "it stopped while fetching the catalog")


def test_retry_after_3600_never_outlasts_the_sync(bench: Bench):
    # Before: urllib3 slept the full hour (its own cap is 6 hours) before its retry, holding the writer lock.
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"status": 503, "headers": {"Retry-After": "3600"}}})
    fails(bench, "sync_timeout", "it stopped while fetching the catalog", time_limit=4)
    assert bench.hostile.request_count(h.CATALOG) >= 3  # the seed's sync, then at least the first 503 and a retry


def test_retry_after_3600_is_honoured_for_30_s_at_most(bench: Bench):
    # Without a sync: one 503 with Retry-After: 3600, then the file. The client waits the cap (30 s), not the hour.
    bench.hostile.add("/once", b"payload", status=503, fail_times=1, headers={"Retry-After": "3600"})
    started = time.monotonic()
    answer = HttpClient(timeout=10).get_conditional(bench.hostile.url("/once"))
    elapsed = time.monotonic() - started
    assert (answer["status"], bytes(answer["body"])) == (200, b"payload")
    assert 29 <= elapsed < 30 + BOUND, elapsed
    assert bench.hostile.request_count("/once") == 2


def test_package_trickled_a_byte_every_2_s_is_cut_at_the_time_limit_and_resumes(bench: Bench):
    # The catalog comes at once; the new package's download is the one that trickles.
    payload = {"payload/image.bin": os.urandom(50_000), "install.sh": b"#!/bin/sh\nexit 0\n"}
    entry = bench.publish(h.zip_bytes(bench.members(payload=payload)))
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{NEW_URL: {"slow": 2.0, "chunk_size": 1000}})
    packages_before = h.package_snapshot(bench.root)
    started = time.monotonic()
    with pytest.raises(ExupError) as caught:
        sync(bench, time_limit=4)
    assert time.monotonic() - started < BOUND
    error = caught.value
    assert error.code == "sync_timeout"
    assert "the sync did not finish within the sync's time limit of 4 s: it stopped after 0 of 1 downloads" in error.msg
    assert (error.details["not_fetched"], error.details["added"]) == ([NEW_ID], [])
    # Consistent: no row without its file, no package refused or remembered for the time limit; the .part is kept.
    after = h.package_snapshot(bench.root)
    part = f"{entry['sha256']}.part"
    assert 0 < h.tmp_files(bench.root)[part] < entry["size"]
    del packages_before["tmp"], after["tmp"]
    assert after == packages_before
    assert NEW_ID not in h.check_store(bench.root, bench.trusted)
    codes = [e["code"] for e in error.details["events"]]
    assert "package_refused" not in codes and codes[-1] == "repository_update_failed"
    assert bench.repo.listing(h.MANAGER)['refusals'] == []

    # The server behaves again: the next sync asks for the rest only, and completes.
    have = h.tmp_files(bench.root)[part]
    h.serve_feed_dir(bench.hostile, bench.feed_dir)
    result = sync(bench, time_limit=60)
    assert [a["package_id"] for a in result.added] == [NEW_ID] and result.refused == []
    assert bench.hostile.requests_for(NEW_URL)[-1].headers.get("Range") == f"bytes={have}-"
    assert h.check_store(bench.root, bench.trusted)[NEW_ID] == entry["sha256"]
    assert h.tmp_files(bench.root) == {}


def test_a_package_stalled_mid_body_ends_at_the_time_limit(bench: Bench):
    # No byte at all for longer than the sync may take (a read timeout longer than the limit): the limit wins.
    entry = bench.publish(h.zip_bytes(bench.members()))
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{NEW_URL: {"stall_after": 1000, "stall": 60}})
    error = fails(bench, "sync_timeout", "it stopped after 0 of 1 downloads", keeps_part=True, catalog_accepted=True, timeout=30)
    assert error.details["not_fetched"] == [NEW_ID]
    assert h.tmp_files(bench.root) == {f"{entry['sha256']}.part": 1000}


def test_sync_time_limit_must_be_positive(bench: Bench):
    before = h.snapshot(bench.root)
    with pytest.raises(ExupError) as caught:
        sync(bench, time_limit=0)
    assert caught.value.code == "argument_invalid"
    assert "a time limit must be a positive number of seconds, not 0" in caught.value.msg
    assert h.snapshot(bench.root) == before


# --------------------------------------------------------------------------- clean errors (item 5)


def test_304_to_a_first_sync_of_a_new_repository(bench: Bench, tmp_path: Path):
    # Before: KeyError 'catalog_expires' (a traceback). A server answering 304 to anything met a repository with no catalog.
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"status": 304}})
    fresh = h.frozen_repo(tmp_path / "fresh")
    with pytest.raises(ExupError) as caught:
        sync(bench, 10, repo=fresh)
    assert caught.value.code == "catalog_unexpected_304"
    assert "answered 304 Not Modified to a request that was not conditional" in caught.value.msg
    rows = h.db_rows(Path(fresh.store.root))
    assert (rows.get("packages"), rows.get("feed_state"), rows.get("feed_entries")) == ([], [], [])
    assert h.pool_files(Path(fresh.store.root)) == {}


def test_304_to_a_request_that_was_not_conditional(bench: Bench):
    # A new feed URL: the sync asks for the catalog whole (no validators), so a 304 cannot mean "unchanged".
    bench.hostile.add("/mirror/" + h.CATALOG, (bench.feed_dir / h.CATALOG).read_bytes(), status=304)
    fails(
        bench,
        "catalog_unexpected_304",
        "answered 304 Not Modified to a request that was not conditional (no If-None-Match nor If-Modified-Since was sent): it must send the catalog",
        url=bench.hostile.url("/mirror/" + h.CATALOG),
    )
    sent = bench.hostile.requests_for("/mirror/" + h.CATALOG)[-1].headers
    assert (sent.get("If-None-Match"), sent.get("If-Modified-Since")) == (None, None)


def test_catalog_body_cut_short(bench: Bench):
    # Content-Length states the whole catalog; the server closes after 100 bytes. Before: a traceback out of iter_content.
    new_catalog_bytes(bench)
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"truncate_at": 100}})
    fails(bench, "download_truncated", "was cut after 100 bytes", time_limit=60)


def test_catalog_read_timeout_mid_body(bench: Bench):
    # 100 bytes, then nothing for longer than the 2 s read timeout (the sync's limit is far away). Before: a traceback.
    new_catalog_bytes(bench)
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"stall_after": 100, "stall": 60}})
    fails(bench, "read_timeout", "sent nothing for 2 s after 100 bytes", time_limit=60, timeout=2)


# --------------------------------------------------------------------------- the module's option

MODULE_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    sync_args: {repository: "%(repo)s", feed_url: "%(url)s", trusted_keys: %(keys)s, servers: [{name: db01, model: "%(model)s", os: rhel9}]}
  tasks:
    - exup.fleet.exup_repo_sync: "{{ sync_args | combine({'sync_timeout': 3}) }}"
      register: limited
      ignore_errors: true
    - exup.fleet.exup_repo_sync: "{{ sync_args | combine({'sync_timeout': 0}) }}"
      register: zero
      ignore_errors: true
    - ansible.builtin.copy:
        dest: "{out}"
        content: "{{ {'limited': limited, 'zero': zero} | to_json }}"
"""


def test_repo_sync_module_sync_timeout(bench: Bench, tmp_path: Path, collections_path: Path):
    from ansible_collections.exup.fleet.tests.system.test_sync_trust import run_playbook  # pylint: disable=import-outside-toplevel

    new_catalog_bytes(bench)
    h.serve_feed_dir(bench.hostile, bench.feed_dir, **{h.CATALOG: {"slow": 2.0, "chunk_size": 1}})
    before = h.snapshot(bench.root, skip_tables=("events", "managers"))  # the module's clock runs: the manager's presence time moves
    keys = json.dumps([bench.key.public_pem().decode()])
    started = time.monotonic()
    seen = run_playbook(tmp_path, collections_path, MODULE_PLAYBOOK % {"repo": bench.root, "url": bench.url, "keys": keys, "model": h.MODEL})
    assert time.monotonic() - started < 60  # two module runs and ansible-playbook's start
    limited = seen["limited"]
    assert (limited["failed"], limited["error"]) == (True, "sync_timeout")
    assert "the sync did not finish within the sync's time limit of 3 s: it stopped while fetching the catalog" in limited["msg"]
    assert [e["detail"]["error"] for e in limited["events"] if e["code"] == "repository_update_failed"] == ["sync_timeout"]
    zero = seen["zero"]
    assert (zero["failed"], zero["error"], zero["msg"]) == (True, "argument_invalid", "a time limit must be a positive number of seconds, not 0")
    assert h.snapshot(bench.root, skip_tables=("events", "managers")) == before
