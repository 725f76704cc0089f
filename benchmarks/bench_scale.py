# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scale of the repository and the inventory plugin (issue 12, item 9). It measures; it asserts nothing.

    bash benchmarks/run_scale.sh                 # both parts: inventory (10,000 servers, 5 rounds) and repo (1k, 10k, 100k servers)
    bash benchmarks/run_scale.sh --quick         # 2,000 servers, 2 rounds; repo at 1k and 10k
    bash benchmarks/run_scale.sh --part inventory --hosts 10000 --rounds 5
    bash benchmarks/run_scale.sh --part inventory --rounds 5 --methods plugin,static-json,service,service-warm-cache

Part ``inventory``: a repository (core API: 3 signed packages, the servers announced by 10 managers) listed by
``ansible-inventory --list`` through exup.fleet.exup (no cache), the same plugin with a warm jsonfile cache, and the
same hosts, groups and host vars (the plugin's own listing, written out) as a static YAML file and as a static JSON
file (ansible's yaml plugin reads both). The methods run interleaved, the order rotating every round. The methods
``service`` and ``service-warm-cache``: the same store behind the real repository service (HTTPS, granian), read by
the plugin with the read login, without and with a warm jsonfile cache.

Part ``repo``: repositories of 1k, 10k and 100k servers across 50 managers. Each measure runs in a fresh child process
(interpreter start and imports inside the time): a sync's plan (``Repository.plan`` over the index: every server's
needs), the repository side of exup_info for one server (``packages_for``, ``status_icons``, ``record_server`` of it)
and ``ansible-inventory --list`` through the plugin. Peak memory: the child's VmHWM (/proc/<pid>/status), read by
the child itself or polled by the parent until the child ends (ru_maxrss of children is inflated by the parent's).

Results: benchmarks/results/scale-*.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / 'benchmarks' / 'results'
MODEL_A = 'Express5800/T110z-1M'
MODEL_B = 'Express5800/R120h-2M'


def core():
    """The collection's modules (imported as tests/system/conftest.py does: build/collections on PYTHONPATH)."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository
    from ansible_collections.exup.fleet.plugins.module_utils._exup.rules.generations import Server
    from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import SigningKey
    from ansible_collections.exup.fleet.tests.system import helpers as h

    return Repository, Server, SigningKey, h


def build_repository(root: Path, servers: int, managers: int) -> float:
    """A repository with 3 packages and ``servers`` servers announced by ``managers`` managers; the seconds it took."""
    Repository, Server, SigningKey, h = core()
    started = time.perf_counter()
    key = SigningKey.generate()
    root.parent.mkdir(parents=True, exist_ok=True)
    repo = Repository(str(root))
    files = []
    for package_id, module_id, version, models in (
        ('bios-200', 'system-bios', '2.00', (MODEL_A, MODEL_B)),
        ('sdr-110', 'sdr', '1.10', (MODEL_A,)),
        ('nic-300', 'nic-firmware', '3.00', (MODEL_B,)),
    ):
        path = root.parent / (package_id + '.zip')
        path.write_bytes(h.package_bytes(h.info(package_id, module_id, version, models=models), key))
        files.append(str(path))
    repo.add_files(files, h.keyring(key), mode='pinned')
    per = -(-servers // managers)
    for m in range(managers):
        batch = []
        for i in range(m * per, min(servers, (m + 1) * per)):
            model = MODEL_A if i % 3 else MODEL_B
            modules = {'system-bios': {'current': '1.00' if i % 2 else '2.00', 'previous': '0.90'}, 'sdr': {'current': '1.00'}}
            batch.append(Server(f'mgr-{m:02d}', f'srv-{i:06d}', model, 'rhel9' if i % 4 else 'win2022', modules))
        repo.announce(f'mgr-{m:02d}', batch)
    return time.perf_counter() - started


def vm_hwm_kib(pid: int | str = 'self') -> int:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def load() -> str:
    return ' '.join(Path('/proc/loadavg').read_text().split()[:3])


def timed(command: list[str], env: dict, stdout=subprocess.DEVNULL) -> dict:
    """Wall time and peak RSS (VmHWM polled every 20 ms until it ends) of one program."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, vm_hwm_kib(proc.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode(errors='replace') if proc.stderr else ''
    if proc.returncode != 0:
        raise RuntimeError(f'{command} failed ({proc.returncode}): {err[-2000:]}')
    return {'seconds': round(wall, 3), 'peak_mib': round(peak / 1024, 1), 'load': load()}


def inventory_env(**more: str) -> dict:
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED='true', ANSIBLE_HOST_KEY_CHECKING='false')
    env.setdefault('ANSIBLE_COLLECTIONS_PATH', str(REPO_ROOT / 'build' / 'collections'))
    env.pop('EXUP_REPOSITORY_PASSWORD', None)
    env.update(more)
    return env


def plain(value):
    """The listing without ansible-inventory's marks of untrusted text."""
    if isinstance(value, dict):
        return value['__ansible_unsafe'] if set(value) == {'__ansible_unsafe'} else {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def static_inventory(listing: dict) -> dict:
    """The same hosts, host vars and groups as a static YAML/JSON inventory (all: hosts with vars, children: groups)."""
    hostvars = listing['_meta']['hostvars']
    children = {}
    for group, body in listing.items():
        if group in ('_meta', 'all', 'ungrouped') or not body.get('hosts'):
            continue
        children[group] = {'hosts': {host: None for host in body['hosts']}}
    return {'all': {'hosts': hostvars, 'children': children}}


def part_inventory(args, workdir: Path) -> dict:
    import yaml

    repo_root = workdir / 'inv' / 'repo'
    build_seconds = build_repository(repo_root, args.hosts, 10)
    cache_dir = workdir / 'inv' / 'cache'
    plugin_src = workdir / 'inv' / 'plain.exup.yml'
    plugin_src.write_text(f'plugin: exup.fleet.exup\nrepository: {repo_root}\n')
    cached_src = workdir / 'inv' / 'cached.exup.yml'
    cached_src.write_text(
        f'plugin: exup.fleet.exup\nrepository: {repo_root}\ncache: true\ncache_plugin: ansible.builtin.jsonfile\n'
        f'cache_connection: {cache_dir}\ncache_timeout: 86400\n'
    )
    env = inventory_env(ANSIBLE_INVENTORY_ENABLED='exup.fleet.exup')
    proc = subprocess.run(['ansible-inventory', '-i', str(plugin_src), '--list'], env=env, capture_output=True, text=True, check=True)
    listing = plain(json.loads(proc.stdout))
    static = static_inventory(listing)
    yaml_path = workdir / 'inv' / 'static.yml'
    json_path = workdir / 'inv' / 'static.json'
    with yaml_path.open('w') as out:
        yaml.dump(static, out, Dumper=getattr(yaml, 'CSafeDumper', yaml.SafeDumper), default_flow_style=False)
    json_path.write_text(json.dumps(static))
    subprocess.run(['ansible-inventory', '-i', str(cached_src), '--list'], env=env, stdout=subprocess.DEVNULL, check=True)  # fills the cache
    static_env = inventory_env(ANSIBLE_INVENTORY_ENABLED='ansible.builtin.yaml')
    methods = {
        'plugin': (['ansible-inventory', '-i', str(plugin_src), '--list'], env),
        'plugin-warm-cache': (['ansible-inventory', '-i', str(cached_src), '--list'], env),
        'static-yaml': (['ansible-inventory', '-i', str(yaml_path), '--list'], static_env),
        'static-json': (['ansible-inventory', '-i', str(json_path), '--list'], static_env),
    }
    names = [name for name in methods if name in args.methods]
    with contextlib.ExitStack() as stack:
        if any(name.startswith('service') for name in args.methods):
            service_info = add_service_methods(stack, methods, repo_root, workdir / 'inv', listing, env)
            names = [name for name in methods if name in args.methods]
        else:
            service_info = {}
        runs = interleaved(args, methods, names)
    return {
        'hosts': args.hosts,
        'groups': len(static['all']['children']),
        'build_seconds': round(build_seconds, 2),
        'yaml_mib': round(yaml_path.stat().st_size / 2**20, 1),
        'json_mib': round(json_path.stat().st_size / 2**20, 1),
        **service_info,
        'runs': runs,
    }


def add_service_methods(stack: contextlib.ExitStack, methods: dict, repo_root: Path, folder: Path, listing: dict, env: dict) -> dict:
    """The same store behind the real repository service (HTTPS, granian, read user): ``service`` and ``service-warm-cache``.

    The service is tests/services/repo_service.py RepoService (service/main.py on granian, a fresh test CA, Argon2id
    credentials), one worker, started once for the whole session. The plugin reads it with the read login (from
    EXUP_REPOSITORY_PASSWORD) and the test CA (repository_ca_path), 5,000 servers a page (its default page_size).
    """
    from ansible_collections.exup.fleet.tests.services import repo_service

    service = stack.enter_context(repo_service.RepoService(repo_root, tls=True))
    url, ca = service.base_url, service.ca_path
    service_src = folder / 'service.exup.yml'
    service_src.write_text(f'plugin: exup.fleet.exup\nrepository: {url}\nrepository_user: read\nrepository_ca_path: {ca}\n')
    cached_src = folder / 'service-cached.exup.yml'
    cached_src.write_text(
        f'plugin: exup.fleet.exup\nrepository: {url}\nrepository_user: read\nrepository_ca_path: {ca}\ncache: true\n'
        f'cache_plugin: ansible.builtin.jsonfile\ncache_connection: {folder / "service-cache"}\ncache_timeout: 86400\n'
    )
    service_env = dict(env, EXUP_REPOSITORY_PASSWORD=repo_service.READ_PASSWORD)  # a test password on loopback
    proc = subprocess.run(['ansible-inventory', '-i', str(service_src), '--list'], env=service_env, capture_output=True, text=True, check=True)
    remote_listing = plain(json.loads(proc.stdout))
    same = remote_listing == listing
    if not same:
        print(f"note: the service listing differs from the local one ({len(remote_listing['_meta']['hostvars'])} hosts)", flush=True)
    subprocess.run(['ansible-inventory', '-i', str(cached_src), '--list'], env=service_env, stdout=subprocess.DEVNULL, check=True)  # fills the cache
    methods['service'] = (['ansible-inventory', '-i', str(service_src), '--list'], service_env)
    methods['service-warm-cache'] = (['ansible-inventory', '-i', str(cached_src), '--list'], service_env)
    return {'service': f'{url} (HTTPS, granian, 1 worker, read user)', 'service_listing_same': same}


def interleaved(args, methods: dict, names: list[str]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            command, method_env = methods[name]
            record = timed(command, method_env)
            record['round'] = round_no
            runs[name].append(record)
            print(f'inventory {name} round {round_no}: {record}', flush=True)
    return runs


CHILD = textwrap.dedent(
    '''
    import json, sys, time
    started = time.perf_counter()
    sys.path.insert(0, {bench!r})
    import bench_scale
    Repository, Server, SigningKey, h = bench_scale.core()
    repo = Repository({root!r})
    what = {what!r}
    out = {{}}
    if what == 'plan':
        with repo.read() as index:
            t = time.perf_counter()
            state = repo.plan(index)
            out['plan_only_seconds'] = round(time.perf_counter() - t, 3)
            out['servers'] = len(state.servers)
    else:
        t = time.perf_counter()
        stored = repo.packages_for({model!r}, 'rhel9')
        icons = repo.status_icons('mgr-00', 'srv-000001', [package.info for package in stored])
        changed = repo.record_server('mgr-00', Server('mgr-00', 'srv-000001', {model!r}, 'rhel9', {{'system-bios': {{'current': '1.00'}}}}))
        out['info_only_seconds'] = round(time.perf_counter() - t, 4)
        out['packages'] = len(stored)
    out['seconds'] = round(time.perf_counter() - started, 3)
    out['peak_mib'] = round(bench_scale.vm_hwm_kib() / 1024, 1)
    print(json.dumps(out))
    '''
)


def child(what: str, root: Path) -> dict:
    code = CHILD.format(bench=str(REPO_ROOT / 'benchmarks'), root=str(root), what=what, model=MODEL_A)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False, env=inventory_env())
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out['wall_seconds'] = round(time.perf_counter() - started, 3)
    out['load'] = load()
    return out


def part_repo(args, workdir: Path) -> dict:
    results = []
    for size in args.sizes:
        root = workdir / f'repo-{size}' / 'repo'
        shutil.rmtree(root.parent, ignore_errors=True)
        build_seconds = build_repository(root, size, 50)
        src = root.parent / 'plain.exup.yml'
        src.write_text(f'plugin: exup.fleet.exup\nrepository: {root}\n')
        entry: dict = {'servers': size, 'managers': 50, 'build_seconds': round(build_seconds, 2), 'index_mib': round(dir_mib(root), 1)}
        for round_no in range(args.repo_rounds):
            entry.setdefault('plan', []).append(child('plan', root))
            entry.setdefault('info', []).append(child('info', root))
            entry.setdefault('inventory', []).append(
                timed(['ansible-inventory', '-i', str(src), '--list'], inventory_env(ANSIBLE_INVENTORY_ENABLED='exup.fleet.exup'))
            )
            print(f'repo {size} round {round_no}: ' + json.dumps({k: v[-1] for k, v in entry.items() if isinstance(v, list)}), flush=True)
        results.append(entry)
        shutil.rmtree(root.parent, ignore_errors=True)
    return {'sizes': results}


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file()) / 2**20


def spread(records: list[dict], key: str = 'seconds') -> str:
    values = [r[key] for r in records]
    return f'{statistics.median(values):.2f} ({min(values):.2f} - {max(values):.2f})'


def markdown(result: dict) -> str:
    lines = [f"Scale benchmark, {result['started']} UTC, {result['machine']}, load before {result['load_before']}, after {result['load_after']}", '']
    inv = result.get('inventory')
    if inv:
        lines += [
            f"### ansible-inventory --list, {inv['hosts']} hosts, {inv['groups']} groups "
            f"(static YAML {inv['yaml_mib']} MiB, JSON {inv['json_mib']} MiB; {len(next(iter(inv['runs'].values())))} rounds interleaved)",
            '',
            *([f"Service: {inv['service']}; its listing the same as the local one: {inv['service_listing_same']}", ''] if 'service' in inv else []),
            '| method | median s (min - max) | peak MiB (median) | / static-yaml | / static-json | loads seen |',
            '|---|---|---|---|---|---|',
        ]
        med = {name: statistics.median(r['seconds'] for r in runs) for name, runs in inv['runs'].items()}
        for name, runs in inv['runs'].items():
            ratio_y = f"{med[name] / med['static-yaml']:.2f}" if 'static-yaml' in med else '-'
            ratio_j = f"{med[name] / med['static-json']:.2f}" if 'static-json' in med else '-'
            loads = ', '.join(sorted({r['load'].split()[0] for r in runs}))
            lines.append(f"| {name} | {spread(runs)} | {statistics.median(r['peak_mib'] for r in runs):.0f} | {ratio_y} | {ratio_j} | {loads} |")
        lines.append('')
    repo = result.get('repo')
    if repo:
        lines += [
            '### Repository: servers across 50 managers (fresh child process each; median, min - max)',
            '',
            '| servers | build s | index MiB | plan s (plan only) | plan peak MiB | exup_info repo side s (calls only) | info peak MiB '
            '| inventory s | inventory peak MiB |',
            '|---|---|---|---|---|---|---|---|---|',
        ]
        for entry in repo['sizes']:
            plan, info, inv_runs = entry['plan'], entry['info'], entry['inventory']
            lines.append(
                f"| {entry['servers']} | {entry['build_seconds']} | {entry['index_mib']} | {spread(plan)} "
                f"({statistics.median(r['plan_only_seconds'] for r in plan):.3f}) | {statistics.median(r['peak_mib'] for r in plan):.0f} "
                f"| {spread(info)} ({statistics.median(r['info_only_seconds'] for r in info):.4f}) "
                f"| {statistics.median(r['peak_mib'] for r in info):.0f} | {spread(inv_runs)} | {statistics.median(r['peak_mib'] for r in inv_runs):.0f} |"
            )
        lines.append('')
    return '\n'.join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='2,000 hosts, 2 rounds; repo at 1k and 10k servers')
    parser.add_argument('--part', default='inventory,repo', help='inventory, repo or both (comma-separated)')
    parser.add_argument('--hosts', type=int, help='inventory part: servers (default 10000)')
    parser.add_argument('--rounds', type=int, help='inventory part: rounds (default 5)')
    parser.add_argument(
        '--methods',
        default='plugin,plugin-warm-cache,static-yaml,static-json',
        help='inventory part: of plugin, plugin-warm-cache, static-yaml, static-json, service, service-warm-cache (the service: HTTPS)',
    )
    parser.add_argument('--sizes', help='repo part: server counts, comma-separated (default 1000,10000,100000)')
    parser.add_argument('--repo-rounds', type=int, default=2)
    parser.add_argument('--workdir', default='')
    args = parser.parse_args(argv)
    args.hosts = args.hosts or (2000 if args.quick else 10000)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.sizes = [int(s) for s in (args.sizes or ('1000,10000' if args.quick else '1000,10000,100000')).split(',')]
    args.methods = args.methods.split(',')
    args.part = args.part.split(',')
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix='exup-scale-'))
    started = datetime.datetime.now(datetime.UTC)
    result: dict = {
        'started': started.strftime('%Y-%m-%d %H:%M'),
        'machine': f'{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}',
        'load_before': load(),
        'argv': sys.argv,
    }
    try:
        if 'inventory' in args.part:
            result['inventory'] = part_inventory(args, workdir)
        if 'repo' in args.part:
            result['repo'] = part_repo(args, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    result['load_after'] = load()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime('%Y%m%dT%H%M%SZ')
    (RESULTS_DIR / f'scale-{stamp}.json').write_text(json.dumps(result, indent=1))
    text = markdown(result)
    (RESULTS_DIR / f'scale-{stamp}.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
