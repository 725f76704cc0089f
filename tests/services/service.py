"""The lifecycle every daemon-backed test server shares (nginx, squid, sshd): Service.

A Service keeps its config, logs and pid file in a private temp directory that is removed when
it stops (or in a fixed directory that is kept), retries a start whose free port was taken
meanwhile, measures start and stop, and is a context manager.
"""

import shutil
import tempfile
import time
import typing
from pathlib import Path

from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK
from ansible_collections.exup.fleet.tests.services.processes import Daemon, ServiceError


class Service:
    """Shared lifecycle: private temp dir, timing, context manager. Subclasses write _start()."""

    kind = "service"

    def __init__(self) -> None:
        self._workdir: Path | None = None
        self.directory: Path | None = None  # a fixed workdir, kept at stop (else a temp dir, removed)
        self.requested_port: int | None = None
        self._daemon: Daemon | None = None
        self.start_seconds: float | None = None  # measured, for reports on test speed
        self.stop_seconds: float | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def workdir(self) -> Path:
        """The private directory (config, logs, pid files) of the started server."""
        if self._workdir is None:
            raise ServiceError(f"{self.kind} is not started")
        return self._workdir

    @property
    def pid(self) -> int | None:
        return self._daemon.proc.pid if self._daemon and self._daemon.proc else None

    def start(self):
        began = time.monotonic()
        for attempt in range(3):
            if self.directory is None:
                self._workdir = Path(tempfile.mkdtemp(prefix=f"exup-{self.kind}-"))
            else:
                self._workdir = self.directory
                self.directory.mkdir(parents=True, exist_ok=True)
            try:
                self._start()
                break
            except ServiceError as exc:
                self.stop()
                # free_port() can race with another process: take a new port, unless the
                # caller chose this one.
                if self.requested_port or attempt == 2 or "Address already in use" not in str(exc):
                    raise
            except BaseException:
                self.stop()
                raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        began = time.monotonic()
        try:
            if self._daemon is not None:
                self._stop_daemon(self._daemon)
        finally:
            self._daemon = None
            if self._workdir is not None and self.directory is None:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self.stop_seconds = time.monotonic() - began

    def _start(self) -> None:
        raise NotImplementedError

    def _stop_daemon(self, daemon: Daemon) -> None:
        daemon.stop()


class HttpEndpoint:
    """The URLs of a test server on 127.0.0.1 over HTTP, or HTTPS with its own test CA (nginx, the repository service)."""

    tls: bool
    port: int | None
    tls_files: typing.Any  # tls.TlsFiles once started with tls=True

    @property
    def base_url(self) -> str:
        """Like "http://127.0.0.1:8123" (no trailing slash)."""
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + "/" + path.lstrip("/")

    @property
    def ca_path(self) -> Path | None:
        """The CA certificate to trust for tls=True, else None."""
        return self.tls_files.ca_path if self.tls_files else None
