# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/repository: meta/argument_specs.yml documents every variable the role reads, with the defaults it has.

A variable counts as read when a task file, handler or template names ``repository_<name>``; the role's own results
(register, set_fact, a task's vars) are not variables of its users.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / 'roles' / 'repository'
NAME = re.compile(r'\brepository_[a-z0-9_]+\b')


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text())


def own_results():
    """What the role's tasks set themselves: registered results, set_fact names, task vars."""
    names = set()
    todo = []
    for path in sorted((ROLE / 'tasks').glob('*.yml')) + sorted((ROLE / 'handlers').glob('*.yml')):
        todo.extend(yaml.safe_load(path.read_text()) or [])
    while todo:
        task = todo.pop()
        for key in ('block', 'rescue', 'always'):
            todo.extend(task.get(key) or [])
        if 'register' in task:
            names.add(task['register'])
        names.update(task.get('ansible.builtin.set_fact') or {})
        names.update(task.get('vars') or {})
    return names


def read_names():
    names = set()
    for folder in ('tasks', 'handlers', 'templates', 'defaults'):
        for path in sorted((ROLE / folder).glob('*')):
            text = path.read_text()
            names.update(NAME.findall(text))
    return names


def test_every_variable_the_role_reads_is_documented():
    options = load('meta/argument_specs.yml')['argument_specs']['main']['options']
    undocumented = sorted(read_names() - own_results() - set(options))
    assert undocumented == []
    assert {'repository_service_state', 'repository_service_admin_password', 'repository_service_python'} <= set(options)


def test_the_documented_defaults_are_the_defaults():
    options = load('meta/argument_specs.yml')['argument_specs']['main']['options']
    defaults = load('defaults/main.yml')
    assert {name: options[name].get('default') for name in defaults} == defaults
    assert sorted(name for name, spec in options.items() if 'default' in spec) == sorted(defaults)


def test_the_secrets_are_not_logged():
    """A task that passes a password on has no_log (uri's url_password is a no_log option of its own)."""
    todo = list(yaml.safe_load((ROLE / 'tasks' / 'service.yml').read_text()))
    checked = 0
    while todo:
        task = todo.pop()
        nested = [inner for key in ('block', 'rescue', 'always') for inner in task.get(key) or []]
        if nested:
            todo.extend(nested)
            continue
        if re.search(r'\{\{\s*repository_(service_(admin|read|feed)_password|proxy_password)\b', yaml.safe_dump(task)):
            checked += 1
            assert task.get('no_log') is True or 'ansible.builtin.uri' in task, task['name']
    assert checked >= 3
