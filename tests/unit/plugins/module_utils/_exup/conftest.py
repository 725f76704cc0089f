# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the core unit tests: signing keys, package builders, repository snapshots.

Helpers are handed out as fixtures (functions returned by fixtures) so test modules never
import this file: ansible-test and plain pytest load conftest.py differently.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import sqlite3
import zipfile

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import (
    HASH_NAME,
    INFO_NAME,
    PackageInfo,
    build_package_from_bytes,
    render_hash_xml,
    render_info_xml,
)
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository, server_from_dict
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey

#: A fixed "now" for repository tests; each test moves it through its own clock.
T0 = datetime.datetime(2025, 1, 10, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope='session')
def signing_key():
    """The vendor key every test package and catalog is signed with."""
    return SigningKey.generate()


@pytest.fixture(scope='session')
def other_key():
    """A well-formed key nobody trusts."""
    return SigningKey.generate()


@pytest.fixture(scope='session')
def keyring(signing_key):
    return KeyRing([signing_key.public_key])


def _token(text):
    return re.sub(r'[^A-Za-z0-9._+\-]', '-', text)[:64]


def make_info(**fields):
    """A valid PackageInfo; ``fields`` override the defaults (package_id follows module, version, model, OS)."""
    values = {
        'module_id': 'system-bios',
        'module_name': 'System BIOS',
        'version': '1.0',
        'release_date': '2024-05-01',
        'models': ['R120h-1M'],
        'os': ['linux'],
        'kind': 'linux',
        'auto_update': True,
        'reboot_required': True,
        'downgrade_supported': False,
        'uninstall_supported': False,
        'install_command': 'sh install.sh',
    }
    values.update(fields)
    if 'package_id' not in values:
        values['package_id'] = _token('%s_%s_%s_%s' % (values['module_id'], values['version'], '+'.join(values['models']), '+'.join(values['os'])))
    return PackageInfo(**values)


@pytest.fixture
def info_factory():
    return make_info


@pytest.fixture
def build_pkg(tmp_path, signing_key):
    """build_pkg(payload=None, key=None, name=None, **info_fields) -> path of a valid signed package."""
    out_dir = tmp_path / 'built'
    out_dir.mkdir()

    def build(payload=None, key=None, name=None, **fields):
        info = make_info(**fields)
        payload = payload if payload is not None else {'install.sh': b'#!/bin/sh\necho flashing\n', 'image/fw.bin': b'\x01\x02' * 512}
        path = str(out_dir / (name or info.package_id + '.zip'))
        return build_package_from_bytes(payload, info, key or signing_key, path)

    return build


def write_zip(path, members):
    """Write a zip exactly as given: ``members`` is a list of (name or ZipInfo, bytes), duplicates allowed."""
    with zipfile.ZipFile(path, 'w') as archive:
        for member, data in members:
            if isinstance(member, zipfile.ZipInfo):
                archive.writestr(member, data)
            else:
                archive.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED)
    return str(path)


def manifest_of(members):
    """path -> (size, sha256) of every member except ExUpHash.xml (what a vendor would list)."""
    files = {}
    for member, data in members:
        name = member.filename if isinstance(member, zipfile.ZipInfo) else member
        if name != HASH_NAME:
            files[name] = (len(data), hashlib.sha256(data).hexdigest())
    return files


@pytest.fixture
def craft(tmp_path, signing_key):
    """craft(members, listed=None, key=None, hash_xml=None, info=None, name='crafted.zip') -> path.

    A hand-made package: ``members`` (list of (name or ZipInfo, bytes)) plus ExUpInfo.xml (``info``
    bytes, or a valid default when None and not given in ``members``) plus ExUpHash.xml, which is
    ``hash_xml`` when given, else a correctly signed listing of ``listed`` (default: every member).
    So hostile content gets past the signature and reaches the check a test aims at.
    """

    def build(members, listed=None, key=None, hash_xml=None, info=None, name='crafted.zip'):
        members = list(members)
        names = {m.filename if isinstance(m, zipfile.ZipInfo) else m for m, _data in members}
        if INFO_NAME not in names and info is not False:
            members.insert(0, (INFO_NAME, info if info is not None else render_info_xml(make_info())))
        if hash_xml is None:
            hash_xml = render_hash_xml(listed if listed is not None else manifest_of(members), key or signing_key)
        if hash_xml is not False:
            members.append((HASH_NAME, hash_xml))
        return write_zip(tmp_path / name, members)

    return build


@pytest.fixture
def manifest():
    """manifest(members, info=None): the file list a vendor signs for ``members`` plus the ExUpInfo.xml
    that craft() adds (the default one unless ``info`` bytes are given)."""

    def listed(members, info=None):
        info = info if info is not None else render_info_xml(make_info())
        return manifest_of([(INFO_NAME, info)] + list(members))

    return listed


@pytest.fixture
def info_xml_text():
    """The text of a valid default ExUpInfo.xml, for tests that edit it."""
    return render_info_xml(make_info()).decode()


@pytest.fixture
def clock():
    """A settable clock: ``clock.now`` is what the repository sees; ``clock.advance(days=...)`` moves it."""

    class Clock:
        def __init__(self):
            self.now = T0

        def __call__(self):
            return self.now

        def advance(self, **delta):
            self.now += datetime.timedelta(**delta)

    return Clock()


@pytest.fixture
def repo(tmp_path, clock):
    return Repository(str(tmp_path / 'repo'), clock=clock)


@pytest.fixture
def register(repo):
    """register(manager_id, [server dicts]) records a manager's presence and servers, as a sync does."""

    def do(manager_id, servers, repository=None):
        repository = repository or repo
        with repository.store.writer() as conn:
            return repository.register_manager(conn, manager_id, [server_from_dict(manager_id, s) for s in servers])

    return do


def snapshot_of(repository, with_events=False):
    """Everything a refused or check-mode operation must leave alone: every table's rows (sorted;
    events only when asked, since refusals are logged) and the files under pool/ and tmp/."""
    store = repository.store
    tables = {}
    if os.path.exists(store.db_path):
        conn = sqlite3.connect('file:%s?mode=ro' % store.db_path, uri=True)
        try:
            names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for table in sorted(names):
                if table == 'events' and not with_events:
                    continue
                rows = sorted(tuple(row) for row in conn.execute('SELECT * FROM %s' % table))
                # the sync's bookkeeping (db.py: the write counter, the fingerprint memo) is no state of the repository
                tables[table] = [row for row in rows if table != 'meta' or row[0] not in ('data_generation', 'sync_memo', 'recovery_written')]
        finally:
            conn.close()
    files = []
    for top in ('pool', 'tmp'):
        for dirpath, _dirnames, filenames in os.walk(os.path.join(store.root, top)):
            for filename in filenames:
                full = os.path.join(dirpath, filename)
                with open(full, 'rb') as handle:
                    files.append((os.path.relpath(full, store.root), hashlib.sha256(handle.read()).hexdigest()))
    return {'tables': tables, 'files': sorted(files)}


@pytest.fixture
def snapshot():
    return snapshot_of
