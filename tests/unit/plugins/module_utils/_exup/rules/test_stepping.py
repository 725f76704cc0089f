# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stepping-stone upgrades (rules/stepping.py): brute force against an independent exhaustive search, plus hand cases."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import stepping
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
