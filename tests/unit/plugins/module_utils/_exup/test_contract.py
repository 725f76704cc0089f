# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""contract.py: what crosses between the controller and exup_host, its version, and the installed agent's records."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent_runner
from ansible_collections.exup.fleet.plugins.modules import exup_host

SHA = 'ab' * 32
PLAN_ROW = {
    'package_id': 'bios-1.2',
    'module_id': 'system-bios',
    'action': 'install',
    'from_version': '1.1',
    'to_version': '1.2',
    'reboot_required': True,
    'release_date': '2025-01-01',
    'command': './install.sh',
}


def item(**changes):
    data = dict(PLAN_ROW, sha256=SHA, size=1024)
    data.update(changes)
    return {key: value for key, value in data.items() if value is not ...}


def refused(function, *args):
    with pytest.raises(ExupError) as caught:
        function(*args)
    return caught.value


# ---------------------------------------------------------------------------- items and package
def test_a_plan_row_becomes_the_item_exup_host_gets():
    built = contract.HostItem.for_plan(PLAN_ROW, SHA, 1024)
    assert built.as_dict() == dict(PLAN_ROW, sha256=SHA, size=1024, content=None, src=None, url=None, url_ca=None)
    assert contract.HostItem.from_dict(built.as_dict()) == built


def test_host_items_take_dicts_or_items_and_give_every_field():
    given = [item(content='UEsFBg=='), contract.HostItem.for_plan(PLAN_ROW, SHA, 5)]
    sent = contract.host_items(given)
    assert [row['content'] for row in sent] == ['UEsFBg==', None]
    assert all(set(row) == set(contract.ITEM_OPTIONS) for row in sent)
    assert contract.host_items(None) == []


@pytest.mark.parametrize('field', ['package_id', 'module_id', 'action', 'sha256'])
def test_a_missing_required_field_is_named(field):
    error = refused(contract.host_items, [item(), item(**{field: ...})])
    assert error.code == 'contract_invalid'
    assert error.details['field'] == 'items[1].%s' % field
    assert 'items[1].%s is missing' % field in error.msg and 'version %d' % contract.CONTRACT_VERSION in error.msg


@pytest.mark.parametrize(
    'changes, field, words',
    [
        ({'sha256': '../../etc/passwd'}, 'sha256', '64 lowercase hexadecimal digits'),
        ({'sha256': SHA.upper()}, 'sha256', '64 lowercase hexadecimal digits'),
        ({'size': -1}, 'size', 'must not be negative'),
        ({'size': '12'}, 'size', 'must be of type int, not str'),
        ({'size': True}, 'size', 'must be of type int, not bool'),
        ({'reboot_required': 'yes'}, 'reboot_required', 'must be of type bool'),
        ({'action': 'reinstall'}, 'action', "one of install, uninstall, not 'reinstall'"),
        ({'to_version': 1.2}, 'to_version', 'must be of type str, not float'),
        ({'script': 'rm -rf /'}, 'script', 'is not a field of the contract'),
    ],
)
def test_a_bad_field_is_named(changes, field, words):
    error = refused(contract.host_items, [item(**changes)])
    assert error.code == 'contract_invalid' and error.details['field'] == 'items[0].' + field
    assert words in error.msg


def test_an_item_that_is_no_mapping_is_refused():
    error = refused(contract.host_items, ['bios-1.2'])
    assert error.code == 'contract_invalid' and 'items[0] must be a mapping, not str' in error.msg


def test_optional_fields_may_be_missing_or_none():
    minimal = {'package_id': 'p', 'module_id': 'm', 'action': 'uninstall', 'sha256': SHA, 'to_version': None}
    assert contract.HostItem.from_dict(minimal).as_dict()['size'] is None


def test_the_agent_package():
    sent = contract.agent_package({'package_id': 'exup-agent-1.3.0', 'sha256': SHA, 'size': 10})
    assert sent == {'package_id': 'exup-agent-1.3.0', 'sha256': SHA, 'size': 10, 'content': None, 'src': None, 'url': None, 'url_ca': None}
    assert contract.agent_package(contract.AgentPackageRef('a', SHA)) == contract.AgentPackageRef('a', SHA).as_dict()
    assert refused(contract.agent_package, {'package_id': 'a'}).details['field'] == 'package.sha256'
    assert 'package must be a mapping, not NoneType' in refused(contract.agent_package, None).msg


def _documented(option):
    return {name: doc['type'] for name, doc in option['suboptions'].items()}


def test_exup_host_documents_the_contract_suboptions():
    """The module's DOCUMENTATION (a literal, as validate-modules wants) lists what contract.py declares."""
    options = yaml.safe_load(exup_host.DOCUMENTATION)['options']
    assert _documented(options['items']) == {name: spec['type'] for name, spec in contract.ITEM_OPTIONS.items()}
    assert _documented(options['package']) == {name: spec['type'] for name, spec in contract.PACKAGE_OPTIONS.items()}
    assert options['contract_version']['type'] == 'int'
    for name, spec in contract.HOST_ARGUMENT_SPEC.items():
        assert options[name]['type'] == spec['type'] and options[name].get('default') == spec.get('default')


# ---------------------------------------------------------------------------- the contract's version
def test_the_same_version_or_none_is_accepted():
    assert contract.version_mismatch(contract.CONTRACT_VERSION) is None
    assert contract.version_mismatch(None) is None


def test_another_version_names_both_and_says_what_to_do():
    error = contract.version_mismatch(contract.CONTRACT_VERSION + 1)
    assert error.code == 'contract_mismatch'
    assert error.details == {'controller_contract_version': contract.CONTRACT_VERSION + 1, 'host_contract_version': contract.CONTRACT_VERSION}
    assert 'controller speaks version %d' % (contract.CONTRACT_VERSION + 1) in error.msg
    assert 'host module version %d' % contract.CONTRACT_VERSION in error.msg
    assert 'same exup.fleet collection version on the controller' in error.msg


class FakeModule:
    def __init__(self, **params):
        self.params = dict({'phase': 'inventory', 'host_root': '/', 'trusted_keys_pem': [], 'items': [], 'package': None}, **params)
        self.check_mode = False


def test_exup_host_refuses_another_contract_version_before_reading_the_host():
    error = refused(exup_host.run, FakeModule(contract_version=contract.CONTRACT_VERSION + 1), None)
    assert error.code == 'contract_mismatch' and error.details['host_contract_version'] == contract.CONTRACT_VERSION


# ---------------------------------------------------------------------------- the installed agent
def test_the_job_format_of_the_installed_runner():
    assert contract.installed_job_format(None) is None
    assert contract.installed_job_format(agent_runner.__doc__ + '\nJOURNAL_VERSION = 3\nX = 1\n') == 3
    assert contract.installed_job_format('#!/usr/bin/env python3\nprint(1)\n') == 1  # the first agents stated none
    with open(agent_runner.__file__) as handle:
        assert contract.installed_job_format(handle.read()) == agent_runner.JOURNAL_VERSION


def test_an_agent_as_new_or_newer_reads_this_collections_jobs():
    assert contract.agent_mismatch('1.3.0', agent_runner.JOURNAL_VERSION) is None
    assert contract.agent_mismatch('9.0.0', agent_runner.JOURNAL_VERSION + 1) is None
    assert contract.agent_mismatch(None, None) is None  # no runner: agent_missing says it, not this


def test_an_older_agent_is_refused_with_both_formats():
    error = contract.agent_mismatch('1.0.0', 1, job_format=2)
    assert error.code == 'agent_version_mismatch'
    assert error.details == {'agent_version': '1.0.0', 'agent_job_format': 1, 'job_format': 2}
    assert 'agent 1.0.0 on this server reads job format 1, and this collection writes format 2' in error.msg
    assert 'exup.fleet.exup_agent' in error.msg


JOURNAL = {
    'version': agent_runner.JOURNAL_VERSION,
    'job_id': 'job-1',
    'state': 'finished',
    'created': 1.0,
    'boot_id': 'b',
    'items': [
        {'package_id': 'bios-1.2', 'module_id': 'system-bios', 'action': 'install', 'status': 'succeeded', 'reboot_required': True, 'to_version': '1.2'},
        {'package_id': 'raid-5.1', 'module_id': 'raid-controller', 'action': 'install', 'status': 'cancelled'},
    ],
}


def journal_with(change):
    journal = copy.deepcopy(JOURNAL)
    change(journal)
    return journal


def test_a_journal_of_this_format_passes_unchanged():
    assert contract.check_journal(copy.deepcopy(JOURNAL), '1.3.0') == JOURNAL
    queued = journal_with(lambda j: (j.update(state='queued'), j.pop('version')))
    assert contract.check_journal(queued) is queued  # the first journals had no version: format 1


@pytest.mark.parametrize(
    'change, field, words',
    [
        (lambda j: j['items'][0].pop('status'), 'status', 'item 0, has no status'),
        (lambda j: j['items'][1].pop('module_id'), 'module_id', 'item 1, has no module_id'),
        (lambda j: j['items'][0].pop('reboot_required'), 'reboot_required', 'item 0, has no reboot_required'),
        (lambda j: j['items'][0].update(status='skipped'), 'status', "a status 'skipped'"),
        (lambda j: j.update(state='done'), 'state', "a state 'done'"),
        (lambda j: j.update(version=agent_runner.JOURNAL_VERSION + 1), 'version', 'job format %d' % (agent_runner.JOURNAL_VERSION + 1)),
        (lambda j: j.update(items={'0': {}}), 'items', 'has a items of type dict'),
        (lambda j: j.pop('job_id'), 'job_id', 'a job journal on this server has no job_id'),
    ],
)
def test_a_journal_another_agent_wrote_is_a_clear_error(change, field, words):
    error = refused(contract.check_journal, journal_with(change), '0.9.0')
    assert error.code == 'agent_version_mismatch' and error.details['field'] == field
    assert words in error.msg and 'installed: 0.9.0' in error.msg and 'exup.fleet.exup_agent' in error.msg


def test_state_records():
    good = {'modules': {'system-bios': {'previous': '1.1', 'block': 'reboot_required', 'boot_id': '', 'staged': '1.2'}, 'raid-controller': {'previous': '5.0'}}}
    assert contract.check_state(good) is good
    assert contract.check_state({}) == {}
    for state, words in (
        ([], 'is not a JSON object'),
        ({'modules': []}, 'has modules of type list'),
        ({'modules': {'system-bios': 'blocked'}}, 'module system-bios, is not a JSON object'),
        ({'modules': {'system-bios': {'block': 'apply_failed'}}}, 'module system-bios, has no boot_id'),
        ({'modules': {'system-bios': {'block': 'frozen', 'boot_id': 'b'}}}, "a block 'frozen'"),
    ):
        error = refused(contract.check_state, state, '2.0.0')
        assert error.code == 'agent_version_mismatch' and words in error.msg and 'installed: 2.0.0' in error.msg


# ---------------------------------------------------------------------------- exup_host's answers
ANSWER_ITEM = {'package_id': 'p', 'module_id': 'system-bios', 'action': 'install', 'status': 'succeeded', 'reboot_required': True, 'exit_code': 0}
ANSWER_JOB: dict = {
    'job_id': 'j1',
    'state': 'finished',
    'done': 1,
    'total': 1,
    'recovered': False,
    'runner_lost': False,
    'error': None,
    'items': [ANSWER_ITEM],
}


def test_a_job_answer_as_exup_host_gives_it_passes_and_is_returned_as_it_is():
    answer = {'changed': True, 'job': ANSWER_JOB, 'versions_after': {'system-bios': '1.1'}, 'modules': {}, 'agent': None, 'output': 'x'}
    assert contract.check_answer('status', answer) is answer
    assert contract.check_answer('unknown-phase', {}) == {}  # nothing declared, nothing read


@pytest.mark.parametrize(
    ('phase', 'answer', 'field', 'problem'),
    [
        ('status', {}, 'status answer.job', 'is missing'),
        ('status', {'job': dict(ANSWER_JOB, done='1')}, 'status answer.job.done', 'must be of type int, not str'),
        ('status', {'job': dict(ANSWER_JOB, state='paused')}, 'status answer.job.state', "must be one of queued, running, finished, not 'paused'"),
        ('status', {'job': dict(ANSWER_JOB, items=[dict(ANSWER_ITEM, extra=1)])}, 'status answer.job.items[0].extra', 'is not a field'),
        ('start', {'job': ANSWER_JOB, 'versions_after': {'system-bios': 1}}, 'start answer.versions_after[system-bios]', 'must be of type str, not int'),
        ('cancel', {'job': ANSWER_JOB}, 'cancel answer.changed', 'is missing'),
        ('agent_install', {'agent': {'version': '1.0'}}, 'agent_install answer.agent.installed', 'is missing'),
        ('logs', {'files': ['a', 2]}, 'logs answer.files[1]', 'must be of type str, not int'),
    ],
)
def test_an_answer_that_breaks_the_contract_is_contract_invalid_naming_the_field(phase, answer, field, problem):
    with pytest.raises(ExupError) as raised:
        contract.check_answer(phase, answer)
    assert (raised.value.code, raised.value.details['field']) == ('contract_invalid', field)
    assert problem in raised.value.msg
