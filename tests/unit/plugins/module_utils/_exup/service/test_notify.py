# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The packages_arrived notice and the webhook targets (service/notify.py); the delivery is in tests/system/test_service_webhook.py."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.notify import (
    check_targets,
    encode_body,
    new_packages_notice,
    send_webhook,
    signature,
)


def package(package_id, module_id='bios', version='1.0', models=(), os=()):
    return {'package_id': package_id, 'module_id': module_id, 'version': version, 'models': list(models), 'os': list(os)}


def server(name, model='R120h-1M', os='rhel9', manager_id='m1'):
    return {'manager_id': manager_id, 'name': name, 'model': model, 'os': os}


SERVERS = [
    server('web2', model='R120h-1M', os='rhel9'),
    server('web1', model='R120h-1M', os='win2022'),
    server('db1', model='R120i-2M', os='rhel9'),
    server('web1', model='R120h-1M', os='rhel9', manager_id='m0'),  # another manager's server of the same name
]


# --- the notice ---


def test_the_notice_names_the_packages_and_the_servers_they_target():
    added = [
        package('P2', 'bmc', '2.10', models=['R120h-1M'], os=['rhel9']),
        package('P1', 'bios', '1.2', models=['R120i-2M']),  # any OS
    ]
    before = copy.deepcopy((added, SERVERS))
    notice = new_packages_notice(added, SERVERS)
    assert notice == {
        'event': 'packages_arrived',
        'packages': [
            {'package_id': 'P1', 'module_id': 'bios', 'version': '1.2'},
            {'package_id': 'P2', 'module_id': 'bmc', 'version': '2.10'},
        ],
        'servers': [
            {'manager_id': 'm0', 'name': 'web1', 'model': 'R120h-1M', 'os': 'rhel9', 'package_ids': ['P2']},
            {'manager_id': 'm1', 'name': 'db1', 'model': 'R120i-2M', 'os': 'rhel9', 'package_ids': ['P1']},
            {'manager_id': 'm1', 'name': 'web2', 'model': 'R120h-1M', 'os': 'rhel9', 'package_ids': ['P2']},
        ],
    }
    assert (added, SERVERS) == before
    json.dumps(notice)  # the body is plain JSON


@pytest.mark.parametrize(
    ('target', 'names'),
    [
        (package('P', models=[], os=[]), ['m0/web1', 'm1/db1', 'm1/web1', 'm1/web2']),  # empty lists: any model, any OS
        (package('P', models=['R120h-1M'], os=[]), ['m0/web1', 'm1/web1', 'm1/web2']),
        (package('P', models=[], os=['win2022']), ['m1/web1']),
        (package('P', models=['R120h-1M'], os=['any']), ['m0/web1', 'm1/web1', 'm1/web2']),  # 'any' as in the package XML
        (package('P', models=['R120h-1M', 'R120i-2M'], os=['rhel9']), ['m0/web1', 'm1/db1', 'm1/web2']),
        (package('P', models=['T120h'], os=[]), []),
        (package('P', models=['r120h-1m'], os=[]), []),  # model names are exact, as everywhere in the collection
        (package('P', models=['R120h-1M'], os=['rhel8']), []),
    ],
)
def test_servers_affected_are_those_of_the_packages_model_and_os(target, names):
    notice = new_packages_notice([target], SERVERS)
    assert ['%s/%s' % (item['manager_id'], item['name']) for item in notice['servers']] == names


def test_a_package_given_twice_is_named_once():
    notice = new_packages_notice([package('P1'), package('P1')], [server('web1')])
    assert [item['package_id'] for item in notice['packages']] == ['P1']
    assert notice['servers'][0]['package_ids'] == ['P1']


def test_nothing_arrived_concerns_no_server():
    assert new_packages_notice([], SERVERS) == {'event': 'packages_arrived', 'packages': [], 'servers': []}


# --- the targets ---


def test_good_targets():
    targets = ['https://hooks.example.com/services/T0/B0/xyz', 'http://127.0.0.1:8081/hook?x=1', 'HTTPS://[::1]:9443/']
    assert check_targets(targets) == targets
    assert check_targets([]) == []
    assert check_targets(['https://h.example/' + 'a' * (2048 - 19)]) == ['https://h.example/' + 'a' * 2029]


RULE = 'notify_webhooks must be a list of at most 8 http:// or https:// URLs of at most 2048 characters each, without a user name or password'


@pytest.mark.parametrize(
    ('targets', 'words'),
    [
        ('https://h.example/', RULE + ', not str'),
        (None, RULE + ', not NoneType'),
        (['https://h%d.example/' % number for number in range(9)], RULE + ': 9 URLs are given'),
        (['https://h.example/' + 'a' * 2031], 'notify_webhooks[0] is 2049 characters long'),
        (['https://ok.example/', 'ftp://h.example/'], 'notify_webhooks[1] is not an http:// or https:// URL'),
        (['file:///etc/passwd'], 'is not an http:// or https:// URL'),
        (['javascript:alert(1)'], 'is not an http:// or https:// URL'),
        (['https:h.example/'], 'is not an http:// or https:// URL'),
        (['h.example/hook'], 'is not an http:// or https:// URL'),
        (['https://user:s3cret@h.example/'], 'notify_webhooks[0] carries a user name or password'),
        (['https://user@h.example/'], 'carries a user name or password'),
        (['https://:s3cret@h.example/'], 'carries a user name or password'),
        (['https:///path'], 'notify_webhooks[0] has no host'),
        (['https://h.example:99999/'], 'notify_webhooks[0] is not a URL (Port out of range 0-65535)'),
        (['https://h.example/a b'], 'has a space or a control character'),
        (['https://h.example/\r\nX-Evil: 1'], 'has a space or a control character'),
        ([42], 'notify_webhooks[0] is not a text but int'),
        (['https://h.example/', 'https://h.example/'], RULE + ', each once: a URL is given twice'),
    ],
)
def test_bad_targets_are_setting_invalid_and_change_nothing(targets, words):
    before = copy.deepcopy(targets)
    with pytest.raises(ExupError) as error:
        check_targets(targets)
    assert error.value.code == 'setting_invalid' and error.value.details == {'setting': 'notify_webhooks'}
    assert words in error.value.msg and error.value.msg.startswith(RULE)
    assert 's3cret' not in error.value.msg and 'passwd' not in error.value.msg and len(error.value.msg) < 400
    assert targets == before


# --- the body and its signature ---


def test_the_signature_is_githubs():
    # the example of GitHub's "Validating webhook deliveries"
    assert signature(b'Hello, World!', "It's a Secret to Everybody") == 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
    assert signature(b'Hello, World!', b"It's a Secret to Everybody") == signature(b'Hello, World!', "It's a Secret to Everybody")
    assert signature(b'Hello, World!', 'another secret') != signature(b'Hello, World!', "It's a Secret to Everybody")


def test_one_notice_is_always_the_same_bytes():
    body = {'servers': [], 'event': 'packages_arrived', 'packages': [{'version': '1.0', 'package_id': 'P\u00e9'}]}
    data = encode_body(body)
    assert data == encode_body(json.loads(data)) == '{"event":"packages_arrived","packages":[{"package_id":"P\u00e9","version":"1.0"}],"servers":[]}'.encode()


# --- bad arguments are results, not exceptions ---


@pytest.mark.parametrize('timeout', [0, -1, True, 'x', None])
def test_a_bad_timeout_is_argument_invalid(timeout):
    result = send_webhook('http://127.0.0.1:9/hook', {}, timeout)
    assert result == {
        'url': 'http://127.0.0.1:9/hook',
        'ok': False,
        'error': 'argument_invalid',
        'msg': 'a time limit must be a positive number of seconds, not %r' % (timeout,),
    }


@pytest.mark.parametrize(
    ('url', 'shown', 'words'),
    [
        ('ftp://127.0.0.1/hook', 'ftp://127.0.0.1/hook', 'the webhook URL is not an http:// or https:// URL'),
        ('http://me:s3cret@127.0.0.1/hook', '(not shown)', 'the webhook URL carries a user name or password'),
        (None, '(not shown)', 'the webhook URL is not a text but NoneType'),
    ],
)
def test_a_bad_url_is_not_sent(url, shown, words):
    result = send_webhook(url, {}, 1.0)
    assert result == {'url': shown, 'ok': False, 'error': 'setting_invalid', 'msg': result['msg']}
    assert result['msg'].startswith(words) and 's3cret' not in result['msg']
