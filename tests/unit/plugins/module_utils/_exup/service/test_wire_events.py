# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GET /v1/events as the client reads it (issue 13): a bad answer is service_answer_invalid; an older service is no history."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import remote
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

EVENT = {'id': 7, 'time': '2026-12-04T05:00:00Z', 'level': 'normal', 'code': 'apply_started', 'message': 'm', 'detail': {'server': 'web1'}}
ANSWER = {'events': [EVENT, dict(EVENT, id=6, code='apply_finished', level='error', message='')]}


def test_a_good_answer_is_its_events():
    assert wire.events_from_dict(copy.deepcopy(ANSWER), 5, 'web1') == ANSWER['events']
    assert wire.events_from_dict({'events': [], 'more': 1}, 1) == []
    assert wire.events_from_dict({'events': [dict(EVENT, detail={})]}, 1) == [dict(EVENT, detail={})]  # no server asked: any


@pytest.mark.parametrize(
    'spoil',
    [
        lambda body: body.pop('events'),
        lambda body: body.update(events={}),
        lambda body: body.update(events='x'),
        lambda body: body['events'].append(EVENT),  # more than the limit asked for (2)
        lambda body: body['events'][0].pop('time'),
        lambda body: body['events'][0].update(time=7),
        lambda body: body['events'][0].update(code=''),
        lambda body: body['events'][0].update(level='warning'),
        lambda body: body['events'][0].update(message=None),
        lambda body: body['events'][0].update(detail=['server', 'web1']),
        lambda body: body['events'][0].update(detail={'server': 'web2'}),  # another server's: it would skew the estimate
        lambda body: body['events'][0].update(id=-1),
        lambda body: body['events'][0].update(id=True),
        lambda body: body['events'].__setitem__(0, 'event'),
    ],
)
def test_a_bad_answer_is_service_answer_invalid(spoil):
    body = copy.deepcopy(ANSWER)
    spoil(body)
    with pytest.raises(ExupError) as caught:
        wire.events_from_dict(body, 2, 'web1')
    assert caught.value.code == 'service_answer_invalid'


def test_not_an_object_is_service_answer_invalid():
    for body in (None, [], 'events'):
        with pytest.raises(ExupError) as caught:
            wire.events_from_dict(body, 2)
        assert caught.value.code == 'service_answer_invalid'


def test_reading_events_is_a_feature_of_api_version_4():
    assert wire.FEATURES['events_read'] == 4 <= wire.API_VERSION
    assert 'events_read' in wire.limited_features(3) and 'read_at' not in wire.limited_features(3)


class Sent(remote.RemoteRepository):
    """A RemoteRepository whose /v1/about is given and whose requests are answered from a list (no network here:
    tests/system/test_service_http.py reads events from the real service)."""

    def __init__(self, api_version, answer=None):
        super().__init__(remote.RemoteOptions('https://repo.test', 'pw', manager_id='m'))
        self._about = wire.check_about(dict(wire.about('1.0.0'), api_version=api_version), self.base_url)
        self.answer, self.asked = answer, []

    def _request(self, method, path, **kwargs):
        self.asked.append((method, path, kwargs.get('params')))
        return self.answer


def test_an_older_service_is_no_history_and_is_not_asked():
    repo = Sent(3)
    assert repo.recent_events(5000, 'web1') == [] and repo.asked == []


def test_the_client_asks_a_bounded_limit_and_checks_the_answer():
    repo = Sent(wire.API_VERSION, copy.deepcopy(ANSWER))
    assert repo.recent_events(99999, 'web1') == ANSWER['events']
    assert repo.asked == [('GET', '/v1/events', {'limit': wire.EVENTS_MAX, 'server': 'web1'})]
    assert Sent(wire.API_VERSION, ANSWER).recent_events(0) == []  # nothing asked for: no request
    with pytest.raises(ExupError) as caught:
        Sent(wire.API_VERSION, copy.deepcopy(ANSWER)).recent_events(5, 'db1')  # the service sent web1's
    assert caught.value.code == 'service_answer_invalid'
    with pytest.raises(ExupError) as caught:
        Sent(wire.API_VERSION, {'events': [EVENT, EVENT]}).recent_events(1)
    assert caught.value.code == 'service_answer_invalid'
