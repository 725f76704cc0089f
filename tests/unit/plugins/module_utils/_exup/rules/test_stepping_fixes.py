# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review fixes of stepping stones and the locked plan (issue 13 items 7 and 8).

- a path applied in one run (1 -> 2 -> 3, no reboot) is verified on its last step only;
- with no module named, a module without a path is skipped, not a refusal of the whole server;
- a locked plan with stepping stones keeps the path and pins the final target, so it can be applied;
- a hand-edited plan file of the wrong shape is plan_invalid, never a crash;
- the offered list comes from one rule function on both apply paths.
"""

from __future__ import annotations

import ast
import copy
import pathlib

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report, locked_plan as lp, plan

AGENT = apply_report.ApplyPlace('srv1')
BMC = apply_report.ApplyPlace('srv1', bmc_address='127.0.0.1')
COLLECTION = pathlib.Path(__file__).resolve().parents[6]


def info(version, module='system-bios', date='2024-01-01', reboot=False, minimum=None):
    return PackageInfo(
        '%s_%s' % (module, version), module, module, version, date, ['M1'], ['linux'], 'linux', True, reboot, False, False, './i', upgrade_from_min=minimum
    )


def job_items(rows, statuses):
    """The items a job reports for planned rows (the agent's keys)."""
    return [dict(row, status=status, cause=None, outcome='finished') for row, status in zip(rows, statuses)]


# --------------------------------------------------------------------------- 1: one run through several steps

ONE_RUN = [info('2'), info('3', minimum='2')]  # 1 -> 2 -> 3, neither needs a reboot


def one_run_rows():
    items, _skipped = plan.build_plan({'system-bios': plan.ModuleState('system-bios', '1')}, ONE_RUN, None)
    rows = [item.as_dict() for item in items]
    assert [(row['from_version'], row['to_version']) for row in rows] == [('1', '2'), ('2', '3')]
    return rows


@pytest.mark.parametrize('place', [AGENT, BMC])
def test_steps_of_one_run_that_reach_the_target_succeed(place):
    results = apply_report.package_results(job_items(one_run_rows(), ['succeeded', 'succeeded']), place, {'system-bios': '3'})
    assert [(row['status'], row.get('error')) for row in results] == [('succeeded', None), ('succeeded', None)]
    summary = apply_report.apply_summary(apply_report.FinishedApply(results, code='apply_finished'), place)
    assert not summary.get('failed') and summary['msg'].startswith('2 of 2') if place is AGENT else not summary.get('failed')


def test_the_last_step_is_still_verified():
    # stuck at the stone: the last step reported success but did not take effect
    results = apply_report.package_results(job_items(one_run_rows(), ['succeeded', 'succeeded']), AGENT, {'system-bios': '2'})
    assert [(row['status'], row.get('error')) for row in results] == [('succeeded', None), ('failed', 'succeeded_unchanged')]
    assert 'is 2, not 3' in results[1]['cause']


def test_an_intermediate_step_that_did_nothing_is_caught():
    # nothing changed at all: both steps are "succeeded but unchanged"
    results = apply_report.package_results(job_items(one_run_rows(), ['succeeded', 'succeeded']), AGENT, {'system-bios': '1'})
    assert [row.get('error') for row in results] == ['succeeded_unchanged', 'succeeded_unchanged']
    assert 'is 1, not 2' in results[0]['cause']


def test_a_stone_before_a_staged_last_step_is_verified_on_its_own_version():
    packages = [info('2'), info('3', reboot=True, minimum='2')]  # 1 -> 2 (active) -> 3 (staged until the restart)
    items, _skipped = plan.build_plan({'system-bios': plan.ModuleState('system-bios', '1')}, packages, None)
    rows = [item.as_dict() for item in items]
    results = apply_report.package_results(job_items(rows, ['succeeded', 'succeeded']), AGENT, {'system-bios': '2'})
    assert [(row['status'], row['staged']) for row in results] == [('succeeded', False), ('succeeded', True)]


# --------------------------------------------------------------------------- 3: a module without a path


def no_path_case():
    states = {'system-bios': plan.ModuleState('system-bios', '1'), 'bmc-firmware': plan.ModuleState('bmc-firmware', '8')}
    return states, [info('3', minimum='2'), info('9', module='bmc-firmware')]


def test_without_named_modules_a_module_without_a_path_is_skipped():
    states, packages = no_path_case()
    items, skipped = plan.build_plan(states, packages, None)
    assert [(item.module_id, item.to_version) for item in items] == [('bmc-firmware', '9')]
    assert skipped['system-bios'].startswith('no upgrade path from 1 to 3') and skipped['system-bios'].endswith('(upgrade_path_missing)')


def test_a_named_module_without_a_path_is_still_refused():
    states, packages = no_path_case()
    with pytest.raises(plan.PlanError) as caught:
        plan.build_plan(states, packages, {'system-bios': 'latest', 'bmc-firmware': 'latest'})
    assert caught.value.code == 'upgrade_path_missing' and caught.value.details['module'] == 'system-bios'


# --------------------------------------------------------------------------- 2: a locked plan with stepping stones

STONES = [info('1.1', reboot=True, minimum='1.0'), info('1.2', reboot=True, minimum='1.1')]


def stepping_result():
    items, skipped = plan.build_plan({'system-bios': plan.ModuleState('system-bios', '1.0')}, STONES, None)
    rows = [dict(item.as_dict(), sha256='a' * 64, size=1) for item in items]
    offered = [{'package_id': one.package_id, 'module_id': one.module_id, 'version': one.version, 'sha256': 'a' * 64} for one in STONES]
    return {'changed': True, 'model': 'M1', 'plan': rows, 'skipped_modules': skipped, 'offered': offered}


def stepping_inputs():
    return lp.Inputs('managed', {}, {'web1': {'chosen': True, 'vars': {}, 'baseline': None, 'result': stepping_result()}})


def test_the_locked_item_shows_the_path_and_its_final_target():
    item = lp.artifact(stepping_inputs())['servers']['web1']['packages'][0]
    assert (item['to_version'], item['target_version']) == ('1.1', '1.2')
    assert [(step['version'], step['this_run']) for step in item['path']] == [('1.1', True), ('1.2', False)]


def test_a_locked_stepping_plan_pins_the_final_target_and_applies_the_locked_steps():
    document = lp.artifact(stepping_inputs())
    held = lp.verify(document, stepping_inputs())['servers']['web1']
    assert held['versions'] == lp.pinned_versions(held) == {'system-bios': '1.2'}
    state = {'system-bios': plan.ModuleState('system-bios', '1.0')}
    # pinned to the stone, the default latest_only refuses it: such a plan could never be applied
    with pytest.raises(plan.PlanError) as caught:
        plan.build_plan(state, STONES, {'system-bios': '1.1'})
    assert caught.value.code == 'latest_only'
    # pinned to the final target (latest_only as the plan step had it): exactly the locked steps
    items, _skipped = plan.build_plan(state, STONES, held['versions'])
    assert [(item.package_id, item.to_version) for item in items] == [(row['package_id'], row['to_version']) for row in held['packages']]


def test_a_plan_without_stepping_stones_reads_as_before():
    row = dict(stepping_result()['plan'][0], path=None)
    assert sorted(lp.server_plan({'plan': [row]})['packages'][0]) == sorted(lp.ITEM_KEYS)


# --------------------------------------------------------------------------- 4: hostile plan files


def resealed(document):
    """A hand edit whose author recomputed the plan digest too (a server that is no mapping has none to recompute)."""
    if all(isinstance(row, dict) for row in document['servers'].values()):
        document['digests']['plan'] = lp.plan_digest(document['servers'])
    return document


def edited(change):
    document = copy.deepcopy(lp.artifact(stepping_inputs()))
    change(document['servers'])
    return resealed(document)


@pytest.mark.parametrize(
    'change, says',
    [
        (lambda servers: servers['web1'].__setitem__('packages', ['x']), 'server web1 package 1 is not a mapping'),
        (lambda servers: servers['web1'].__setitem__('packages', [{}]), 'server web1 package 1 has no package_id, module_id, action'),
        (lambda servers: servers['web1'].__setitem__('packages', 'bios'), 'server web1 has packages that are not a list'),
        (lambda servers: servers.__setitem__('web1', ['x']), 'server web1 is not a mapping'),
        (lambda servers: servers['web1']['packages'][0].__setitem__('sha256', 7), 'server web1 package 1 has sha256 of the wrong type'),
        (lambda servers: servers['web1']['packages'][0].__setitem__('reboot_required', 'yes'), 'has reboot_required of the wrong type'),
        (lambda servers: servers['web1']['packages'][0].__setitem__('path', 'all'), 'server web1 package 1 has a path that is not a list of steps'),
        (lambda servers: servers['web1']['packages'][0]['path'].__setitem__(1, {}), 'server web1 package 1 step 2 has no version'),
        (lambda servers: servers['web1']['packages'][0].__setitem__('target_version', '9.9'), "target_version that is not its path's last version"),
        (lambda servers: servers['web1'].__setitem__('wave', 'one'), 'server web1 has a wave that is not a number'),
    ],
)
def test_a_resealed_hand_edit_of_the_wrong_shape_is_plan_invalid(change, says):
    with pytest.raises(lp.LockedPlanError) as caught:
        lp.verify(edited(change), stepping_inputs())
    assert caught.value.code == 'plan_invalid'
    assert caught.value.msg.startswith('the plan file is not a locked plan as playbooks/plan.yml writes it: ') and says in caught.value.msg


def test_a_resealed_edit_of_the_right_shape_is_stale_not_invalid():
    document = edited(lambda servers: servers['web1']['packages'][0].__setitem__('to_version', '1.2'))
    with pytest.raises(lp.LockedPlanError) as caught:
        lp.verify(document, stepping_inputs())
    assert caught.value.code == 'plan_stale' and caught.value.details['stale'] == ['plan']


# --------------------------------------------------------------------------- 6: one rule builds the offered list


@pytest.mark.parametrize('path', ['plugins/action/exup_apply.py', 'plugins/plugin_utils/_exup_bmc.py'])
def test_both_apply_paths_take_the_offered_list_from_the_rule(path):
    tree = ast.parse((COLLECTION / path).read_text(encoding='utf-8'))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and ast.unparse(node.func) == 'locked_plan.offered']
    inline = [node for node in ast.walk(tree) if isinstance(node, ast.Dict) and {getattr(key, 'value', None) for key in node.keys} == set(lp.OFFERED_KEYS)]
    assert calls and not inline, path


def test_offered_rows_sorted_by_id():
    class Stored:
        def __init__(self, package_id, sha256):
            self.package_id, self.module_id, self.version, self.sha256 = package_id, 'system-bios', package_id[-1], sha256

    assert [row['package_id'] for row in lp.offered([Stored('b2', 'x'), Stored('a1', 'y')])] == ['a1', 'b2']
