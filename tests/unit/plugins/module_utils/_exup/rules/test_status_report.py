# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_info's module rows and server status (issue 9): one function for the agent and the BMC path."""

from __future__ import annotations

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import plan
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.status_report import ServerView, module_row, shown_modules, status_report

MODEL = 'R120h-1M'


def info(module, version, kind='linux', auto=True, schema=1):
    return PackageInfo(
        package_id='%s-%s' % (module, version),
        module_id=module,
        module_name=module,
        version=version,
        release_date='2024-01-01',
        models=[MODEL],
        os=['rhel9'],
        kind=kind,
        auto_update=auto,
        reboot_required=False,
        downgrade_supported=False,
        uninstall_supported=False,
        install_command='sh install.sh',
        schema_version=schema,
    )


def test_a_row_has_the_versions_status_block_and_offered_versions():
    state = plan.ModuleState('system-bios', current='1.0', previous='0.9')
    row = module_row(state, [info('system-bios', '0.9'), info('system-bios', '2.0')], ServerView({}))
    assert {key: row[key] for key in ('name', 'current', 'previous', 'status', 'manual_icon', 'block', 'staged')} == {
        'name': 'System BIOS',
        'current': '1.0',
        'previous': '0.9',
        'status': 'update_available',
        'manual_icon': None,
        'block': None,
        'staged': None,
    }
    assert [(version['version'], version['label']) for version in row['versions']] == [('2.0', '2.0'), ('0.9', '0.9 [*]')]


def test_without_a_repository_every_module_is_no_package():
    state = plan.ModuleState('system-bios', current='1.0')
    assert module_row(state, [], ServerView({}, repository=False))['status'] == 'no_package'


def test_a_manual_module_shows_its_icon():
    state = plan.ModuleState('sdr', current='1.0')
    row = module_row(state, [info('sdr', '2.0', auto=False)], ServerView({}, icons={'sdr': 'no_package'}))
    assert (row['status'], row['manual_icon'], row['name']) == ('-', 'no_package', 'SDR (sensor data record)')


def test_unknown_module_ids_are_named_by_their_id():
    assert module_row(plan.ModuleState('mystery', current='1'), [], ServerView({}))['name'] == 'mystery'


def test_the_agent_path_shows_modules_present_blocked_or_busy():
    states = {
        'system-bios': plan.ModuleState('system-bios', current='1.0'),
        'sdr': plan.ModuleState('sdr'),
        'bmc-firmware': plan.ModuleState('bmc-firmware', block='apply_failed'),
        'raid-utility': plan.ModuleState('raid-utility', activity='waiting_apply'),
    }
    grouped = plan.by_module([info('server-agent', '5.0'), info('system-bios', '2.0')])
    assert shown_modules(states, grouped) == ['bmc-firmware', 'raid-utility', 'system-bios']


def test_agent_report():
    states = {'system-bios': plan.ModuleState('system-bios', current='1.0'), 'bmc-firmware': plan.ModuleState('bmc-firmware', current='3.0')}
    packages = [info('system-bios', '2.0'), info('bmc-firmware', '3.0'), info('server-agent', '5.0')]
    report = status_report(ServerView(states, packages))
    assert list(report.modules) == ['bmc-firmware', 'system-bios']
    assert (report.available, report.unknown, report.server_status) == (['server-agent'], False, 'update_available')
    assert report.newest == {'bmc-firmware': '3.0', 'system-bios': '2.0'}
    assert status_report(ServerView(states, packages, agent_installed=False)).server_status == 'agent_not_installed'
    unknown = status_report(ServerView(states, packages + [info('sdr', '9.0', schema=99)]))
    assert (unknown.unknown, unknown.server_status) == (True, 'unknown')


def test_bmc_report_lists_its_modules_in_its_order():
    states = {
        'system-bios': plan.ModuleState('system-bios', current='1.0'),
        'bmc-firmware': plan.ModuleState('bmc-firmware', previous='2.0'),
    }  # known to the repository only
    packages = [info('system-bios', '1.0', kind='bmc')]
    report = status_report(ServerView(states, packages, kinds=('bmc',), listed=list(states)))
    assert list(report.modules) == ['system-bios', 'bmc-firmware']
    assert [module['status'] for module in report.modules.values()] == ['latest', 'no_package']
    assert report.server_status == 'latest'
    assert report.newest == {'system-bios': '1.0', 'bmc-firmware': None}
    # a BMC package is not one the agent path applies
    assert status_report(ServerView(states, packages, listed=list(states))).modules['system-bios']['status'] == '-'
