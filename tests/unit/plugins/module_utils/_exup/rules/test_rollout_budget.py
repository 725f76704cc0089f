# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""13.5: the error budget of a rollout (max_fail_percentage semantics: exceeded when more than it)."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import rollout


@pytest.mark.parametrize(
    ('failures', 'applied', 'budget', 'expected'),
    [
        (5, 10, None, False),
        (0, 10, 0, False),
        (1, 10, 0, True),
        (1, 10, '1', False),
        (2, 10, 1, True),
        (1, 10, '10%', False),
        (2, 10, '10%', True),
        (1, 3, '0%', True),
        (3, 3, '100%', False),
        (0, 0, '0%', False),
    ],
)
def test_budget_exceeded(failures, applied, budget, expected):
    assert rollout.budget_exceeded(failures, applied, budget) is expected


@pytest.mark.parametrize('budget', ['x', '-1', '101%', '1.5'])
def test_a_bad_budget_is_refused(budget):
    with pytest.raises(ValueError):
        rollout.budget_exceeded(1, 1, budget)
