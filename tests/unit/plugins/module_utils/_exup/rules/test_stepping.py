# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stepping-stone upgrades (rules/stepping.py): brute force against an independent exhaustive search, plus hand cases."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import contract
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import apply_report, plan, stepping
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key


@dataclasses.dataclass(frozen=True)
class Pkg:
    version: str
    upgrade_from_min: str | None = None
    reboot_required: bool = False


def exhaustive(current, target, packages):
    """Every increasing chain of intermediates ending at the target; the valid one with the least (reboots, steps, versions)."""
    low, high = version_key(current), version_key(target.version)
    middle = sorted((p for p in packages if low < version_key(p.version) < high), key=lambda p: version_key(p.version))
    best = None
    for size in range(len(middle) + 1):
        for chain in itertools.combinations(middle, size):
            path = list(chain) + [target]
            running, valid = current, True
            for step in path:
                if not (step.upgrade_from_min is None or running is None or version_key(running) >= version_key(step.upgrade_from_min)):
                    valid = False
                    break
                running = step.version
            if valid:
                cost = (sum(step.reboot_required for step in path), len(path), tuple(version_key(step.version) for step in path))
                if best is None or cost < best[0]:
                    best = (cost, path)
    return best


def package_sets(versions):
    """Every subset of ``versions`` with every upgrade_from_min (none or a lower version) and every reboot flag."""
    for size in range(1, len(versions) + 1):
        for chosen in itertools.combinations(versions, size):
            per_version = []
            for version in chosen:
                minimums = [None] + [str(low) for low in range(1, int(version))]
                per_version.append([Pkg(version, low, reboot) for low in minimums for reboot in (False, True)])
            yield from itertools.product(*per_version)


@pytest.mark.parametrize('current', [None, '1', '3'])
def test_brute_force_matches_exhaustive_search(current):
    checked = 0
    for packages in package_sets(['2', '3', '4', '5', '6']):
        for target in packages:
            if current is not None and version_key(target.version) <= version_key(current):
                continue
            verdict = stepping.plan_path(current, target, packages)
            expected = exhaustive(current, target, packages)
            if expected is None:
                assert verdict.steps is None, (current, target, packages)
                assert verdict.needed is not None and 'no upgrade path' in verdict.reason
            else:
                assert verdict.steps == expected[1], (current, target, packages)
                assert verdict.reboots == expected[0][0]
            checked += 1
    assert checked > 1000


def test_old_packages_go_direct():
    target = Pkg('5', reboot_required=True)
    verdict = stepping.plan_path('1', target, [Pkg('2'), Pkg('3'), target])
    assert verdict.steps == [target] and verdict.reboots == 1


def test_issue_example_1_2_3():
    two, three = Pkg('2', '1', True), Pkg('3', '2', True)
    verdict = stepping.plan_path('1', three, [two, three])
    assert verdict.steps == [two, three] and verdict.reboots == 2
    assert stepping.run_steps(verdict.steps) == [two]
    assert stepping.plan_path('2', three, [two, three]).steps == [three]


def test_fewest_reboots_over_fewest_steps():
    a, b, c = Pkg('2', None, True), Pkg('3', None, False), Pkg('4', None, False)
    target = Pkg('5', '2')
    # via 2 (reboot) is one step shorter than 3 -> 4, but 3 alone suffices with no reboot
    verdict = stepping.plan_path('1', target, [a, b, c, target])
    assert verdict.steps == [b, target] and verdict.reboots == 0


def test_tie_break_lowest_stones():
    a, b = Pkg('2'), Pkg('3')
    target = Pkg('5', '2')
    assert stepping.plan_path('1', target, [b, a, target]).steps == [a, target]


def test_no_path_names_the_missing_version():
    target = Pkg('5', '3')
    verdict = stepping.plan_path('1', target, [Pkg('2'), target])
    assert verdict.steps is None and verdict.needed == '3'
    assert '5 needs 3 or later first' in verdict.reason and 'holds no version from 3 below 5' in verdict.reason


def test_no_path_follows_the_chain():
    four, target = Pkg('4', '3'), Pkg('5', '4')
    verdict = stepping.plan_path('1', target, [four, target])
    assert verdict.needed == '3'
    assert '5 needs 4 or later first; 4 needs 3 or later first' in verdict.reason


def test_fresh_install_has_no_minimum():
    target = Pkg('5', '4', True)
    assert stepping.plan_path(None, target, [target]).steps == [target]


def test_firmware_versions():
    stone, target = Pkg('R1.5a'), Pkg('R2.0', 'R1.5')
    assert stepping.plan_path('R1.4', target, [stone, target]).steps == [stone, target]


def test_run_steps_stops_after_first_reboot():
    steps = [Pkg('2'), Pkg('3', reboot_required=True), Pkg('4'), Pkg('5', reboot_required=True)]
    assert stepping.run_steps(steps) == steps[:2]
    assert stepping.run_steps(steps[:1]) == steps[:1]


# --------------------------------------------------------------------------- in build_plan


def info(version, module='system-bios', date='2024-01-01', reboot=False, minimum=None):
    return PackageInfo(
        '%s_%s' % (module, version), module, module, version, date, ['M1'], ['linux'], 'linux', True, reboot, False, False, './i', upgrade_from_min=minimum
    )


def test_plan_without_minimum_is_unchanged():
    items, _skipped = plan.build_plan({'system-bios': plan.ModuleState('system-bios', '1')}, [info('2'), info('3')], None)
    assert [item.to_version for item in items] == ['3'] and 'path' not in items[0].as_dict()


def test_plan_lists_the_path_and_stops_after_the_first_reboot():
    packages = [info('2', reboot=True, minimum='1'), info('3', reboot=True, minimum='2')]
    items, _skipped = plan.build_plan({'system-bios': plan.ModuleState('system-bios', '1')}, packages, None)
    assert [(item.from_version, item.to_version) for item in items] == [('1', '2')]
    assert items[0].path == [
        {'version': '2', 'package_id': 'system-bios_2', 'reboot_required': True, 'this_run': True},
        {'version': '3', 'package_id': 'system-bios_3', 'reboot_required': True, 'this_run': False},
    ]
    # the next run, after the restart, continues
    items, _skipped = plan.build_plan({'system-bios': plan.ModuleState('system-bios', '2', previous='1')}, packages, None)
    assert [(item.from_version, item.to_version) for item in items] == [('2', '3')] and items[0].path is None


def test_plan_steps_without_reboot_in_one_run_in_path_order():
    # release dates out of order and a reboot package of another module: the path keeps its order
    packages = [info('2', date='2024-03-01'), info('3', date='2024-01-01', minimum='2'), info('9', module='bmc-firmware', date='2023-01-01', reboot=True)]
    states = {'system-bios': plan.ModuleState('system-bios', '1'), 'bmc-firmware': plan.ModuleState('bmc-firmware', '8')}
    items, _skipped = plan.build_plan(states, packages, None)
    assert [(item.module_id, item.from_version, item.to_version) for item in items] == [
        ('system-bios', '1', '2'),
        ('system-bios', '2', '3'),
        ('bmc-firmware', '8', '9'),
    ]
    assert all(step['this_run'] for step in items[0].path)


def test_plan_refuses_without_a_path():
    with pytest.raises(plan.PlanError) as caught:
        plan.build_plan({'system-bios': plan.ModuleState('system-bios', '1')}, [info('3', minimum='2')], {'system-bios': 'latest'})
    assert caught.value.code == 'upgrade_path_missing' and caught.value.details['needed'] == '2'
    assert 'no upgrade path from 1 to 3' in caught.value.msg


def test_diff_shows_the_first_version_before():
    packages = [info('2'), info('3', minimum='2')]
    items, _skipped = plan.build_plan({'system-bios': plan.ModuleState('system-bios', '1')}, packages, None)
    rows = [item.as_dict() for item in items]
    assert apply_report.apply_diff(rows, apply_report.ApplyPlace('s1')) == {'before': {'system-bios': '1'}, 'after': {'system-bios': '3'}}
    assert 'path' not in contract.HostItem.for_plan(rows[0], 'a' * 64, 1).as_dict()
