"""The repository service against its OpenAPI description (service/openapi.py, issue 11 item 1).

The description must name exactly the routes app.py serves; the running service (tests/services/repo_service.py,
a real granian process on 127.0.0.1) is checked against it by schemathesis (positive and negative examples of every
operation, a bounded number each) and by hand for what random examples cannot reach: a stored file of the pool
(200, 206, 304), an upload and its add, the download route of a service without a feed, and who may call what.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.routing import Route

from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import app, openapi, wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.config import ServiceConfig
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing, SigningKey
from ansible_collections.exup.fleet.tests.services.repo_service import ADMIN_PASSWORD, READ_PASSWORD, RepoService, write_credentials
from ansible_collections.exup.fleet.tests.system import helpers as h

MANAGER, SERVER, MODEL = 'lab-manager', 'web1', h.MODEL
ADMIN = ('admin', ADMIN_PASSWORD)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance, response_headers_conformance]
#: examples per operation (hypothesis's max_examples; the coverage phase adds its own): about 20 s for the 30 operations here.
#: EXUP_OPENAPI_EXAMPLES=500 EXUP_OPENAPI_SEED=random digs deeper, by hand.
EXAMPLES = int(os.environ.get('EXUP_OPENAPI_EXAMPLES', '12'))
RANDOM = os.environ.get('EXUP_OPENAPI_SEED') == 'random'
DESCRIPTION = openapi.description(app.COLLECTION_VERSION)


@pytest.fixture(scope='module')
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope='module')
def service(tmp_path_factory: pytest.TempPathFactory, key: SigningKey):
    """A service over a store with packages, a tombstone, a manager with a server, BMC records and events."""
    root = tmp_path_factory.mktemp('openapi')
    store, files = root / 'store', root / 'files'
    files.mkdir()
    paths = []
    for module_id, version in (('system-bios', '1.00'), ('system-bios', '1.01'), ('bmc-firmware', '2.10'), ('raid-utility', '3.0')):
        path = files / ('%s-%s.zip' % (module_id, version))
        path.write_bytes(h.package_bytes(h.info('%s-%s' % (module_id, version), module_id, version), key))
        paths.append(str(path))
    repo = Repository(str(store))
    ring = KeyRing([key.public_key])
    assert [result['result'] for result in repo.add_files(paths, ring, mode='pinned')] == ['added'] * 4
    repo.announce(MANAGER, [Server(MANAGER, SERVER, MODEL, 'rhel9', {'system-bios': {'current': '1.00'}})])
    assert repo.delete(['raid-utility-3.0'], MANAGER)[0]['result'] == 'deleted'
    repo.set_bmc_module(MANAGER, SERVER, 'bmc-firmware', previous='2.00', staged='2.10')
    repo.log_events([ev.event('settings_read', settings=['initial_manual_icon'])])
    with RepoService(store, trusted_keys=[key.public_pem().decode()]) as running:
        yield running


def described_operations() -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in DESCRIPTION['paths'].items() for method in item}


# ----------------------------------------------------------------- the description itself
def test_the_description_names_exactly_the_routes_the_service_serves(tmp_path: Path):
    """A route without a description (or a description of no route) fails here: describe it in service/openapi.py."""
    write_credentials(tmp_path)
    served = set()
    for route in app.create_app(ServiceConfig(store=str(tmp_path))).routes:
        assert isinstance(route, Route)
        path = re.sub(r'\{(\w+):path\}', r'{\1}', route.path)  # starlette's {x:path} (it may hold /) is OpenAPI's {x}
        served |= {(path, method) for method in route.methods or ()}
    described = described_operations()

    # starlette answers HEAD on every GET route: a HEAD described must be served, one served need not be described
    assert {item for item in served if item[1] != 'HEAD'} == {item for item in described if item[1] != 'HEAD'}
    assert {item for item in described if item[1] == 'HEAD'} <= served


def test_the_description_is_openapi_3_1_and_every_operation_names_its_user_answers_and_docs_row():
    assert list(OPENAPI_31_VALIDATOR.iter_errors(DESCRIPTION)) == []
    for path, item in DESCRIPTION['paths'].items():
        for method, operation in item.items():
            if path == openapi.OPENAPI_PATH:
                assert operation['security'] == [] and 'x-exup-role' not in operation
                continue
            assert operation['x-exup-role'] in ('read', 'admin'), (method, path)
            assert {'401', '429', '500'} <= set(operation['responses']), (method, path)
            assert any(status < '300' for status in operation['responses']) or operation['operationId'] == 'deletePackage', (method, path)
    docs = (Path(__file__).parents[2] / 'docs' / 'service-api.md').read_text()
    assert [operation for operation in sorted(described_operations()) if '`%s %s`' % (operation[1], operation[0]) not in docs] == []
    assert set(DESCRIPTION['components']['responses']) == {'Error%d' % status for status in set(wire.STATUS_OF.values()) | {422, 500}}


def test_the_service_serves_the_description_without_a_login(service: RepoService):
    answer = service.request('GET', openapi.OPENAPI_PATH, user=None)

    assert answer.status_code == 200 and answer.headers['content-type'] == 'application/json'
    assert answer.json() == json.loads(json.dumps(DESCRIPTION))
    assert service.request('GET', '/v1/about', user=None).status_code == 401  # the rest still needs one


# ----------------------------------------------------------------- who may call what
def concrete(path: str, digest: str) -> str:
    values = {'manager_id': MANAGER, 'name': SERVER, 'digest': digest, 'module_id': 'bmc-firmware', 'package_id': 'system-bios-1.00'}
    values.update(job_id='job-1', download_id='0' * 16, path='packages/none.zip', export_id='0' * 16)
    return path.format(**values)


def test_each_operation_answers_its_users_and_refuses_the_others(service: RepoService):
    digest = service.get('/v1/packages').json()['packages'][0]['sha256']
    for path, item in DESCRIPTION['paths'].items():
        for method, operation in item.items():
            url = concrete(path, digest)
            role = operation.get('x-exup-role')
            anonymous = service.request(method.upper(), url, user=None)
            if role is None:
                assert anonymous.status_code == 200
                continue
            assert anonymous.status_code == 401 and anonymous.headers['www-authenticate'].startswith('Basic '), (method, path)
            if method != 'head':
                assert anonymous.json()['error'] == 'auth_required'
            as_read = service.request(method.upper(), url, user='read', json={} if method in ('post', 'put', 'patch') else None)
            if role == 'admin':
                assert as_read.status_code == 403 and as_read.json()['error'] == 'forbidden', (method, path)
            elif operation['operationId'] == 'deletePackage':
                assert as_read.status_code == 403 and as_read.json()['error'] == 'remote_delete_refused'
            else:
                assert as_read.status_code not in (401, 403), (method, path, as_read.status_code, as_read.text)


# ----------------------------------------------------------------- by hand: what random examples do not reach
FULL = schemathesis.openapi.from_dict(json.loads(json.dumps(DESCRIPTION)))


def described_call(service: RepoService, operation_id: str, user: str | None = 'admin', **case: typing.Any) -> schemathesis.Response:
    """Call one operation as ``user`` and check the answer against the description (the checks of the schemathesis run)."""
    operation = FULL.find_operation_by_id(operation_id)
    example = operation.Case(**case)
    passwords = {'admin': ADMIN_PASSWORD, 'read': READ_PASSWORD}
    auth = None if user is None else (user, passwords[user])
    return example.call_and_validate(base_url=service.base_url, auth=auth, timeout=30, checks=CHECKS)


def test_a_stored_file_answers_as_described_whole_in_part_unchanged_and_past_its_end(service: RepoService):
    stored = service.get('/v1/packages').json()['packages'][0]
    digest, etag = stored['sha256'], wire.etag_of(stored['sha256'])
    path = {'digest': digest}

    whole = described_call(service, 'getPoolFile', 'read', path_parameters=path)
    head = described_call(service, 'headPoolFile', 'read', path_parameters=path)
    part = described_call(service, 'getPoolFile', 'read', path_parameters=path, headers={'Range': 'bytes=0-9'})
    unchanged = described_call(service, 'getPoolFile', 'read', path_parameters=path, headers={'If-None-Match': etag})
    past_end = described_call(service, 'getPoolFile', 'read', path_parameters=path, headers={'Range': 'bytes=%d-' % (stored['size'] + 10)})

    assert whole.status_code == 200 and len(whole.content) == stored['size'] and whole.headers['etag'] == [etag]
    assert head.status_code == 200 and head.content == b'' and head.headers['content-length'] == [str(stored['size'])]
    assert part.status_code == 206 and part.content == whole.content[:10]
    assert unchanged.status_code == 304 and unchanged.content == b''
    assert past_end.status_code == 416


def test_a_pool_ticket_fetches_its_file_without_a_password_and_a_forged_one_is_refused(service: RepoService):
    digest = service.get('/v1/packages').json()['packages'][0]['sha256']
    tickets = described_call(service, 'poolTickets', 'read', body={'sha256': [digest], 'seconds': 60})
    url = tickets.json()['urls'][digest]
    query = dict(item.split('=', 1) for item in url.split('?', 1)[1].split('&'))

    fetched = described_call(service, 'getPoolFile', None, path_parameters={'digest': digest}, query=query)
    # non-ASCII texts once made hmac.compare_digest and int() raise: HTTP 500 (found by schemathesis)
    forged = [
        described_call(service, 'getPoolFile', None, path_parameters={'digest': digest}, query=dict(query, **change))
        for change in ({'ticket': 'ü' * 64}, {'expires': '²'}, {'ticket': query['ticket'][::-1]})
    ]

    assert fetched.status_code == 200 and fetched.headers['etag'] == [wire.etag_of(digest)]
    assert [(answer.status_code, answer.json()['error']) for answer in forged] == [(403, 'ticket_invalid')] * 3


def test_an_upload_and_its_add_answer_as_described(service: RepoService, key: SigningKey):
    data = h.package_bytes(h.info('raid-controller-5.0', 'raid-controller', '5.0'), key)

    uploaded = described_call(
        service, 'uploadPackage', body=data, media_type='application/octet-stream', headers={'X-Exup-File-Name': 'raid-controller-5.0.zip'}
    )
    added = described_call(service, 'addPackages', body={'uploads': [uploaded.json()['upload_id']], 'mode': 'pinned'})

    assert uploaded.status_code == 201 and uploaded.json()['size'] == len(data)
    assert added.status_code == 200 and added.json()['results'][0]['result'] == 'added'
    assert 'raid-controller-5.0' in [package['info']['package_id'] for package in service.get('/v1/packages').json()['packages']]


def test_a_download_from_a_service_without_a_feed_is_refused_as_described_and_starts_nothing(service: RepoService):
    answer = described_call(service, 'startDownload', body={'manager_id': MANAGER, 'check_mode': True})

    assert answer.status_code == 422 and answer.json()['error'] == 'download_unavailable'
    assert not (service.store / 'service' / 'downloads').exists() or not list((service.store / 'service' / 'downloads').iterdir())


def test_the_feed_view_without_a_kept_catalog_is_not_found_as_described(service: RepoService):
    catalog = described_call(service, 'getFeedCatalog', 'read')
    package = described_call(service, 'getFeedFile', 'read', path_parameters={'path': 'packages/system-bios-1.00.zip'})

    assert [(catalog.status_code, catalog.json()['error']), (package.status_code, package.json()['error'])] == [(404, 'not_found')] * 2


# ----------------------------------------------------------------- HTTP 500s schemathesis found (fixed in app.py, wire.py)
def test_package_infos_with_fields_of_the_wrong_type_are_request_invalid(service: RepoService):
    info = dict(dataclasses.asdict(h.info('system-bios-1.00')), schema_version={})
    before = h.db_rows(service.store)

    answer = described_call(service, 'statusIcons', path_parameters={'manager_id': MANAGER, 'name': SERVER}, body={'infos': [info]})

    assert answer.status_code == 400 and answer.json()['error'] == 'request_invalid'
    assert 'a package info has a field of the wrong type' in answer.json()['msg']
    assert h.db_rows(service.store) == before


def test_an_event_limit_of_a_digit_that_is_no_number_is_request_invalid(service: RepoService):
    answer = service.get('/v1/listing', params={'manager_id': MANAGER, 'event_limit': '²'})

    assert answer.status_code == 400 and answer.json() == {'error': 'request_invalid', 'msg': 'event_limit must be a number up to 10000'}


def test_a_presence_naming_a_server_twice_is_server_invalid_and_changes_nothing(service: RepoService):
    twice = [{'name': 'db1', 'model': MODEL, 'os': 'rhel9'}, {'name': 'db1', 'model': MODEL, 'os': 'rhel8'}]
    before = h.db_rows(service.store)

    answer = described_call(service, 'reportPresence', path_parameters={'manager_id': MANAGER}, body={'servers': twice})

    assert answer.status_code == 422 and answer.json() == {'error': 'server_invalid', 'msg': 'servers names a server more than once: db1'}
    assert h.db_rows(service.store) == before


# ----------------------------------------------------------------- schemathesis over every operation
#: uploads write a file per example into the store's tmp/ (described, and checked by hand below)
SCHEMA = schemathesis.openapi.from_dict(json.loads(json.dumps(DESCRIPTION))).exclude(operation_id=['uploadPackage'])


@SCHEMA.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(hypothesis.HealthCheck), derandomize=not RANDOM)
def test_the_service_answers_as_described(case, service: RepoService):
    case.call_and_validate(base_url=service.base_url, auth=ADMIN, timeout=30, checks=CHECKS)
