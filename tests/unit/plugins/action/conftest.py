# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the action plugin tests: the real ActionModule, a repository on tmp_path, a mocked host.

The plugin is built as Ansible builds it (Task, PlayContext, DataLoader, Templar) with a connection
mock; only the answers of the host module ``exup.fleet.exup_host`` are canned. Where practical they
come from the real host code run in-process on a host root below tmp_path (``inventory`` and ``logs``
run ``exup_host.run`` itself; job answers are ``exup_host``'s own result of a journal), so they cannot
drift from what a server answers. Package builders and keys are the core tests' (imported, not copied).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sqlite3
from unittest.mock import MagicMock

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import shell_loader
from ansible.template import Templar
from ansible.utils.display import Display

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import SERVER, FakeHost, HostRoot, Remote

# the core tests' keys and package builder, as fixtures of this folder too (imported, not copied)
from ansible_collections.exup.fleet.tests.unit.plugins.module_utils._exup.conftest import build_pkg, keyring, other_key, signing_key  # noqa: F401 pylint: disable=unused-import


@pytest.fixture
def host_root(tmp_path):
    return HostRoot(tmp_path / 'host').physical()


@pytest.fixture
def host(host_root):
    return FakeHost(host_root)


@pytest.fixture
def repository(tmp_path, keyring):
    """add(paths) puts packages into a real repository on tmp_path (pinned: generations keep every one)."""

    class Repo:
        path = str(tmp_path / 'repo')
        repo = Repository(path)
        seen = 0  # events up to this id were the set-up's

        def add(self, *paths):
            results = self.repo.add_files(list(paths), keyring, mode='pinned')
            assert all(row['result'].startswith('added') for row in results), results
            self.seen = self.query('SELECT MAX(id) FROM events')[0][0]
            return results

        def query(self, sql, *args):
            conn = sqlite3.connect(os.path.join(self.path, 'repo.db'))
            try:
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()

        def events(self):
            """[(code, detail)] in order, since the packages were added."""
            rows = self.query('SELECT code, detail FROM events WHERE id > ? ORDER BY id', self.seen)
            return [(code, json.loads(detail)) for code, detail in rows]

        def messages(self):
            return [row[0] for row in self.query('SELECT message FROM events WHERE id > ? ORDER BY id', self.seen)]

        def codes(self):
            return [code for code, _detail in self.events()]

        def servers(self, manager='local'):
            rows = self.query('SELECT name, model, os, modules FROM servers WHERE manager_id = ?', manager)
            return {name: {'model': model, 'os': os_name, 'modules': json.loads(modules)} for name, model, os_name, modules in rows}

    return Repo()


@pytest.fixture
def pem(signing_key):
    return signing_key.public_pem().decode('ascii')


@pytest.fixture
def shown(monkeypatch):
    """What the plugin displayed: ``shown.lines`` (display), ``shown.warnings``."""

    class Shown:
        def __init__(self):
            self.lines, self.warnings, self.deprecations = [], [], []

    shown_now = Shown()
    display = Display()
    monkeypatch.setattr(display, 'display', lambda msg, *args, **kwargs: shown_now.lines.append(msg))
    monkeypatch.setattr(display, 'warning', lambda msg, *args, **kwargs: shown_now.warnings.append(msg))
    monkeypatch.setattr(display, 'deprecated', lambda msg, *args, **kwargs: shown_now.deprecations.append(msg))
    return shown_now


@pytest.fixture
def run_action(tmp_path, host, host_root):
    """run_action(name, args, check_mode=False, task=None, task_vars=None) -> (result, remote): ActionModule(...).run() of exup.fleet.<name>."""
    remote = Remote(tmp_path / 'remote-tmp')
    playbook = tmp_path / 'playbook'
    (playbook / 'files').mkdir(parents=True)

    def run(name, args, check_mode=False, task=None, task_vars=None):
        task = task or Task()
        task.action = 'exup.fleet.' + name
        task.args = dict({'host_root': str(host_root.root)}, **args)
        task.check_mode = check_mode
        host.check_mode = check_mode
        loader = DataLoader()
        loader.set_basedir(str(playbook))
        connection = MagicMock()
        connection._shell = shell_loader.get('sh')
        connection._shell.tmpdir = None
        connection.fetch_file.side_effect = shutil.copyfile

        def make_tmp_path(*_args, **_kwargs):
            remote.folder.mkdir(exist_ok=True)
            connection._shell.tmpdir = str(remote.folder)
            return str(remote.folder)

        module = importlib.import_module('ansible_collections.exup.fleet.plugins.action.' + name)
        plugin = module.ActionModule(task, connection, PlayContext(), loader, Templar(loader=loader), None)
        plugin._execute_module = MagicMock(side_effect=host.execute)
        plugin._make_tmp_path = MagicMock(side_effect=make_tmp_path)
        plugin._remove_tmp_path = MagicMock(side_effect=remote.removed.append)
        plugin._transfer_file = MagicMock(side_effect=remote.transfer)
        plugin._fixup_perms2 = MagicMock()
        plugin._low_level_execute_command = MagicMock(side_effect=AssertionError('no raw commands: every host call is exup_host'))
        remote.connection = connection
        result = plugin.run(task_vars=dict({'inventory_hostname': SERVER}, **(task_vars or {})))
        return result, remote

    run.playbook = playbook
    return run
