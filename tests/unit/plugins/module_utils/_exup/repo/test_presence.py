# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Presence reports (003 §2.2.8): the servers a manager announces, its window, and a report that names a server twice."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import PRESENCE_LIFETIME, Repository, server_from_dict

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def at(root, days: float) -> Repository:
    return Repository(str(root), clock=lambda: NOW + datetime.timedelta(days=days))


def server(name: str, manager_id: str = 'site-a'):
    return server_from_dict(manager_id, {'name': name, 'model': 'M1', 'os': 'rhel9'})


def test_a_report_naming_a_server_twice_is_refused_and_records_nothing(tmp_path):
    repo = at(tmp_path, 0)
    repo.announce('site-a', [server('db1')])
    with pytest.raises(ExupError) as refused:
        repo.announce('site-a', [server('db1'), server('web1'), server('db1')])
    assert refused.value.code == 'server_invalid' and refused.value.msg == 'servers names a server more than once: db1'
    with repo.read() as index:
        assert [row.name for row in index.server_rows('site-a')] == ['db1']


def test_presence_within_the_window_keeps_a_manager_and_none_forgets_it(tmp_path):
    at(tmp_path, 0).announce('site-a', [server('db1')])
    days = PRESENCE_LIFETIME.days
    at(tmp_path, days - 1).note_presence('site-a')
    assert at(tmp_path, days + 1).announce('site-b') == []  # its last presence is a day old
    assert at(tmp_path, 2 * days).announce('site-b') == ['site-a']  # two months and a day after it
    with Repository(str(tmp_path)).read() as index:
        assert index.server_rows('site-a') == []
