# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service's wire format: statuses, errors across the wire, ETags, versions and the records as JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.interface import BmcModuleRecord, Refusal, StoredPackage, Tombstone
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire

DIGEST = 'ab' * 32
OTHER = 'cd' * 32
URL = 'https://repo.example:8080'
INFO = PackageInfo(
    package_id='system-bios-1.00',
    module_id='system-bios',
    module_name='System BIOS',
    version='1.00',
    release_date='2026-01-15',
    models=['Express5800/T110z-1M'],
    os=['any'],
    kind='linux',
    auto_update=True,
    reboot_required=True,
    downgrade_supported=False,
    uninstall_supported=False,
    install_command='./install.sh',
)
PACKAGE = StoredPackage(
    info=INFO, sha256=DIGEST, size=4096, path='/store/pool/ab/x.zip', key_id='k1', source='feed', pinned=False, added_at='2026-01-20T00:00:00Z'
)


def over_the_wire(value):
    """What the other side reads: the value through JSON text."""
    return json.loads(json.dumps(value))


def package_dict(**changes):
    data = over_the_wire(wire.stored_package_as_dict(PACKAGE))
    data.update(changes)
    return data


# ----------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    'code, status',
    [
        ('auth_required', 401),
        ('auth_failed', 401),
        ('auth_rate_limited', 429),
        ('forbidden', 403),
        ('remote_delete_refused', 403),
        ('not_found', 404),
        ('method_not_allowed', 405),
        ('body_too_large', 413),
        ('request_invalid', 400),
        ('repository_busy', 409),
        ('download_running', 409),
        ('service_unavailable', 503),
        ('server_invalid', 422),  # any other refusal of the core
        ('setting_invalid', 422),
        ('', 422),
    ],
)
def test_each_code_has_its_http_status_and_any_other_refusal_is_422(code, status):
    assert wire.status_of(code) == status


def test_every_status_of_a_refusal_is_a_client_or_availability_error():
    assert all(400 <= status < 600 for status in wire.STATUS_OF.values())
    assert all(wire.ERROR_CODE.fullmatch(code) for code in wire.STATUS_OF)


# ----------------------------------------------------------------- errors across the wire


def test_an_error_body_round_trips_code_message_and_details():
    error = ExupError('too many failed logins: try again in 42 seconds', code='auth_rate_limited', retry_after=42, limited=['a', 'b'])
    body = over_the_wire(wire.error_body(error))
    assert body == {'error': 'auth_rate_limited', 'msg': error.msg, 'retry_after': 42, 'limited': ['a', 'b']}
    back = wire.error_from_body(429, body, URL)
    assert (back.code, back.msg, back.details) == (error.code, error.msg, error.details)


def test_error_body_code_and_message_win_over_a_detail_of_the_same_name():
    body = wire.error_body(ExupError('the message', code='not_found', error='planted'))
    assert (body['error'], body['msg']) == ('not_found', 'the message')


def test_error_from_body_drops_detail_keys_that_are_not_codes_and_the_code_key():
    body = {'error': 'not_found', 'msg': 'gone', 'code': 'other', 'Bad-Key': 1, 'x' * 65: 2, 'package_id': 'p1'}
    error = wire.error_from_body(404, body, URL)
    assert (error.code, error.msg, error.details) == ('not_found', 'gone', {'package_id': 'p1'})


def test_error_from_body_caps_a_long_message():
    error = wire.error_from_body(422, {'error': 'server_invalid', 'msg': 'x' * 100000}, URL)
    assert error.code == 'server_invalid'
    assert len(error.msg) == wire.MSG_LIMIT


@pytest.mark.parametrize(
    'body',
    [
        None,
        'an HTML page',
        ['error', 'msg'],
        {},
        {'error': 'not_found'},  # no message
        {'msg': 'no code'},
        {'error': 3, 'msg': 'a number'},
        {'error': 'Not-A-Code', 'msg': 'x'},
        {'error': 'a' * 65, 'msg': 'too long a code'},
        {'error': 'not_found', 'msg': ['not', 'text']},
        {'error': '', 'msg': 'empty code'},
    ],
)
def test_an_answer_without_an_exup_error_is_service_failed_naming_the_url_and_status(body):
    error = wire.error_from_body(502, body, URL)
    assert error.code == 'service_failed'
    assert error.msg == 'the repository service at %s answered HTTP 502 without an exup error' % URL
    assert error.details == {'status': 502}


# ----------------------------------------------------------------- pool paths and ETags


def test_pool_path_matches_its_pattern_and_headers_say_immutable():
    path = wire.pool_path(DIGEST)
    assert path == '/v1/pool/sha256/%s.zip' % DIGEST
    match = wire.POOL_PATH.fullmatch(path)
    assert match and match['digest'] == DIGEST
    assert not wire.POOL_PATH.fullmatch('/v1/pool/sha256/%s.zip' % DIGEST.upper())
    assert not wire.POOL_PATH.fullmatch('/v1/pool/sha256/../%s.zip' % DIGEST[3:])
    headers = wire.pool_headers(DIGEST)
    assert headers['ETag'] == wire.etag_of(DIGEST) == '"sha256-%s"' % DIGEST
    assert 'immutable' in headers['Cache-Control'] and 'max-age=31536000' in headers['Cache-Control']
    assert headers['X-Content-Type-Options'] == 'nosniff'


@pytest.mark.parametrize(
    'ticket_seconds, cache_control',
    [
        # with a login: no shared cache may answer someone else with it (public would let it, RFC 9111 §3.5)
        (None, 'private, max-age=31536000, immutable'),
        # with a ticket: public, but only while the ticket lasts, so a cache does not outlive it
        (3600, 'public, max-age=3600, immutable'),
        (0, 'public, max-age=0, immutable'),
        (-5, 'public, max-age=0, immutable'),
        (10**9, 'public, max-age=31536000, immutable'),
    ],
)
def test_pool_headers_are_private_with_a_login_and_public_only_while_a_ticket_lasts(ticket_seconds, cache_control):
    headers = wire.pool_headers(DIGEST, ticket_seconds)
    assert headers['Cache-Control'] == cache_control
    assert wire.POOL_CACHE_CONTROL.fullmatch(cache_control)
    assert headers['ETag'] == wire.etag_of(DIGEST)


@pytest.mark.parametrize(
    'header, hits',
    [
        (None, False),
        ('', False),
        ('"sha256-%s"' % DIGEST, True),
        ('W/"sha256-%s"' % DIGEST, True),  # a weak comparison is enough for If-None-Match (RFC 9110 §13.1.2)
        ('"sha256-%s"' % OTHER, False),
        ('W/"sha256-%s"' % OTHER, False),
        ('"sha256-%s", "sha256-%s"' % (OTHER, DIGEST), True),
        ('"sha256-%s",W/"sha256-%s"' % (OTHER, DIGEST), True),
        ('  "sha256-%s"  ,  "x"  ' % DIGEST, True),
        ('"x", "y"', False),
        ('*', True),
        ('"x", *', True),
        ('sha256-%s' % DIGEST, False),  # not quoted: not this ETag
        ('"%s"' % DIGEST, False),
        ('w/"sha256-%s"' % DIGEST, False),  # the weak prefix is case-sensitive
        (',,,', False),
    ],
)
def test_if_none_match_hits_this_files_etag_weak_or_in_a_list_or_star(header, hits):
    assert wire.if_none_match_hits(header, DIGEST) is hits


# ----------------------------------------------------------------- versions and features (003 §1.3, Fig. 3)


def test_about_names_the_service_version_and_every_feature_and_checks_as_not_limited():
    about = wire.about('1.2.3')
    assert about == {'service': wire.SERVICE, 'api_version': wire.API_VERSION, 'collection_version': '1.2.3', 'features': sorted(wire.FEATURES)}
    checked = wire.check_about(over_the_wire(about), URL)
    assert checked['api_version'] == wire.API_VERSION
    assert checked['limited'] == []
    for feature in wire.FEATURES:
        wire.refuse_limited(checked, feature, URL)  # nothing is refused


def test_a_newer_service_is_spoken_to_in_this_codes_version():
    checked = wire.check_about(dict(wire.about('9.0.0'), api_version=wire.API_VERSION + 5), URL)
    assert checked['api_version'] == wire.API_VERSION
    assert checked['limited'] == []


@pytest.mark.parametrize(
    'answer',
    [
        None,
        [],
        'exup.fleet repository',
        {},
        {'service': 'nginx', 'api_version': 1},
        {'service': wire.SERVICE.upper(), 'api_version': 1},
    ],
)
def test_an_answer_that_is_not_the_service_is_repository_unavailable(answer):
    with pytest.raises(ExupError) as caught:
        wire.check_about(answer, URL)
    assert caught.value.code == 'repository_unavailable'
    assert caught.value.msg == '%s is not an exup.fleet repository service (its /v1/about says otherwise)' % URL


@pytest.mark.parametrize('version', [None, 0, -1, True, False, 1.0, '1', [1]])
def test_an_api_version_that_is_not_a_positive_number_is_repository_unavailable(version):
    with pytest.raises(ExupError) as caught:
        wire.check_about({'service': wire.SERVICE, 'api_version': version}, URL)
    assert caught.value.code == 'repository_unavailable'
    assert caught.value.msg.startswith('%s answered an API version that is not a positive number' % URL)


def test_an_older_service_lacks_the_newer_features_and_refuses_them_naming_them(monkeypatch):
    monkeypatch.setattr(wire, 'API_VERSION', 3)
    monkeypatch.setattr(wire, 'FEATURES', dict(dict.fromkeys(wire.FEATURES, 1), webhooks=2, statuses_v2=3))
    assert wire.limited_features(1) == ['statuses_v2', 'webhooks']
    assert wire.limited_features(2) == ['statuses_v2']
    assert wire.limited_features(3) == []
    checked = wire.check_about({'service': wire.SERVICE, 'api_version': 1}, URL)
    assert checked['limited'] == ['statuses_v2', 'webhooks']
    wire.refuse_limited(checked, 'packages', URL)  # a version 1 feature is still there
    with pytest.raises(ExupError) as caught:
        wire.refuse_limited(checked, 'webhooks', URL)
    assert caught.value.code == 'repository_too_old'
    assert caught.value.details == {'limited': ['statuses_v2', 'webhooks']}
    assert caught.value.msg == (
        'the repository at %s speaks API version 1, older than this collection (3): it lacks statuses_v2, webhooks. '
        'Update the exup.fleet collection on the repository host to use webhooks.' % URL
    )


# ----------------------------------------------------------------- records


def test_a_stored_package_round_trips_with_its_path_the_url_of_its_pool_file():
    data = over_the_wire(wire.stored_package_as_dict(PACKAGE))
    assert data['url'] == wire.pool_path(DIGEST)
    assert 'path' not in data  # the service's own paths stay on its host
    back = wire.stored_package_from_dict(data, URL + '/')
    assert back == dataclasses.replace(PACKAGE, path=URL + wire.pool_path(DIGEST))
    assert back.info == INFO


def test_a_stored_package_from_a_newer_service_ignores_fields_it_does_not_know():
    data = package_dict(extra='new', info=dict(package_dict()['info'], new_info_field=1))
    assert wire.stored_package_from_dict(data, URL).info == INFO


@pytest.mark.parametrize('field', ['info', 'sha256', 'size', 'key_id', 'source', 'pinned', 'added_at'])
def test_a_stored_package_missing_a_field_is_service_answer_invalid_naming_it(field):
    data = package_dict()
    del data[field]
    with pytest.raises(ExupError) as caught:
        wire.stored_package_from_dict(data, URL)
    assert caught.value.code == 'service_answer_invalid'
    assert caught.value.msg == 'the repository service sent a package with a bad %s (missing)' % field


@pytest.mark.parametrize(
    'field, value',
    [
        ('sha256', DIGEST.upper()),
        ('sha256', DIGEST[:-1]),
        ('sha256', DIGEST + 'a'),
        ('sha256', '../../../etc/passwd'),
        ('sha256', 'g' * 64),
        ('sha256', DIGEST[:32] + '/' + DIGEST[33:]),
        ('sha256', None),
        ('sha256', 12),
        ('size', -1),
        ('size', '4096'),
        ('size', True),
        ('size', 1.5),
        ('info', 'system-bios-1.00'),
        ('info', None),
        ('key_id', None),
        ('source', 7),
        ('added_at', ['2026']),
        ('pinned', 'false'),  # bool('false') would be True: a pin from nowhere
        ('pinned', 0),
    ],
)
def test_a_stored_package_with_a_bad_field_is_service_answer_invalid_naming_it(field, value):
    with pytest.raises(ExupError) as caught:
        wire.stored_package_from_dict(package_dict(**{field: value}), URL)
    assert caught.value.code == 'service_answer_invalid'
    assert caught.value.msg == 'the repository service sent a package with a bad %s' % field


def test_a_stored_package_with_an_incomplete_info_is_service_answer_invalid():
    info = package_dict()['info']
    del info['version']
    with pytest.raises(ExupError) as caught:
        wire.stored_package_from_dict(package_dict(info=info), URL)
    assert caught.value.code == 'service_answer_invalid'
    assert caught.value.msg.startswith('the repository service sent a package with a bad info (')
    assert 'version' in caught.value.msg


@pytest.mark.parametrize('data', [None, [], 'package', 42])
def test_a_record_that_is_not_an_object_is_service_answer_invalid(data):
    for parse in (lambda value: wire.stored_package_from_dict(value, URL), wire.tombstone_from_dict, wire.refusal_from_dict, wire.bmc_record_from_dict):
        with pytest.raises(ExupError) as caught:
            parse(data)
        assert caught.value.code == 'service_answer_invalid'
        assert 'that is not an object' in caught.value.msg


def test_a_tombstone_round_trips_from_its_listing_form():
    tombstone = Tombstone(
        package_id='p1',
        module_id='bmc',
        version='2.0',
        sha256=DIGEST,
        deleted_at='2026-02-01T00:00:00Z',
        deleted_by='m1',
        forced=True,
        models=('R120h-1M',),
        os=('rhel9', 'any'),
    )
    assert wire.tombstone_from_dict(over_the_wire(tombstone.as_dict())) == tombstone
    empty = wire.tombstone_from_dict(dict(over_the_wire(tombstone.as_dict()), models=None, os=[], forced=0))
    assert (empty.models, empty.os, empty.forced) == ((), (), False)


def test_a_tombstone_missing_fields_is_service_answer_invalid_naming_them():
    data = {'package_id': 'p1', 'module_id': 'bmc'}
    with pytest.raises(ExupError) as caught:
        wire.tombstone_from_dict(data)
    assert caught.value.code == 'service_answer_invalid'
    assert caught.value.msg == 'the repository service sent a tombstone with a bad version, sha256, deleted_at, deleted_by, forced, models, os (missing)'


def test_a_refusal_round_trips_and_a_missing_field_is_service_answer_invalid():
    refusal = Refusal(package_id='p1', sha256=DIGEST, code='package_tampered', reason='a member differs', refused_at='2026-02-01T00:00:00Z')
    assert wire.refusal_from_dict(over_the_wire(refusal.as_dict())) == refusal
    data = refusal.as_dict()
    del data['reason']
    with pytest.raises(ExupError) as caught:
        wire.refusal_from_dict(data)
    assert caught.value.code == 'service_answer_invalid'
    assert caught.value.msg == 'the repository service sent a refusal with a bad reason (missing)'


def test_a_bmc_module_record_round_trips_and_missing_optional_fields_are_none():
    record = BmcModuleRecord('bmc-firmware', previous='1.0', block=None, staged='2.0', since='2026-02-01T00:00:00Z')
    assert wire.bmc_record_from_dict(over_the_wire(wire.bmc_record_as_dict(record))) == record
    assert wire.bmc_record_from_dict({'module_id': 'sdr'}) == BmcModuleRecord('sdr')


@pytest.mark.parametrize(
    'data, bad',
    [
        ({}, 'module_id (missing)'),
        ({'module_id': 3}, 'field (texts or null)'),
        ({'module_id': 'bmc', 'previous': 1}, 'field (texts or null)'),
        ({'module_id': 'bmc', 'staged': ['2.0']}, 'field (texts or null)'),
        ({'module_id': 'bmc', 'since': {'at': 1}}, 'field (texts or null)'),
    ],
)
def test_a_bad_bmc_module_record_is_service_answer_invalid(data, bad):
    with pytest.raises(ExupError) as caught:
        wire.bmc_record_from_dict(data)
    assert caught.value.code == 'service_answer_invalid'
    assert caught.value.msg == 'the repository service sent a bmc module record with a bad %s' % bad


def test_a_server_as_json_has_its_name_model_os_and_modules_but_not_its_manager():
    server = Server(manager_id='m1', name='web1', model='R120h-1M', os='rhel9', modules={'bmc': {'current': '1.0'}})
    assert over_the_wire(wire.server_as_dict(server)) == {'name': 'web1', 'model': 'R120h-1M', 'os': 'rhel9', 'modules': {'bmc': {'current': '1.0'}}}


def test_an_error_answer_cannot_set_a_task_results_own_keys():
    """A hostile or broken service answers with keys a task result gives meaning to: only the known details pass."""
    body = {'error': 'auth_failed', 'msg': 'no', 'changed': True, 'ansible_facts': {'x': 1}, 'warnings': ['w'], 'skipped': True, 'retry_after': 5}
    error = wire.error_from_body(401, body, URL)
    assert (error.code, error.msg, error.details) == ('auth_failed', 'no', {'retry_after': 5})
