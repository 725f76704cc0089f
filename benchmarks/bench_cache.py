# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP caches in front of the repository service's package files (issue 12, item 9): measured, asserts nothing.

    bash benchmarks/run_cache.sh                  # 50 hosts, 25 at a time, 4 files (16 MiB, 4 MiB, 1 MiB, 256 KiB), 3 rounds
    bash benchmarks/run_cache.sh --auth basic     # the same hosts with the read login instead of pool tickets
    bash benchmarks/run_cache.sh --quick          # 10 hosts, 1 round

N simulated managed hosts download the same package files, each host as a managed host does it in the service
transfer of exup_apply: the controller asks the service for the host's pool tickets (POST /v1/pool/tickets, the
action plugin's ``seconds``), and the host fetches every file with the real host code (host/fetch.py
``fetch_chunks``, its SHA-256 checked); with ``--auth basic`` the host sends the read login instead (a manager or a
controller fetching files). ``--forks`` hosts run at once, each in its own process. Interleaved, the order rotating
every round, the hosts fetch

- **direct**: from the service itself (tests/services/repo_service.py: service/main.py on granian, the real app);
- **naive**: through nginx with a plain ``proxy_cache`` (nginx's defaults: key = the whole URL with its query, the
  service's Cache-Control obeyed), cold, then **naive-warm**: the same hosts again through the same cache;
- **edge**: through the shipped example docs/examples/nginx-pool-cache.conf (key = the path alone, every request
  authorized by the service with a HEAD), cold, then **edge-warm**.

Per run: wall time, the requests and package bytes the service (the origin) answered, counted from its own access
log and nginx's (log_subrequest on), the cache's hit ratio, and the CPU seconds of the service's and nginx's
processes. Results: benchmarks/results/cache-*.json and .md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / 'benchmarks' / 'results'
TICKET_FETCH_SECONDS = 600  # plugin_utils/_exup_action.py: the tickets a host gets live this long plus its bytes at 64 KiB/s
SIZES = {'K': 1 << 10, 'M': 1 << 20}


def _imports():
    """The collection and its test servers (build/collections on sys.path: run_cache.sh sees to it)."""
    sys.path.insert(0, str(ROOT / 'build' / 'collections'))
    # pylint: disable=import-outside-toplevel
    from ansible_collections.exup.fleet.plugins.module_utils._exup.host import fetch
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store import Store
    from ansible_collections.exup.fleet.tests.services import pool_cache, repo_service

    return fetch, Store, pool_cache, repo_service


def size_of(text: str) -> int:
    text = text.strip().upper()
    return int(text[:-1]) * SIZES[text[-1]] if text[-1] in SIZES else int(text)


def make_pool(store_root: Path, sizes: list[int], seed: int) -> list[tuple[str, int]]:
    """Random files of these sizes at the store's pool_path(digest) (what the pool route serves); (digest, size) each."""
    store_class = _imports()[1]
    store = store_class(str(store_root))
    if not store.exists:
        with store.writer():
            pass
    rng = random.Random(seed)
    made = []
    for size in sizes:
        data = rng.randbytes(size)
        digest = hashlib.sha256(data).hexdigest()
        path = Path(store.pool_path(digest))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made.append((digest, size))
    return made


# ----------------------------------------------------------------- one managed host (runs in a worker process)
def one_host(job: dict) -> dict:
    """Ask the host's tickets from the service (as the controller does), then fetch every file from ``job['base']``."""
    fetch = _imports()[0]
    began = time.monotonic()
    files = job['files']
    received, errors = 0, []
    headers = {'Authorization': job['basic']}
    if job['auth'] == 'ticket':
        seconds = TICKET_FETCH_SECONDS + sum(size for _digest, size in files) // (64 * 1024)
        body = json.dumps({'sha256': sorted({digest for digest, _size in files}), 'seconds': seconds}).encode()
        request = urllib.request.Request(
            job['service'] + '/v1/pool/tickets', data=body, method='POST', headers=dict(headers, **{'Content-Type': 'application/json'})
        )
        with urllib.request.urlopen(request, timeout=60) as answer:  # a loopback test URL
            urls = json.load(answer)['urls']
    else:
        urls = {digest: '/v1/pool/sha256/%s.zip' % digest for digest, _size in files}
    for digest, size in files:
        hasher = hashlib.sha256()
        try:
            if job['auth'] == 'ticket':
                for chunk in fetch.fetch_chunks(job['base'] + urls[digest], size, timeout=60):
                    hasher.update(chunk)
                    received += len(chunk)
            else:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(urllib.request.Request(job['base'] + urls[digest], headers=headers), timeout=60) as answer:
                    while chunk := answer.read1(1 << 20):
                        hasher.update(chunk)
                        received += len(chunk)
        except Exception as exc:  # pylint: disable=broad-except  # counted, the run goes on
            errors.append('%s: %s' % (digest[:12], exc))
            continue
        if hasher.hexdigest() != digest:
            errors.append('%s: wrong SHA-256' % digest[:12])
    return {'seconds': time.monotonic() - began, 'bytes': received, 'errors': errors}


def nothing(_number: int) -> int:
    return os.getpid()


# ----------------------------------------------------------------- what the servers did
def cpu_seconds_of_session(leader: int | None) -> float:
    """User + system CPU seconds of every live process in the session of ``leader`` (a Daemon starts its own)."""
    if not leader:
        return 0.0
    total = 0.0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            fields = Path('/proc/%s/stat' % entry).read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == leader:  # field 6 of stat: the session id
            total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    return total


def origin_pool_requests(service) -> dict[str, int]:
    """Pool requests in the service's access log so far, by method."""
    counts: dict[str, int] = {}
    log = service.workdir / 'exup-service.out'
    for line in log.read_text(errors='replace').splitlines():
        found = re.search(r'"(GET|HEAD) /v1/pool/sha256/[0-9a-f]{64}\.zip ', line)
        if found:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    return counts


def load() -> float:
    return os.getloadavg()[0]


class Bench:
    def __init__(self, args, work: Path):
        self.args = args
        _fetch, _store, self.pool_cache, self.repo_service = _imports()
        self.store = work / 'store'
        self.files = make_pool(self.store, [size_of(text) for text in args.files.split(',')], 1)
        self.repo_service.write_credentials(self.store)
        import base64  # pylint: disable=import-outside-toplevel

        self.basic = 'Basic ' + base64.b64encode(('read:%s' % self.repo_service.READ_PASSWORD).encode()).decode()

    def jobs(self, service_url: str, base: str) -> list[dict]:
        return [{'service': service_url, 'base': base, 'files': self.files, 'auth': self.args.auth, 'basic': self.basic} for _host in range(self.args.hosts)]

    def run_hosts(self, pool, service, base: str, cache=None) -> dict:
        before_origin = origin_pool_requests(service)
        before_log = len(cache.access_log()) if cache else 0
        cpu_service = cpu_seconds_of_session(service.pid)
        cpu_cache = cpu_seconds_of_session(cache.pid) if cache else 0.0
        load_before = load()
        began = time.monotonic()
        hosts = list(pool.map(one_host, self.jobs(service.base_url, base)))
        wall = time.monotonic() - began
        measured = {
            'wall_s': wall,
            'load_before': load_before,
            'load_after': load(),
            'host_s_median': statistics.median(host['seconds'] for host in hosts),
            'host_s_max': max(host['seconds'] for host in hosts),
            'client_bytes': sum(host['bytes'] for host in hosts),
            'errors': [error for host in hosts for error in host['errors']][:20],
            'error_count': sum(len(host['errors']) for host in hosts),
            'service_cpu_s': cpu_seconds_of_session(service.pid) - cpu_service,
            'cache_cpu_s': (cpu_seconds_of_session(cache.pid) - cpu_cache) if cache else 0.0,
        }
        time.sleep(0.3)  # the last log lines (the service writes its log after the answer)
        after_origin = origin_pool_requests(service)
        measured['origin_get'] = after_origin.get('GET', 0) - before_origin.get('GET', 0)
        measured['origin_head'] = after_origin.get('HEAD', 0) - before_origin.get('HEAD', 0)
        if cache is None:
            measured.update(origin_bytes=measured['client_bytes'], hits=0, answers=measured['origin_get'])
        else:
            entries = cache.access_log()[before_log:]
            answers = [entry for entry in entries if entry['uri'] != '/_exup_authorize']
            measured['answers'] = len(answers)
            measured['hits'] = sum(1 for entry in answers if entry['cache'] == 'HIT')
            measured['cache_status'] = {status: sum(1 for entry in answers if entry['cache'] == status) for status in {entry['cache'] for entry in answers}}
            measured['origin_bytes'] = sum(int(entry['upstream_length'] or 0) for entry in answers if entry['uri'] != '/_exup_authorize')
        measured['hit_ratio'] = measured['hits'] / measured['answers'] if measured['answers'] else 0.0
        return measured

    def measure(self, pool, service, method: str) -> dict[str, dict]:
        """One method's run(s): direct; or a cold cache, then the same hosts again through it (warm)."""
        if method == 'direct':
            return {'direct': self.run_hosts(pool, service, service.base_url)}
        with self.pool_cache.PoolCache(service.port, site=method, workers=self.args.cache_workers) as cache:
            cold = self.run_hosts(pool, service, cache.base_url, cache)
            warm = self.run_hosts(pool, service, cache.base_url, cache)
        return {method: cold, method + '-warm': warm}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hosts', type=int, default=50)
    parser.add_argument('--forks', type=int, default=25, help='hosts at once, each in its own process')
    parser.add_argument('--files', default='16M,4M,1M,256K', help='sizes of the package files every host fetches')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--methods', default='direct,naive,edge')
    parser.add_argument('--auth', choices=('ticket', 'basic'), default='ticket')
    parser.add_argument('--workers', type=int, default=2, help="the service's worker processes")
    parser.add_argument('--cache-workers', type=int, default=2, help="nginx's worker processes")
    parser.add_argument('--quick', action='store_true', help='10 hosts, 5 at a time, 1 round')
    args = parser.parse_args(argv)
    if args.quick:
        args.hosts, args.forks, args.rounds = 10, 5, 1
    methods = args.methods.split(',')
    started = datetime.datetime.now(datetime.UTC)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix='exup-bench-cache-') as work:
        bench = Bench(args, Path(work))
        repo_service = bench.repo_service
        with (
            repo_service.RepoService(bench.store, workers=args.workers, access_log=True) as service,
            concurrent.futures.ProcessPoolExecutor(max_workers=args.forks) as pool,
        ):
            list(pool.map(nothing, range(args.forks * 2)))  # the worker processes exist before the first timed run
            # every service worker verifies the login once (Argon2id) before the timed runs
            for _warm in range(4 * args.workers):
                one_host({'service': service.base_url, 'base': service.base_url, 'files': bench.files[-1:], 'auth': args.auth, 'basic': bench.basic})
            for number in range(args.rounds):
                order = methods[number % len(methods) :] + methods[: number % len(methods)]
                for method in order:
                    for name, measured in bench.measure(pool, service, method).items():
                        measured.update(method=name, round=number)
                        results.append(measured)
                        print(summary_line(measured), flush=True)
    report(args, started, results)
    return 0


def summary_line(measured: dict) -> str:
    return '%-11s round %d: %6.2f s, origin %4d GET %4d HEAD %8.1f MiB, hits %5.1f %%, errors %d, service CPU %.1f s, nginx CPU %.1f s, load %.1f' % (
        measured['method'],
        measured['round'],
        measured['wall_s'],
        measured['origin_get'],
        measured['origin_head'],
        measured['origin_bytes'] / (1 << 20),
        100 * measured['hit_ratio'],
        measured['error_count'],
        measured['service_cpu_s'],
        measured['cache_cpu_s'],
        measured['load_before'],
    )


def report(args, started: datetime.datetime, results: list[dict]) -> None:
    names = list(dict.fromkeys(result['method'] for result in results))

    def median(name: str, key: str) -> float:
        return statistics.median(result[key] for result in results if result['method'] == name)

    def span(name: str, key: str) -> str:
        values = [result[key] for result in results if result['method'] == name]
        return '%.2f (%.2f - %.2f)' % (statistics.median(values), min(values), max(values))

    rounds = sorted({result['round'] for result in results})

    def ratio(name: str) -> str:  # per round against direct of the same round, then the median
        values = []
        for number in rounds:
            mine = [r['wall_s'] for r in results if r['method'] == name and r['round'] == number]
            base = [r['wall_s'] for r in results if r['method'] == 'direct' and r['round'] == number]
            if mine and base:
                values.append(mine[0] / base[0])
        return '%.2f' % statistics.median(values) if values else '-'

    total = sum(size for size in (size_of(text) for text in args.files.split(',')))
    lines = [
        '# HTTP caches in front of the package files, %s' % started.strftime('%Y-%m-%d %H:%M UTC'),
        '',
        '%d hosts (%d at a time), %s each (%.1f MiB per host, %.0f MiB for all), auth %s, service workers %d, nginx workers %d, %d rounds; %s, Python %s'
        % (
            args.hosts,
            args.forks,
            args.files,
            total / (1 << 20),
            args.hosts * total / (1 << 20),
            args.auth,
            args.workers,
            args.cache_workers,
            args.rounds,
            platform.machine(),
            platform.python_version(),
        ),
        '',
        '| method | wall s, median (min - max) | / direct | origin GET | origin HEAD | origin MiB | hit ratio | errors | service CPU s | nginx CPU s |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for name in names:
        lines.append(
            '| %s | %s | %s | %d | %d | %.1f | %.1f %% | %d | %.1f | %.1f |'
            % (
                name,
                span(name, 'wall_s'),
                ratio(name),
                median(name, 'origin_get'),
                median(name, 'origin_head'),
                median(name, 'origin_bytes') / (1 << 20),
                100 * median(name, 'hit_ratio'),
                sum(result['error_count'] for result in results if result['method'] == name),
                median(name, 'service_cpu_s'),
                median(name, 'cache_cpu_s'),
            )
        )
    loads = [result['load_before'] for result in results] + [result['load_after'] for result in results]
    lines += ['', 'Load average (1 min) over the runs: %.1f - %.1f.' % (min(loads), max(loads))]
    text = '\n'.join(lines) + '\n'
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime('%Y%m%dT%H%M%SZ')
    (RESULTS_DIR / ('cache-%s-%s.json' % (stamp, args.auth))).write_text(json.dumps({'args': vars(args), 'results': results}, indent=1))
    (RESULTS_DIR / ('cache-%s-%s.md' % (stamp, args.auth))).write_text(text)


if __name__ == '__main__':
    sys.exit(main())
