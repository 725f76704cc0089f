# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote batch (rules/remote_batch.py): settings, the events of start and result, the systemd units and their quoting."""

from __future__ import annotations

import re
import shlex

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import events
from ansible_collections.exup.fleet.plugins.module_utils._exup.rules import remote_batch as rb


def row(server, failed=False, chosen=True, reboot='-', failures=(), held_back=False):
    return {
        'server': server,
        'status_before': 'update_available',
        'status_after': 'latest',
        'chosen': chosen,
        'failed': failed,
        'failures': list(failures),
        'reboot': reboot,
        'held_back': held_back,
    }


def test_settings_are_checked_before_anything_runs():
    assert rb.check_batch(rb.Batch()) == []
    assert rb.check_batch(rb.Batch(download=True, feed_url='http://127.0.0.1/catalog.json')) == []
    problems = rb.check_batch(rb.Batch(name='../x', target=' ', download=True, feed_url=''))
    assert len(problems) == 3
    assert problems[0].startswith('remote_batch_name') and 'remote_batch_feed_url' in problems[2]
    with pytest.raises(ValueError, match='unknown remote batch settings: reboot'):
        rb.Batch.from_mapping({'reboot': True})
    assert rb.Batch.from_mapping({'name': 'sat', 'feed_url': None}).feed_url == ''


def test_the_prefixed_rollout_settings_problems_make_the_batch_invalid_before_its_start():
    # playbooks/remote_batch.yml gives what rollout_check / rollout_waves_check found: the start is then not logged
    serial = 'remote_batch_serial must be a number of servers, a percent ("25%") or a list of them (not bogus).'
    assert rb.check_batch(rb.Batch(), [serial]) == [serial]
    assert rb.check_batch(rb.Batch(name='../x'), (serial,))[1:] == [serial]
    assert rb.check_batch(rb.Batch(), []) == []


def test_start_event_carries_the_settings():
    code, cause, detail = rb.started(rb.Batch(name='sat', download=True, feed_url='http://f/catalog.json', allow_reboot=True))
    assert (code, cause) == ('remote_batch_started', None)
    assert detail == {'batch': 'sat', 'target': 'managed', 'download': True, 'allow_reboot': True, 'feed_url': 'http://f/catalog.json'}
    assert 'feed_url' not in rb.started(rb.Batch())[2]


def test_result_counts_servers_and_names_the_failed_ones():
    batch = rb.Batch(name='sat', download=True, feed_url='http://f/c.json', allow_reboot=True)
    sync = {'added': [{'package_id': 'b'}, 'a'], 'removed': [{'package_id': 'old'}], 'refused': [], 'catalog': {'version': 7}}
    code, cause, detail = rb.result(batch, [row('h1', reboot='rebooted'), row('h2', chosen=False)], sync)
    assert code == 'remote_batch_finished' and cause == '1 applied, 0 skipped'
    assert (detail['servers'], detail['chosen'], detail['failed'], detail['rebooted'], detail['held_back']) == (2, 1, 0, 1, 0)
    assert detail['downloaded'] == {'added': ['a', 'b'], 'removed': 1, 'refused': 0, 'catalog_version': 7}
    assert [item['server'] for item in detail['results']] == ['h1', 'h2']

    rows = [row('h%d' % number, failed=True, failures=['exup_apply: boom %d' % number]) for number in range(7)] + [row('ok', held_back=True)]
    code, cause, detail = rb.result(rb.Batch(), rows)
    assert code == 'remote_batch_failed' and 'downloaded' not in detail
    assert cause.startswith('7 of 8 server(s) failed: h0: exup_apply: boom 0; h1:') and cause.endswith('and 2 more')
    assert detail['held_back'] == 1
    assert rb.result(rb.Batch(), [row('x', failed=True)])[1] == '1 of 1 server(s) failed: x: failed'
    # no server at all: finished, nothing to say
    assert rb.result(rb.Batch(), [])[:2] == ('remote_batch_finished', None)


def test_a_batch_where_every_server_was_refused_says_so():
    # the pre-flight gate / a maintenance window refused every server (waves.gated: skipped, code); not a plain "finished."
    rows = [dict(row('h%d' % number, held_back=False), skipped=True, applied=False, code='outside_window', status_after='-') for number in range(3)]
    code, cause, detail = rb.result(rb.Batch(), rows)
    assert code == 'remote_batch_finished'
    assert cause == '0 applied, 3 skipped: h0 outside_window, h1 outside_window, h2 outside_window'
    assert (detail['applied'], detail['skipped'], detail['failed']) == (0, 3, 0)
    assert [(item['skipped'], item['code']) for item in detail['results']] == [(True, 'outside_window')] * 3
    message = events.event(code, cause, **detail)['message']
    assert message == 'Remote batch finished. (0 applied, 3 skipped: h0 outside_window, h1 outside_window, h2 outside_window)'
    mixed = [
        dict(row('a'), applied=True, code=None),
        dict(row('b'), skipped=True, applied=False, code='preflight_low_disk'),
        dict(row('c', held_back=True), applied=False, code='held_back'),
    ] + [dict(row('s%d' % number), skipped=True, applied=False, code='window_too_short') for number in range(6)]
    cause = rb.result(rb.Batch(), mixed)[1]
    assert cause.startswith('1 applied, 7 skipped: b preflight_low_disk, s0 window_too_short,') and cause.endswith('and 2 more; 1 held back: c held_back')
    # an older row without "applied": chosen and neither held back, skipped nor failed
    assert rb.result(rb.Batch(), [row('x'), row('y', chosen=False)])[2]['applied'] == 1


def test_a_failed_download_stops_the_batch_with_its_cause():
    code, cause, detail = rb.download_failed(
        rb.Batch(download=True, feed_url='http://f'), {'failed': True, 'msg': 'catalog expired', 'error': 'catalog_expired'}
    )
    assert code == 'remote_batch_failed'
    assert cause == 'the download before the apply failed: catalog expired [catalog_expired]; nothing was applied'
    assert detail['stage'] == 'download' and detail['error'] == 'catalog_expired'
    assert rb.download_failed(rb.Batch(), {})[2]['error'] == 'download_failed'


def test_every_code_has_wording():
    for code in ('remote_batch_started', 'remote_batch_finished', 'remote_batch_failed'):
        assert code in events.EVENTS
    item = events.event(*rb.download_failed(rb.Batch(), {'msg': 'x'})[:2])
    assert item['level'] == events.ERROR and item['message'].startswith('Remote batch failed. (the download')


def _unquote(line):
    """How systemd reads an ExecStart= value made of double-quoted words (systemd.service(5)): % and $ doubled."""
    return shlex.split(line.replace('%%', '\0p').replace('$$', '\0d').replace('\0p', '%').replace('\0d', '$'))


@pytest.mark.parametrize(
    'argument',
    ['plain', 'with space', 'quote"inside', "single'quote", 'back\\slash', '100%', '%n', '$HOME', '${X}', '@/etc/exup/batch.yml', ''],
)
def test_every_argument_reaches_the_command_as_given(argument):
    timer = rb.Timer(name='t', on_calendar='daily', command=['/usr/bin/ansible-playbook', argument])
    line = rb.units(timer)['exec_start']
    assert _unquote(line) == ['/usr/bin/ansible-playbook', argument]
    assert '%' not in line.replace('%%', '') and '$' not in line.replace('$$', '')


def test_units_text():
    timer = rb.Timer(
        name='sat',
        on_calendar='Sat *-*-* 02:00:00',
        command=['/v/bin/ansible-playbook', '-i', '/etc/exup/inv', 'exup.fleet.remote_batch'],
        deadline_seconds='3600',
        user='exup',
        working_directory='/var/lib/exup',
        environment={'B': 'x%y', 'A': '1'},
    )
    made = rb.units(timer)
    assert (made['service_name'], made['timer_name']) == ('exup-remote-batch-sat.service', 'exup-remote-batch-sat.timer')
    service = made['service'].splitlines()
    assert 'Type=exec' in service and 'RuntimeMaxSec=3600' in service and 'User=exup' in service
    # the environment is in the 0600 EnvironmentFile=, never in the 0644 unit
    assert 'EnvironmentFile=/etc/exup/remote-batch-sat.env' in service and made['environment_file'] == '/etc/exup/remote-batch-sat.env'
    assert not any(line.startswith('Environment=') for line in service) and 'x%y' not in made['service']
    assert made['environment'].splitlines()[1:] == ['A="1"', 'B="x%y"']
    assert 'WorkingDirectory="/var/lib/exup"' in service
    assert 'ExecStart=' + made['exec_start'] in service
    timer_lines = made['timer'].splitlines()
    # a missed run is not started at the next boot (an unplanned reboot) unless the operator asks for it
    for wanted in ('OnCalendar=Sat *-*-* 02:00:00', 'Persistent=false', 'Unit=exup-remote-batch-sat.service', 'WantedBy=timers.target'):
        assert wanted in timer_lines
    assert 'Persistent=true' in rb.units(rb.Timer(name='x', on_calendar='daily', command=['/x'], persistent=True))['timer']
    bare = rb.units(rb.Timer(name='x', on_calendar='daily', command=['/x']))
    assert bare['environment'] == '' and 'EnvironmentFile' not in bare['service'] and bare['environment_file'] == '/etc/exup/remote-batch-x.env'


def _env_file(text):
    """How systemd reads KEY="value" lines of an EnvironmentFile= (systemd.exec(5), env-file.c): in double quotes a
    backslash escapes \\ " ` $ (and is kept before any other character); no specifiers, no $ expansion."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith(('#', ';')):
            key, value = line.split('=', 1)
            assert value[0] == value[-1] == '"' and len(value) >= 2
            values[key] = re.sub(r'\\(.)', lambda match: match.group(1) if match.group(1) in '\\"`$' else match.group(0), value[1:-1])
    return values


@pytest.mark.parametrize('value', ['s3cret', 'with space', 'quote"in', "single'q", 'back\\slash', 'end\\', '100%', '$HOME', '`x`', '#x', ''])
def test_every_environment_value_reaches_the_service_as_given(value):
    made = rb.units(rb.Timer(name='t', on_calendar='daily', command=['/x'], environment={'EXUP_VALUE': value, 'A': 1}))
    assert _env_file(made['environment']) == {'EXUP_VALUE': value, 'A': '1'}
    assert value == '' or value not in made['service'].replace('/x', '')


def test_timer_settings_are_checked():
    good = {'name': 'sat', 'on_calendar': 'daily', 'command': ['/usr/bin/ansible-playbook']}
    assert rb.check_timer(rb.Timer.from_mapping(good)) == []
    cases = {
        'name': ('a/b', 'remote_batch_name'),
        'on_calendar': ('daily\nExecStart=/bin/sh', 'remote_batch_timer_on_calendar'),
        'command': (['ansible-playbook'], 'absolute path'),
        'deadline_seconds': (0, 'deadline_seconds'),
        'user': ('root;x', 'remote_batch_timer_user'),
        'working_directory': ('relative', 'working_directory'),
        'environment': ({'BAD-NAME': '1'}, 'BAD-NAME'),
    }
    for key, (value, expected) in cases.items():
        problems = rb.check_timer(rb.Timer.from_mapping(dict(good, **{key: value})))
        assert len(problems) == 1 and expected in problems[0], (key, problems)
    assert 'newline' in rb.check_timer(rb.Timer.from_mapping(dict(good, command=['/x', 'a\nb'])))[0]
    assert 'non-empty list' in rb.check_timer(rb.Timer.from_mapping(dict(good, command='/x')))[0]
    assert rb.check_timer(rb.Timer.from_mapping(dict(good, deadline_seconds=True)))
    with pytest.raises(ValueError, match='needs command'):
        rb.Timer.from_mapping({'name': 'x', 'on_calendar': 'daily'})
