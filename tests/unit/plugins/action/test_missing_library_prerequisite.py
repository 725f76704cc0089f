# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A library the server's Python cannot import is a prerequisite beside the others, not a failed inventory (issue 12 item 10).

The real exup_host module runs on a host root below tmp_path (action_env.py) with lxml made unimportable.
"""

from __future__ import annotations

import sys

import pytest

from ansible_collections.exup.fleet.plugins.module_utils import _exup_module
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import MODEL, OS_NAME, SERVER


@pytest.fixture
def no_lxml(monkeypatch):
    monkeypatch.setattr(_exup_module.xmlsafe, 'HAS_LXML', False)
    monkeypatch.setattr(_exup_module.xmlsafe, 'LXML_IMPORT_ERROR', ImportError('No module named lxml'))


def _rhel9_package():
    """What the host root's RHEL 9.4 takes for the Python running the tests."""
    return 'python3-lxml' if sys.version_info[:2] == (3, 9) else 'python%d.%d-lxml' % sys.version_info[:2]


def _library_blockers(items):
    return [item for item in items if item['code'] == 'missing_library']


def test_query_lists_the_missing_library(run_action, host, no_lxml):
    result, _remote = run_action('exup_agent', {'state': 'query'})
    assert not result.get('failed'), result
    (blocker,) = _library_blockers(result['prerequisites'])
    assert (blocker['library'], blocker['package']) == ('lxml', _rhel9_package())
    assert 'dnf install %s' % _rhel9_package() in blocker['msg']
    assert host.phases == ['inventory']


def test_install_fails_with_missing_library_and_sends_nothing(run_action, host, repository, build_pkg, pem, no_lxml):
    repository.add(build_pkg(module_id='update-agent', version='1.1', models=[MODEL], os=[OS_NAME], reboot_required=False))
    args = {'repository': repository.path, 'trusted_keys': [pem], 'license_accepted': True}
    result, _remote = run_action('exup_agent', args)
    assert (result['failed'], result['error'], result['status']) == (True, 'missing_library', 'failed')
    assert _rhel9_package() in result['msg'] and 'lxml' in result['msg']
    assert [item['library'] for item in _library_blockers(result['blockers'])] == ['lxml']
    assert host.phases == ['inventory']  # refused before any package went to the host
    assert repository.events() == [('agent_install_failed', {'server': SERVER, 'error': 'missing_library'})]


def test_info_says_the_agent_is_not_installable(run_action, host, no_lxml):
    result, _remote = run_action('exup_info', {})
    assert not result.get('failed'), result
    assert result['agent_installable'] is False
    assert [item['library'] for item in _library_blockers(result['agent_install_blockers'])] == ['lxml']
