"""The exup repository service (granian + starlette) as a test server on loopback: RepoService.

It runs the collection's own runner (``service/main.py``) as a separate process, with its own store,
credentials file and configuration, over HTTP or HTTPS (a fresh test CA), so tests talk to the real
server a repository host would run.
"""

import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import requests

from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port, port_accepts
from ansible_collections.exup.fleet.tests.services.processes import Daemon
from ansible_collections.exup.fleet.tests.services.service import HttpEndpoint, Service
from ansible_collections.exup.fleet.tests.services.tls import TlsFiles, make_tls_files

RUNNER = "ansible_collections.exup.fleet.plugins.module_utils._exup.service.main"
ADMIN_PASSWORD = "admin-password-for-tests"  # not a secret: loopback only, a fresh store per test
READ_PASSWORD = "read-password-for-tests"


def collections_root() -> Path:
    """The directory that holds ansible_collections/ (the service process imports the collection from it)."""
    spec = importlib.util.find_spec("ansible_collections.exup.fleet")
    assert spec and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))).parents[2]


def write_credentials(store: Path, admin_password: str | None = ADMIN_PASSWORD, read_password: str | None = READ_PASSWORD) -> None:
    """The credentials file the repository settings write (0600, Argon2id hashes)."""
    store.mkdir(parents=True, exist_ok=True)
    data = {}
    if admin_password:
        data["admin_hash"] = auth.hash_password(admin_password)
    if read_password:
        data["read_hash"] = auth.hash_password(read_password)
    path = store / "service-credentials.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)


class RepoService(HttpEndpoint, Service):
    """The repository service over ``store`` on 127.0.0.1 (HTTP, or HTTPS with ``tls=True``)."""

    kind = "exup-service"

    def __init__(self, store: str | os.PathLike, *, tls: bool = False, port: int | None = None, workers: int = 1, credentials: bool = True, **config):
        super().__init__()
        self.store = Path(store)
        self.tls = tls
        self.requested_port = port
        self.workers = workers
        self.credentials = credentials
        self.config = config  # feed_url, trusted_keys, manager_id
        self.port: int | None = None
        self.tls_files: TlsFiles | None = None

    @property
    def verify(self) -> str | bool:
        return str(self.ca_path) if self.ca_path else True

    def get(self, path: str, user: str = "admin", **kwargs) -> requests.Response:
        """A request as one of the service's users (admin, read), or anonymous with user=None."""
        return self.request("GET", path, user, **kwargs)

    def request(self, method: str, path: str, user: str | None = "admin", **kwargs) -> requests.Response:
        auth_pair = None if user is None else (user, ADMIN_PASSWORD if user == "admin" else READ_PASSWORD)
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.url(path), auth=auth_pair, verify=self.verify, **kwargs)

    def _start(self) -> None:
        if self.credentials and not (self.store / "service-credentials.json").exists():
            write_credentials(self.store)
        port = self.port = self.requested_port or free_port()
        config = {"store": str(self.store), "host": LOOPBACK, "port": port, "workers": self.workers, **self.config}
        if self.tls:
            tls_files = self.tls_files = make_tls_files(self.workdir)
            config.update(tls_certificate=str(tls_files.cert_path), tls_key=str(tls_files.key_path))
        config_path = self.workdir / "service.json"
        config_path.write_text(json.dumps(config))
        env = dict(os.environ, PYTHONPATH=str(collections_root()))
        argv = [sys.executable, "-m", RUNNER, str(config_path)]
        daemon = self._daemon = Daemon("exup-service", argv, self.workdir, [])
        daemon.start(env)
        daemon.wait_ready(lambda: self._ready(port), timeout=30.0)

    def _ready(self, port: int) -> bool:
        if not port_accepts(port):
            return False
        try:
            return requests.get(self.url("/v1/about"), verify=self.verify, timeout=2).status_code in (200, 401)
        except requests.RequestException:
            return False

    def _stop_daemon(self, daemon: Daemon) -> None:
        daemon.stop(signal.SIGTERM, grace=10.0)
