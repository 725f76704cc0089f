# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The application log of 003 §2.4: error events carry their cause in parentheses (Table 19)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import events
from ansible_collections.exup.fleet.plugins.module_utils._exup.store import SCHEMA


def test_cause_in_parentheses():
    item = events.event('package_refused', 'catalog.json: digest mismatch', package_id='P1', error='digest_mismatch')
    assert item == {'level': 'error', 'code': 'package_refused', 'message': 'Update package refused. (catalog.json: digest mismatch)',
                    'detail': {'package_id': 'P1', 'error': 'digest_mismatch'}}


def test_no_cause_no_parentheses():
    item = events.event('repository_update_finished', added=2)
    assert item['message'] == 'Repository update finished.' and item['level'] == 'normal' and item['detail'] == {'added': 2}


def test_every_event_has_a_level_and_a_sentence():
    for code, (level, message) in events.EVENTS.items():
        assert level in (events.NORMAL, events.ERROR), code
        assert message.endswith('.') and '(' not in message, code
    assert {code for code, (level, _message) in events.EVENTS.items() if level == events.ERROR} >= {
        'repository_update_failed', 'package_refused', 'package_add_failed', 'package_delete_failed'}


def test_unknown_code_is_a_programming_error():
    with pytest.raises(KeyError):
        events.event('no_such_event')


def test_record_writes_the_event_row():
    conn = sqlite3.connect(':memory:')
    conn.executescript(SCHEMA)
    item = events.record(conn, '2025-01-01T00:00:00Z', events.event('package_add_failed', 'not a zip', file='x.zip'))
    assert item['time'] == '2025-01-01T00:00:00Z'
    row = conn.execute('SELECT time, level, code, message, detail FROM events').fetchone()
    assert row[:4] == ('2025-01-01T00:00:00Z', 'error', 'package_add_failed', 'Adding the update package failed. (not a zip)')
    assert json.loads(row[4]) == {'file': 'x.zip'}
