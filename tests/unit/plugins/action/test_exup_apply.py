# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_apply on the agent path, through ActionModule.run() with a real repository on tmp_path.

The host is mocked: every call runs the real exup_host module on a host root below tmp_path, and only
what the agent's runner does (a job's item statuses) is canned, as Job records (see action_env.py).
The packages sent are received and verified by the real host code (inline content or the bundle).
"""

from __future__ import annotations

import base64
import datetime
import os

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.package import file_digest
from ansible_collections.exup.fleet.plugins.plugin_utils._exup_action import INLINE_LIMIT
from ansible_collections.exup.fleet.tests.unit.plugins.action.action_env import JOB_ID, MODEL, OS_NAME, SERVER, Job, unreachable

AGENT_SW = 'server-agent_3.0_Express5800-R120h-1M_rhel9'
BIOS = 'system-bios_1.1_Express5800-R120h-1M_rhel9'
BMC = 'bmc-firmware_2.0_Express5800-R120h-1M_rhel9'


@pytest.fixture
def packages(build_pkg, repository, host_root):
    """A no-reboot server-agent 3.0 (released after) and a reboot-requiring BIOS 1.1; the server runs 2.0 and 1.0 with the agent."""
    host_root.install_agent('2.0')
    host_root.set_version('server-agent', '2.0')
    paths = {
        AGENT_SW: build_pkg(
            module_id='server-agent',
            version='3.0',
            models=[MODEL],
            os=[OS_NAME],
            reboot_required=False,
            release_date='2024-06-01',
            uninstall_supported=True,
            uninstall_command='sh uninstall.sh',
        ),
        BIOS: build_pkg(module_id='system-bios', version='1.1', models=[MODEL], os=[OS_NAME], release_date='2024-05-01'),
    }
    repository.add(*paths.values())
    return paths


def args(repository, pem, **more):
    return dict({'repository': repository.path, 'trusted_keys': [pem], 'poll_interval': 7, 'lease_seconds': 10}, **more)


def test_check_mode_returns_the_plan_and_never_starts(run_action, host, repository, packages, pem):
    result, remote = run_action('exup_apply', args(repository, pem), check_mode=True)
    assert not result.get('failed'), result
    assert host.phases == ['inventory']
    assert [(row['package_id'], row['action'], row['from_version'], row['to_version']) for row in result['plan']] == [
        (AGENT_SW, 'install', '2.0', '3.0'),
        (BIOS, 'install', '1.0', '1.1'),
    ]  # no-reboot first (003 §2.1.7)
    assert [(row['sha256'], row['size']) for row in result['plan']] == [file_digest(packages[AGENT_SW])[::-1], file_digest(packages[BIOS])[::-1]]
    assert (result['changed'], result['results'], result['reboot_required'], result['reboot_allowed']) == (True, [], True, False)
    assert result['diff'] == {'before': {'server-agent': '2.0', 'system-bios': '1.0'}, 'after': {'server-agent': '3.0', 'system-bios': '1.1'}}
    assert result['msg'] == 'would run 2 package(s) on %s' % SERVER
    assert (result['model'], result['os']) == (MODEL, OS_NAME)
    assert repository.events() == [] and remote.copied == {}


def test_small_packages_go_inline_in_order_and_the_job_is_followed_until_done(run_action, host, host_root, repository, packages, pem, shown):
    host.answer('start', Job('running', 'waiting', state='running'))
    host.answer('status', Job('succeeded', 'running', state='running'), Job('succeeded', 'running', state='running'), Job('succeeded', 'succeeded'))
    result, remote = run_action('exup_apply', args(repository, pem))
    assert not result.get('failed'), result
    assert host.phases == ['inventory', 'start', 'status', 'status', 'status']
    start = host.sent('start')
    assert [item['package_id'] for item in start['items']] == [AGENT_SW, BIOS]
    for item in start['items']:
        size, digest = file_digest(packages[item['package_id']])
        assert (item['sha256'], item['size']) == (digest, size) and size < INLINE_LIMIT
        with open(packages[item['package_id']], 'rb') as handle:
            assert base64.b64decode(item['content']) == handle.read()
    assert start['bundle'] is None and remote.copied == {}
    assert (start['trusted_keys_pem'], start['lease_seconds'], start['wait_seconds']) == ([pem], 10, 5.0)  # wait: half the lease at most
    assert all(
        (call['job_id'], call['lease_seconds'], call['wait_seconds']) == (JOB_ID, 10, 5.0) for phase, call in host.calls if phase == 'status'
    )  # every poll renews the lease
    assert shown.lines == [
        '%s: exup_apply job %s: 0/2 done, server-agent 3.0 running' % (SERVER, JOB_ID),
        '%s: exup_apply job %s: 1/2 done, system-bios 1.1 running' % (SERVER, JOB_ID),
    ]  # a line per change
    assert result['changed'] is True and result['job_id'] == JOB_ID
    assert [(row['package_id'], row['status'], row['version_before'], row['version_after'], row['staged']) for row in result['results']] == [
        (AGENT_SW, 'succeeded', '2.0', '3.0', False),
        (BIOS, 'succeeded', '1.0', '1.1', True),
    ]
    assert (result['reboot_required'], result['reboot_allowed']) == (True, True)
    assert result['versions_after'] == {'server-agent': '3.0', 'system-bios': '1.1', 'update-agent': '2.0'}
    assert result['diff'] == {'before': {'server-agent': '2.0', 'system-bios': '1.0'}, 'after': {'server-agent': '3.0', 'system-bios': '1.1'}}
    assert result['msg'] == '2 of 2 package(s) applied on %s' % SERVER
    assert sorted(os.listdir(str(host_root.root / 'var/lib/exup/inbox'))) == sorted(item['sha256'] + '.zip' for item in start['items'])
    assert repository.events() == [
        ('apply_started', {'server': SERVER, 'packages': [AGENT_SW, BIOS]}),
        ('apply_finished', {'server': SERVER, 'job_id': JOB_ID, 'results': {AGENT_SW: 'succeeded', BIOS: 'succeeded'}}),
    ]


def test_packages_over_the_inline_limit_travel_as_one_bundle_and_the_inbox_is_not_sent_again(run_action, host, host_root, repository, packages, build_pkg, pem):
    big = build_pkg(
        module_id='bmc-firmware',
        version='2.0',
        models=[MODEL],
        os=[OS_NAME],
        release_date='2024-07-01',
        payload={'install.sh': b'#!/bin/sh\n', 'image/bmc.bin': os.urandom(INLINE_LIMIT)},
    )
    repository.add(big)
    host_root.set_version('bmc-firmware', '1.0')
    inbox = host_root.root / 'var/lib/exup/inbox'
    inbox.mkdir(parents=True)
    agent_sw_digest = file_digest(packages[AGENT_SW])[1]
    with open(packages[AGENT_SW], 'rb') as handle:
        (inbox / (agent_sw_digest + '.zip')).write_bytes(handle.read())  # left by an earlier apply
    host.answer('start', Job('succeeded', 'succeeded', 'succeeded'))
    result, remote = run_action('exup_apply', args(repository, pem))
    assert not result.get('failed'), result
    start = host.sent('start')
    assert [item['package_id'] for item in start['items']] == [AGENT_SW, BIOS, BMC]
    assert not any(item.get('content') for item in start['items'])  # the bundle holds them
    bundle = str(remote.folder / 'packages.tar')
    assert start['bundle'] == bundle
    assert remote.copied == {bundle: [file_digest(path)[1] + '.zip' for path in (packages[BIOS], big)]}  # one copy, plan order, no inbox package
    assert remote.removed == [str(remote.folder)]  # the temporary folder goes at the end
    assert result['msg'] == '3 of 3 package(s) applied on %s' % SERVER


def test_a_failed_status_poll_is_progress_unavailable(run_action, host, repository, packages, pem):
    host.answer('start', Job('running', 'waiting', state='running'))
    host.answer('status', unreachable('ssh: connection timed out'))
    result, _remote = run_action('exup_apply', args(repository, pem))
    assert (result['failed'], result['unreachable'], result['error']) == (True, True, 'communication_failed')
    assert result['msg'] == 'ssh: connection timed out'
    assert repository.events() == [
        ('apply_started', {'server': SERVER, 'packages': [AGENT_SW, BIOS]}),
        ('progress_unavailable', {'server': SERVER, 'error': 'communication_failed', 'job': JOB_ID}),
    ]
    assert repository.messages()[1] == 'Progress of the update could not be fetched. (ssh: connection timed out)'


def test_a_job_nobody_saw_finish_is_logged_late_by_the_next_task(run_action, host, repository, packages, pem):
    host.answer('start', Job('running', 'waiting', state='running'))
    host.answer('status', unreachable())
    run_action('exup_apply', args(repository, pem))
    host.root.finished_job(host.sent('start')['items'])  # what the runner did meanwhile
    result, _remote = run_action('exup_apply', args(repository, pem, state='cancelled'))
    assert result['msg'] == 'no job is running on %s' % SERVER
    assert repository.events()[-1] == (
        'apply_finished',
        {'server': SERVER, 'job_id': JOB_ID, 'reported_late': True, 'results': {AGENT_SW: 'succeeded', BIOS: 'succeeded'}},
    )
    run_action('exup_apply', args(repository, pem, state='cancelled'))
    assert repository.codes().count('apply_finished') == 1  # once


def test_a_failed_item_fails_the_task_with_its_code_and_forbids_the_restart(run_action, host, repository, packages, build_pkg, host_root, pem):
    repository.add(build_pkg(module_id='bmc-firmware', version='2.0', models=[MODEL], os=[OS_NAME], release_date='2024-07-01'))
    host_root.set_version('bmc-firmware', '1.0')
    host.answer('start', Job('succeeded', 'succeeded', ('failed', 'exit status 3: flash verify error')))
    result, _remote = run_action('exup_apply', args(repository, pem, allow_reboot=True))
    assert (result['failed'], result['error']) == (True, 'apply_failed')
    assert result['msg'] == '%s failed on %s: exit status 3: flash verify error; the server takes no more packages until it restarts' % (BMC, SERVER)
    assert [row['status'] for row in result['results']] == ['succeeded', 'succeeded', 'failed']
    assert (result['reboot_required'], result['reboot_allowed']) == (True, False)  # §2.1.2: every selected package must succeed
    assert result['changed'] is True
    assert repository.events()[-1] == (
        'apply_failed',
        {'server': SERVER, 'job_id': JOB_ID, 'results': {AGENT_SW: 'succeeded', BIOS: 'succeeded', BMC: 'failed'}},
    )
    assert repository.codes().count('apply_failed') == 1  # the failure is logged once
    again, _remote = run_action('exup_apply', args(repository, pem))
    assert again['error'] == 'blocked_until_reboot' and 'bmc-firmware (apply failed)' in again['msg']
    assert host.phases[-1] == 'inventory'  # refused on the controller, nothing started


def test_no_reboot_package_needs_no_restart(run_action, host, repository, packages, pem):
    host.answer('start', Job('succeeded'))
    result, _remote = run_action('exup_apply', args(repository, pem, modules=['server-agent'], allow_reboot=True))
    assert [item['package_id'] for item in host.sent('start')['items']] == [AGENT_SW]
    assert (result['reboot_required'], result['reboot_allowed'], result['msg']) == (False, False, '1 of 1 package(s) applied on %s' % SERVER)


def test_an_allowed_restart_marks_the_server_rebooting_until_its_boot_id_changes(run_action, host, host_root, repository, packages, pem):
    host.answer('start', Job('succeeded', 'succeeded'))
    result, _remote = run_action('exup_apply', args(repository, pem, allow_reboot=True))
    assert result['reboot_allowed'] is True
    again, _remote = run_action('exup_apply', args(repository, pem))
    assert (again['failed'], again['error']) == (True, 'server_rebooting')
    host_root.reboot('7a1d0c2e-1111-4e2b-8a8e-000000000001')
    after, _remote = run_action('exup_apply', args(repository, pem))
    assert not after.get('failed') and after['msg'] == 'nothing to apply on %s' % SERVER


def test_a_host_refusal_at_start_is_apply_failed_with_the_hosts_code(run_action, host, repository, packages, pem):
    host.answer('start', ExupError('not enough disk space on the host for 2 package(s)', code='disk_full', free=1, needed=2))
    result, _remote = run_action('exup_apply', args(repository, pem))
    assert (result['failed'], result['error'], result['msg']) == (True, 'disk_full', 'not enough disk space on the host for 2 package(s)')
    assert (result['free'], result['needed']) == (1, 2)
    assert 'invocation' not in result  # it would echo the inline packages and keys
    assert repository.events() == [
        ('apply_started', {'server': SERVER, 'packages': [AGENT_SW, BIOS]}),
        ('apply_failed', {'server': SERVER, 'error': 'disk_full'}),
    ]


def test_a_job_that_outlasts_wait_timeout_is_timeout(run_action, host, repository, packages, pem):
    host.answer('start', Job('running', 'waiting', state='running', runner_lost=True))
    host.answer('status', *[Job('running', 'waiting', state='running', runner_lost=True) for _poll in range(3)])
    result, _remote = run_action('exup_apply', args(repository, pem, wait_timeout=0))
    assert (result['failed'], result['error']) == (True, 'timeout')
    assert result['msg'].startswith('job %s on %s did not finish within 0 s; polling stopped' % (JOB_ID, SERVER))
    assert result['msg'].endswith("(the agent's runner stopped; the package script runs on, and its outcome is read when it ends)")
    assert result['job']['job_id'] == JOB_ID
    assert repository.codes()[-1] == 'apply_failed'


def test_state_absent_uninstalls_the_named_software(run_action, host, host_root, repository, packages, pem):
    host_root.set_version('server-agent', '3.0')
    refused, _remote = run_action('exup_apply', args(repository, pem, state='absent'))
    assert (refused['failed'], refused['error']) == (True, 'modules_required')
    assert refused['msg'] == 'state=absent needs modules: name the software to uninstall'
    host.answer('start', Job('succeeded'))
    result, _remote = run_action('exup_apply', args(repository, pem, state='absent', modules=['server-agent']))
    assert not result.get('failed'), result
    [item] = host.sent('start')['items']
    assert (item['package_id'], item['action'], item['from_version'], item['to_version']) == (AGENT_SW, 'uninstall', '3.0', None)
    assert result['msg'] == '1 of 1 package(s) uninstalled on %s' % SERVER
    assert result['diff'] == {'before': {'server-agent': '3.0'}, 'after': {'server-agent': '3.0'}}  # the canned job removed nothing
    assert repository.codes() == ['uninstall_failed', 'uninstall_started', 'uninstall_finished']


def test_state_cancelled_cancels_the_running_job(run_action, host, host_root, repository, packages, pem):
    nothing, _remote = run_action('exup_apply', args(repository, pem, state='cancelled'))
    assert (nothing['changed'], nothing['msg']) == (False, 'no job is running on %s' % SERVER)
    host_root.running_job(
        [
            {
                'package_id': BIOS,
                'module_id': 'system-bios',
                'action': 'install',
                'from_version': '1.0',
                'to_version': '1.1',
                'reboot_required': True,
                'release_date': '2024-05-01',
            }
        ]
    )
    check, _remote = run_action('exup_apply', args(repository, pem, state='cancelled'), check_mode=True)
    assert (check['changed'], check['msg']) == (True, 'would cancel the packages of job %s that have not started' % JOB_ID)
    assert 'cancel' not in host.phases
    result, _remote = run_action('exup_apply', args(repository, pem, state='cancelled'))
    assert host.sent('cancel')['job_id'] == JOB_ID
    assert (result['changed'], result['job_id']) == (True, JOB_ID)
    assert result['msg'] == 'cancel requested: packages of job %s that have not started will not run' % JOB_ID
    assert (host_root.root / 'var/lib/exup/jobs' / JOB_ID / 'cancel').exists()  # what the runner reads


def test_a_cancel_the_host_cannot_take_is_cancel_unavailable(run_action, host, host_root, repository, packages, pem):
    host_root.running_job([{'package_id': BIOS, 'module_id': 'system-bios', 'action': 'install'}])
    host.answer('cancel', unreachable())
    result, _remote = run_action('exup_apply', args(repository, pem, state='cancelled'))
    assert (result['failed'], result['error']) == (True, 'communication_failed')
    assert repository.events() == [('cancel_unavailable', {'server': SERVER, 'error': 'communication_failed'})]


def test_a_running_job_or_a_missing_agent_refuses_before_anything_is_sent(run_action, host, host_root, repository, packages, pem):
    host_root.running_job([{'package_id': BIOS, 'module_id': 'system-bios', 'action': 'install'}])
    busy, _remote = run_action('exup_apply', args(repository, pem))
    assert (busy['failed'], busy['error'], busy['job']['job_id']) == (True, 'job_running', JOB_ID)
    assert busy['msg'] == 'job %s is still running on %s (0 of 1 done): wait for it or cancel it with state=cancelled' % (JOB_ID, SERVER)
    (host_root.root / 'var/lib/exup/current_job').unlink()
    (host_root.root / 'opt/exup/agent/VERSION').unlink()
    missing, _remote = run_action('exup_apply', args(repository, pem))
    assert (missing['failed'], missing['error']) == (True, 'agent_missing')
    assert host.phases == ['inventory', 'inventory']
    assert repository.codes() == ['apply_failed', 'apply_failed']


def test_a_job_the_agent_recorded_on_a_full_disk_is_agent_disk_full(run_action, host, repository, packages, pem):
    host.answer('start', Job('succeeded', ('cancelled', 'the state folder is full'), error='agent_disk_full'))
    result, _remote = run_action('exup_apply', args(repository, pem))
    assert (result['failed'], result['error']) == (True, 'agent_disk_full')
    assert result['msg'] == (
        "1 of 2 package(s) applied on %s (the state folder is full); the agent's state folder on %s is full: free some space there" % (SERVER, SERVER)
    )
    assert repository.codes()[-1] == 'apply_cancelled'


def test_a_runner_that_stopped_is_said_in_the_progress_line(run_action, host, repository, packages, pem, shown):
    host.answer('start', Job('running', 'waiting', state='running', runner_lost=True))
    host.answer('status', Job(('failed', 'the agent stopped while this package was running'), 'cancelled', recovered=True))
    result, _remote = run_action('exup_apply', args(repository, pem))
    assert shown.lines == [
        "%s: exup_apply job %s: 0/2 done, server-agent 3.0 running (the agent's runner stopped; the package script runs on, "
        "and its outcome is read when it ends)" % (SERVER, JOB_ID)
    ]
    assert (result['error'], [row['status'] for row in result['results']]) == ('apply_failed', ['failed', 'cancelled'])


def test_the_previous_generation_can_be_asked_for_by_name(run_action, host, host_root, build_pkg, repository, packages, pem):
    repository.add(build_pkg(module_id='system-bios', version='0.9', models=[MODEL], os=[OS_NAME], downgrade_supported=True))
    host_root.applied(
        {'module_id': 'system-bios', 'action': 'install', 'from_version': '0.9', 'to_version': '1.0', 'reboot_required': False, 'package_id': 'earlier'}
    )
    refused, _remote = run_action('exup_apply', args(repository, pem, versions={'system-bios': 'previous'}), check_mode=True)
    assert (refused['failed'], refused['error']) == (True, 'latest_only')  # a downgrade needs latest_only: false
    result, _remote = run_action('exup_apply', args(repository, pem, versions={'system-bios': 'previous'}, latest_only=False), check_mode=True)
    assert not result.get('failed'), result
    assert [(row['module_id'], row['from_version'], row['to_version']) for row in result['plan']] == [('system-bios', '1.0', '0.9')]


def test_packages_signed_by_a_key_no_longer_trusted_are_never_sent(run_action, host, repository, packages, other_key):
    result, _remote = run_action('exup_apply', args(repository, other_key.public_pem().decode('ascii')))
    assert (result['changed'], result['plan'], result['msg']) == (False, [], 'nothing to apply on %s' % SERVER)
    assert host.phases == ['inventory']


def window_now(minutes_left):
    """One iCalendar window open now, closing in ``minutes_left`` minutes (UTC)."""
    now = datetime.datetime.now(datetime.UTC)
    stamp = '%Y%m%dT%H%M%SZ'
    start, end = now - datetime.timedelta(minutes=10), now + datetime.timedelta(minutes=minutes_left)
    return 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTART:%s\r\nDTEND:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n' % (
        start.strftime(stamp),
        end.strftime(stamp),
    )


def test_the_hosts_own_windows_apply_when_the_task_names_none(run_action, host, repository, packages, pem):
    pytest.importorskip('recurring_ical_events')  # not in ansible-test's unit venv; the compat step and pytest run it
    closed = window_now(-5)  # ended five minutes ago
    result, _remote = run_action('exup_apply', args(repository, pem), check_mode=True, task_vars={'exup_maintenance_windows': closed})
    assert (result['skipped'], result['window_code'], result['changed']) == (True, 'outside_window', False), result
    # an explicit empty list is no restriction, whatever the host variable says
    result, _remote = run_action('exup_apply', args(repository, pem, maintenance_windows=[]), check_mode=True, task_vars={'exup_maintenance_windows': [closed]})
    assert not result.get('skipped') and result['changed'], result


def test_an_allowed_restart_counts_in_the_expected_duration(run_action, host, repository, packages, pem):
    pytest.importorskip('recurring_ical_events')
    # 40 minutes left; the default estimate is 30 min (no history), the BIOS needs a restart of up to reboot_timeout 20 min
    windows = [window_now(40)]
    result, _remote = run_action('exup_apply', args(repository, pem, maintenance_windows=windows), check_mode=True)
    assert result['window']['code'] == 'window_open' and 'restart_seconds' not in result['window']['estimate'], result['window']
    result, _remote = run_action('exup_apply', args(repository, pem, maintenance_windows=windows, allow_reboot=True), check_mode=True)
    assert (result.get('skipped'), result['window_code']) == (True, 'window_too_short'), result
    assert result['window']['estimate']['restart_seconds'] == 1200


def log_past_applies(repository, server, minutes):
    """Applies of ``server`` that took ``minutes`` each, an hour apart, logged as exup_apply logs them (a clock set back)."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup import events as ev
    from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.repository import Repository

    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    for number, took in enumerate(minutes):
        began = start + datetime.timedelta(hours=number)
        for code, at in (('apply_started', began), ('apply_finished', began + datetime.timedelta(minutes=took))):
            Repository(repository.path, clock=lambda at=at: at).log_events([ev.event(code, server=server, job_id='j%d' % number)])


class WithoutIndex:
    """The repository as a service URL shows itself to the gate: its operations, no local index (``read``) to open.
    (The service's GET /v1/events is read over HTTP in tests/system/test_service_http.py.)"""

    def __init__(self, repo):
        self.repo = repo

    def __getattr__(self, name):
        if name == 'read':
            raise AttributeError(name)
        return getattr(self.repo, name)


@pytest.mark.parametrize('kind', ['local', 'service'])
def test_the_expected_duration_comes_from_the_servers_applies_in_the_log(run_action, host, repository, packages, pem, monkeypatch, kind):
    pytest.importorskip('recurring_ical_events')
    if kind == 'service':
        from ansible_collections.exup.fleet.plugins.plugin_utils import _exup_action

        opened = _exup_action.open_repository
        monkeypatch.setattr(_exup_action, 'open_repository', lambda *args: WithoutIndex(opened(*args)))
    windows = [window_now(10)]  # ten minutes left: too short for the 30 min default
    result, _remote = run_action('exup_apply', args(repository, pem, maintenance_windows=windows), check_mode=True)
    assert (result['window_code'], result['window']['estimate']['basis']) == ('window_too_short', 'default'), result['window']
    log_past_applies(repository, 'another-server', [50])  # another server's long apply does not count
    log_past_applies(repository, SERVER, [2, 4, 3])
    result, _remote = run_action('exup_apply', args(repository, pem, maintenance_windows=windows), check_mode=True)
    assert result['window']['code'] == 'window_open' and not result.get('skipped'), result['window']
    assert result['window']['estimate'] == {'seconds': 300, 'basis': 'history', 'runs': 3}  # the longest, 4 min, plus at least 60 s
