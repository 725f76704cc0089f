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


@pytest.mark.parametrize(
    ('blocked', 'package'),
    [(['lxml'], 'python3-lxml'), (['cryptography'], 'python3-cryptography')],
)
def test_host_module_reports_missing_library(tmp_path, blocked, package):
    process, result = run_host_module(tmp_path, blocked)
    assert process.returncode == 1
    assert result['failed'] is True
    assert result['error'] == 'missing_library'
    assert [item['library'] for item in result['blockers']] == blocked
    assert result['blockers'][0]['code'] == 'missing_library'
    assert package in result['msg'] and ('pip install %s' % blocked[0]) in result['msg']
    assert 'exception' not in result and 'Traceback' not in process.stdout + process.stderr


def test_both_missing_are_named(tmp_path):
    result = run_host_module(tmp_path, ['cryptography', 'lxml'])[1]
    assert result['error'] == 'missing_library'
    assert [item['library'] for item in result['blockers']] == ['cryptography', 'lxml']


def test_missing_libraries_present_is_empty():
    assert missing_libraries([('lxml', True, None)]) == []
    blocker = missing_libraries([('lxml', False, ImportError('nope'))])[0]
    assert blocker['code'] == 'missing_library' and 'python3-lxml' in blocker['msg'] and 'nope' in blocker['msg']
