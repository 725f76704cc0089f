# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The locked plan's digests, waves and refusal (issue 13.7)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import locked_plan as lp

BIOS = {'package_id': 'bios-1.1', 'module_id': 'system-bios', 'version': '1.1', 'sha256': 'a' * 64}
BMC = {'package_id': 'bmc-2.0', 'module_id': 'bmc-firmware', 'version': '2.0', 'sha256': 'b' * 64}


def result(offered=(BIOS, BMC)):
    return {
        'changed': True,
        'model': 'PRIMERGY RX2540 M7',
        'plan': [
            {
                'package_id': 'bios-1.1',
                'module_id': 'system-bios',
                'action': 'install',
                'from_version': '1.0',
                'to_version': '1.1',
                'sha256': 'a' * 64,
                'reboot_required': True,
                'size': 10,
                'release_date': '2026-01-01',
                'command': 'x',
            }
        ],
        'skipped_modules': {},
        'offered': list(offered),
    }


def inputs(hosts=None, settings=None, target='managed'):
    if hosts is None:
        hosts = {name: {'chosen': True, 'vars': {'exup_host_root': '/lab/' + name}, 'baseline': None, 'result': result()} for name in ('web1', 'web2', 'db1')}
    return lp.Inputs(target, settings or {'serial': [1, '50%'], 'allow_reboot': True}, hosts)


def test_same_inputs_same_artifact_text():
    assert lp.render(lp.artifact(inputs())) == lp.render(lp.artifact(inputs()))


def test_noise_does_not_change_digests():
    first = inputs()
    hosts = dict(reversed(list(first.hosts.items())))  # host order of the inventory
    hosts['web1'] = copy.deepcopy(hosts['web1'])
    hosts['web1']['result']['offered'] = [BMC, BIOS]  # order the repository lists packages in
    hosts['web1']['vars'] = dict(reversed(list(hosts['web1']['vars'].items())))
    again = lp.Inputs('managed', {'allow_reboot': 'true', 'serial': ['1', '50%']}, hosts)
    assert lp.artifact(first)['digests'] == lp.artifact(again)['digests']
    assert lp.render(lp.artifact(first)) == lp.render(lp.artifact(again))


@pytest.mark.parametrize(
    'change, digest',
    [
        (lambda hosts: hosts['web1']['result']['offered'].append({**BIOS, 'package_id': 'bios-1.2', 'version': '1.2'}), 'repository'),
        (lambda hosts: hosts['web1']['result']['offered'].__setitem__(0, {**BIOS, 'sha256': 'c' * 64}), 'repository'),
        (lambda hosts: hosts['db1'].__setitem__('baseline', {'system-bios': '1.1'}), 'baseline'),
        (lambda hosts: hosts['db1'].__setitem__('chosen', False), 'inventory'),
        (lambda hosts: hosts['db1']['vars'].__setitem__('exup_host_root', '/other'), 'inventory'),
        (lambda hosts: hosts.__setitem__('new1', {'chosen': False, 'vars': {}}), 'inventory'),
    ],
)
def test_relevant_change_changes_its_digest(change, digest):
    before = lp.artifact(inputs())['digests']
    changed = inputs()
    changed = lp.Inputs(changed.target, changed.settings, copy.deepcopy(dict(changed.hosts)))
    change(changed.hosts)
    after = lp.artifact(changed)['digests']
    assert before[digest] != after[digest]


def test_settings_are_in_the_inventory_digest():
    base = lp.artifact(inputs())['digests']['inventory']
    assert lp.artifact(inputs(settings={'serial': [1, '50%'], 'allow_reboot': False}))['digests']['inventory'] != base
    assert lp.artifact(inputs(settings={'serial': [2], 'allow_reboot': True}))['digests']['inventory'] != base
    assert lp.artifact(inputs(target='managed:db'))['digests']['inventory'] != base


def test_baseline_none_and_changed():
    assert lp.artifact(inputs())['digests']['baseline'] == 'none'
    one = inputs()
    one.hosts['web1']['baseline'] = {'rules': {'system-bios': {'version': '1.1'}}}
    two = copy.deepcopy(dict(one.hosts))
    two['web1']['baseline'] = {'rules': {'system-bios': {'version': '1.2'}}}
    assert lp.artifact(one)['digests']['baseline'] not in ('none', lp.artifact(lp.Inputs('managed', one.settings, two))['digests']['baseline'])


def test_waves_like_ansible_serial():
    names = ['h%d' % index for index in range(7)]
    assert lp.waves(names, [1, '50%']) == [['h0'], names[1:4], names[4:7]]
    assert lp.waves(names, '100%') == [names]
    assert lp.waves(names, 3) == [names[:3], names[3:6], names[6:]]
    assert lp.waves(names, '10%') == [[name] for name in names]  # rounded down, at least one
    assert not lp.waves([], 2)
    with pytest.raises(lp.LockedPlanError) as err:
        lp.waves(names, 'many')
    assert err.value.code == 'invalid_settings'


def test_artifact_waves_and_reboots():
    document = lp.artifact(inputs())
    assert document['waves'] == [['db1'], ['web1'], ['web2']]  # 50% of 3 is 1
    assert document['servers']['db1']['wave'] == 1 and document['servers']['web2']['wave'] == 3
    assert document['servers']['web1']['reboot'] == 'allowed'
    assert document['servers']['web1']['packages'][0] == {
        'package_id': 'bios-1.1',
        'module_id': 'system-bios',
        'action': 'install',
        'from_version': '1.0',
        'to_version': '1.1',
        'sha256': 'a' * 64,
        'reboot_required': True,
    }
    assert lp.pinned_versions(document['servers']['web1']) == {'system-bios': '1.1'}


def test_failed_and_unchosen_servers_are_not_waved():
    hosts = dict(inputs().hosts)
    hosts['db1'] = {'chosen': True, 'vars': {}, 'result': {'failed': True, 'msg': 'agent missing', 'error': 'agent_missing'}}
    hosts['web2'] = {'chosen': False, 'vars': {}, 'result': None}
    document = lp.artifact(lp.Inputs('managed', {}, hosts))
    assert document['waves'] == [['web1']]
    assert document['servers']['db1']['error'] == 'agent_missing' and document['servers']['db1']['wave'] is None
    assert document['not_planned'] == {'web2': 'not chosen'}


def test_verify_unchanged_returns_the_servers_to_apply():
    document = lp.artifact(inputs())
    assert sorted(lp.verify(document, inputs())['servers']) == ['db1', 'web1', 'web2']


def refusal(document, now):
    with pytest.raises(lp.LockedPlanError) as err:
        lp.verify(document, now)
    return err.value


def test_verify_refuses_a_new_package():
    document = lp.artifact(inputs())
    now = inputs()
    now.hosts['web2']['result']['offered'].append({**BIOS, 'package_id': 'bios-1.2', 'version': '1.2'})
    exc = refusal(document, now)
    assert exc.code == 'plan_stale' and exc.details['stale'] == ['repository'] and 'repository' in exc.msg


def test_verify_refuses_a_changed_baseline():
    document = lp.artifact(inputs())
    now = inputs()
    now.hosts['web1']['baseline'] = {'system-bios': 'previous'}
    exc = refusal(document, now)
    assert exc.code == 'plan_stale' and exc.details['stale'] == ['baseline']


def test_verify_refuses_a_package_no_longer_offered():
    document = lp.artifact(inputs())
    now = inputs()
    now.hosts['web1']['result'] = result(offered=(BMC,))
    exc = refusal(document, now)
    assert exc.code == 'plan_stale' and 'repository' in exc.details['stale']
    assert exc.details['missing_packages'] == [{'server': 'web1', 'package_id': 'bios-1.1', 'sha256': 'a' * 64}]


def test_verify_refuses_a_server_whose_plan_changed():
    document = lp.artifact(inputs())
    now = inputs()
    now.hosts['web1']['result']['plan'][0]['from_version'] = '1.05'  # updated by hand since the review
    exc = refusal(document, now)
    assert exc.details['stale'] == ['plan'] and exc.details['servers_differ'] == ['web1']


def test_hand_edited_or_foreign_artifact_is_invalid():
    document = lp.artifact(inputs())
    edited = copy.deepcopy(document)
    edited['servers']['web1']['packages'][0]['to_version'] = '9.9'
    assert refusal(edited, inputs()).code == 'plan_invalid'
    assert refusal({'servers': []}, inputs()).code == 'plan_invalid'
    assert refusal(dict(document, format=99), inputs()).code == 'plan_invalid'
    assert refusal('text', inputs()).code == 'plan_invalid'


def test_only_present_is_locked():
    with pytest.raises(lp.LockedPlanError):
        lp.artifact(inputs(settings={'state': 'absent'}))
