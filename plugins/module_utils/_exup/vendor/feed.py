# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vendor side: publish a signed feed from a directory of packages, and synthesise realistic feeds.

A feed directory is what any static HTTP server serves::

    catalog.json                 signed catalog (see catalog.py)
    packages/<package_id>.zip    the packages, at the relative URLs the catalog states
"""

from __future__ import annotations

import datetime
import json
import os
import random
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import (
    MAX_VERSION_STEP,
    CatalogEntry,
    build_catalog,
    format_time,
    parse_catalog,
    parse_time,
    utc_now,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, PackageError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import MODULE_KINDS, PackageInfo, build_package_from_bytes, file_digest, verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing

if TYPE_CHECKING:
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey

CATALOG_NAME = 'catalog.json'


def _previous_catalog(feed_dir: str) -> dict[str, Any] | None:
    """The signed part of the catalog already in ``feed_dir`` (trusted: it is our own output), or None."""
    path = os.path.join(feed_dir, CATALOG_NAME)
    if not os.path.exists(path):
        return None
    with open(path, 'rb') as handle:
        return json.load(handle)['signed']


def new_feed_id() -> str:
    """A name for a new feed: repositories key rollback protection to it, whatever URL serves the feed."""
    return 'feed-' + uuid.uuid4().hex


def write_catalog(
    feed_dir: str,
    entries: Iterable[CatalogEntry | Mapping[str, Any]],
    signing_keys: Iterable[SigningKey],
    version: int | None = None,
    expires_days: float = 30,
    now: datetime.datetime | None = None,
    feed_id: str | None = None,
) -> int:
    """Sign and write catalog.json atomically; the version goes up by one unless given (never down).

    The catalog keeps the ``feed_id`` of the catalog it replaces (a new feed gets a new one), so
    mirrors of the feed and a move to another URL keep the feed's identity.
    """
    previous = _previous_catalog(feed_dir)
    last_version = previous['version'] if previous else 0
    feed_id = feed_id or (previous or {}).get('feed_id') or new_feed_id()
    if version is None:
        version = last_version + 1
    if version < last_version:
        raise ExupError('catalog version %d would be lower than the published version %d' % (version, last_version), code='catalog_rollback')
    if version - last_version > MAX_VERSION_STEP:
        # Repositories would refuse it (catalog_version_jump): a vendor never publishes what its customers refuse.
        raise ExupError(
            'catalog version %d would be more than %d above the published version %d' % (version, MAX_VERSION_STEP, last_version), code='catalog_version_jump'
        )
    data = build_catalog(entries, version, signing_keys, generated=now, expires_in=datetime.timedelta(days=expires_days), feed_id=feed_id)
    tmp = os.path.join(feed_dir, CATALOG_NAME + '.tmp')
    with open(tmp, 'wb') as handle:
        handle.write(data)
    os.replace(tmp, os.path.join(feed_dir, CATALOG_NAME))
    return version


def entry_for(info: PackageInfo, path: str, url: str, published: str) -> CatalogEntry:
    return CatalogEntry(
        package_id=info.package_id,
        module_id=info.module_id,
        module_name=info.module_name,
        version=info.version,
        release_date=info.release_date,
        published=published,
        models=tuple(info.models),
        os=tuple(info.os),
        kind=info.kind,
        auto_update=info.auto_update,
        size=os.path.getsize(path),
        sha256=file_digest(path)[1],
        url=url,
    )


def publish_feed(
    packages_dir: str,
    feed_dir: str,
    signing_keys: Sequence[SigningKey],
    version: int | None = None,
    expires_days: float = 30,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Publish or update a feed from the package zips in ``packages_dir``.

    Each package is verified with the signing keys' own public keys first (a
    vendor never publishes what its customers would refuse). Entries already in
    the feed keep their publish time; new ones are published now.
    """
    now = now or utc_now()
    keyring = KeyRing([key.public_key for key in signing_keys])
    os.makedirs(os.path.join(feed_dir, 'packages'), exist_ok=True)
    previous = _previous_catalog(feed_dir)
    published_before = {entry['package_id']: entry['published'] for entry in (previous or {}).get('entries', [])}
    entries = []
    for name in sorted(os.listdir(packages_dir)):
        if not name.endswith('.zip'):
            continue
        source = os.path.join(packages_dir, name)
        info = verify_package(source, keyring).info
        url = 'packages/%s.zip' % info.package_id
        target = os.path.join(feed_dir, url)
        if os.path.abspath(source) != os.path.abspath(target):
            shutil.copyfile(source, target)
        entries.append(entry_for(info, target, url, published_before.get(info.package_id, format_time(now))))
    version = write_catalog(feed_dir, entries, signing_keys, version=version, expires_days=expires_days, now=now)
    return {'version': version, 'entries': len(entries), 'new': sorted(set(e.package_id for e in entries) - set(published_before))}


def plan_publish(
    packages_dir: str, feed_dir: str, signing_keys: Sequence[SigningKey], renew_days: float = 7, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """What publish_feed would change in ``feed_dir``, without writing anything (a module's check mode and idempotence).

    Every package is verified with the signing keys' public keys, as publish_feed does. ``needed`` is true when
    the packages differ from the catalog's entries (``new``, ``removed``, ``replaced``: ids whose SHA-256
    changed), the catalog is signed by other keys, or it expires within ``renew_days`` (or has no catalog).
    """
    now = now or utc_now()
    keyring = KeyRing([key.public_key for key in signing_keys])
    wanted: dict[str, str] = {}
    for name in sorted(os.listdir(packages_dir)):
        if name.endswith('.zip'):
            source = os.path.join(packages_dir, name)
            wanted[verify_package(source, keyring).info.package_id] = file_digest(source)[1]
    previous = _previous_catalog(feed_dir)
    have = {entry['package_id']: entry['sha256'] for entry in (previous or {}).get('entries', [])}
    expires = (previous or {}).get('expires')
    renew = previous is None or not expires or parse_time(expires, 'expires') - now < datetime.timedelta(days=renew_days)
    signed_by = sorted(signature.get('keyid', '') for signature in _previous_signatures(feed_dir)) if previous else []
    rekey = previous is not None and signed_by != sorted(key.key_id for key in signing_keys)
    plan = {
        'new': sorted(set(wanted) - set(have)),
        'removed': sorted(set(have) - set(wanted)),
        'replaced': sorted(package_id for package_id in set(wanted) & set(have) if wanted[package_id] != have[package_id]),
        'entries': len(wanted),
        'version': (previous or {}).get('version', 0),
        'expires': expires,
    }
    plan['needed'] = bool(plan['new'] or plan['removed'] or plan['replaced'] or renew or rekey)
    return plan


def _previous_signatures(feed_dir: str) -> list[dict[str, Any]]:
    with open(os.path.join(feed_dir, CATALOG_NAME), 'rb') as handle:
        signatures = json.load(handle).get('signatures', [])
    return [item for item in signatures if isinstance(item, dict)]


def verify_feed(feed_dir: str, keyring: KeyRing, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Check a feed directory as a repository would: the signed catalog, then every package it lists.

    The catalog must verify with ``keyring`` (signature, expiry, format: catalog.parse_catalog's codes);
    each package must be at its URL with the stated size and SHA-256 (``feed_package_missing``,
    ``feed_package_mismatch``), verify as a package (package.verify_package's codes) and carry the
    catalog entry's package id and version (``feed_package_mismatch``). The first failure raises.
    """
    path = os.path.join(feed_dir, CATALOG_NAME)
    with open(path, 'rb') as handle:
        data = handle.read()
    catalog = parse_catalog(data, keyring, min_version=0, now=now)
    for entry in catalog.entries:
        package_path = os.path.join(feed_dir, entry.url)
        if not os.path.isfile(package_path):
            raise PackageError(
                '%s: package %s is not at %s' % (feed_dir, entry.package_id, entry.url), code='feed_package_missing', package_id=entry.package_id
            )
        size, sha256 = file_digest(package_path)
        if (size, sha256) != (entry.size, entry.sha256):
            raise PackageError(
                '%s: %s is not what the catalog signed (size %d, sha256 %s; catalog: size %d, sha256 %s)'
                % (feed_dir, entry.url, size, sha256, entry.size, entry.sha256),
                code='feed_package_mismatch',
                package_id=entry.package_id,
            )
        info = verify_package(package_path, keyring).info
        if (info.package_id, info.version) != (entry.package_id, entry.version):
            raise PackageError(
                '%s: %s holds package %s %s, the catalog says %s %s' % (feed_dir, entry.url, info.package_id, info.version, entry.package_id, entry.version),
                code='feed_package_mismatch',
                package_id=entry.package_id,
            )
    return {
        'feed': feed_dir,
        'feed_id': catalog.feed_id,
        'version': catalog.version,
        'expires': catalog.expires,
        'entries': len(catalog.entries),
        'key_ids': list(catalog.key_ids),
    }


# --------------------------------------------------------------------------- synthetic feeds
OS_LINUX = ('rhel8', 'rhel9', 'sles15', 'ubuntu2204')
OS_WINDOWS = ('win2019', 'win2022')
FIRMWARE_MODULES = ('system-bios', 'bmc-firmware', 'fc-controller', 'raid-controller', 'bmc-configuration', 'sdr')
SOFTWARE_MODULES = ('server-agent', 'agent-extension', 'update-agent', 'raid-utility')
MODEL_SERIES = ('R120', 'R110', 'T120', 'B120', 'R320', 'GT110', 'R140', 'T110')


def synthetic_models(count: int) -> list[str]:
    models: list[str] = []
    generation = 0
    while len(models) < count:
        for series in MODEL_SERIES:
            models.append('Express5800/%s%s-%dM' % (series, 'abcdefghijklmnopqrstuvwxyz'[generation % 26], 1 + generation // 26))
            if len(models) == count:
                break
        generation += 1
    return models


def _synthetic_infos(
    rng: random.Random, models: Sequence[str], versions_per_module: int, start: datetime.datetime
) -> Iterator[tuple[PackageInfo, datetime.datetime]]:
    """Yield (PackageInfo, published datetime) for a realistic fleet of models, newest versions last."""
    for model_index, model in enumerate(models):
        # Controllers are shared by model families: their firmware targets several models at once.
        family = models[(model_index // 4) * 4 : (model_index // 4) * 4 + 4]
        for module_id in FIRMWARE_MODULES + SOFTWARE_MODULES:
            shared = module_id in ('fc-controller', 'raid-controller') and model_index % 4 == 0
            if module_id in ('fc-controller', 'raid-controller') and not shared:
                continue  # the family's first model publishes the multi-model controller package
            if module_id in FIRMWARE_MODULES:
                os_sets: list[tuple[str, ...]] = [('any',)]
            elif module_id == 'server-agent':
                os_sets = [OS_WINDOWS]  # 003 Table 6 note: the server agent is Windows only
            else:
                os_sets = [OS_LINUX, OS_WINDOWS]
            release = start + datetime.timedelta(days=rng.randint(0, 200))
            for index in range(versions_per_module):
                release += datetime.timedelta(days=rng.randint(45, 200))
                major, minor = 1 + index // 5, (index % 5) * 2 + rng.randint(0, 1)
                version = '%d.%02d' % (major, minor) if module_id in FIRMWARE_MODULES else '%d.%d.%d' % (major, minor, rng.randint(0, 9))
                for os_names in os_sets:
                    if module_id in ('system-bios', 'bmc-firmware'):
                        kind = 'bmc' if rng.random() < 0.5 else 'offline' if rng.random() < 0.06 else 'linux'
                    elif 'any' in os_names:
                        kind = 'offline' if rng.random() < 0.06 else 'linux'
                    else:
                        kind = 'windows' if os_names == OS_WINDOWS else 'linux'
                    targets = family if shared else [model]
                    platform = 'any' if 'any' in os_names else ('win' if os_names == OS_WINDOWS else 'lin')
                    package_id = '%s-%s-%s-%s' % (module_id, targets[0].split('/')[1].lower().replace('-', ''), platform, version)
                    info = PackageInfo(
                        package_id=package_id[:64],
                        module_id=module_id,
                        module_name=MODULE_KINDS[module_id],
                        version=version,
                        release_date=release.strftime('%Y-%m-%d'),
                        models=list(targets),
                        os=list(os_names),
                        kind=kind,
                        auto_update=kind != 'offline' and rng.random() > 0.05,
                        reboot_required=module_id in FIRMWARE_MODULES and module_id != 'sdr',
                        downgrade_supported=rng.random() > 0.3,
                        uninstall_supported=module_id in SOFTWARE_MODULES,
                        install_command='./install.sh' if kind != 'windows' else 'install.cmd',
                        uninstall_command='./uninstall.sh' if module_id in SOFTWARE_MODULES and kind != 'windows' else '',
                        severity=rng.choice(('critical', 'recommended', 'recommended', 'optional')),
                    )
                    yield info, release + datetime.timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 23))


def synthesize_feed(
    feed_dir: str,
    signing_key: SigningKey,
    entries: int = 200,
    versions_per_module: int = 6,
    avg_size: int = 64 * 1024,
    seed: int = 1,
    now: datetime.datetime | None = None,
) -> tuple[int, list[str]]:
    """Write a realistic signed feed of about ``entries`` packages to ``feed_dir``.

    Models, OSes and the ten module kinds of 003 Table 6; several versions each
    with real release dates; some packages not auto-update, some offline, some
    multi-model (controller firmware of a model family), some not downgradable.
    Payloads are random bytes (firmware does not compress) around ``avg_size``.
    Returns (entry count, models, os list).
    """
    rng = random.Random(seed)
    per_model = (len(FIRMWARE_MODULES) - 2 + 0.5 + 1 + 2 * (len(SOFTWARE_MODULES) - 1)) * versions_per_module
    models = synthetic_models(int(entries // per_model) + 1)
    start = datetime.datetime(2018, 1, 1, tzinfo=datetime.timezone.utc)
    os.makedirs(os.path.join(feed_dir, 'packages'), exist_ok=True)
    catalog_entries: list[CatalogEntry] = []
    for info, published in _synthetic_infos(rng, models, versions_per_module, start):
        if len(catalog_entries) >= entries:
            break
        size = max(256, min(int(rng.lognormvariate(0, 0.5) * avg_size), avg_size * 8))
        payload = {'payload/%s.bin' % info.module_id: os.urandom(size), 'install.sh': b'#!/bin/sh\nexit 0\n'}
        url = 'packages/%s.zip' % info.package_id
        path = os.path.join(feed_dir, url)
        build_package_from_bytes(payload, info, signing_key, path)
        catalog_entries.append(entry_for(info, path, url, format_time(min(published, now or utc_now()))))
    write_catalog(feed_dir, catalog_entries, [signing_key], now=now)
    return len(catalog_entries), models


def synthetic_servers(models: Sequence[str], count: int, seed: int = 1, manager_id: str = 'local') -> list[dict[str, Any]]:
    """Managed servers spread over ``models`` and OSes, with current and previous versions unknown."""
    rng = random.Random(seed)
    servers = []
    for index in range(count):
        model = models[index % len(models)]
        os_name = rng.choice(OS_LINUX + OS_WINDOWS)
        servers.append({'name': 'srv%05d' % index, 'model': model, 'os': os_name, 'modules': {}})
    return servers
