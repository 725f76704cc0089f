"""Shared helpers of the repository service's system tests: a filled store, requests sent exactly as written, refusals.

Requests go through http.client with the path passed verbatim (no client normalises ``..`` or percent
escapes away), optionally from another loopback source address: the login limiter counts per client
address, so a test that spends failed logins uses its own address and leaves 127.0.0.1 unlocked.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import itertools
import json
import os
import ssl
from pathlib import Path

from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import wire
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK
from ansible_collections.exup.fleet.tests.services.repo_service import ADMIN_PASSWORD, READ_PASSWORD, RepoService
from ansible_collections.exup.fleet.tests.system import helpers as h

PASSWORDS = {"admin": ADMIN_PASSWORD, "read": READ_PASSWORD}
_SOURCES = itertools.count(2)


def fresh_source() -> str:
    """A loopback address no other test used as its source (127.0.1.2, 127.0.1.3, ...)."""
    number = next(_SOURCES)
    return f"127.0.{1 + number // 250}.{number % 250 + 2}"


def basic(user: str, password: str | None = None) -> str:
    password = PASSWORDS[user] if password is None else password
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)


def connection(service: RepoService, source: str = LOOPBACK, timeout: float = 10.0) -> http.client.HTTPConnection:
    """A keep-alive connection to the service from ``source`` (HTTPS trusting the service's test CA)."""
    assert service.port is not None
    if service.tls:
        context = ssl.create_default_context(cafile=str(service.ca_path))
        return http.client.HTTPSConnection(LOOPBACK, service.port, timeout=timeout, source_address=(source, 0), context=context)
    return http.client.HTTPConnection(LOOPBACK, service.port, timeout=timeout, source_address=(source, 0))


def call(
    service: RepoService,
    method: str,
    path: str,
    *,
    user: str | None = "admin",
    authorization: str | bytes | None = None,
    headers: dict | None = None,
    body: bytes | None = None,
    json_body=None,
    source: str = LOOPBACK,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One request with ``path`` sent byte for byte; ``authorization`` replaces the user's Basic header."""
    own = conn is None
    conn = conn or connection(service, source, timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if authorization is not None:
            conn.putheader("Authorization", authorization)
        elif user is not None:
            conn.putheader("Authorization", basic(user))
        if json_body is not None:
            body = json.dumps(json_body).encode()
            conn.putheader("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, data)
    finally:
        if own:
            conn.close()


def refused(answer: Answer, status: int, code: str, msg: str | None = None) -> dict:
    """Assert a JSON refusal of the service: its status, code and (when given) message; no traceback. Returns the body."""
    assert answer.status == status, (answer.status, answer.body[:400])
    assert answer.headers.get("content-type") == "application/json", answer.headers
    assert b"Traceback" not in answer.body and b'File "' not in answer.body
    body = answer.json()
    assert body["error"] == code, body
    assert wire.ERROR_CODE.fullmatch(body["error"])
    assert isinstance(body["msg"], str) and body["msg"]
    if msg is not None:
        assert body["msg"] == msg, body["msg"]
    return body


def uploads(store: Path) -> list[str]:
    """The upload folders waiting in the store's tmp/uploads."""
    folder = Path(store) / "tmp" / "uploads"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def state(store: Path) -> dict:
    """Everything a request could change in the store: every database row (events too), pool files, tmp/, uploads."""
    snapshot = h.snapshot(store, skip_tables=())
    snapshot["tmp"].pop("uploads", None)  # the folder of uploads, made by the first one: its contents are listed instead
    return dict(snapshot, uploads=uploads(store))


@dataclasses.dataclass
class StoredFile:
    package_id: str
    sha256: str
    data: bytes


def fill_store(store: Path, key, work: Path, big_bytes: int = 0) -> dict[str, StoredFile]:
    """A store with two pinned, signed packages added the way a manager adds them (Repository.add_files).

    ``big_bytes`` adds a third whose payload is that many random bytes (for ranges and slow readers).
    """
    work.mkdir(parents=True, exist_ok=True)
    specs: list[tuple[str, str, str, dict[str, bytes] | None]] = [
        ("system-bios-1.00", "system-bios", "1.00", None),
        ("bmc-firmware-2.00", "bmc-firmware", "2.00", None),
    ]
    if big_bytes:
        specs.append(("raid-utility-3.00", "raid-utility", "3.00", {"payload/big.bin": os.urandom(big_bytes), "install.sh": b"#!/bin/sh\nexit 0\n"}))
    paths = []
    for package_id, module_id, version, payload in specs:
        path = work / f"{package_id}.zip"
        path.write_bytes(h.package_bytes(h.info(package_id, module_id, version), key, payload=payload))
        paths.append(str(path))
    results = Repository(str(store)).add_files(paths, h.keyring(key), mode="pinned")
    assert [result["result"] for result in results] == ["added"] * len(paths), results
    stored = zip(results, paths, strict=True)
    return {result["package_id"]: StoredFile(result["package_id"], result["sha256"], Path(path).read_bytes()) for result, path in stored}
