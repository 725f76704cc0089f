# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin exup.fleet.exup (issue 12): a thin face over rules/inventory.py, loaded as Ansible loads it."""

from __future__ import annotations

import json
import socket
import time

import pytest
from ansible.errors import AnsibleParserError

from ansible_collections.exup.fleet.plugins.inventory import exup as plugin_module
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import FleetPage
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

DEFAULTS: dict[str, object] = {
    'repository_user': 'read',
    'repository_password': None,
    'repository_ca_path': None,
    'repository_validate_certs': True,
    'repository_timeout': 30,
    'timeout': 300,
    'page_size': 5000,
    'managers': [],
    'group_prefix': 'exup_',
}


def plugin_with(**given):
    """The plugin with these options (parse, compose, groups and the cache run through ansible-inventory in the system test)."""
    plugin = plugin_module.InventoryModule()
    values = dict(DEFAULTS, **given)
    plugin.get_option = values.__getitem__
    return plugin


@pytest.fixture
def repo(tmp_path):
    repository = Repository(str(tmp_path / 'repo'))
    repository.record_server('local', Server('local', 'web-1', 'R120h-1M', 'rhel9', {'system-bios': {'current': '1.0'}}))
    repository.record_server('site-b', Server('site-b', 'db-1', 'T110j', 'win2022', {}))
    return repository


@pytest.mark.parametrize(('name', 'taken'), [('fleet.exup.yml', True), ('exup.yaml', True), ('fleet.yml', False), ('exup.yml.bak', False)])
def test_verify_file_takes_only_names_ending_in_exup_yml(tmp_path, name, taken):
    path = tmp_path / name
    path.write_text('plugin: exup.fleet.exup\nrepository: x\n')
    assert plugin_module.InventoryModule().verify_file(str(path)) is taken


def test_verify_file_refuses_a_missing_file(tmp_path):
    assert plugin_module.InventoryModule().verify_file(str(tmp_path / 'fleet.exup.yml')) is False


def test_hosts_groups_and_variables_of_a_local_repository(repo):
    hosts = {host['name']: host for host in plugin_with(repository=repo.store.root)._listing()}
    assert sorted(hosts) == ['db-1', 'web-1']
    assert hosts['web-1']['groups'] == ['exup_manager_local', 'exup_model_R120h_1M', 'exup_os_rhel9', 'exup_status_latest']
    web = hosts['web-1']['vars']
    assert web['exup_model'] == 'R120h-1M' and web['exup_module_versions'] == {'system-bios': '1.0'} and web['exup_manager_id'] == 'local'
    json.dumps(hosts)  # what the inventory cache keeps


def test_managers_and_group_prefix(repo):
    hosts = plugin_with(repository=repo.store.root, managers=['site-b'], group_prefix='fleet_')._listing()
    assert [(host['name'], host['groups'][0]) for host in hosts] == [('db-1', 'fleet_manager_site_b')]


@pytest.mark.parametrize(
    ('settings', 'code'),
    [
        ({'repository': '/nonexistent/exup-repo'}, 'repository_missing'),
        ({'repository': 'https://user:pw@127.0.0.1:9/', 'repository_password': 'x'}, 'argument_invalid'),
        ({'repository': 'https://127.0.0.1:9/'}, 'argument_invalid'),  # no password
        ({'repository': 'http://127.0.0.1:9/', 'repository_password': 'x', 'repository_timeout': 0}, 'argument_invalid'),
        ({'repository': ''}, 'argument_invalid'),
        ({'repository': 'http://127.0.0.1:PORT/', 'repository_password': 'x', 'repository_timeout': 2}, 'repository_unreachable'),
        ({'repository': '/tmp', 'timeout': -1}, 'argument_invalid'),
        ({'repository': 'REPO', 'page_size': 0}, 'argument_invalid'),
    ],
)
def test_a_bad_repository_is_one_clear_error_with_its_code(repo, settings, code):
    with socket.socket() as closed:
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]
    given = {key: value.replace('PORT', str(port)).replace('REPO', repo.store.root) if isinstance(value, str) else value for key, value in settings.items()}
    with pytest.raises(AnsibleParserError) as caught:
        plugin_with(**given)._listing()
    assert str(caught.value).startswith('exup.fleet.exup: ')
    assert str(caught.value).endswith('[error %s]' % code)
    assert 'Traceback' not in str(caught.value) and ':pw@' not in str(caught.value)


def test_a_damaged_index_is_an_error_not_a_traceback(tmp_path):
    store = tmp_path / 'repo'
    store.mkdir()
    (store / 'repo.db').write_bytes(b'not a database' * 100)
    with pytest.raises(AnsibleParserError) as caught:
        plugin_with(repository=str(store))._listing()
    assert '[error store_damaged]' in str(caught.value) or '[error repository_' in str(caught.value)


def test_a_listing_past_its_timeout_fails_and_does_not_hang(repo, monkeypatch):
    monkeypatch.setattr(plugin_module, 'list_hosts', lambda options: time.sleep(30))
    started = time.monotonic()
    with pytest.raises(AnsibleParserError, match=r'\[error inventory_timeout\]'):
        plugin_with(repository=repo.store.root, timeout=0.5)._listing()
    assert time.monotonic() - started < 5


def test_a_bug_below_is_one_line_too(repo, monkeypatch):
    monkeypatch.setattr(plugin_module, 'list_hosts', lambda options: {}['missing'])
    with pytest.raises(AnsibleParserError, match=r"KeyError: 'missing' \[error inventory_failed\]$"):
        plugin_with(repository=repo.store.root)._listing()


class Paging:
    """A repository whose pages are given (a service's answers)."""

    base_url = 'https://repo.example:8080'

    def __init__(self, pages):
        self.pages, self.asked = list(pages), []

    def packages(self):
        return []

    def fleet(self, after=None, limit=None):
        self.asked.append((after, limit))
        return self.pages.pop(0)


def page(names, after):
    return FleetPage([Server('m', name, 'X', 'rhel9') for name in names], {}, {}, [('', 'update_available')], after)


def options(**more):
    return dict({'repository': Paging.base_url, 'managers': [], 'page_size': 2, 'group_prefix': 'exup_'}, **more)


def test_pages_are_asked_after_the_last_server_until_there_is_no_next(monkeypatch):
    fake = Paging([page(['a', 'b'], ('m', 'b')), page(['c'], None)])
    monkeypatch.setattr(plugin_module, 'open_repository', lambda given: fake)
    assert [host['name'] for host in plugin_module.list_hosts(options())] == ['a', 'b', 'c']
    assert fake.asked == [(None, 2), (('m', 'b'), 2)]


def test_a_page_that_does_not_advance_is_service_answer_invalid(monkeypatch):
    fake = Paging([page(['a', 'b'], ('m', 'b')), page(['a', 'b'], ('m', 'b'))])
    monkeypatch.setattr(plugin_module, 'open_repository', lambda given: fake)
    with pytest.raises(plugin_module.ExupError) as caught:
        plugin_module.list_hosts(options())
    assert caught.value.code == 'service_answer_invalid'
