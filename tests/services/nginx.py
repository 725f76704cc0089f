"""nginx serving a directory as static files on 127.0.0.1 (HTTP or HTTPS with a test CA): NginxServer.

Its access log is one JSON object per finished request, so tests can count requests and bytes.
"""

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port, port_accepts
from ansible_collections.exup.fleet.tests.services.processes import Daemon, ServiceError, complete_lines, find_program
from ansible_collections.exup.fleet.tests.services.service import HttpEndpoint, Service
from ansible_collections.exup.fleet.tests.services.tls import TlsFiles, make_tls_files

# One JSON object per request (escape=json keeps it valid), so tests can count requests and bytes.
# completion is "OK" only when the whole response was sent.
_NGINX_LOG_FORMAT = (
    '{"time":"$time_iso8601","remote":"$remote_addr","method":"$request_method","uri":"$request_uri",'
    '"status":$status,"body_bytes_sent":$body_bytes_sent,"bytes_sent":$bytes_sent,'
    '"completion":"$request_completion","range":"$http_range","if_range":"$http_if_range",'
    '"if_none_match":"$http_if_none_match","if_modified_since":"$http_if_modified_since",'
    '"user_agent":"$http_user_agent","via":"$http_via","x_forwarded_for":"$http_x_forwarded_for","connection":$connection}'
)

_NGINX_CONF = """\
# Private test nginx: foreground master, runs as root so it can read any test directory.
daemon off;
master_process on;
worker_processes 1;
user root;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    types {{
        application/xml xml;
        application/json json;
        text/plain txt;
    }}
    default_type application/octet-stream;
    sendfile on;
    log_format exup escape=json '{log_format}';
    access_log {workdir}/access.log exup;

    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;

    server {{
        listen {host}:{port}{ssl};
        server_name localhost;
        root "{root}";
{tls_lines}
        # ETag, Last-Modified and byte ranges are nginx defaults for static files.
        location / {{
        }}
    }}
}}
"""


class NginxServer(HttpEndpoint, Service):
    """nginx serving root_dir as static files on 127.0.0.1 (files may be added while it runs)."""

    kind = "nginx"

    def __init__(self, root_dir: str | os.PathLike, *, tls: bool = False, port: int | None = None):
        super().__init__()
        self.root_dir = Path(root_dir).resolve()
        self.tls = tls
        self.requested_port = port
        self.port: int | None = None
        self.tls_files: TlsFiles | None = None

    @property
    def access_log_path(self) -> Path:
        return self.workdir / "access.log"

    @property
    def error_log_path(self) -> Path:
        return self.workdir / "error.log"

    def access_log(self) -> list[dict]:
        """The requests nginx has finished so far, oldest first (see _NGINX_LOG_FORMAT for keys)."""
        return [json.loads(line) for line in complete_lines(self.access_log_path)]

    def wait_for_log(self, count: int, timeout: float = 5.0) -> list[dict]:
        """The access log once it has at least count entries.

        nginx writes an entry only when it has finished the response, which may be just after the
        client has read the last byte, so tests should wait rather than read at once.
        """
        deadline = time.monotonic() + timeout
        while True:
            entries = self.access_log()
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.01)

    def _start(self) -> None:
        if not self.root_dir.is_dir():
            raise ServiceError(f"nginx root {self.root_dir} is not a directory")
        port = self.port = self.requested_port or free_port()
        tls_lines = ""
        if self.tls:
            tls_files = self.tls_files = make_tls_files(self.workdir)
            tls_lines = f"        ssl_certificate {tls_files.cert_path};\n        ssl_certificate_key {tls_files.key_path};\n"
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(
                workdir=self.workdir,
                log_format=_NGINX_LOG_FORMAT,
                host=LOOPBACK,
                port=port,
                ssl=" ssl" if self.tls else "",
                root=self.root_dir,
                tls_lines=tls_lines,
            )
        )
        # -e: the error log before the config is read (the default is under /var/log).
        argv = [find_program("nginx", "/usr/sbin/nginx"), "-p", str(self.workdir), "-c", str(conf), "-e", str(self.error_log_path)]
        daemon = self._daemon = Daemon("nginx", argv, self.workdir, [self.error_log_path])
        daemon.start()
        daemon.wait_ready(lambda: self._ready(daemon, port))

    def _ready(self, daemon: Daemon, port: int) -> bool:
        # nginx writes its pid file only after it has bound its port; a bare connect could reach
        # whoever else holds the port (nginx then retries bind() for 2.5 s and exits).
        pid_file = self.workdir / "nginx.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        return pid == str(daemon.pid) and port_accepts(port)

    def _stop_daemon(self, daemon: Daemon) -> None:
        # SIGTERM is nginx's fast shutdown: it drops open connections at once.
        daemon.stop(signal.SIGTERM)


@contextlib.contextmanager
def nginx_server(root_dir: str | os.PathLike, *, tls: bool = False, port: int | None = None):
    """Run nginx serving root_dir; yields the started NginxServer, stops it on exit."""
    server = NginxServer(root_dir, tls=tls, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
