"""Issue 8, items 4 and 6: one bad answer never blocks a package for good; catalog trust in the manner of TUF.

- A refusal is remembered only for the exact bytes the catalog names: the download had the catalog's
  SHA-256 and the package then failed its own checks (signature, info, structure). A corrupted or
  overlong answer of the mirror (transport) is tried again at the next sync. An operator can clear
  the remembered refusals (Repository.clear_refusals, exup_package state=refusals_cleared).
- On a 304 the stored catalog stands only while a key that signed it is still trusted.
- The catalog version may not jump more than MAX_VERSION_STEP; accept_version_reset is the
  operator's way out of a rollback or jump refusal, and it leaves an event.
- Rollback protection follows the feed's identity (feed_id, else its signing keys), not its URL.

Real nginx and the hostile HTTP server (tests/services); nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import MAX_VERSION_STEP, build_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import HASH_NAME
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import write_catalog
from ansible_collections.exup.fleet.tests.system import helpers as h
from ansible_collections.exup.fleet.tests.system.test_sync_bad_input import NEW_ID, NEW_URL, Bench, bench, flip, hostile_bench  # noqa: F401  # pylint: disable=unused-import  # fixtures


def sync(bench_: Bench, url=None, trusted=None, **options):
    return bench_.repo.sync(HttpClient(timeout=10), trusted or bench_.trusted, SyncOptions(url or bench_.url, h.MANAGER, servers=[h.server("db01")], **options))


def package_requests(nginx) -> list[dict]:
    nginx.wait_for_log(len(nginx.access_log()) + 1, timeout=0.5)  # nginx logs a request once it has answered it
    return [e for e in nginx.access_log() if e["uri"].endswith(NEW_URL)]


def refusal_rows(root: Path) -> list:
    return h.db_rows(root).get("refusals", [])


def bad_signature_package(bench_: Bench) -> bytes:
    """system-bios 1.02 with a payload altered and its digest updated: the signature no longer covers ExUpHash.xml.

    The catalog entry names exactly these bytes, so the refusal is a statement about them.
    """
    members = bench_.members()
    members["payload/image.bin"] = flip(members["payload/image.bin"], 5)
    root = etree.fromstring(members[HASH_NAME])
    (image,) = root.iterfind("File[@path='payload/image.bin']")  # its one entry
    image.set("sha256", hashlib.sha256(members["payload/image.bin"]).hexdigest())
    members[HASH_NAME] = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return h.zip_bytes(members)


# --------------------------------------------------------------------------- item 4: transport failures are retried


def test_corrupted_file_on_the_mirror_is_downloaded_once_fixed(bench: Bench):
    entry = bench.publish(h.zip_bytes(bench.members()))
    good = (bench.feed_dir / NEW_URL).read_bytes()
    (bench.feed_dir / NEW_URL).write_bytes(flip(good, 200))  # same size, other bytes: the mirror is broken
    refused = bench.assert_refused("digest_mismatch", "does not match the SHA-256 the catalog states")
    assert "repeated" not in refused
    assert refusal_rows(bench.root) == []  # says nothing about the vendor's bytes: not remembered

    (bench.feed_dir / NEW_URL).write_bytes(good)  # the mirror is fixed
    result = bench.sync()
    assert [a["package_id"] for a in result.added] == [NEW_ID] and result.refused == []
    assert h.check_store(bench.root, bench.trusted)[NEW_ID] == entry["sha256"]


def test_overlong_file_on_the_mirror_is_downloaded_once_fixed(bench: Bench):
    entry = bench.publish(h.zip_bytes(bench.members()))
    good = (bench.feed_dir / NEW_URL).read_bytes()
    (bench.feed_dir / NEW_URL).write_bytes(good + b"X" * 5000)
    bench.assert_refused("download_too_long", f"more than the {entry['size']} bytes the catalog states")
    assert refusal_rows(bench.root) == [] and h.tmp_files(bench.root) == {}

    (bench.feed_dir / NEW_URL).write_bytes(good)
    result = bench.sync()
    assert [a["package_id"] for a in result.added] == [NEW_ID] and result.refused == []
    assert h.check_store(bench.root, bench.trusted)[NEW_ID] == entry["sha256"]


def test_legacy_transport_refusal_rows_no_longer_block(bench: Bench):
    # A store written by the code before this fix remembered a catalog-digest mismatch: it must not block.
    entry = bench.publish(h.zip_bytes(bench.members()))
    with sqlite3.connect(bench.root / "repo.db") as conn:
        conn.execute(
            "INSERT INTO refusals (package_id, sha256, code, reason, refused_at) VALUES (?, ?, ?, ?, ?)",
            (
                NEW_ID,
                entry["sha256"],
                "digest_mismatch",
                f"download of {NEW_URL} does not match the SHA-256 the catalog states: it was altered in transit or on the server",
                "2026-01-01T00:00:00Z",
            ),
        )
    result = bench.sync()
    assert [a["package_id"] for a in result.added] == [NEW_ID] and result.refused == []
    assert refusal_rows(bench.root) == []


# --------------------------------------------------------------------------- item 4: verified bytes are remembered until cleared


def test_bad_signature_of_the_exact_bytes_is_remembered_until_cleared(bench: Bench, nginx):
    entry = bench.publish(bad_signature_package(bench))
    first = bench.assert_refused("bad_signature", "ExUpHash.xml has a bad signature")
    assert "repeated" not in first
    assert [row[:3] for row in refusal_rows(bench.root)] == [(NEW_ID, entry["sha256"], "bad_signature")]
    asked = len(package_requests(nginx))
    assert asked == 1

    again = bench.sync()
    assert [(r["package_id"], r["code"], r["repeated"]) for r in again.refused] == [(NEW_ID, "bad_signature", True)]
    assert len(package_requests(nginx)) == asked  # not downloaded again

    before = h.snapshot(bench.root)
    preview = bench.repo.clear_refusals(check_mode=True)
    assert [r["package_id"] for r in preview] == [NEW_ID] and h.snapshot(bench.root) == before
    assert bench.repo.clear_refusals(package_ids=["other-package"]) == []
    assert h.snapshot(bench.root) == before
    cleared = bench.repo.clear_refusals()
    assert [(r["package_id"], r["code"]) for r in cleared] == [(NEW_ID, "bad_signature")]
    assert refusal_rows(bench.root) == []
    events = bench.repo.listing(h.MANAGER)["events"]
    assert [(e["code"], e["detail"]) for e in events if e["code"] == "refusals_cleared"] == [("refusals_cleared", {"package_ids": [NEW_ID]})]
    assert bench.repo.clear_refusals() == []  # nothing left: idempotent

    retried = bench.sync()
    assert [(r["code"], "repeated" in r) for r in retried.refused] == [("bad_signature", False)]
    assert len(package_requests(nginx)) == asked + 1  # tried again after clearing


def test_info_listing_shows_remembered_refusals(bench: Bench):
    entry = bench.publish(bad_signature_package(bench))
    bench.sync()
    listed = bench.repo.listing(h.MANAGER)["refusals"]
    assert [(r["package_id"], r["sha256"], r["code"]) for r in listed] == [(NEW_ID, entry["sha256"], "bad_signature")]
    assert "bad signature" in listed[0]["reason"] and listed[0]["refused_at"]


# --------------------------------------------------------------------------- item 6: a 304 does not keep an untrusted catalog


def test_server_always_answering_304_cannot_keep_an_untrusted_catalog(hostile_bench: Bench):
    hostile = hostile_bench.hostile
    h.serve_feed_dir(hostile, hostile_bench.feed_dir, **{h.CATALOG: {"status": 304}})
    assert sync(hostile_bench).feed_unchanged  # still trusted: the stored catalog stands

    hostile_bench.publish(h.zip_bytes(hostile_bench.members()))  # a new entry, only in the stored catalog after a 200
    h.serve_feed_dir(hostile, hostile_bench.feed_dir)
    assert [a["package_id"] for a in sync(hostile_bench).added] == [NEW_ID]
    with sqlite3.connect(hostile_bench.root / "repo.db") as conn:
        conn.execute("DELETE FROM packages WHERE package_id = ?", (NEW_ID,))  # so a sync would want it again
    h.serve_feed_dir(hostile, hostile_bench.feed_dir, **{h.CATALOG: {"status": 304}})
    asked = hostile.request_count(NEW_URL)
    stranger = SigningKey.generate()
    error = hostile_bench.assert_fails("unknown_key", f"signed by: {hostile_bench.key.key_id}", trusted=h.keyring(stranger))
    assert "304 Not Modified" in error.msg
    assert hostile.request_count(NEW_URL) == asked  # the stored entries were not used for downloads
    last = hostile.requests_for(h.CATALOG)[-1]
    assert last.headers.get("If-None-Match") is None  # the request was not conditional


# --------------------------------------------------------------------------- item 6: the version jump and the operator's recovery


def test_version_jump_is_refused_and_an_operator_can_accept_it(bench: Bench):
    signed = json.loads((bench.feed_dir / h.CATALOG).read_text())["signed"]
    huge = 2**63
    h.write_catalog_bytes(bench.feed_dir, build_catalog(signed["entries"], huge, [bench.key]))
    error = bench.assert_fails(
        "catalog_version_jump", f"catalog version {huge} is more than {MAX_VERSION_STEP} above version {signed['version']} accepted before"
    )
    assert error.details["version"] == huge and error.details["min_version"] == signed["version"]

    accepted = sync(bench, accept_version_reset=True)
    assert accepted.catalog["version"] == huge
    resets = [e for e in accepted.events if e["code"] == "catalog_version_reset"]
    assert [e["detail"] for e in resets] == [{"from_version": signed["version"], "to_version": huge, "refused": "catalog_version_jump"}]


def test_locked_out_by_a_huge_version_recovers_only_by_the_operators_decision(bench: Bench):
    # A store that accepted version 2**63 before this fix: the vendor's real next catalog is a rollback.
    with sqlite3.connect(bench.root / "repo.db") as conn:
        conn.execute("UPDATE feed_state SET value = ? WHERE key = 'catalog_version'", (str(2**63),))
    entries = h.catalog_entries(bench.feed_dir)
    version = write_catalog(str(bench.feed_dir), entries, [bench.key])
    h.catalog_changed(bench.feed_dir)
    bench.assert_fails("catalog_rollback", f"catalog version {version} is lower than version {2**63} accepted before")

    accepted = sync(bench, accept_version_reset=True)
    assert accepted.catalog["version"] == version
    assert [e["detail"] for e in accepted.events if e["code"] == "catalog_version_reset"] == [
        {"from_version": 2**63, "to_version": version, "refused": "catalog_rollback"}
    ]
    # Protection is back at once: the version before is a rollback again, without the option.
    h.write_catalog_bytes(bench.feed_dir, build_catalog(entries, version - 1, [bench.key]))
    bench.assert_fails("catalog_rollback", f"catalog version {version - 1} is lower than version {version} accepted before")
    # An accepted reset with nothing to reset leaves no event.
    write_catalog(str(bench.feed_dir), entries, [bench.key], version=version + 1)
    h.catalog_changed(bench.feed_dir)
    assert [e for e in sync(bench, accept_version_reset=True).events if e["code"] == "catalog_version_reset"] == []


# --------------------------------------------------------------------------- item 6: rollback follows the feed, not its URL


def _mirror(hostile, feed_dir: Path, catalog: bytes) -> str:
    h.serve_feed_dir(hostile, feed_dir)
    hostile.add(h.CATALOG, catalog)
    return hostile.url(h.CATALOG)


def test_mirror_of_the_same_feed_cannot_roll_back(bench: Bench, hostile_server):
    entries = h.catalog_entries(bench.feed_dir)
    for _round in range(3):
        version = write_catalog(str(bench.feed_dir), entries, [bench.key])
    h.catalog_changed(bench.feed_dir)
    assert sync(bench).catalog["version"] == version
    feed_id = json.loads((bench.feed_dir / h.CATALOG).read_text())["signed"]["feed_id"]
    old = build_catalog(entries, version - 2, [bench.key], feed_id=feed_id)
    mirror = _mirror(hostile_server, bench.feed_dir, old)
    before = h.snapshot(bench.root)
    with pytest.raises(ExupError) as caught:
        sync(bench, url=mirror)
    assert caught.value.code == "catalog_rollback"
    assert f"catalog version {version - 2} is lower than version {version} accepted before" in caught.value.msg
    assert h.snapshot(bench.root) == before

    # The same feed under a new key (feed_id kept): still the same feed.
    new_key = SigningKey.generate()
    rotated = build_catalog(entries, version - 1, [new_key], feed_id=feed_id)
    hostile_server.add(h.CATALOG, rotated)
    with pytest.raises(ExupError) as caught:
        sync(bench, url=mirror, trusted=h.keyring(bench.key, new_key))
    assert caught.value.code == "catalog_rollback"
    # Without a feed_id the signing keys say which feed it is.
    hostile_server.add(h.CATALOG, build_catalog(entries, version - 1, [bench.key]))
    with pytest.raises(ExupError) as caught:
        sync(bench, url=mirror)
    assert caught.value.code == "catalog_rollback"
    assert h.snapshot(bench.root) == before

    # A mirror serving the current version is accepted, and the version stays.
    hostile_server.add(h.CATALOG, (bench.feed_dir / h.CATALOG).read_bytes())
    assert sync(bench, url=mirror).catalog["version"] == version


def test_a_different_feed_starts_over(bench: Bench, hostile_server):
    entries = h.catalog_entries(bench.feed_dir)
    for _round in range(3):
        version = write_catalog(str(bench.feed_dir), entries, [bench.key])
    h.catalog_changed(bench.feed_dir)
    sync(bench)
    other_key = SigningKey.generate()
    other = build_catalog(entries, 1, [other_key], feed_id="another-vendor-feed")
    mirror = _mirror(hostile_server, bench.feed_dir, other)
    result = sync(bench, url=mirror, trusted=h.keyring(bench.key, other_key))
    assert result.catalog["version"] == 1 < version
    assert bench.repo.listing(h.MANAGER)["feed"]["feed_id"] == "another-vendor-feed"


# --------------------------------------------------------------------------- the modules: exup_package refusals_cleared, exup_package_info


PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - exup.fleet.exup_package_info: {repository: "%(repo)s"}
      register: info_before
    - exup.fleet.exup_package: {repository: "%(repo)s", state: refusals_cleared}
      check_mode: true
      diff: true
      register: preview
    - exup.fleet.exup_package: {repository: "%(repo)s", state: refusals_cleared, package_ids: [%(pid)s]}
      diff: true
      register: cleared
    - exup.fleet.exup_package: {repository: "%(repo)s", state: refusals_cleared}
      register: again
    - exup.fleet.exup_package_info: {repository: "%(repo)s"}
      register: info_after
    - ansible.builtin.copy:
        dest: "%(out)s"
        content: "{{ {'before': info_before.refusals, 'preview': preview, 'cleared': cleared, 'again': again,
                      'after': info_after.refusals} | to_json }}"
"""


def run_playbook(tmp_path: Path, collections_path: Path, text: str) -> dict:
    """Run ``text`` (a playbook that writes its findings to {out}) with ansible-playbook on localhost; returns them."""
    from ansible_collections.exup.fleet.tests.system.agent_helpers import program  # pylint: disable=import-outside-toplevel

    out = tmp_path / "out.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(text.replace("{out}", str(out)))
    env = {
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
    }
    run = subprocess.run([program("ansible-playbook"), str(playbook)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text())


def test_modules_list_and_clear_refusals(bench: Bench, tmp_path: Path, collections_path: Path):
    bench.publish(bad_signature_package(bench))
    bench.sync()
    seen = run_playbook(tmp_path, collections_path, PLAYBOOK % {"repo": bench.root, "pid": NEW_ID, "out": "{out}"})
    assert [(r["package_id"], r["code"]) for r in seen["before"]] == [(NEW_ID, "bad_signature")]
    assert seen["preview"]["changed"] is True and [r["package_id"] for r in seen["preview"]["refusals_cleared"]] == [NEW_ID]
    assert seen["preview"]["diff"] == {"before": f"{NEW_ID} (bad_signature)\n", "after": ""}
    assert seen["cleared"]["changed"] is True and seen["cleared"]["diff"]["after"] == ""
    assert seen["again"]["changed"] is False and seen["again"]["refusals_cleared"] == []
    assert seen["after"] == []
    assert len([e for e in bench.repo.listing(h.MANAGER)["events"] if e["code"] == "refusals_cleared"]) == 1


RESET_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    sync_args: {repository: "%(repo)s", feed_url: "%(url)s", trusted_keys: %(keys)s, servers: [{name: db01, model: "%(model)s", os: rhel9}]}
  tasks:
    - exup.fleet.exup_repo_sync: "{{ sync_args }}"
      register: refused
      ignore_errors: true
    - exup.fleet.exup_repo_sync: "{{ sync_args | combine({'accept_catalog_version_reset': true}) }}"
      register: accepted
    - ansible.builtin.copy:
        dest: "{out}"
        content: "{{ {'refused': refused, 'accepted': accepted} | to_json }}"
"""


def test_repo_sync_module_accepts_a_version_reset_only_when_asked(bench: Bench, tmp_path: Path, collections_path: Path):
    signed = json.loads((bench.feed_dir / h.CATALOG).read_text())["signed"]
    h.write_catalog_bytes(bench.feed_dir, build_catalog(signed["entries"], 2**63, [bench.key]))
    keys = json.dumps([bench.key.public_pem().decode()])
    seen = run_playbook(tmp_path, collections_path, RESET_PLAYBOOK % {"repo": bench.root, "url": bench.url, "keys": keys, "model": h.MODEL})
    assert seen["refused"]["failed"] is True and seen["refused"]["error"] == "catalog_version_jump"
    assert seen["accepted"]["catalog"]["version"] == 2**63
    assert [e["detail"]["refused"] for e in seen["accepted"]["events"] if e["code"] == "catalog_version_reset"] == ["catalog_version_jump"]
