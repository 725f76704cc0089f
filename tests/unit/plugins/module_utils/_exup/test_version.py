# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Firmware version ordering: numbers compare as numbers, letter revisions come after the base."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.version import compare_versions, version_key


@pytest.mark.parametrize(
    'older, newer',
    [
        ('1.02', '1.10'),  # numeric, not lexical: 2 < 10
        ('1.9', '1.10'),
        ('R1.5', 'R1.5a'),  # a letter revision follows its base
        ('R1.5a', 'R1.5b'),
        ('R1.5b', 'R1.6'),
        ('1.99', '2.0'),
        ('2.0', '2.0.1'),
        ('U30 v2.4', 'U30 v2.10'),
        ('1.0beta', '1.0.1'),
        ('0.9', '1'),
    ],
)
def test_older_sorts_before_newer(older, newer):
    assert version_key(older) < version_key(newer)
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1


@pytest.mark.parametrize(
    'left, right',
    [
        ('1.02', '1.2'),  # leading zeros do not matter
        ('R1.5A', 'r1.5a'),  # letters compare case-insensitively
        ('1-2', '1.2'),  # separators only split tokens
        ('2.0', '2.0'),
    ],
)
def test_equal_keys(left, right):
    assert version_key(left) == version_key(right)
    assert compare_versions(left, right) == 0


def test_sorting_a_mixed_list():
    versions = ['2.0', '1.10', '1.2a', '1.02', '1.99', '1.2b', '10.0']
    assert sorted(versions, key=version_key) == ['1.02', '1.2a', '1.2b', '1.10', '1.99', '2.0', '10.0']
    assert max(['R1.5', 'R1.10', 'R1.5a'], key=version_key) == 'R1.10'


def test_empty_and_none_are_oldest():
    assert version_key('') == version_key(None) == ()
    assert compare_versions('', '0') == -1
