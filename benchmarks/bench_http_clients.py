# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CPU per request of HTTP clients for a package-sized GET from a real nginx on loopback (issue 10). It measures; it asserts nothing.

    python benchmarks/bench_http_clients.py                       # 106 KiB, 1200 GETs per run, 1/4/8 threads, http and https, 3 rounds
    python benchmarks/bench_http_clients.py --requests 400 --rounds 1 --threads 1 4
    PYTHONPATH=/tmp/pycurl-scratch:$PYTHONPATH python benchmarks/bench_http_clients.py   # pycurl from a scratch install

Every method does the same work per GET: one kept-alive connection per thread, the body read as it
arrives, hashed with SHA-256 and kept in memory. The methods run interleaved, round after round, in one
process; CPU is this process's (time.process_time: all threads, nginx excluded), per request, median
of the rounds. "exup-fetch" is HttpClient.fetch itself (it also writes the .part file).

Methods: requests (Session, stream=True, read1: today's transport), urllib3 (HTTPConnectionPool,
preload_content=False), http.client (HTTPConnection, readinto), pycurl-easy (one Curl handle per
thread, perform releases the GIL), pycurl-multi (one thread drives one CurlMulti with as many
transfers in flight as threads), exup-fetch (HttpClient.fetch, keep_bytes=True: libcurl when pycurl imports),
exup-fetch-requests (the same call on requests' path, what package downloads cost before issue 10).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
READ = 1024 * 1024
SCRATCH: list[str] = []  # the run's directory: served files and .part files


def _sha_and_keep() -> tuple[Callable[[bytes], None], Callable[[], bytes]]:
    digest = hashlib.sha256()
    body = bytearray()

    def take(chunk: bytes) -> None:
        digest.update(chunk)
        body.extend(chunk)

    def done() -> bytes:
        digest.hexdigest()
        return bytes(body)

    return take, done


# --- one "worker" per method: make(url_parts, ca_path) -> get(path) -> bytes ---------------------------


def make_requests(base: str, ca: str | None):
    import requests

    session = requests.Session()
    session.verify = ca or True
    session.trust_env = False  # as the transport: REQUESTS_CA_BUNDLE would replace verify
    session.headers['Accept-Encoding'] = 'identity'

    def get(path: str) -> bytes:
        take, done = _sha_and_keep()
        with session.get(base + path, stream=True, timeout=30) as response:
            while chunk := response.raw.read1(READ):
                take(chunk)
        return done()

    return get


def make_urllib3(base: str, ca: str | None):
    import urllib3

    parts = urllib.parse.urlsplit(base)
    if parts.scheme == 'https':
        pool = urllib3.HTTPSConnectionPool(parts.hostname, parts.port, maxsize=1, ca_certs=ca, cert_reqs='CERT_REQUIRED', retries=False)
    else:
        pool = urllib3.HTTPConnectionPool(parts.hostname, parts.port, maxsize=1, retries=False)

    def get(path: str) -> bytes:
        take, done = _sha_and_keep()
        response = pool.urlopen('GET', path, preload_content=False, headers={'Accept-Encoding': 'identity'}, timeout=30)
        while chunk := response.read1(READ):
            take(chunk)
        response.release_conn()
        return done()

    return get


def make_http_client(base: str, ca: str | None):
    parts = urllib.parse.urlsplit(base)
    if parts.scheme == 'https':
        context = ssl.create_default_context(cafile=ca)
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=30, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    buffer = bytearray(READ)
    view = memoryview(buffer)

    def get(path: str) -> bytes:
        take, done = _sha_and_keep()
        connection.request('GET', path, headers={'Accept-Encoding': 'identity'})
        response = connection.getresponse()
        while count := response.readinto(view):
            take(view[:count])
        return done()

    return get


def _curl(base: str, ca: str | None):
    import pycurl

    curl = pycurl.Curl()
    curl.setopt(pycurl.BUFFERSIZE, READ)
    curl.setopt(pycurl.NOSIGNAL, 1)
    curl.setopt(pycurl.TIMEOUT, 30)
    if ca:
        curl.setopt(pycurl.CAINFO, ca)
    return curl


def make_pycurl_easy(base: str, ca: str | None):
    import pycurl

    curl = _curl(base, ca)

    def get(path: str) -> bytes:
        take, done = _sha_and_keep()
        curl.setopt(pycurl.URL, base + path)
        curl.setopt(pycurl.WRITEFUNCTION, take)
        curl.perform()
        return done()

    return get


def run_pycurl_multi(base: str, ca: str | None, paths: list[str], in_flight: int) -> None:
    """One thread, one CurlMulti, ``in_flight`` easy handles reused (each keeps its connection)."""
    import pycurl

    multi = pycurl.CurlMulti()
    idle = [_curl(base, ca) for _slot in range(in_flight)]
    todo = list(reversed(paths))
    running = 0
    finishers: dict[int, Callable[[], bytes]] = {}
    while todo or running:
        while todo and idle:
            curl = idle.pop()
            take, done = _sha_and_keep()
            finishers[id(curl)] = done
            curl.setopt(pycurl.URL, base + todo.pop())
            curl.setopt(pycurl.WRITEFUNCTION, take)
            multi.add_handle(curl)
            running += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        _queued, ok, failed = multi.info_read()
        for curl in ok:
            multi.remove_handle(curl)
            finishers.pop(id(curl))()
            idle.append(curl)
            running -= 1
        if failed:
            raise RuntimeError('pycurl: %s' % failed)
        if running and not ok:
            multi.select(1.0)


def make_exup_fetch(base: str, ca: str | None, fast: bool = True):
    sys.path.insert(0, str(REPO_ROOT / 'build' / 'collections'))
    from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import HttpClient

    client = HttpClient(ca_path=ca, timeout=30, retries=0)
    if not fast:
        client.fast_path = lambda: False  # type: ignore[method-assign]  # requests' path, as before issue 10
    part = tempfile.mkdtemp(prefix='parts-', dir=SCRATCH[0])  # removed with the served files at the end
    sizes: dict[str, tuple[int, str]] = {}

    def get(path: str) -> bytes:
        size, sha = sizes[path]
        target = os.path.join(part, '%d.part' % threading.get_ident())
        if os.path.exists(target):
            os.unlink(target)
        return client.fetch(base + path, target, size, sha, keep_bytes=True).data or b''

    get.sizes = sizes  # type: ignore[attr-defined]  # filled by the caller: every method serves the same files
    return get


THREADED = {
    'requests': make_requests,
    'urllib3': make_urllib3,
    'http.client': make_http_client,
    'pycurl-easy': make_pycurl_easy,
    'exup-fetch': make_exup_fetch,
    'exup-fetch-requests': lambda base, ca: make_exup_fetch(base, ca, fast=False),
}


def available(names: list[str]) -> list[str]:
    try:
        import pycurl  # noqa: F401  # pylint: disable=unused-import
    except ImportError:
        names = [name for name in names if not name.startswith('pycurl')]
    return names


def one_run(method: str, base: str, ca: str | None, paths: list[str], threads: int, sizes: dict, expect: dict) -> dict:
    """GET every path once, split over ``threads`` workers; CPU and wall of the whole run."""
    shares = [paths[index::threads] for index in range(threads)]
    errors: list[BaseException] = []
    if method == 'pycurl-multi':
        workers = [threading.Thread(target=run_pycurl_multi, args=(base, ca, paths, threads))]
    else:
        gets = [THREADED[method](base, ca) for _thread in range(threads)]
        for get in gets:
            if hasattr(get, 'sizes'):
                get.sizes.update(sizes)
        for get, share in zip(gets, shares, strict=True):
            get(share[0])  # connect outside the timed part: keep-alive is what a sync gets
        workers = [threading.Thread(target=_loop, args=(get, share, expect, errors)) for get, share in zip(gets, shares, strict=True)]
    cpu, wall = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if errors:
        raise errors[0]
    return {'cpu_ms_per_request': 1000 * cpu / len(paths), 'wall_s': wall, 'requests_per_s': len(paths) / wall}


def _loop(get, paths: list[str], expect: dict, errors: list) -> None:
    try:
        for path in paths:
            if len(get(path)) != expect[path]:
                raise RuntimeError('short body for %s' % path)
    except BaseException as exc:  # reported by the caller
        errors.append(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--size', type=int, default=106 * 1024)
    parser.add_argument('--files', type=int, default=64)
    parser.add_argument('--requests', type=int, default=1200)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 4, 8])
    parser.add_argument('--schemes', nargs='+', default=['http', 'https'])
    parser.add_argument('--methods', nargs='+', default=[*THREADED, 'pycurl-multi'])
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT / 'build' / 'collections'))
    from ansible_collections.exup.fleet.tests.services.nginx import NginxServer

    methods = available(args.methods)
    root = Path(tempfile.mkdtemp(prefix='exup-bench-http-root-'))
    SCRATCH.append(str(root))
    sizes, expect = {}, {}
    for index in range(args.files):
        data = os.urandom(args.size)
        (root / ('p%03d.bin' % index)).write_bytes(data)
        sizes['/p%03d.bin' % index] = (len(data), hashlib.sha256(data).hexdigest())
        expect['/p%03d.bin' % index] = len(data)
    paths = [list(sizes)[index % args.files] for index in range(args.requests)]
    results: dict = {'load_before': os.getloadavg(), 'python': sys.version.split()[0], 'machine': platform.machine()}
    results.update(size=args.size, requests=args.requests)
    samples: dict = {}
    for scheme in args.schemes:
        with NginxServer(root, tls=scheme == 'https') as server:
            ca = str(server.ca_path) if server.ca_path else None
            for _round in range(args.rounds):
                for threads in args.threads:
                    for method in methods:
                        run = one_run(method, server.base_url, ca, paths, threads, sizes, expect)
                        samples.setdefault((scheme, threads, method), []).append(run)
    results['load_after'] = os.getloadavg()
    shutil.rmtree(root)
    table = []
    for (scheme, threads, method), runs in samples.items():
        table.append(
            {
                'scheme': scheme,
                'threads': threads,
                'method': method,
                'cpu_ms_per_request': round(statistics.median(r['cpu_ms_per_request'] for r in runs), 3),
                'wall_s': round(statistics.median(r['wall_s'] for r in runs), 3),
                'requests_per_s': round(statistics.median(r['requests_per_s'] for r in runs)),
            }
        )
    results['table'] = table
    loads = (results['load_before'], results['load_after'])
    print('load before %s after %s; %d GETs of %d bytes per run, median of %d rounds' % (*loads, args.requests, args.size, args.rounds))
    print('%-6s %-7s %-20s %12s %8s %8s' % ('scheme', 'threads', 'method', 'CPU ms/req', 'wall s', 'req/s'))
    for row in table:
        cells = (row['scheme'], row['threads'], row['method'], row['cpu_ms_per_request'], row['wall_s'], row['requests_per_s'])
        print('%-6s %-7d %-20s %12.3f %8.3f %8d' % cells)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
