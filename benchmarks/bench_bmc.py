# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of BMC updates (issue 4, item 6). It measures; it asserts nothing.

    bash benchmarks/run_bmc.sh            # 50 emulated Redfish BMCs, 3 rounds
    bash benchmarks/run_bmc.sh --quick    # 10 BMCs, 1 round

Each BMC is a sushy-tools Redfish emulator extended with an UpdateService
(tests/services/redfish.py), over HTTPS with Basic auth, several processes of
BMCs so the emulators are not bound to one core. In the same session, and in
alternating order, the same BIOS image (a signed package of kind bmc) goes to
every BMC:

- exup: ansible-playbook, one host per BMC, forks = number of BMCs, one task
  exup.fleet.exup_apply via: bmc (read the inventory, plan, verify the package,
  push it to MultipartHttpPushUri, follow the task, read the versions again);
- curl: the same multipart push by curl to every BMC in parallel, then curl
  polling each task until it is Completed;
- ansible-floor (context): the same ansible-playbook, inventory and forks with one
  ``ansible.builtin.command: true`` task per host, what Ansible alone costs.

Fresh BMCs (firmware back to 1.00) are started before every timed run and are
not timed. Results go to benchmarks/results/bmc-*.json and .md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / 'benchmarks' / 'results'
EMULATOR = REPO_ROOT / 'tests' / 'services' / 'redfish.py'
MODEL = 'Express5800/R120h-1M'
PROFILES = {'full': {'bmcs': 50, 'rounds': 3}, 'quick': {'bmcs': 10, 'rounds': 1}}
PUSH_PATH = '/redfish/v1/UpdateService/update-multipart'
BIOS_TARGET = '/redfish/v1/UpdateService/FirmwareInventory/BIOS'

FLOOR_PLAY = '''- hosts: bmcs
  gather_facts: false
  tasks:
    - name: What Ansible alone costs per host
      ansible.builtin.command: 'true'
      changed_when: true
'''

PLAY = '''- hosts: bmcs
  gather_facts: false
  tasks:
    - name: Update the BIOS through the BMC
      exup.fleet.exup_apply:
        via: bmc
        repository: {repo}
        trusted_keys: [{pem}]
        bmc_address: 127.0.0.1
        bmc_port: "{{{{ bmc_port }}}}"
        bmc_username: "{{{{ bmc_user }}}}"
        bmc_password: "{{{{ bmc_password }}}}"
        bmc_ca_path: "{{{{ bmc_ca }}}}"
        modules: [system-bios]
      register: applied
      failed_when: applied.failed or (applied.results | map(attribute='status') | list) != ['succeeded']
'''


class Emulators:
    """Fresh emulator processes serving ``count`` BMCs; stopped with stop()."""

    def __init__(self, count, processes):
        self.procs, self.bmcs = [], []
        sizes = [count // processes + (1 if index < count % processes else 0) for index in range(processes)]
        for size in (size for size in sizes if size):
            proc = subprocess.Popen(
                [sys.executable, str(EMULATOR), '--count', str(size), '--model', MODEL],
                stdout=subprocess.PIPE,
                text=True,
                env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / 'build' / 'collections')),
            )
            self.procs.append(proc)
            for index in range(size):
                line = proc.stdout.readline()
                if not line:
                    self.stop()
                    raise SystemExit('the Redfish emulator stopped while starting BMC %d' % (index + 1))
                self.bmcs.append(json.loads(line))

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def make_repository(work):
    sys.path.insert(0, str(REPO_ROOT / 'build' / 'collections'))
    from ansible_collections.exup.fleet.plugins.module_utils._exup import signing
    from ansible_collections.exup.fleet.plugins.module_utils._exup.package import PackageInfo, build_package_from_bytes
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository

    key = signing.SigningKey.generate()
    key.save(str(work / 'vendor.key'), str(work / 'vendor.pem'))
    info = PackageInfo('bench-bios-1.10', 'system-bios', 'System BIOS', '1.10', '2026-01-10', [MODEL], ['any'], 'bmc', True, True, True, False, '', '')
    package = work / 'bios-1.10.zip'
    build_package_from_bytes({'firmware/bios.rom': os.urandom(8 * 1024 * 1024)}, info, key, str(package))
    keyring = signing.KeyRing.from_pem_list([str(work / 'vendor.pem')])
    results = Repository(str(work / 'repo')).add_files([str(package)], keyring, mode='pinned')
    if results[0]['result'] != 'added':
        raise SystemExit('the repository refused the package: %s' % results[0])
    return work / 'repo', work / 'vendor.pem', package


def forget_bmc_state(repo):
    """Fresh BMCs run firmware 1.00 again: drop what the repository remembers of the last round (staged 1.10)."""
    import sqlite3

    conn = sqlite3.connect(str(Path(repo) / 'repo.db'))
    try:
        conn.execute('DELETE FROM bmc_modules')
        conn.commit()
    finally:
        conn.close()


#: play -> CPU seconds (user + system) of ansible-playbook and its workers per host, one entry per run
CPU_PER_HOST: dict = {}


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_exup(work, bmcs, repo, pem, play=PLAY):
    forget_bmc_state(repo)
    inventory = {'bmcs': {'hosts': {}}}
    for index, bmc in enumerate(bmcs):
        inventory['bmcs']['hosts']['bmc%03d' % (index + 1)] = {
            'ansible_connection': 'local',
            'ansible_python_interpreter': sys.executable,
            'bmc_port': bmc['port'],
            'bmc_user': bmc['user'],
            'bmc_password': bmc['password'],
            'bmc_ca': bmc['ca'],
        }
    (work / 'inventory.json').write_text(json.dumps(inventory))
    (work / 'bmc.yml').write_text(play.format(repo=repo, pem=pem))
    env = dict(
        os.environ,
        ANSIBLE_FORKS=str(len(bmcs)),
        ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / 'build' / 'collections'),
        ANSIBLE_HOST_KEY_CHECKING='False',
        ANSIBLE_LOCALHOST_WARNING='False',
    )
    env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')
    started, cpu_before = time.monotonic(), _children_cpu()
    proc = subprocess.run(
        ['ansible-playbook', '-i', str(work / 'inventory.json'), str(work / 'bmc.yml')], env=env, cwd=str(work), capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - started
    CPU_PER_HOST.setdefault(play, []).append((_children_cpu() - cpu_before) / len(bmcs))
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit('exup run failed (exit %d)' % proc.returncode)
    return elapsed


def curl_one(bmc, package):
    """Push by curl, then poll the task by curl until it ends."""
    base = ['curl', '-sS', '--fail-with-body', '--cacert', bmc['ca'], '-u', '%s:%s' % (bmc['user'], bmc['password'])]
    parameters = json.dumps({'Targets': [BIOS_TARGET], '@Redfish.OperationApplyTime': 'OnReset'})
    pushed = subprocess.run(
        base + ['-F', 'UpdateParameters=%s;type=application/json' % parameters, '-F', 'UpdateFile=@%s' % package, bmc['url'] + PUSH_PATH],
        capture_output=True,
        text=True,
        check=True,
    )
    task_url = bmc['url'] + json.loads(pushed.stdout)['@odata.id']
    while True:
        state = json.loads(subprocess.run(base + [task_url], capture_output=True, text=True, check=True).stdout)['TaskState']
        if state == 'Completed':
            return
        if state in ('Exception', 'Killed', 'Cancelled'):
            raise SystemExit('curl flow: task ended %s' % state)
        time.sleep(0.5)


def run_curl(bmcs, package):
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(bmcs)) as pool:
        for future in [pool.submit(curl_one, bmc, package) for bmc in bmcs]:
            future.result()
    return time.monotonic() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='10 BMCs, 1 round')
    parser.add_argument('--bmcs', type=int, help='number of BMCs (default 50, quick 10)')
    parser.add_argument('--rounds', type=int, help='rounds (default 3, quick 1)')
    parser.add_argument('--processes', type=int, default=2, help='emulator processes the BMCs are spread over')
    parser.add_argument('--dir', default=str(REPO_ROOT / 'build' / 'bench-bmc'), help='work folder (recreated)')
    args = parser.parse_args(argv)
    profile = dict(PROFILES['quick' if args.quick else 'full'])
    profile['bmcs'] = args.bmcs or profile['bmcs']
    profile['rounds'] = args.rounds or profile['rounds']
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    repo, pem, package = make_repository(work)
    methods = ('exup', 'curl', 'ansible-floor')
    load_at_start = os.getloadavg()
    times = {method: [] for method in methods}
    for index in range(profile['rounds']):
        for method in methods if index % 2 == 0 else tuple(reversed(methods)):
            emulators = Emulators(profile['bmcs'], args.processes)
            try:
                if method == 'curl':
                    elapsed = run_curl(emulators.bmcs, package)
                else:
                    elapsed = run_exup(work, emulators.bmcs, repo, pem, PLAY if method == 'exup' else FLOOR_PLAY)
            finally:
                emulators.stop()
            times[method].append(elapsed)
            print('round %d %-4s %.1f s' % (index + 1, method, elapsed), flush=True)
    medians = {method: statistics.median(values) for method, values in times.items()}
    ratio = medians['exup'] / medians['curl']
    now = datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')
    result = {
        'ratio_ansible_floor': medians['exup'] / medians['ansible-floor'],
        'date': now,
        'bmcs': profile['bmcs'],
        'rounds': profile['rounds'],
        'image_bytes': package.stat().st_size,
        'times': times,
        'medians': medians,
        'ratio': ratio,
        'loadavg': os.getloadavg(),
        'loadavg_at_start': load_at_start,
        'cpu_per_host': {'exup': CPU_PER_HOST.get(PLAY, []), 'ansible-floor': CPU_PER_HOST.get(FLOOR_PLAY, [])},
        'cpus': os.cpu_count(),
        'python': platform.python_version(),
        'command': 'bash benchmarks/run_bmc.sh%s' % (' --quick' if args.quick else ''),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = 'bmc-%s-%d' % (result['date'].replace(':', ''), profile['bmcs'])
    (RESULTS_DIR / (stem + '.json')).write_text(json.dumps(result, indent=1) + '\n')
    table = ['| method | runs (s) | median (s) |', '|---|---|---|']
    for method in ('curl', 'ansible-floor', 'exup'):
        table.append('| %s | %s | %.1f |' % (method, ', '.join('%.1f' % value for value in times[method]), medians[method]))
    table.append('')
    line = 'ratio exup / curl: **%.2f**; exup / ansible-floor: %.2f; %d BMCs, image %.1f MiB, %d round(s); load average at the end %.1f %.1f %.1f'
    table.append(
        line % ((ratio, medians['exup'] / medians['ansible-floor'], profile['bmcs'], package.stat().st_size / 1048576.0, profile['rounds']) + os.getloadavg())
    )
    cpu = {method: statistics.median(result['cpu_per_host'][method]) for method in ('exup', 'ansible-floor')}
    table.append(
        'CPU per host (ansible-playbook and its workers, median): exup %.2f s, ansible-floor %.2f s; load average at the start %.1f %.1f %.1f'
        % ((cpu['exup'], cpu['ansible-floor']) + load_at_start)
    )
    (RESULTS_DIR / (stem + '.md')).write_text('\n'.join(table) + '\n')
    print('\n'.join(table))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
