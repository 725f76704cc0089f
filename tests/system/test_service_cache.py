"""HTTP caches in front of the repository service's package files (issue 12, item 9; docs/scale.md).

nginx on loopback in front of the real service (tests/services/pool_cache.py):

- the shipped example, docs/examples/nginx-pool-cache.conf: nginx -t accepts it; it keeps each file once under its
  path alone and serves every client the service admits (any ticket of the file, the read login), with the real
  host fetch code (host/fetch.py); it refuses whom the service refuses even when the file is cached; no ticket or
  password in its cache files or its log;
- a plain proxy_cache that does not authorize (nginx's defaults): the service's Cache-Control keeps it from giving a
  logged-in answer to a client with no login, and from serving a ticket's URL after the ticket has expired (both
  happened with the earlier ``public, max-age=31536000`` on every answer).
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time

import pytest
import requests

from ansible_collections.exup.fleet.plugins.module_utils._exup.host import fetch
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire
from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
from ansible_collections.exup.fleet.tests.services.pool_cache import PoolCache, nginx_argv, write_config
from ansible_collections.exup.fleet.tests.services.repo_service import READ_PASSWORD, RepoService
from ansible_collections.exup.fleet.tests.system.service_helpers import fill_store

KEY = SigningKey.generate()
READ = ("read", READ_PASSWORD)
AUTHORIZE = "/_exup_authorize"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The service over a store with three packages, the shipped cache and a naive one in front of it."""
    root = tmp_path_factory.mktemp("cache")
    files = fill_store(root / "store", KEY, root / "packages", big_bytes=300_000)
    with RepoService(root / "store", trusted_keys=[KEY.public_pem().decode()]) as service:
        assert service.port is not None
        with PoolCache(service.port, site="edge") as edge, PoolCache(service.port, site="naive") as naive:
            yield service, edge, naive, files


def ticket(service: RepoService, digest: str, seconds: int) -> str:
    """A pool ticket's relative URL (what the action plugin gives a host, rebased onto a cache)."""
    answer = service.request("POST", "/v1/pool/tickets", "read", json={"sha256": [digest], "seconds": seconds})
    answer.raise_for_status()
    return answer.json()["urls"][digest]


def since(cache: PoolCache, mark: int, count: int) -> list[dict]:
    entries = cache.wait_for_log(mark + count)[mark:]
    assert len(entries) == count, entries
    return entries


def test_nginx_accepts_the_shipped_cache_example(tmp_path):
    write_config(tmp_path, "edge", 18081, 18080)  # the example with its CHANGE lines filled in, nothing else
    checked = subprocess.run(nginx_argv(tmp_path, "-t"), capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_the_shipped_cache_fetches_a_file_once_and_serves_every_admitted_client(world):
    service, edge, _naive, files = world
    big = files["raid-utility-3.00"]
    size = len(big.data)
    mark = len(edge.access_log())
    first = ticket(service, big.sha256, 600)
    other = ticket(service, big.sha256, 900)  # another host's ticket: another URL, the same file
    assert first != other
    # the managed host's own fetch code (host/fetch.py), pointed at the cache
    for url in (first, other):
        data = b"".join(fetch.fetch_chunks(edge.url(url), size, timeout=10))
        assert hashlib.sha256(data).hexdigest() == big.sha256
    logged_in = requests.get(edge.url(wire.pool_path(big.sha256)), auth=READ, timeout=10)
    assert (logged_in.status_code, logged_in.content) == (200, big.data)
    assert logged_in.headers["x-cache-status"] == "HIT"
    assert logged_in.headers["cache-control"] == "private, max-age=31536000, immutable"
    entries = since(edge, mark, 6)
    answers = [entry for entry in entries if entry["uri"] != AUTHORIZE]
    checks = [entry for entry in entries if entry["uri"] == AUTHORIZE]
    assert [entry["cache"] for entry in answers] == ["MISS", "HIT", "HIT"]
    assert [entry["upstream_length"] for entry in answers] == [str(size), "", ""]  # the service sent the bytes once
    assert [(entry["status"], entry["upstream_length"]) for entry in checks] == [(200, "0")] * 3  # and was asked every time


@pytest.mark.parametrize("who", ["nobody", "a wrong ticket", "another file's ticket", "an expired ticket", "a wrong password"])
def test_the_shipped_cache_refuses_whom_the_service_refuses_with_the_file_cached(world, who):
    service, edge, _naive, files = world
    bios, bmc = files["system-bios-1.00"], files["bmc-firmware-2.00"]
    path = wire.pool_path(bios.sha256)
    warm = requests.get(edge.url(path), auth=READ, timeout=10)
    assert warm.status_code == 200 and warm.headers["x-cache-status"] in ("MISS", "HIT")
    auth = None
    if who == "nobody":
        url, status, code = path, 401, "auth_required"
    elif who == "a wrong ticket":
        good = ticket(service, bios.sha256, 600)
        url, status, code = good[:-4] + ("0000" if not good.endswith("0000") else "1111"), 403, "ticket_invalid"
    elif who == "another file's ticket":
        url, status, code = path + "?" + ticket(service, bmc.sha256, 600).split("?", 1)[1], 403, "ticket_invalid"
    elif who == "an expired ticket":
        url = ticket(service, bios.sha256, 1)
        assert requests.get(edge.url(url), timeout=10).status_code == 200
        time.sleep(2.1)  # the ticket's own lifetime, not a timing assertion
        status, code = 403, "ticket_expired"
    else:
        url, status, code, auth = path, 401, "auth_failed", ("read", "not-the-password")
    answer = requests.get(edge.url(url), auth=auth, timeout=10)
    assert answer.status_code == status, answer.text
    assert bios.data not in answer.content
    assert answer.json()["error"] == code  # the service's own refusal (error_page to the service, uncached)
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Basic")


def test_an_unknown_file_through_the_shipped_cache_is_the_services_not_found(world):
    _service, edge, _naive, _files = world
    answer = requests.get(edge.url(wire.pool_path("0" * 64)), auth=READ, timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def test_no_ticket_or_password_is_in_the_shipped_caches_files_or_log(world):
    service, edge, _naive, files = world
    big = files["raid-utility-3.00"]
    url = ticket(service, big.sha256, 600)
    assert requests.get(edge.url(url), timeout=10).status_code == 200
    assert requests.get(edge.url(wire.pool_path(big.sha256)), auth=READ, timeout=10).status_code == 200
    secret = url.split("ticket=", 1)[1]
    password = base64.b64encode(("read:%s" % READ_PASSWORD).encode())
    cached = [path for path in edge.cache_dir.rglob("*") if path.is_file()]
    assert cached
    for path in cached:
        data = path.read_bytes()
        assert b"ticket=" not in data and secret.encode() not in data and password not in data, path
        assert b"KEY: exup-pool/v1/pool/sha256/" in data  # the key is the path alone
    log = (edge.workdir / "pool.log").read_text()
    assert "/v1/pool/sha256/%s.zip" % big.sha256 in log
    assert "ticket=" not in log and secret not in log


def test_a_cache_that_does_not_authorize_gives_no_logged_in_answer_to_anyone_else(world):
    _service, _edge, naive, files = world
    bmc = files["bmc-firmware-2.00"]
    path = wire.pool_path(bmc.sha256)
    logged_in = requests.get(naive.url(path), auth=READ, timeout=10)
    assert logged_in.status_code == 200
    assert logged_in.headers["cache-control"].startswith("private,")
    anonymous = requests.get(naive.url(path), timeout=10)
    # with "public" nginx stored the answer under the URL and gave it here: a 200 HIT with the bytes
    assert anonymous.status_code == 401, anonymous.headers.get("x-cache-status")
    assert bmc.data not in anonymous.content
    assert anonymous.json()["error"] == "auth_required"  # the service's refusal: the request reached it


def test_a_cache_that_does_not_authorize_keeps_a_ticket_answer_no_longer_than_the_ticket(world):
    service, _edge, naive, files = world
    bios = files["system-bios-1.00"]
    url = ticket(service, bios.sha256, 2)
    fresh = requests.get(naive.url(url), timeout=10)
    assert fresh.status_code == 200
    assert fresh.headers["cache-control"] in ("public, max-age=1, immutable", "public, max-age=2, immutable", "public, max-age=0, immutable")
    again = requests.get(naive.url(url), timeout=10)
    assert again.status_code == 200  # the same ticket's URL while it lasts: the cache may answer (HIT or not)
    time.sleep(3.1)  # past the ticket's end, not a timing assertion
    expired = requests.get(naive.url(url), timeout=10)
    # with max-age=31536000 the cache went on serving the expired ticket's URL (200 HIT)
    assert expired.status_code == 403, expired.headers.get("x-cache-status")
    assert expired.json()["error"] == "ticket_expired"
