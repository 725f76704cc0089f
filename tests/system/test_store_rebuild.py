"""A lost index against a real feed on nginx (issue 8 item 10, 003 §4.4): the next sync keeps every pool file,
including a pinned package it would never download, and the rebuild brings back the same store."""

from __future__ import annotations

import os
from pathlib import Path

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo, build_package_from_bytes
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.rebuild import rebuild_index
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncOptions
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient
from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.feed import synthesize_feed
from ansible_collections.exup.fleet.tests.system import helpers as h


def pinned_package(tmp_path: Path, key: SigningKey, model: str) -> str:
    """A package no catalog lists, added by hand and pinned: only the recovery record knows about the pin."""
    info = PackageInfo(
        package_id="manual-tool-1.0",
        module_id="management-tool",
        module_name="Manual tool",
        version="1.0",
        models=[model],
        os=["rhel9"],
        kind="linux",
        release_date="2026-01-01",
        install_command="sh install.sh",
        auto_update=False,
        reboot_required=False,
        downgrade_supported=False,
        uninstall_supported=False,
    )
    return build_package_from_bytes({"install.sh": b"#!/bin/sh\ntrue\n"}, info, key, str(tmp_path / "manual.zip"))


def state(repo):
    with repo.read() as conn:
        stored = conn.packages()
        return {pid: (item.sha256, item.pinned) for pid, item in stored.items()}, sorted(conn.tombstones())


def test_sync_after_the_index_was_lost_keeps_the_pool_and_the_rebuild_restores_it(tmp_path: Path, tmp_feed_dir: Path, nginx):
    key = SigningKey.generate()
    _count, models = synthesize_feed(str(tmp_feed_dir), key, entries=30, versions_per_module=3, avg_size=1024, seed=5)
    servers = [h.server("db01", models[0], "rhel9")]
    repo, trusted = h.frozen_repo(tmp_path / "repo"), h.keyring(key)
    url = nginx.url(h.CATALOG)
    first = repo.sync(HttpClient(), trusted, SyncOptions(url, h.MANAGER, servers=servers))
    assert first.added
    repo.add_files([pinned_package(tmp_path, key, models[0])], trusted, mode="pinned")
    deleted = sorted(state(repo)[0])[0]
    repo.delete([deleted], h.MANAGER)
    before, pool = state(repo), h.pool_files(Path(repo.store.root))

    for suffix in ("", "-wal", "-shm"):  # repo.db lost
        if os.path.exists(repo.store.db_path + suffix):
            os.unlink(repo.store.db_path + suffix)
    second = repo.sync(HttpClient(), trusted, SyncOptions(url, h.MANAGER, servers=servers))

    assert h.pool_files(Path(repo.store.root)).items() >= pool.items()  # nothing the index lost was deleted
    assert [e for e in second.events if e["code"] == "store_rebuild_needed"], second.events
    assert "manual-tool-1.0" not in state(repo)[0]  # not indexed yet: the sync knows nothing of it

    rebuilt = rebuild_index(repo, trusted)

    assert rebuilt["state"] == "lost" and rebuilt["quarantined"] == []
    assert state(repo) == before  # the same packages, the pin and the tombstone
    h.check_store(Path(repo.store.root), trusted)
    third = repo.sync(HttpClient(), trusted, SyncOptions(url, h.MANAGER, servers=servers))
    assert third.added == [] and deleted in third.skipped_tombstoned and state(repo) == before
