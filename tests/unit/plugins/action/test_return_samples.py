# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules really return is what their RETURN documents (issue 12 item 4).

Each module runs in-process on the unit tests' fixtures (a real repository on tmp_path, the real exup_host on a
host root, the action plugins through ActionModule.run()), and every key of its result, at the top and nested
where RETURN says what a dict contains, must be documented. Not run here: exup_manager (it needs a repository
service; the system tests run it).
"""

from __future__ import annotations

import importlib
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.exup.fleet.plugins.module_utils import _exup_module
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import JOB_ID, MODEL, OS_NAME, Job, ModuleExited, _exit_json, _fail_json
from ansible_collections.exup.fleet.tests.unit.plugins.module_utils._exup.repo.test_pipeline import Feed
from ansible_collections.exup.fleet.tests.unit.plugins.modules import docs_check

AGENT = 'update-agent'


def check(name, result):
    _documentation, returns = docs_check.docs(name)
    assert docs_check.undocumented_keys(result, returns, docs_check.MAPPINGS.get(name, ())) == [], '%s returned keys its RETURN does not document' % name


def run_module(name, args, check_mode=False):
    """The module's main() in-process, as Ansible runs it; its result (exit_json or fail_json)."""
    module = importlib.import_module('ansible_collections.exup.fleet.plugins.modules.' + name)
    with (
        patch_module_args(dict(args, _ansible_check_mode=check_mode)),
        mock.patch.object(AnsibleModule, 'exit_json', _exit_json),
        mock.patch.object(AnsibleModule, 'fail_json', _fail_json),
        mock.patch.object(AnsibleModule, '_log_invocation', lambda module: None),
    ):
        try:
            module.main()
        except ModuleExited as exc:
            return exc.result
    raise AssertionError('%s ended without exit_json or fail_json' % name)


def recorded(host):
    """Keep every answer of exup_host (the real module on the host root) in ``host.answers``."""
    execute = host.execute
    host.answers = []

    def keep(*args, **kwargs):
        answer = execute(*args, **kwargs)
        host.answers.append(answer)
        return answer

    host.execute = keep
    return host


@pytest.fixture
def stocked(repository, build_pkg, host_root):
    """The repository holds an agent package and two BIOS versions for the server; the server runs BIOS 1.0 and agent 2.0."""
    agent = build_pkg(module_id=AGENT, version='3.0', models=[MODEL], os=[OS_NAME], reboot_required=False)
    bios = [build_pkg(module_id='system-bios', version=version, models=[MODEL], os=[OS_NAME], release_date='2024-05-01') for version in ('1.0', '1.1')]
    repository.add(agent, *bios)
    return {'agent': agent, 'bios': bios}


def test_exup_info(run_action, host, host_root, repository, stocked, pem):
    host_root.install_agent('2.0')
    result, _remote = run_action('exup_info', {'repository': repository.path, 'trusted_keys': [pem], 'register_server': True})
    assert not result.get('failed'), result
    check('exup_info', result)


def test_exup_info_without_the_agent_and_lxml(run_action, host, repository, stocked, monkeypatch):
    monkeypatch.setattr(_exup_module.xmlsafe, 'HAS_LXML', False)
    result, _remote = run_action('exup_info', {'repository': repository.path})
    assert not result.get('failed') and result['agent_install_blockers'], result
    check('exup_info', result)


def test_exup_agent(run_action, host, host_root, repository, stocked, pem, monkeypatch):
    recorded(host)
    args = {'repository': repository.path, 'trusted_keys': [pem], 'license_accepted': True}
    for state_args in ({'state': 'query'}, {}, {'state': 'query'}, {'state': 'absent'}):
        result, _remote = run_action('exup_agent', dict(args, **state_args))
        assert not result.get('failed'), result
        check('exup_agent', result)
    monkeypatch.setattr(_exup_module.xmlsafe, 'HAS_LXML', False)
    refused, _remote = run_action('exup_agent', args)
    assert refused['error'] == 'missing_library'
    check('exup_agent', refused)
    for answer in host.answers:
        check('exup_host', answer)


def test_exup_apply(run_action, host, host_root, repository, stocked, pem):
    host_root.install_agent('2.0')
    recorded(host)
    args = {'repository': repository.path, 'trusted_keys': [pem], 'poll_interval': 7, 'lease_seconds': 10}
    planned, _remote = run_action('exup_apply', args, check_mode=True)
    assert not planned.get('failed'), planned
    check('exup_apply', planned)
    host.answer('start', Job('running', 'waiting', state='running'))
    host.answer('status', Job('succeeded', 'succeeded'))
    result, _remote = run_action('exup_apply', args)
    assert not result.get('failed') and result['job_id'] == JOB_ID, result
    check('exup_apply', result)
    for answer in host.answers:
        check('exup_host', answer)


def test_exup_package_and_package_info(repository, stocked, build_pkg, pem, tmp_path):
    new = build_pkg(module_id='sdr', version='2.0', models=[MODEL], os=[OS_NAME])
    added = run_module('exup_package', {'repository': repository.path, 'src': [new], 'trusted_keys': [pem]})
    assert not added.get('failed'), added
    check('exup_package', added)
    export = {'repository': repository.path, 'state': 'exported', 'module_ids': ['system-bios'], 'dest': str(tmp_path / 'out.zip')}
    exported = run_module('exup_package', export)
    assert not exported.get('failed'), exported
    check('exup_package', exported)
    info = run_module('exup_package_info', {'repository': repository.path})
    assert not info.get('failed'), info
    check('exup_package_info', info)


def test_exup_repo_settings(repository, stocked):
    changed = run_module('exup_repo_settings', {'repository': repository.path, 'download_interval_hours': 6, 'notify_webhooks': ['https://chat.example/hook']})
    assert not changed.get('failed'), changed
    check('exup_repo_settings', changed)
    info = run_module('exup_repo_settings_info', {'repository': repository.path})
    assert not info.get('failed'), info
    check('exup_repo_settings_info', info)


def test_exup_server_status(repository, stocked):
    result = run_module('exup_server_status', {'repository': repository.path, 'server_name': 'srv1', 'modules': ['system-bios'], 'icon': 'latest'})
    assert not result.get('failed'), result
    check('exup_server_status', result)


def test_exup_repo_sync(repository, stocked, build_pkg, signing_key, keyring, pem, tmp_path):
    feed = Feed(signing_key, keyring, tmp_path)
    feed.publish([build_pkg(module_id='system-bios', version='1.2', models=[MODEL], os=[OS_NAME])])
    server = {'name': 'srv1', 'model': MODEL, 'os': OS_NAME, 'modules': {'system-bios': {'current': '1.0'}}}
    args = {'repository': repository.path, 'feed_url': 'http://feed.example/catalog.json', 'trusted_keys': [pem], 'servers': [server]}
    with mock.patch.object(_exup_module.ExupModule, 'http_client', lambda module: feed):
        for check_mode in (True, False):
            result = run_module('exup_repo_sync', args, check_mode=check_mode)
            assert not result.get('failed'), result
            check('exup_repo_sync', result)
