# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module documents ``requirements`` (with requirements.txt's lower bounds) and ``contains`` of every dict return (issue 12 item 4).

It covers every file in plugins/modules, so a module added later fails here until its docs are complete.
What a module really returns is compared with its RETURN in tests/unit/plugins/action/test_return_samples.py (controller code).
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.exup.fleet.tests.unit.plugins.modules import docs_check

LIBRARIES = ('requests', 'requests-toolbelt', 'pycurl', 'lxml', 'cryptography', 'pyghmi', 'jmespath', 'granian', 'starlette')


def lower_bounds() -> dict:
    """requirements.txt: project -> its lower bound (``lxml>=5.2`` -> ``5.2``)."""
    bounds = {}
    for line in (docs_check.COLLECTION / 'requirements.txt').read_text().splitlines():
        match = re.match(r'^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^\s;#]*)', line.strip())
        if match:
            bounds[match.group(1).lower()] = match.group(2)
    return bounds


def test_every_module_is_found():
    names = docs_check.module_names()
    assert {'exup_agent', 'exup_apply', 'exup_host', 'exup_info', 'exup_repo_sync'} <= set(names)


@pytest.mark.parametrize('name', docs_check.module_names())
def test_requirements_are_documented_with_the_lower_bounds(name):
    documentation, _returns = docs_check.docs(name)
    requirements = documentation['requirements']
    assert requirements, '%s documents no requirements' % name
    bounds = lower_bounds()
    for entry in requirements:
        assert isinstance(entry, str) and entry.strip(), (name, entry)
        project = re.match(r'^\s*([A-Za-z0-9_.-]+)', entry).group(1).lower()
        if project in bounds:
            assert re.match(r'^\s*%s\s*>=\s*%s\b' % (re.escape(project), re.escape(bounds[project])), entry, re.IGNORECASE), (
                '%s: requirement %r must name requirements.txt lower bound %s>=%s' % (name, entry, project, bounds[project])
            )
        else:
            assert project in ('python',), '%s: requirement %r is no library of requirements.txt (%s)' % (name, entry, ', '.join(LIBRARIES))


@pytest.mark.parametrize('name', docs_check.module_names())
def test_every_dict_return_says_what_it_contains(name):
    _documentation, returns = docs_check.docs(name)
    lacking = docs_check.lacking_contains(returns, mappings=docs_check.MAPPINGS.get(name, ()))
    assert lacking == [], '%s: dict or list-of-dict returns without contains' % name


def test_the_checks_find_what_is_missing():
    returns = {
        'a': {'type': 'dict', 'description': 'x'},
        'b': {'type': 'list', 'elements': 'dict', 'contains': {'c': {'type': 'dict', 'description': 'y'}}},
        'd': {'type': 'list', 'elements': 'str'},
        'e': {'type': 'dict', 'description': 'module id to its state', 'sample': {'bios': {'current': '1', 'versions': [{'version': '1'}]}}},
        'g': {'type': 'dict', 'description': 'a job; C(items) lists its packages', 'contains': {'job_id': {'type': 'str'}}},
        'h': {'type': 'dict', 'description': 'no sample'},
    }
    assert docs_check.lacking_contains(returns, mappings={'e', 'h'}) == ['a', 'b[].c', 'h (a mapping: a dict sample, no contains)']
    result = {
        'changed': True,
        'a': {'k': 1},
        'b': [{'c': {}, 'z': 1}],
        'e': {'raid': {'current': '2', 'other': 2, 'versions': [{'version': '2', 'label': '2'}]}},
        'f': 1,
        'g': {'job_id': 'j', 'items': [], 'state': 'running'},
    }
    assert docs_check.undocumented_keys(result, returns, mappings={'e'}) == [
        'b[0].z',
        'e.raid.other (not in the sample)',
        'e.raid.versions[0].label (not in the sample)',
        'f',
        'g.state',
    ]
