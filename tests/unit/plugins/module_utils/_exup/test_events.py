# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The application log of 003 §2.4: error events carry their cause in parentheses (Table 19)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import events
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index, connect


def test_cause_in_parentheses():
    item = events.event('package_refused', 'catalog.json: digest mismatch', package_id='P1', error='digest_mismatch')
    assert item == {
        'level': 'error',
        'code': 'package_refused',
        'message': 'Update package refused. (catalog.json: digest mismatch)',
        'detail': {'package_id': 'P1', 'error': 'digest_mismatch'},
    }


def test_no_cause_no_parentheses():
    item = events.event('repository_update_finished', added=2)
    assert item['message'] == 'Repository update finished.' and item['level'] == 'normal' and item['detail'] == {'added': 2}


def test_every_event_has_a_level_and_a_sentence():
    for code, (level, message) in events.EVENTS.items():
        assert level in (events.NORMAL, events.ERROR), code
        assert message.endswith('.') and '(' not in message, code
    assert {code for code, (level, _message) in events.EVENTS.items() if level == events.ERROR} >= {
        'repository_update_failed',
        'package_refused',
        'package_add_failed',
        'package_delete_failed',
    }


def test_unknown_code_is_a_programming_error():
    with pytest.raises(KeyError):
        events.event('no_such_event')


def test_record_writes_the_event_row():
    index = Index(connect(':memory:'))
    index.create_schema()
    conn = index.conn
    item = events.record(index, '2025-01-01T00:00:00Z', events.event('package_add_failed', 'not a zip', file='x.zip'))
    assert item['time'] == '2025-01-01T00:00:00Z'
    row = conn.execute('SELECT time, level, code, message, detail FROM events').fetchone()
    assert row[:4] == ('2025-01-01T00:00:00Z', 'error', 'package_add_failed', 'Adding the update package failed. (not a zip)')
    assert json.loads(row[4]) == {'file': 'x.zip'}


# ----------------------------------------------------------------- every code has its row in docs/events.md, and back
DOCS = Path(__file__).resolve().parents[5] / 'docs' / 'events.md'
ROW = re.compile(r'^\|(?P<seed>[^|]*)\|\s*`(?P<code>[a-z_]+)`\s*\|\s*(?P<level>normal|error)\s*\|')


def documented_events():
    """code -> level for each table row of docs/events.md that names an event code in its second column."""
    rows = {}
    for line in DOCS.read_text(encoding='utf-8').splitlines():
        match = ROW.match(line)
        if match:
            rows.setdefault(match.group('code'), set()).add(match.group('level'))
    return rows


def test_every_event_code_has_a_docs_row_and_every_row_a_code():
    documented = documented_events()
    assert sorted(set(events.EVENTS) - set(documented)) == [], 'codes without a row in docs/events.md'
    assert sorted(set(documented) - set(events.EVENTS)) == [], 'rows of docs/events.md naming no code of EVENTS'
    for code, levels in documented.items():
        assert levels == {events.EVENTS[code][0]}, code


def test_agreed_codes_of_issue_8_exist():
    agreed = {
        'status_changed': 'normal',
        'settings_read': 'normal',
        'settings_changed': 'normal',
        'reboot_failed': 'error',
        'progress_unavailable': 'error',
        'cancel_unavailable': 'error',
        'version_query_failed': 'error',
        'archive_cancelled': 'normal',
        'refusals_cleared': 'normal',
        'store_migrated': 'normal',
        'store_rebuilt': 'normal',
    }
    assert {code: events.EVENTS[code][0] for code in agreed} == agreed


# ----------------------------------------------------------------- archive_cancelled (003 Table 18): a save stopped midway
EXPORT_SCRIPT = '''
import signal
import sys
# A parent started in the background by a non-interactive shell passes SIGINT on ignored (SIG_IGN survives exec):
# Ctrl-C's own handler is what this test is about, so it is put back.
signal.signal(signal.SIGINT, signal.default_int_handler)
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
try:
    Repository(sys.argv[1]).export(sys.argv[2], package_ids=sys.argv[3:])
except KeyboardInterrupt:
    sys.exit(130)
'''


def stored_pool_paths(repo):
    with repo.read() as conn:
        stored = conn.packages()
    return {package_id: repo.store.pool_path(item.sha256) for package_id, item in stored.items()}


@contextlib.contextmanager
def export_blocked_on_fifo(repo, tmp_path, package_ids, blocked_id):
    """Run a real export in a child process whose read of ``blocked_id``'s pool file blocks (the file is swapped for a FIFO).

    Yields (process, dest) once the partial archive holds the packages before the blocked one: the child is then
    blocked opening the FIFO (no writer ever comes). Nothing is mocked: the child gets a real SIGINT while it
    writes the archive. Readiness is a file the child writes, not a time: a loaded machine only makes the wait
    longer.
    """
    pool = stored_pool_paths(repo)[blocked_id]
    saved = str(tmp_path / 'saved-pool-file')
    shutil.copy2(pool, saved)
    os.unlink(pool)
    os.mkfifo(pool)
    dest = str(tmp_path / 'out' / 'saved.zip')
    os.makedirs(os.path.dirname(dest))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, '-c', EXPORT_SCRIPT, repo.store.root, dest, *package_ids], env=env)
    try:
        wait_for_partial_archive(dest + '.tmp', process)
        yield process, dest
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=EXIT_BOUND)
        os.unlink(pool)
        os.replace(saved, pool)


#: seconds a child may take to reach the FIFO or to stop: bounds that only a hung child reaches, so the tests can still fail
READY_BOUND = 300
EXIT_BOUND = 120


def wait_for_partial_archive(partial, process):
    """Until ``partial`` holds bytes: the packages before the blocked one are written and the child waits on the FIFO."""
    deadline = time.monotonic() + READY_BOUND
    while not (os.path.exists(partial) and os.path.getsize(partial) > 0):
        assert process.poll() is None, 'the export ended (rc %s) before it reached the blocked package' % process.returncode
        assert time.monotonic() < deadline, 'the export did not reach the blocked package within %d s' % READY_BOUND
        time.sleep(0.02)


@pytest.fixture
def saveable(repo, keyring, build_pkg, register):
    register('mgr-a', [{'name': 'a1', 'model': 'R120h-1M', 'os': 'linux'}])
    paths = [
        build_pkg(package_id='BIOS-%s' % version, version=version, payload={'install.sh': b'#!/bin/sh\n', 'fw.bin': os.urandom(256 * 1024)})
        for version in ('1.0', '1.2')
    ]
    results = repo.add_files(paths, keyring)
    assert [result['result'] for result in results] == ['added', 'added'], results
    return repo


def last_events(repo, count):
    return repo.listing('mgr-a', event_limit=count)['events']


def test_export_interrupted_leaves_no_partial_archive_and_logs_archive_cancelled(saveable, tmp_path, snapshot):
    before = snapshot(saveable)
    events_before = len(saveable.listing('mgr-a', event_limit=1000)['events'])
    with export_blocked_on_fifo(saveable, tmp_path, ['BIOS-1.0', 'BIOS-1.2'], 'BIOS-1.2') as (process, dest):
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=EXIT_BOUND) == 130
    assert not os.path.exists(dest) and not os.path.exists(dest + '.tmp')
    assert os.listdir(os.path.dirname(dest)) == []
    assert snapshot(saveable) == before
    logged = saveable.listing('mgr-a', event_limit=1000)['events']
    assert len(logged) == events_before + 1
    assert (logged[0]['code'], logged[0]['level'], logged[0]['message']) == ('archive_cancelled', 'normal', 'Saving the update package archive cancelled.')
    assert logged[0]['detail'] == {'path': dest}


def test_export_interrupted_when_the_partial_archive_cannot_be_removed_logs_archive_cancel_failed(saveable, tmp_path, snapshot):
    before = snapshot(saveable)
    with export_blocked_on_fifo(saveable, tmp_path, ['BIOS-1.0', 'BIOS-1.2'], 'BIOS-1.2') as (process, dest):
        # the partial archive's name now holds a folder with a file in it: unlink fails, even for root
        os.unlink(dest + '.tmp')
        os.makedirs(dest + '.tmp')
        open(os.path.join(dest + '.tmp', 'keep'), 'w').close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=EXIT_BOUND) == 130
    assert not os.path.exists(dest)
    assert snapshot(saveable) == before
    event = last_events(saveable, 1)[0]
    assert (event['code'], event['level']) == ('archive_cancel_failed', 'error')
    assert event['message'].startswith('Cancelling the save of the update package archive failed. (') and event['detail'] == {'path': dest}


def test_export_failing_midway_leaves_no_partial_archive(saveable, tmp_path, snapshot):
    before = snapshot(saveable)
    pool = stored_pool_paths(saveable)['BIOS-1.2']
    saved = str(tmp_path / 'saved-pool-file')
    shutil.copy2(pool, saved)
    os.unlink(pool)
    os.symlink(pool + '.gone', pool)  # a lost pool file: reading it fails after the first package was written
    dest = str(tmp_path / 'saved.zip')
    try:
        with pytest.raises(RepositoryError) as caught:
            saveable.export(dest, package_ids=['BIOS-1.0', 'BIOS-1.2'])
    finally:
        os.unlink(pool)
        os.replace(saved, pool)
    assert caught.value.code == 'archive_save_failed' and dest in caught.value.msg
    assert not os.path.exists(dest) and not os.path.exists(dest + '.tmp')
    assert snapshot(saveable) == before
    assert last_events(saveable, 1)[0]['code'] == 'archive_save_failed'


# ----------------------------------------------------------------- version query failed: agent, BMC or both (003 Table 19 rows 1-4)
@pytest.mark.parametrize(
    'error, via, agent_reached, code, via_detail, cause_start',
    [
        ('communication_failed', 'agent', None, 'version_query_failed', 'agent', 'could not connect to the exup agent: '),
        ('bmc_unreachable', 'bmc', True, 'version_query_failed', 'bmc', 'could not connect to the management controller: '),
        ('bmc_unreachable', 'bmc', None, 'version_query_failed', 'bmc', 'could not connect to the management controller: '),
        ('bmc_unreachable', 'bmc', False, 'version_query_failed', 'both', 'could not connect to the exup agent nor to the management controller: '),
        ('bmc_auth_failed', 'bmc', False, 'versions_query_failed', None, 'no route'),
        ('os_error', 'agent', None, 'versions_query_failed', None, 'no route'),
    ],
)
def test_version_query_failure_says_which_path_could_not_be_reached(error, via, agent_reached, code, via_detail, cause_start):
    got_code, cause, detail = events.version_query_failure(error, 'no route', via, agent_reached)
    assert got_code == code and cause.startswith(cause_start) and cause.endswith('no route')
    assert detail == ({'error': error, 'via': via_detail} if via_detail else {'error': error})
    item = events.event(got_code, cause, **detail)
    assert item['level'] == 'error' and item['message'] == '%s (%s)' % (events.EVENTS[code][1], cause)


def test_reboot_failure_only_when_the_boot_is_the_same():
    assert events.reboot_failure('boot-1', 'boot-2') is None
    assert events.reboot_failure(None, 'boot-1') is None and events.reboot_failure('', '') is None
    code, cause, detail = events.reboot_failure('boot-1', 'boot-1')
    assert code == 'reboot_failed' and 'boot-1' in cause and detail == {'boot_id': 'boot-1', 'via': 'agent'}
