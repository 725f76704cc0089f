# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's job runner and the on-host file formats it shares with ``agent.py``.

Standard library only: this file is also the agent's executable
(``/opt/exup/agent/bin/exup-agent``, shipped in the update-agent package by
``agentpkg.py``), started detached by ``exup_host`` for each apply job. See
docs/agent.md for the contract (layout, lease, cancel, journal, state).

A started package always runs to its end; before each package the runner
checks the cancel request, then the controller's lease (003 §3.5.1, §4.1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

AGENT_DIR = 'opt/exup/agent'
STATE_DIR = 'var/lib/exup'
JOURNAL_VERSION = 1
OUTPUT_TAIL = 2000

#: item statuses in a journal (003 Table 8 words in docs)
WAITING, RUNNING, SUCCEEDED, FAILED, CANCELLED = 'waiting', 'running', 'succeeded', 'failed', 'cancelled'
CAUSE_USER = 'cancelled by the user'
CAUSE_LEASE = 'communication with the manager lost'
CAUSE_EARLIER = 'an earlier package failed'


class Layout:
    """Paths of the agent below a host root ('/' on a real server)."""

    def __init__(self, root='/'):
        self.root = os.path.abspath(root or '/')

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def env_root(self):
        """The root as install scripts see it: no trailing slash, empty for '/'."""
        return '' if self.root == '/' else self.root.rstrip('/')

    @property
    def agent_dir(self):
        return self.path(AGENT_DIR)

    @property
    def runner(self):
        return self.path(AGENT_DIR, 'bin', 'exup-agent')

    @property
    def state_dir(self):
        return self.path(STATE_DIR)

    @property
    def state_file(self):
        return self.path(STATE_DIR, 'state.json')

    @property
    def inbox(self):
        return self.path(STATE_DIR, 'inbox')

    @property
    def jobs(self):
        return self.path(STATE_DIR, 'jobs')

    @property
    def log_dir(self):
        return self.path(STATE_DIR, 'log')

    @property
    def boot_id_file(self):
        return self.path('proc', 'sys', 'kernel', 'random', 'boot_id')

    def job_dir(self, job_id):
        return os.path.join(self.jobs, job_id)


def now():
    return time.time()


def write_json(path, data):
    """Atomic replace: a reader sees the old or the new file, never half of one."""
    tmp = '%s.tmp.%d' % (path, os.getpid())
    with open(tmp, 'w') as handle:
        json.dump(data, handle, sort_keys=True, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def boot_id(layout):
    return read_text(layout.boot_id_file) or ''


def write_lease(job_dir, seconds):
    """The controller is present for ``seconds`` more (written by every poll)."""
    tmp = os.path.join(job_dir, 'lease.tmp.%d' % os.getpid())
    with open(tmp, 'w') as handle:
        handle.write('%.3f\n' % (now() + seconds))
    os.replace(tmp, os.path.join(job_dir, 'lease'))


def lease_expired(job_dir):
    text = read_text(os.path.join(job_dir, 'lease'))
    try:
        return now() > float(text)
    except (TypeError, ValueError):
        return True


def cancel_requested(job_dir):
    return os.path.exists(os.path.join(job_dir, 'cancel'))


def log(layout, message):
    os.makedirs(layout.log_dir, exist_ok=True)
    with open(os.path.join(layout.log_dir, 'agent.log'), 'a') as handle:
        handle.write('%s %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), message))


def load_state(layout):
    state = read_json(layout.state_file, {}) or {}
    state.setdefault('modules', {})
    return state


def record_item_in_state(layout, item, current_boot):
    """What a finished item means for its module: previous generation, block until reboot."""
    state = load_state(layout)
    module = state['modules'].setdefault(item['module_id'], {})
    if item['status'] == SUCCEEDED:
        # the same version applied again (003 §2.1.1.2) keeps the previous generation it had
        if item['action'] == 'install' and item.get('from_version') and item['from_version'] != item.get('to_version'):
            module['previous'] = item['from_version']
        if item['reboot_required']:
            module.update(block='reboot_required', boot_id=current_boot, staged=item.get('to_version'),
                          action=item['action'], package_id=item['package_id'])
    elif item['status'] == FAILED:
        module.update(block='apply_failed', boot_id=current_boot, cause=item.get('cause', ''), package_id=item['package_id'])
    write_json(layout.state_file, state)


def _finish_rest(journal, start, cause):
    for item in journal['items'][start:]:
        if item['status'] == WAITING:
            item.update(status=CANCELLED, cause=cause, finished=now())


def script_env(layout, action, module_id, version, package_id=''):
    """The environment a package script runs with (docs/agent.md, "How a package runs")."""
    return dict(os.environ, EXUP_ROOT=layout.env_root, EXUP_ACTION=action, EXUP_MODULE=module_id, EXUP_VERSION=version or '',
                EXUP_PACKAGE_ID=package_id or '', EXUP_AGENT_DIR=layout.agent_dir)


def _run_item(layout, job_dir, index, item):
    work = os.path.join(job_dir, 'work', str(index))
    os.makedirs(os.path.join(job_dir, 'output'), exist_ok=True)
    output_path = os.path.join(job_dir, 'output', '%d.log' % index)
    env = script_env(layout, item['action'], item['module_id'], item['to_version'] or item.get('from_version'), item['package_id'])
    with open(output_path, 'wb') as output:
        try:
            # Standard library only (this file is the agent's executable): no AnsibleModule.run_command here.
            code = subprocess.call(['/bin/sh', '-c', item['command']], cwd=work, env=env,  # pylint: disable=ansible-bad-function
                                   stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)
        except OSError as exc:
            output.write(('cannot run the command: %s\n' % exc).encode())
            code = 127
    with open(output_path, 'rb') as output:
        tail = output.read()[-OUTPUT_TAIL:].decode('utf-8', 'replace').strip()
    return code, tail


def run_job(layout, job_id):
    """Run every item of a job in order; the journal tells the manager how it went."""
    job_dir = layout.job_dir(job_id)
    journal_path = os.path.join(job_dir, 'journal.json')
    journal = read_json(journal_path)
    journal.update(state='running', runner_pid=os.getpid(), started=now())
    write_json(journal_path, journal)
    current_boot = boot_id(layout)
    log(layout, 'job %s started with %d package(s)' % (job_id, len(journal['items'])))
    for index, item in enumerate(journal['items']):
        if item['status'] != WAITING:
            continue
        cause = CAUSE_USER if cancel_requested(job_dir) else CAUSE_LEASE if lease_expired(job_dir) else None
        if cause:
            _finish_rest(journal, index, cause)
            log(layout, 'job %s: %s; the remaining packages are cancelled' % (job_id, cause))
            break
        item.update(status=RUNNING, started=now())
        write_json(journal_path, journal)
        log(layout, 'job %s: %s %s %s started' % (job_id, item['action'], item['package_id'], item['to_version']))
        code, tail = _run_item(layout, job_dir, index, item)
        item.update(exit_code=code, output_tail=tail, finished=now())
        if code == 0:
            item['status'] = SUCCEEDED
        else:
            item.update(status=FAILED, cause='exit status %d: %s' % (code, tail.splitlines()[-1] if tail else 'no output'))
        record_item_in_state(layout, item, current_boot)
        log(layout, 'job %s: %s %s %s (%s)' % (job_id, item['action'], item['package_id'], item['status'], item.get('cause', 'ok')))
        if item['status'] == FAILED:
            _finish_rest(journal, index + 1, CAUSE_EARLIER)
            write_json(journal_path, journal)
            break
        write_json(journal_path, journal)
    journal.update(state='finished', finished=now())
    write_json(journal_path, journal)
    log(layout, 'job %s finished' % job_id)
    return journal


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4 or argv[0] != 'run' or argv[1] != '--root':
        sys.stderr.write('usage: exup-agent run --root ROOT JOB_ID\n')
        return 2
    run_job(Layout(argv[2]), argv[3])
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
