# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generation management (003 §2.2.2) as the pure function generation_plan.

hypothesis is not a dependency of the collection, so the property test below draws its cases
from a seeded random generator and compares with a deliberately naive reference implementation.
"""

from __future__ import annotations

import collections
import random

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Candidate, Server, generation_plan
from ansible_collections.exup.fleet.plugins.module_utils._exup.version import version_key

BIOS = 'system-bios'
BMC = 'bmc-firmware'


def pkg(version, models=('M1',), os=('linux',), module=BIOS, package_id=None):
    return Candidate(package_id or '%s-%s-%s-%s' % (module, version, '+'.join(models), '+'.join(os)), module, version, tuple(models), tuple(os))


def server(model='M1', os='linux', manager='mgr-a', name=None, **modules):
    return Server(
        manager_id=manager,
        name=name or '%s-%s-%s' % (manager, model, os),
        model=model,
        os=os,
        modules={module.replace('_', '-'): state for module, state in modules.items()},
    )


def ids(candidates):
    return {c.package_id for c in candidates}


def test_three_newest_per_model_os_module():
    versions = [pkg(v) for v in ('1.02', '1.10', '1.9', '2.0', '1.1')]
    plan = generation_plan(versions, [server()])
    by_version = {c.version: c.package_id for c in versions}
    assert plan.wanted() == {by_version['2.0'], by_version['1.10'], by_version['1.9']}
    assert plan.generation == {by_version['2.0']: 0, by_version['1.10']: 1, by_version['1.9']: 2}
    assert plan.previous == set()


def test_modules_have_separate_windows():
    candidates = [pkg(v) for v in ('1', '2', '3', '4')] + [pkg(v, module=BMC) for v in ('1', '2')]
    plan = generation_plan(candidates, [server()])
    assert plan.wanted() == ids(candidates) - {pkg('1').package_id}


def test_os_any_counts_for_every_os():
    candidates = [pkg('1', os=('any',)), pkg('2', os=('linux',)), pkg('3', os=('windows',))]
    plan = generation_plan(candidates, [server(os='windows')])
    assert plan.wanted() == {pkg('1', os=('any',)).package_id, pkg('3', os=('windows',)).package_id}
    assert plan.generation[pkg('1', os=('any',)).package_id] == 1


def test_two_oses_of_one_model_have_separate_windows():
    """003 §2.2.2: one model may show more than 3 packages when its servers run different OSes."""
    linux = [pkg(v, os=('linux',)) for v in ('1', '2', '3', '4')]
    windows = [pkg(v, os=('windows',)) for v in ('1', '2', '3', '4')]
    plan = generation_plan(linux + windows, [server(os='linux'), server(os='windows', name='w')])
    assert plan.wanted() == ids(linux[1:] + windows[1:])
    assert len(plan.wanted()) == 6


def test_an_any_package_is_kept_if_one_os_keeps_it():
    shared = pkg('1', os=('any',))
    linux = [pkg(v, os=('linux',)) for v in ('2', '3', '4')]
    plan = generation_plan([shared] + linux, [server(os='linux'), server(os='windows', name='w')])
    assert shared.package_id in plan.wanted()  # out of the linux window, generation 0 of the windows one
    assert plan.generation[shared.package_id] == 0


def test_multi_model_package_kept_if_any_model_keeps_it():
    multi = pkg('1', models=('M1', 'M2'))
    newer_m1 = [pkg(v, models=('M1',)) for v in ('2', '3', '4')]
    plan = generation_plan([multi] + newer_m1, [server(model='M1'), server(model='M2')])
    assert multi.package_id in plan.wanted()
    assert plan.generation[multi.package_id] == 0  # best rank over the sets
    plan = generation_plan([multi] + newer_m1, [server(model='M1')])
    assert multi.package_id not in plan.wanted()


def test_no_servers_nothing_wanted():
    plan = generation_plan([pkg(v) for v in ('1', '2')], [])
    assert plan.wanted() == set() and plan.needed_by == {} and plan.previous == set() and plan.kept({pkg('1').package_id}) == set()


def test_packages_of_unmanaged_models_or_oses_are_not_wanted():
    plan = generation_plan([pkg('1', models=('M9',)), pkg('2', os=('windows',))], [server()])
    assert plan.wanted() == set()


def test_equal_versions_are_one_generation():
    """'1.0' and '1.00' are the same generation; two packages of one version both stay."""
    candidates = [pkg('1.0', package_id='a'), pkg('1.00', package_id='b'), pkg('2', package_id='c'), pkg('3', package_id='d'), pkg('0.9', package_id='e')]
    plan = generation_plan(candidates, [server()])
    assert plan.generation == {'d': 0, 'c': 1, 'a': 2, 'b': 2}


def test_previous_generation_kept_only_when_present_never_wanted():
    candidates = [pkg(v) for v in ('1.0', '1.1', '1.2', '1.3', '1.4')]
    old = pkg('1.0').package_id
    srv = server(system_bios={'current': '1.4', 'previous': '1.00'})  # version keys match: 1.00 == 1.0
    plan = generation_plan(candidates, [srv])
    assert old not in plan.wanted()  # a sync never downloads it
    assert plan.previous == {old}
    assert old in plan.kept({old})  # but keeps it when the store holds it
    assert old not in plan.kept(set())
    assert pkg('1.1').package_id not in plan.kept({pkg('1.1').package_id})  # 4th generation, not anyone's previous
    assert plan.needed_by[old] == {'mgr-a'}


def test_previous_inside_the_window_is_not_listed_as_previous():
    candidates = [pkg(v) for v in ('1', '2', '3')]
    plan = generation_plan(candidates, [server(system_bios={'current': '3', 'previous': '2'})])
    assert plan.previous == set() and plan.wanted() == ids(candidates)


def test_previous_must_target_the_server():
    other_model = pkg('1', models=('M2',))
    other_os = pkg('1', os=('windows',))
    other_module = pkg('1', module=BMC)
    newer = [pkg(v) for v in ('2', '3', '4')]
    plan = generation_plan([other_model, other_os, other_module] + newer, [server(system_bios={'current': '4', 'previous': '1'})])
    assert plan.previous == set()
    # a current-only module state or a bare version adds nothing
    plan = generation_plan(newer, [server(system_bios={'current': '4'}), server(name='x', system_bios={})])
    assert plan.previous == set()


def test_deleted_packages_still_count_in_the_ranks():
    """The caller passes tombstoned packages as candidates: deleting the newest never pulls the 4th into the window."""
    candidates = [pkg(v) for v in ('1', '2', '3', '4')]
    plan = generation_plan(candidates, [server()])
    assert pkg('1').package_id not in plan.wanted()
    assert pkg('4').package_id in plan.wanted()  # the caller (repository/sync) skips it because of its tombstone


def test_used_by_other_manager():
    only_b = pkg('1', models=('MB',))
    shared = pkg('1', models=('MA', 'MB'), package_id='shared')
    only_a = pkg('1', models=('MA',))
    servers = [server(model='MA', manager='mgr-a'), server(model='MB', manager='mgr-b')]
    plan = generation_plan([only_a, only_b, shared], servers)
    assert plan.used_by_other_manager(only_b.package_id, 'mgr-a') is True
    assert plan.used_by_other_manager(only_b.package_id, 'mgr-b') is False
    assert plan.used_by_other_manager(only_a.package_id, 'mgr-a') is False
    assert plan.used_by_other_manager('shared', 'mgr-a') is True and plan.used_by_other_manager('shared', 'mgr-b') is True
    assert plan.used_by_other_manager('unknown', 'mgr-a') is False
    assert plan.needed_by['shared'] == {'mgr-a', 'mgr-b'}


def test_previous_generation_counts_as_use_by_that_manager():
    candidates = [pkg(v) for v in ('1', '2', '3', '4')]
    servers = [server(manager='mgr-a'), server(manager='mgr-b', system_bios={'current': '4', 'previous': '1'})]
    plan = generation_plan(candidates, servers)
    assert plan.used_by_other_manager(pkg('1').package_id, 'mgr-a') is True
    assert plan.used_by_other_manager(pkg('1').package_id, 'mgr-b') is False


def test_generations_kept_parameter():
    candidates = [pkg(v) for v in ('1', '2', '3', '4')]
    assert generation_plan(candidates, [server()], generations_kept=1).wanted() == {pkg('4').package_id}


# ----------------------------------------------------------------- property test against a naive reference
def reference_plan(candidates, servers, kept=3):
    """The rule as the guide states it, computed server by server with no cleverness."""
    generation, needed_by, in_window = {}, collections.defaultdict(set), set()
    for srv in servers:
        for module in {c.module_id for c in candidates}:
            mine = [c for c in candidates if c.module_id == module and srv.model in c.models and ('any' in c.os or srv.os in c.os)]
            newest = sorted({version_key(c.version) for c in mine}, reverse=True)[:kept]
            for candidate in mine:
                if version_key(candidate.version) in newest:
                    rank = newest.index(version_key(candidate.version))
                    generation[candidate.package_id] = min(rank, generation.get(candidate.package_id, rank))
                    needed_by[candidate.package_id].add(srv.manager_id)
                    in_window.add(candidate.package_id)
    previous = set()
    for srv in servers:
        for module, state in srv.modules.items():
            for candidate in candidates:
                if (
                    candidate.module_id == module
                    and state.get('previous')
                    and version_key(candidate.version) == version_key(state['previous'])
                    and srv.model in candidate.models
                    and ('any' in candidate.os or srv.os in candidate.os)
                ):
                    needed_by[candidate.package_id].add(srv.manager_id)
                    if candidate.package_id not in in_window:
                        previous.add(candidate.package_id)
    return generation, dict(needed_by), previous


def random_case(rng):
    models, oses, modules = ['M1', 'M2', 'M3'], ['linux', 'windows', 'esxi'], [BIOS, BMC]
    versions = ['1.0', '1.00', '1.1', '1.2a', '1.2', '1.10', '2.0', 'R1.5', 'R1.5a', '3']
    candidates = []
    for index in range(rng.randint(0, 14)):
        candidates.append(
            Candidate(
                'p%d' % index,
                rng.choice(modules),
                rng.choice(versions),
                tuple(rng.sample(models, rng.randint(1, 2))),
                tuple(rng.sample(oses + ['any'], rng.randint(1, 2))),
            )
        )
    servers = []
    for index in range(rng.randint(0, 5)):
        state = {}
        if rng.random() < 0.6:
            state[rng.choice(modules)] = {'current': rng.choice(versions), 'previous': rng.choice(versions)}
        servers.append(Server(rng.choice(['mgr-a', 'mgr-b']), 's%d' % index, rng.choice(models), rng.choice(oses), state))
    return candidates, servers


@pytest.mark.parametrize('seed', range(20))
def test_matches_reference_on_random_cases(seed):
    rng = random.Random(seed)
    for _case in range(50):
        candidates, servers = random_case(rng)
        plan = generation_plan(candidates, servers)
        generation, needed_by, previous = reference_plan(candidates, servers)
        assert plan.generation == generation, (candidates, servers)
        assert plan.needed_by == needed_by, (candidates, servers)
        assert plan.previous == previous, (candidates, servers)
        # invariants of the rule, whatever the implementation
        assert not plan.previous & plan.wanted()
        assert plan.kept(()) == plan.wanted()
        for srv in servers:
            for module in (BIOS, BMC):
                keys = {version_key(c.version) for c in candidates if c.package_id in plan.wanted() and c.module_id == module and c.targets(srv.model, srv.os)}
                assert len(keys) >= min(3, len({version_key(c.version) for c in candidates if c.module_id == module and c.targets(srv.model, srv.os)}))
