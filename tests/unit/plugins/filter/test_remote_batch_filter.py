# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter of plugins/filter/remote_batch.py (a controller plugin: its test lives here, not beside module_utils)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.exup.fleet.plugins.filter.remote_batch import remote_batch_units


def test_filter_returns_problems_or_units():
    assert remote_batch_units({'name': 'x', 'on_calendar': '', 'command': ['/x']})['problems']
    made = remote_batch_units({'name': 'x', 'on_calendar': 'daily', 'command': ['/x']})
    assert made['problems'] == [] and made['timer_name'] == 'exup-remote-batch-x.timer'


def test_filter_refuses_what_is_not_a_mapping():
    with pytest.raises(AnsibleFilterError, match='mapping'):
        remote_batch_units(['not', 'a', 'mapping'])
