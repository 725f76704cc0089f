# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet as inventory hosts (issue 12): names, variables, groups, statuses as exup_info's rules give them."""

from __future__ import annotations

import json

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import inventory
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server

MODEL = 'R120h-1M'
ADDED = '2026-01-01T00:00:00Z'


def info(module, version, auto=True, models=(MODEL,), os_names=('rhel9',)):
    return PackageInfo(
        package_id='%s-%s' % (module, version),
        module_id=module,
        module_name=module,
        version=version,
        release_date='2024-01-01',
        models=list(models),
        os=list(os_names),
        kind='linux',
        auto_update=auto,
        reboot_required=False,
        downgrade_supported=False,
        uninstall_supported=False,
        install_command='sh install.sh',
    )


def hosts(servers, infos=(), bmc=None, icons=None, initial=(('', 'update_available'),), **kwargs):
    added = {item.package_id: ADDED for item in infos}
    return {host.name: host for host in inventory.fleet_hosts(servers, list(infos), added, bmc or {}, icons or {}, list(initial), **kwargs)}


def test_statuses_versions_and_groups_of_one_server():
    server = Server('local', 'web-1', MODEL, 'rhel9', {'system-bios': {'current': '1.0', 'previous': '0.9'}, 'sdr': {'current': '1'}})
    found = hosts([server], [info('system-bios', '2.0'), info('system-bios', '1.0')])['web-1']
    assert found.variables['exup_server_status'] == 'update_available'
    assert found.variables['exup_module_versions'] == {'sdr': '1', 'system-bios': '1.0'}
    assert found.variables['exup_module_statuses'] == {'sdr': 'no_package', 'system-bios': 'update_available'}
    assert found.variables['exup_modules']['system-bios']['newest'] == '2.0'
    assert found.variables['exup_modules']['system-bios']['previous'] == '0.9'
    assert found.variables['exup_paths'] == ['agent']
    assert found.groups == ('exup_manager_local', 'exup_model_R120h_1M', 'exup_os_rhel9', 'exup_status_update_available')
    json.dumps(found.variables)  # what the inventory cache keeps


def test_a_package_for_another_model_or_os_does_not_count():
    server = Server('local', 'web-1', MODEL, 'rhel9', {'system-bios': {'current': '1.0'}})
    found = hosts([server], [info('system-bios', '2.0', models=('Other',)), info('system-bios', '3.0', os_names=('win2022',))])['web-1']
    assert found.variables['exup_server_status'] == 'latest'
    assert found.variables['exup_module_statuses'] == {'system-bios': 'no_package'}


def test_modules_only_the_repository_has_are_listed_as_available():
    server = Server('local', 'web-1', MODEL, 'rhel9', {})
    assert hosts([server], [info('sdr', '2')])['web-1'].variables['exup_modules_available'] == ['sdr']


def test_a_manual_module_shows_the_chosen_icon_or_the_initial_icon_of_its_arrival():
    server = Server('local', 'web-1', MODEL, 'rhel9', {'sdr': {'current': '1'}})
    manual = [info('sdr', '2', auto=False)]
    initial = [('', 'update_available'), ('2025-06-01T00:00:00Z', 'latest'), ('2026-06-01T00:00:00Z', 'no_package')]
    found = hosts([server], manual, initial=initial)['web-1']
    assert found.variables['exup_modules']['sdr']['status'] == '-'
    assert found.variables['exup_modules']['sdr']['manual_icon'] == 'latest'  # the setting when the package arrived
    chosen = {('local', 'web-1'): {'sdr': ('no_package', '2026-02-01T00:00:00Z')}}
    assert hosts([server], manual, icons=chosen, initial=initial)['web-1'].variables['exup_modules']['sdr']['manual_icon'] == 'no_package'
    stale = {('local', 'web-1'): {'sdr': ('no_package', '2025-01-01T00:00:00Z')}}  # chosen before the package arrived
    assert hosts([server], manual, icons=stale, initial=initial)['web-1'].variables['exup_modules']['sdr']['manual_icon'] == 'latest'


def test_a_bmc_block_holds_until_the_staged_version_runs():
    record = BmcModuleRecord('bmc-firmware', previous='2.0', block='reboot_required', staged='3.0', since=ADDED)
    waiting = Server('local', 'n1', MODEL, 'rhel9', {'bmc-firmware': {'current': '2.0'}})
    done = Server('local', 'n2', MODEL, 'rhel9', {'bmc-firmware': {'current': '3.0'}})
    bmc = {('local', 'n1'): {'bmc-firmware': record}, ('local', 'n2'): {'bmc-firmware': record}}
    found = hosts([waiting, done], [info('bmc-firmware', '3.0')], bmc=bmc)
    assert found['n1'].variables['exup_server_status'] == 'reboot_required'
    assert found['n1'].variables['exup_modules']['bmc-firmware']['block'] == 'reboot_required'
    assert found['n1'].variables['exup_paths'] == ['agent', 'bmc']
    assert found['n2'].variables['exup_server_status'] == 'latest'
    assert found['n2'].variables['exup_modules']['bmc-firmware']['previous'] == '2.0'


def test_one_name_under_two_managers_is_named_with_its_manager():
    servers = [Server('a', 'web-1', MODEL, 'rhel9'), Server('b', 'web-1', MODEL, 'rhel9'), Server('b', 'db-1', MODEL, 'rhel9')]
    assert sorted(hosts(servers)) == ['db-1', 'web-1@a', 'web-1@b']
    assert hosts(servers)['web-1@a'].variables['exup_server_name'] == 'web-1'


@pytest.mark.parametrize(('text', 'safe'), [('R120h-1M', 'R120h_1M'), ('Express5800/T110z 1M', 'Express5800_T110z_1M'), ('ü', '_'), ('', '_'), ('a.b', 'a_b')])
def test_group_names_keep_letters_digits_and_underscores_only(text, safe):
    assert inventory.safe_group_name(text) == safe


def test_the_group_prefix_is_an_option_and_host_variables_keep_exup():
    found = hosts([Server('local', 'web-1', MODEL, 'rhel9')], group_prefix='fleet_')['web-1']
    assert found.groups == ('fleet_manager_local', 'fleet_model_R120h_1M', 'fleet_os_rhel9', 'fleet_status_latest')
    assert all(name.startswith('exup_') for name in found.variables)


def test_initial_icon_at_takes_the_last_change_not_after_the_moment():
    history = [('', 'update_available'), ('2026-01-01T00:00:00Z', 'latest')]
    assert inventory.initial_icon_at(history, '2025-12-31T23:59:59Z') == 'update_available'
    assert inventory.initial_icon_at(history, '2026-01-01T00:00:00Z') == 'latest'
    assert inventory.initial_icon_at([], ADDED) is None


def test_packages_are_chosen_once_per_model_and_os(monkeypatch):
    calls = []
    original = PackageInfo.targets

    def counted(self, model, os_name):
        calls.append((model, os_name))
        return original(self, model, os_name)

    monkeypatch.setattr(PackageInfo, 'targets', counted)
    servers = [Server('local', 'web-%d' % number, MODEL, 'rhel9', {'system-bios': {'current': '1.0'}}) for number in range(50)]
    hosts(servers, [info('system-bios', '2.0'), info('sdr', '1')])
    assert len(calls) == 2  # two packages, one model and OS: not 2 x 50
