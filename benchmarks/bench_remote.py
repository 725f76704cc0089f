# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cost of one remote exup_info against a local one (issue 11, item 8): measured, asserts nothing.

    bash benchmarks/run_remote.sh            # 30 rounds in process, 6 playbook rounds, 5 cold starts (about 4 minutes)
    bash benchmarks/run_remote.sh --quick    # 5 / 2 / 1

One store of a realistic size (the lab's packages plus older versions for the lab host's model, ~300 synthesized
packages of other models, ~300 registered servers of three managers, 2,000 events) is opened three ways in one
session: **local** (``repository: /path``, repo/repository.py Repository), **http** and **https**
(``repository: http(s)://127.0.0.1:PORT`` with repository_password / repository_ca_path: repo/remote.py
RemoteRepository against the real service, tests/services/repo_service.py RepoService, one granian worker each,
both over the same store). Interleaved, the order rotating every round:

1. **in process**: the exup_info action plugin's own ``act()`` (plugins/action/exup_info.py, register_server and
   trusted_keys as roles/rollout runs it) with the host call answered by a captured inventory of the lab host, so
   only the repository side and the plugin's pure rules run. Every RepositoryApi call it makes is timed (a proxy
   around what ``open_repository`` returns); each round opens a new repository (a new RemoteRepository: its
   connection, TLS handshake and /v1/about check are paid as a task pays them) and closes it after. Per round also:
   a TCP connect, a TLS handshake (context and handshake apart), and /v1/about on a new and on a warm session;
2. **ansible-playbook**: one exup_info task against one lab host (ssh), per method, plus **none** (the same task
   without a repository: the floor of the task). Wall time of the command and of the task (a callback).

After the rounds, **cold**: the service restarted before each sample, so its first request runs Argon2id (the
credentials cache, 60 s per worker, is empty), then one in-process exup_info against it. Results go to
benchmarks/results/remote-*.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import datetime
import json
import os
import platform
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / 'benchmarks' / 'results'
MANAGER_ID = 'bench'
OTHER_MANAGERS = ('site-b', 'site-c')
METHODS = ('local', 'http', 'https')
PLAY_METHODS = ('none', 'local', 'http', 'https')
PROFILES = {
    'full': {'rounds': 30, 'play_rounds': 6, 'cold': 5, 'packages': 300, 'servers': 300, 'events': 2000},
    'quick': {'rounds': 5, 'play_rounds': 2, 'cold': 1, 'packages': 100, 'servers': 100, 'events': 200},
}

TIMER_CALLBACK = '''\
"""Task durations (start to result) for bench_remote.py, written as JSON to $EXUP_BENCH_TIMES."""
import json
import os
import time

from ansible.plugins.callback import CallbackBase

if os.environ.get('EXUP_BENCH_PREIMPORT'):  # --preimport-requests: as if the controller's main process had imported it
    import requests  # noqa: F401


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started = {}
        self.times = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = time.monotonic()

    def _done(self, result, status):
        began = self.started.get(result._task._uuid)
        self.times.append({'task': result._task.get_name(), 'status': status, 'seconds': time.monotonic() - began if began else None})

    def v2_runner_on_ok(self, result):
        self._done(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self._done(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        with open(os.environ['EXUP_BENCH_TIMES'], 'w', encoding='utf-8') as handle:
            json.dump(self.times, handle)
'''

PROBE_ACTION = '''\
"""What an Ansible worker already has imported when a task starts (it is forked from the main process)."""
import os
import sys

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(
            changed=False,
            requests_imported='requests' in sys.modules,
            exup_remote_imported=any(name.endswith('_exup.repo.remote') for name in sys.modules),
            exup_info_plugin_imported=any(name.endswith('action.exup_info') for name in sys.modules),
            worker_pid=os.getpid(),
        )
        return result
'''


# --------------------------------------------------------------------------- the collection
class Collection:
    """The collection's modules and test servers (build/collections on sys.path: run_remote.sh sees to it)."""

    def __init__(self):
        sys.path.insert(0, str(ROOT / 'build' / 'collections'))
        # pylint: disable=import-outside-toplevel
        from ansible_collections.exup.fleet.plugins.action import exup_info
        from ansible_collections.exup.fleet.plugins.module_utils._exup import contract, events
        from ansible_collections.exup.fleet.plugins.module_utils._exup.repo import remote, repository
        from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth
        from ansible_collections.exup.fleet.plugins.module_utils._exup.signing import KeyRing
        from ansible_collections.exup.fleet.plugins.module_utils._exup.vendor import feed
        from ansible_collections.exup.fleet.plugins.plugin_utils import _exup_action
        from ansible_collections.exup.fleet.tests.lab import packages as lab_packages
        from ansible_collections.exup.fleet.tests.lab.lab import MODEL_A, Lab
        from ansible_collections.exup.fleet.tests.services import repo_service

        self.exup_info, self.contract, self.events, self.remote, self.repository = exup_info, contract, events, remote, repository
        self.auth, self.KeyRing, self.feed, self.exup_action = auth, KeyRing, feed, _exup_action
        self.lab_packages, self.MODEL_A, self.Lab, self.repo_service = lab_packages, MODEL_A, Lab, repo_service


# --------------------------------------------------------------------------- statistics
def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float('nan')
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary(values):
    """p50, p90, min, max of seconds, in milliseconds."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return {
        'n': len(values),
        'p50_ms': statistics.median(values) * 1000,
        'p90_ms': percentile(values, 0.9) * 1000,
        'min_ms': min(values) * 1000,
        'max_ms': max(values) * 1000,
    }


def fmt(stats, digits=1):
    if not stats:
        return '-'
    form = '%%.%df' % digits
    return (form + ' (' + form + ' - ' + form + ')') % (stats['p50_ms'], stats['min_ms'], stats['max_ms'])


def seconds(stats):
    if not stats:
        return '-'
    return '%.3f (%.3f - %.3f)' % (stats['p50_ms'] / 1000, stats['min_ms'] / 1000, stats['max_ms'] / 1000)


def cpu_steal():
    """(total, steal) jiffies from /proc/stat: the hypervisor's share over a span."""
    with open('/proc/stat', encoding='ascii') as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    return sum(fields), fields[7] if len(fields) > 7 else 0


# --------------------------------------------------------------------------- the store
def old_lab_packages(lab_packages, model):
    """Older versions of the lab host's modules (below what it runs): a realistic history for packages_for."""
    spec = []
    for number in range(1, 10):
        year = 2016 + number // 3
        date = '%d-%02d-10' % (year, number)
        spec += [
            lab_packages.LabPackage('system-bios', '0.%d' % number, date, (model,), reboot=True, downgrade=True),
            lab_packages.LabPackage('bmc-firmware', '1.%d0' % number, date, (model,), reboot=True),
            lab_packages.LabPackage('fc-controller', '9.%d' % number, date, (model,), reboot=True),
            lab_packages.LabPackage('raid-utility', '2.%d.1' % number, date, (model,), uninstall=True),
        ]
    return spec


def build_store(col, lab, work, profile):
    """The store every method uses; (store path, trusted key PEM path, counts)."""
    started = time.monotonic()
    spec = col.lab_packages.default_spec() + old_lab_packages(col.lab_packages, col.MODEL_A)
    store, pem = lab.make_repository(work / 'store', spec=spec)
    feed_dir = work / 'feed'
    _count, models = col.feed.synthesize_feed(str(feed_dir), lab.vendor_key(), entries=profile['packages'], versions_per_module=6, avg_size=4096, seed=1)
    repo = col.repository.Repository(str(store))
    keyring = col.KeyRing([lab.vendor_key().public_key])
    files = sorted(str(path) for path in (feed_dir / 'packages').glob('*.zip'))
    added = repo.add_files(files, keyring, mode='pinned')
    refused = [row for row in added if row['result'] != col.repository.ADDED]
    if refused:
        raise SystemExit('the store refused synthesized packages: %s' % refused[:3])
    managers = (MANAGER_ID, *OTHER_MANAGERS)
    for index, item in enumerate(col.feed.synthetic_servers(models, profile['servers'], seed=2)):
        manager = managers[index % len(managers)]
        repo.record_server(manager, col.repository.server_from_dict(manager, dict(item, name='%s-%s' % (manager, item['name']))))
    batch = []
    for number in range(profile['events']):
        batch.append(col.events.event('versions_queried', None, server='srv%05d' % (number % profile['servers']), status='latest'))
        if len(batch) == 200:
            repo.log_events(batch)
            batch = []
    if batch:
        repo.log_events(batch)
    counts = {
        'packages': len(repo.packages()),
        'packages_for_lab_host': len(repo.packages_for(col.MODEL_A, 'rhel9')),
        'servers': profile['servers'],
        'managers': len(managers),
        'events': profile['events'],
        'seconds_to_build': time.monotonic() - started,
    }
    return store, pem, counts


# --------------------------------------------------------------------------- in process: the action plugin's act()
class TimedRepository:
    """Times every RepositoryApi call made through it: (name, seconds) in ``calls``."""

    def __init__(self, inner, calls):
        self.inner = inner
        self.calls = calls

    def __getattr__(self, name):
        value = getattr(self.inner, name)
        if not callable(value):
            return value

        def timed(*args, **kwargs):
            label = '%s(module_id)' % name if kwargs.get('module_id') else name  # packages(): all, or one module's
            began = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self.calls.append((label, time.perf_counter() - began))

        return timed


class InProcess:
    """exup_info's act() with the host call answered from a captured inventory; the repository as a task opens it."""

    def __init__(self, col, inventory, server_name):
        self.col = col
        self.inventory = inventory
        self.server_name = server_name
        self.opened = []
        real_open = col.remote.open_repository

        def open_timed(params):
            repo = TimedRepository(real_open(params), self.calls)
            self.opened.append(repo)
            return repo

        col.exup_action.open_repository = open_timed  # the name the action plugins call (imported into _exup_action)
        self.calls = []
        self.action_class = self._action_class()

    def _action_class(self):
        bench = self

        class BenchInfo(self.col.exup_info.ActionModule):
            def __init__(self, args):  # pylint: disable=super-init-not-called  # no task, connection or play context: act() only
                self.args = args
                self.task_vars = {}
                self.server_name = bench.server_name
                self.opened_repository = None
                self.failure_logged = False
                self.package_transfer = None
                self.download_dir = None
                self._task = types.SimpleNamespace(args={}, check_mode=False)

            def host_call(self, phase, **args):
                answer = copy.deepcopy(bench.inventory)
                answer.pop('contract_version', None)
                return bench.col.contract.check_answer(phase, answer)

        return BenchInfo

    def run(self, args):
        """One act(): total seconds, the repository calls, connections and requests of a remote one."""
        self.calls = []
        self.opened = []
        began = time.perf_counter()
        result = self.action_class(args).act()
        total = time.perf_counter() - began
        connections = requests = None
        for repo in self.opened:
            session = getattr(repo.inner, '_session', None)
            if session is not None:
                pools = [pool for adapter in session.adapters.values() for pool in adapter.poolmanager.pools._container.values()]
                connections = sum(pool.num_connections for pool in pools)
                requests = sum(pool.num_requests for pool in pools)
                session.close()  # the task's worker ends: its connection with it
        return {
            'seconds': total,
            'repository_seconds': sum(seconds for _name, seconds in self.calls),
            'calls': list(self.calls),
            'connections': connections,
            'requests': requests,
            'server_status': result.get('server_status'),
            'modules': len(result.get('modules') or []),
            'registered': result.get('registered'),
        }


def task_args(col, method, store, service, pem_text):
    args = {
        'via': 'agent',
        'host_root': '/',
        'manager_id': MANAGER_ID,
        'server_name': None,
        'register_server': True,
        'trusted_keys': [pem_text],
        'boot_id_before_reboot': None,
        'repository_user': 'admin',
        'repository_password': None,
        'repository_ca_path': None,
        'repository_validate_certs': True,
        'repository_timeout': 30,
    }
    if method == 'local':
        return dict(args, repository=str(store))
    ca_path = str(service.ca_path) if service.ca_path else None
    return dict(args, repository=service.base_url, repository_password=col.repo_service.ADMIN_PASSWORD, repository_ca_path=ca_path)


def wire_pieces(col, service):
    """TCP connect, TLS context + handshake, /v1/about on a new session and again on the same (warm) one."""
    host, port = '127.0.0.1', service.port
    out = {}
    began = time.perf_counter()
    sock = socket.create_connection((host, port), timeout=10)
    out['tcp_connect'] = time.perf_counter() - began
    if service.tls:
        began = time.perf_counter()
        context = ssl.create_default_context(cafile=str(service.ca_path))
        out['tls_context'] = time.perf_counter() - began
        began = time.perf_counter()
        wrapped = context.wrap_socket(sock, server_hostname=host)
        out['tls_handshake'] = time.perf_counter() - began
        wrapped.close()
    else:
        sock.close()
    ca_path = str(service.ca_path) if service.ca_path else None
    options = col.remote.RemoteOptions(service.base_url, col.repo_service.ADMIN_PASSWORD, ca_path=ca_path, manager_id=MANAGER_ID)
    repo = col.remote.RemoteRepository(options)
    began = time.perf_counter()
    repo.exists()
    out['about_new_session'] = time.perf_counter() - began
    began = time.perf_counter()
    repo._request('GET', '/v1/about')  # pylint: disable=protected-access  # one more round trip on the same connection
    out['about_warm'] = time.perf_counter() - began
    repo.session.close()
    return out


def answer_sizes(col, service, inventory):
    """Bytes of the service's JSON answers to the two package listings exup_info asks for (once, not timed)."""
    import requests  # pylint: disable=import-outside-toplevel

    facts = inventory['facts']
    auth = ('admin', col.repo_service.ADMIN_PASSWORD)
    sizes = {}
    for name, path, params in (('packages', '/v1/packages', None), ('packages_for', '/v1/packages/for', {'model': facts['model'], 'os': facts['os']})):
        sizes[name] = len(requests.get(service.url(path), params=params, auth=auth, timeout=30).content)
    return sizes


# --------------------------------------------------------------------------- ansible-playbook
def play_text(method, host, store, service, pem, password, keep=False):
    """One exup_info task; ``keep``: its result and a probe of the next worker's imports written next to the play (warm-up)."""
    lines = [
        '- hosts: %s' % host,
        '  gather_facts: false',
        '  tasks:',
        '    - name: exup_info (%s)' % method,
        '      exup.fleet.exup_info:',
        '        register_server: true',
        '        host_root: "{{ exup_host_root }}"',
        '        manager_id: %s' % MANAGER_ID,
        '        trusted_keys: ["%s"]' % pem,
    ]
    if method == 'local':
        lines.append('        repository: "%s"' % store)
    elif service is not None:
        lines.append('        repository: "%s"' % service.base_url)
        lines.append('        repository_password: "%s"' % password)
        if service.ca_path:
            lines.append('        repository_ca_path: "%s"' % service.ca_path)
    lines += ['      register: info', '      failed_when: info.failed or info.server_status is not defined']
    if keep:
        lines += [
            '    - name: What the next worker has imported',
            '      bench_probe:',
            '      register: probe',
            '    - name: Keep the result',
            '      ansible.builtin.copy:',
            '        content: "{{ dict(info=info, probe=probe) | to_json }}"',
            '        dest: "{{ playbook_dir }}/result-%s.json"' % method,
            '        mode: "0600"',
            '      delegate_to: localhost',
        ]
    return '\n'.join(lines) + '\n'


def run_play(lab, work, play, label, preimport=False):
    times_file = work / 'times.json'
    times_file.unlink(missing_ok=True)
    env = lab.env()
    env.update(
        ANSIBLE_CALLBACK_PLUGINS=str(work / 'callback_plugins'),
        ANSIBLE_CALLBACKS_ENABLED='bench_timer',
        ANSIBLE_ACTION_PLUGINS=str(work / 'action_plugins'),
        EXUP_BENCH_TIMES=str(times_file),
    )
    if preimport:
        env['EXUP_BENCH_PREIMPORT'] = '1'
    began = time.monotonic()
    proc = subprocess.run(['ansible-playbook', '-vvv', str(play)], env=env, cwd=str(play.parent), capture_output=True, text=True, check=False, timeout=300)
    wall = time.monotonic() - began
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit('%s failed (exit %d)' % (label, proc.returncode))
    times = json.loads(times_file.read_text())
    task = [row['seconds'] for row in times if row['task'].startswith('exup_info')]
    phase = re.findall(r'exup: \S+ phase inventory took ([0-9.]+) s', proc.stdout)  # the action plugin's display.vvv
    return wall, task[0] if task else None, float(phase[0]) if phase else None


def capture_inventory(lab, work, host):
    """The lab host's exup_host inventory answer, as the action plugin gets it."""
    out = work / 'inventory-answer.json'
    play = work / 'capture.yml'
    play.write_text(
        textwrap.dedent(f"""\
        - hosts: {host}
          gather_facts: false
          tasks:
            - name: The inventory phase
              exup.fleet.exup_host:
                phase: inventory
                host_root: "{{{{ exup_host_root }}}}"
                contract_version: 2
              register: answer
            - name: Keep it
              ansible.builtin.copy:
                content: "{{{{ answer | to_json }}}}"
                dest: "{out}"
                mode: "0600"
              delegate_to: localhost
        """)
    )
    proc = subprocess.run(['ansible-playbook', str(play)], env=lab.env(), capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit('capturing the inventory failed')
    answer = json.loads(out.read_text())
    for key in ('invocation', 'changed', 'failed', '_ansible_no_log', 'warnings', 'deprecations'):
        answer.pop(key, None)
    return answer


# --------------------------------------------------------------------------- the run
def call_table(runs):
    """RepositoryApi call name -> seconds of each run (a call made twice in a run counts as two entries)."""
    table = collections.defaultdict(list)
    for run in runs:
        per_run = collections.defaultdict(float)
        for name, seconds in run['calls']:
            per_run[name] += seconds
        for name, seconds in per_run.items():
            table[name].append(seconds)
    return table


def call_sequence(run):
    return [name for name, _seconds in run['calls']]


def main(argv=None):  # pylint: disable=too-many-locals,too-many-statements  # one session, in order
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='5 in-process rounds, 2 playbook rounds, 1 cold start, a smaller store')
    parser.add_argument('--rounds', type=int, help='in-process rounds (default 30)')
    parser.add_argument('--play-rounds', type=int, help='ansible-playbook rounds (default 6; 0 skips them)')
    parser.add_argument('--cold', type=int, help='cold-service samples per scheme (default 5; 0 skips them)')
    parser.add_argument(
        '--preimport-requests',
        action='store_true',
        help="also run the remote plays (http-pre, https-pre) with requests imported in ansible-playbook's main process (by the timing callback), "
        'so task workers inherit it: an A/B of that change, interleaved',
    )
    parser.add_argument('--dir', default=str(ROOT / 'build' / 'bench-remote'), help='work folder (recreated)')
    args = parser.parse_args(argv)
    profile = dict(PROFILES['quick' if args.quick else 'full'])
    for name in ('rounds', 'play_rounds', 'cold'):
        if getattr(args, name) is not None:
            profile[name] = getattr(args, name)
    col = Collection()
    password = col.repo_service.ADMIN_PASSWORD
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / 'callback_plugins').mkdir()
    (work / 'callback_plugins' / 'bench_timer.py').write_text(TIMER_CALLBACK)
    (work / 'action_plugins').mkdir()
    (work / 'action_plugins' / 'bench_probe.py').write_text(PROBE_ACTION)
    play_methods = PLAY_METHODS + (('http-pre', 'https-pre') if args.preimport_requests else ())
    load_before = os.getloadavg()
    session_started = time.monotonic()
    steal_before = cpu_steal()
    lab = col.Lab(work / 'lab', hosts=1)
    lab.up()
    host = lab.names[0]
    rounds_in_process = {method: [] for method in METHODS}
    pieces = {scheme: collections.defaultdict(list) for scheme in ('http', 'https')}
    plays = {method: {'wall': [], 'task': [], 'host_call': [], 'controller': []} for method in play_methods}
    cold = {scheme: [] for scheme in ('http', 'https')}
    worker_imports = {}
    answer_bytes = {}
    try:
        store, pem, counts = build_store(col, lab, work, profile)
        shown = 'store: %(packages)d packages (%(packages_for_lab_host)d for the lab host), %(servers)d servers, %(events)d events, %(seconds_to_build).0f s'
        print(shown % counts, flush=True)
        pem_text = Path(pem).read_text(encoding='ascii')
        agent_play = work / 'agent.yml'
        agent_play.write_text(
            '- hosts: %s\n  gather_facts: false\n  tasks:\n    - name: Install the agent (not timed)\n      exup.fleet.exup_agent:\n'
            '        repository: "%s"\n        trusted_keys: ["%s"]\n'
            % (host, store, pem)
            + '        host_root: "{{ exup_host_root }}"\n        license_accepted: true\n'
        )
        run_play(lab, work, agent_play, 'agent install')
        inventory = capture_inventory(lab, work, host)
        in_process = InProcess(col, inventory, host)
        with contextlib.ExitStack() as stack:
            services = {
                'http': stack.enter_context(col.repo_service.RepoService(store, tls=False)),
                'https': stack.enter_context(col.repo_service.RepoService(store, tls=True)),
            }
            service_of = {'local': None, 'http': services['http'], 'https': services['https']}
            for method in METHODS:  # warm-up, not timed: Argon2 once per service, imports, the server record
                in_process.run(task_args(col, method, store, service_of[method], pem_text))
            first = {method: in_process.run(task_args(col, method, store, service_of[method], pem_text)) for method in METHODS}
            answer_bytes.update(answer_sizes(col, services['http'], inventory))
            same = {(run['server_status'], run['modules']) for run in first.values()}
            if len(same) != 1:
                raise SystemExit('the three repositories do not answer exup_info alike: %s' % {m: (r['server_status'], r['modules']) for m, r in first.items()})
            for method in METHODS:
                print('%s: calls per exup_info: %s' % (method, ', '.join(call_sequence(first[method]))), flush=True)
            for index in range(profile['rounds']):
                order = METHODS[index % len(METHODS) :] + METHODS[: index % len(METHODS)]
                for method in order:
                    rounds_in_process[method].append(in_process.run(task_args(col, method, store, service_of[method], pem_text)))
                for scheme in ('http', 'https') if index % 2 == 0 else ('https', 'http'):
                    for name, seconds in wire_pieces(col, services[scheme]).items():
                        pieces[scheme][name].append(seconds)
            if profile['play_rounds']:
                play_files = {}
                for method in play_methods:
                    base, pre = method.removesuffix('-pre'), method.endswith('-pre')
                    warm = work / ('warm-%s.yml' % method)
                    warm.write_text(play_text(method, host, store, service_of.get(base), pem, password, keep=True))
                    run_play(lab, work, warm, method + ' (warm-up)', preimport=pre)
                    play_files[method] = work / ('info-%s.yml' % method)
                    play_files[method].write_text(play_text(method, host, store, service_of.get(base), pem, password))
                results = {method: json.loads((work / ('result-%s.json' % method)).read_text()) for method in play_methods}
                if len({(results[m]['info']['server_status'], len(results[m]['info']['modules'])) for m in METHODS}) != 1:
                    raise SystemExit('the playbooks do not answer alike: %s' % {m: results[m]['info']['server_status'] for m in PLAY_METHODS})
                for method in play_methods:
                    worker_imports[method] = {k: v for k, v in results[method]['probe'].items() if k.endswith('_imported')}
                print('imported in the next worker after each warm-up: %s' % worker_imports, flush=True)
                for index in range(profile['play_rounds']):
                    order = play_methods[index % len(play_methods) :] + play_methods[: index % len(play_methods)]
                    for method in order:
                        base = method.removesuffix('-pre')
                        if base in services:  # the service's credentials cache kept warm: the cold case is measured apart
                            wire_pieces(col, services[base])
                        wall, task, host_call = run_play(lab, work, play_files[method], method, preimport=method.endswith('-pre'))
                        plays[method]['wall'].append(wall)
                        plays[method]['task'].append(task)
                        plays[method]['host_call'].append(host_call)
                        plays[method]['controller'].append(task - host_call if task is not None and host_call is not None else None)
                    print('playbook round %d: %s' % (index + 1, ', '.join('%s %.2f s' % (m, plays[m]['task'][-1]) for m in play_methods)), flush=True)
        for index in range(profile['cold']):
            for scheme in ('http', 'https') if index % 2 == 0 else ('https', 'http'):
                with col.repo_service.RepoService(store, tls=scheme == 'https') as service:
                    anonymous = service.get('/v1/about', user=None)  # the worker's first request, without Argon2 (401)
                    if anonymous.status_code != 401:
                        raise SystemExit('the service answered /v1/about without credentials with %d' % anonymous.status_code)
                    cold[scheme].append(in_process.run(task_args(col, scheme, store, service, pem_text)))
    finally:
        lab.down()
    steal_after = cpu_steal()
    argon2 = []
    phc = col.auth.hash_password(password)
    for _number in range(5):
        began = time.perf_counter()
        col.auth.verify_password(phc, password)
        argon2.append(time.perf_counter() - began)
    imports = []
    probe = 'import time, ansible_collections.exup.fleet.plugins.action.exup_info; t = time.perf_counter(); import requests; print(time.perf_counter() - t)'
    for _number in range(5):
        env = dict(os.environ, PYTHONPATH=str(ROOT / 'build' / 'collections'))
        proc = subprocess.run([sys.executable, '-c', probe], env=env, capture_output=True, text=True, check=True)
        imports.append(float(proc.stdout.strip().splitlines()[-1]))
    total_jiffies = steal_after[0] - steal_before[0]

    report = build_report(profile, counts, rounds_in_process, pieces, plays, cold, argon2, imports)
    report.update(
        worker_imports=worker_imports,
        answer_bytes=answer_bytes,
        date=datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ'),
        command='bash benchmarks/run_remote.sh %s' % ' '.join(sys.argv[1:] if argv is None else argv),
        preimport_requests=args.preimport_requests,
        seconds=time.monotonic() - session_started,
        loadavg_before=load_before,
        loadavg_after=os.getloadavg(),
        steal_percent=100.0 * (steal_after[1] - steal_before[1]) / total_jiffies if total_jiffies else None,
        cpus=os.cpu_count(),
        python=platform.python_version(),
        kernel=platform.release(),
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = 'remote-%s' % report['date'].replace(':', '').replace('-', '')
    (RESULTS_DIR / (stem + '.json')).write_text(json.dumps(report, indent=1, default=str) + '\n')
    text = markdown(report)
    (RESULTS_DIR / (stem + '.md')).write_text(text)
    print(text)
    print('results: %s.json / .md' % (RESULTS_DIR / stem))
    return 0


def build_report(profile, counts, rounds_in_process, pieces, plays, cold, argon2, imports):
    report = {'profile': profile, 'store': counts, 'in_process': {}, 'calls': {}, 'wire': {}, 'playbook': {}, 'cold': {}}
    for method, runs in rounds_in_process.items():
        report['in_process'][method] = {
            'act': summary([run['seconds'] for run in runs]),
            'repository': summary([run['repository_seconds'] for run in runs]),
            'connections': sorted({run['connections'] for run in runs}, key=str),
            'requests': sorted({run['requests'] for run in runs}, key=str),
            'sequence': call_sequence(runs[0]) if runs else [],
        }
        report['calls'][method] = {name: summary(values) for name, values in call_table(runs).items()}
    for scheme, values in pieces.items():
        report['wire'][scheme] = {name: summary(seconds) for name, seconds in values.items()}
    for method, values in plays.items():
        report['playbook'][method] = {name: summary(seconds) for name, seconds in values.items()}
    for scheme, runs in cold.items():
        report['cold'][scheme] = {
            'act': summary([run['seconds'] for run in runs]),
            'repository': summary([run['repository_seconds'] for run in runs]),
            'exists': summary([seconds for run in runs for name, seconds in run['calls'] if name == 'exists']),
        }
    report['argon2_verify'] = summary(argon2)
    report['import_requests'] = summary(imports)
    local = report['in_process']['local']['repository']
    report['ratios'] = {}
    for method in ('http', 'https'):
        remote = report['in_process'][method]['repository']
        if local and remote:
            report['ratios'][method + '/local repository side'] = remote['p50_ms'] / local['p50_ms']
        if report['playbook'][method]['task'] and report['playbook']['local']['task']:
            report['ratios'][method + '/local task'] = report['playbook'][method]['task']['p50_ms'] / report['playbook']['local']['task']['p50_ms']
    return report


def markdown(report):
    lines = []
    store = report['store']
    lines.append(
        'store: %d packages (%d for the lab host), %d servers of %d managers, %d events'
        % (store['packages'], store['packages_for_lab_host'], store['servers'], store['managers'], store['events'])
    )
    lines.append('')
    lines.append('In process, %d rounds: exup_info act(), ms, p50 (min - max)' % report['profile']['rounds'])
    lines.append('')
    lines.append('| method | repository calls | whole act() | connections / requests per task | remote / local (repository) |')
    lines.append('|---|---|---|---|---|')
    for method in METHODS:
        data = report['in_process'][method]
        ratio = report['ratios'].get(method + '/local repository side')
        conn = '%s / %s' % (','.join(map(str, data['connections'])), ','.join(map(str, data['requests']))) if method != 'local' else '-'
        lines.append('| %s | %s | %s | %s | %s |' % (method, fmt(data['repository']), fmt(data['act']), conn, '%.1fx' % ratio if ratio else '1.0x'))
    lines.append('')
    lines.append('Per call, ms, p50 (min - max):')
    lines.append('')
    lines.append('| call | ' + ' | '.join(METHODS) + ' |')
    lines.append('|---|' + '---|' * len(METHODS))
    for name in report['in_process']['local']['sequence'] or report['calls']['local']:
        if any(name in report['calls'][method] for method in METHODS):
            row = [fmt(report['calls'][method].get(name), 2) for method in METHODS]
            lines.append('| %s | %s |' % (name, ' | '.join(row)))
    lines.append('')
    lines.append('Wire pieces, ms, p50 (min - max):')
    lines.append('')
    names = ('tcp_connect', 'tls_context', 'tls_handshake', 'about_new_session', 'about_warm')
    lines.append('| scheme | ' + ' | '.join(names) + ' |')
    lines.append('|---|' + '---|' * len(names))
    for scheme, data in report['wire'].items():
        lines.append('| %s | %s |' % (scheme, ' | '.join(fmt(data.get(name), 2) for name in names)))
    lines.append('')
    if any(data['task'] for data in report['playbook'].values()):
        lines.append('ansible-playbook, one exup_info task on one lab host, %d rounds, s, p50 (min - max):' % report['profile']['play_rounds'])
        lines.append('')
        lines.append('| method | task | host call (inventory) | task - host call | ansible-playbook | task / local | (task - host call) - none |')
        lines.append('|---|---|---|---|---|---|---|')
        playbook = report['playbook']
        for method, data in playbook.items():
            ratio = '%.2fx' % (data['task']['p50_ms'] / playbook['local']['task']['p50_ms']) if method != 'none' else ''
            extra = ''
            if method != 'none' and data['controller'] and playbook['none']['controller']:
                extra = '%+.3f' % ((data['controller']['p50_ms'] - playbook['none']['controller']['p50_ms']) / 1000)
            cells = [seconds(data[name]) for name in ('task', 'host_call', 'controller', 'wall')]
            lines.append('| %s | %s | %s | %s | %s | %s | %s |' % (method, *cells, ratio, extra))
        lines.append('')
    if any(report['cold'][scheme]['act'] for scheme in report['cold']):
        lines.append('Cold service (restarted before each sample: Argon2id on the first request), ms, p50 (min - max):')
        lines.append('')
        lines.append('| scheme | exists (about) | repository calls | whole act() |')
        lines.append('|---|---|---|---|')
        for scheme, data in report['cold'].items():
            lines.append('| %s | %s | %s | %s |' % (scheme, fmt(data['exists']), fmt(data['repository']), fmt(data['act'])))
        lines.append('')
    lines.append(
        'load average before %.1f %.1f %.1f, after %.1f %.1f %.1f; hypervisor steal %.1f %% of CPU time; %d CPUs, Python %s; %.0f s in all'
        % (*report['loadavg_before'], *report['loadavg_after'], report['steal_percent'] or 0, report['cpus'], report['python'], report['seconds'])
    )
    if report.get('answer_bytes'):
        lines.append('JSON answer sizes: %s' % ', '.join('%s %d bytes' % item for item in report['answer_bytes'].items()))
    if report.get('worker_imports'):
        lines.append('imported in the next task\'s worker after an exup_info (forked from the main process): %s' % json.dumps(report['worker_imports']))
    shown = 'Argon2id verify in process: %s ms; import requests after the action plugin: %s ms'
    lines.append(shown % (fmt(report['argon2_verify']), fmt(report['import_requests'])))
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    raise SystemExit(main())
