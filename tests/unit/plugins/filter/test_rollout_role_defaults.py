# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's defaults read <rollout_option_prefix>_<name>: what the playbooks pass, and argument validation sees it.

One ansible-playbook run on localhost, one play per case (play vars are the operator's variables); each
play runs the summary phase (no server is touched) and writes the role's settings to a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.exup.fleet.plugins.filter import rollout as rollout_filter

CASES = {
    'apply': {
        'rollout_state': 'present',
        'rollout_option_prefix': 'apply',
        'apply_status_filter': 'reboot_required',
        'apply_modules': [],
        'apply_allow_reboot': 'yes',
        'apply_lease_seconds': 30,
        'apply_reboot_timeout': 90,
    },
    'apply_defaults': {'rollout_state': 'present', 'rollout_option_prefix': 'apply'},
    'rollout_given_wins': {'rollout_option_prefix': 'apply', 'apply_status_filter': 'all', 'rollout_status_filter': 'latest'},
    'prefix_rollout': {},  # the role's own names: no recursive loop, the defaults
    'prefix_rollout_given': {'rollout_status_filter': 'applying', 'rollout_modules': ['sdr']},
    'uninstall': {
        'rollout_state': 'absent',
        'rollout_option_prefix': 'uninstall',
        'uninstall_modules': ['raid-utility', 'update-agent'],
        'uninstall_reboot_delay_minutes': 5,
    },
    # last: argument validation fails the host
    'invalid': {'rollout_option_prefix': 'apply', 'apply_reboot_timeout': 'soon'},
}
PLAY = """\
- name: Case {name}
  hosts: localhost
  gather_facts: false
  vars: {vars}
  tasks:
    - name: The summary phase
      ansible.builtin.import_role:
        name: exup.fleet.rollout
        tasks_from: summary
    - name: Write what the role decided from
      ansible.builtin.copy:
        content: >-
          {{{{ {{'settings': rollout_settings, 'lease': rollout_lease_seconds, 'timeout': rollout_reboot_timeout}} | to_json }}}}
        dest: "{out}/{name}.json"
        mode: "0600"
"""


def _collections_path() -> str:
    return str(Path(os.path.abspath(rollout_filter.__file__)).parents[5])


def test_the_role_reads_the_prefixed_variables(tmp_path):
    playbook = tmp_path / 'play.yml'
    playbook.write_text('\n'.join(PLAY.format(name=name, vars=json.dumps(values), out=tmp_path) for name, values in CASES.items()))
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
            'target=lab',
            '-e',
            'ansible_python_interpreter=' + sys.executable,
        ],  # the Python whose sys.path is PYTHONPATH
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    output = ran.stdout + ran.stderr
    got = {name: json.loads((tmp_path / ('%s.json' % name)).read_text()) for name in CASES if (tmp_path / ('%s.json' % name)).exists()}
    assert sorted(got) == sorted(set(CASES) - {'invalid'}), output
    apply = got['apply']['settings']
    assert (apply['status_filter'], apply['modules'], apply['allow_reboot'], apply['option_prefix']) == ('reboot_required', [], True, 'apply')
    assert (got['apply']['lease'], got['apply']['timeout']) == (30, 90)
    defaults = got['apply_defaults']['settings']
    assert (defaults['status_filter'], defaults['modules'], defaults['versions'], defaults['allow_reboot'], defaults['reboot_delay_minutes']) == (
        'update_available',
        None,
        {},
        False,
        0,
    )
    assert (got['apply_defaults']['lease'], got['apply_defaults']['timeout'], defaults['target']) == (None, 600, 'lab')
    assert got['rollout_given_wins']['settings']['status_filter'] == 'latest'
    assert got['prefix_rollout']['settings'] == dict(defaults, option_prefix='rollout')
    assert (got['prefix_rollout_given']['settings']['status_filter'], got['prefix_rollout_given']['settings']['modules']) == ('applying', ['sdr'])
    uninstall = got['uninstall']['settings']
    assert (uninstall['state'], uninstall['modules'], uninstall['reboot_delay_minutes']) == ('absent', ['raid-utility', 'update-agent'], 5)
    assert 'exup uninstall of raid-utility, update-agent from lab: 0 of 0 server(s) chosen, 0 failed' in output
    assert 'exup apply to lab, filter reboot_required: 0 of 0 server(s) chosen, 0 failed' in output
    # argument validation sees the value read from apply_reboot_timeout
    assert ran.returncode != 0 and "argument 'rollout_reboot_timeout' is of type str and we were unable to convert to int" in output, output
