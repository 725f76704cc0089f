# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled download's loop (service/scheduler.py) on a real store, with a fake clock and a fake runner.

The clock is the repository's and the scheduler's (conftest ``clock``); ``wait`` moves it instead of sleeping, so a
day of schedule runs in milliseconds. The real sync of a scheduled run, against nginx, is
tests/system/test_service_schedule.py.
"""

from __future__ import annotations

import datetime
import json
import threading

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.catalog import format_time
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.repo.sync import SyncResult
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import notify, scheduler
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.config import ServiceConfig

HOUR = datetime.timedelta(hours=1)


class Runner:
    """Stands for the sync: counts its calls, returns a result or raises what it is told to."""

    def __init__(self, clock, takes=datetime.timedelta(minutes=3)):
        self.clock, self.takes = clock, takes
        self.calls: list[datetime.datetime] = []
        self.raises: BaseException | None = None
        self.result = SyncResult()

    def __call__(self, sched):
        self.calls.append(self.clock.now)
        self.clock.now += self.takes
        if self.raises is not None:
            raise self.raises
        return self.result


def make(repo, clock, runner=None, **config):
    config.setdefault('feed_url', 'http://127.0.0.1:9/catalog.json')
    return scheduler.Scheduler(repo, ServiceConfig(store=repo.store.root, **config), clock=clock, runner=runner)


def codes(repo, prefix=('scheduled_', 'packages_', 'webhook_')):
    with repo.read() as index:
        rows = index.conn.execute('SELECT code, message, detail FROM events ORDER BY id').fetchall()
    return [(row[0], row[1], json.loads(row[2])) for row in rows if row[0].startswith(prefix)]


def every(repo, clock, hours=1, minutes_ago=0):
    """A schedule whose slot started ``minutes_ago`` minutes ago (the time of day of now, minus that)."""
    at = (clock.now - datetime.timedelta(minutes=minutes_ago)).strftime('%H:%M')
    repo.change_settings({'download_interval_hours': hours, 'download_at': at})
    return at


def test_an_off_schedule_never_runs_and_wakes_every_minute(repo, clock):
    runner = Runner(clock)
    sched = make(repo, clock, runner)
    for _round in range(3):
        assert sched.step() == scheduler.POLL_SECONDS
        clock.advance(hours=5)
    assert runner.calls == [] and sched.read_state()['next_run'] is None


def test_a_fresh_slot_runs_once_and_a_restart_does_not_run_it_again(repo, clock):
    every(repo, clock, hours=1, minutes_ago=2)
    runner = Runner(clock)
    sched = make(repo, clock, runner)
    seconds = sched.step()
    assert len(runner.calls) == 1
    state = sched.read_state()
    assert state['last_outcome'] == 'finished' and state['last_run'] == format_time(clock.now)
    slot = clock.now.replace(second=0) - datetime.timedelta(minutes=5)  # 2 min ago when it started, then 3 min of run
    assert state['last_slot'] == format_time(slot) and state['next_run'] == format_time(slot + HOUR)
    assert seconds == scheduler.POLL_SECONDS  # the next run is 55 minutes away: wake within a minute anyway
    assert sched.step() == scheduler.POLL_SECONDS and len(runner.calls) == 1
    sched.release()
    restarted = make(repo, clock, runner)  # a restart reads the kept state
    clock.advance(minutes=10)
    assert restarted.step() == scheduler.POLL_SECONDS and len(runner.calls) == 1
    clock.now = slot + HOUR - datetime.timedelta(seconds=20)
    assert restarted.step() == 20.0  # wakes at the slot, not a minute late
    clock.advance(seconds=20)
    restarted.step()
    assert len(runner.calls) == 2
    events = codes(repo)
    assert [code for code, _m, _d in events] == ['scheduled_download_started', 'scheduled_download_finished'] * 2
    assert events[1][2] == {'slot': format_time(slot), 'added': 0, 'removed': 0, 'refused': 0, 'next_run': format_time(slot + HOUR)}


def test_slots_missed_while_the_service_was_down_run_once(repo, clock):
    every(repo, clock, hours=1, minutes_ago=30)
    runner = Runner(clock)
    sched = make(repo, clock, runner)
    sched.write_state({'last_run': format_time(clock.now - 5 * HOUR)})  # down for five slots
    sched.step()
    sched.step()
    assert len(runner.calls) == 1


def test_no_run_without_a_fresh_slot_when_never_run(repo, clock):
    every(repo, clock, hours=24, minutes_ago=30)  # today's slot began 30 min ago: too old to be "now" (DUE_WINDOW)
    runner = Runner(clock)
    sched = make(repo, clock, runner)
    sched.step()
    assert runner.calls == []
    clock.advance(hours=23, minutes=30)
    sched.step()
    assert len(runner.calls) == 1


def test_the_settings_are_read_again_at_each_wake(repo, clock):
    runner = Runner(clock)
    sched = make(repo, clock, runner)
    sched.step()
    every(repo, clock, hours=2)  # changed while the service runs: the next wake sees it
    sched.step()
    assert len(runner.calls) == 1
    repo.change_settings({'download_interval_hours': 0})
    clock.advance(hours=4)
    sched.step()
    assert len(runner.calls) == 1


def test_a_failed_run_counts_as_done_and_logs_its_cause(repo, clock):
    every(repo, clock, hours=1)
    runner = Runner(clock)
    runner.raises = ExupError('cannot reach the feed: refused', code='connection_failed')
    sched = make(repo, clock, runner)
    sched.step()
    sched.step()
    assert len(runner.calls) == 1  # not retried every minute: the next slot tries again
    code, message, detail = codes(repo)[-1]
    assert code == 'scheduled_download_failed' and message == 'Scheduled download of update packages failed. (cannot reach the feed: refused)'
    assert detail['error'] == 'connection_failed' and detail['next_run'] == sched.read_state()['next_run']
    assert sched.read_state()['last_outcome'] == 'failed'


def test_a_run_cancelled_by_a_shutdown_is_not_done(repo, clock):
    every(repo, clock, hours=1)
    runner = Runner(clock)
    runner.raises = scheduler.RunCancelled()
    sched = make(repo, clock, runner)
    sched.step()
    state = sched.read_state()
    assert state['last_outcome'] == 'cancelled' and 'last_run' not in state
    assert codes(repo)[-1][:2] == ('scheduled_download_cancelled', 'Scheduled download of update packages cancelled. (the repository service stopped)')
    runner.raises = None
    sched.release()
    make(repo, clock, runner).step()  # the service is back: the slot runs
    assert len(runner.calls) == 2


def test_an_unexpected_error_is_logged_and_the_loop_goes_on(repo, clock):
    every(repo, clock, hours=1)
    runner = Runner(clock)
    runner.raises = ZeroDivisionError('boom')
    sched = make(repo, clock, runner)
    sched.step()
    code, message, detail = codes(repo)[-1]
    assert code == 'scheduled_download_failed' and 'ZeroDivisionError: boom' in message and detail['error'] == 'service_failed'


def test_without_a_feed_url_the_real_runner_fails_with_download_unavailable(repo, clock):
    every(repo, clock, hours=1)
    sched = scheduler.Scheduler(repo, ServiceConfig(store=repo.store.root), clock=clock)
    sched.step()
    code, message, detail = codes(repo)[-1]
    assert code == 'scheduled_download_failed' and detail['error'] == 'download_unavailable' and 'has no feed_url' in message


def test_one_scheduler_per_store_holds_the_schedule(repo, clock):
    every(repo, clock, hours=1)
    first_runner, second_runner = Runner(clock), Runner(clock)
    first, second = make(repo, clock, first_runner), make(repo, clock, second_runner)
    assert first.hold() and not second.hold()
    second.step()
    first.step()
    assert (len(first_runner.calls), len(second_runner.calls)) == (1, 0)
    first.release()  # its process ended: the other takes over, and the kept state says the slot is done
    second.step()
    assert second.hold() and len(second_runner.calls) == 0


def test_run_forever_sleeps_at_most_a_minute_and_stops(repo, clock):
    every(repo, clock, hours=6, minutes_ago=1)
    slot = clock.now.replace(second=0, microsecond=0) - datetime.timedelta(minutes=1)
    runner = Runner(clock)
    slept: list[float] = []
    sched = make(repo, clock, runner)

    def wait(seconds):
        slept.append(seconds)
        clock.now += datetime.timedelta(seconds=seconds)
        return clock.now - runner.calls[0] > datetime.timedelta(hours=13) if runner.calls else False

    sched.wait = wait
    sched.run_forever()
    assert len(runner.calls) == 3  # at +0, +6 h and +12 h
    assert max(slept) <= scheduler.POLL_SECONDS and min(slept) >= 0
    assert runner.calls == [slot + datetime.timedelta(minutes=1), slot + 6 * HOUR, slot + 12 * HOUR]  # each at its slot
    other = make(repo, clock, Runner(clock))
    assert other.hold()  # the loop released the schedule when it ended
    other.release()


def test_stop_cancels_a_run_in_flight(repo, clock):
    every(repo, clock, hours=1)
    started = threading.Event()

    def runner(sched):
        started.set()
        if sched.cancel.wait(30):  # the real sync ends at its next piece of data; this one at once
            raise scheduler.RunCancelled()
        return SyncResult()

    sched = make(repo, clock, runner)
    sched.start()
    assert started.wait(30)
    assert sched.stop(timeout=30) is True
    assert codes(repo)[-1][0] == 'scheduled_download_cancelled'
    assert sched.read_state()['last_outcome'] == 'cancelled'


def test_a_run_that_added_packages_logs_the_notice_and_calls_each_webhook(repo, clock, register, build_pkg, keyring, monkeypatch):
    register('mgr-a', [{'name': 'web1', 'model': 'R120h-1M', 'os': 'linux'}, {'name': 'db1', 'model': 'T110-1M', 'os': 'linux'}])
    path = build_pkg(version='2.0')
    added = repo.add_files([path], keyring, mode='pinned')
    package_id = added[0]['package_id']
    every(repo, clock, hours=1)
    repo.change_settings({'notify_webhooks': ['http://127.0.0.1:9/secret-path-a', 'https://hooks.example/b'], 'webhook_secret': 'signing key 123'})
    posted = []

    def send(url, body, timeout, ca_path=None, validate_certs=True, secret=None, event=notify.EVENT):
        posted.append((url, body, secret, timeout))
        if url.endswith('/b'):
            return {'url': url, 'ok': False, 'error': 'webhook_rejected', 'msg': 'the webhook at https://hooks.example answered 500', 'status': 500}
        return {'url': url, 'ok': True, 'status': 204}

    monkeypatch.setattr(notify, 'send_webhook', send)
    runner = Runner(clock)
    runner.result.added = [{'package_id': package_id, 'module_id': 'system-bios', 'version': '2.0', 'size': 1}]
    make(repo, clock, runner).step()
    events = codes(repo)
    assert [code for code, _m, _d in events] == [
        'scheduled_download_started',
        'scheduled_download_finished',
        'packages_arrived',
        'webhook_sent',
        'webhook_failed',
    ]
    notice = events[2][2]
    assert notice['packages'] == [{'package_id': package_id, 'module_id': 'system-bios', 'version': '2.0'}]
    assert notice['servers'] == [{'manager_id': 'mgr-a', 'name': 'web1', 'model': 'R120h-1M', 'os': 'linux', 'package_ids': [package_id]}]
    assert (notice['package_count'], notice['server_count']) == (1, 1)
    assert [item[0] for item in posted] == ['http://127.0.0.1:9/secret-path-a', 'https://hooks.example/b']
    assert posted[0][1]['event'] == 'packages_arrived' and posted[0][2] == 'signing key 123' and posted[0][3] == scheduler.WEBHOOK_TIMEOUT
    assert events[3][2] == {'webhook': 0, 'origin': 'http://127.0.0.1:9', 'status': 204}
    assert events[4][1].endswith('(the webhook at https://hooks.example answered 500)') and events[4][2]['error'] == 'webhook_rejected'
    assert 'secret-path-a' not in json.dumps(events) and 'signing key 123' not in json.dumps(events)


@pytest.mark.parametrize(('url', 'shown'), [('https://h.example:8443/x?token=1', 'https://h.example:8443'), ('http://u:p@h.example/x', 'http://h.example')])
def test_origin_never_shows_a_path_or_credentials(url, shown):
    assert scheduler.origin(url) == shown
