# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the repository sync (issue 2, item 10). It measures; it asserts nothing.

Run it with ``bash benchmarks/run.sh`` (20,000 feed entries, 2,000 servers, about
1 GiB of needed packages; about 15 minutes) or ``bash benchmarks/run.sh --quick``
(2,000 / 200 / about 100 MiB; under a minute). Results go to benchmarks/results/
as JSON and as a Markdown table; docs/benchmarks.md quotes them.

What is measured, on one machine in one session; every figure is a median:

1. parse_catalog (JSON, Ed25519, every entry checked) and generation_plan (every
   feed entry as a candidate x every registered server), in this process;
2. download + verify of exactly the packages the servers need, from a local
   nginx: a sync (Sync.run) in a fresh child process (workers 4 and 8), against
   baselines fetching the same files in the same session: curl then sha256sum,
   aria2c then sha256sum, and aria2c alone. Methods are interleaved and their
   order rotates every round, so a slow spell of the machine hits all of them;
   The CPU of every method's processes is divided by the packages (issue 10);
3. a re-sync with nothing new: time in Sync.run, the child process, the exup_repo_sync
   module run as a process, and the package bytes nginx sent (its log);
4. the peak RSS of every sync child, and verify_package of one package with a
   2 GiB stored payload (peak RSS and time, against sha256sum of the same file);
5. issue 10's goals, met or not, from the figures above.

Every sync and verify runs in its own child process (``--child``), started as
the Ansible module is; its peak RSS is read from /proc/self/status (VmHWM).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import importlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / 'benchmarks' / 'results'
MIB = 1024 * 1024
GIB = 1024 * MIB
MANAGER_ID = 'bench'
SEED = 1
VERSIONS_PER_MODULE = 6  # synthesize_feed's default

# "runs" repeat the in-process timings; "rounds" run every download method once each.
PROFILES = {
    'full': {'entries': 20000, 'servers': 2000, 'target_bytes': GIB, 'runs': 5, 'rounds': 3, 'resyncs': 5, 'big_bytes': 2 * GIB},
    'quick': {'entries': 2000, 'servers': 200, 'target_bytes': 100 * MIB, 'runs': 3, 'rounds': 1, 'resyncs': 2, 'big_bytes': 128 * MIB},
}
METHODS = ('curl+sha256sum', 'aria2c+sha256sum', 'aria2c', 'exup-w4', 'exup-w8')
BASELINES = ('curl+sha256sum', 'aria2c+sha256sum', 'aria2c')
ARIA2C_OPTIONS = [
    '-j',
    '16',
    '-x',
    '1',
    '--file-allocation=none',
    '--auto-file-renaming=false',
    '--allow-overwrite=true',
    '--console-log-level=error',
    '--summary-interval=0',
    '--download-result=hide',
    '--quiet=true',
]
CURL_PARALLEL = 16  # as many connections as aria2c -j 16
SCRATCH = ('runs', 'servers.json', 'module-args.json', 'aria2c-input.txt', 'curl-config.txt', 'SHA256SUMS', 'child-spec.json', 'big-payload', 'big-package.zip')


# --------------------------------------------------------------------------- the collection
def collections_dir(given):
    """A directory holding ansible_collections/exup/fleet, found as tests/system/conftest.py does.

    ``given`` may also name the collection itself (.../ansible_collections/exup/fleet): its collections
    directory is then three levels up. (Put on sys.path as it is, it would import nothing from there:
    the namespace package would find the collection on PYTHONPATH instead, and an A/B compare one code with itself.)
    """
    if given:
        path = Path(given).resolve()
        return path.parents[2] if path.parts[-3:] == ('ansible_collections', 'exup', 'fleet') else path
    built = REPO_ROOT / 'build' / 'collections'
    if (built / 'ansible_collections' / 'exup' / 'fleet').is_dir():
        return built
    temp = Path(tempfile.mkdtemp(prefix='exup-bench-collections-'))
    atexit.register(shutil.rmtree, temp, ignore_errors=True)  # rmtree does not follow the symlink
    (temp / 'ansible_collections' / 'exup').mkdir(parents=True)
    (temp / 'ansible_collections' / 'exup' / 'fleet').symlink_to(REPO_ROOT, target_is_directory=True)
    return temp


class Core:
    """The collection's modules, imported once sys.path holds the collections directory."""

    def __init__(self):
        for path in ('catalog', 'vendor.feed', 'rules.generations', 'package', 'repo.repository', 'signing', 'repo.sync', 'transport'):
            setattr(self, path.rpartition('.')[2], self._core_module(path))

    @staticmethod
    def _core_module(path):
        """_exup.<path>, or _exup.<last part> for code from before the core's subfolders (--compare-collections)."""
        base = 'ansible_collections.exup.fleet.plugins.module_utils._exup.'
        try:
            return importlib.import_module(base + path)
        except ModuleNotFoundError:
            if '.' not in path:
                raise
            return importlib.import_module(base + path.rpartition('.')[2])

    @staticmethod
    def nginx():
        return importlib.import_module('ansible_collections.exup.fleet.tests.services.nginx')


# --------------------------------------------------------------------------- child processes
def peak_rss_kib():
    """This process's peak RSS (VmHWM), in KiB.

    Not ru_maxrss: on Linux a child's ru_maxrss starts at its parent's high-water
    mark (it is carried over the fork and exec), so a child of this big benchmark
    process would report the benchmark's memory, not its own.
    """
    with open('/proc/self/status', encoding='ascii') as handle:
        for line in handle:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    return None


def child_main(core, spec):
    """Run one sync or one verify_package; return what was measured (printed as JSON)."""
    started = resource.getrusage(resource.RUSAGE_SELF)
    out = {'rss_after_import_kib': peak_rss_kib(), 'cpu_after_import_seconds': started.ru_utime + started.ru_stime, 'core_file': core.sync.__file__}
    keyring = core.signing.KeyRing.from_pem_list([spec['pubkey']])
    if spec['op'] == 'verify':
        began = time.perf_counter()
        verified = core.package.verify_package(spec['path'], keyring)
        out.update(seconds=time.perf_counter() - began, files=len(verified.files))
    else:
        out.update(_child_sync(core, spec, keyring))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    helpers = resource.getrusage(resource.RUSAGE_CHILDREN)  # a process pool's workers, once joined
    out.update(
        peak_rss_kib=peak_rss_kib(),
        ru_maxrss_kib=usage.ru_maxrss,
        cpu_user_seconds=usage.ru_utime,
        cpu_system_seconds=usage.ru_stime,
        cpu_children_seconds=helpers.ru_utime + helpers.ru_stime,
    )
    return out


def _run_sync(core, repo, client, keyring, spec, servers, progress):
    """One sync by the code under test: Sync(...).run() with SyncOptions (issue 9 on), or the old flat wrapper sync_repository (older trees)."""
    if not hasattr(core.sync, 'Sync'):
        return core.sync.sync_repository(repo, client, spec['feed_url'], keyring, MANAGER_ID, servers=servers, workers=spec['workers'], progress=progress)
    options = core.sync.SyncOptions(spec['feed_url'], MANAGER_ID, servers=servers, workers=spec['workers'], progress=progress)
    return core.sync.Sync(repo, client, keyring, options).run()


def _child_sync(core, spec, keyring):
    with open(spec['servers'], encoding='utf-8') as handle:
        servers = [core.repository.server_from_dict(MANAGER_ID, item) for item in json.load(handle)]
    marks = {'first_download': None, 'last_done': None}

    class TimedClient(core.transport.HttpClient):
        """Notes when the first package download starts, to split the sync into before / downloading / after.

        Both entry points are wrapped: ``download`` (the code before issue 10) and ``fetch`` (issue 10's
        pipeline; ``download`` may call it: only the first call counts).
        """

        def download(self, *args, **kwargs):  # kwargs: the request deadline (issue 8)
            _mark_first()
            return super().download(*args, **kwargs)

        if hasattr(core.transport.HttpClient, 'fetch'):

            def fetch(self, *args, **kwargs):
                _mark_first()
                return super().fetch(*args, **kwargs)

    def _mark_first():
        if marks['first_download'] is None:
            marks['first_download'] = time.perf_counter()

    def progress(*_args):  # (done, total, bytes); per package before issue 10, per batch after
        marks['last_done'] = time.perf_counter()

    repo = core.repository.Repository(spec['root'])
    began = time.perf_counter()
    result = _run_sync(core, repo, TimedClient(), keyring, spec, servers, progress)
    ended = time.perf_counter()
    out = {
        'sync_seconds': ended - began,
        'added': len(result.added),
        'removed': len(result.removed),
        'refused': result.refused[:5],
        'refused_count': len(result.refused),
        'bytes_downloaded': result.bytes_downloaded,
        'feed_unchanged': result.feed_unchanged,
        'added_bytes': sum(item['size'] for item in result.added),
        # every plain flag or count of the result (e.g. a key saying the re-sync skipped the plan, issue 10)
        'result_flags': {key: value for key, value in result.as_dict().items() if isinstance(value, (bool, int, float, str))},
    }
    if marks['first_download'] is not None:
        last = marks['last_done'] or ended
        out.update(
            before_downloads_seconds=marks['first_download'] - began,
            download_phase_seconds=last - marks['first_download'],
            after_downloads_seconds=ended - last,
        )
    return out


def run_child(args, spec, workdir, profile_to=None, collections=None):
    """Run this script as a child on ``spec``; returns its JSON plus the process wall time seen from here."""
    spec_path = workdir / 'child-spec.json'
    spec_path.write_text(json.dumps(spec))
    argv = [sys.executable, str(Path(__file__).resolve()), '--collections-path', str(collections or args.collections_dir), '--child', str(spec_path)]
    if profile_to:
        # py-spy samples every thread, idle ones too: waiting for the network or for fsync is time spent as well.
        argv = [args.py_spy, 'record', '--threads', '--idle', '--nonblocking', '--rate', '100', '--format', 'raw', '--output', str(profile_to), '--'] + argv
    began = time.perf_counter()
    proc = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith('{')][-1])  # py-spy prints lines too
    out['process_seconds'] = time.perf_counter() - began
    wanted = Path(collections or args.collections_dir).resolve()
    if not Path(out['core_file']).resolve().is_relative_to(wanted) and not Path(out['core_file']).is_relative_to(wanted):
        raise RuntimeError('the child imported %s, not the code under %s' % (out['core_file'], wanted))
    return out


# --------------------------------------------------------------------------- the feed
def calibrate_avg_size(core, entries, server_count, target_bytes):
    """The synthesize_feed avg_size that makes the packages the servers need total about ``target_bytes``.

    Replays synthesize_feed's random draws (the package list, then one size draw
    per package) with a unit size, selects as a sync does, and scales. If
    synthesize_feed changes, only the total drifts: the needed bytes of the
    feed actually built are measured and reported.
    """
    feed = core.feed
    rng = random.Random(SEED)
    per_model = (len(feed.FIRMWARE_MODULES) - 2 + 0.5 + 1 + 2 * (len(feed.SOFTWARE_MODULES) - 1)) * VERSIONS_PER_MODULE
    models = feed.synthetic_models(int(entries // per_model) + 1)
    start = datetime.datetime(2018, 1, 1, tzinfo=datetime.UTC)
    factors, candidates = {}, []
    for info, _published in feed._synthetic_infos(rng, models, VERSIONS_PER_MODULE, start):  # pylint: disable=protected-access
        if len(candidates) >= entries:
            break
        factors[info.package_id] = max(256, min(int(rng.lognormvariate(0, 0.5) * MIB), MIB * 8)) / MIB
        candidates.append(core.generations.Candidate(info.package_id, info.module_id, info.version, tuple(info.models), tuple(info.os)))
    servers = [core.repository.server_from_dict(MANAGER_ID, item) for item in feed.synthetic_servers(models, server_count)]
    wanted = core.generations.generation_plan(candidates, servers).wanted()
    # A package also holds ExUpInfo.xml, ExUpHash.xml and install.sh: about 2 KiB of zip around the payload.
    return max(1024, int((target_bytes - 2048 * len(wanted)) / sum(factors[package_id] for package_id in wanted)))


def ensure_feed(core, args, prof, workdir):
    """Build the synthetic feed with synthesize_feed, or reuse one kept (--keep-feed) with the same parameters."""
    avg_size = args.avg_size or calibrate_avg_size(core, prof['entries'], prof['servers'], prof['target_bytes'])
    name = 'feed-%d-%d-s%d' % (prof['entries'], avg_size, SEED)
    feed_dir, marker = workdir / name, workdir / (name + '.json')
    private, public = workdir / (name + '.key'), workdir / (name + '.pub')
    if marker.exists() and not args.rebuild:
        info = json.loads(marker.read_text())
        expires = json.loads((feed_dir / 'catalog.json').read_bytes())['signed']['expires']
        stale = feed_layout_differs(core, feed_dir, private)
        if stale:
            print('the kept feed was written by other vendor code (%s): building it again' % stale, flush=True)
        elif core.catalog.parse_time(expires) > core.catalog.utc_now() + datetime.timedelta(days=1):
            info['reused'] = True
            return feed_dir, private, public, info
    shutil.rmtree(feed_dir, ignore_errors=True)
    key = core.signing.SigningKey.generate()
    key.save(str(private), str(public))
    print('building the synthetic feed: %d entries, avg_size %d bytes ...' % (prof['entries'], avg_size), flush=True)
    began = time.perf_counter()
    count, models = core.feed.synthesize_feed(
        str(feed_dir), key, entries=prof['entries'], versions_per_module=VERSIONS_PER_MODULE, avg_size=avg_size, seed=SEED
    )
    info = {
        'entries': count,
        'models': models,
        'avg_size': avg_size,
        'build_seconds': time.perf_counter() - began,
        'feed_bytes': sum(path.stat().st_size for path in (feed_dir / 'packages').iterdir()),
    }
    marker.write_text(json.dumps(info))
    print('  built in %.1f s' % info['build_seconds'], flush=True)
    info['reused'] = False
    return feed_dir, private, public, info


def feed_layout_differs(core, feed_dir, private):
    """Why the kept feed's zip layout differs from what the code under test writes now, or None.

    A feed kept from an older tree (--keep-feed) must not measure a package format the vendor tool no
    longer writes (e.g. payloads stored instead of deflated): the smallest and the biggest package are
    compared, member by member, with a package written now from random bytes of the same sizes.
    """
    packages = sorted((feed_dir / 'packages').iterdir(), key=lambda path: path.stat().st_size)
    key = core.signing.SigningKey.load(str(private))
    for path in (packages[0], packages[-1]):
        with zipfile.ZipFile(path) as archive:
            kept = {member.filename: member.compress_type for member in archive.infolist()}
            payload = {name: os.urandom(archive.getinfo(name).file_size) for name in kept if name not in (core.package.INFO_NAME, core.package.HASH_NAME)}
        with tempfile.TemporaryDirectory() as scratch:
            sample = core.package.build_package_from_bytes(payload, bench_info(core), key, os.path.join(scratch, 'sample.zip'))
            with zipfile.ZipFile(sample) as archive:
                now = {member.filename: member.compress_type for member in archive.infolist()}
        if now != kept:
            return '%s: %s kept, %s now' % (path.name, sorted(kept.items()), sorted(now.items()))
    return None


def bench_info(core, package_id='bench-big-1.00'):
    """The PackageInfo of the benchmark's own packages (the big package, the layout sample)."""
    return core.package.PackageInfo(
        package_id=package_id,
        module_id='system-bios',
        module_name='System BIOS',
        version='1.00',
        release_date='2026-01-01',
        models=['Express5800/R120a-1M'],
        os=['any'],
        kind='bmc',
        auto_update=True,
        reboot_required=True,
        downgrade_supported=True,
        uninstall_supported=False,
        install_command='./install.sh',
    )


def remove_feed(workdir, feed_dir):
    shutil.rmtree(feed_dir, ignore_errors=True)
    for suffix in ('.json', '.key', '.pub'):
        path = workdir / (feed_dir.name + suffix)
        if path.exists():
            path.unlink()


# --------------------------------------------------------------------------- helpers
def timed(function, runs):
    """Median, min and max wall time of ``runs`` calls, and the last call's value."""
    times, value = [], None
    for _run in range(runs):
        began = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - began)
    return {'median_s': statistics.median(times), 'min_s': min(times), 'max_s': max(times), 'runs': len(times)}, value


def page_cache_share(paths):
    """Share of the bytes of ``paths`` resident in the page cache (util-linux fincore), None without fincore."""
    if not shutil.which('fincore'):
        return None
    resident = total = 0
    paths = [str(path) for path in paths]
    for index in range(0, len(paths), 1000):
        proc = subprocess.run(
            ['fincore', '--bytes', '--noheadings', '--raw', '--output', 'RES,SIZE'] + paths[index : index + 1000], check=True, stdout=subprocess.PIPE, text=True
        )
        for line in proc.stdout.splitlines():
            res, size = (int(field) for field in line.split())
            resident += min(res, size)  # whole pages are resident: the last one reaches past the file's end
            total += size
    return resident / total if total else None


def drop_from_page_cache(paths):
    """Ask the kernel to forget the cached pages of ``paths`` (needs no privilege for clean pages)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def machine_cpu():
    """The machine's CPU time counters (/proc/stat, in clock ticks): what else ran, and what the hypervisor took."""
    with open('/proc/stat', encoding='ascii') as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    names = ('user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal')
    return dict(zip(names, fields, strict=False))  # /proc/stat has more counters (guest, guest_nice)


def children_cpu():
    """User + system CPU seconds of this process's waited-for children (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_share(before, after):
    """Shares of the machine's CPU time between two machine_cpu() readings: busy (not idle/iowait), iowait, steal."""
    delta = {key: after[key] - before[key] for key in before}
    total = sum(delta.values()) or 1
    return {
        'busy': round((total - delta['idle'] - delta['iowait'] - delta['steal']) / total, 3),
        'iowait': round(delta['iowait'] / total, 3),
        'steal': round(delta['steal'] / total, 3),
    }


def nginx_traffic(entries):
    packages = [entry for entry in entries if entry['uri'].startswith('/packages/')]
    return {
        'requests': len(entries),
        'package_requests': len(packages),
        'package_bytes': sum(entry['body_bytes_sent'] for entry in packages),
        'statuses': sorted({entry['status'] for entry in entries}),
    }


def workers_of(method):
    """'exup-w8' and 'exup-w8@other' -> 8."""
    return int(method.split('@')[0].rsplit('-w', 1)[1])


# --------------------------------------------------------------------------- downloads
class DownloadBench:
    """Runs every download method over the same needed files from one nginx."""

    def __init__(self, args, nginx, feed_dir, pubkey, needed, servers_path, workdir):
        self.args, self.nginx, self.feed_dir, self.pubkey = args, nginx, feed_dir, pubkey
        self.needed, self.servers_path, self.workdir = needed, servers_path, workdir
        self.needed_bytes = sum(entry.size for entry in needed)
        self.runs_dir = workdir / 'runs'
        self.names = [entry.url.rsplit('/', 1)[1] for entry in needed]
        self.aria2c_input = workdir / 'aria2c-input.txt'
        self.aria2c_input.write_text(''.join('%s\n  out=%s\n' % (nginx.url(e.url), name) for e, name in zip(needed, self.names, strict=True)))
        self.sums = workdir / 'SHA256SUMS'
        self.sums.write_text(''.join('%s  %s\n' % (e.sha256, name) for e, name in zip(needed, self.names, strict=True)))
        self.curl_config = workdir / 'curl-config.txt'

    def _fresh(self, name):
        shutil.rmtree(self.runs_dir, ignore_errors=True)
        target = self.runs_dir / name
        target.mkdir(parents=True)
        return target

    @staticmethod
    def _timed_run(argv, **kwargs):
        began = time.perf_counter()
        subprocess.run(argv, check=True, **kwargs)
        return time.perf_counter() - began

    def _aria2c(self, out_dir):
        return self._timed_run(['aria2c', '--input-file', str(self.aria2c_input), '--dir', str(out_dir)] + ARIA2C_OPTIONS)

    def _curl(self, out_dir):
        self.curl_config.write_text(
            ''.join('url = "%s"\noutput = "%s"\n' % (self.nginx.url(e.url), out_dir / name) for e, name in zip(self.needed, self.names, strict=True))
        )
        return self._timed_run(
            [
                'curl',
                '--silent',
                '--show-error',
                '--no-progress-meter',
                '--fail',
                '--parallel',
                '--parallel-max',
                str(CURL_PARALLEL),
                '--config',
                str(self.curl_config),
            ]
        )

    def _sha256sum(self, out_dir):
        return self._timed_run(['sha256sum', '--quiet', '--strict', '--check', str(self.sums)], cwd=out_dir)

    def _sync(self, root, workers, collections=None, profile_to=None):
        spec = {
            'op': 'sync',
            'root': str(root),
            'feed_url': self.nginx.url('catalog.json'),
            'pubkey': str(self.pubkey),
            'servers': str(self.servers_path),
            'workers': workers,
        }
        return run_child(self.args, spec, self.workdir, profile_to=profile_to, collections=collections)

    def run(self, method, keep_root=False, profile_to=None):
        """One timed run of ``method`` into a fresh directory; ``seconds`` is what MiB/s and the ratios use."""
        if self.args.cold:
            drop_from_page_cache([self.feed_dir / entry.url for entry in self.needed])
        log_before = len(self.nginx.access_log())
        record = {'method': method, 'load_before': os.getloadavg()[0]}
        out_dir = self._fresh(method)
        cpu_before, children_before = machine_cpu(), children_cpu()
        if method == 'aria2c':
            record['seconds'] = self._aria2c(out_dir)
        elif method.endswith('+sha256sum'):
            fetch = self._curl(out_dir) if method.startswith('curl') else self._aria2c(out_dir)
            check = self._sha256sum(out_dir)
            record.update(seconds=fetch + check, fetch_seconds=fetch, sha256sum_seconds=check)
        else:
            other = self.args.compare_collections if method.endswith('@other') else None
            child = self._sync(out_dir / 'repo', workers_of(method), collections=other, profile_to=profile_to)
            if child['added'] != len(self.needed) or child['added_bytes'] != self.needed_bytes or child['refused_count']:
                raise RuntimeError(
                    '%s added %d packages (%d bytes, %d refused), expected %d (%d bytes): %s'
                    % (method, child['added'], child['added_bytes'], child['refused_count'], len(self.needed), self.needed_bytes, child['refused'])
                )
            record.update(child, seconds=child['process_seconds'])
        if not method.startswith('exup'):
            got = sum(path.stat().st_size for path in out_dir.iterdir())
            if got != self.needed_bytes:
                raise RuntimeError('%s left %d bytes in %s, expected %d' % (method, got, out_dir, self.needed_bytes))
        # CPU of every process this run started and waited for: curl and sha256sum together, aria2c, or the sync child
        # (with any helper processes it joined); nginx's share is the same for every method and is not counted.
        record['cpu_seconds'] = children_cpu() - children_before
        record['cpu_ms_per_package'] = 1000 * record['cpu_seconds'] / len(self.needed)
        if 'cpu_after_import_seconds' in record:  # the same without the interpreter's start and the imports
            record['cpu_ms_per_package_after_imports'] = 1000 * (record['cpu_seconds'] - record['cpu_after_import_seconds']) / len(self.needed)
        record['machine_cpu'] = machine_cpu_share(cpu_before, machine_cpu())
        record['load_after'] = os.getloadavg()[0]
        expected = log_before + len(self.needed) + (1 if method.startswith('exup') else 0)  # a sync also fetches the catalog
        record['nginx'] = nginx_traffic(self.nginx.wait_for_log(expected)[log_before:])
        record['mib_per_s'] = self.needed_bytes / MIB / record['seconds']
        if not keep_root:
            shutil.rmtree(self.runs_dir, ignore_errors=True)
        return record

    def rounds(self, methods, count):
        runs = []
        for index in range(count):
            shift = index % len(methods)
            for method in methods[shift:] + methods[:shift]:
                record = self.run(method)
                runs.append(record)
                print(
                    '  round %d %-20s %7.2f s %8.1f MiB/s  CPU %.2f ms/package  (load %.1f -> %.1f, machine busy %.0f%%, steal %.0f%%)'
                    % (
                        index + 1,
                        method,
                        record['seconds'],
                        record['mib_per_s'],
                        record['cpu_ms_per_package'],
                        record['load_before'],
                        record['load_after'],
                        100 * record['machine_cpu']['busy'],
                        100 * record['machine_cpu']['steal'],
                    ),
                    flush=True,
                )
        return runs

    def resyncs(self, count):
        """Sync a repository that holds everything again ``count`` times: nothing new to fetch.

        With --compare-collections, the other code re-syncs the same repository in
        alternation, and its figures come back under ``other``.
        """
        first = self.run('exup-w8', keep_root=True)
        root = self.runs_dir / 'exup-w8' / 'repo'
        codes = [(None, [], [])] + ([(self.args.compare_collections, [], [])] if self.args.compare_collections else [])
        try:
            for _run in range(count):
                for collections, runs, modules in codes:
                    log_before = len(self.nginx.access_log())
                    record = self._sync(root, 8, collections=collections)
                    record['nginx'] = nginx_traffic(self.nginx.wait_for_log(log_before + 1)[log_before:])
                    runs.append(record)
                    modules.append(self._module_sync(root, 8, collections or self.args.collections_dir))
                    self.nginx.wait_for_log(log_before + 2)
        finally:
            shutil.rmtree(self.runs_dir, ignore_errors=True)
        summary = self._resync_summary(codes[0][1], codes[0][2])
        summary.update(first_sync_seconds=first['seconds'], first_sync_peak_rss_mib=first['peak_rss_kib'] / 1024)
        if len(codes) > 1:
            summary['other'] = self._resync_summary(codes[1][1], codes[1][2])
        return summary

    def _module_sync(self, root, workers, collections):
        """The exup_repo_sync module itself run as a process (``python exup_repo_sync.py args.json``, as AnsiballZ ends up
        running it, without the zip): its wall time and its JSON result."""
        module = Path(collections) / 'ansible_collections' / 'exup' / 'fleet' / 'plugins' / 'modules' / 'exup_repo_sync.py'
        params = {
            'repository': str(root),
            'manager_id': MANAGER_ID,
            'trusted_keys': [str(self.pubkey)],
            'feed_url': self.nginx.url('catalog.json'),
            'servers': json.loads(self.servers_path.read_text()),
            'workers': workers,
        }
        args_path = self.workdir / 'module-args.json'
        args_path.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(collections)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, str(module), str(args_path)], check=False, stdout=subprocess.PIPE, text=True, env=env)
        seconds = time.perf_counter() - began
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        if answer.get('failed') or answer.get('changed') or answer.get('added'):
            raise RuntimeError('the module re-sync did something or failed: %s' % proc.stdout[-2000:])
        return {'process_seconds': seconds, 'result_flags': {key: value for key, value in answer.items() if isinstance(value, (bool, int, float, str))}}

    @staticmethod
    def _resync_summary(runs, modules):
        return {
            'runs': len(runs),
            'sync_median_s': statistics.median(r['sync_seconds'] for r in runs),
            'process_median_s': statistics.median(r['process_seconds'] for r in runs),
            'module_process_median_s': statistics.median(r['process_seconds'] for r in modules),
            'module_details': modules,
            'package_bytes': sum(r['nginx']['package_bytes'] for r in runs),
            'package_requests': sum(r['nginx']['package_requests'] for r in runs),
            'requests': sum(r['nginx']['requests'] for r in runs),
            'statuses': sorted({s for r in runs for s in r['nginx']['statuses']}),
            'added': sum(r['added'] for r in runs),
            'peak_rss_mib': max(r['peak_rss_kib'] for r in runs) / 1024,
            'result_flags': runs[-1].get('result_flags', {}),
            'details': runs,
        }


def summarise(runs, needed):
    """Per method: median wall time, MiB/s, packages/s; for exup also the ratios to each baseline."""
    summary = {}
    for method in sorted({run['method'] for run in runs}, key=lambda name: (name.startswith('exup'), name)):
        mine = [run for run in runs if run['method'] == method]
        seconds = statistics.median(run['seconds'] for run in mine)
        item = {
            'median_s': seconds,
            'min_s': min(run['seconds'] for run in mine),
            'max_s': max(run['seconds'] for run in mine),
            'runs': len(mine),
            'mib_per_s': needed['bytes'] / MIB / seconds,
            'packages_per_s': needed['packages'] / seconds,
        }
        for key in (
            'fetch_seconds',
            'sha256sum_seconds',
            'sync_seconds',
            'before_downloads_seconds',
            'download_phase_seconds',
            'after_downloads_seconds',
            'cpu_user_seconds',
            'cpu_system_seconds',
        ):
            values = [run[key] for run in mine if key in run]
            if values:
                item[key.replace('_seconds', '_median_s')] = statistics.median(values)
        for key in ('cpu_ms_per_package', 'cpu_ms_per_package_after_imports'):
            if key in mine[0]:
                item[key + '_median'] = statistics.median(run[key] for run in mine)
        loads = [run[key] for run in mine for key in ('load_before', 'load_after')]
        item['load_range'] = [min(loads), max(loads)]
        item['steal_max'] = max(run['machine_cpu']['steal'] for run in mine)
        if method.startswith('exup'):
            item['peak_rss_mib'] = max(run['peak_rss_kib'] for run in mine) / 1024
        summary[method] = item
    for method, item in summary.items():
        if method.startswith('exup'):
            item['ratio_vs'] = {base: item['mib_per_s'] / summary[base]['mib_per_s'] for base in BASELINES if base in summary}
    return summary


def summarise_py_spy(raw_path, top=25):
    """Share of samples per function (inclusive), for the sync's own thread and for the download workers."""
    totals, inclusive = {}, {}
    with open(raw_path, encoding='utf-8') as handle:
        for line in handle:
            stack, count = line.rstrip('\n').rsplit(' ', 1)
            role = 'download workers' if 'Thread._bootstrap' in stack else 'sync (main) thread'
            totals[role] = totals.get(role, 0) + int(count)
            functions = inclusive.setdefault(role, {})
            for name in {frame.split(' (')[0] for frame in stack.split(';')[1:]}:  # the first "frame" names the thread
                functions[name] = functions.get(name, 0) + int(count)
    return {
        role: {
            'samples': totals[role],
            'top': [[name, round(count / totals[role], 3)] for name, count in sorted(inclusive[role].items(), key=lambda kv: -kv[1])[:top]],
        }
        for role in totals
    }


# --------------------------------------------------------------------------- the 2 GiB package
def big_package(core, args, size, workdir, private_path, pubkey_path):
    """One package with a big stored payload: verify_package's peak RSS and time, against sha256sum of the file."""
    payload_dir, out = workdir / 'big-payload', workdir / 'big-package.zip'
    shutil.rmtree(payload_dir, ignore_errors=True)
    (payload_dir / 'payload').mkdir(parents=True)
    try:
        print('writing a %d MiB payload in 8 MiB chunks and packaging it ...' % (size // MIB), flush=True)
        with open(payload_dir / 'payload' / 'bios.bin', 'wb') as handle:
            for offset in range(0, size, 8 * MIB):
                handle.write(os.urandom(min(8 * MIB, size - offset)))
        (payload_dir / 'install.sh').write_text('#!/bin/sh\nexit 0\n')
        info = bench_info(core)
        began = time.perf_counter()
        core.package.build_package(str(payload_dir), info, core.signing.SigningKey.load(str(private_path)), str(out))
        build_seconds = time.perf_counter() - began
        shutil.rmtree(payload_dir)
        if args.cold:
            drop_from_page_cache([out])
        cached = page_cache_share([out])
        child = run_child(args, {'op': 'verify', 'path': str(out), 'pubkey': str(pubkey_path)}, workdir)
        began = time.perf_counter()
        subprocess.run(['sha256sum', str(out)], check=True, stdout=subprocess.DEVNULL)
        sha256sum_seconds = time.perf_counter() - began
        return {
            'payload_bytes': size,
            'package_bytes': out.stat().st_size,
            'build_seconds': build_seconds,
            'verify_seconds': child['seconds'],
            'verify_mib_per_s': size / MIB / child['seconds'],
            'verify_peak_rss_mib': child['peak_rss_kib'] / 1024,
            'rss_after_import_mib': child['rss_after_import_kib'] / 1024,
            'sha256sum_seconds': sha256sum_seconds,
            'page_cache_share': cached,
        }
    finally:
        shutil.rmtree(payload_dir, ignore_errors=True)
        if out.exists():
            out.unlink()


# --------------------------------------------------------------------------- report
def machine():
    def first_line(argv):
        try:
            proc = subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError:
            return None
        return (proc.stdout.splitlines() or [None])[0]

    def proc_field(path, key):
        with open(path, encoding='utf-8') as handle:
            for line in handle:
                if line.startswith(key):
                    return line.split(':', 1)[1].strip()
        return None

    return {
        'date': datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'cpus': os.cpu_count(),
        'cpu': proc_field('/proc/cpuinfo', 'model name'),
        'memory': proc_field('/proc/meminfo', 'MemTotal'),
        'kernel': platform.release(),
        'python': platform.python_version(),
        'nginx': first_line(['nginx', '-v']),
        'aria2c': first_line(['aria2c', '--version']),
        'curl': first_line(['curl', '--version']),
        'sha256sum': first_line(['sha256sum', '--version']),
    }


FULL_SIZE = (20000, 2000)  # entries, servers: the size issue 10 sets the 106 KiB, re-sync and memory goals at


def goals(results):
    """Issue 10's sync goals against this run: rows of goal, measured, met (None: this run's sizes do not test it), scope.

    The ratios are exup's speed over a baseline's (baseline's time / exup's), from methods interleaved in this run;
    the best exup method (of this code, not @other) is the one judged, every one is listed.
    """
    prof, needed, downloads = results['profile'], results['needed'], results['downloads']
    average = needed['bytes'] / max(1, needed['packages'])
    indicative = '' if (prof['entries'], prof['servers']) == FULL_SIZE else 'indicative: %d entries / %d servers' % (prof['entries'], prof['servers'])
    exups = {method: item for method, item in downloads.items() if method.startswith('exup') and '@' not in method}
    rows = []

    def ratio_row(goal, base, floor, applies, why_not):
        listed = ', '.join('%s %.2fx' % (method, item['ratio_vs'][base]) for method, item in sorted(exups.items()) if base in item['ratio_vs'])
        if not listed or not applies:
            rows.append({'goal': goal, 'measured': listed or 'not run', 'met': None, 'scope': why_not if listed else ''})
            return
        best = max(item['ratio_vs'][base] for item in exups.values() if base in item['ratio_vs'])
        rows.append({'goal': goal, 'measured': listed, 'met': best >= floor, 'scope': indicative})

    small = 64 * 1024 <= average <= 256 * 1024
    not_small = 'packages of %.0f KiB on average, the goal is for ~106 KiB' % (average / 1024)
    ratio_row('~106 KiB packages: at least 0.7x curl --parallel + sha256sum', 'curl+sha256sum', 0.7, small, not_small)
    ratio_row('~106 KiB packages: at least 1.5x aria2c alone', 'aria2c', 1.5, small, not_small)
    ratio_row(
        '1 MiB and more: faster than curl + sha256sum',
        'curl+sha256sum',
        1.0,
        average >= MIB,
        'packages of %.0f KiB on average' % (average / 1024),
    )
    resync = results.get('resync')
    if resync:
        rows.append(
            {
                'goal': 're-sync with nothing new: under 0.1 s in the sync call',
                'measured': 'Sync.run %.3f s' % resync['sync_median_s'],
                'met': resync['sync_median_s'] < 0.1,
                'scope': indicative,
            }
        )
        rows.append(
            {
                'goal': 're-sync with nothing new: under 0.4 s for the whole module process',
                'measured': 'exup_repo_sync as a process %.3f s (the harness child: %.3f s)' % (resync['module_process_median_s'], resync['process_median_s']),
                'met': resync['module_process_median_s'] < 0.4,
                'scope': indicative,
            }
        )
    peaks = [item['peak_rss_mib'] for item in exups.values()] + ([resync['first_sync_peak_rss_mib']] if resync else [])
    if peaks:
        rows.append(
            {
                'goal': 'peak memory of the full sync under 120 MiB',
                'measured': 'first syncs: at most %.0f MiB (VmHWM)' % max(peaks),
                'met': max(peaks) < 120,
                'scope': indicative,
            }
        )
    big = results.get('big_package')
    if big:
        growth = big['verify_peak_rss_mib'] - big['rss_after_import_mib']
        rows.append(
            {
                'goal': 'a 2 GiB package verified in constant memory (here: peak RSS at most 64 MiB over the RSS after the imports)',
                'measured': '%.0f MiB payload: peak %.0f MiB, %.0f MiB after the imports'
                % (big['payload_bytes'] / MIB, big['verify_peak_rss_mib'], big['rss_after_import_mib']),
                'met': growth <= 64,
                'scope': '' if big['payload_bytes'] >= 2 * GIB else 'indicative: payload under 2 GiB',
            }
        )
    cpu = ['%s %.2f ms%s' % (method, item['cpu_ms_per_package_median'], after_imports(item)) for method, item in sorted(downloads.items())]
    if cpu:
        rows.append(
            {
                'goal': 'CPU per package (a report; curl + sha256sum about 0.6-0.8 ms in the issue)',
                'measured': ', '.join(cpu),
                'met': None,
                'scope': '',
            }
        )
    return rows


def after_imports(item):
    key = 'cpu_ms_per_package_after_imports_median'
    return ' (%.2f after the imports)' % item[key] if key in item else ''


def method_notes(item):
    notes = []
    if 'fetch_median_s' in item:
        notes.append('fetch %.2f s + sha256sum %.2f s' % (item['fetch_median_s'], item['sha256sum_median_s']))
    if 'sync_median_s' in item:
        split = ''
        if 'before_downloads_median_s' in item:
            split = ' (%.2f before the first package download, %.2f downloading, %.2f after)' % (
                item['before_downloads_median_s'],
                item['download_phase_median_s'],
                item['after_downloads_median_s'],
            )
        notes.append(
            'Sync.run %.2f s%s; CPU %.1f s user + %.1f s sys, %.2f ms / package after the imports; peak RSS %.0f MiB'
            % (
                item['sync_median_s'],
                split,
                item['cpu_user_median_s'],
                item['cpu_system_median_s'],
                item['cpu_ms_per_package_after_imports_median'],
                item['peak_rss_mib'],
            )
        )
    if item.get('steal_max'):
        notes.append('steal up to %.0f%%' % (100 * item['steal_max']))
    return notes


def markdown(results):
    """The human summary: what docs/benchmarks.md quotes."""
    prof, feed, needed = results['profile'], results['feed'], results['needed']
    lines = [
        'Measured %s on %s CPUs (%s, %s RAM), Python %s, load average %.1f at the start; command: `%s`.'
        % (
            results['machine']['date'],
            results['machine']['cpus'],
            results['machine']['cpu'],
            results['machine']['memory'],
            results['machine']['python'],
            results['load_average_start'][0],
            results['command'],
        ),
        '',
        'Feed: %d entries, %.0f MiB (avg_size %d B; %s); %d servers on %d models. %s.'
        % (
            feed['entries'],
            feed['feed_bytes'] / MIB,
            feed['avg_size'],
            'reused' if feed['reused'] else 'built in %.0f s' % feed['build_seconds'],
            prof['servers'],
            len(feed['models']),
            needed_line(needed).replace('needed', 'Needed', 1),
        ),
        '',
        '| step | median | min - max | runs |',
        '|---|---|---|---|',
    ]
    for key, label in (
        ('parse_catalog', 'parse_catalog (%d entries, %.1f MiB)' % (feed['entries'], results['parse_catalog']['catalog_bytes'] / MIB)),
        ('selection', 'generation_plan (%d candidates x %d servers)' % (feed['entries'], prof['servers'])),
    ):
        item = results[key]
        lines.append('| %s | %.3f s | %.3f - %.3f s | %d |' % (label, item['median_s'], item['min_s'], item['max_s'], item['runs']))
    exups = [method for method in results['downloads'] if method.startswith('exup')]
    lines += [
        '',
        '| method | median wall (min - max) | MiB/s | packages/s | CPU ms / package | load | %s | notes |' % ' | '.join('%s / it' % m for m in exups),
        '|---|---|---|---|---|---|%s---|' % ('---|' * len(exups)),
    ]
    for method, item in results['downloads'].items():
        ratios = ['%.2fx' % results['downloads'][m]['ratio_vs'][method] if method in BASELINES else '' for m in exups]
        lines.append(
            '| %s | %.2f s (%.2f - %.2f) | %.0f | %.0f | %.2f | %.1f - %.1f | %s | %s |'
            % (
                method,
                item['median_s'],
                item['min_s'],
                item['max_s'],
                item['mib_per_s'],
                item['packages_per_s'],
                item['cpu_ms_per_package_median'],
                item['load_range'][0],
                item['load_range'][1],
                ' | '.join(ratios),
                '; '.join(method_notes(item)),
            )
        )
    lines += [
        '',
        'Wall: the whole process(es), as the module runs it for exup (interpreter start and imports inside). CPU: user + system of every '
        'process the run started (curl and sha256sum together; the sync child with any helper processes), divided by the packages; '
        'nginx not counted. Load: the 1-minute load average before and after the runs of the method.',
    ]
    resync = results['resync']
    lines += [
        '',
        'Re-sync with nothing new (median of %d): Sync.run %.3f s, the harness child process %.3f s (interpreter start and imports '
        'included), the exup_repo_sync module run as a process (`python exup_repo_sync.py args.json`, the %d servers in its arguments) '
        '%.3f s; the harness child\'s syncs: nginx answered %d requests (statuses %s) and sent %d package bytes in %d package requests; peak RSS %.0f MiB '
        '(first sync: %.0f MiB).'
        % (
            resync['runs'],
            resync['sync_median_s'],
            resync['process_median_s'],
            prof['servers'],
            resync['module_process_median_s'],
            resync['requests'],
            resync['statuses'],
            resync['package_bytes'],
            resync['package_requests'],
            resync['peak_rss_mib'],
            resync['first_sync_peak_rss_mib'],
        ),
    ]
    flags = {key: value for key, value in resync['result_flags'].items() if key not in ('bytes_downloaded', 'changed')}
    lines[-1] += ' Its result: %s.' % ', '.join('%s=%s' % item for item in sorted(flags.items()))
    if 'other' in resync:
        lines += [
            '',
            'The same re-sync by the code under --compare-collections (alternating with the above): Sync.run %.3f s, process %.3f s, '
            'module process %.3f s, peak RSS %.0f MiB.'
            % (
                resync['other']['sync_median_s'],
                resync['other']['process_median_s'],
                resync['other']['module_process_median_s'],
                resync['other']['peak_rss_mib'],
            ),
        ]
    big = results.get('big_package')
    if big:
        lines += [
            '',
            'verify_package of one package with a %.0f MiB stored payload: %.1f s (%.0f MiB/s), peak RSS %.0f MiB (%.0f MiB right after '
            'the imports); sha256sum of the same file: %.1f s. The package was %.0f%% in the page cache.'
            % (
                big['payload_bytes'] / MIB,
                big['verify_seconds'],
                big['verify_mib_per_s'],
                big['verify_peak_rss_mib'],
                big['rss_after_import_mib'],
                big['sha256sum_seconds'],
                100 * (big['page_cache_share'] or 0),
            ),
        ]
    lines += ['', '| goal of issue 10 | measured here | met? |', '|---|---|---|']
    for row in results['goals']:
        verdict = {True: 'yes', False: '**no**', None: 'n/a'}[row['met']]
        lines.append('| %s | %s | %s%s |' % (row['goal'], row['measured'], verdict, ' (%s)' % row['scope'] if row['scope'] else ''))
    session = results['machine_cpu_session']
    lines += [
        '',
        'Machine CPU over the session (this benchmark and anything else running): %.0f%% busy, %.0f%% iowait, %.0f%% stolen by the hypervisor; '
        'load average %.1f at the start, %.1f at the end.'
        % (100 * session['busy'], 100 * session['iowait'], 100 * session['steal'], results['load_average_start'][0], results['load_average_end'][0]),
    ]
    share = results['page_cache_share']
    lines += [
        '',
        'Page cache: %s of the needed feed files were resident before the download runs%s.'
        % (
            'unknown (no fincore)' if share is None else '%.0f%%' % (100 * share),
            '; --cold evicted them with posix_fadvise before every run' if results['cold'] else '',
        ),
    ]
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------- main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--quick', action='store_true', help='2,000 entries, 200 servers, about 100 MiB: under a minute')
    parser.add_argument('--collections-path', help='directory holding ansible_collections/exup/fleet (default: as the system tests find it)')
    parser.add_argument('--workdir', default=os.path.join(tempfile.gettempdir(), 'exup-bench'), help='feed, runs and scratch (default %(default)s)')
    parser.add_argument('--keep-feed', action='store_true', help='keep the built feed for the next run (default: delete it at the end)')
    parser.add_argument('--rebuild', action='store_true', help='build the feed again even if a matching one was kept')
    parser.add_argument('--build-only', action='store_true', help='build (or check) the feed, keep it, print what the servers need, and stop')
    parser.add_argument('--entries', type=int, help='feed entries (default 20,000; 2,000 with --quick)')
    parser.add_argument('--servers', type=int, help='registered servers (default 2,000; 200 with --quick)')
    parser.add_argument('--target-mib', type=int, help='MiB the needed packages should total (default 1024; 100 with --quick)')
    parser.add_argument('--avg-size', type=int, help='avg_size for synthesize_feed (default: calibrated to --target-mib)')
    parser.add_argument('--rounds', type=int, help='rounds of every download method (default 3; 1 with --quick)')
    parser.add_argument('--methods', default=','.join(METHODS), help='download methods to run (default %(default)s; exup-wN for N workers)')
    parser.add_argument('--big-mib', type=int, help='payload of the big-package test in MiB, 0 to skip (default 2048; 128 with --quick)')
    parser.add_argument('--cold', action='store_true', help='evict the feed files from the page cache before every download run')
    parser.add_argument('--py-spy', help='path of py-spy: also run one exup-w8 sync under it and summarise where each thread spends its time')
    parser.add_argument('--compare-collections', help='A/B a code change: also run every exup method from this collections path (as exup-wN@other)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def profile_from(args):
    prof = dict(PROFILES['quick' if args.quick else 'full'])
    mode = 'quick' if args.quick else 'full'
    for name in ('entries', 'servers', 'rounds'):
        if getattr(args, name):
            prof[name] = getattr(args, name)
    if args.target_mib:
        prof['target_bytes'] = args.target_mib * MIB
    if args.big_mib is not None:
        prof['big_bytes'] = args.big_mib * MIB
    if any(prof[key] != PROFILES[mode][key] for key in ('entries', 'servers', 'target_bytes')):
        mode = '%de-%ds-%dMiB' % (prof['entries'], prof['servers'], prof['target_bytes'] // MIB)
    return mode, prof


def main(argv=None):
    args = parse_args(argv)
    args.collections_dir = collections_dir(args.collections_path)
    if str(args.collections_dir) not in sys.path:
        sys.path.insert(0, str(args.collections_dir))
    core = Core()
    if args.child:
        print(json.dumps(child_main(core, json.loads(Path(args.child).read_text()))))
        return 0

    mode, prof = profile_from(args)
    methods = [method for method in args.methods.split(',') if method]
    if args.compare_collections:
        args.compare_collections = str(collections_dir(args.compare_collections))
        methods += [method + '@other' for method in methods if method.startswith('exup')]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    if free < 3 * prof['target_bytes'] + 2 * prof['big_bytes'] + GIB:
        raise SystemExit('not enough free disk under %s: %.1f GiB' % (workdir, free / GIB))
    began = time.perf_counter()
    results = {
        'command': ' '.join(['bash benchmarks/run.sh'] + (sys.argv[1:] if argv is None else list(argv))),
        'machine': machine(),
        'mode': mode,
        'profile': prof,
        'cold': args.cold,
        'load_average_start': os.getloadavg(),
    }
    cpu_start = machine_cpu()

    feed_dir, private, pubkey, results['feed'] = ensure_feed(core, args, prof, workdir)
    if args.build_only:
        keyring = core.signing.KeyRing.from_pem_list([str(pubkey)])
        servers = [core.repository.server_from_dict(MANAGER_ID, item) for item in core.feed.synthetic_servers(results['feed']['models'], prof['servers'])]
        _catalog, _plan, needed = needed_entries(core, feed_dir, keyring, servers)
        print('feed %s (%s): %s' % (feed_dir, 'reused' if results['feed']['reused'] else 'built', needed_line(needed_summary(needed))))
        return 0
    try:
        measure(core, args, prof, methods, workdir, feed_dir, private, pubkey, results)
    finally:
        if not args.keep_feed:
            remove_feed(workdir, feed_dir)
        for name in SCRATCH:
            path = workdir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
    results['total_seconds'] = time.perf_counter() - began
    results['goals'] = goals(results)
    results['load_average_end'] = os.getloadavg()
    results['machine_cpu_session'] = machine_cpu_share(cpu_start, machine_cpu())

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = 'repo-%s-%s' % (mode, results['machine']['date'].replace(':', '').replace('-', ''))
    (RESULTS_DIR / (stem + '.json')).write_text(json.dumps(results, indent=2, sort_keys=True))
    table = markdown(results)
    (RESULTS_DIR / (stem + '.md')).write_text(table)
    print('\n' + table)
    print('results: %s.json and .md (%.0f s in all)' % (RESULTS_DIR / stem, results['total_seconds']))
    return 0


def needed_entries(core, feed_dir, keyring, servers):
    """(catalog, plan, the entries a fresh repository downloads), sorted by package id."""
    catalog = core.catalog.parse_catalog((feed_dir / 'catalog.json').read_bytes(), keyring)
    candidates = [core.generations.Candidate(e.package_id, e.module_id, e.version, tuple(e.models), tuple(e.os)) for e in catalog.entries]
    plan = core.generations.generation_plan(candidates, servers)
    by_id = {entry.package_id: entry for entry in catalog.entries}
    return catalog, plan, [by_id[package_id] for package_id in sorted(plan.wanted())]


def needed_summary(needed):
    """Count, bytes and the size spread of the needed packages (which goal of issue 10 a feed measures depends on it)."""
    sizes = sorted(entry.size for entry in needed)
    return {
        'packages': len(sizes),
        'bytes': sum(sizes),
        'size_min': sizes[0],
        'size_p10': sizes[len(sizes) // 10],
        'size_median': sizes[len(sizes) // 2],
        'size_max': sizes[-1],
        'share_1mib_and_more': round(sum(1 for size in sizes if size >= MIB) / len(sizes), 3),
    }


def needed_line(needed):
    return 'needed: %d packages, %.1f MiB, %.0f KiB on average (min %.0f, p10 %.0f, median %.0f, max %.0f KiB; %.0f%% of them 1 MiB or more)' % (
        needed['packages'],
        needed['bytes'] / MIB,
        needed['bytes'] / 1024 / max(1, needed['packages']),
        needed['size_min'] / 1024,
        needed['size_p10'] / 1024,
        needed['size_median'] / 1024,
        needed['size_max'] / 1024,
        100 * needed['share_1mib_and_more'],
    )


def measure(core, args, prof, methods, workdir, feed_dir, private, pubkey, results):
    """Steps 1-4 of the module docstring, into ``results``."""
    keyring = core.signing.KeyRing.from_pem_list([str(pubkey)])
    servers_raw = core.feed.synthetic_servers(results['feed']['models'], prof['servers'])
    servers_path = workdir / 'servers.json'
    servers_path.write_text(json.dumps(servers_raw))
    servers = [core.repository.server_from_dict(MANAGER_ID, item) for item in servers_raw]

    # 1. catalog parse + verify, and selection over every entry
    data = (feed_dir / 'catalog.json').read_bytes()
    timing, catalog = timed(lambda: core.catalog.parse_catalog(data, keyring), prof['runs'])
    results['parse_catalog'] = dict(timing, catalog_bytes=len(data))
    candidates = [core.generations.Candidate(e.package_id, e.module_id, e.version, tuple(e.models), tuple(e.os)) for e in catalog.entries]
    timing, _plan = timed(lambda: core.generations.generation_plan(candidates, servers), prof['runs'])
    results['selection'] = dict(timing, candidates=len(candidates), servers=len(servers))
    _catalog, _plan, needed = needed_entries(core, feed_dir, keyring, servers)
    results['needed'] = needed_summary(needed)
    print(
        'parse_catalog %.3f s, generation_plan %.3f s; %s'
        % (results['parse_catalog']['median_s'], results['selection']['median_s'], needed_line(results['needed'])),
        flush=True,
    )

    # 2.-4. downloads, re-sync, memory
    results['page_cache_share'] = page_cache_share([feed_dir / entry.url for entry in needed])
    with Core.nginx().nginx_server(feed_dir) as nginx:
        bench = DownloadBench(args, nginx, feed_dir, pubkey, needed, servers_path, workdir)
        results['download_runs'] = bench.rounds(methods, prof['rounds'])
        results['downloads'] = summarise(results['download_runs'], results['needed'])
        print('re-sync with nothing new ...', flush=True)
        results['resync'] = bench.resyncs(prof['resyncs'])
        print('  %.3f s in Sync.run, %d package bytes sent' % (results['resync']['sync_median_s'], results['resync']['package_bytes']), flush=True)
        if args.py_spy:
            print('exup-w8 under py-spy ...', flush=True)
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            raw = RESULTS_DIR / 'py-spy-exup-w8.txt'
            results['py_spy'] = dict(bench.run('exup-w8', profile_to=raw), samples=summarise_py_spy(raw), raw=str(raw))
    if prof['big_bytes']:
        results['big_package'] = big_package(core, args, prof['big_bytes'], workdir, private, pubkey)


if __name__ == '__main__':
    sys.exit(main())
