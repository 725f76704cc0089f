# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GET /v1/servers as JSON both ways (issue 12): what the service writes is what the inventory plugin reads; a bad answer is refused."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, FleetPage
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

PAGE = FleetPage(
    servers=[Server('local', 'web-1', 'R120h-1M', 'rhel9', {'system-bios': {'current': '1.0', 'previous': '0.9'}})],
    bmc={('local', 'web-1'): {'bmc-firmware': BmcModuleRecord('bmc-firmware', previous='2', block='reboot_required', staged='3', since='t')}},
    icons={('local', 'web-1'): {'sdr': ('latest', '2026-01-01T00:00:00Z')}},
    initial_icons=[('', 'update_available'), ('2026-01-01T00:00:00Z', 'latest')],
    next=('local', 'web-1'),
    read_at={('local', 'web-1'): '2026-12-04T05:00:00Z'},
)


def test_a_page_survives_the_wire():
    assert wire.fleet_page_from_dict(wire.fleet_page_as_dict(PAGE)) == PAGE
    last = FleetPage([], {}, {}, [('', 'update_available')], None)
    assert wire.fleet_page_from_dict(wire.fleet_page_as_dict(last)) == last


@pytest.mark.parametrize(
    'spoil',
    [
        lambda body: body.pop('servers'),
        lambda body: body.update(servers={}),
        lambda body: body['servers'][0].update(name=''),
        lambda body: body['servers'][0].update(model=7),
        lambda body: body['servers'][0].update(modules={'bios': '1.0'}),
        lambda body: body['servers'][0].update(modules={'bios': {'current': 1}}),
        lambda body: body['bmc_modules'][0].update(block=3),
        lambda body: body['bmc_modules'][0].pop('server'),
        lambda body: body['manual_icons'][0].update(set_at=None),
        lambda body: body['initial_icons'].append({'changed_at': 'x'}),
        lambda body: body.update(next={'manager_id': 'local'}),
        lambda body: body.update(next='web-1'),
        lambda body: body['servers'][0].update(read_at=7),
        lambda body: body['servers'][0].update(read_at=['2026-12-04T05:00:00Z']),
    ],
)
def test_a_bad_answer_is_service_answer_invalid(spoil):
    body = copy.deepcopy(wire.fleet_page_as_dict(PAGE))
    spoil(body)
    with pytest.raises(ExupError) as caught:
        wire.fleet_page_from_dict(body)
    assert caught.value.code == 'service_answer_invalid'


def test_the_listing_is_a_feature_of_api_version_2():
    assert wire.FEATURES['fleet'] == 2 <= wire.API_VERSION
    assert 'fleet' in wire.limited_features(1)


def test_read_at_is_a_feature_of_api_version_3():
    assert wire.FEATURES['read_at'] == 3 <= wire.API_VERSION
    assert 'read_at' in wire.limited_features(2) and 'read_at' not in wire.limited_features(3)
    body = wire.fleet_page_as_dict(PAGE)
    assert body['servers'][0]['read_at'] == '2026-12-04T05:00:00Z'
    # a service of API 2 sends no read_at, and a server never read has null: no time is known, nothing is refused
    body['servers'][0].pop('read_at')
    assert wire.fleet_page_from_dict(body).read_at == {}
    body['servers'][0]['read_at'] = None
    assert wire.fleet_page_from_dict(body).read_at == {}
    # a stored text that is no time passes the wire as it is: the compliance rule makes it reading_time_unknown
    body['servers'][0]['read_at'] = 'yesterday'
    assert wire.fleet_page_from_dict(body).read_at == {('local', 'web-1'): 'yesterday'}
