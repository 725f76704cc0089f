# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository.fleet (issue 12): the registered servers a page at a time, with their BMC records, icons and the initial icon's history."""

from __future__ import annotations

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server


def filled(tmp_path):
    repo = Repository(str(tmp_path / 'repo'))
    for manager, name in [('b', 's1'), ('a', 's2'), ('a', 's1'), ('b', 's0')]:
        repo.record_server(manager, Server(manager, name, 'M', 'rhel9', {'system-bios': {'current': '1'}}))
    repo.set_bmc_module('a', 's2', 'bmc-firmware', block='reboot_required', staged='3')
    repo.set_manual_icons('b', 's0', ['sdr'], 'latest')
    repo.change_settings({'initial_manual_icon': 'no_package'})
    return repo


def test_one_read_gives_every_server_in_order_with_its_records(tmp_path):
    page = filled(tmp_path).fleet()
    assert [(server.manager_id, server.name) for server in page.servers] == [('a', 's1'), ('a', 's2'), ('b', 's0'), ('b', 's1')]
    assert page.next is None
    assert page.bmc[('a', 's2')]['bmc-firmware'].staged == '3'
    assert page.icons[('b', 's0')]['sdr'][0] == 'latest'
    assert page.initial_icons[0] == ('', 'update_available') and page.initial_icons[-1][1] == 'no_package'


def test_pages_follow_each_other_and_carry_only_their_servers_records(tmp_path):
    repo = filled(tmp_path)
    first = repo.fleet(limit=2)
    assert [server.name for server in first.servers] == ['s1', 's2'] and first.next == ('a', 's2')
    assert set(first.bmc) == {('a', 's2')} and first.icons == {}
    second = repo.fleet(first.next, 2)
    assert [(server.manager_id, server.name) for server in second.servers] == [('b', 's0'), ('b', 's1')]
    assert set(second.icons) == {('b', 's0')} and second.bmc == {}
    assert second.next == ('b', 's1')  # a full page: one more (empty) page ends the listing
    assert repo.fleet(second.next, 2).servers == [] and repo.fleet(second.next, 2).next is None


def test_a_store_not_made_yet_lists_nothing(tmp_path):
    page = Repository(str(tmp_path / 'none')).fleet()
    assert page.servers == [] and page.next is None
