# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a server's versions were last read (issue 13.1): the readings table, Repository.record_server / fleet, the
inventory's exup_read_at and the compliance rule over a stored time (a hostile one included)."""

from __future__ import annotations

import datetime
import sqlite3

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.db import Index, ServerRow, connect
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import STORE_VERSION
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import baseline, inventory
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

T1, T2 = '2026-12-04T05:00:00Z', '2026-12-04T06:00:00Z'
BIOS = {'system-bios': {'current': '1.0'}}


def server(name, manager='local', modules=None):
    return Server(manager, name, 'R120h-1M', 'rhel9', dict(BIOS if modules is None else modules))


class Clock:
    def __init__(self, text):
        self.now = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))

    def __call__(self):
        return self.now


@pytest.fixture
def index():
    opened = Index(connect(':memory:'))
    opened.create_schema()
    yield opened
    opened.close()


# ----------------------------------------------------------------- the data layer
def test_a_reading_is_kept_per_server_and_read_in_a_span(index):
    index.put_reading('a', 's1', T1)
    index.put_reading('a', 's2', T1)
    index.put_reading('b', 's1', T2)
    index.put_reading('a', 's1', T2)  # the last reading replaces the one before
    assert index.reading_span() == {('a', 's1'): T2, ('a', 's2'): T1, ('b', 's1'): T2}
    assert index.reading_span(('a', 's2'), ('b', 's1')) == {('a', 's2'): T1, ('b', 's1'): T2}


def test_forgetting_a_server_or_a_manager_forgets_its_reading(index):
    for name in ('s1', 's2'):
        index.put_server(ServerRow.of('a', server(name, 'a')))
        index.put_reading('a', name, T1)
    index.put_server(ServerRow.of('b', server('s1', 'b')))
    index.put_reading('b', 's1', T1)
    assert index.delete_server('a', 's1') is True
    assert set(index.reading_span()) == {('a', 's2'), ('b', 's1')}
    index.forget_manager('b')
    assert set(index.reading_span()) == {('a', 's2')}


def test_servers_declared_again_keep_the_reading_only_where_their_record_is_unchanged(index):
    rows = [ServerRow.of('a', server(name, 'a')) for name in ('s1', 's2', 's3')]
    index.replace_servers('a', rows)
    for name in ('s1', 's2', 's3'):
        index.put_reading('a', name, T1)
    changed = ServerRow.of('a', server('s2', 'a', {'system-bios': {'current': '9.9'}}))
    index.replace_servers('a', [rows[0], changed])  # s2 declared with other versions, s3 gone
    assert index.reading_span() == {('a', 's1'): T1}


def test_a_store_of_older_code_has_no_readings_table_and_reads_none(index):
    index.conn.execute('DROP TABLE readings')
    assert index.reading_span() == {}
    index.put_server(ServerRow.of('a', server('s1', 'a')))
    assert index.delete_server('a', 's1') is True  # no table to clean: no error
    index.forget_manager('a')
    index.replace_servers('a', [ServerRow.of('a', server('s1', 'a'))])


def test_a_stored_value_that_is_not_text_is_no_reading(index):
    index.conn.execute("INSERT INTO readings VALUES ('a', 's1', 7), ('a', 's2', x'00ff'), ('a', 's3', 'not a time')")
    # a number becomes text (the column's affinity), a blob is no reading; texts are kept as they are: the compliance rule judges them
    assert index.reading_span() == {('a', 's1'): '7', ('a', 's3'): 'not a time'}


# ----------------------------------------------------------------- the repository
def test_each_registration_records_the_reading_time_even_when_nothing_changed(tmp_path):
    clock = Clock(T1)
    repo = Repository(str(tmp_path / 'repo'), clock=clock)
    assert repo.record_server('local', server('web-1')) is True
    assert repo.fleet().read_at == {('local', 'web-1'): T1}
    with repo.read() as index:
        generation = index.data_generation()
    clock.now += datetime.timedelta(hours=1)
    assert repo.record_server('local', server('web-1')) is False  # the same versions: no change of the record
    assert repo.fleet().read_at == {('local', 'web-1'): T2}
    with repo.read() as index:
        assert index.data_generation() == generation  # a reading alone bumps no sync fingerprint
        assert [row['code'] for row in index.conn.execute('SELECT code FROM events')] == ['server_registered']
    assert repo.forget_server('local', 'web-1') is True
    assert repo.fleet().read_at == {}


def test_a_declared_server_has_no_reading_time_and_pages_carry_their_own(tmp_path):
    repo = Repository(str(tmp_path / 'repo'), clock=Clock(T1))
    repo.announce('other', [server('declared', 'other')])  # exup_repo_sync servers / a remote manager's presence: not read
    for name in ('s1', 's2', 's3'):
        repo.record_server('local', server(name))
    assert repo.fleet().read_at == {('local', 's1'): T1, ('local', 's2'): T1, ('local', 's3'): T1}
    first = repo.fleet(limit=2)
    assert first.read_at == {('local', 's1'): T1, ('local', 's2'): T1}
    assert repo.fleet(first.next, 2).read_at == {('local', 's3'): T1}


def test_an_old_store_without_the_table_is_read_and_then_given_it_without_a_new_store_version(tmp_path):
    repo = Repository(str(tmp_path / 'repo'), clock=Clock(T1))
    repo.record_server('local', server('web-1'))
    conn = sqlite3.connect(repo.store.db_path)
    conn.execute('DROP TABLE readings')  # as a store written before issue 13
    conn.commit()
    conn.close()
    assert repo.fleet().read_at == {} and [item.name for item in repo.fleet().servers] == ['web-1']
    repo.record_server('local', server('web-1'))  # the first writer creates the table (CREATE TABLE IF NOT EXISTS)
    assert repo.fleet().read_at == {('local', 'web-1'): T1}
    with repo.read() as index:
        assert index.store_version() == STORE_VERSION  # additive: older code still opens this store


# ----------------------------------------------------------------- the rules over a stored time
def test_the_inventory_shows_the_stored_time_and_null_for_a_server_never_read():
    servers = [server('web-1'), server('web-2')]
    hosts = inventory.fleet_hosts(servers, [], {}, {}, {}, [('', 'update_available')], read_at={('local', 'web-1'): T1})
    assert [host.variables['exup_read_at'] for host in hosts] == [T1, None]
    assert inventory.fleet_hosts(servers[:1], [], {}, {}, {}, [('', 'update_available')])[0].variables['exup_read_at'] is None


BASELINE = baseline.combine({'name': 'b', 'max_reading_age_hours': 24, 'modules': {'system-bios': '1.0'}})
NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ('stored', 'verdict', 'reason'),
    [
        ('2026-12-04T05:00:00Z', 'pass', 'compliant'),  # 7 hours old
        ('2026-12-03T05:00:00Z', 'unknown', 'reading_stale'),  # 31 hours old
        (None, 'unknown', 'reading_time_unknown'),  # never read
        ('not a time', 'unknown', 'reading_time_unknown'),
        ('', 'unknown', 'reading_time_unknown'),
        ('2026-12-04T05:00:00', 'unknown', 'reading_time_unknown'),  # no zone
        ('9999-12-31T23:59:59-14:00', 'unknown', 'reading_in_future'),
        ('0001-01-01T00:00:00+14:00', 'unknown', 'reading_stale'),
        ('2026-13-45T99:00:00Z', 'unknown', 'reading_time_unknown'),
        ('x' * 100000, 'unknown', 'reading_time_unknown'),
    ],
)
def test_a_stored_time_decides_staleness_and_a_hostile_one_is_unknown(stored, verdict, reason):
    result = baseline.server_verdict(BASELINE, baseline.Reading(BIOS, stored, 'R120h-1M', 'rhel9'), [], NOW)
    assert (result['verdict'], result['reason_code']) == (verdict, reason)
    assert {row['verdict'] for row in result['modules']} == {verdict}
