# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent under faults (issue 8 item 8): a killed runner, huge script output, a full state folder.

Real processes throughout: the runner runs as its own process and is killed with SIGKILL, scripts
write real output, and the full disk is a real tmpfs mounted on the host root's var/lib/exup (the
tests that need it are skipped where mounting is not permitted).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent, agent_runner

JOB = 'job-1'
BOOT_ID = '0f6c9b1e-5d3a-4c2b-9a8e-7f1d2c3b4a5e'


def entry(package_id, module_id='system-bios', reboot_required=False):
    return {
        'package_id': package_id,
        'module_id': module_id,
        'action': 'install',
        'from_version': '1.0',
        'to_version': '2.0',
        'reboot_required': reboot_required,
        'command': 'sh run.sh',
        'status': 'waiting',
    }


class Root:
    """A host root below tmp_path with one job laid out as exup_host phase=start does."""

    def __init__(self, path):
        self.root = path
        self.layout = agent_runner.Layout(str(path))
        self.host = agent.Host(str(path))
        boot = path / 'proc' / 'sys' / 'kernel' / 'random' / 'boot_id'
        boot.parent.mkdir(parents=True)
        boot.write_text(BOOT_ID + '\n')

    @property
    def state_dir(self):
        return self.root / 'var' / 'lib' / 'exup'

    @property
    def job_dir(self):
        return self.state_dir / 'jobs' / JOB

    def job(self, items, scripts, reserve=False):
        for index, script in enumerate(scripts):
            work = self.job_dir / 'work' / str(index)
            work.mkdir(parents=True)
            (work / 'run.sh').write_text(script + '\n')
        journal = {'version': 1, 'job_id': JOB, 'state': 'queued', 'created': time.time(), 'boot_id': BOOT_ID, 'items': items}
        (self.job_dir / 'journal.json').write_text(json.dumps(journal))
        (self.job_dir / 'lease').write_text('%.3f\n' % (time.time() + 300))
        (self.state_dir / 'current_job').write_text(JOB + '\n')
        if reserve:
            agent.reserve_space(str(self.job_dir / 'reserve'), agent_runner.RESERVE_BYTES)

    def journal(self):
        return json.loads((self.job_dir / 'journal.json').read_text())

    def written(self):
        """The files a read must not touch: journal and state."""
        return {name: (self.job_dir / name).read_bytes() if (self.job_dir / name).exists() else None for name in ('journal.json',)} | {
            'state.json': (self.state_dir / 'state.json').read_bytes() if (self.state_dir / 'state.json').exists() else None
        }

    def start_runner(self):
        # its own session, as exup_host starts it; killed below by its own pid only
        return subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, agent_runner.__file__, 'run', '--root', str(self.root), JOB],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError('timed out; journal: %s' % self.journal())

    def kill_runner_while_item_runs(self, index=0):
        """Start the runner, SIGKILL it once item ``index`` has its script running; return that item."""
        proc = self.start_runner()
        item = self.wait_for(lambda: self.journal()['items'][index] if self.journal()['items'][index].get('script_pid') else None)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return item


@pytest.fixture
def host(tmp_path):
    return Root(tmp_path / 'host')


def pid_gone(pid, start, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not agent_runner.group_alive(pid, start):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------------- a killed runner
def test_a_script_outliving_its_killed_runner_is_applying_until_it_exits_then_its_outcome_is_recorded(host):
    """Before: the job was recovered as apply_failed at once ("restart the server") while the script still ran."""
    host.job([entry('P1'), entry('P2', module_id='bmc-firmware')], ['sleep 2; echo flashed; exit 0', 'true'])
    item = host.kill_runner_while_item_runs()
    assert item['script_start'] is not None and item['script_pid'] > 0
    before = host.written()
    journal = host.host.follow(JOB, 0, 60)  # phase=status
    assert journal['state'] == 'running' and journal['runner_lost'] is True
    assert [(i['package_id'], i['status']) for i in journal['items']] == [('P1', 'running'), ('P2', 'cancelled')]
    states = host.host.states()
    assert states['system-bios'].activity == 'applying' and states['system-bios'].block is None  # no restart advice while it runs
    assert host.host.inventory()['active_job']['runner_lost'] is True
    assert host.written() == before  # reads wrote nothing
    assert pid_gone(item['script_pid'], item['script_start'])
    journal = host.host.follow(JOB, 5, 60)
    assert journal['state'] == 'finished' and journal['recovered'] is True
    first, second = journal['items']
    assert (first['status'], first['exit_code'], first['outcome']) == ('succeeded', 0, 'finished_after_runner_died')
    assert 'flashed' in first['output_tail']
    assert (second['status'], second['cause']) == ('cancelled', 'the agent stopped before this package started')
    assert host.host.states()['system-bios'].previous == '1.0' and host.host.states()['system-bios'].block is None
    assert host.written() == before
    # the write path records it, as the reads showed it
    assert host.host.settle(JOB) == journal == host.journal()
    assert json.loads((host.state_dir / 'state.json').read_text())['modules']['system-bios'] == {'previous': '1.0'}


def test_a_script_failing_after_its_runner_died_blocks_with_its_own_exit_status(host):
    host.job([entry('P1', reboot_required=True)], ['sleep 1; echo "flash write error"; exit 4'])
    item = host.kill_runner_while_item_runs()
    assert host.host.journal(JOB)['items'][0]['status'] == 'running'
    assert pid_gone(item['script_pid'], item['script_start'])
    journal = host.host.journal(JOB)
    first = journal['items'][0]
    assert (first['status'], first['exit_code'], first['outcome']) == ('failed', 4, 'finished_after_runner_died')
    assert first['cause'] == 'exit status 4: flash write error'
    assert host.host.states()['system-bios'].block == 'apply_failed'


@pytest.mark.parametrize('script, grace', [('sleep 60', 5.0), ("trap '' TERM; sleep 60 & wait; sleep 60", 0.3)])
def test_cancel_stops_the_script_a_dead_runner_left_and_records_it_as_killed(host, monkeypatch, script, grace):
    """SIGTERM to the script's process group, then SIGKILL after the grace period (a script that ignores SIGTERM)."""
    monkeypatch.setattr(agent_runner, 'KILL_GRACE_SECONDS', grace)
    host.job([entry('P1')], [script])
    item = host.kill_runner_while_item_runs()
    time.sleep(0.2)  # the script's shell has set its trap
    began = time.monotonic()
    journal, requested = host.host.cancel(JOB)
    assert requested is True and time.monotonic() - began < grace + 5
    assert not agent_runner.group_alive(item['script_pid'], item['script_start'])  # the whole group, the backgrounded sleep too
    first = journal['items'][0]
    assert (journal['state'], first['status'], first['outcome']) == ('finished', 'failed', 'killed')
    assert 'cancel request' in first['cause']
    assert host.journal() == journal
    state = json.loads((host.state_dir / 'state.json').read_text())['modules']['system-bios']
    assert state['block'] == 'apply_failed' and state['boot_id'] == BOOT_ID
    assert host.host.cancel(JOB) == (journal, False)


def test_a_reused_pid_is_not_taken_for_the_script(host):
    """The pid of the script now names another process (this one): its start time tells them apart."""
    host.job([entry('P1')], ['true'])
    journal = host.journal()
    journal['items'][0].update(status='running', script_pid=os.getpid(), script_start=agent_runner.process_start(os.getpid()) - 1)
    journal.update(state='running', runner_pid=os.getpid(), runner_start=agent_runner.process_start(os.getpid()) - 1)
    (host.job_dir / 'journal.json').write_text(json.dumps(journal))
    view = host.host.journal(JOB)
    assert view['state'] == 'finished' and view['items'][0]['outcome'] == 'lost'
    # the same pid with its real start time is alive
    assert agent_runner.process_alive(os.getpid(), agent_runner.process_start(os.getpid()))


def test_a_job_of_an_earlier_boot_is_never_running(host):
    host.job([entry('P1')], ['true'])
    journal = host.journal()
    journal['items'][0].update(status='running', script_pid=os.getpid(), script_start=agent_runner.process_start(os.getpid()))
    journal.update(state='running', runner_pid=os.getpid(), runner_start=agent_runner.process_start(os.getpid()), boot_id='an-older-boot')
    (host.job_dir / 'journal.json').write_text(json.dumps(journal))
    assert host.host.journal(JOB)['state'] == 'finished'


# ---------------------------------------------------------------------------------------------------- bounded output
MEMORY_PROBE = """
import json, resource, sys
from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent_runner
journal = agent_runner.run_job(agent_runner.Layout(sys.argv[1]), sys.argv[2])
# VmHWM, not RUSAGE_SELF: Linux carries ru_maxrss over exec, so it would count the pytest process that forked this one
peak = [int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]
print(json.dumps({'self': peak,
                  'children': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 'item': journal['items'][0]}))
"""


def test_script_output_is_bounded_on_disk_and_in_memory(host):
    """100 MiB of output: before, stored whole and read whole to take its tail (about 200 MiB of RSS)."""
    size = 100 * 1024 * 1024
    host.job([entry('P1')], ['echo first-line; head -c %d /dev/zero | tr "\\0" x; echo; echo last-line' % size])
    probe = subprocess.run(
        [sys.executable, '-c', MEMORY_PROBE, str(host.root), JOB],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )  # ansible-test sets sys.path, not the environment
    assert probe.returncode == 0, probe.stderr
    measured = json.loads(probe.stdout)
    log = host.job_dir / 'output' / '0.log'
    assert log.stat().st_size <= agent_runner.OUTPUT_HEAD + agent_runner.OUTPUT_KEEP + 200
    text = log.read_bytes()
    assert text.startswith(b'first-line\n') and text.endswith(b'\nlast-line\n')
    dropped = size + len('first-line\n\nlast-line\n') - agent_runner.OUTPUT_HEAD - agent_runner.OUTPUT_KEEP
    assert b'[exup: %d bytes of output dropped here]' % dropped in text
    assert measured['item']['status'] == 'succeeded' and measured['item']['output_tail'].endswith('last-line')
    assert len(measured['item']['output_tail']) <= agent_runner.OUTPUT_TAIL
    # both in KiB; a Python process is about 10-20 MiB: generous bounds, far below the 100 MiB of output
    assert measured['self'] < 60 * 1024 and measured['children'] < 60 * 1024, measured


def test_read_tail_reads_only_the_end(tmp_path):
    path = tmp_path / 'big.log'
    with open(path, 'wb') as handle:
        handle.truncate(8 * 1024**3)  # sparse 8 GiB: read whole, this would not fit in memory
        handle.seek(0, os.SEEK_END)
        handle.write(b'\nthe end\n')
    assert agent_runner.read_tail(str(path), 20).endswith('the end')
    assert agent_runner.read_tail(str(tmp_path / 'missing')) == ''


def test_bounded_output_keeps_head_and_tail():
    class Sink(list):
        def write(self, data):
            self.append(bytes(data))

        def flush(self):
            pass

        def close(self):
            pass

    out = agent_runner.BoundedOutput(os.devnull, head=4, keep=3)
    out.handle = sink = Sink()
    for chunk in (b'ab', b'cdef', b'ghij'):
        out.feed(chunk)
    out.close()
    assert b''.join(sink) == b'abcd\n[exup: 3 bytes of output dropped here]\nhij'
    assert out.total == 10 and out.dropped == 3


# ---------------------------------------------------------------------------------------------------- a full state folder
@pytest.fixture
def full_disk(host):
    """A real 1 MiB tmpfs on the host's var/lib/exup (root and mount permitted), unmounted afterwards."""
    host.state_dir.mkdir(parents=True)
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'exup-full', str(host.state_dir)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip('mounting a tmpfs is not permitted here: %s' % done.stderr.decode().strip())

    def fill():
        # unbuffered: a buffered file keeps the chunk that did not fit and fails again on close (Python 3.11)
        with open(host.state_dir / 'filler', 'wb', buffering=0) as handle:
            try:
                while True:
                    handle.write(b'\0' * 4096)
            except OSError:
                pass

    try:
        yield fill
    finally:
        subprocess.run(['umount', '-l', str(host.state_dir)], check=False)


def leftovers(folder):
    return sorted(
        os.path.relpath(os.path.join(top, name), str(folder))
        for top, _dirs, files in os.walk(str(folder))
        for name in files
        if '.tmp' in name or name.endswith('.part')
    )


def test_write_json_on_a_full_disk_leaves_no_temp_file(host, full_disk):
    path = host.state_dir / 'data.json'
    agent_runner.write_json(str(path), {'a': 1})
    full_disk()
    with pytest.raises(OSError) as caught:
        agent_runner.write_json(str(path), {'a': 'x' * 100000})
    assert agent_runner.disk_full(caught.value)
    assert json.loads(path.read_text()) == {'a': 1} and leftovers(host.state_dir) == []


@pytest.mark.parametrize(
    'exit_code, first_status, rest_cause', [(5, 'failed', 'an earlier package failed'), (0, 'succeeded', "the agent's state folder is full (agent_disk_full)")]
)
def test_a_job_that_fills_the_disk_ends_cleanly_with_agent_disk_full(host, full_disk, exit_code, first_status, rest_cause):
    """Before: the journal stayed 'running', no apply-failed block, temp files left, every later read an os_error."""
    host.job(
        [entry('P1'), entry('P2', module_id='bmc-firmware')],
        ['head -c 2000000 /dev/zero > "$EXUP_ROOT/var/lib/exup/filler"; exit %d' % exit_code, 'true'],
        reserve=True,
    )
    journal = agent_runner.run_job(host.layout, JOB)
    first, second = journal['items']
    assert journal['state'] == 'finished' and journal['error'] == 'agent_disk_full'
    assert (first['status'], first['exit_code']) == (first_status, exit_code)
    assert (second['status'], second['cause']) == ('cancelled', rest_cause) and 'started' not in second
    assert host.journal() == journal
    module = json.loads((host.state_dir / 'state.json').read_text())['modules']['system-bios']
    assert module.get('block') == ('apply_failed' if exit_code else None) and module.get('previous') == (None if exit_code else '1.0')
    assert leftovers(host.state_dir) == [] and not (host.job_dir / 'reserve').exists()
    # reads still work on the full disk and write nothing
    before = host.written()
    inventory = host.host.inventory()
    assert inventory['last_job']['error'] == 'agent_disk_full'
    assert inventory['modules']['system-bios']['block'] == ('apply_failed' if exit_code else None)
    assert host.host.follow(JOB, 0, 60)['state'] == 'finished'
    assert host.written() == before


def test_reads_on_a_full_disk_show_a_dead_job_and_the_write_path_records_it_once_space_is_free(host, full_disk):
    """A runner that died on a full disk: reads report it from what is on disk; the next start records it, or refuses clearly."""
    host.job([entry('P1')], ['true'])
    journal = host.journal()
    journal['items'][0].update(status='running', started=time.time())
    journal.update(state='running', runner_pid=2**22 + 1)
    (host.job_dir / 'journal.json').write_text(json.dumps(journal))
    full_disk()
    before = host.written()
    inventory = host.host.inventory()
    assert inventory['last_job']['recovered'] is True and inventory['modules']['system-bios']['block'] == 'apply_failed'
    assert host.written() == before and leftovers(host.state_dir) == []
    with pytest.raises(agent.HostError) as caught:
        host.host.settle(JOB)  # the write path, while the disk is full
    assert caught.value.code == 'agent_disk_full' and 'is full' in caught.value.msg and 'Free some space' in caught.value.msg
    assert host.written() == before and leftovers(host.state_dir) == []
    os.unlink(host.state_dir / 'filler')
    settled = host.host.settle(JOB)
    assert host.journal() == settled and settled['items'][0]['outcome'] == 'lost'
    assert json.loads((host.state_dir / 'state.json').read_text())['modules']['system-bios']['block'] == 'apply_failed'


def test_cancel_request_on_a_full_disk_is_a_clear_refusal(host, full_disk):
    host.job([entry('P1')], ['true'])
    journal = host.journal()
    journal.update(state='running', runner_pid=os.getpid(), runner_start=agent_runner.process_start(os.getpid()))
    (host.job_dir / 'journal.json').write_text(json.dumps(journal))
    full_disk()
    before = host.written()
    with pytest.raises(agent.HostError) as caught:
        host.host.cancel(JOB)
    assert caught.value.code == 'agent_disk_full' and 'requesting the cancel' in caught.value.msg
    assert host.written() == before and leftovers(host.state_dir) == [] and not (host.job_dir / 'cancel').exists()


def test_the_lease_is_renewed_in_place_on_a_full_disk(host, full_disk):
    host.job([entry('P1')], ['true'])
    full_disk()
    agent.renew_lease(str(host.job_dir), 120)
    assert float((host.job_dir / 'lease').read_text()) > time.time() + 100
    assert leftovers(host.state_dir) == []
