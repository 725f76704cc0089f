# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The conn-less operations of interface.RepositoryApi on the local repository (a real store in tmp_path)."""

from __future__ import annotations

import inspect
import os

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import interface
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, RepositoryApi, StoredPackage, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository, server_from_dict

MODEL = 'R120h-1M'
SERVER_A = {'name': 'a1', 'model': MODEL, 'os': 'linux'}


def test_repository_has_every_operation_of_the_interface():
    for name, member in inspect.getmembers(RepositoryApi, inspect.isfunction):
        if name.startswith('_'):
            continue
        implemented = getattr(Repository, name, None)
        assert callable(implemented), name
        wanted = [p for p in inspect.signature(member).parameters if p != 'self']
        have = [p for p in inspect.signature(implemented).parameters if p != 'self']
        assert have[: len(wanted)] == wanted, name


def test_interface_takes_no_connection():
    for name, member in inspect.getmembers(RepositoryApi, inspect.isfunction):
        assert 'conn' not in inspect.signature(member).parameters, name
    assert 'sqlite3' not in open(interface.__file__).read()


def test_a_missing_repository_reads_empty_and_stays_missing(tmp_path):
    repo = Repository(str(tmp_path / 'none'))
    assert not repo.exists() and not repo.readable()
    assert repo.packages() == [] and repo.packages_for(MODEL, 'linux') == [] and repo.deleted_packages() == []
    assert repo.bmc_module_records('mgr-a', 'a1') == {}
    assert repo.job_reported('job-1') is False
    assert not os.path.exists(str(tmp_path / 'none'))


def test_packages_are_records(repo, keyring, build_pkg):
    path = build_pkg(package_id='BIOS-1.0', version='1.0')
    repo.add_files([path], keyring, mode='pinned')
    [package] = repo.packages()
    assert isinstance(package, StoredPackage)
    assert (package.package_id, package.module_id, package.version, package.pinned, package.source) == ('BIOS-1.0', 'system-bios', '1.0', True, 'manual')
    assert package.path == repo.store.pool_path(package.sha256) and os.path.getsize(package.path) == package.size
    assert package.key_id == keyring.key_ids[0] and package.compatible and package.added_at
    assert repo.exists() and repo.readable()


def test_packages_by_module_and_for_a_server(repo, keyring, build_pkg):
    repo.add_files(
        [build_pkg(package_id='BIOS-1.0', version='1.0'), build_pkg(package_id='AGENT-1.0', module_id='exup-agent', version='1.0', models=['Other'])],
        keyring,
        mode='pinned',
    )
    assert sorted(p.package_id for p in repo.packages()) == ['AGENT-1.0', 'BIOS-1.0']
    assert [p.package_id for p in repo.packages(module_id='exup-agent')] == ['AGENT-1.0']
    assert [p.package_id for p in repo.packages_for(MODEL, 'linux')] == ['BIOS-1.0']
    assert [p.package_id for p in repo.packages_for(MODEL, 'linux', trusted_key_ids=keyring.key_ids)] == ['BIOS-1.0']
    assert repo.packages_for(MODEL, 'linux', trusted_key_ids=['someone-else']) == []


def test_deleted_packages_are_tombstones(repo, keyring, build_pkg):
    repo.add_files([build_pkg(package_id='BIOS-1.0', version='1.0')], keyring, mode='pinned')
    repo.delete(['BIOS-1.0'], 'mgr-a', force=True)
    [tombstone] = repo.deleted_packages()
    assert isinstance(tombstone, Tombstone)
    assert (tombstone.package_id, tombstone.deleted_by, tombstone.forced, tombstone.models) == ('BIOS-1.0', 'mgr-a', True, (MODEL,))
    assert tombstone.as_dict() == repo.listing('mgr-a')['tombstones'][0]


def test_record_and_forget_a_server(repo):
    server = server_from_dict('mgr-a', dict(SERVER_A, modules={'system-bios': '1.0'}))
    assert repo.server_record_differs('mgr-a', server) is True
    assert not repo.exists()  # asking created nothing
    assert repo.record_server('mgr-a', server) is True
    assert repo.server_record_differs('mgr-a', server) is False
    assert repo.record_server('mgr-a', server) is False
    assert repo.forget_server('mgr-a', 'a1', 'agent uninstalled') is True
    assert repo.forget_server('mgr-a', 'a1') is False
    assert [e['code'] for e in repo.listing('mgr-a')['events']][:2] == ['server_unregistered', 'server_registered']


def test_bmc_module_records(repo):
    repo.set_bmc_module('mgr-a', 'a1', 'bmc-firmware', previous='1.0', block='reboot_required', staged='2.0')
    records = repo.bmc_module_records('mgr-a', 'a1')
    assert list(records) == ['bmc-firmware']
    record = records['bmc-firmware']
    assert isinstance(record, BmcModuleRecord) and (record.previous, record.block, record.staged) == ('1.0', 'reboot_required', '2.0')
    assert record.since
    assert repo.bmc_module_records('mgr-a', 'other') == {}


def test_status_icons_match_manual_icons(repo, keyring, build_pkg):
    repo.add_files([build_pkg(package_id='RAID-1.0', module_id='raid-utility', version='1.0', auto_update=False)], keyring, mode='pinned')
    infos = [p.info for p in repo.packages()]
    with repo.read() as conn:
        old = repo.manual_icons(conn, 'mgr-a', 'a1', infos)
    assert repo.status_icons('mgr-a', 'a1', infos) == old and old


def test_job_reported_counts_outcomes_not_starts(repo):
    repo.log_events([ev.event('apply_started', None, job_id='job-1')])
    assert repo.job_reported('job-1') is False
    repo.log_events([ev.event('apply_finished', None, job_id='job-1', results={})])
    assert repo.job_reported('job-1') is True
    assert repo.job_reported('job-2') is False


def test_rebuild_through_the_interface(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER_A])
    repo.add_files([build_pkg(package_id='P1', version='1')], keyring)
    sound = repo.rebuild(keyring)
    assert sound['state'] == 'sound' and sound['changed'] is False
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(repo.store.db_path + suffix):
            os.unlink(repo.store.db_path + suffix)
    preview = repo.rebuild(keyring, check_mode=True)
    assert preview['state'] == 'missing' and [p['package_id'] for p in preview['packages']] == ['P1']
    assert not os.path.exists(repo.store.db_path)  # check mode writes nothing
    result = repo.rebuild(keyring)
    assert result['changed'] and [p.package_id for p in repo.packages()] == ['P1']


def test_the_faces_sync_and_rebuild_through_the_interface():
    """Issue 9 review F6: exup_repo_sync, exup_package state=rebuilt and exup_agent source=feed need no concrete Repository."""
    plugins = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(interface.__file__)))))
    for face in ('modules/exup_repo_sync.py', 'modules/exup_package.py', 'action/exup_agent.py'):
        with open(os.path.join(plugins, face), encoding='utf-8') as handle:
            source = handle.read()
        assert 'rebuild_index' not in source and 'Sync(' not in source and 'sync_repository' not in source, face
