# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent role's fixed Linux folder is the collection's (agent_runner.AGENT_DIR): the role states it once."""

from __future__ import annotations

import pathlib

import yaml

from ansible_collections.exup.fleet.plugins.module_utils._exup.host.agent_runner import AGENT_DIR
from ansible_collections.exup.fleet.plugins.module_utils._exup_specs import LINUX_AGENT_DIR

ROLE = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'agent'


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text())


def test_the_role_checks_the_folder_the_collection_installs_to():
    assert load('vars/main.yml')['agent_linux_install_dir'] == '/' + AGENT_DIR == LINUX_AGENT_DIR
    assert load('defaults/main.yml')['agent_install_dir'] == '{{ agent_linux_install_dir }}'
    tasks = (ROLE / 'tasks' / 'main.yml').read_text()
    assert '/' + AGENT_DIR not in tasks  # the check and its message read the variable


def test_the_documented_default_is_that_folder():
    options = load('meta/argument_specs.yml')['argument_specs']['main']['options']
    assert options['agent_install_dir']['default'] == LINUX_AGENT_DIR
