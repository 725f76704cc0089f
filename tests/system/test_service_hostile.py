"""Hostile clients of the repository service (issue 11 item 7): traversal, bad credentials, floods of guesses,
oversized and malformed bodies, and slow clients, against the real server (granian + starlette) on loopback.

Each refusal is checked for its status, code and message, and for a store that did not change. Requests
that must reach the server unnormalised go through http.client or a bare socket. Tests that spend failed
logins send from their own loopback address (service_helpers.fresh_source), so 127.0.0.1 is never locked.
"""

from __future__ import annotations

import collections
import json
import socket
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth, main, wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK
from ansible_collections.exup.fleet.tests.services.repo_service import RepoService
from ansible_collections.exup.fleet.tests.system.service_helpers import basic, call, connection, fill_store, fresh_source, refused, state, uploads

KEY = SigningKey.generate()
BIG_BYTES = 8 * 1024 * 1024  # a pool file much larger than the socket buffers, for the slow readers
OUTSIDE_THE_POOL = [b"SQLite format 3", b"$argon2id$", b"root:x:0:0", b"BEGIN PRIVATE KEY", b"-----BEGIN"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("service-hostile")
    store = root / "store"
    files = fill_store(store, KEY, root / "packages", big_bytes=BIG_BYTES)
    with RepoService(store, trusted_keys=[KEY.public_pem().decode()]) as service:
        yield service, store, files


@pytest.fixture
def service(served) -> RepoService:
    return served[0]


@pytest.fixture
def store(served) -> Path:
    return served[1]


@pytest.fixture
def big(served):
    return served[2]["raid-utility-3.00"]


def raw_exchange(service: RepoService, data: bytes, source: str = LOOPBACK, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (Connection: close in data)."""
    with socket.create_connection((LOOPBACK, service.port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(data)
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
    return bytes(answer)


def parsed(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _sep, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {name.lower(): value for name, value in headers.items()}, body


# ----------------------------------------------------------------- traversal on every path parameter

TRAVERSALS = [
    "..",
    "../../repo.db",
    "..%2f..%2frepo.db",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2frepo.db",
    "%2E%2E%2F%2E%2E%2Fservice-credentials.json",
    "%252e%252e%252frepo.db",  # double encoded: decoded once it is the text %2e%2e%2frepo.db
    "..\\..\\repo.db",
    "..%5c..%5crepo.db",
    "%00",
    "x%00.zip",
    "%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "%c0%ae%c0%ae%c0%af",  # overlong UTF-8 dots and slash
    "..;/repo.db",
]

#: route templates with {x} for the parameter under attack
ROUTES = [
    ("GET", "/v1/pool/sha256/{x}.zip"),
    ("GET", "/v1/pool/sha256/{x}"),
    ("HEAD", "/v1/pool/sha256/{x}.zip"),
    ("DELETE", "/v1/packages/{x}"),
    ("PUT", "/v1/managers/{x}/servers/web1"),
    ("PUT", "/v1/managers/m1/servers/{x}"),
    ("DELETE", "/v1/managers/m1/servers/{x}"),
    ("GET", "/v1/managers/m1/servers/{x}/bmc-modules"),
    ("GET", "/v1/jobs/{x}/reported"),
    ("GET", "/v1/downloads/{x}"),
]


@pytest.mark.parametrize("method, template", ROUTES, ids=[f"{method} {template}" for method, template in ROUTES])
def test_traversal_in_any_path_parameter_is_a_json_refusal_and_never_a_file(service, store, method, template):
    before = state(store)
    answers = {}
    for attack in TRAVERSALS:
        path = template.replace("{x}", attack)
        answer = call(service, method, path, body=b"{}" if method == "PUT" else None)
        answers[attack] = answer.status
        if template.startswith("/v1/managers/m1/servers/{x}") and 200 <= answer.status < 300:
            # what decodes to plain text without a slash (backslashes, %2e...) is a server name like any other:
            # data in the database, never a path; the answer is about that (unknown) server, never a file
            assert method != "PUT" and answer.json() in ({"known": False}, {"modules": {}}), (attack, answer.body[:300])
            continue
        assert 400 <= answer.status < 500, (attack, answer.status, answer.body[:300])
        if method != "HEAD":
            body = refused(answer, answer.status, answer.json()["error"])
            assert body["error"] in ("not_found", "request_invalid", "remote_delete_refused", "server_invalid", "method_not_allowed"), (attack, body)
        assert not any(marker in answer.body for marker in OUTSIDE_THE_POOL), attack
        assert answer.headers.get("content-type") != "application/zip"
    assert state(store) == before
    if template.startswith("/v1/pool/"):
        assert set(answers.values()) == {404}, answers


def test_dot_segments_in_a_server_name_are_request_invalid(service, store):
    before = state(store)
    for name in ["..", "%2e%2e", ".", "%2e"]:
        answer = call(service, "GET", f"/v1/managers/m1/servers/{name}/restarting")
        refused(answer, 400, "request_invalid", "a server name cannot be . or .. in a URL path")
    assert state(store) == before


def test_a_raw_nul_or_space_in_the_request_line_is_refused_by_the_http_layer(service, store):
    before = state(store)
    for target in [b"/v1/pool/sha256/\x00.zip", b"/v1/jobs/a b/reported", b"/v1/packages/\xff\xfe"]:
        answer = raw_exchange(service, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: %s\r\n\r\n" % (target, basic("admin").encode()))
        status, _headers, body = parsed(answer)
        assert 400 <= status < 500, answer[:300]
        assert b"Traceback" not in body and not any(marker in body for marker in OUTSIDE_THE_POOL)
    assert state(store) == before


# ----------------------------------------------------------------- malformed credentials

MALFORMED = [
    "Basic !!!not base64!!!",
    "Basic " + "QUJD" * 3 + "=",  # bad padding
    "Basic bm9jb2xvbg==",  # 'nocolon'
    "Basic //79/Q==",  # not UTF-8
    "Basic ",
    "Basic",
    "Bearer abc.def.ghi",
    "Digest username=admin",
    "basic",
    "Basic " + "A" * 5000,  # longer than auth.MAX_HEADER_CHARS
    "Basic " + "QWxh" * 25000,  # 100 KB
]


@pytest.mark.parametrize("header", MALFORMED, ids=[header[:20] + ("...%d" % len(header) if len(header) > 20 else "") for header in MALFORMED])
def test_a_malformed_authorization_header_is_auth_required_without_a_traceback(service, store, header):
    before = state(store)
    answer = call(service, "GET", "/v1/packages", authorization=header, source=fresh_source())
    refused(answer, 401, "auth_required", auth.MESSAGES["auth_required"])
    assert answer.headers["www-authenticate"] == 'Basic realm="exup", charset="UTF-8"'
    assert state(store) == before


def test_an_authorization_header_of_raw_non_ascii_bytes_is_auth_required(service):
    request = b"GET /v1/about HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic \xff\xfe\x80\r\n\r\n"
    answer = raw_exchange(service, request, source=fresh_source())
    status, headers, body = parsed(answer)
    assert status == 401, answer[:300]
    assert json.loads(body)["error"] == "auth_required"
    assert headers["www-authenticate"].startswith("Basic ")


def test_malformed_headers_cost_no_guesses_the_right_password_still_works_from_that_client(service):
    source = fresh_source()
    conn = connection(service, source)
    try:
        for _attempt in range(3 * auth.FAILURES_ALLOWED):
            assert call(service, "GET", "/v1/about", authorization="Basic !!!", conn=conn).status == 401
        assert call(service, "GET", "/v1/about", user="read", conn=conn).status == 200
    finally:
        conn.close()


# ----------------------------------------------------------------- a flood of wrong passwords


def test_a_flood_of_wrong_passwords_is_locked_out_without_argon2_and_others_are_served(service, store):
    attacker, other = fresh_source(), fresh_source()
    before = state(store)
    counts: collections.Counter = collections.Counter()
    retry_after = set()
    conn = connection(service, attacker, timeout=30)
    try:
        for attempt in range(1000):
            answer = call(service, "GET", "/v1/packages", authorization=basic("admin", "wrong password %d" % attempt), conn=conn)
            body = answer.json()
            counts[(answer.status, body["error"])] += 1
            if answer.status == 429:
                assert body["msg"] == auth.MESSAGES["auth_rate_limited"] % body["retry_after"]
                assert answer.headers["retry-after"] == str(body["retry_after"])
                retry_after.add(body["retry_after"])
            else:
                assert counts[(429, "auth_rate_limited")] == 0, "a guess verified after the lockout began"
        # each auth_failed is one Argon2 run; a locked client's guesses are refused before Argon2
        assert counts[(401, "auth_failed")] == auth.FAILURES_ALLOWED
        assert counts[(429, "auth_rate_limited")] >= 980
        assert sum(counts.values()) == 1000
        assert retry_after and all(1 <= seconds <= auth.LOCKOUT_SECONDS for seconds in retry_after)
        # the right password from the locked client is refused too (no guessing against the cache)
        answer = call(service, "GET", "/v1/packages", user="admin", conn=conn)
        refused(answer, 429, "auth_rate_limited")
        assert int(answer.headers["retry-after"]) >= 1
    finally:
        conn.close()
    # another address is served at once (the client's own timeout of a few seconds is the deadline)
    answer = call(service, "GET", "/v1/packages", user="read", source=other, timeout=5)
    assert answer.status == 200
    assert call(service, "GET", "/v1/about", user="admin", source=other, timeout=5).status == 200
    assert call(service, "GET", "/v1/about", user="read", timeout=5).status == 200  # and 127.0.0.1 is not locked
    assert state(store) == before


# ----------------------------------------------------------------- bodies

BODY_ROUTES = [
    ("POST", "/v1/events"),
    ("PATCH", "/v1/settings"),
    ("POST", "/v1/managers/m1/presence"),
    ("PUT", "/v1/managers/m1/servers/web1"),
    ("POST", "/v1/packages"),
    ("POST", "/v1/downloads"),
]
TOO_LARGE = "the request body is larger than %d bytes" % wire.MAX_JSON_BYTES


@pytest.mark.parametrize("method, path", BODY_ROUTES)
def test_a_stated_body_over_8_mib_is_body_too_large_before_it_is_sent(service, store, method, path):
    before = state(store)
    request = b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
        method.encode(),
        path.encode(),
        basic("admin").encode(),
        wire.MAX_JSON_BYTES + 1,
    )
    status, headers, body = parsed(raw_exchange(service, request))  # no body sent: the answer must not wait for it
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "body_too_large", "msg": TOO_LARGE}
    assert state(store) == before


def test_a_body_of_exactly_8_mib_is_read_and_judged_by_its_content(service, store):
    before = state(store)
    data = b'{"events": "' + b"x" * (wire.MAX_JSON_BYTES - 14) + b'"}'
    assert len(data) == wire.MAX_JSON_BYTES
    answer = call(service, "POST", "/v1/events", body=data, headers={"Content-Type": "application/json"}, timeout=30)
    refused(answer, 400, "request_invalid", "events must be a list of at most 1000 events, each with a level, code, message and detail")
    assert state(store) == before


def test_a_chunked_body_streamed_past_8_mib_is_body_too_large(service, store):
    before = state(store)
    chunk = b"[" * 65536
    with socket.create_connection((LOOPBACK, service.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            % basic("admin").encode()
        )
        sent = 0
        try:
            while sent < 3 * wire.MAX_JSON_BYTES:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server answered and closed while the client still sent
            pass
        answer = bytearray()
        try:
            while piece := sock.recv(65536):
                answer += piece
        except ConnectionResetError:
            pass
    assert wire.MAX_JSON_BYTES < sent <= 3 * wire.MAX_JSON_BYTES
    status, headers, body = parsed(bytes(answer))
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "body_too_large", "msg": TOO_LARGE}
    assert state(store) == before


def test_an_upload_stating_more_than_the_largest_package_is_body_too_large_and_leaves_no_folder(service, store):
    before = state(store)
    request = b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n" % (
        basic("admin").encode(),
        wire.MAX_UPLOAD_BYTES + 1,
    )
    status, _headers, body = parsed(raw_exchange(service, request))
    assert status == 413
    assert json.loads(body) == {"error": "body_too_large", "msg": "the package is larger than %d bytes" % wire.MAX_UPLOAD_BYTES}
    assert uploads(store) == []
    assert state(store) == before


def test_an_upload_cut_short_by_its_client_leaves_no_folder(service, store):
    before = state(store)
    with socket.create_connection((LOOPBACK, service.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: 1000000\r\n\r\n" % basic("admin").encode())
        sock.sendall(b"PK" * 50000)
    deadline = time.monotonic() + 10
    while uploads(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uploads(store) == []
    assert state(store) == before


NOT_JSON = "the request body is not JSON"
NOT_OBJECT = "the request body must be a JSON object"
MALFORMED_BODIES = [
    (b"{", NOT_JSON),
    (b"not json", NOT_JSON),
    (b'{"events": [}', NOT_JSON),
    (b"\xff\xfe\x00{", NOT_JSON),
    (b'{"a": NaN', NOT_JSON),
    (b"[" * 200000 + b"]" * 200000, NOT_JSON),  # nested beyond the parser's depth
    (b'{"a": ' * 100000 + b"1" + b"}" * 100000, NOT_JSON),
    (b"[]", NOT_OBJECT),
    (b'"text"', NOT_OBJECT),
    (b"42", NOT_OBJECT),
    (b"null", NOT_OBJECT),
    (b"[{}]", NOT_OBJECT),
]


@pytest.mark.parametrize("method, path", BODY_ROUTES)
def test_malformed_json_or_json_that_is_not_an_object_is_request_invalid(service, store, method, path):
    before = state(store)
    for data, msg in MALFORMED_BODIES:
        answer = call(service, method, path, body=data, headers={"Content-Type": "application/json"})
        refused(answer, 400, "request_invalid", msg)
    assert state(store) == before


#: (method, path, body, message) of well-formed JSON with a field of the wrong type or range
WRONG_TYPES = [
    ("POST", "/v1/events", {"events": "x"}, None),
    ("POST", "/v1/events", {"events": [1]}, None),
    ("POST", "/v1/events", {"events": [{"code": "x"}]}, None),  # no level, message or detail
    ("POST", "/v1/events", {"events": [{"level": "normal", "code": "Bad Code", "message": "m", "detail": {}}]}, None),
    ("POST", "/v1/events", {"events": [{"level": "loud", "code": "settings_read", "message": "m", "detail": {}}]}, None),
    ("POST", "/v1/events", {"events": [{"level": "normal", "code": "settings_read", "message": "m", "detail": []}]}, None),
    ("POST", "/v1/events", {"events": [{"level": "normal", "code": "settings_read", "message": "m", "detail": {}}] * 1001}, None),
    ("POST", "/v1/events", {"events": json.loads("[" * 500 + "]" * 500)}, None),  # deep, but within the parser
    ("PATCH", "/v1/settings", {"settings": "initial_manual_icon=latest"}, "settings must be an object of setting name to value"),
    ("PATCH", "/v1/settings", {"settings": ["initial_manual_icon"]}, "settings must be an object of setting name to value"),
    ("PATCH", "/v1/settings", {"settings": {"initial_manual_icon": "latest"}, "check_mode": "maybe"}, "check_mode must be true or false"),
    ("POST", "/v1/managers/m1/presence", {"servers": "web1"}, "servers must be a list of servers"),
    ("POST", "/v1/managers/m1/presence", {"servers": {"name": "web1"}}, "servers must be a list of servers"),
    ("POST", "/v1/tombstones/clear", {"check_mode": 5}, "check_mode must be true or false"),
    ("POST", "/v1/refusals/clear", {"package_ids": "p1"}, "package_ids must be a list of texts"),
    ("POST", "/v1/refusals/clear", {"package_ids": [1, 2]}, "package_ids must be a list of texts"),
    ("POST", "/v1/packages", {"uploads": "0123456789abcdef"}, "uploads must be a list of texts"),
    ("POST", "/v1/packages", {"uploads": [{"id": 1}]}, "uploads must be a list of texts"),
    ("POST", "/v1/managers/m1/servers/web1/reboots", {"seconds": "60"}, "seconds must be a number from 1 to 86400"),
    ("POST", "/v1/managers/m1/servers/web1/reboots", {"seconds": True}, "seconds must be a number from 1 to 86400"),
    ("POST", "/v1/managers/m1/servers/web1/reboots", {"seconds": 0}, "seconds must be a number from 1 to 86400"),
    ("POST", "/v1/managers/m1/servers/web1/reboots", {"seconds": 60, "modules": "bmc"}, "modules must be a list of texts"),
    ("PATCH", "/v1/managers/m1/servers/web1/bmc-modules/bmc-firmware", {"previous": 3}, None),
    ("PATCH", "/v1/managers/m1/servers/web1/bmc-modules/bmc-firmware", {"since": "2026-01-01"}, None),
    ("POST", "/v1/managers/m1/servers/web1/icons", {"infos": "x"}, "infos must be a list of package infos"),
    ("POST", "/v1/managers/m1/servers/web1/icons", {"infos": [{"package_id": "p1"}]}, None),
    ("PUT", "/v1/managers/m1/servers/web1/icons", {"module_ids": "bmc", "icon": "latest"}, "module_ids must be a list of texts"),
    ("PUT", "/v1/managers/m1/servers/web1/icons", {"module_ids": ["bmc"], "icon": 5}, None),
    ("POST", "/v1/downloads", {"manager_id": "../m1"}, "manager_id is not an id (letters, digits, . _ - at most 64)"),
    ("POST", "/v1/downloads", {"manager_id": 5}, "manager_id is not an id (letters, digits, . _ - at most 64)"),
    ("POST", "/v1/downloads", {"manager_id": "m1", "check_mode": [True]}, None),
]


@pytest.mark.parametrize("method, path, body, msg", WRONG_TYPES, ids=["%s %s %d" % (item[0], item[1], index) for index, item in enumerate(WRONG_TYPES)])
def test_a_field_of_the_wrong_type_is_request_invalid_and_nothing_changes(service, store, method, path, body, msg):
    before = state(store)
    refused(call(service, method, path, json_body=body), 400, "request_invalid", msg)
    assert state(store) == before


@pytest.mark.parametrize(
    "query, msg",
    [
        ("/v1/listing?manager_id=m1&event_limit=-1", "event_limit must be a number up to 10000"),
        ("/v1/listing?manager_id=m1&event_limit=10001", "event_limit must be a number up to 10000"),
        ("/v1/listing?manager_id=m1&event_limit=1e3", "event_limit must be a number up to 10000"),
        ("/v1/listing", "manager_id is not an id (letters, digits, . _ - at most 64)"),
        ("/v1/listing?manager_id=..%2f..", "manager_id is not an id (letters, digits, . _ - at most 64)"),
        ("/v1/packages?module_id=..%2fx", "module_id is not an id (letters, digits, . _ - at most 64)"),
        ("/v1/packages/for?model=R120h", "os must be a non-empty text of at most 256 characters"),
        ("/v1/packages/for?os=rhel9&model=%00", "model must be a non-empty text of at most 256 characters"),
        ("/v1/settings?check_mode=perhaps", "check_mode must be true or false"),
    ],
)
def test_a_bad_query_parameter_is_request_invalid(service, store, query, msg):
    before = state(store)
    refused(call(service, "GET", query), 400, "request_invalid", msg)
    assert state(store) == before


def test_an_unknown_route_or_method_is_a_json_refusal(service, store):
    before = state(store)
    refused(call(service, "GET", "/v1/nothing/here"), 404, "not_found", "no such resource: GET /v1/nothing/here")
    refused(call(service, "GET", "/etc/passwd"), 404, "not_found")
    answer = call(service, "PUT", "/v1/packages", json_body={})
    refused(answer, 405, "method_not_allowed")
    assert state(store) == before


# ----------------------------------------------------------------- slow clients

STALLED = 64
SLOW_READERS = 16


def test_slow_clients_neither_block_a_normal_request_nor_stay_past_the_header_read_timeout(service, big):
    stalled, readers = [], []
    patience = main.HEADER_READ_TIMEOUT_MS / 1000 + 15  # a deadline for the drop, not a measured time
    try:
        for _index in range(STALLED):  # half a request head, then nothing
            sock = socket.create_connection((LOOPBACK, service.port), timeout=patience)
            sock.sendall(b"GET /v1/packages HTTP/1.1\r\nHost: x\r\nAuthoriz")
            stalled.append(sock)
        for _index in range(SLOW_READERS):  # a large pool file, read a few bytes at a time
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect((LOOPBACK, service.port))
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % (wire.pool_path(big.sha256).encode(), basic("read").encode()))
            assert sock.recv(12) == b"HTTP/1.1 200"
            readers.append(sock)
        # a normal request on a fresh connection answers within the client's own few seconds
        listed = call(service, "GET", "/v1/packages", user="read", timeout=5)
        assert listed.status == 200 and len(listed.json()["packages"]) >= 3
        whole = call(service, "GET", wire.pool_path(big.sha256), user="read", timeout=5)
        assert whole.body == big.data
        for sock in readers:  # the slow readers are still being served
            assert sock.recv(1024)
        # the stalled clients are dropped once the header read timeout has passed
        for sock in stalled:
            try:
                rest = sock.recv(4096)
            except ConnectionResetError:
                rest = b""
            assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest[:200]
    finally:
        for sock in stalled + readers:
            sock.close()
    assert call(service, "GET", "/v1/about", user="read", timeout=5).status == 200
