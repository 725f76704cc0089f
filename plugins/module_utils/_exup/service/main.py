# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the repository service: ``python -m ansible_collections.exup.fleet.plugins.module_utils._exup.service.main CONFIG``.

granian runs the ASGI app of ``app.py`` in its worker processes; each worker builds the app from the
configuration file named by ``EXUP_SERVICE_CONFIG`` (granian's factory target takes no arguments).
The configuration is checked here first, so a bad one fails before a port is taken.
"""

from __future__ import annotations

import os
import pathlib
import sys

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.config import ServiceConfig, read_config

CONFIG_ENV = 'EXUP_SERVICE_CONFIG'
APP_FACTORY = 'ansible_collections.exup.fleet.plugins.module_utils._exup.service.app:app_from_environment'
HEADER_READ_TIMEOUT_MS = 10000  # a client that sends no complete request head in 10 s is dropped (slow clients)
WORKER_KILL_SECONDS = 30
#: granian's default line without the query string: a pool ticket is a credential; Authorization is never logged
ACCESS_LOG_FORMAT = '[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f'


def server_for(config: ServiceConfig) -> object:
    """The granian server for a checked configuration (not started)."""
    try:
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces, SSLProtocols
        from granian.http import HTTP1Settings
    except ImportError as exc:
        raise ExupError('the repository service needs the granian Python library: %s' % exc, code='missing_library') from None
    https = bool(config.tls_certificate and config.tls_key)
    return Granian(
        APP_FACTORY,
        address=config.host,
        port=config.port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=config.workers,
        websockets=False,
        http=HTTPModes.http1,  # what managers, hosts and BMCs speak; HTTP/2 measured no faster here (docs/benchmarks.md)
        respawn_failed_workers=True,  # a worker that dies is replaced, not left missing until a restart
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        workers_kill_timeout=WORKER_KILL_SECONDS,
        log_access=config.access_log,
        log_access_format=ACCESS_LOG_FORMAT,
        ssl_cert=pathlib.Path(str(config.tls_certificate)) if https else None,
        ssl_key=pathlib.Path(str(config.tls_key)) if https else None,
        ssl_protocol_min=SSLProtocols.tls12,  # the floor: BMCs that fetch an ImageURI often speak no TLS 1.3
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith('-'):
        sys.stderr.write('usage: python -m %s CONFIG.json\n' % __name__)
        return 2
    path = os.path.abspath(args[0])
    try:
        config = read_config(path)
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service.app import check_startup

        check_startup(config)
        server = server_for(config)
    except ExupError as exc:
        sys.stderr.write('exup repository service: %s (%s)\n' % (exc.msg, exc.code))
        return 1
    os.environ[CONFIG_ENV] = path  # the workers are child processes: they read it from their environment
    server.serve()  # type: ignore[attr-defined]
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
