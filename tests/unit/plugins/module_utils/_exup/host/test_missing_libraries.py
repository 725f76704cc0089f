# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A managed server whose Python cannot import cryptography or lxml: a failed prerequisite with its reason, no traceback (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup_module import missing_libraries

SHIM = 'raise ImportError("No module named %s (blocked by the test)")\n'


def run_host_module(tmp_path, blocked, phase='inventory'):
    """Run exup_host as Ansible runs it on the server, with ``blocked`` libraries made unimportable by a shadowing module."""
    shim = tmp_path / 'shim'
    shim.mkdir()
    for name in blocked:
        (shim / ('%s.py' % name)).write_text(SHIM % name)
    args = tmp_path / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {'phase': phase, 'host_root': str(tmp_path), 'contract_version': _contract_version()}}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), *[entry for entry in sys.path if entry]]))
    process = subprocess.run(
        [sys.executable, '-m', 'ansible_collections.exup.fleet.plugins.modules.exup_host', str(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return process, json.loads(process.stdout)


def _contract_version():
    from ansible_collections.exup.fleet.plugins.module_utils._exup import contract

    return contract.CONTRACT_VERSION


def _sles15(tmp_path):
    (tmp_path / 'etc').mkdir(exist_ok=True)
    (tmp_path / 'etc' / 'os-release').write_text('NAME="SLES"\nVERSION_ID="15.5"\nID="sles"\nPRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"\n')


def _flavoured(project):
    """The SLES package of ``project`` for the Python running the tests (never the system 3.6 here)."""
    return 'python%d%d-%s' % (sys.version_info[0], sys.version_info[1], project)


@pytest.mark.parametrize('blocked', [['lxml'], ['cryptography']])
def test_inventory_lists_missing_library_as_prerequisite(tmp_path, blocked):
    """Reading the server needs neither library: the inventory answers, with the missing one beside the other prerequisites."""
    _sles15(tmp_path)
    process, result = run_host_module(tmp_path, blocked)
    assert process.returncode == 0, process.stdout + process.stderr
    assert not result.get('failed')
    found = [item for item in result['prerequisites'] if item['code'] == 'missing_library']
    assert [item['library'] for item in found] == blocked
    assert found[0]['package'] == _flavoured(blocked[0])
    assert 'zypper install %s' % _flavoured(blocked[0]) in found[0]['msg'] and ('pip install %s' % blocked[0]) in found[0]['msg']
    assert 'Traceback' not in process.stdout + process.stderr


@pytest.mark.parametrize('phase', ['start', 'agent_install', 'cancel'])
def test_changing_phases_fail_with_missing_library(tmp_path, phase):
    process, result = run_host_module(tmp_path, ['lxml'], phase=phase)
    assert process.returncode == 1
    assert result['failed'] is True and result['error'] == 'missing_library'
    assert [item['library'] for item in result['blockers']] == ['lxml']
    assert result['blockers'][0]['package'] == 'python3-lxml'  # no os-release below host_root: the generic name
    assert 'python3-lxml' in result['msg'] and 'pip install lxml' in result['msg']
    assert 'exception' not in result and 'Traceback' not in process.stdout + process.stderr


def test_both_missing_are_named(tmp_path):
    result = run_host_module(tmp_path, ['cryptography', 'lxml'], phase='start')[1]
    assert result['error'] == 'missing_library'
    assert [item['library'] for item in result['blockers']] == ['cryptography', 'lxml']


def test_nothing_missing_adds_no_prerequisite(tmp_path):
    process, result = run_host_module(tmp_path, [])
    assert process.returncode == 0
    assert [item for item in result['prerequisites'] if item['code'] == 'missing_library'] == []


def test_missing_libraries_present_is_empty(tmp_path):
    assert missing_libraries([('lxml', True, None)]) == []
    blocker = missing_libraries([('lxml', False, ImportError('nope'))], root=str(tmp_path))[0]
    assert blocker['code'] == 'missing_library' and blocker['package'] == 'python3-lxml' and 'nope' in blocker['msg']
