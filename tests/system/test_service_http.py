"""The repository service's HTTP face against the real server (granian + starlette) on loopback, HTTP and HTTPS (issue 11).

Content-addressed pool files (ETag, Range, caching), who may do what (admin, read, nobody), the refused
remote delete, the manual add through an upload, and a manager's presence. Every refusal is checked for
its status, code and message, and for a store that did not change.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import events
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth, wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.services.repo_service import RepoService
from ansible_collections.exup.fleet.tests.system import helpers as h
from ansible_collections.exup.fleet.tests.system.service_helpers import basic, call, fill_store, fresh_source, refused, state, uploads

BIG_BYTES = 256 * 1024
KEY = SigningKey.generate()


@pytest.fixture(scope="module", params=["http", "https"])
def served(request, tmp_path_factory):
    """The service over a store with three pinned packages; (service, store, files by package id)."""
    root = tmp_path_factory.mktemp("service-" + request.param)
    store = root / "store"
    files = fill_store(store, KEY, root / "packages", big_bytes=BIG_BYTES)
    with RepoService(store, tls=request.param == "https", trusted_keys=[KEY.public_pem().decode()]) as service:
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


@pytest.fixture
def bios(served):
    return served[2]["system-bios-1.00"]


# ----------------------------------------------------------------- pool files


def test_a_pool_file_is_its_bytes_with_its_etag_and_immutable_caching(service, big):
    answer = call(service, "GET", wire.pool_path(big.sha256), user="read")
    assert answer.status == 200
    assert answer.body == big.data
    assert hashlib.sha256(answer.body).hexdigest() == big.sha256
    assert answer.headers["etag"] == '"sha256-%s"' % big.sha256
    # asked with a login: private, so no shared cache in front answers anyone else with it (docs/scale.md)
    assert answer.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-length"] == str(len(big.data))
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_pool_file_by_its_ticket_is_public_only_for_what_is_left_of_the_ticket(service, bios):
    asked = call(service, "POST", "/v1/pool/tickets", user="read", json_body={"sha256": [bios.sha256], "seconds": 120})
    assert asked.status == 200, asked.body
    url = asked.json()["urls"][bios.sha256]
    answer = call(service, "GET", url, user=None)
    assert (answer.status, answer.body) == (200, bios.data)
    cache_control = answer.headers["cache-control"]
    assert wire.POOL_CACHE_CONTROL.fullmatch(cache_control), cache_control
    assert cache_control.startswith("public, max-age=") and cache_control.endswith(", immutable")
    seconds = int(cache_control.split("max-age=")[1].split(",")[0])
    assert 100 <= seconds <= 120, cache_control  # a shared cache keyed by this URL keeps it no longer than the ticket admits
    not_modified = call(service, "GET", url, user=None, headers={"If-None-Match": answer.headers["etag"]})
    assert not_modified.status == 304 and not_modified.headers["cache-control"].startswith("public, max-age=")


def test_head_of_a_pool_file_has_its_headers_and_no_body(service, big):
    answer = call(service, "HEAD", wire.pool_path(big.sha256), user="read")
    assert answer.status == 200
    assert answer.body == b""
    assert answer.headers["etag"] == '"sha256-%s"' % big.sha256
    assert answer.headers["content-length"] == str(len(big.data))
    assert "immutable" in answer.headers["cache-control"]


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=100000-", 100000, None),  # to the end
        ("bytes=-5", -5, None),  # the last five bytes
        ("bytes=200000-999999999", 200000, None),  # an end past the file is the file's end
    ],
)
def test_a_range_is_206_with_exactly_that_slice(service, big, header, start, end):
    answer = call(service, "GET", wire.pool_path(big.sha256), user="read", headers={"Range": header})
    size = len(big.data)
    first = start if start >= 0 else size + start
    last = size - 1 if end is None else end
    assert answer.status == 206, answer.body[:200]
    assert answer.body == big.data[first : last + 1]
    assert answer.headers["content-range"] == "bytes %d-%d/%d" % (first, last, size)
    assert answer.headers["content-length"] == str(last - first + 1)
    assert answer.headers["etag"] == '"sha256-%s"' % big.sha256


@pytest.mark.parametrize("form", ['"sha256-{}"', 'W/"sha256-{}"', '"sha256-0000", "sha256-{}"', "*"])
def test_if_none_match_with_the_etag_is_304_without_a_body(service, big, form):
    answer = call(service, "GET", wire.pool_path(big.sha256), user="read", headers={"If-None-Match": form.format(big.sha256)})
    assert answer.status == 304
    assert answer.body == b""
    assert answer.headers["etag"] == '"sha256-%s"' % big.sha256
    assert "immutable" in answer.headers["cache-control"]


def test_if_none_match_with_another_etag_is_the_whole_file(service, big, bios):
    answer = call(service, "GET", wire.pool_path(big.sha256), user="read", headers={"If-None-Match": '"sha256-%s"' % bios.sha256})
    assert answer.status == 200
    assert answer.body == big.data


def test_an_unknown_digest_is_not_found(service, store):
    before = state(store)
    refused(call(service, "GET", wire.pool_path("0" * 64), user="read"), 404, "not_found", "no such package file")
    head = call(service, "HEAD", wire.pool_path("0" * 64), user="read")
    assert (head.status, head.body) == (404, b"")  # a HEAD answer has no body, not even the error
    assert state(store) == before


@pytest.mark.parametrize(
    "digest",
    [
        "ABCDEF" + "0" * 58,  # upper case: not the pool's name of any file
        "0" * 63,
        "0" * 65,
        "g" * 64,
        "0" * 62 + "..",
        "",
    ],
)
def test_a_bad_digest_is_not_found(service, big, digest):
    answer = call(service, "GET", "/v1/pool/sha256/%s.zip" % digest, user="read")
    assert refused(answer, 404, "not_found")["msg"] in ("no such package file", "no such resource: GET /v1/pool/sha256/%s.zip" % digest)


def test_the_pool_file_of_an_upper_case_digest_is_not_served(service, big):
    refused(call(service, "GET", wire.pool_path(big.sha256.upper()), user="read"), 404, "not_found", "no such package file")


# ----------------------------------------------------------------- who may do what

READ_ROUTES = [
    "/v1/about",
    "/v1/packages",
    "/v1/packages?module_id=system-bios",
    "/v1/packages/for?model=Express5800%2FT110z-1M&os=rhel9",
    "/v1/listing?manager_id=m-reader",
    "/v1/tombstones",
    "/v1/events?limit=5",
]

#: (method, path, JSON body) of routes only the admin user may use, each a valid request
ADMIN_ROUTES = [
    ("POST", "/v1/events", {"events": [events.event("settings_read", settings=["initial_manual_icon"])]}),
    ("PATCH", "/v1/settings", {"settings": {"initial_manual_icon": "update_available"}}),
    ("PUT", "/v1/managers/m-admin/servers/web1", {"model": h.MODEL, "os": "rhel9", "modules": {}}),
    ("POST", "/v1/managers/m-admin/presence", {}),
    ("POST", "/v1/uploads", None),
    ("POST", "/v1/packages", {"uploads": []}),
    ("GET", "/v1/settings", None),
    ("POST", "/v1/tombstones/clear", {"check_mode": True}),
    ("POST", "/v1/refusals/clear", {"check_mode": True}),
    ("GET", "/v1/jobs/job-1/reported", None),
    ("GET", "/v1/managers/m-admin/servers/web1/bmc-modules", None),
]


def test_no_credentials_is_auth_required_with_a_basic_challenge(service, store):
    before = state(store)
    for path in ["/v1/about", "/v1/packages", "/v1/listing?manager_id=m1"]:
        answer = call(service, "GET", path, user=None)
        refused(answer, 401, "auth_required", auth.MESSAGES["auth_required"])
        assert answer.headers["www-authenticate"] == 'Basic realm="exup", charset="UTF-8"'
    answer = call(service, "PATCH", "/v1/settings", user=None, json_body={"settings": {"initial_manual_icon": "latest"}})
    refused(answer, 401, "auth_required")
    assert state(store) == before


@pytest.mark.parametrize("user, password", [("admin", "wrong-password-123"), ("read", "admin-password-for-tests"), ("root", "read-password-for-tests")])
def test_a_wrong_password_or_user_is_auth_failed_with_a_basic_challenge(service, store, user, password):
    before = state(store)
    answer = call(service, "GET", "/v1/about", authorization=basic(user, password), source=fresh_source())
    refused(answer, 401, "auth_failed", auth.MESSAGES["auth_failed"])
    assert answer.headers["www-authenticate"].startswith("Basic ")
    assert password.encode() not in answer.body
    assert state(store) == before


@pytest.mark.parametrize("path", READ_ROUTES)
def test_the_read_user_may_get_packages_listing_and_about(service, path):
    answer = call(service, "GET", path, user="read")
    assert answer.status == 200, answer.body[:300]
    assert answer.headers["content-type"] == "application/json"


def test_the_read_user_may_get_pool_files_and_sees_the_packages(service, big):
    listed = call(service, "GET", "/v1/packages", user="read").json()["packages"]
    assert {item["info"]["package_id"] for item in listed} == {"system-bios-1.00", "bmc-firmware-2.00", "raid-utility-3.00"}
    entry = next(item for item in listed if item["sha256"] == big.sha256)
    assert entry["url"] == wire.pool_path(big.sha256)
    assert call(service, "GET", entry["url"], user="read").body == big.data
    assert wire.stored_package_from_dict(entry, service.base_url).path == service.base_url + wire.pool_path(big.sha256)


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES, ids=[f"{method} {path}" for method, path, _body in ADMIN_ROUTES])
def test_the_read_user_is_forbidden_the_admin_routes_and_nothing_changes(service, store, method, path, body):
    before = state(store)
    answer = call(service, method, path, user="read", json_body=body, body=b"package bytes" if body is None and method == "POST" else None)
    refused(answer, 403, "forbidden", auth.MESSAGES["forbidden"] % ("read", "admin"))
    assert state(store) == before


def test_the_admin_user_may_use_the_admin_routes(service, store):
    answer = call(service, "POST", "/v1/events", json_body=ADMIN_ROUTES[0][2])
    assert answer.status == 200, answer.body
    assert [item["code"] for item in answer.json()["events"]] == ["settings_read"]
    answer = call(service, "PATCH", "/v1/settings", json_body={"settings": {"initial_manual_icon": "latest"}})
    assert answer.status == 200, answer.body
    assert answer.json()["settings"]["initial_manual_icon"] == "latest"
    assert call(service, "GET", "/v1/settings").json()["settings"]["initial_manual_icon"] == "latest"
    call(service, "PATCH", "/v1/settings", json_body={"settings": {"initial_manual_icon": "update_available"}})
    answer = call(service, "PUT", "/v1/managers/m-admin/servers/web1", json_body=ADMIN_ROUTES[2][2])
    assert answer.status == 200, answer.body
    answer = call(service, "POST", "/v1/managers/m-admin/servers/web1/differs", json_body=ADMIN_ROUTES[2][2])
    assert answer.json() == {"differs": False}
    assert call(service, "GET", "/v1/jobs/job-1/reported").json() == {"reported": False}


# ----------------------------------------------------------------- nobody deletes through the service (003 §3.6)


@pytest.mark.parametrize("user", ["admin", "read"])
def test_a_remote_delete_is_refused_and_the_package_stays(service, store, bios, user):
    before = state(store)
    answer = call(service, "DELETE", "/v1/packages/system-bios-1.00", user=user)
    body = refused(answer, 403, "remote_delete_refused")
    assert "003 §3.6" in body["msg"] and "repository host" in body["msg"]
    assert state(store) == before
    listed = call(service, "GET", "/v1/packages?module_id=system-bios", user="read").json()["packages"]
    assert [item["sha256"] for item in listed] == [bios.sha256]
    assert call(service, "GET", wire.pool_path(bios.sha256), user="read").body == bios.data


# ----------------------------------------------------------------- the manual add (003 §3.4.3) through an upload


def upload(service, data: bytes, name: str = "package.zip") -> str:
    answer = call(service, "POST", "/v1/uploads", body=data, headers={"X-Exup-File-Name": name, "Content-Type": "application/zip"})
    assert answer.status == 201, answer.body
    body = answer.json()
    assert (body["file"], body["size"]) == (name, len(data))
    return body["upload_id"]


def test_an_uploaded_signed_package_is_added_and_served_and_its_upload_removed(service, store, tmp_path):
    version = "1.10" if not service.tls else "1.20"
    data = h.package_bytes(h.info(f"system-bios-{version}", "system-bios", version), KEY)
    upload_id = upload(service, data, f"system-bios-{version}.zip")
    assert uploads(store) == [upload_id]
    answer = call(service, "POST", "/v1/packages", json_body={"uploads": [upload_id], "mode": "pinned"})
    assert answer.status == 200, answer.body
    [result] = answer.json()["results"]
    assert (result["result"], result["package_id"], result["sha256"]) == ("added", f"system-bios-{version}", hashlib.sha256(data).hexdigest())
    assert uploads(store) == []
    assert h.indexed(store)[f"system-bios-{version}"] == result["sha256"]
    assert call(service, "GET", wire.pool_path(result["sha256"]), user="read").body == data


def tampered(data: bytes, tmp_path: Path) -> bytes:
    """The package with one member's bytes changed after signing (its hash list no longer matches)."""
    source, target = tmp_path / "good.zip", tmp_path / "bad.zip"
    source.write_bytes(data)
    with zipfile.ZipFile(source) as good, zipfile.ZipFile(target, "w") as bad:
        for member in good.infolist():
            content = good.read(member)
            bad.writestr(member, content + b"\n# changed" if member.filename == "install.sh" else content)
    return target.read_bytes()


@pytest.mark.parametrize("kind", ["tampered", "untrusted key", "not a zip"])
def test_a_bad_uploaded_package_is_refused_with_its_code_and_the_store_is_unchanged(service, store, tmp_path, kind):
    good = h.package_bytes(h.info("system-bios-9.00", "system-bios", "9.00"), KEY)
    data = {
        "tampered": lambda: tampered(good, tmp_path),
        "untrusted key": lambda: h.package_bytes(h.info("system-bios-9.00", "system-bios", "9.00"), SigningKey.generate()),
        "not a zip": lambda: b"MZ this is not a package" * 100,
    }[kind]()
    before = h.package_snapshot(store)
    upload_id = upload(service, data, "system-bios-9.00.zip")
    answer = call(service, "POST", "/v1/packages", json_body={"uploads": [upload_id], "mode": "pinned"})
    assert answer.status == 200, answer.body
    [result] = answer.json()["results"]
    assert result["file"] == "system-bios-9.00.zip"
    assert result["error"] == {"tampered": "digest_mismatch", "untrusted key": "unknown_key", "not a zip": "zip_invalid"}[kind], result
    assert result["result"] == "error_invalid_package"
    assert result["msg"].startswith("The update package is invalid: ")
    assert "package_id" not in result
    assert h.package_snapshot(store) == before
    assert "system-bios-9.00" not in h.indexed(store)
    assert uploads(store) == []


def test_an_upload_named_like_a_path_stays_in_its_upload_folder(service, store):
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and "-wal" not in p.name and "-shm" not in p.name}
    upload_id = upload_raw_name(service, "../../../repo.db")
    folder = store / "tmp" / "uploads" / upload_id
    assert sorted(p.name for p in folder.iterdir()) == ["repo.db"]
    assert (folder / "repo.db").read_bytes() == b"not a package"
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the store's own repo.db is untouched
    answer = call(service, "POST", "/v1/packages", json_body={"uploads": [upload_id], "mode": "pinned"})
    assert answer.json()["results"][0]["error"] == "zip_invalid"
    assert uploads(store) == []
    assert h.check_store(store, h.keyring(KEY))


def upload_raw_name(service, name: str) -> str:
    answer = call(service, "POST", "/v1/uploads", body=b"not a package", headers={"X-Exup-File-Name": name})
    assert answer.status == 201, answer.body
    assert answer.json()["file"] == name.rsplit("/", 1)[-1]
    return answer.json()["upload_id"]


@pytest.mark.parametrize("name", ["..", ".", "folder/", "x" * 300, ""])
def test_an_upload_named_as_a_folder_or_too_long_is_request_invalid(service, store, name):
    before = state(store)
    answer = call(service, "POST", "/v1/uploads", body=b"bytes", headers={"X-Exup-File-Name": name})
    refused(answer, 400, "request_invalid")
    assert state(store) == before


@pytest.mark.parametrize("ids", [["../../pool"], ["0123456789abcdef"], ["/etc"], "abc", [1]])
def test_an_add_of_uploads_that_do_not_exist_is_request_invalid(service, store, ids):
    before = state(store)
    answer = call(service, "POST", "/v1/packages", json_body={"uploads": ids, "mode": "pinned"})
    refused(answer, 400, "request_invalid")
    assert state(store) == before


# ----------------------------------------------------------------- presence (003 §2.2.8)


def test_a_managers_presence_is_recorded_and_listed(service, store):
    manager = "m-presence-" + ("tls" if service.tls else "plain")
    servers = [{"name": "web1", "model": h.MODEL, "os": "rhel9", "modules": {"system-bios": "1.00"}}]
    answer = call(service, "POST", f"/v1/managers/{manager}/presence", json_body={"servers": servers})
    assert answer.status == 200, answer.body
    assert answer.json() == {"manager_id": manager, "expired": []}
    listing = call(service, "GET", f"/v1/listing?manager_id={manager}", user="read").json()
    assert manager in [item["manager_id"] for item in listing["managers"]]
    assert listing["servers"] >= 1
    again = call(service, "POST", f"/v1/managers/{manager}/presence", json_body={})  # presence alone keeps its servers
    assert again.json() == {"manager_id": manager, "expired": []}
    assert manager in [item["manager_id"] for item in call(service, "GET", f"/v1/listing?manager_id={manager}").json()["managers"]]


@pytest.mark.parametrize("manager", ["..", "a%2fb", "a%20b", "x" * 65, "%00"])
def test_a_presence_of_a_bad_manager_id_is_refused_and_nothing_is_recorded(service, store, manager):
    before = state(store)
    answer = call(service, "POST", f"/v1/managers/{manager}/presence", json_body={})
    assert answer.status in (400, 404)
    refused(answer, answer.status, "request_invalid" if answer.status == 400 else "not_found")
    assert state(store) == before


# ----------------------------------------------------------------- the log read back (GET /v1/events, issue 13)


def test_events_logged_by_the_admin_are_read_back_by_the_read_user_and_the_client(service, store):
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import remote
    from ansible_collections.exup.fleet.tests.services.repo_service import READ_PASSWORD

    items = [events.event(code, server="ev-web1", job_id="j-%d" % number) for number, code in enumerate(("apply_started", "apply_finished"))]
    items.append(events.event("apply_started", server="ev-web10"))  # another server, its name longer by a digit
    assert call(service, "POST", "/v1/events", json_body={"events": items}).status == 200
    answer = call(service, "GET", "/v1/events?limit=2&server=ev-web1", user="read")
    assert answer.status == 200, answer.body
    got = answer.json()["events"]
    assert [(item["code"], item["detail"]) for item in got] == [
        ("apply_finished", {"server": "ev-web1", "job_id": "j-1"}),
        ("apply_started", {"server": "ev-web1", "job_id": "j-0"}),
    ]
    assert got[0]["id"] > got[1]["id"] and got[0]["time"] and got[0]["level"] == "normal"
    newest = call(service, "GET", "/v1/events?limit=1", user="read").json()["events"]
    assert [item["detail"]["server"] for item in newest] == ["ev-web10"]
    # the client a manager (or AWX) runs, with the read password only: the same events, checked on arrival
    repo = remote.RemoteRepository(remote.RemoteOptions(service.base_url, READ_PASSWORD, user="read", ca_path=str(service.ca_path) if service.tls else None))
    assert repo.recent_events(5000, "ev-web1") == got
    assert [item["code"] for item in repo.recent_events(1, "ev-web1")] == ["apply_finished"]
    assert repo.recent_events(10, "nobody") == []


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=5001", "limit=-1", "limit=1.5", "limit=%C2%B2", "limit=" + "9" * 40, "limit=abc", "server=", "server=a%00b", "server=" + "x" * 257],
    ids=["zero", "too-many", "negative", "fraction", "superscript", "huge", "text", "empty-server", "control", "long-server"],
)
def test_a_hostile_events_query_is_request_invalid_and_changes_nothing(service, store, query):
    before = state(store)
    refused(call(service, "GET", "/v1/events?" + query, user="read"), 400, "request_invalid")
    assert state(store) == before


def test_reading_events_needs_a_login(service, store):
    refused(call(service, "GET", "/v1/events", user=None), 401, "auth_required")
