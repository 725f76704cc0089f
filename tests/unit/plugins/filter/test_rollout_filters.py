# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters of plugins/filter/rollout.py: a thin face over rules/rollout.py, and the same answers through Ansible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.exup.fleet.plugins.filter import rollout as rollout_filter
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import rollout

SETTINGS: dict[str, Any] = {
    'state': 'present',
    'option_prefix': 'apply',
    'target': 'managed',
    'status_filter': 'update_available',
    'modules': None,
    'versions': {},
    'allow_reboot': True,
    'reboot_pending': False,
    'reboot_delay_minutes': 0,
    'trusted_keys': ['vendor.pem'],
    'check_mode': False,
}
INFO = {
    'changed': False,
    'server_status': 'update_available',
    'facts': {'boot_id': 'b1'},
    'modules': {'system-bios': {'status': 'update_available', 'current': '1.0', 'block': None}},
}
APPLIED = {
    'changed': True,
    'reboot_required': True,
    'reboot_allowed': True,
    'results': [
        {
            'module_id': 'system-bios',
            'version_before': '1.0',
            'version_after': '1.0',
            'version_target': '1.2',
            'staged': True,
            'status': 'succeeded',
            'cause': None,
        }
    ],
}
AFTER = dict(INFO, server_status='latest', modules={'system-bios': {'status': 'latest', 'current': '1.2', 'block': None}})
WAVE = {'info_before': INFO, 'applied': APPLIED, 'reboot': {'changed': True, 'rebooted': True}, 'info_after': AFTER}
FILTERS = (
    'rollout_check',
    'rollout_chosen',
    'rollout_restart',
    'rollout_outcome',
    'rollout_summary',
    'rollout_hold_back',
    'rollout_rollback_versions',
    'rollout_hosts',
)


def test_the_filters_are_the_ones_documented():
    assert sorted(rollout_filter.FilterModule().filters()) == sorted(FILTERS)
    docs = Path(rollout_filter.__file__).parent
    for name in FILTERS:
        assert (docs / ('%s.yml' % name)).is_file(), name  # ansible-doc -t filter exup.fleet.<name>


def test_each_filter_answers_what_the_core_answers():
    settings = rollout.Settings.from_mapping(SETTINGS)
    assert rollout_filter.rollout_check(SETTINGS) == [] == rollout.check_settings(settings)
    row = rollout_filter.rollout_chosen(INFO, SETTINGS, 'r120h-1')
    assert row == rollout.choose(settings, 'r120h-1', INFO) and row['chosen'] is True
    assert rollout_filter.rollout_restart(WAVE, SETTINGS) == rollout.restart(settings, rollout.Wave.from_mapping(WAVE))
    assert rollout_filter.rollout_restart(WAVE, SETTINGS)['reboot_now'] is True
    done = rollout_filter.rollout_outcome(row, SETTINGS, WAVE)
    assert done['packages'] == ['system-bios 1.0 -> 1.2 succeeded'] and done['reboot'] == 'rebooted' and done['status_after'] == 'latest'
    assert row['status_after'] == '-'  # the row given is not changed
    assert rollout_filter.rollout_summary([done], SETTINGS) == [
        'exup apply to managed, filter update_available: 1 of 1 server(s) chosen, 0 failed',
        'server   before                after                 reboot',
        'r120h-1  update_available      latest                rebooted',
        '    system-bios 1.0 -> 1.2 succeeded',
    ]


def test_a_wave_with_tasks_not_run_yet():
    assert rollout_filter.rollout_restart({'info_before': INFO, 'applied': {'skipped': True}}, SETTINGS)['done'] is False


@pytest.mark.parametrize(
    'call, message',
    [
        (lambda: rollout_filter.rollout_check(['present']), 'the rollout settings must be a mapping'),
        (lambda: rollout_filter.rollout_check(dict(SETTINGS, colour='blue')), 'unknown rollout settings: colour'),
        (lambda: rollout_filter.rollout_check(dict(SETTINGS, state='cancelled')), 'present or absent'),
        (lambda: rollout_filter.rollout_chosen('r1', SETTINGS, 'r1'), 'the exup_info result must be a mapping, not str'),
        (lambda: rollout_filter.rollout_restart([], SETTINGS), 'the wave must be a mapping, not list'),
        (lambda: rollout_filter.rollout_outcome(None, SETTINGS, WAVE), 'the row must be a mapping, not NoneType'),
        (lambda: rollout_filter.rollout_summary({'server': 'r1'}, SETTINGS), 'the rows must be a list'),
        (lambda: rollout_filter.rollout_summary([{'server': 'r1'}], SETTINGS), 'a row lacks status_before'),
    ],
)
def test_wrong_input_is_a_filter_error(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


INVENTORY = """\
[managed]
web1
web2
db1
fe80::1
[web]
web1
web2
[db]
db1
[exup_apply_chosen]
web1
db1
fe80::1
"""


@pytest.mark.parametrize(
    'target, chosen',
    [
        ('managed', ['web1', 'db1', 'fe80::1']),
        ('managed:db', ['web1', 'db1', 'fe80::1']),
        ('web:db', ['web1', 'db1']),
        ('web,db', ['web1', 'db1']),
        ('web[0:1]', ['web1']),
        ('web[1]', []),
        ('managed:!db', ['web1', 'fe80::1']),
        ('managed:&db', ['db1']),
        ('fe80::1', ['fe80::1']),
        (['web', 'db1'], ['web1', 'db1']),
    ],
)
def test_the_wave_hosts_are_the_chosen_servers_of_the_target(tmp_path, target, chosen):
    """Through Ansible's InventoryManager: the wave play's pattern is the target's hosts that are chosen."""
    from ansible.inventory.manager import InventoryManager  # pylint: disable=import-outside-toplevel
    from ansible.parsing.dataloader import DataLoader  # pylint: disable=import-outside-toplevel

    (tmp_path / 'hosts.ini').write_text(INVENTORY)
    inventory = InventoryManager(DataLoader(), sources=[str(tmp_path / 'hosts.ini')])
    pattern = rollout_filter.rollout_hosts(target, 'exup_apply_chosen')
    wanted = [host.name for host in inventory.get_hosts(target) if host.name in chosen]
    assert [host.name for host in inventory.get_hosts(pattern)] == wanted == chosen  # in the target's order


def test_the_wave_hosts_refuse_what_is_not_a_pattern():
    with pytest.raises(AnsibleFilterError, match='must be a host pattern'):
        rollout_filter.rollout_hosts({'managed': 1}, 'exup_apply_chosen')
    with pytest.raises(AnsibleFilterError, match='must be one group name'):
        rollout_filter.rollout_hosts('managed', 'a,b')


def _collections_path() -> str:
    """The folder holding ansible_collections/exup/fleet (the checkout's link or ansible-test's copy)."""
    return str(Path(os.path.abspath(rollout_filter.__file__)).parents[5])


def test_the_filters_through_ansible(tmp_path):
    """The role calls them from Jinja: Ansible's lazy containers and native types must give the same rows."""
    playbook = tmp_path / 'play.yml'
    out = tmp_path / 'out.json'
    playbook.write_text(
        """\
- name: Filters of exup.fleet.rollout
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Every filter once
      ansible.builtin.copy:
        content: "{{ {'check': problems, 'row': row, 'restart': wave | exup.fleet.rollout_restart(settings),
                      'summary': [row | exup.fleet.rollout_outcome(settings, wave)] | exup.fleet.rollout_summary(settings)} | to_json }}"
        dest: "%s"
        mode: "0600"
      vars:
        problems: "{{ settings | exup.fleet.rollout_check }}"
        row: "{{ info | exup.fleet.rollout_chosen(settings, inventory_hostname) }}"
"""
        % out
    )
    extra = {'settings': dict(SETTINGS, allow_reboot="{{ 'yes' | bool }}", reboot_delay_minutes="{{ '0' }}"), 'info': INFO, 'wave': WAVE}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_NOCOLOR='1')
    ran = subprocess.run(
        [
            sys.executable,
            '-m',
            'ansible.cli.playbook',
            str(playbook),
            '-i',
            'localhost,',
            '-c',
            'local',
            '-e',
            json.dumps(extra),
            '-e',
            'ansible_python_interpreter=' + sys.executable,
        ],  # the Python whose sys.path is PYTHONPATH
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    got = json.loads(out.read_text())
    assert got['check'] == [] and got['row']['chosen'] is True and got['restart']['reboot_now'] is True
    assert got['summary'][2:] == ['localhost  update_available      latest                rebooted', '    system-bios 1.0 -> 1.2 succeeded']
