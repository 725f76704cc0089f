# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote batch (rules/remote_batch.py): settings, the events of start and result, the systemd units and their quoting."""

from __future__ import annotations

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


def test_start_event_carries_the_settings():
    code, cause, detail = rb.started(rb.Batch(name='sat', download=True, feed_url='http://f/catalog.json', allow_reboot=True))
    assert (code, cause) == ('remote_batch_started', None)
    assert detail == {'batch': 'sat', 'target': 'managed', 'download': True, 'allow_reboot': True, 'feed_url': 'http://f/catalog.json'}
    assert 'feed_url' not in rb.started(rb.Batch())[2]


def test_result_counts_servers_and_names_the_failed_ones():
    batch = rb.Batch(name='sat', download=True, feed_url='http://f/c.json', allow_reboot=True)
    sync = {'added': [{'package_id': 'b'}, 'a'], 'removed': [{'package_id': 'old'}], 'refused': [], 'catalog': {'version': 7}}
    code, cause, detail = rb.result(batch, [row('h1', reboot='rebooted'), row('h2', chosen=False)], sync)
    assert code == 'remote_batch_finished' and cause is None
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
    assert rb.result(rb.Batch(), [])[0] == 'remote_batch_finished'


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
    assert service.index('Environment="A=1"') < service.index('Environment="B=x%%y"')
    assert 'WorkingDirectory="/var/lib/exup"' in service
    assert 'ExecStart=' + made['exec_start'] in service
    timer_lines = made['timer'].splitlines()
    for wanted in ('OnCalendar=Sat *-*-* 02:00:00', 'Persistent=true', 'Unit=exup-remote-batch-sat.service', 'WantedBy=timers.target'):
        assert wanted in timer_lines
    assert 'Persistent=false' in rb.units(rb.Timer(name='x', on_calendar='daily', command=['/x'], persistent=False))['timer']


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
