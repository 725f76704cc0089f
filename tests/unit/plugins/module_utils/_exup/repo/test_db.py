# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data layer (db.py): the one transaction manager and the typed queries, on an in-memory index."""

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import CatalogEntry
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import RepositoryError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index, RebootRow, ServerRow, connect
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, Refusal, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

T = '2025-01-01T00:00:00Z'


@pytest.fixture
def index():
    opened = Index(connect(':memory:'))
    opened.create_schema()
    yield opened
    opened.close()


def test_transaction_commits(index):
    with index.transaction():
        index.touch_manager('mgr-a', T)
    assert not index.conn.in_transaction
    assert [m.manager_id for m in index.managers()] == ['mgr-a']


def test_transaction_rolls_back_when_the_block_fails(index):
    with pytest.raises(KeyboardInterrupt), index.transaction():
        index.touch_manager('mgr-a', T)
        index.add_event(T, 'normal', 'manager_registered', 'm', {})
        raise KeyboardInterrupt
    assert not index.conn.in_transaction
    assert index.managers() == [] and index.recent_events(10) == []


class CommitFails:
    """A connection whose next COMMIT fails as a full disk would make it fail."""

    def __init__(self, conn):
        self.conn = conn
        self.failures = 1

    def execute(self, sql, args=()):
        if sql == 'COMMIT' and self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError('database or disk is full')
        return self.conn.execute(sql, args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_failed_commit_rolls_back_and_the_next_transaction_works(index):
    failing = Index(CommitFails(index.conn))
    with pytest.raises(sqlite3.OperationalError, match='disk is full'), failing.transaction():
        failing.touch_manager('mgr-a', T)
    assert not index.conn.in_transaction
    assert index.managers() == []
    with failing.transaction():
        failing.touch_manager('mgr-b', T)
    assert [m.manager_id for m in index.managers()] == ['mgr-b']


def test_transactions_do_not_nest(index):
    """What follows a commit (a file unlinked once its row is gone) must follow the real one."""
    with index.transaction(), pytest.raises(sqlite3.OperationalError), index.transaction():
        pass


def test_tombstone_round_trip_keeps_the_stored_form(index):
    tombstone = Tombstone('P-1', 'system-bios', '1.0', 'a' * 64, T, 'mgr-a', True, ('R120h-1M',), ('linux', 'any'))
    index.put_tombstone(tombstone)
    assert index.tombstones() == {'P-1': tombstone}
    [record] = index.tombstone_records()
    assert record == dict(tombstone.as_record()) and record['models'] == '["R120h-1M"]' and record['forced'] == 1
    index.restore_tombstones([dict(record, deleted_by='someone-else')])  # a recovery record never replaces what the index has
    assert index.tombstones()['P-1'].deleted_by == 'mgr-a'
    index.clear_tombstones()
    assert index.tombstones() == {}


def test_refusals_bmc_records_reboots_and_icons(index):
    index.put_refusal(Refusal('P-2', 'b' * 64, 'bad_signature', 'bad', T))
    index.put_refusal(Refusal('P-1', 'a' * 64, 'catalog_mismatch', 'other', T))
    assert [r.package_id for r in index.refusals()] == ['P-1', 'P-2']
    index.delete_refusals(['P-1'])
    assert [r.package_id for r in index.refusals()] == ['P-2']
    index.put_bmc_module('mgr-a', 's1', BmcModuleRecord('bmc-firmware', previous='1.0', staged='2.0', since=T))
    assert index.bmc_modules('mgr-a', 's1') == {'bmc-firmware': BmcModuleRecord('bmc-firmware', '1.0', None, '2.0', T)}
    index.put_reboot('mgr-a', 's1', RebootRow('boot-1', ['sdr', 'bmc-firmware'], T, T))
    assert index.reboot('mgr-a', 's1') == RebootRow('boot-1', ['bmc-firmware', 'sdr'], T, T)
    assert index.reboot('mgr-a', 'other') is None
    index.put_icon('mgr-a', 's1', 'sdr', 'latest', T)
    assert index.chosen_icons('mgr-a', 's1') == {'sdr': ('latest', T)}


def test_servers_compare_in_their_stored_form(index):
    server = Server('mgr-a', 's1', 'R120h-1M', 'linux', {'sdr': {'current': '1'}})
    row = ServerRow.of('mgr-a', server)
    assert row == ('mgr-a', 's1', 'R120h-1M', 'linux', '{"sdr": {"current": "1"}}')
    assert index.server_row('mgr-a', 's1') is None
    index.put_server(row)
    assert index.server_row('mgr-a', 's1') == row and index.server_rows('mgr-a') == [row]
    assert index.servers() == [server]
    assert index.delete_server('mgr-a', 's1') is True and index.delete_server('mgr-a', 's1') is False


def test_tables_an_older_store_lacks_read_as_empty(index):
    for table in ('settings', 'manual_icons', 'reboots'):
        index.conn.execute('DROP TABLE %s' % table)
    assert index.setting_changes() == [] and index.chosen_icons('m', 's') == {} and index.reboot('m', 's') is None


def test_job_outcome_logged_ignores_starts(index):
    index.add_event(T, 'normal', 'apply_started', 'm', {'job_id': 'j-1'})
    assert not index.job_outcome_logged('j-1')
    index.add_event(T, 'normal', 'apply_finished', 'm', {'job_id': 'j-1'})
    assert index.job_outcome_logged('j-1') and not index.job_outcome_logged('j-2')
    assert [e['code'] for e in index.recent_events(1)] == ['apply_finished'] and index.recent_events(1)[0]['detail'] == {'job_id': 'j-1'}


def test_a_job_id_with_like_wildcards_matches_only_itself(index):
    index.add_event(T, 'normal', 'apply_finished', 'm', {'job_id': 'jobX1'})
    assert not index.job_outcome_logged('job_1') and not index.job_outcome_logged('job%')  # _ and % are the id's own characters
    index.add_event(T, 'normal', 'apply_finished', 'm', {'job_id': 'job_1'})
    assert index.job_outcome_logged('job_1')


def test_store_version_and_marks(index):
    assert index.store_version() == 1  # no record: format 1
    index.set_store_version(2)
    assert index.store_version() == 2
    assert index.rebuild_needed() is None
    index.mark_rebuild_needed(T)
    assert index.rebuild_needed() == T
    index.clear_rebuild_needed()
    assert index.rebuild_needed() is None


# --- a damaged row: store_damaged naming the table and the row, never a traceback (issue 9 review F3)
HOSTILE_ROWS = {
    'packages bad JSON': (
        "INSERT INTO packages VALUES ('P-1', 's', 1, 'm', '1', '{not json', 'k', 'feed', 0, 1, '%s')" % T,
        lambda index: index.packages(),
        ('packages', "'P-1'"),
    ),
    'packages no fields': (
        "INSERT INTO packages VALUES ('P-1', 's', 1, 'm', '1', '{}', 'k', 'feed', 0, 1, '%s')" % T,
        lambda index: index.packages(),
        ('packages', "'P-1'"),
    ),
    'tombstones': (
        "INSERT INTO tombstones VALUES ('P-1', 'm', '1', 's', '%s', 'mgr-a', 0, '{not json', '[]')" % T,
        lambda index: index.tombstones(),
        ('tombstones', "'P-1'"),
    ),
    'feed_entries bad JSON': (
        "INSERT INTO feed_entries VALUES ('P-1', '{not json', '%s')" % T,
        lambda index: index.feed_entries(),
        ('feed_entries', "'P-1'"),
    ),
    'feed_entries no fields': (
        "INSERT INTO feed_entries VALUES ('P-1', '{}', '%s')" % T,
        lambda index: index.feed_entries(),
        ('feed_entries', "'P-1'"),
    ),
    'servers': (
        "INSERT INTO servers VALUES ('mgr-a', 's1', 'R120h-1M', 'linux', '{not json')",
        lambda index: index.servers(),
        ('servers', "('mgr-a', 's1')"),
    ),
    'reboots': (
        "INSERT INTO reboots VALUES ('mgr-a', 's1', NULL, '{not json', '%s', '%s')" % (T, T),
        lambda index: index.reboot('mgr-a', 's1'),
        ('reboots', "('mgr-a', 's1')"),
    ),
    'events': (
        "INSERT INTO events (id, time, level, code, message, detail) VALUES (7, '%s', 'normal', 'c', 'm', '{not json')" % T,
        lambda index: index.recent_events(10),
        ('events', '7'),
    ),
}


@pytest.mark.parametrize('case', sorted(HOSTILE_ROWS))
def test_a_row_that_does_not_decode_is_store_damaged(index, case):
    insert, read, (table, key) = HOSTILE_ROWS[case]
    index.execute(insert)
    before = index.execute('SELECT * FROM %s' % table).fetchall()
    with pytest.raises(RepositoryError) as caught:
        read(index)
    assert caught.value.code == 'store_damaged'
    assert 'row %s of table %s' % (key, table) in caught.value.msg and 'exup_package state=rebuilt' in caught.value.msg
    assert caught.value.details['table'] == table
    with pytest.raises(RepositoryError, match='table %s' % table):
        index.check_rows()  # what a rebuild looks at
    assert [tuple(row) for row in index.execute('SELECT * FROM %s' % table)] == [tuple(row) for row in before]  # nothing changed


def test_good_rows_pass_the_row_check(index):
    index.save_feed_entries([CatalogEntry('P-1', 'm', 'M', '1', '2025-01-01', T, ('R120h-1M',), ('linux',), 'linux', True, 1, 's', 'u')], replace=False)
    index.put_reboot('mgr-a', 's1', RebootRow(None, ['sdr'], T, T))
    index.add_event(T, 'normal', 'c', 'm', {})
    index.check_rows()
    assert list(index.feed_entries()) == ['P-1']


def test_feed_entries_read_back_hold_repeated_values_once(index):
    models = ('R120h-1M', 'R110h-1M')
    rows = [CatalogEntry('P-%d' % n, 'm', 'M', str(n), '2025-01-01', T, models, ('linux',), 'linux', True, 1, '%064d' % n, 'u') for n in (1, 2)]
    index.save_feed_entries(rows, replace=False)
    feed = index.feed_entries()
    assert [feed['P-1'], feed['P-2']] == rows
    assert feed['P-1'].models is feed['P-2'].models and feed['P-1'].module_id is feed['P-2'].module_id


def test_tables_added_later_read_as_empty_when_missing(index):
    """refusals and bmc_modules as well as the three above (db.py's docstring)."""
    for table in ('refusals', 'bmc_modules'):
        index.conn.execute('DROP TABLE %s' % table)
    assert index.refusals() == [] and index.bmc_modules('m', 's') == {}


def test_recent_events_of_one_server_are_exactly_its_own_newest_first(index):
    index.add_event(T, 'normal', 'apply_started', 'm', {'server': 'web1'})
    index.add_event(T, 'normal', 'apply_started', 'm', {'server': 'web10'})  # a longer name is another server
    index.add_event(T, 'normal', 'apply_started', 'm', {'server': 'WEB1'})  # LIKE ignores case; the name does not
    index.add_event(T, 'normal', 'apply_started', 'm', {'other': {'server': 'web1'}})  # a nested key is not the event's server
    index.add_event(T, 'normal', 'apply_finished', 'm', {'server': 'web1', 'job_id': 'j'})
    index.add_event(T, 'normal', 'apply_started', 'm', {'server': 'we%_\\"1'})  # LIKE's wildcards, a backslash and a quote are text
    index.add_event(T, 'normal', 'apply_started', 'm', {'server': 'wexy\\"1'})
    assert [(e['code'], e['detail']) for e in index.recent_events(10, 'web1')] == [
        ('apply_finished', {'server': 'web1', 'job_id': 'j'}),
        ('apply_started', {'server': 'web1'}),
    ]
    assert [e['code'] for e in index.recent_events(1, 'web1')] == ['apply_finished']
    assert [e['detail'] for e in index.recent_events(10, 'we%_\\"1')] == [{'server': 'we%_\\"1'}]
    assert index.recent_events(0, 'web1') == [] and index.recent_events(10, 'db1') == []
    assert len(index.recent_events(10)) == 7
