# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of a group apply over the lab (issue 3, item 7). It measures; it asserts nothing.

    bash benchmarks/run_fleet.sh            # 100 lab hosts, forks 20, 3 rounds
    bash benchmarks/run_fleet.sh --quick    # 20 hosts, 1 round

The lab (tests/lab) runs N managed hosts over real ssh on 127.0.1.x. The agent is
installed on each first (not timed). Then, in the same session and interleaved
(the order alternates every round, so a slow spell hits both):

- exup: one play, one task per host: exup.fleet.exup_apply of three packages
  (raid-controller 5.0 -> 5.1, raid-utility (install) 3.1.0, fc-controller
  10.1 -> 10.2), each really run by the agent on the host, packages sent from
  the repository, verified again on the host;
- floor: a play of the same shape whose three tasks (one per package) are
  ``ansible.builtin.command: true``;
- exup-scan (for context, not the goal): exup.fleet.exup_info then the same
  exup_apply, as playbooks/apply.yml does before it applies.

Before every exup round the hosts are reset to the versions before the apply
and their inbox is emptied, so every round copies the packages again. Goal:
exup's median wall time at most 1.5x the floor's. Results go to
benchmarks/results/fleet-*.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / 'tests' / 'lab'))
RESULTS_DIR = REPO_ROOT / 'benchmarks' / 'results'
MODULES = ('raid-controller', 'raid-utility', 'fc-controller')
PROFILES = {'full': {'hosts': 100, 'rounds': 3}, 'quick': {'hosts': 20, 'rounds': 1}}

AGENT_PLAY = '''- hosts: managed
  gather_facts: false
  tasks:
    - name: Install the agent (not timed)
      exup.fleet.exup_agent:
        repository: {repo}
        trusted_keys: [{pem}]
        host_root: "{{{{ exup_host_root }}}}"
        license_accepted: true
'''

APPLY_TASK = '''    - name: Apply three packages
      exup.fleet.exup_apply:
        repository: {repo}
        trusted_keys: [{pem}]
        host_root: "{{{{ exup_host_root }}}}"
        modules: [{modules}]
      register: applied
      failed_when: applied.failed or (applied.results | selectattr('status', 'equalto', 'succeeded') | list | length) != 3
'''

EXUP_PLAY = (
    '''- hosts: managed
  gather_facts: false
  tasks:
'''
    + APPLY_TASK
)

SCAN_PLAY = (
    '''- hosts: managed
  gather_facts: false
  tasks:
    - name: Scan (versions and statuses)
      exup.fleet.exup_info:
        repository: {repo}
        host_root: "{{{{ exup_host_root }}}}"
'''
    + APPLY_TASK
)

FLOOR_PLAY = '''- hosts: managed
  gather_facts: false
  tasks:
    - name: Package 1
      ansible.builtin.command: 'true'
      changed_when: true
    - name: Package 2
      ansible.builtin.command: 'true'
      changed_when: true
    - name: Package 3
      ansible.builtin.command: 'true'
      changed_when: true
'''


def reset_hosts(lab):
    """Back to the versions before the apply, with an empty inbox and no job or block."""
    for name in lab.names:
        root = lab.host_root(name)
        (root / 'sys/class/scsi_host/host0/version_fw').write_text('5.0\n')
        (root / 'sys/class/scsi_host/host1/fw_version').write_text('10.1\n')
        for path in ('var/lib/exup/inventory/raid-utility', 'var/lib/exup/state.json', 'var/lib/exup/current_job'):
            (root / path).unlink(missing_ok=True)
        for folder in ('var/lib/exup/inbox', 'var/lib/exup/jobs', 'var/lib/exup-lab/staged'):
            shutil.rmtree(root / folder, ignore_errors=True)
            (root / folder).mkdir(parents=True)


def run_play(lab, play, label):
    env = lab.env()
    started = time.monotonic()
    proc = subprocess.run(['ansible-playbook', str(play)], env=env, cwd=str(play.parent), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit('%s failed (exit %d)' % (label, proc.returncode))
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='20 hosts, 1 round')
    parser.add_argument('--hosts', type=int, help='number of lab hosts (default 100, quick 20)')
    parser.add_argument('--rounds', type=int, help='rounds of exup and floor (default 3, quick 1)')
    parser.add_argument('--with-scan', action='store_true', help='also time exup_info + exup_apply (context, not the goal)')
    parser.add_argument('--dir', default=str(REPO_ROOT / 'build' / 'bench-fleet'), help='work folder (recreated)')
    args = parser.parse_args(argv)
    profile = dict(PROFILES['quick' if args.quick else 'full'])
    profile['hosts'] = args.hosts or profile['hosts']
    profile['rounds'] = args.rounds or profile['rounds']
    from lab import Lab  # tests/lab/lab.py, on sys.path above

    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lab = Lab(work / 'lab', hosts=profile['hosts'])
    lab.up()
    try:
        repo, pem = lab.make_repository(work / 'repo')
        values = {'repo': repo, 'pem': pem, 'modules': ', '.join(MODULES)}
        plays = {}
        for name, text in (('agent', AGENT_PLAY), ('exup', EXUP_PLAY), ('exup-scan', SCAN_PLAY), ('floor', FLOOR_PLAY)):
            plays[name] = work / ('%s.yml' % name)
            plays[name].write_text(text.format(**values))
        print('lab up: %d hosts; installing the agent (not timed)' % profile['hosts'], flush=True)
        run_play(lab, plays['agent'], 'agent install')
        methods = ('exup', 'floor', 'exup-scan') if args.with_scan else ('exup', 'floor')
        times = {method: [] for method in methods}
        for index in range(profile['rounds']):
            order = methods if index % 2 == 0 else tuple(reversed(methods))
            for method in order:
                if method.startswith('exup'):
                    reset_hosts(lab)
                elapsed = run_play(lab, plays[method], method)
                times[method].append(elapsed)
                print('round %d %-5s %.1f s' % (index + 1, method, elapsed), flush=True)
    finally:
        lab.down()
    medians = {method: statistics.median(values) for method, values in times.items()}
    ratio = medians['exup'] / medians['floor']
    result = {
        'date': datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'hosts': profile['hosts'],
        'forks': 20,
        'rounds': profile['rounds'],
        'packages_per_host': len(MODULES),
        'times': times,
        'medians': medians,
        'ratio': ratio,
        'ratio_scan': medians['exup-scan'] / medians['floor'] if 'exup-scan' in medians else None,
        'loadavg': os.getloadavg(),
        'goal': 'exup <= 1.5 x floor',
        'met': ratio <= 1.5,
        'cpus': os.cpu_count(),
        'python': platform.python_version(),
        'command': 'bash benchmarks/run_fleet.sh%s' % (' --quick' if args.quick else ''),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = 'fleet-%s-%dh' % (result['date'].replace(':', ''), profile['hosts'])
    (RESULTS_DIR / (stem + '.json')).write_text(json.dumps(result, indent=1) + '\n')
    table = ['| method | runs (s) | median (s) |', '|---|---|---|']
    for method in [name for name in ('floor', 'exup', 'exup-scan') if name in times]:
        table.append('| %s | %s | %.1f |' % (method, ', '.join('%.1f' % value for value in times[method]), medians[method]))
    table.append('')
    line = 'ratio exup / floor: **%.2f** (goal <= 1.5: %s); %d hosts, forks 20, %d packages per host, %d round(s)'
    verdict = 'met' if ratio <= 1.5 else 'MISSED'
    table.append(line % (ratio, verdict, profile['hosts'], len(MODULES), profile['rounds']))
    if 'exup-scan' in medians:
        table.append('exup-scan (exup_info + exup_apply) / floor: %.2f' % (medians['exup-scan'] / medians['floor']))
    table.append('load average at the end (1, 5, 15 min): %.1f %.1f %.1f' % os.getloadavg())
    (RESULTS_DIR / (stem + '.md')).write_text('\n'.join(table) + '\n')
    print('\n'.join(table))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
