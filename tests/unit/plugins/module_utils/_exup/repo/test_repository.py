# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository operations of 003 §2.2 on a real store (SQLite + pool in tmp_path), with real signed packages.

Every refusal asserts its result code and that the repository is unchanged (rows of every table but
the event log, and the files under pool/ and tmp/); check mode must not change even the event log.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import zipfile

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError, RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import verify_package
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import server_from_dict

MODEL = 'R120h-1M'
SERVER_A = {'name': 'a1', 'model': MODEL, 'os': 'linux'}


def sha256_of(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def tamper(path):
    """Rewrite the package with one payload file changed (a consistent zip, so the digest check catches it)."""
    with zipfile.ZipFile(path) as archive:
        members = [(item.filename, archive.read(item)) for item in archive.infolist()]
    out = path.replace('.zip', '-tampered.zip')
    with zipfile.ZipFile(out, 'w') as archive:
        for name, data in members:
            archive.writestr(name, b'#' * len(data) if name == 'install.sh' else data)  # same size, other bytes
    return out


def add(repo, keyring, *paths, **kwargs):
    return repo.add_files(list(paths), keyring, **kwargs)


def only(results):
    assert len(results) == 1
    return results[0]


def last_event(repo):
    return repo.listing('mgr-a', event_limit=1)['events'][0]


def package_ids(repo):
    return [p['package_id'] for p in repo.listing('mgr-a')['packages']]


def assert_indexed_files_verify(repo, keyring):
    """Crash-safety invariant: every row has its pool file, and that file verifies as the package indexed."""
    with repo.read() as conn:
        stored = conn.packages()
    for package_id, item in stored.items():
        path = repo.store.pool_path(item.sha256)
        assert sha256_of(path) == item.sha256
        assert verify_package(path, keyring).info.package_id == package_id


# ----------------------------------------------------------------- add, mode needed (Table 14)
def test_an_added_row_and_its_event_commit_together(repo, keyring, build_pkg, register, monkeypatch):
    """Issue 9 review F10: package_added is in the row's transaction, so no row is left without the event that tells of it."""
    register('mgr-a', [SERVER_A])

    def log_full(index, time_text, item):
        raise sqlite3.OperationalError('database or disk is full')

    monkeypatch.setattr(ev, 'record', log_full)
    with pytest.raises(sqlite3.OperationalError):
        repo.add_files([build_pkg(package_id='BIOS-1.0', version='1.0')], keyring)
    monkeypatch.undo()
    assert package_ids(repo) == []


def test_add_needed_added(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER_A])
    path = build_pkg(package_id='BIOS-1.0', version='1.0')
    result = only(add(repo, keyring, path))
    assert result['result'] == 'added' and result['pinned'] is False
    assert result['sha256'] == sha256_of(path)
    assert open(repo.store.pool_path(result['sha256']), 'rb').read() == open(path, 'rb').read()
    listed = repo.listing('mgr-a')['packages']
    assert [(p['package_id'], p['source'], p['generation'], p['pinned']) for p in listed] == [('BIOS-1.0', 'manual', 0, False)]
    assert last_event(repo)['code'] == 'package_added'
    assert os.listdir(repo.store.tmp_dir) == []  # the copy went into the pool, nothing left behind
    assert_indexed_files_verify(repo, keyring)


def test_add_tampered_is_invalid_and_changes_nothing(repo, keyring, build_pkg, register, snapshot):
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(package_id='BIOS-1.0', version='1.0'))
    before = snapshot(repo)
    result = only(add(repo, keyring, tamper(build_pkg(package_id='BIOS-1.1', version='1.1'))))
    assert result['result'] == 'error_invalid_package' and result['error'] == 'digest_mismatch'
    assert 'does not match its SHA-256' in result['msg']
    assert snapshot(repo) == before
    event = last_event(repo)
    assert event['code'] == 'package_add_failed' and event['level'] == 'error'
    assert event['message'].startswith('Adding the update package failed. (install.sh does not match its SHA-256')
    assert event['message'].endswith(')')


def test_add_untrusted_is_invalid(repo, keyring, build_pkg, register, snapshot, other_key):
    register('mgr-a', [SERVER_A])
    before = snapshot(repo)
    result = only(add(repo, keyring, build_pkg(key=other_key)))
    assert (result['result'], result['error']) == ('error_invalid_package', 'unknown_key')
    assert snapshot(repo) == before


def test_add_not_needed_without_applicable_server(repo, keyring, build_pkg, register, snapshot):
    register('mgr-a', [{'name': 'b1', 'model': 'OTHER-MODEL', 'os': 'linux'}, {'name': 'w1', 'model': MODEL, 'os': 'windows'}])
    before = snapshot(repo)
    result = only(add(repo, keyring, build_pkg(os=['linux'])))
    assert result['result'] == 'warning_not_needed'
    assert snapshot(repo) == before


def test_add_not_needed_in_an_empty_repository(repo, keyring, build_pkg, snapshot):
    result = only(add(repo, keyring, build_pkg()))
    assert result['result'] == 'warning_not_needed'
    assert snapshot(repo)['files'] == [] and package_ids(repo) == []


def test_add_not_needed_when_too_old(repo, keyring, build_pkg, register, snapshot):
    register('mgr-a', [SERVER_A])
    results = add(repo, keyring, *[build_pkg(version=v) for v in ('1.1', '1.2', '1.10')])
    assert [r['result'] for r in results] == ['added'] * 3
    before = snapshot(repo)
    result = only(add(repo, keyring, build_pkg(version='1.0')))  # would be the 4th generation
    assert result['result'] == 'warning_not_needed' and result['version'] == '1.0'
    assert snapshot(repo) == before


def test_add_previous_generation_of_a_server_is_needed(repo, keyring, build_pkg, register):
    register('mgr-a', [dict(SERVER_A, modules={'system-bios': {'current': '1.3', 'previous': '1.0'}})])
    add(repo, keyring, *[build_pkg(version=v) for v in ('1.1', '1.2', '1.3')])
    assert only(add(repo, keyring, build_pkg(version='1.0')))['result'] == 'added'
    flags = {p['version']: p['previous_generation_only'] for p in repo.listing('mgr-a')['packages']}
    assert flags == {'1.0': True, '1.1': False, '1.2': False, '1.3': False}


def test_add_already_present(repo, keyring, build_pkg, register, snapshot):
    register('mgr-a', [SERVER_A])
    path = build_pkg()
    add(repo, keyring, path)
    before = snapshot(repo)
    result = only(add(repo, keyring, path))
    assert result['result'] == 'warning_already_present'
    assert snapshot(repo) == before


def test_add_a_batch_reports_each_file(repo, keyring, build_pkg, register, tmp_path):
    register('mgr-a', [SERVER_A])
    good = build_pkg(version='2.0')
    junk = tmp_path / 'junk.zip'
    junk.write_bytes(b'not a zip')
    results = add(repo, keyring, good, str(junk), good)
    assert [(r['file'], r['result']) for r in results] == [
        (os.path.basename(good), 'added'),
        ('junk.zip', 'error_invalid_package'),
        (os.path.basename(good), 'warning_already_present'),
    ]
    assert results[1]['error'] == 'zip_invalid'


@pytest.mark.parametrize('order', [('1.0', '1.1', '1.2', '1.3'), ('1.3', '1.0', '1.2', '1.1')], ids=['oldest-first', 'mixed'])
def test_add_needed_decides_over_the_whole_batch(repo, keyring, build_pkg, register, order):
    """Table 13: from the list given, only what generation management keeps is added, whatever the
    order of the files (a folder lists in any order; an offline repository never syncs, so nothing
    would prune a 4th generation added by accident)."""
    register('mgr-a', [SERVER_A])
    results = add(repo, keyring, *[build_pkg(version=v) for v in order])
    assert {r['version']: r['result'] for r in results} == {'1.0': 'warning_not_needed', '1.1': 'added', '1.2': 'added', '1.3': 'added'}
    assert sorted(p['version'] for p in repo.listing('mgr-a')['packages']) == ['1.1', '1.2', '1.3']


def test_add_refuses_an_unknown_mode(repo, keyring, build_pkg):
    with pytest.raises(ExupError) as caught:
        add(repo, keyring, build_pkg(), mode='all')
    assert caught.value.code == 'argument_invalid'
    assert not repo.store.exists


# ----------------------------------------------------------------- add, mode pinned
def test_pinned_is_added_without_servers(repo, keyring, build_pkg):
    result = only(add(repo, keyring, build_pkg(), mode='pinned'))
    assert result['result'] == 'added' and result['pinned'] is True
    assert repo.listing('mgr-a')['packages'][0]['pinned'] is True


def test_pinned_survives_generation_management(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(package_id='OLD-needed', version='1.0'))
    add(repo, keyring, build_pkg(package_id='OLD-pinned', version='1.0'), mode='pinned')
    add(repo, keyring, *[build_pkg(version=v) for v in ('1.1', '1.2', '1.3')])
    with repo.store.writer() as conn:  # what a sync does after downloading
        plan, stored = repo.plan(conn)[:2]
        removed = repo.prune(conn, plan, stored)
    assert [r['package_id'] for r in removed] == ['OLD-needed']
    assert 'OLD-pinned' in package_ids(repo) and 'OLD-needed' not in package_ids(repo)
    assert_indexed_files_verify(repo, keyring)
    with repo.read() as conn:
        assert repo.store.pool_digests() == {item.sha256 for item in conn.packages().values()}


# ----------------------------------------------------------------- delete (Tables 15-16) and deletion history
def test_delete(repo, keyring, build_pkg, register, clock):
    register('mgr-a', [SERVER_A])
    digest = only(add(repo, keyring, build_pkg(package_id='BIOS-1.0', version='1.0')))['sha256']
    clock.advance(hours=1)
    result = only(repo.delete(['BIOS-1.0'], 'mgr-a'))
    assert result['result'] == 'deleted' and result['forced'] is False
    assert package_ids(repo) == [] and not os.path.exists(repo.store.pool_path(digest))
    tombstones = repo.listing('mgr-a')['tombstones']
    assert tombstones == [
        {
            'package_id': 'BIOS-1.0',
            'module_id': 'system-bios',
            'version': '1.0',
            'sha256': digest,
            'deleted_at': '2025-01-10T13:00:00Z',
            'deleted_by': 'mgr-a',
            'forced': 0,
            'models': ['R120h-1M'],
            'os': ['linux'],
        }
    ]
    assert last_event(repo)['code'] == 'package_deleted'


def test_delete_in_use_by_another_manager(repo, keyring, build_pkg, register, snapshot):
    register('mgr-a', [SERVER_A])
    register('mgr-b', [{'name': 'b1', 'model': MODEL, 'os': 'linux'}])
    add(repo, keyring, build_pkg(package_id='BIOS-1.0'))
    before = snapshot(repo)
    result = only(repo.delete(['BIOS-1.0'], 'mgr-a'))
    assert result['result'] == 'error_in_use_by_other_manager' and result['managers'] == ['mgr-b']
    assert snapshot(repo) == before
    assert last_event(repo)['message'] == 'Deleting the update package failed. (in use by another manager)'

    forced = only(repo.delete(['BIOS-1.0'], 'mgr-a', force=True))
    assert forced['result'] == 'deleted' and forced['forced'] is True
    assert repo.listing('mgr-a')['tombstones'][0]['forced'] == 1


def test_delete_needed_only_by_own_manager(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(package_id='BIOS-1.0'))
    assert only(repo.delete(['BIOS-1.0'], 'mgr-a'))['result'] == 'deleted'


def test_delete_not_found(repo, keyring, build_pkg, register, snapshot):
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(package_id='BIOS-1.0'))
    before = snapshot(repo)
    result = only(repo.delete(['NOPE'], 'mgr-a'))
    assert result['result'] == 'error_not_found'
    assert snapshot(repo) == before
    assert last_event(repo)['message'] == 'Deleting the update package failed. (no such package)'


def test_clear_tombstones_clears_all_at_once(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(package_id='A', version='1.0'), build_pkg(package_id='B', version='2.0'))
    repo.delete(['A', 'B'], 'mgr-a')
    assert len(repo.listing('mgr-a')['tombstones']) == 2
    assert repo.clear_tombstones() == ['A', 'B']
    assert repo.listing('mgr-a')['tombstones'] == []
    event = last_event(repo)
    assert event['code'] == 'deletion_history_cleared' and event['detail'] == {'count': 2}
    assert repo.clear_tombstones() == []


# ----------------------------------------------------------------- save / export (§2.2.6)
@pytest.fixture
def exportable(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER_A, {'name': 'a2', 'model': 'T110j', 'os': 'windows'}])
    add(repo, keyring, *[build_pkg(package_id='BIOS-%s' % v, version=v) for v in ('1.0', '1.2', '1.10')])
    add(repo, keyring, build_pkg(package_id='BMC-R1.5a', module_id='bmc-firmware', module_name='BMC firmware', version='R1.5a', kind='bmc'))
    add(
        repo,
        keyring,
        build_pkg(
            package_id='RAID-T110', module_id='raid-controller', module_name='RAID <controller> & firmware', models=['T110j'], os=['windows'], auto_update=False
        ),
    )
    return repo


def archive_members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_export_layout_displayed_only(exportable, tmp_path, keyring):
    dest = str(tmp_path / 'saved.zip')
    summary = exportable.export(dest, module_ids=['system-bios', 'raid-controller'])
    assert [s['package_id'] for s in summary] == ['RAID-T110', 'BIOS-1.10']
    members = archive_members(dest)
    assert sorted(members) == ['css/exup.css', 'index.html', 'packages/BIOS-1.10.zip', 'packages/RAID-T110.zip']
    with exportable.read() as conn:
        stored = conn.packages()
    assert hashlib.sha256(members['packages/BIOS-1.10.zip']).hexdigest() == stored['BIOS-1.10'].sha256
    index = members['index.html'].decode()
    assert '<a href="packages/BIOS-1.10.zip">BIOS-1.10</a>' in index and 'System BIOS' in index
    assert 'RAID &lt;controller&gt; &amp; firmware' in index and 'no (apply by hand)' in index
    assert 'href="css/exup.css"' in index
    with zipfile.ZipFile(dest) as archive:
        archive.extract('packages/BIOS-1.10.zip', str(tmp_path / 'x'))
    assert verify_package(str(tmp_path / 'x' / 'packages' / 'BIOS-1.10.zip'), keyring).info.version == '1.10'
    assert last_event(exportable)['code'] == 'archive_saved'


def test_export_all_versions(exportable, tmp_path):
    dest = str(tmp_path / 'saved.zip')
    summary = exportable.export(dest, module_ids=['system-bios'], displayed_only=False)
    assert [s['version'] for s in summary] == ['1.0', '1.2', '1.10']
    assert sorted(archive_members(dest)) == ['css/exup.css', 'index.html', 'packages/BIOS-1.0.zip', 'packages/BIOS-1.10.zip', 'packages/BIOS-1.2.zip']


def test_export_displayed_only_saves_the_one_version_a_server_of_the_model_shows(repo, keyring, build_pkg, register, tmp_path):
    """003 Table 17: a multi-model 2.0 and a single-model 1.0 of the same module and model: only 2.0 is shown, only 2.0 is saved."""
    register('mgr-a', [SERVER_A, {'name': 'b1', 'model': 'T110j', 'os': 'linux'}])
    add(
        repo,
        keyring,
        build_pkg(package_id='SDR-2.0-multi', module_id='sdr', version='2.0', models=[MODEL, 'T110j'], auto_update=False),
        build_pkg(package_id='SDR-1.0-single', module_id='sdr', version='1.0', models=[MODEL], auto_update=False),
        mode='pinned',
    )
    for models in (None, [MODEL], ['T110j']):
        summary = repo.export(str(tmp_path / 'saved.zip'), module_ids=['sdr'], models=models)
        assert [s['package_id'] for s in summary] == ['SDR-2.0-multi'], models
    assert sorted(archive_members(str(tmp_path / 'saved.zip'))) == ['css/exup.css', 'index.html', 'packages/SDR-2.0-multi.zip']
    summary = repo.export(str(tmp_path / 'all.zip'), module_ids=['sdr'], models=[MODEL], displayed_only=False)
    assert [s['package_id'] for s in summary] == ['SDR-1.0-single', 'SDR-2.0-multi']


def test_export_by_package_ids_and_models(exportable, tmp_path):
    summary = exportable.export(str(tmp_path / 'a.zip'), package_ids=['BMC-R1.5a', 'BIOS-1.0'])
    assert [s['package_id'] for s in summary] == ['BIOS-1.0', 'BMC-R1.5a']
    summary = exportable.export(str(tmp_path / 'b.zip'), models=['T110j'])
    assert [s['package_id'] for s in summary] == ['RAID-T110']


def test_export_errors_change_nothing(exportable, tmp_path, snapshot):
    before = snapshot(exportable, with_events=True)
    dest = str(tmp_path / 'saved.zip')
    with pytest.raises(RepositoryError) as caught:
        exportable.export(dest, package_ids=['BIOS-1.0', 'NOPE'])
    assert caught.value.code == 'package_not_found' and 'NOPE' in caught.value.msg
    with pytest.raises(RepositoryError) as caught:
        exportable.export(dest, module_ids=['sdr'])
    assert caught.value.code == 'nothing_to_save'
    assert not os.path.exists(dest) and not os.path.exists(dest + '.tmp')
    assert snapshot(exportable, with_events=True) == before


# ----------------------------------------------------------------- listing (Fig. 10-11, Table 20)
def test_listing_by_component_and_model_with_flags(repo, keyring, build_pkg, register):
    register('mgr-a', [SERVER_A])
    register('mgr-b', [{'name': 'b1', 'model': 'T110j', 'os': 'linux'}])
    add(repo, keyring, *[build_pkg(package_id='BIOS-%s' % v, version=v) for v in ('1.2', '1.10')])
    add(
        repo,
        keyring,
        build_pkg(
            package_id='MULTI',
            module_id='bmc-firmware',
            module_name='BMC firmware',
            version='2.0',
            models=[MODEL, 'T110j'],
            auto_update=False,
            downgrade_supported=True,
        ),
    )
    add(repo, keyring, build_pkg(package_id='NEWSCHEMA', module_id='sdr', version='1', schema_version=2))
    add(repo, keyring, build_pkg(package_id='PINNED', module_id='raid-utility', models=['NOBODY']), mode='pinned')
    listing = repo.listing('mgr-a')
    assert listing['by_component'] == {'system-bios': ['BIOS-1.10', 'BIOS-1.2'], 'bmc-firmware': ['MULTI'], 'sdr': ['NEWSCHEMA'], 'raid-utility': ['PINNED']}
    assert listing['by_model'] == {
        MODEL: {'system-bios': ['BIOS-1.10', 'BIOS-1.2'], 'bmc-firmware': ['MULTI'], 'sdr': ['NEWSCHEMA']},
        'T110j': {'bmc-firmware': ['MULTI']},
        'NOBODY': {'raid-utility': ['PINNED']},
    }
    flags = {p['package_id']: p for p in listing['packages']}
    assert (flags['MULTI']['multi_model'], flags['MULTI']['auto_update'], flags['MULTI']['downgrade_supported']) == (True, False, True)
    assert flags['MULTI']['used_by_other_manager'] is True and flags['BIOS-1.10']['used_by_other_manager'] is False
    assert (flags['BIOS-1.10']['generation'], flags['BIOS-1.2']['generation']) == (0, 1)
    assert (flags['PINNED']['pinned'], flags['PINNED']['generation']) == (True, None)
    assert flags['NEWSCHEMA']['compatible'] is False and flags['BIOS-1.2']['compatible'] is True
    assert [m['manager_id'] for m in listing['managers']] == ['mgr-a', 'mgr-b'] and listing['servers'] == 2
    assert repo.listing('mgr-b')['packages'][0]['used_by_other_manager'] is True  # BIOS-1.10 is mgr-a's need

    narrowed = repo.listing('mgr-a', module_ids=['bmc-firmware'], models=['T110j'])
    assert [p['package_id'] for p in narrowed['packages']] == ['MULTI'] and narrowed['by_model'] == {'T110j': {'bmc-firmware': ['MULTI']}}


def test_listing_of_a_missing_repository_creates_nothing(tmp_path, clock):
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository  # pylint: disable=import-outside-toplevel

    repository = Repository(str(tmp_path / 'none'), clock=clock)
    assert repository.listing('mgr-a')['packages'] == []
    assert not os.path.exists(tmp_path / 'none')


# ----------------------------------------------------------------- managers (§2.2.8)
def test_manager_presence_expires_after_60_days(repo, keyring, build_pkg, register, clock):
    register('mgr-b', [{'name': 'b1', 'model': MODEL, 'os': 'linux'}])
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(package_id='BIOS-1.0'))
    clock.advance(days=60)
    assert repo.listing('mgr-a')['servers'] == 2  # 60 days exactly: still present
    register('mgr-a', [SERVER_A])
    assert only(repo.delete(['BIOS-1.0'], 'mgr-a', check_mode=True))['result'] == 'error_in_use_by_other_manager'
    clock.advance(seconds=1)
    assert repo.listing('mgr-a')['servers'] == 1  # mgr-b's needs no longer count, even before it is forgotten
    assert only(repo.delete(['BIOS-1.0'], 'mgr-a', check_mode=True))['result'] == 'deleted'
    assert register('mgr-a', [SERVER_A]) == ['mgr-b']
    listing = repo.listing('mgr-a')
    assert [m['manager_id'] for m in listing['managers']] == ['mgr-a']
    assert any(e['code'] == 'manager_expired' and e['detail'] == {'manager_id': 'mgr-b'} for e in listing['events'])


def test_register_presence_only_keeps_servers(repo, register, clock):
    register('mgr-a', [SERVER_A, {'name': 'a2', 'model': 'T110j', 'os': 'windows'}])
    clock.advance(days=30)
    with repo.store.writer() as conn:
        repo.register_manager(conn, 'mgr-a', None)
    listing = repo.listing('mgr-a')
    assert listing['servers'] == 2 and listing['managers'][0]['last_seen'] == '2025-02-09T12:00:00Z'
    register('mgr-a', [SERVER_A])  # a new list replaces the old one
    assert repo.listing('mgr-a')['servers'] == 1


@pytest.mark.parametrize(
    'data, fragment',
    [
        ('a1', 'must be a dict'),
        ({'name': 'a1', 'model': MODEL}, 'has no os'),
        ({'name': 'a1', 'model': '', 'os': 'linux'}, 'has no model'),
        ({'name': 'a1', 'model': MODEL, 'os': 'linux', 'modules': ['system-bios']}, 'modules must map'),
        ({'name': 'a1', 'model': MODEL, 'os': 'linux', 'modules': {'system-bios': 3}}, 'must be a version or'),
        ({'name': 'a1', 'model': MODEL, 'os': 'linux', 'current': '1.0'}, "server 'a1': unknown key current; a server has name, model, os, modules"),
        ({'name': 'a1', 'model': {'id': MODEL}, 'os': 'linux'}, "server 'a1': model must be a string, not dict"),
        ({'name': False, 'model': MODEL, 'os': 'linux'}, 'server False: name must be a string, not bool'),
    ],
)
def test_server_from_dict_refuses_bad_servers(data, fragment):
    with pytest.raises(ExupError) as caught:
        server_from_dict('mgr-a', data)
    assert caught.value.code == 'server_invalid' and fragment in caught.value.msg


def test_server_from_dict_takes_a_number_as_its_text():
    server = server_from_dict('mgr-a', {'name': 1234, 'model': MODEL, 'os': 2022.1})
    assert (server.name, server.os) == ('1234', '2022.1')


def test_server_from_dict_accepts_a_bare_version():
    server = server_from_dict('mgr-a', dict(SERVER_A, modules={'system-bios': '1.2', 'bmc-firmware': {'current': 'R1', 'previous': 'R0', 'x': 1}}))
    assert server.modules == {'system-bios': {'current': '1.2'}, 'bmc-firmware': {'current': 'R1', 'previous': 'R0'}}


# ----------------------------------------------------------------- check mode changes nothing
def test_check_mode_changes_nothing(repo, keyring, build_pkg, register, snapshot, tmp_path):
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(package_id='A', version='1.0'), build_pkg(package_id='B', version='2.0'))
    repo.delete(['B'], 'mgr-a')
    before = snapshot(repo, with_events=True)

    result = only(add(repo, keyring, build_pkg(package_id='C', version='3.0'), check_mode=True))
    assert result['result'] == 'added'
    assert only(add(repo, keyring, tamper(build_pkg(package_id='D', version='4.0')), check_mode=True))['result'] == 'error_invalid_package'
    assert only(repo.delete(['A'], 'mgr-a', check_mode=True))['result'] == 'deleted'
    assert only(repo.delete(['NOPE'], 'mgr-a', check_mode=True))['result'] == 'error_not_found'
    assert repo.clear_tombstones(check_mode=True) == ['B']
    dest = str(tmp_path / 'saved.zip')
    assert [s['package_id'] for s in repo.export(dest, package_ids=['A'], check_mode=True)] == ['A']

    assert snapshot(repo, with_events=True) == before
    assert not os.path.exists(dest)


def test_check_mode_predicts_the_real_add(repo, keyring, build_pkg, register, snapshot):
    register('mgr-a', [SERVER_A])
    add(repo, keyring, build_pkg(version='1.1'))
    batch = [build_pkg(version=v) for v in ('1.0', '1.2', '1.3')]
    batch.append(batch[1])  # the same file twice: the second is already present
    before = snapshot(repo, with_events=True)
    predicted = add(repo, keyring, *batch, check_mode=True)
    assert snapshot(repo, with_events=True) == before
    actual = add(repo, keyring, *batch)
    assert [(r['file'], r['result']) for r in predicted] == [(r['file'], r['result']) for r in actual]
    assert [r['result'] for r in actual] == ['warning_not_needed', 'added', 'added', 'warning_already_present']


def test_check_mode_on_a_new_repository_creates_nothing(repo, keyring, build_pkg):
    only(add(repo, keyring, build_pkg(), mode='pinned', check_mode=True))
    repo.delete(['X'], 'mgr-a', check_mode=True)
    repo.clear_tombstones(check_mode=True)
    assert not os.path.exists(repo.store.root)
