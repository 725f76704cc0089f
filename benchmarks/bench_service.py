# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Package downloads from the repository service against nginx (issue 11, item 8): measured, asserts nothing.

    bash benchmarks/run_service.sh            # 600 x 1 MiB and 3,000 x 100 KiB packages, 3 rounds, HTTP
    bash benchmarks/run_service.sh --tls      # the same over HTTPS
    bash benchmarks/run_service.sh --quick    # 100 + 500 packages, 1 round

The files are put into a real store's pool (``Store.pool_path``: what the pool route serves) and served, interleaved
round by round with the order reversed every round, by

- **service**: the real service (tests/services/repo_service.py RepoService: service/main.py on granian, the real
  app, HTTP Basic as the ``read`` user, ``GET /v1/pool/sha256/<hex>.zip`` with ETag and Range);
- **nginx**: tests/services/nginx.py over the same pool directory, sendfile, with the same number of workers;
- **ticket**: the same service, each file by its pool ticket (a signed URL, ``POST /v1/pool/tickets``) instead of
  the password: what a BMC fetching an ImageURI does;
- **before** (with ``--before DIR``): the service from another copy of the collection, for an A/B of its code:
  ``git archive COMMIT | tar -x -C DIR`` then ``--servers nginx,service,before --before DIR``;
- **bare**: granian + starlette's FileResponse on a bare route (benchmarks/servers/apps.py, no authentication), the
  server choice's measurement, to show what the service's own code costs on top of its server.

Every server gets the same requests: curl --parallel --parallel-max 200 over every file, with the read user's
Basic credentials (nginx ignores them), over HTTP/1.1: 200 connections, as 200 hosts or BMCs would open (over TLS,
curl would offer HTTP/2 and granian take it, multiplexing all downloads over a few connections; nginx.py speaks
HTTP/1.1 only). Each answer must be a 200 of the right size (errors must be 0); a sample of
files is downloaded again and its SHA-256 checked. Per run: wall time, MiB/s, and the latency of each download
(curl's time_total) as p50 and p99. After the rounds: a burst of 200 concurrent downloads at a service that has just
started (the credentials cache empty in every worker), and the in-process cost of authentication (the cached check,
a thread hop, one Argon2id verification). Results go to benchmarks/results/service-*.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / 'benchmarks' / 'results'
APPS_DIR = ROOT / 'benchmarks' / 'servers'
PARALLEL = 200
SAMPLE = 20  # files downloaded again per server and round, their SHA-256 checked
WRITE_OUT = '%{http_code} %{size_download} %{time_total}\\n'


def _collection_imports():
    """The collection and its test servers (build/collections must be on sys.path: run_service.sh sees to it)."""
    sys.path.insert(0, str(ROOT / 'build' / 'collections'))
    # pylint: disable=import-outside-toplevel
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
    from ansible_collections.exup.fleet.tests.services import nginx, repo_service, tls

    return Store, nginx, repo_service, tls


def make_pool(store_root: Path, count: int, size: int, seed: int) -> list[tuple[str, int]]:
    """``count`` random files of ``size`` bytes at the store's pool_path(digest); (digest, size) of each."""
    store_class = _collection_imports()[0]
    store = store_class(str(store_root))
    if not store.exists:
        with store.writer():  # a real, empty store: repo.db, the lock, the pool folder
            pass
    made = []
    rng = random.Random(seed)
    for _number in range(count):
        data = rng.randbytes(size)
        digest = hashlib.sha256(data).hexdigest()
        path = Path(store.pool_path(digest))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made.append((digest, size))
    return made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float('nan')
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Target:
    """One running server: how to name a file on it, the curl options it needs (CA), and its name."""

    def __init__(self, name: str, base: str, path_of, curl_tls: list[str], verify):
        self.name, self.base, self.path_of, self.curl_tls, self.verify = name, base, path_of, curl_tls, verify

    def url(self, digest: str) -> str:
        return self.base + self.path_of(digest)


def server_cpu_seconds(base: str) -> float:
    """CPU seconds (user + system) so far of every process that holds the server's listening socket."""
    port = base.rsplit(':', 1)[1]
    listing = subprocess.run(['ss', '-ltnpH', 'sport = :%s' % port], stdout=subprocess.PIPE, text=True, check=False).stdout
    total = 0.0
    for pid in set(re.findall(r'pid=([0-9]+)', listing)):
        try:
            fields = Path('/proc/%s/stat' % pid).read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    return total


def download_all(target: Target, files: list[tuple[str, int]], auth: list[str], config: Path) -> dict:
    """Every file by curl, PARALLEL at a time: wall time, MiB/s, latency percentiles, the server's CPU, every answer's check."""
    config.write_text(''.join('url = "%s"\noutput = "/dev/null"\n' % target.url(digest) for digest, _size in files))
    cpu_before = server_cpu_seconds(target.base)
    began = time.perf_counter()
    proc = subprocess.run(
        ['curl', '--silent', '--no-progress-meter', '--http1.1', '--parallel', '--parallel-max', str(PARALLEL), '--config', str(config)]
        + ['--write-out', WRITE_OUT, *auth, *target.curl_tls],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - began
    cpu = server_cpu_seconds(target.base) - cpu_before
    answers = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    codes: dict[str, int] = {}
    for answer in answers:
        codes[answer[0]] = codes.get(answer[0], 0) + 1
    sizes = sorted(size for _digest, size in files)
    right = len(answers) == len(files) and all(code == '200' for code, _size, _time in answers) and sorted(int(n) for _c, n, _t in answers) == sizes
    errors = sum(1 for answer in answers if answer[0] != '200') + abs(len(files) - len(answers))
    if not right and errors == 0:
        errors = 1  # all 200 but a size is wrong
    latencies = [float(seconds_taken) for _code, _size, seconds_taken in answers]
    total = sum(sizes)
    return {
        'seconds': seconds,
        'mib_per_s': total / seconds / 2**20,
        'errors': errors,
        'codes': codes,
        'curl_exit': proc.returncode,
        'p50_ms': percentile(latencies, 0.50) * 1000,
        'p99_ms': percentile(latencies, 0.99) * 1000,
        'server_cpu_s': cpu,
        'server_cpu_ms_per_download': cpu / len(files) * 1000,
    }


def check_sample(target: Target, files: list[tuple[str, int]], auth_pair: tuple[str, str] | None) -> int:
    """How many of a sample of files did not come back with their own SHA-256 (0 is right)."""
    import requests  # pylint: disable=import-outside-toplevel

    wrong = 0
    with requests.Session() as session:
        for digest, _size in random.Random(len(files)).sample(files, min(SAMPLE, len(files))):
            answer = session.get(target.url(digest), auth=auth_pair, verify=target.verify, timeout=30)
            if answer.status_code != 200 or hashlib.sha256(answer.content).hexdigest() != digest:
                wrong += 1
    return wrong


def semantics(target: Target, digest: str, auth: list[str]) -> dict:
    """Range (206 with the bytes asked), If-None-Match with the ETag (304), immutable caching."""

    def curl(*options: str) -> str:
        argv = ['curl', '--silent', '--http1.1', *auth, *target.curl_tls, *options, target.url(digest)]
        return subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False).stdout

    etag = [line.split(':', 1)[1].strip() for line in curl('-I').splitlines() if line.lower().startswith('etag:')]
    headers = curl('-I').lower()
    return {
        'range_206': curl('-r', '10-109', '-o', '/dev/null', '--write-out', '%{http_code} %{size_download}').split() == ['206', '100'],
        'etag_304': bool(etag) and curl('-H', 'If-None-Match: %s' % etag[0], '-o', '/dev/null', '--write-out', '%{http_code}').strip() == '304',
        'immutable': 'immutable' in headers,
    }


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError('the server exited with %s' % proc.returncode)
        with socket.socket() as sock:
            if sock.connect_ex(('127.0.0.1', port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError('the server did not listen on %d within %.0f s' % (port, seconds))


class Run:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        _store, self.nginx_module, self.repo_service, self.tls_module = _collection_imports()
        self.store = work / 'store'
        self.big = make_pool(self.store, args.big_files, 1 << 20, 1)
        self.small = make_pool(self.store, args.small_files, 100 << 10, 2)
        self.repo_service.write_credentials(self.store)  # the real Argon2id hashes (RFC 9106 costs)
        self.auth_pair = ('read', self.repo_service.READ_PASSWORD)
        self.auth = ['--user', '%s:%s' % self.auth_pair]  # a test password on loopback
        self.config = work / 'curl.cfg'
        self.pool_dir = self.store / 'pool' / 'sha256'
        # nginx.py runs one worker; the comparison wants the same count as the service: its template, in this process
        template = self.nginx_module._NGINX_CONF  # pylint: disable=protected-access
        self.nginx_module._NGINX_CONF = template.replace('worker_processes 1;', 'worker_processes %d;' % args.workers)  # pylint: disable=protected-access

    # ----------------------------------------------------------------- the servers
    @contextlib.contextmanager
    def server(self, name: str):
        if name == 'nginx':
            with self.nginx_module.nginx_server(self.pool_dir, tls=self.args.tls) as server:
                ca = server.ca_path
                yield Target(name, server.base_url, lambda d: '/%s/%s.zip' % (d[:2], d), ['--cacert', str(ca)] if ca else [], str(ca) if ca else True)
        elif name == 'service':
            with self.repo_service.RepoService(self.store, tls=self.args.tls, workers=self.args.workers) as server:
                ca = server.ca_path
                yield Target(name, server.base_url, lambda d: '/v1/pool/sha256/%s.zip' % d, ['--cacert', str(ca)] if ca else [], server.verify)
        elif name == 'before':
            with self._before_service() as server:
                ca = server.ca_path
                yield Target(name, server.base_url, lambda d: '/v1/pool/sha256/%s.zip' % d, ['--cacert', str(ca)] if ca else [], server.verify)
        elif name == 'ticket':
            with self.repo_service.RepoService(self.store, tls=self.args.tls, workers=self.args.workers) as server:
                ca = server.ca_path
                urls = self.tickets(server)
                yield Target(name, server.base_url, urls.__getitem__, ['--cacert', str(ca)] if ca else [], server.verify)
        elif name == 'bare':
            with self._bare() as target:
                yield target
        else:
            raise SystemExit('unknown server %s' % name)

    @contextlib.contextmanager
    def _bare(self):
        port = free_port()
        argv = [sys.executable, '-m', 'granian', '--interface', 'asgi', '--workers', str(self.args.workers), '--host', '127.0.0.1', '--port', str(port)]
        argv += ['--no-ws']
        curl_tls: list[str] = []
        verify: str | bool = True
        if self.args.tls:
            folder = Path(tempfile.mkdtemp(dir=self.work, prefix='bare-tls-'))
            files = self.tls_module.make_tls_files(folder)
            argv += ['--ssl-certificate', str(files.cert_path), '--ssl-keyfile', str(files.key_path)]
            curl_tls, verify = ['--cacert', str(files.ca_path)], str(files.ca_path)
        argv.append('apps:asgi_app')
        env = dict(os.environ, EXUP_BENCH_POOL=str(self.pool_dir), PYTHONPATH=str(APPS_DIR))
        with open(self.work / 'bare.log', 'ab') as log:
            proc = subprocess.Popen(argv, cwd=str(APPS_DIR), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_port(port, proc)
                time.sleep(0.5)  # every worker up
                scheme = 'https' if self.args.tls else 'http'
                yield Target('bare', '%s://127.0.0.1:%d' % (scheme, port), lambda d: '/pool/%s/%s.zip' % (d[:2], d), curl_tls, verify)
            finally:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()

    @contextlib.contextmanager
    def _before_service(self):
        """The service run from another copy of the collection (``--before``): an A/B of the service's code in one run."""
        if not self.args.before:
            raise SystemExit('the server "before" needs --before DIR (a copy of the collection, e.g. from git archive)')
        root = self.work / 'before-collections'
        link = root / 'ansible_collections' / 'exup' / 'fleet'
        if not link.exists():
            link.parent.mkdir(parents=True)
            link.symlink_to(Path(self.args.before).resolve())
        original = self.repo_service.collections_root
        self.repo_service.collections_root = lambda: root  # the service process imports the collection from here
        try:
            with self.repo_service.RepoService(self.store, tls=self.args.tls, workers=self.args.workers) as server:
                yield server
        finally:
            self.repo_service.collections_root = original

    def tickets(self, server) -> dict[str, str]:
        """A pool ticket (signed URL, no password) for every file, asked as the admin user, 1,000 at a time."""
        digests = [digest for digest, _size in self.big + self.small]
        urls: dict[str, str] = {}
        for start in range(0, len(digests), 1000):
            answer = server.request('POST', '/v1/pool/tickets', 'admin', json={'sha256': digests[start : start + 1000], 'seconds': 3600})
            answer.raise_for_status()
            urls.update(answer.json()['urls'])
        return urls

    # ----------------------------------------------------------------- what is measured
    def warm(self, target: Target) -> None:
        """Sequential downloads until every worker has verified the credentials once (not timed): 4 per worker."""
        import requests  # pylint: disable=import-outside-toplevel

        for digest, _size in self.small[: 4 * self.args.workers]:
            requests.get(target.url(digest), auth=self.auth_pair, verify=target.verify, timeout=30)

    def measure(self, name: str) -> dict:
        auth, auth_pair = ([], None) if name == 'ticket' else (self.auth, self.auth_pair)  # a ticket is the credential
        with self.server(name) as target:
            self.warm(target)
            measured = {
                'big': download_all(target, self.big, auth, self.config),
                'small': download_all(target, self.small, auth, self.config),
                'sample_wrong': check_sample(target, self.big[:50] + self.small[:50], auth_pair),
                'semantics': semantics(target, self.big[0][0], auth),
            }
        return measured

    def cold_burst(self) -> dict:
        """PARALLEL concurrent downloads at a service that has just started: every worker's credentials cache is empty."""
        with self.server('service') as target:
            # RepoService waited for /v1/about, which needs no verification of the credentials
            burst = self.small[:PARALLEL]
            measured = download_all(target, burst, self.auth, self.config)
            measured['after'] = download_all(target, self.small[PARALLEL : 2 * PARALLEL], self.auth, self.config)
        return measured


# ----------------------------------------------------------------- authentication, in this process
def auth_costs(repeat: int = 20000) -> dict:
    """What one request's authentication costs in the service's code: cached check, thread hops, one Argon2id."""
    sys.path.insert(0, str(ROOT / 'build' / 'collections'))
    # pylint: disable=import-outside-toplevel
    import base64

    from starlette.concurrency import run_in_threadpool

    from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth
    from ansible_collections.exup.fleet.tests.services.repo_service import READ_PASSWORD

    phc = auth.hash_password(READ_PASSWORD)
    authenticator = auth.Authenticator(auth.Credentials(admin_hash=phc, read_hash=phc))
    header = 'Basic ' + base64.b64encode(('read:' + READ_PASSWORD).encode()).decode()
    began = time.perf_counter()
    first = authenticator.role_for(header, '127.0.0.1')  # the one Argon2id verification; cached after it
    argon2_ms = (time.perf_counter() - began) * 1000
    assert first.ok, first
    began = time.perf_counter()
    for _number in range(repeat):
        authenticator.role_for(header, '127.0.0.1')
    cached_us = (time.perf_counter() - began) / repeat * 1e6

    def nothing() -> None:
        return None

    async def hops(count: int) -> float:
        began = time.perf_counter()
        for _number in range(count):
            await run_in_threadpool(nothing)
        return (time.perf_counter() - began) / count * 1e6

    async def concurrent_hops(count: int, width: int) -> float:
        async def one() -> None:
            for _number in range(count // width):
                await run_in_threadpool(nothing)

        began = time.perf_counter()
        await asyncio.gather(*(one() for _w in range(width)))
        return (time.perf_counter() - began) / count * 1e6

    hop_us = asyncio.run(hops(repeat // 4))
    hop_concurrent_us = asyncio.run(concurrent_hops(repeat // 2, PARALLEL))
    return {
        'argon2id_verify_ms': argon2_ms,
        'cached_check_us': cached_us,
        'thread_hop_us': hop_us,
        'thread_hop_us_200_concurrent': hop_concurrent_us,
    }


# ----------------------------------------------------------------- the report
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='100 + 500 files, 1 round')
    parser.add_argument('--rounds', type=int)
    parser.add_argument('--tls', action='store_true', help='HTTPS everywhere (a test CA per server)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 2, help='worker processes of each server (default: the core count)')
    parser.add_argument('--servers', default='nginx,service,ticket,bare', help='comma-separated, of nginx, service, ticket, bare (default: all)')
    parser.add_argument('--before', help='a copy of the collection to run as the server "before" (an A/B of the service code)')
    parser.add_argument('--no-cold', action='store_true', help='skip the burst at a freshly started service')
    parser.add_argument('--label', default='', help='a word for the result file names (e.g. before, after)')
    args = parser.parse_args(argv)
    args.big_files, args.small_files = (100, 500) if args.quick else (600, 3000)
    rounds = args.rounds or (1 if args.quick else 3)
    names = args.servers.split(',')
    results: dict[str, list[dict]] = {name: [] for name in names}
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    with tempfile.TemporaryDirectory(prefix='exup-bench-service-') as tmp:
        run = Run(args, Path(tmp))
        for index in range(rounds):
            order = names if index % 2 == 0 else list(reversed(names))
            for name in order:
                measured = run.measure(name)
                results[name].append(measured)
                print('round %d %-8s %s' % (index + 1, name, summary_line(measured)), flush=True)
        cold = None if args.no_cold or 'service' not in names else run.cold_burst()
        if cold:
            print('cold burst: %s; then %s' % (_line(cold), _line(cold['after'])), flush=True)
    costs = auth_costs()
    print('auth: %s' % json.dumps(costs), flush=True)
    report(args, names, results, rounds, load_before, started, cold, costs)


def _line(answer: dict) -> str:
    verdict = 'ok' if answer['errors'] == 0 else 'ERRORS %d %s curl %d' % (answer['errors'], answer['codes'], answer['curl_exit'])
    return '%6.2f s %5.0f MiB/s p50 %4.0f ms p99 %5.0f ms cpu %.3f ms/file %s' % (
        answer['seconds'],
        answer['mib_per_s'],
        answer['p50_ms'],
        answer['p99_ms'],
        answer['server_cpu_ms_per_download'],
        verdict,
    )


def summary_line(measured: dict) -> str:
    return 'big %s | small %s | sample wrong %d | %s' % (
        _line(measured['big']),
        _line(measured['small']),
        measured['sample_wrong'],
        ' '.join('%s=%s' % item for item in measured['semantics'].items()),
    )


def report(args, names, results, rounds, load_before, started, cold, costs):
    def med(name: str, kind: str, key: str) -> float:
        return statistics.median(r[kind][key] for r in results[name])

    lines = [
        '| server | 1 MiB: s | MiB/s | / nginx | p50/p99 ms | CPU ms/file | 100 KiB: s | MiB/s | / nginx | p50/p99 ms | CPU ms/file '
        + '| errors | SHA-256 sample | 206 / 304 / immutable |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    ratios: dict[str, dict[str, float]] = {}
    for name in names:
        runs = results[name]
        cells = [name]
        ratios[name] = {}
        for kind in ('big', 'small'):
            ratio = med('nginx', kind, 'seconds') / med(name, kind, 'seconds') if 'nginx' in results else float('nan')
            ratios[name][kind] = ratio
            cells += [
                '%.2f' % med(name, kind, 'seconds'),
                '%.0f' % med(name, kind, 'mib_per_s'),
                '%.2fx' % ratio,
                '%.0f / %.0f' % (med(name, kind, 'p50_ms'), med(name, kind, 'p99_ms')),
                '%.2f' % med(name, kind, 'server_cpu_ms_per_download'),
            ]
        errors = sum(r[kind]['errors'] for r in runs for kind in ('big', 'small'))
        cells.append(str(errors) if errors == 0 else '**%d**' % errors)
        wrong = sum(r['sample_wrong'] for r in runs)
        cells.append('right' if wrong == 0 else '**%d wrong**' % wrong)
        cells.append(' / '.join('yes' if all(r['semantics'][key] for r in runs) else 'no' for key in ('range_206', 'etag_304', 'immutable')))
        lines.append('| %s |' % ' | '.join(cells))
    per_round = []
    if 'nginx' in results and 'service' in results:
        for kind in ('big', 'small'):
            per_round.append(
                '%s rounds service/nginx: %s'
                % (
                    '1 MiB' if kind == 'big' else '100 KiB',
                    ', '.join('%.2f' % (n[kind]['seconds'] / s[kind]['seconds']) for n, s in zip(results['nginx'], results['service'], strict=True)),
                )
            )
    command = 'bash benchmarks/run_service.sh' + (' --quick' if args.quick else '') + (' --tls' if args.tls else '')
    if args.servers != 'nginx,service,ticket,bare':
        command += ' --servers ' + args.servers + (' --before DIR' if args.before else '')
    if args.workers != (os.cpu_count() or 2):
        command += ' --workers %d' % args.workers
    lines += [
        '',
        '%s; %d round(s); %d x 1 MiB and %d x 100 KiB, %d at a time; %d worker(s) each; %s, %d CPUs; load %.1f before, %.1f after; `%s`'
        % (
            started.strftime('%Y-%m-%d %H:%M UTC'),
            rounds,
            args.big_files,
            args.small_files,
            PARALLEL,
            args.workers,
            'HTTPS' if args.tls else 'HTTP',
            os.cpu_count() or 0,
            load_before[0],
            os.getloadavg()[0],
            command,
        ),
        *per_round,
    ]
    if cold:
        lines.append('cold burst (%d x 100 KiB at a just-started service): %s; the next %d: %s' % (PARALLEL, _line(cold), PARALLEL, _line(cold['after'])))
    lines.append(
        'auth in-process: cached check %.1f us, a thread hop %.0f us (%.0f us each with %d at once), one Argon2id verification %.0f ms'
        % (costs['cached_check_us'], costs['thread_hop_us'], costs['thread_hop_us_200_concurrent'], PARALLEL, costs['argon2id_verify_ms'])
    )
    stamp = started.strftime('%Y%m%dT%H%M%SZ') + ('-tls' if args.tls else '') + ('-' + args.label if args.label else '')
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data = {
        'results': results,
        'ratios_to_nginx': ratios,
        'cold_burst': cold,
        'auth_costs': costs,
        'rounds': rounds,
        'workers': args.workers,
        'tls': args.tls,
        'machine': {'cpus': os.cpu_count(), 'python': platform.python_version(), 'kernel': platform.release()},
        'load_before': load_before,
        'load_after': os.getloadavg(),
    }
    (RESULTS_DIR / ('service-%s.json' % stamp)).write_text(json.dumps(data, indent=1) + '\n')
    (RESULTS_DIR / ('service-%s.md' % stamp)).write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
