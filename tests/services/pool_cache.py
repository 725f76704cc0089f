"""nginx as an HTTP cache in front of the repository service on 127.0.0.1: PoolCache.

``edge``: docs/examples/nginx-pool-cache.conf, the shipped example, with only its CHANGE values replaced (the
service's port, the cache's port, the cache folder, the log) and a JSON access log added. ``naive``: a plain
``proxy_cache`` with nginx's defaults (the key is the whole URL with its query, the service's Cache-Control is
obeyed, no authorization of its own): what any shared cache that does not authorize does with the service's answers.
The access log (log_subrequest on, so the edge's authorization HEADs too) is one JSON object per request.
"""

import json
import signal
import time
from pathlib import Path

from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port, port_accepts
from ansible_collections.exup.fleet.tests.services.processes import Daemon, complete_lines, find_program
from ansible_collections.exup.fleet.tests.services.service import HttpEndpoint, Service

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "nginx-pool-cache.conf"

_LOG_FORMAT = (
    '{"uri":"$uri","request_uri":"$request_uri","method":"$request_method","status":$status,"bytes":$body_bytes_sent,'
    '"cache":"$upstream_cache_status","upstream_status":"$upstream_status","upstream_length":"$upstream_response_length"}'
)

_MAIN = """\
# Private test nginx: foreground master, runs as root so it can read any test directory.
daemon off;
master_process on;
worker_processes {workers};
user root;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;

events {{
    worker_connections 4096;
}}

http {{
    log_format exup_json escape=json '{log_format}';
    log_subrequest on;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {site};
}}
"""

_NAIVE = """\
proxy_cache_path {workdir}/cache levels=1:2 keys_zone=naive:10m use_temp_path=off;
upstream exup_repository {{
    server {host}:{origin_port};
    keepalive 32;
}}
server {{
    listen {host}:{port};
    access_log {workdir}/access.log exup_json;
    location / {{
        proxy_pass http://exup_repository;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_cache naive;
        proxy_cache_lock on;
        proxy_cache_lock_timeout 600s;
        add_header X-Cache-Status $upstream_cache_status;
    }}
}}
"""


def edge_site(text: str, host: str, port: int, origin_port: int, workdir: Path) -> str:
    """The shipped example with its CHANGE values replaced; each must be there exactly once."""
    changes = {
        "/var/cache/nginx/exup-pool ": f"{workdir}/cache ",
        "server 127.0.0.1:8080;": f"server {host}:{origin_port};",
        "listen 127.0.0.1:8081;": f"listen {host}:{port};",
        "access_log /var/log/nginx/exup-pool.log exup_pool;": f"access_log {workdir}/pool.log exup_pool; access_log {workdir}/access.log exup_json;",
    }
    for old, new in changes.items():
        if text.count(old) != 1:
            raise ValueError(f"{EXAMPLE} no longer has exactly one {old!r}: update tests/services/pool_cache.py")
        text = text.replace(old, new)
    return text


def write_config(workdir: Path, site: str, port: int, origin_port: int, workers: int = 1) -> Path:
    """nginx.conf (and site.conf) in ``workdir`` for a cache on ``port`` in front of the service on ``origin_port``."""
    site_path = workdir / "site.conf"
    if site == "edge":
        site_path.write_text(edge_site(EXAMPLE.read_text(), LOOPBACK, port, origin_port, workdir))
    else:
        site_path.write_text(_NAIVE.format(host=LOOPBACK, port=port, origin_port=origin_port, workdir=workdir))
    config = workdir / "nginx.conf"
    config.write_text(_MAIN.format(workers=workers, workdir=workdir, log_format=_LOG_FORMAT, site=site_path))
    return config


def nginx_argv(workdir: Path, *extra: str) -> list[str]:
    """nginx with the configuration write_config made in ``workdir`` (extra: -t to test it)."""
    nginx = find_program("nginx", "/usr/sbin/nginx")
    return [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", str(workdir / "error.log"), *extra]


class PoolCache(HttpEndpoint, Service):
    """nginx caching the repository service at 127.0.0.1:``origin_port`` (kind ``edge`` or ``naive``)."""

    kind = "nginx-cache"

    def __init__(self, origin_port: int, *, site: str = "edge", workers: int = 1, port: int | None = None):
        super().__init__()
        if site not in ("edge", "naive"):
            raise ValueError(site)
        self.origin_port = origin_port
        self.site = site
        self.workers = workers
        self.requested_port = port
        self.port: int | None = None
        self.tls = False
        self.tls_files = None

    @property
    def cache_dir(self) -> Path:
        return self.workdir / "cache"

    def argv(self, *extra: str) -> list[str]:
        return nginx_argv(self.workdir, *extra)

    def access_log(self) -> list[dict]:
        """Finished requests, oldest first; the edge's authorization subrequests have uri /_exup_authorize."""
        return [json.loads(line) for line in complete_lines(self.workdir / "access.log")]

    def wait_for_log(self, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            entries = self.access_log()
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.01)

    def _start(self) -> None:
        port = self.port = self.requested_port or free_port()
        write_config(self.workdir, self.site, port, self.origin_port, self.workers)
        daemon = self._daemon = Daemon("nginx", self.argv(), self.workdir, [self.workdir / "error.log"])
        daemon.start()
        daemon.wait_ready(lambda: self._ready(daemon, port))

    def _ready(self, daemon: Daemon, port: int) -> bool:
        pid_file = self.workdir / "nginx.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        return pid == str(daemon.pid) and port_accepts(port)

    def _stop_daemon(self, daemon: Daemon) -> None:
        daemon.stop(signal.SIGTERM)
