"""Shared helpers of the sync system tests: feeds, hand-made (hostile) packages, store snapshots and checks.

Everything here talks to the real core (plugins/module_utils/_exup); nothing is mocked. The
servers themselves come from the fixtures in conftest.py.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import io
import itertools
import json
import os
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import CatalogEntry, format_time, parse_catalog, utc_now
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import (
    HASH_NAME,
    INFO_NAME,
    PackageInfo,
    render_hash_xml,
    render_info_xml,
    verify_package,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Candidate, Server, generation_plan
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import write_catalog
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

MANAGER = "local"
MODEL = "Express5800/T110z-1M"
CATALOG = "catalog.json"


def keyring(*keys) -> KeyRing:
    """The trusted ring of the given SigningKeys' public keys."""
    return KeyRing([key.public_key for key in keys])


def frozen_repo(root: Path) -> Repository:
    """A Repository whose clock stands still.

    A sync records the manager's presence time even when it then fails; with a frozen clock that
    row is the same before and after, so "nothing changed" can compare the whole database.
    """
    moment = utc_now().replace(microsecond=0)
    return Repository(str(root), clock=lambda: moment)


def server(name: str, model: str = MODEL, os_name: str = "rhel9", modules: dict | None = None) -> Server:
    return Server(manager_id=MANAGER, name=name, model=model, os=os_name, modules=modules or {})


# --------------------------------------------------------------------------- packages and feeds


def info(package_id: str, module_id: str = "system-bios", version: str = "1.00", models=(MODEL,), os_names=("any",), **fields: Any) -> PackageInfo:
    """A PackageInfo with plain defaults; ``fields`` override any other field."""
    values: dict[str, Any] = dict(
        package_id=package_id,
        module_id=module_id,
        module_name=module_id,
        version=version,
        release_date="2026-01-15",
        models=list(models),
        os=list(os_names),
        kind="linux",
        auto_update=True,
        reboot_required=True,
        downgrade_supported=False,
        uninstall_supported=False,
        install_command="./install.sh",
    )
    values.update(fields)
    return PackageInfo(**values)


def zip_bytes(members: dict) -> bytes:
    """A zip of ``members``: name -> bytes, or name -> (bytes, ZipInfo attributes dict) for odd members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            attrs = {}
            if isinstance(data, tuple):
                data, attrs = data
            member = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            for attr, value in attrs.items():
                setattr(member, attr, value)
            archive.writestr(member, data)
    return buffer.getvalue()


def package_members(package_info: PackageInfo, key, payload: dict | None = None, info_xml: bytes | None = None) -> dict:
    """The members of a correctly signed package (name -> bytes), built by hand so tests can alter them.

    ``info_xml`` replaces the rendered ExUpInfo.xml; it is listed and signed like any member.
    """
    members = dict(payload or {"payload/image.bin": os.urandom(3000), "install.sh": b"#!/bin/sh\nexit 0\n"})
    members[INFO_NAME] = info_xml if info_xml is not None else render_info_xml(package_info)
    files = {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in members.items()}
    members[HASH_NAME] = render_hash_xml(files, key)
    return members


def package_bytes(package_info: PackageInfo, key, **kwargs) -> bytes:
    """A good package, signed with ``key``."""
    return zip_bytes(package_members(package_info, key, **kwargs))


_LATER = itertools.count(10)


def catalog_changed(feed_dir: Path) -> None:
    """Give catalog.json a new modification time, a whole second later than any before.

    nginx's ETag is the file's mtime in seconds plus its size: a catalog rewritten within the
    same second with the same length (another signing key, another expiry) would look unchanged
    and get a 304. Real feeds do not change twice a second; tests do. Call after every rewrite.
    """
    later = int(time.time()) + next(_LATER)
    os.utime(Path(feed_dir) / CATALOG, (later, later))


def write_catalog_bytes(feed_dir: Path, data: bytes) -> None:
    """Replace catalog.json with ``data`` (hand-made: rolled back, altered...)."""
    (Path(feed_dir) / CATALOG).write_bytes(data)
    catalog_changed(feed_dir)


def catalog_entries(feed_dir: Path) -> list[dict]:
    """The entries of the catalog in feed_dir (our own output: read without verification)."""
    path = Path(feed_dir) / CATALOG
    if not path.exists():
        return []
    return json.loads(path.read_text())["signed"]["entries"]


def publish_bytes(
    feed_dir: Path, key, package_info: PackageInfo, data: bytes, *, published: str | None = None, entry_overrides: dict | None = None, **catalog_kwargs
) -> dict:
    """Publish arbitrary package bytes with a correct, signed catalog entry (next catalog version).

    The entry's size and sha256 are those of ``data``, so transport checks pass and whatever is
    wrong with the bytes is for package verification to find. ``entry_overrides`` changes fields
    of the entry (before signing), e.g. to make it claim another version.
    """
    feed_dir = Path(feed_dir)
    url = f"packages/{package_info.package_id}.zip"
    (feed_dir / "packages").mkdir(parents=True, exist_ok=True)
    (feed_dir / url).write_bytes(data)
    entry = CatalogEntry(
        package_id=package_info.package_id,
        module_id=package_info.module_id,
        module_name=package_info.module_name,
        version=package_info.version,
        release_date=package_info.release_date,
        published=published or format_time(utc_now()),
        models=tuple(package_info.models),
        os=tuple(package_info.os),
        kind=package_info.kind,
        auto_update=package_info.auto_update,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        url=url,
    ).as_dict()
    entry.update(entry_overrides or {})
    entries = [e for e in catalog_entries(feed_dir) if e["package_id"] != entry["package_id"]] + [entry]
    write_catalog(str(feed_dir), entries, [key], **catalog_kwargs)
    catalog_changed(feed_dir)
    return entry


def publish_package(feed_dir: Path, key, package_info: PackageInfo, **kwargs) -> dict:
    """Build a good package signed by ``key`` and publish it (see publish_bytes)."""
    return publish_bytes(feed_dir, key, package_info, package_bytes(package_info, key), **kwargs)


def simple_feed(
    feed_dir: Path,
    key,
    versions=("1.00", "1.01", "1.02", "1.03"),
    modules=("system-bios", "bmc-firmware"),
    model: str = MODEL,
    published: str = "2026-01-20T00:00:00Z",
) -> list[dict]:
    """A small feed: every module in every version for one model (os 'any'). Returns the entries."""
    for module_id in modules:
        for version in versions:
            publish_package(feed_dir, key, info(f"{module_id}-{version}", module_id, version, models=(model,)), published=published)
    return catalog_entries(feed_dir)


def serve_feed_dir(hostile, feed_dir: Path, **behaviours) -> str:
    """Load every file of feed_dir into the hostile server; ``behaviours`` maps a relative path to Behaviour fields.

    Returns the catalog URL.
    """
    feed_dir = Path(feed_dir)
    for path in sorted(p for p in feed_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(feed_dir).as_posix()
        hostile.add(rel, path.read_bytes(), **behaviours.get(rel, {}))
    return hostile.url(CATALOG)


# --------------------------------------------------------------------------- what a sync should do


def candidates_of(entries) -> list[Candidate]:
    return [Candidate(e["package_id"], e["module_id"], e["version"], tuple(e["models"]), tuple(e["os"])) for e in entries]


def reference_wanted(entries, servers, kept: int = 3) -> set[str]:
    """003 §2.2.2 written out again, as plainly as possible, to check the core's generation_plan against.

    For each model+OS a managed server has, and each module: the packages of the ``kept`` newest
    distinct versions that target that model and OS.
    """
    wanted = set()
    for model, os_name in {(s.model, s.os) for s in servers}:
        by_module = collections.defaultdict(list)
        for e in entries:
            if model in e["models"] and ("any" in e["os"] or os_name in e["os"]):
                by_module[e["module_id"]].append(e)
        for module_entries in by_module.values():
            newest = sorted({version_key(e["version"]) for e in module_entries}, reverse=True)[:kept]
            wanted |= {e["package_id"] for e in module_entries if version_key(e["version"]) in newest}
    return wanted


def planned_wanted(feed_dir: Path, trusted: KeyRing, servers) -> set[str]:
    """What the core's generation_plan wants for the catalog served from feed_dir (parsed and verified here)."""
    catalog = parse_catalog((Path(feed_dir) / CATALOG).read_bytes(), trusted)
    entries = [e.as_dict() for e in catalog.entries]
    return generation_plan(candidates_of(entries), servers).wanted()


# --------------------------------------------------------------------------- looking at a store


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: meta keys of the sync's bookkeeping (db.py: data_generation bumped by triggers, the sync memo), left out of snapshots
BOOKKEEPING_META = ("data_generation", "sync_memo", "recovery_written")


def db_rows(root: Path, skip_tables=("events",)) -> dict:
    """Every row of every table except ``skip_tables``, sorted: the database as comparable data."""
    db = Path(root) / "repo.db"
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        rows = {table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall()) for table in sorted(tables) if table not in skip_tables}
        if "meta" in rows:  # the sync's own bookkeeping (write counter, fingerprint memo) is no state of the repository
            rows["meta"] = [row for row in rows["meta"] if row[0] not in BOOKKEEPING_META]
        return rows
    finally:
        conn.close()


def pool_files(root: Path) -> dict:
    """Pool file path (relative) -> SHA-256 of its content."""
    pool = Path(root) / "pool"
    return {p.relative_to(root).as_posix(): _file_sha256(p) for p in sorted(pool.rglob("*")) if p.is_file()} if pool.exists() else {}


def tmp_files(root: Path) -> dict:
    """tmp/ file name -> size (partial downloads)."""
    tmp = Path(root) / "tmp"
    return {p.name: p.stat().st_size for p in sorted(tmp.iterdir())} if tmp.exists() else {}


def snapshot(root: Path, skip_tables=("events",)) -> dict:
    """Everything a sync could change: database rows (events aside), pool files and their digests, tmp/."""
    return {"db": db_rows(root, skip_tables), "pool": pool_files(root), "tmp": tmp_files(root)}


def package_snapshot(root: Path) -> dict:
    """What a refused package must not change: indexed packages, tombstones, pool files, tmp/."""
    rows = db_rows(root)
    return {"packages": rows.get("packages"), "tombstones": rows.get("tombstones"), "pool": pool_files(root), "tmp": tmp_files(root)}


def indexed(root: Path) -> dict:
    """package_id -> sha256 of the indexed packages."""
    return {row[0]: row[1] for row in db_rows(root).get("packages", [])} if (Path(root) / "repo.db").exists() else {}


def check_store(root: Path, trusted: KeyRing) -> dict:
    """Assert the store's invariants; returns package_id -> sha256 of the indexed packages.

    The database is sound; every indexed package has its pool file, whose SHA-256 is the row's
    and whose name is that digest; the file verifies as a package and is the package the row
    names. A partial download (tmp/*.part) is never what a row points to.
    """
    store = Store(str(root))
    conn = store.reader()
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT package_id, sha256, size FROM packages").fetchall()
    finally:
        conn.close()
    found = {}
    for package_id, digest, size in rows:
        path = Path(store.pool_path(digest))
        assert path.is_file(), f"{package_id}: indexed but {path} is missing"
        assert path.suffix == ".zip" and path.parent.parent == Path(store.pool_dir)
        assert path.stat().st_size == size, f"{package_id}: size differs from its row"
        assert _file_sha256(path) == digest, f"{package_id}: pool file does not match its row's sha256"
        assert verify_package(str(path), trusted).info.package_id == package_id
        found[package_id] = digest
    # Only complete, renamed files are in the pool; partial downloads stay in tmp/.
    assert all(p.suffix == ".zip" for p in Path(store.pool_dir).rglob("*") if p.is_file())
    return found


def sync_requests(log: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split nginx access log entries into (catalog requests, package requests)."""
    catalog = [e for e in log if e["uri"].split("?")[0] == "/" + CATALOG]
    packages = [e for e in log if e["uri"].startswith("/packages/")]
    return catalog, packages


def requested_ids(package_entries: list[dict]) -> list[str]:
    """Package ids of package requests in an nginx access log."""
    return sorted(e["uri"].split("?")[0].rsplit("/", 1)[1].removesuffix(".zip") for e in package_entries)


def days_ago(days: float) -> datetime.datetime:
    return utc_now() - datetime.timedelta(days=days)
