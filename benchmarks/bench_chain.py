# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A sync from an upstream repository service against a sync from nginx as the feed (issue 11, item 8): it measures,
it asserts nothing.

    bash benchmarks/run_chain.sh            # 3,000 entries, 300 servers, ~150 MiB needed (~106 KiB packages), 3 rounds (~5 min)
    bash benchmarks/run_chain.sh --quick    # 1,000 / 100 / ~50 MiB, 1 round
    bash benchmarks/run_chain.sh --no-cold  # without the cold-upstream runs

The feed is bench_repo.py's (``vendor.feed.synthesize_feed``, seed 1, ``avg_size`` calibrated so that the packages
the servers need total the target; ``--keep-feed`` keeps it in ``--workdir`` for the next run). Every run is a fresh
child process (as the exup_repo_sync module runs: interpreter start and imports inside the time) syncing a fresh,
empty local repository with 4 workers for the same servers (``feed.synthetic_servers``), interleaved, the order
rotating every round:

- ``nginx-http`` / ``nginx-https``: from nginx serving the vendor feed directory (tests/services/nginx.py, sendfile),
  ``upstream: vendor``;
- ``chain-http`` / ``chain-https``: from a repository service (tests/services/repo_service.py RepoService, its feed_url
  the HTTP nginx) whose store already holds what the servers need (warmed once before the rounds by a chained sync of
  the same servers): ``upstream: repository`` (``chained_options``): the presence of the servers and the upstream's
  download (``POST /v1/downloads``, polled; it finds nothing new: a 304 from nginx, the plan skipped), then the feed
  view (``/v1/feed/catalog.json`` and every package from the pool), as the ``admin`` user;
- ``cold-http`` / ``cold-https`` (unless ``--no-cold``): the same against a service started on an empty store before
  the run (its start not timed): its download fetches every package from nginx first. Reported apart.

Per run: the wall time of the child process and of ``Sync.run``, where it went (process start, the upstream's
presence / download start / polls / the sleeps between them, the catalog, the plan, the downloads, the end), the CPU
of the syncing process (user + system), the bytes it received (package bodies, catalog, API answers), the CPU of the
server processes (``ss -ltnp``: every process holding the listening socket) and what the vendor's nginx was asked;
the upstream's own download as this process sees its state file change (``DownloadWatcher``, on the same clock), so
the time between its end and the sync's last poll shows what the poll schedule costs. The repositories of the last
round are then synced again 5 times each with nothing new (the warm methods, interleaved). Then the probes: the
presence and the warm upstream's own download timed with a 5 ms poll, against the sync's poll schedule; 200
sequential package requests on one connection from each server (curl: per-request latency and server CPU); the
import of requests in a fresh interpreter. Results go to benchmarks/results/chain-*.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_repo  # noqa: E402  # the feed, the machine notes, the child's collection checks
from bench_service import auth_costs, server_cpu_seconds  # noqa: E402

RESULTS_DIR = bench_repo.RESULTS_DIR
MIB = bench_repo.MIB
MANAGER_ID = bench_repo.MANAGER_ID
UPSTREAM_ID = 'bench-chain'  # this repository's manager id at the upstream: the same for every fresh local repository
SYNC_WORKERS = 4
PROBE_REQUESTS = 200
PROBE_POLL = 0.005  # seconds between the probe's polls of the upstream's download
PROFILES = {
    'default': {'entries': 3000, 'servers': 300, 'target_bytes': 150 * MIB, 'rounds': 3, 'resyncs': 5, 'probe_downloads': 5},
    'quick': {'entries': 1000, 'servers': 100, 'target_bytes': 50 * MIB, 'rounds': 1, 'resyncs': 2, 'probe_downloads': 2},
}
WARM_METHODS = ('nginx-http', 'chain-http', 'nginx-https', 'chain-https')
COLD_METHODS = ('cold-http', 'cold-https')


# --------------------------------------------------------------------------- the child: one sync, timed in parts
def child_main(core, spec):
    """One sync of a fresh repository from nginx or from an upstream repository service; what was measured."""
    started = resource.getrusage(resource.RUSAGE_SELF)
    out = {'cpu_after_import_seconds': started.ru_utime + started.ru_stime, 'core_file': core.sync.__file__}
    keyring = core.signing.KeyRing.from_pem_list([spec['pubkey']])
    with open(spec['servers'], encoding='utf-8') as handle:
        servers = [core.repository.server_from_dict(MANAGER_ID, item) for item in json.load(handle)]
    lock = threading.Lock()
    marks = {'first_download': None, 'last_done': None}
    tally = {'package_bytes': 0, 'package_requests': 0, 'catalog_bytes': 0, 'catalog_seconds': 0.0, 'catalog_status': None}
    calls: list[dict] = []
    upstream_times = {'prepare_seconds': 0.0, 'wait_seconds': 0.0}

    class TimedClient(core.transport.HttpClient):
        def get_conditional(self, *args, **kwargs):
            began = time.perf_counter()
            answer = super().get_conditional(*args, **kwargs)
            tally['catalog_seconds'] += time.perf_counter() - began
            tally['catalog_bytes'] += len(answer.get('body') or b'')
            tally['catalog_status'] = answer.get('status')
            return answer

        def fetch(self, *args, **kwargs):
            with lock:
                if marks['first_download'] is None:
                    marks['first_download'] = time.perf_counter()
            download = super().fetch(*args, **kwargs)
            with lock:
                tally['package_bytes'] += download.fetched
                tally['package_requests'] += 1
            return download

    class TimedUpstream(core.sync.Upstream):
        def prepare(self):
            began = time.perf_counter()
            try:
                return super().prepare()
            finally:
                upstream_times['prepare_seconds'] = time.perf_counter() - began

        def wait(self, download_id):
            began = time.perf_counter()
            try:
                return super().wait(download_id)
            finally:
                upstream_times['wait_seconds'] = time.perf_counter() - began

        def call(self, method, path, body=None):
            began = time.perf_counter()
            answer = super().call(method, path, body)
            kind = 'presence' if path.endswith('/presence') else ('download_start' if method == 'POST' else 'download_poll')
            ended = time.perf_counter()  # CLOCK_MONOTONIC: the parent's watcher reads the same clock
            calls.append(
                {
                    'call': kind,
                    'seconds': ended - began,
                    'ended_at': ended,
                    'sent_bytes': len(json.dumps(body)) if body is not None else 0,
                    'answer_bytes': len(json.dumps(answer)),
                }
            )
            return answer

    def progress(*_args):
        marks['last_done'] = time.perf_counter()

    client = TimedClient(ca_path=spec.get('ca_path'))
    options = core.sync.SyncOptions(spec['feed_url'], MANAGER_ID, servers=servers, workers=spec['workers'], progress=progress)
    if spec['chained']:
        core.sync.Upstream = TimedUpstream  # Sync.update makes its Upstream from the module's name
        options = core.sync.chained_options(dataclasses.replace(options, upstream_id=UPSTREAM_ID))
        client.use_credentials(options.feed_url, spec['username'], spec['password'])
    repo = core.repository.Repository(spec['root'])
    began = time.perf_counter()
    result = core.sync.Sync(repo, client, keyring, options).run()
    ended = time.perf_counter()
    polls = [item for item in calls if item['call'] == 'download_poll']
    out.update(
        sync_seconds=ended - began,
        added=len(result.added),
        added_bytes=sum(item['size'] for item in result.added),
        refused_count=len(result.refused),
        refused=result.refused[:5],
        bytes_downloaded=result.bytes_downloaded,
        upstream=result.upstream,
        calls=calls,
        polls=len(polls),
        poll_sleep_seconds=max(0.0, upstream_times['wait_seconds'] - sum(item['seconds'] for item in polls)),
        api_bytes=sum(item['answer_bytes'] for item in calls),
        sent_bytes=sum(item['sent_bytes'] for item in calls),
        **tally,
        **upstream_times,
    )
    if marks['first_download'] is not None:
        last = marks['last_done'] or ended
        out.update(
            before_downloads_seconds=marks['first_download'] - began,
            download_phase_seconds=last - marks['first_download'],
            after_downloads_seconds=ended - last,
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.update(cpu_user_seconds=usage.ru_utime, cpu_system_seconds=usage.ru_stime, peak_rss_kib=bench_repo.peak_rss_kib())
    return out


def run_child(args, spec, workdir):
    spec_path = workdir / 'child-spec.json'
    spec_path.write_text(json.dumps(spec))
    argv = [sys.executable, str(Path(__file__).resolve()), '--collections-path', str(args.collections_dir), '--child', str(spec_path)]
    began = time.perf_counter()
    proc = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith('{')][-1])
    out['process_seconds'] = time.perf_counter() - began
    wanted = Path(args.collections_dir).resolve()
    if not Path(out['core_file']).resolve().is_relative_to(wanted) and not Path(out['core_file']).is_relative_to(wanted):
        raise RuntimeError('the child imported %s, not the code under %s' % (out['core_file'], args.collections_dir))
    return out


# --------------------------------------------------------------------------- the runs
class DownloadWatcher:
    """Watches an upstream's download state files (``<store>/service/downloads/<id>.json``) every PROBE_POLL s from
    this process: when a download appeared and when it stopped running, on the clock the child's calls are timed on."""

    def __init__(self, store):
        self.folder = Path(store) / 'service' / 'downloads'
        self.known = set(self.folder.glob('*.json')) if self.folder.is_dir() else set()
        self.seen: dict[str, dict] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.done.set()
        self.thread.join(5)

    def _watch(self):
        while not self.done.wait(PROBE_POLL):
            now = time.perf_counter()
            for path in self.folder.glob('*.json') if self.folder.is_dir() else ():
                if path in self.known:
                    continue
                item = self.seen.setdefault(path.stem, {'appeared_at': now})
                if 'ended_at' not in item:
                    try:
                        state = json.loads(path.read_text()).get('state')
                    except (OSError, ValueError):
                        continue  # being replaced
                    if state != 'running':
                        item['ended_at'] = now

    def timing(self, calls):
        """(the upstream download's duration, how long after its end the sync's last poll answered), seen from here."""
        ended = [item for item in self.seen.values() if 'ended_at' in item]
        polls = [call for call in calls if call['call'] == 'download_poll']
        if len(ended) != 1 or not polls:
            return {}
        item = ended[0]
        return {
            'upstream_download_seconds': item['ended_at'] - item['appeared_at'],
            'poll_late_seconds': max(0.0, polls[-1]['ended_at'] - item['ended_at']),
        }


class Bench:
    """The vendor's nginx (HTTP and HTTPS), the warm upstream services (HTTP and HTTPS), and one run of each method."""

    def __init__(self, core, args, feed_dir, pubkey, needed, servers_path, workdir):
        self.core, self.args, self.feed_dir, self.pubkey = core, args, feed_dir, pubkey
        self.needed, self.servers_path, self.workdir = needed, servers_path, workdir
        self.needed_bytes = sum(entry.size for entry in needed)
        self.nginx_module = bench_repo.Core.nginx()
        self.service_module = __import__('ansible_collections.exup.fleet.tests.services.repo_service', fromlist=['RepoService'])
        self.nginx = {}
        self.warm = {}  # 'http', 'https', and with --compare-upstream 'http@other', 'https@other'
        self.warming = {}
        self.kept = []  # the methods whose repositories the last round kept, for resyncs()

    # --- servers
    def start(self):
        for proto in ('http', 'https'):
            self.nginx[proto] = self.nginx_module.NginxServer(self.feed_dir, tls=proto == 'https').start()
        for key in ('http', 'https') + (('http@other', 'https@other') if self.args.compare_upstream else ()):
            proto, _at, other = key.partition('@')
            self.warm[key] = self.service(self.workdir / ('upstream-warm-' + key), proto, other=bool(other))
            # Warm it: one chained sync of the same servers has the upstream download everything they need.
            self.warming[key] = self.run('chain-' + key, service=self.warm[key])
            print('  warmed the %s upstream: %s' % (key, line(self.warming[key])), flush=True)

    def stop(self):
        for server in list(self.warm.values()) + list(self.nginx.values()):
            server.stop()

    def service(self, store, proto, other=False):
        """A repository service over ``store``; ``other``: running the code of --compare-upstream (its process imports the
        collection from there: RepoService puts collections_root() on its PYTHONPATH)."""
        shutil.rmtree(store, ignore_errors=True)
        service = self.service_module.RepoService(
            store,
            tls=proto == 'https',
            workers=self.args.service_workers,
            feed_url=self.nginx['http'].url('catalog.json'),
            trusted_keys=[Path(self.pubkey).read_text()],
        )
        if not other:
            return service.start()
        own = self.service_module.collections_root
        self.service_module.collections_root = lambda: Path(self.args.compare_upstream)
        try:
            return service.start()
        finally:
            self.service_module.collections_root = own

    # --- one run
    def run(self, method, service=None, keep=None, resync=None):
        """One sync into a fresh repository (kept at ``keep``), or, with ``resync``, again into that one: nothing new."""
        name, _at, other = method.partition('@')  # 'chain-http@other': the upstream runs the code of --compare-upstream
        kind, proto = name.split('-')
        root = resync or keep or self.workdir / 'runs' / method
        if not resync:
            shutil.rmtree(root, ignore_errors=True)
            root.parent.mkdir(parents=True, exist_ok=True)
        cold = kind == 'cold'
        if kind != 'nginx' and service is None:
            service = self.service(self.workdir / 'upstream-cold', proto, other=bool(other)) if cold else self.warm[proto + ('@' + other if other else '')]
        target = self.nginx[proto] if kind == 'nginx' else service
        spec = {
            'root': str(root),
            'pubkey': str(self.pubkey),
            'servers': str(self.servers_path),
            'workers': SYNC_WORKERS,
            'chained': kind != 'nginx',
            'feed_url': target.url('catalog.json') if kind == 'nginx' else target.base_url,
            'ca_path': str(target.ca_path) if target.ca_path else None,
            'username': 'admin',
            'password': self.service_module.ADMIN_PASSWORD,
        }
        vendor = self.nginx['http']
        log_before = {name: len(server.access_log()) for name, server in self.nginx.items()}
        record = {'method': method, 'chained': spec['chained'], 'load_before': os.getloadavg()[0]}
        server_before, vendor_before = server_cpu_seconds(target.base_url), server_cpu_seconds(vendor.base_url)
        machine_before, children_before = bench_repo.machine_cpu(), bench_repo.children_cpu()
        watcher = DownloadWatcher(service.store) if service is not None else None
        try:
            if watcher:
                with watcher:
                    child = run_child(self.args, spec, self.workdir)
                child.update(watcher.timing(child['calls']))
            else:
                child = run_child(self.args, spec, self.workdir)
            record.update(child, seconds=child['process_seconds'])
            record['cpu_seconds'] = bench_repo.children_cpu() - children_before
            record['server_cpu_seconds'] = server_cpu_seconds(target.base_url) - server_before
            record['vendor_cpu_seconds'] = server_cpu_seconds(vendor.base_url) - vendor_before
            record['machine_cpu'] = bench_repo.machine_cpu_share(machine_before, bench_repo.machine_cpu())
            record['load_after'] = os.getloadavg()[0]
        finally:
            if cold:
                service.stop()
                shutil.rmtree(self.workdir / 'upstream-cold', ignore_errors=True)
            if not (keep or resync):
                shutil.rmtree(root, ignore_errors=True)
        expected = (0, 0) if resync else (len(self.needed), self.needed_bytes)
        if (record['added'], record['added_bytes']) != expected or record['refused_count']:
            raise RuntimeError(
                '%s added %d packages (%d bytes, %d refused), expected %d (%d bytes): %s'
                % (method, record['added'], record['added_bytes'], record['refused_count'], *expected, record['refused'])
            )
        record['cpu_ms_per_package'] = 1000 * record['cpu_seconds'] / len(self.needed)
        record['server_cpu_ms_per_package'] = 1000 * record['server_cpu_seconds'] / len(self.needed)
        record['received_bytes'] = record['package_bytes'] + record['catalog_bytes'] + record['api_bytes']
        record['mib_per_s'] = self.needed_bytes / MIB / record['seconds']
        time.sleep(0.2)  # nginx logs a request once it has sent it all
        record['vendor_requests'] = {
            name: nginx_summary(server.access_log()[log_before[name] :]) for name, server in self.nginx.items() if kind != 'nginx' or name == proto
        }
        return record

    def rounds(self, methods, count):
        """Every method once a round, the order rotating; the last round's warm repositories are kept for resyncs()."""
        runs = []
        for index in range(count):
            shift = index % len(methods)
            for method in methods[shift:] + methods[:shift]:
                keep = self.workdir / 'kept' / method if index == count - 1 and method.split('@', maxsplit=1)[0] in WARM_METHODS else None
                if keep:
                    self.kept.append(method)
                record = self.run(method, keep=keep)
                runs.append(record)
                print('  round %d %-12s %s' % (index + 1, method, line(record)), flush=True)
        return runs

    def resyncs(self, count):
        """The repositories of the last round synced again, ``count`` times each, interleaved: nothing new anywhere."""
        runs = []
        for index in range(count):
            for method in self.kept:
                record = self.run(method, resync=self.workdir / 'kept' / method)
                record['method'] = method + ' again'
                runs.append(record)
                print('  again %d %-12s %s' % (index + 1, method, line(record)), flush=True)
        return runs

    # --- probes
    def download_probe(self, count):
        """The warm upstream's own download, polled every PROBE_POLL s: how long it runs, against the sync's schedule."""
        service = self.warm['http']
        raw = json.loads(self.servers_path.read_text())
        # what the sync announces (the same manager, the same servers): the warm download still finds nothing new
        announced = {'servers': self.core.sync.upstream_servers([self.core.repository.server_from_dict(MANAGER_ID, item) for item in raw])}
        times = []
        for _number in range(count):
            began = time.perf_counter()
            presence = service.request('POST', '/v1/managers/%s/presence' % UPSTREAM_ID, json=announced)
            presence_seconds = time.perf_counter() - began
            if presence.status_code != 200:
                raise RuntimeError('the probe presence was refused: %s' % presence.text[:500])
            began = time.perf_counter()
            started = service.request('POST', '/v1/downloads', json={'manager_id': UPSTREAM_ID})
            answered = time.perf_counter()
            if started.status_code != 202:
                raise RuntimeError('the probe download was refused: %s' % started.text[:500])
            polls = 0
            while True:
                state = service.get('/v1/downloads/%s' % started.json()['download_id']).json()
                polls += 1
                if state['state'] != 'running':
                    break
                time.sleep(PROBE_POLL)
            ended = time.perf_counter()
            result = state.get('result') or {}
            times.append(
                {
                    'presence_seconds': presence_seconds,
                    'start_answer_seconds': answered - began,
                    'finished_after_seconds': ended - answered,
                    'polls': polls,
                    'state': state['state'],
                    'added': len(result.get('added', [])),
                    'plan_skipped': result.get('plan_skipped'),
                    'feed_unchanged': result.get('feed_unchanged'),
                }
            )
        return times

    def request_probe(self):
        """PROBE_REQUESTS package requests one after the other on one connection (curl), from nginx and the feed view."""
        sample = self.needed[:PROBE_REQUESTS]
        probes = {}
        for proto in ('http', 'https'):
            targets = [
                ('nginx', self.nginx[proto], lambda entry: entry.url),
                ('service-feed', self.warm[proto], lambda entry: 'v1/feed/' + entry.url),  # what a chained sync asks
                ('service-pool', self.warm[proto], lambda entry: 'v1/pool/sha256/%s.zip' % entry.sha256),  # the same files by digest
            ]
            if proto + '@other' in self.warm:
                targets.append(('service-feed@other', self.warm[proto + '@other'], lambda entry: 'v1/feed/' + entry.url))
                targets.append(('service-pool@other', self.warm[proto + '@other'], lambda entry: 'v1/pool/sha256/%s.zip' % entry.sha256))
            for name, server, path_of in targets:
                config = self.workdir / 'probe-curl.txt'
                config.write_text(''.join('url = "%s"\noutput = "/dev/null"\n' % server.url(path_of(entry)) for entry in sample))
                argv = ['curl', '--silent', '--fail', '--config', str(config), '--write-out', '%{http_code} %{time_total}\\n']
                if server.ca_path:
                    argv += ['--cacert', str(server.ca_path)]
                if name != 'nginx':
                    argv += ['--user', 'read:' + self.service_module.READ_PASSWORD]
                # One request first: the read user's password verified (Argon2id, ~0.2 s) before the timing, not in it.
                warm_up = [arg for arg in argv if arg not in ('--config', str(config))] + ['--output', '/dev/null', server.url(path_of(sample[0]))]
                subprocess.run(warm_up, check=False, stdout=subprocess.DEVNULL)
                cpu_before = server_cpu_seconds(server.base_url)
                began = time.perf_counter()
                proc = subprocess.run(argv, check=False, stdout=subprocess.PIPE, text=True)
                seconds = time.perf_counter() - began
                cpu = server_cpu_seconds(server.base_url) - cpu_before
                answers = [row.split() for row in proc.stdout.splitlines() if row.strip()]
                latencies = sorted(float(row[1]) * 1000 for row in answers)
                probes['%s-%s%s' % (name.split('@', maxsplit=1)[0], proto, '@other' if '@' in name else '')] = {
                    'requests': len(answers),
                    'ok': sum(1 for row in answers if row[0] == '200'),
                    'seconds': seconds,
                    'ms_per_request': 1000 * seconds / max(1, len(answers)),
                    'p50_ms': latencies[len(latencies) // 2] if latencies else None,
                    'p90_ms': latencies[int(len(latencies) * 0.9)] if latencies else None,
                    'server_cpu_ms_per_request': 1000 * cpu / max(1, len(answers)),
                    'bytes': sum(entry.size for entry in sample),
                }
        return probes


def feed_view_lookups(workdir, sizes=(1000, 3000, 20000), repeat=200):
    """In process: what the feed view does per package request before it answers (``FeedView.package``: the kept record,
    the kept catalog, the url map), over kept catalogs of ``sizes`` entries of about a real entry's size."""
    import importlib  # pylint: disable=import-outside-toplevel

    feed = importlib.import_module('ansible_collections.exup.fleet.plugins.module_utils._exup.service.feed')
    store_module = importlib.import_module('ansible_collections.exup.fleet.plugins.module_utils._exup.repo.store')
    measured = {}
    for size in sizes:
        root = workdir / ('lookup-%d' % size)
        shutil.rmtree(root, ignore_errors=True)
        store = store_module.Store(str(root))
        with store.writer():
            pass
        entries = [
            {
                'package_id': 'system-bios-r%05d-1.%02d' % (number, number % 100),
                'module_id': 'system-bios',
                'module_name': 'System BIOS',
                'version': '1.%02d' % (number % 100),
                'models': ['Express5800/R120h-%dM' % (number % 50)],
                'os': ['rhel9', 'rhel8'],
                'kind': 'bmc',
                'published': '2026-01-20T00:00:00Z',
                'url': 'packages/system-bios-r%05d.zip' % number,
                'sha256': '%064x' % (number + 1),
                'size': 100000 + number,
            }
            for number in range(size)
        ]
        data = json.dumps({'signed': {'version': 1, 'entries': entries}, 'signatures': []}).encode()
        store.keep_catalog(store.stage_catalog(data), 1)
        pool = Path(store.pool_path(entries[-1]['sha256']))
        pool.parent.mkdir(parents=True, exist_ok=True)
        pool.write_bytes(b'x')
        view = feed.FeedView(store)
        view.package([entries[-1]['url']])  # the url map made once
        began = time.perf_counter()
        for _number in range(repeat):
            view.package([entries[-1]['url']])
        measured[size] = {'catalog_bytes': len(data), 'us_per_request': (time.perf_counter() - began) / repeat * 1e6}
        shutil.rmtree(root, ignore_errors=True)
    return measured


def import_cost(module, count=3):
    """Milliseconds a fresh interpreter takes to import ``module`` (-X importtime, cumulative), ``count`` times: the chained
    sync's calls to the upstream go through requests, which the first call imports (libcurl fetches the rest)."""
    costs = []
    for _number in range(count):
        argv = [sys.executable, '-X', 'importtime', '-c', 'import pycurl, json; import %s' % module]
        proc = subprocess.run(argv, check=True, stderr=subprocess.PIPE, text=True)
        rows = [row.split('|') for row in proc.stderr.splitlines() if row.rstrip().endswith('| ' + module)]
        costs.append(int(rows[-1][1]) / 1000 if rows else float('nan'))
    return costs


def nginx_summary(entries):
    packages = [entry for entry in entries if entry['uri'].startswith('/packages/')]
    return {
        'requests': len(entries),
        'catalog_statuses': sorted({entry['status'] for entry in entries if entry['uri'].startswith('/catalog.json')}),
        'package_requests': len(packages),
        'package_bytes': sum(entry['body_bytes_sent'] for entry in packages),
    }


def line(record):
    text = '%6.2f s (sync %.2f) %6.1f MiB/s  CPU %.2f s (%.2f ms/pkg), server %.2f ms/pkg, received %.1f MiB' % (
        record['seconds'],
        record['sync_seconds'],
        record['mib_per_s'],
        record['cpu_seconds'],
        record['cpu_ms_per_package'],
        record['server_cpu_ms_per_package'],
        record['received_bytes'] / MIB,
    )
    if record['chained']:
        text += ', upstream %.3f s (%d polls, slept %.3f s; %s added there)' % (
            record['prepare_seconds'],
            record['polls'],
            record['poll_sleep_seconds'],
            record['upstream'].get('added'),
        )
    return text + ' (load %.1f)' % record['load_before']


# --------------------------------------------------------------------------- the report
def _before_downloads(record):
    return record.get('before_downloads_seconds', record['sync_seconds'] - record.get('after_downloads_seconds', 0.0))


PARTS = (
    ('process start + imports', lambda r: r['seconds'] - r['sync_seconds']),
    ('upstream: presence', lambda r: sum(c['seconds'] for c in r['calls'] if c['call'] == 'presence')),
    ('upstream: download start', lambda r: sum(c['seconds'] for c in r['calls'] if c['call'] == 'download_start')),
    ('upstream: polls', lambda r: sum(c['seconds'] for c in r['calls'] if c['call'] == 'download_poll')),
    ('upstream: sleeps between polls', lambda r: r['poll_sleep_seconds']),
    ('catalog fetch', lambda r: r['catalog_seconds']),
    ('rest before the first download (plan, records)', lambda r: _before_downloads(r) - r['prepare_seconds'] - r['catalog_seconds']),
    ('downloads (first start to last indexed)', lambda r: r.get('download_phase_seconds', 0.0)),
    ('after the downloads (prune, close)', lambda r: r.get('after_downloads_seconds', 0.0)),
    ("(the upstream's own download, seen on its state file)", lambda r: r.get('upstream_download_seconds', 0.0)),
    ('(its end to the answer of the last poll)', lambda r: r.get('poll_late_seconds', 0.0)),
)


def median(values):
    values = list(values)
    return statistics.median(values) if values else float('nan')


def summarise(runs):
    summary = {}

    def order(name):
        base = name.split(' ', maxsplit=1)[0].split('@', maxsplit=1)[0]
        return ((WARM_METHODS + COLD_METHODS).index(base), '@' in name)

    for method in dict.fromkeys(sorted((run['method'] for run in runs), key=order)):
        mine = [run for run in runs if run['method'] == method]
        summary[method] = {
            'runs': len(mine),
            'median_s': median(r['seconds'] for r in mine),
            'min_s': min(r['seconds'] for r in mine),
            'max_s': max(r['seconds'] for r in mine),
            'sync_median_s': median(r['sync_seconds'] for r in mine),
            'mib_per_s': median(r['mib_per_s'] for r in mine),
            'cpu_median_s': median(r['cpu_seconds'] for r in mine),
            'cpu_user_median_s': median(r['cpu_user_seconds'] for r in mine),
            'cpu_system_median_s': median(r['cpu_system_seconds'] for r in mine),
            'cpu_ms_per_package': median(r['cpu_ms_per_package'] for r in mine),
            'server_cpu_ms_per_package': median(r['server_cpu_ms_per_package'] for r in mine),
            'vendor_cpu_median_s': median(r['vendor_cpu_seconds'] for r in mine),
            'received_bytes': median(r['received_bytes'] for r in mine),
            'package_bytes': median(r['package_bytes'] for r in mine),
            'catalog_bytes': median(r['catalog_bytes'] for r in mine),
            'api_bytes': median(r['api_bytes'] for r in mine),
            'sent_bytes': median(r['sent_bytes'] for r in mine),
            'peak_rss_mib': max(r['peak_rss_kib'] for r in mine) / 1024,
            'parts': {name: median(part(r) for r in mine) for name, part in PARTS},
            'load_range': [min(r[k] for r in mine for k in ('load_before', 'load_after')), max(r[k] for r in mine for k in ('load_before', 'load_after'))],
            'steal_max': max(r['machine_cpu']['steal'] for r in mine),
        }
    for method, item in summary.items():
        base = 'nginx-' + method.split('-', 1)[1].replace('@other', '')
        if base in summary and method != base:
            item['ratio_to_nginx'] = item['median_s'] / summary[base]['median_s']
            item['sync_ratio_to_nginx'] = item['sync_median_s'] / summary[base]['sync_median_s']
            item['cpu_ratio_to_nginx'] = item['cpu_median_s'] / summary[base]['cpu_median_s']
            mine = [r for r in runs if r['method'] == method]
            bases = [r for r in runs if r['method'] == base]
            item['round_ratios'] = [round(r['seconds'] / b['seconds'], 2) for r, b in zip(mine, bases, strict=False)]
    return summary


def markdown(results):
    summary, needed = results['summary'], results['needed']
    lines = [
        '| method | wall, median (min - max) | Sync.run | MiB/s | chained / nginx (per round) | sync CPU (user + sys) | ms / package '
        + '| server CPU ms / package | received |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for method, item in summary.items():
        ratio = '%.2fx (%s)' % (item['ratio_to_nginx'], ', '.join('%.2f' % v for v in item['round_ratios'])) if 'ratio_to_nginx' in item else ''
        lines.append(
            '| %s | %.2f s (%.2f - %.2f) | %.2f s | %.0f | %s | %.2f s (%.2f + %.2f) | %.2f | %.2f | %.1f MiB |'
            % (
                method,
                item['median_s'],
                item['min_s'],
                item['max_s'],
                item['sync_median_s'],
                item['mib_per_s'],
                ratio,
                item['cpu_median_s'],
                item['cpu_user_median_s'],
                item['cpu_system_median_s'],
                item['cpu_ms_per_package'],
                item['server_cpu_ms_per_package'],
                item['received_bytes'] / MIB,
            )
        )
    again = results['resync_summary']
    lines += [
        '',
        '| synced again, nothing new (median of %d) | wall (min - max) | Sync.run | / nginx | sync CPU | received | vendor nginx asked |'
        % results['profile']['resyncs'],
        '|---|---|---|---|---|---|---|',
    ]
    for method, item in again.items():
        asked = [r['vendor_requests'].get('http', {}) for r in results['resync_runs'] if r['method'] == method]
        lines.append(
            '| %s | %.3f s (%.3f - %.3f) | %.3f s | %s | %.2f s | %.1f KiB | %s |'
            % (
                method.replace(' again', ''),
                item['median_s'],
                item['min_s'],
                item['max_s'],
                item['sync_median_s'],
                '%.2fx' % item['ratio_to_nginx'] if 'ratio_to_nginx' in item else '',
                item['cpu_median_s'],
                item['received_bytes'] / 1024,
                '%d requests, catalog %s' % (asked[-1].get('requests', 0), asked[-1].get('catalog_statuses')) if asked and asked[-1] else '',
            )
        )
    both = {**summary, **again}
    lines += ['', '| part (median s) | ' + ' | '.join(both) + ' |', '|---|' + '---|' * len(both)]
    for name, _part in PARTS:
        lines.append('| %s | %s |' % (name, ' | '.join('%.3f' % item['parts'].get(name, float('nan')) for item in both.values())))
    probes = results['probes']
    head = '| %d package requests in a row, one connection | ms / request | p50 / p90 ms | server CPU ms / request |' % PROBE_REQUESTS
    lines += ['', head, '|---|---|---|---|']
    for name, probe in probes['requests'].items():
        lines.append(
            '| %s (%d of %d 200) | %.2f | %.2f / %.2f | %.2f |'
            % (name, probe['ok'], probe['requests'], probe['ms_per_request'], probe['p50_ms'], probe['p90_ms'], probe['server_cpu_ms_per_request'])
        )
    downloads = probes['upstream_download']
    lines += [
        '',
        'The warm upstream alone (%d times, polled every %.0f ms): the presence of the %d servers took %s ms; the download finished %s ms '
        'after its start answered (the start: %s ms). The sync first polls %.2f s after the start answered, then every %s times longer, '
        'up to %.1f s. The first call to the upstream imports requests: %s ms in a fresh interpreter; a call whose credentials the '
        "service's worker has not verified in the last minute waits for one Argon2id verification: %.0f ms here (in process)."
        ' The catalog the feed view serves: %.0f KiB. Its lookup per package request (FeedView.package, in process): %s.'
        % (
            len(downloads),
            1000 * PROBE_POLL,
            results['profile']['servers'],
            ', '.join('%.0f' % (1000 * d['presence_seconds']) for d in downloads),
            ', '.join('%.0f' % (1000 * d['finished_after_seconds']) for d in downloads),
            ', '.join('%.0f' % (1000 * d['start_answer_seconds']) for d in downloads),
            results['poll_first_seconds'],
            results['poll_growth'],
            results['poll_max_seconds'],
            ', '.join('%.0f' % cost for cost in probes['import_requests_ms']),
            probes['auth']['argon2id_verify_ms'],
            results['catalog_bytes'] / 1024,
            ', '.join(
                '%.0f us with %d entries (%.1f MiB)' % (item['us_per_request'], size, item['catalog_bytes'] / MIB)
                for size, item in probes['feed_view_lookup'].items()
            ),
        ),
        '',
        '%s: %d feed entries, %d servers; needed %d packages, %.1f MiB, %.0f KiB average; %d round(s); sync workers %d, service workers %d, '
        'nginx 1 worker; %d CPUs; load %.1f at the start, %.1f at the end; machine busy %.0f%%, steal %.0f%% over the session; `%s`'
        % (
            results['machine']['date'],
            results['feed']['entries'],
            results['profile']['servers'],
            needed['packages'],
            needed['bytes'] / MIB,
            needed['bytes'] / 1024 / max(1, needed['packages']),
            results['profile']['rounds'],
            SYNC_WORKERS,
            results['service_workers'],
            results['machine']['cpus'] or 0,
            results['load_average_start'][0],
            results['load_average_end'][0],
            100 * results['machine_cpu_session']['busy'],
            100 * results['machine_cpu_session']['steal'],
            results['command'],
        ),
    ]
    return '\n'.join(lines) + '\n'


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='1,000 entries / 100 servers / ~50 MiB, 1 round')
    parser.add_argument('--entries', type=int)
    parser.add_argument('--servers', type=int)
    parser.add_argument('--target-mib', type=int, help='MiB the needed packages should total')
    parser.add_argument('--rounds', type=int)
    parser.add_argument('--no-cold', action='store_true', help='without the cold-upstream runs')
    parser.add_argument('--service-workers', type=int, default=1, help="the service's worker processes (default 1, its configuration's default)")
    parser.add_argument('--workdir', default='/tmp/exup-bench-chain')
    parser.add_argument('--keep-feed', action='store_true', help='keep the built feed in --workdir for the next run')
    parser.add_argument('--rebuild', action='store_true', help='build the feed again even if one is kept')
    parser.add_argument('--collections-path', help='the collections directory (default: build/collections, as bench_repo.py finds it)')
    parser.add_argument(
        '--compare-upstream',
        metavar='DIR',
        help='also run every chained method against services running the code of another copy of the collection (methods ...@other)',
    )
    parser.add_argument('--label', default='', help='a word for the result file names (e.g. before, after)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.avg_size = None  # bench_repo.ensure_feed calibrates it
    return args


def main(argv=None):
    args = parse_args(argv)
    args.collections_dir = bench_repo.collections_dir(args.collections_path)
    if str(args.collections_dir) not in sys.path:
        sys.path.insert(0, str(args.collections_dir))
    core = bench_repo.Core()
    if args.child:
        print(json.dumps(child_main(core, json.loads(Path(args.child).read_text()))))
        return 0
    prof = dict(PROFILES['quick' if args.quick else 'default'])
    for key, value in (('entries', args.entries), ('servers', args.servers), ('rounds', args.rounds)):
        if value:
            prof[key] = value
    if args.target_mib:
        prof['target_bytes'] = args.target_mib * MIB
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results = {
        'command': ' '.join(['bash benchmarks/run_chain.sh'] + (sys.argv[1:] if argv is None else list(argv))),
        'machine': bench_repo.machine(),
        'profile': prof,
        'service_workers': args.service_workers,
        'poll_first_seconds': getattr(core.sync, 'UPSTREAM_POLL_FIRST', float('nan')),
        'poll_max_seconds': getattr(core.sync, 'UPSTREAM_POLL_MAX', float('nan')),
        'poll_growth': getattr(core.sync, 'UPSTREAM_POLL_GROWTH', 2),
        'load_average_start': os.getloadavg(),
    }
    cpu_start = bench_repo.machine_cpu()
    feed_dir, _private, pubkey, results['feed'] = bench_repo.ensure_feed(core, args, prof, workdir)
    keyring = core.signing.KeyRing.from_pem_list([str(pubkey)])
    servers_raw = core.feed.synthetic_servers(results['feed']['models'], prof['servers'])
    servers_path = workdir / 'servers.json'
    servers_path.write_text(json.dumps(servers_raw))
    servers = [core.repository.server_from_dict(MANAGER_ID, item) for item in servers_raw]
    needed = bench_repo.needed_entries(core, feed_dir, keyring, servers)[2]
    results['needed'] = bench_repo.needed_summary(needed)
    results['catalog_bytes'] = (feed_dir / 'catalog.json').stat().st_size
    print('feed %s (%s): %s' % (feed_dir, 'reused' if results['feed']['reused'] else 'built', bench_repo.needed_line(results['needed'])), flush=True)
    methods = list(WARM_METHODS) + ([] if args.no_cold else list(COLD_METHODS))
    if args.compare_upstream:
        args.compare_upstream = str(bench_repo.collections_dir(args.compare_upstream))
        methods += [method + '@other' for method in methods if not method.startswith('nginx')]
    bench = Bench(core, args, feed_dir, pubkey, needed, servers_path, workdir)
    try:
        bench.start()
        results['warming'] = bench.warming
        results['runs'] = bench.rounds(methods, prof['rounds'])
        results['resync_runs'] = bench.resyncs(prof['resyncs'])
        print('probes ...', flush=True)
        results['probes'] = {
            'upstream_download': bench.download_probe(prof['probe_downloads']),
            'requests': bench.request_probe(),
            'import_requests_ms': import_cost('requests'),
            'auth': auth_costs(repeat=200),
            'feed_view_lookup': feed_view_lookups(workdir),
        }
    finally:
        bench.stop()
        scratch = ['runs', 'kept', 'upstream-cold', 'servers.json', 'child-spec.json', 'probe-curl.txt']
        for name in scratch + ['upstream-warm-' + key for key in ('http', 'https', 'http@other', 'https@other')]:
            path = workdir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        if not args.keep_feed:
            bench_repo.remove_feed(workdir, feed_dir)
    results['summary'] = summarise(results['runs'])
    results['resync_summary'] = summarise(results['resync_runs'])
    results['total_seconds'] = time.perf_counter() - began
    results['load_average_end'] = os.getloadavg()
    results['machine_cpu_session'] = bench_repo.machine_cpu_share(cpu_start, bench_repo.machine_cpu())
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = 'chain-' + results['machine']['date'].replace(':', '').replace('-', '') + ('-quick' if args.quick else '') + ('-' + args.label if args.label else '')
    (RESULTS_DIR / (stem + '.json')).write_text(json.dumps(results, indent=1, sort_keys=True, default=str))
    table = markdown(results)
    (RESULTS_DIR / (stem + '.md')).write_text(table)
    print('\n' + table)
    print('results: %s.json and .md (%.0f s in all)' % (RESULTS_DIR / stem, results['total_seconds']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
