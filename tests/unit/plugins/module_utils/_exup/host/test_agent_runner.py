# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's detached job runner (docs/agent.md, "The job"), run below a tmp_path host root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.host import agent_runner

JOB = 'job-1'
BOOT_ID = '0f6c9b1e-5d3a-4c2b-9a8e-7f1d2c3b4a5e'


def entry(package_id, module_id='system-bios', action='install', from_version='1.0', to_version='2.0', reboot_required=False):
    return {
        'package_id': package_id,
        'module_id': module_id,
        'action': action,
        'from_version': from_version,
        'to_version': to_version,
        'reboot_required': reboot_required,
        'command': 'sh run.sh',
        'status': 'waiting',
    }


@pytest.fixture
def host(tmp_path):
    """A host root with a boot id; ``host.job(items, scripts)`` lays out one job as exup_host phase=start does."""

    class Host:
        root = tmp_path / 'host'
        layout = agent_runner.Layout(str(root))

        def job(self, items, scripts, job_id=JOB, lease=300.0):
            job_dir = self.root / 'var' / 'lib' / 'exup' / 'jobs' / job_id
            for index, script in enumerate(scripts):
                work = job_dir / 'work' / str(index)
                work.mkdir(parents=True)
                (work / 'run.sh').write_text('echo "$EXUP_PACKAGE_ID" >> "$EXUP_ROOT/order.log"\n' + script + '\n')
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / 'journal.json').write_text(json.dumps({'version': 1, 'job_id': job_id, 'state': 'waiting', 'items': items}))
            if lease is not None:
                (job_dir / 'lease').write_text('%.3f\n' % (time.time() + lease))
            return job_dir

        def journal(self, job_id=JOB):
            return json.loads((self.root / 'var' / 'lib' / 'exup' / 'jobs' / job_id / 'journal.json').read_text())

        def state(self):
            return json.loads((self.root / 'var' / 'lib' / 'exup' / 'state.json').read_text())

        def order(self):
            path = self.root / 'order.log'
            return path.read_text().split() if path.exists() else []

        def agent_log(self):
            return (self.root / 'var' / 'lib' / 'exup' / 'log' / 'agent.log').read_text()

    boot = Host.root / 'proc' / 'sys' / 'kernel' / 'random' / 'boot_id'
    boot.parent.mkdir(parents=True)
    boot.write_text(BOOT_ID + '\n')
    return Host()


def statuses(journal):
    return [(item['package_id'], item['status'], item.get('cause')) for item in journal['items']]


def test_items_run_in_order_with_the_documented_environment(host):
    items = [
        entry('P1', module_id='server-agent', from_version=None, to_version='5.1'),
        entry('P2', module_id='raid-utility', action='uninstall', from_version='3.0', to_version=None),
        entry('P3', module_id='system-bios', from_version='1.0', to_version='2.0'),
    ]
    job_dir = host.job(items, ['env > env.txt; pwd > pwd.txt'] * 3)
    journal = agent_runner.run_job(host.layout, JOB)
    assert host.order() == ['P1', 'P2', 'P3']
    assert [item['status'] for item in journal['items']] == ['succeeded'] * 3
    assert [item['exit_code'] for item in journal['items']] == [0, 0, 0]
    root = str(host.root)
    expected = [('install', 'server-agent', '5.1', 'P1'), ('uninstall', 'raid-utility', '', 'P2'), ('install', 'system-bios', '2.0', 'P3')]
    for index, (action, module, version, package_id) in enumerate(expected):
        work = job_dir / 'work' / str(index)
        env = dict(line.split('=', 1) for line in (work / 'env.txt').read_text().splitlines() if '=' in line)
        assert env['EXUP_ROOT'] == root
        assert env['EXUP_ACTION'] == action
        assert env['EXUP_MODULE'] == module
        if action == 'install':
            assert env['EXUP_VERSION'] == version
        else:  # docs/agent.md says "the package's version"; an uninstall item carries none (to_version is None)
            assert 'EXUP_VERSION' in env
        assert env['EXUP_PACKAGE_ID'] == package_id
        assert env['EXUP_AGENT_DIR'] == root + '/opt/exup/agent'
        assert (work / 'pwd.txt').read_text().strip() == os.path.realpath(str(work))
        assert (job_dir / 'output' / ('%d.log' % index)).exists()
    assert host.journal() == journal


def test_env_root_of_a_real_server_is_empty():
    assert agent_runner.Layout('/').env_root == ''
    assert agent_runner.Layout('/').agent_dir == '/opt/exup/agent'
    assert agent_runner.Layout('/srv/lab/host1/').env_root == '/srv/lab/host1'


def test_success_records_the_previous_generation(host):
    host.job([entry('P1', from_version='1.0', to_version='2.0'), entry('P2', module_id='server-agent', from_version=None, to_version='5.1')], ['true', 'true'])
    agent_runner.run_job(host.layout, JOB)
    modules = host.state()['modules']
    assert modules['system-bios']['previous'] == '1.0'
    assert 'block' not in modules['system-bios']
    assert 'previous' not in modules.get('server-agent', {})


def test_the_same_version_applied_again_keeps_the_previous_generation(host):
    """003 §2.1.1.2 allows applying the current version again; the previous generation [*] stays the older one."""
    state_dir = host.root / 'var' / 'lib' / 'exup'
    state_dir.mkdir(parents=True)
    (state_dir / 'state.json').write_text(json.dumps({'modules': {'system-bios': {'previous': '0.9'}}}))
    host.job([entry('P1', from_version='1.0', to_version='1.0')], ['true'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'succeeded', None)]
    assert host.state()['modules']['system-bios']['previous'] == '0.9'


def test_reboot_required_success_sets_the_block_with_boot_id_and_staged_version(host):
    host.job([entry('P1', from_version='1.0', to_version='2.0', reboot_required=True)], ['true'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'succeeded', None)]
    module = host.state()['modules']['system-bios']
    assert module['block'] == 'reboot_required'
    assert module['boot_id'] == BOOT_ID
    assert module['staged'] == '2.0'
    assert module['previous'] == '1.0'
    assert module['package_id'] == 'P1'


def test_state_keeps_other_modules(host):
    state_dir = host.root / 'var' / 'lib' / 'exup'
    state_dir.mkdir(parents=True)
    (state_dir / 'state.json').write_text(json.dumps({'modules': {'bmc-firmware': {'previous': '0.5'}}, 'other': 1}))
    host.job([entry('P1')], ['true'])
    agent_runner.run_job(host.layout, JOB)
    state = host.state()
    assert state['modules']['bmc-firmware'] == {'previous': '0.5'} and state['other'] == 1
    assert state['modules']['system-bios']['previous'] == '1.0'


def test_a_failing_item_cancels_the_rest_and_blocks_the_module(host):
    items = [
        entry('P1', module_id='server-agent'),
        entry('P2', reboot_required=True),
        entry('P3', module_id='bmc-firmware'),
        entry('P4', module_id='raid-utility'),
    ]
    job_dir = host.job(items, ['true', 'echo flashing; echo "flash write error" >&2; exit 3', 'true', 'true'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [
        ('P1', 'succeeded', None),
        ('P2', 'failed', 'exit status 3: flash write error'),
        ('P3', 'cancelled', 'an earlier package failed'),
        ('P4', 'cancelled', 'an earlier package failed'),
    ]
    assert journal['items'][1]['exit_code'] == 3
    assert 'flashing' in journal['items'][1]['output_tail']
    assert host.order() == ['P1', 'P2']
    assert journal['state'] == 'finished'
    module = host.state()['modules']['system-bios']
    assert module['block'] == 'apply_failed' and module['boot_id'] == BOOT_ID
    assert 'exit status 3' in module['cause'] and module['package_id'] == 'P2'
    assert 'bmc-firmware' not in host.state()['modules']
    assert 'flash write error' in (job_dir / 'output' / '1.log').read_text()
    assert host.journal() == journal


def test_failure_without_output(host):
    host.job([entry('P1')], ['exit 1'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'failed', 'exit status 1: no output')]


def test_a_command_that_cannot_start_fails(host):
    job_dir = host.job([entry('P1')], ['true'])
    os.rename(str(job_dir / 'work' / '0'), str(job_dir / 'work' / 'moved'))
    journal = agent_runner.run_job(host.layout, JOB)
    assert journal['items'][0]['status'] == 'failed' and journal['items'][0]['exit_code'] == 127
    assert 'cannot run the command' in journal['items'][0]['cause']


def test_cancel_before_the_first_item_cancels_everything(host):
    job_dir = host.job([entry('P1'), entry('P2')], ['true', 'true'])
    (job_dir / 'cancel').write_text('')
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'cancelled', 'cancelled by the user'), ('P2', 'cancelled', 'cancelled by the user')]
    assert host.order() == []
    assert journal['state'] == 'finished'
    assert not (host.root / 'var' / 'lib' / 'exup' / 'state.json').exists()
    assert 'cancelled by the user' in host.agent_log()


def test_cancel_during_an_item_lets_it_finish(host):
    host.job([entry('P1'), entry('P2', module_id='bmc-firmware'), entry('P3', module_id='sdr')], ['touch ../../cancel', 'true', 'true'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'succeeded', None), ('P2', 'cancelled', 'cancelled by the user'), ('P3', 'cancelled', 'cancelled by the user')]
    assert host.order() == ['P1']


def test_cancel_is_checked_before_the_lease(host):
    job_dir = host.job([entry('P1')], ['true'], lease=-60)
    (job_dir / 'cancel').write_text('')
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'cancelled', 'cancelled by the user')]


@pytest.mark.parametrize('lease', [-1.0, None])
def test_expired_or_missing_lease_cancels_everything(host, lease):
    host.job([entry('P1'), entry('P2')], ['true', 'true'], lease=lease)
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'cancelled', 'communication with the manager lost'), ('P2', 'cancelled', 'communication with the manager lost')]
    assert host.order() == []


def test_lease_expiring_during_an_item_lets_it_finish(host):
    past = time.time() - 3600
    host.job([entry('P1'), entry('P2', module_id='bmc-firmware')], ['echo %.3f > ../../lease; sleep 0.1' % past, 'true'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'succeeded', None), ('P2', 'cancelled', 'communication with the manager lost')]
    assert host.order() == ['P1']
    assert host.state()['modules']['system-bios']['previous'] == '1.0'
    assert 'communication with the manager lost' in host.agent_log()


def test_lease_removed_during_an_item_cancels_the_rest(host):
    host.job([entry('P1'), entry('P2', module_id='bmc-firmware')], ['rm ../../lease', 'true'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'succeeded', None), ('P2', 'cancelled', 'communication with the manager lost')]


def test_lease_helpers(tmp_path):
    agent_runner.write_lease(str(tmp_path), 60)
    assert not agent_runner.lease_expired(str(tmp_path))
    assert os.listdir(str(tmp_path)) == ['lease']
    (tmp_path / 'lease').write_text('not a time')
    assert agent_runner.lease_expired(str(tmp_path))
    agent_runner.write_lease(str(tmp_path), -1)
    assert agent_runner.lease_expired(str(tmp_path))


def test_items_that_are_not_waiting_are_left_alone(host):
    done = dict(entry('P1'), status='succeeded', exit_code=0)
    host.job([done, entry('P2', module_id='bmc-firmware')], ['exit 9', 'true'])
    journal = agent_runner.run_job(host.layout, JOB)
    assert statuses(journal) == [('P1', 'succeeded', None), ('P2', 'succeeded', None)]
    assert host.order() == ['P2']


def test_journal_is_finished_and_the_log_written(host):
    job_dir = host.job([entry('P1'), entry('P2', module_id='bmc-firmware')], ['true', 'true'])
    before = time.time()
    journal = agent_runner.run_job(host.layout, JOB)
    assert journal['state'] == 'finished' and journal['runner_pid'] == os.getpid()
    assert before <= journal['started'] <= journal['finished'] <= time.time()
    for item in journal['items']:
        assert journal['started'] <= item['started'] <= item['finished'] <= journal['finished']
    assert host.journal()['state'] == 'finished'
    text = host.agent_log()
    assert 'job job-1 started with 2 package(s)' in text
    assert 'job job-1: install P1 succeeded (ok)' in text and 'job job-1: install P2 succeeded (ok)' in text
    assert text.rstrip().endswith('job job-1 finished')
    leftovers = [name for top in (job_dir, host.root / 'var' / 'lib' / 'exup') for name in os.listdir(str(top)) if '.tmp' in name]
    assert leftovers == []


def test_write_json_replaces_atomically(tmp_path):
    path = str(tmp_path / 'data.json')
    agent_runner.write_json(path, {'a': 1})
    agent_runner.write_json(path, {'b': [1, 2]})
    assert agent_runner.read_json(path) == {'b': [1, 2]}
    assert os.listdir(str(tmp_path)) == ['data.json']
    assert agent_runner.read_json(str(tmp_path / 'missing.json'), {'default': True}) == {'default': True}


def test_write_json_failure_keeps_the_old_file(tmp_path):
    path = str(tmp_path / 'data.json')
    agent_runner.write_json(path, {'a': 1})
    with pytest.raises(TypeError):
        agent_runner.write_json(path, {'a': object()})
    assert agent_runner.read_json(path) == {'a': 1}


@pytest.mark.parametrize(
    'argv', [[], ['run'], ['run', '--root', '/tmp'], ['start', '--root', '/tmp', JOB], ['run', '--rooot', '/tmp', JOB], ['run', '--root', '/tmp', JOB, 'extra']]
)
def test_main_usage_error(argv, capsys):
    assert agent_runner.main(argv) == 2
    assert 'usage: exup-agent run --root ROOT JOB_ID' in capsys.readouterr().err


def test_main_runs_a_job(host):
    host.job([entry('P1')], ['true'])
    assert agent_runner.main(['run', '--root', str(host.root), JOB]) == 0
    assert statuses(host.journal()) == [('P1', 'succeeded', None)]


def test_runner_as_a_detached_process(host):
    host.job([entry('P1'), entry('P2', module_id='bmc-firmware', reboot_required=True)], ['env > env.txt', 'true'])
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)  # the runner is standard library only: it must not need the collection
    done = subprocess.run(
        [sys.executable, agent_runner.__file__, 'run', '--root', str(host.root), JOB],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    journal = host.journal()
    assert journal['state'] == 'finished' and journal['runner_pid'] != os.getpid()
    assert statuses(journal) == [('P1', 'succeeded', None), ('P2', 'succeeded', None)]
    assert host.state()['modules']['bmc-firmware']['block'] == 'reboot_required'
    assert host.state()['modules']['bmc-firmware']['boot_id'] == BOOT_ID
    assert 'EXUP_ROOT=%s\n' % host.root in (host.root / 'var' / 'lib' / 'exup' / 'jobs' / JOB / 'work' / '0' / 'env.txt').read_text()
    done = subprocess.run([sys.executable, agent_runner.__file__, 'run'], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and 'usage' in done.stderr
