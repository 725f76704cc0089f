# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_baseline_compliance_info's reading of exup_info results and inventory variables (issue 13.1)."""

from __future__ import annotations

import pytest

from ansible_collections.exup.fleet.plugins.action import exup_baseline_compliance_info as action
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.baseline import Candidate

INFO_MODULES = {
    'system-bios': {
        'current': '1.0',
        'previous': '0.9',
        'status': 'update_available',
        'versions': [
            {'version': '1.1', 'release_date': '2026-05-01', 'compatible': True},
            {'version': '2.0', 'release_date': '2026-11-01', 'compatible': False},
        ],
    },
    'sdr': {'current': None, 'previous': None},
}


def test_states_from_exup_info_and_plain_versions():
    assert action._states(INFO_MODULES) == {'system-bios': {'current': '1.0', 'previous': '0.9'}, 'sdr': {'current': None, 'previous': None}}
    assert action._states({'bmc': '3.00'}) == {'bmc': {'current': '3.00', 'previous': None}}


@pytest.mark.parametrize('modules', [['system-bios'], 'x', None, {'bios': 3}, {'bios': ['1.0']}])
def test_hostile_readings_are_refused(modules):
    with pytest.raises(ExupError) as caught:
        action._states(modules)
    assert caught.value.code == 'reading_invalid'


def test_offered_versions_skip_incompatible_and_carry_no_severity():
    assert action._offered(INFO_MODULES) == [Candidate('system-bios', '1.1', '2026-05-01', None)]
    assert action._offered({'sdr': {'current': '1'}}) is None
    assert action._offered('x') is None
