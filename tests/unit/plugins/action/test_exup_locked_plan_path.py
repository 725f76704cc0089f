# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin of exup_locked_plan: where a relative plan path goes on the controller."""

from __future__ import annotations

import os

import pytest

from ansible_collections.exup.fleet.plugins.action.exup_locked_plan import controller_path


@pytest.mark.parametrize(
    'path, expected',
    [
        ('plan.json', '/srv/ops/plan.json'),
        ('plans/../plans/managed.json', '/srv/ops/plans/managed.json'),
        ('/var/lib/exup/plan.json', '/var/lib/exup/plan.json'),
        ('', ''),
        (None, None),
    ],
)
def test_relative_paths_are_the_operators_directory(path, expected):
    assert controller_path(path, '/srv/ops') == expected


def test_home_is_expanded():
    assert controller_path('~/plan.json', '/srv/ops') == os.path.join(os.path.expanduser('~'), 'plan.json')
