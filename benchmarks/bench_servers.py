# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which production-grade Python HTTP server the repository service runs on (issue 11): measured, asserts nothing.

    bash benchmarks/run_servers.sh            # 600 files of 1 MiB and 3,000 of 100 KiB, 3 rounds
    bash benchmarks/run_servers.sh --quick    # fewer files, 1 round

Every candidate serves the same content-addressed route (benchmarks/servers/apps.py: Range, ETag, immutable caching)
from the same pool on 127.0.0.1, and so does nginx (tests/services/nginx.py), interleaved round by round:

- **throughput**: 200 concurrent downloads (curl --parallel --parallel-max 200) of every file; wall time, and every
  answer must be a 200 of the right size;
- **slow clients**: 128 connections that ask for a 256 MiB file and never read it, then one normal download of a small
  file: how long it waits (a server that gives each connection a thread stalls once its threads are taken);
- **HTTP semantics**: a Range request answers 206 with the bytes asked, If-None-Match with the digest answers 304.

Candidates (2 worker processes each, the machine's core count): gunicorn gthread (32 threads per worker), uvicorn
(httptools, uvloop), hypercorn, cheroot (64 threads). Results go to benchmarks/results/servers-*.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / 'benchmarks' / 'results'
APPS_DIR = ROOT / 'benchmarks' / 'servers'
SLOW_CLIENTS = 128
PARALLEL = 200
CURL_TLS: list[str] = []  # --cacert <the test CA> with --tls


def candidates(bind: str, tls=None) -> dict[str, list[str]]:
    """argv of each candidate server, serving apps.py from APPS_DIR on ``bind`` (host:port); HTTPS with ``tls`` (TlsFiles)."""
    host, port = bind.split(':')
    python = sys.executable
    argv = _plain_candidates(python, bind, host, port)
    if tls is not None:
        cert, key = str(tls.cert_path), str(tls.key_path)
        options = {
            'gunicorn-gthread': ['--certfile', cert, '--keyfile', key],
            'uvicorn': ['--ssl-certfile', cert, '--ssl-keyfile', key],
            'granian': ['--ssl-certificate', cert, '--ssl-keyfile', key],
            'hypercorn': ['--certfile', cert, '--keyfile', key],
            'cheroot': ['--ssl-certificate', cert, '--ssl-private-key', key],
        }
        argv = {name: command[:-1] + options[name] + command[-1:] for name, command in argv.items()}
    return argv


def _plain_candidates(python: str, bind: str, host: str, port: str) -> dict[str, list[str]]:
    return {
        'gunicorn-gthread': [python, '-m', 'gunicorn', '-w', '2', '-k', 'gthread', '--threads', '32', '-b', bind, '--chdir', str(APPS_DIR), 'apps:wsgi_app'],
        'uvicorn': [
            python,
            '-m',
            'uvicorn',
            '--workers',
            '2',
            '--http',
            'httptools',
            '--loop',
            'uvloop',
            '--host',
            host,
            '--port',
            port,
            '--no-access-log',
            '--app-dir',
            str(APPS_DIR),
            'apps:asgi_app',
        ],
        'hypercorn': [python, '-m', 'hypercorn', '-w', '2', '-b', bind, 'apps:asgi_app'],
        'granian': [python, '-m', 'granian', '--interface', 'asgi', '--workers', '2', '--host', host, '--port', port, '--no-ws', 'apps:asgi_app'],
        'cheroot': [python, '-m', 'cheroot', '--bind', bind, '--threads', '64', 'apps:wsgi_app'],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


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


def make_pool(pool: Path, count: int, size: int, seed: int) -> list[tuple[str, int]]:
    """``count`` files of ``size`` random bytes under pool/<ab>/<sha256>.zip; their URL paths and sizes."""
    made = []
    rng = random.Random(seed)
    for _number in range(count):
        data = rng.randbytes(min(size, 1 << 20)) * max(1, size >> 20)  # a big file repeats one random MiB
        digest = hashlib.sha256(data).hexdigest()
        path = pool / digest[:2] / (digest + '.zip')
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made.append(('/pool/%s/%s.zip' % (digest[:2], digest), size))
    return made


def throughput(base: str, files: list[tuple[str, int]], config: Path) -> dict:
    """Every file by curl, PARALLEL at a time; the wall time and whether every answer was a 200 of the right size."""
    config.write_text(''.join('url = "%s%s"\noutput = "/dev/null"\n' % (base, path) for path, _size in files))
    began = time.perf_counter()
    proc = subprocess.run(
        ['curl', '--silent', '--no-progress-meter', '--parallel', '--parallel-max', str(PARALLEL), '--config', str(config)]
        + ['--write-out', '%{http_code} %{size_download}\\n', *CURL_TLS],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - began
    answers = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    sizes = sorted(size for _path, size in files)
    good = (
        proc.returncode == 0
        and len(answers) == len(files)
        and all(code == '200' for code, _size in answers)
        and sorted(int(n) for _code, n in answers) == sizes
    )
    total = sum(sizes)
    bad = sum(1 for answer in answers if answer[0] != '200') + abs(len(files) - len(answers))
    return {'seconds': seconds, 'ok': good, 'mib_per_s': total / seconds / 2**20, 'curl_exit': proc.returncode, 'bad_answers': bad}


def slow_clients(base: str, port: int, big_path: str, small_path: str, ca_path=None) -> dict:
    """SLOW_CLIENTS connections ask for a big file and never read; then one curl of a small file, with a 10 s limit."""
    held = []
    context = ssl.create_default_context(cafile=str(ca_path)) if ca_path else None
    try:
        for number in range(SLOW_CLIENTS):
            try:
                sock = socket.create_connection(('127.0.0.1', port), timeout=5)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                if context is not None:
                    sock = context.wrap_socket(sock, server_hostname='127.0.0.1')  # the handshake needs the server's attention
                sock.sendall(b'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' % big_path.encode())
            except OSError as exc:  # the server no longer serves new connections: starved by the earlier ones
                return {'seconds': 10.0, 'status': 'slow client %d could not connect: %s' % (number + 1, exc), 'timed_out': True}
            held.append(sock)
        time.sleep(1.0)  # let the server start writing to all of them
        began = time.perf_counter()
        proc = subprocess.run(
            ['curl', '--silent', '--max-time', '10', '-o', '/dev/null', '--write-out', '%{http_code}'] + CURL_TLS + [base + small_path],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        return {'seconds': time.perf_counter() - began, 'status': proc.stdout.strip(), 'timed_out': proc.returncode == 28}
    finally:
        for sock in held:
            sock.close()


def semantics(base: str, path: str, digest: str) -> dict:
    ranged = subprocess.run(
        ['curl', '--silent', *CURL_TLS, '-r', '10-109', '-o', '/dev/null', '--write-out', '%{http_code} %{size_download}', base + path],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    ).stdout.split()
    cached = subprocess.run(
        ['curl', '--silent', *CURL_TLS, '-H', 'If-None-Match: "%s"' % digest, '-o', '/dev/null', '--write-out', '%{http_code}', base + path],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    ).stdout.strip()
    headers = subprocess.run(['curl', '--silent', *CURL_TLS, '-I', base + path], stdout=subprocess.PIPE, text=True, check=False).stdout.lower()
    return {'range_206_100_bytes': ranged == ['206', '100'], 'etag_304': cached == '304', 'immutable': 'immutable' in headers}


class Run:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.pool_root = work / 'root'
        pool = self.pool_root / 'pool'
        self.big = make_pool(pool, args.big_files, 1 << 20, 1)
        self.small = make_pool(pool, args.small_files, 100 << 10, 2)
        self.huge = make_pool(pool, 1, 256 << 20, 3)  # what the slow clients ask for: more than the socket buffers hold
        self.config = work / 'curl.cfg'
        self.tls = None
        if args.tls:
            sys.path.insert(0, str(ROOT / 'build' / 'collections'))
            from ansible_collections.exup.fleet.tests.services.tls import make_tls_files  # pylint: disable=import-outside-toplevel

            (work / 'tls').mkdir()
            self.tls = make_tls_files(work / 'tls')
            CURL_TLS[:] = ['--cacert', str(self.tls.ca_path)]

    def measure(self, base: str, port: int) -> dict:
        digest = self.big[0][0].rsplit('/', 1)[1][:-4]
        return {
            'big': throughput(base, self.big, self.config),
            'small': throughput(base, self.small, self.config),
            'slow_clients': slow_clients(base, port, self.huge[0][0], self.small[0][0], CURL_TLS[1] if CURL_TLS else None),
            'semantics': semantics(base, self.big[0][0], digest),
        }

    def nginx(self) -> dict:
        sys.path.insert(0, str(ROOT / 'build' / 'collections'))
        from ansible_collections.exup.fleet.tests.services.nginx import nginx_server  # pylint: disable=import-outside-toplevel

        with nginx_server(self.pool_root, tls=bool(self.tls)) as server:
            CURL_TLS[:] = ['--cacert', str(server.ca_path)] if server.ca_path else []  # nginx makes its own test CA
            return self.measure(server.base_url, server.port)

    def python_server(self, name: str) -> dict:
        port = free_port()
        argv = candidates('127.0.0.1:%d' % port, self.tls)[name]
        CURL_TLS[:] = ['--cacert', str(self.tls.ca_path)] if self.tls else []
        env = dict(os.environ, EXUP_BENCH_POOL=str(self.pool_root / 'pool'), PYTHONPATH=str(APPS_DIR))
        log = open(self.work / ('%s.log' % name), 'ab')  # noqa: SIM115  # closed below
        proc = subprocess.Popen(argv, cwd=str(APPS_DIR), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_port(port, proc)
            time.sleep(0.5)  # every worker up
            return self.measure('%s://127.0.0.1:%d' % ('https' if self.tls else 'http', port), port)
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            log.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='100 + 500 files, 1 round')
    parser.add_argument('--rounds', type=int)
    parser.add_argument('--tls', action='store_true', help='HTTPS everywhere (a test CA made for the run)')
    parser.add_argument('--servers', default='nginx,' + ','.join(candidates('127.0.0.1:1')), help='comma-separated (default: all and nginx)')
    args = parser.parse_args(argv)
    args.big_files, args.small_files = (100, 500) if args.quick else (600, 3000)
    rounds = args.rounds or (1 if args.quick else 3)
    names = args.servers.split(',')
    results: dict[str, list[dict]] = {name: [] for name in names}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix='exup-bench-servers-') as tmp:
        run = Run(args, Path(tmp))
        for index in range(rounds):
            order = names if index % 2 == 0 else list(reversed(names))
            for name in order:
                measured = run.nginx() if name == 'nginx' else run.python_server(name)
                results[name].append(measured)
                print('round %d %-17s %s' % (index + 1, name, summary_line(measured)), flush=True)
    report(args, names, results, rounds, load_before)


def _verdict(answer: dict) -> str:
    return 'ok' if answer['ok'] else 'FAILED %d, curl %d' % (answer['bad_answers'], answer['curl_exit'])


def summary_line(measured: dict) -> str:
    slow = measured['slow_clients']
    return 'big %6.2f s (%s) small %6.2f s (%s) slow-clients wait %.2f s %s; %s' % (
        measured['big']['seconds'],
        _verdict(measured['big']),
        measured['small']['seconds'],
        _verdict(measured['small']),
        slow['seconds'],
        'TIMED OUT' if slow['timed_out'] else slow['status'],
        ' '.join('%s=%s' % item for item in measured['semantics'].items()),
    )


def report(args, names, results, rounds, load_before):
    median = {name: {kind: statistics.median(r[kind]['seconds'] for r in runs) for kind in ('big', 'small')} for name, runs in results.items()}
    head = '| server | %d x 1 MiB, %d at a time | MiB/s | nginx / it | %d x 100 KiB | nginx / it | all answers right | '
    head += 'a request behind %d slow clients | Range, ETag, immutable |'
    lines = [head % (args.big_files, PARALLEL, args.small_files, SLOW_CLIENTS), '|---|---|---|---|---|---|---|---|---|']
    for name in names:
        runs = results[name]
        slow = max(r['slow_clients']['seconds'] for r in runs)
        timed_out = any(r['slow_clients']['timed_out'] for r in runs)
        ok = all(r['big']['ok'] and r['small']['ok'] for r in runs)
        sem = all(all(r['semantics'].values()) for r in runs)
        ref = median.get('nginx')
        lines.append(
            '| %s | %.2f s | %.0f | %s | %.2f s | %s | %s | %s | %s |'
            % (
                name,
                median[name]['big'],
                statistics.median(r['big']['mib_per_s'] for r in runs),
                '%.2fx' % (ref['big'] / median[name]['big']) if ref else '',
                median[name]['small'],
                '%.2fx' % (ref['small'] / median[name]['small']) if ref else '',
                'yes' if ok else '**no**',
                'timed out (10 s)' if timed_out else 'at most %.2f s' % slow,
                'yes' if sem else '**no**',
            )
        )
    stamp = datetime.datetime.now(datetime.UTC).strftime('%Y%m%dT%H%M%SZ')
    lines.append('')
    command = 'bash benchmarks/run_servers.sh' + (' --quick' if args.quick else '') + (' --tls' if args.tls else '')
    lines.append(
        '%d round(s), files %d x 1 MiB and %d x 100 KiB; load %.1f before, %.1f after; `%s`'
        % (rounds, args.big_files, args.small_files, load_before[0], os.getloadavg()[0], command)
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp += '-tls' if args.tls else ''
    (RESULTS_DIR / ('servers-%s.json' % stamp)).write_text(json.dumps({'results': results, 'median_seconds': median, 'rounds': rounds}, indent=1) + '\n')
    (RESULTS_DIR / ('servers-%s.md' % stamp)).write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
