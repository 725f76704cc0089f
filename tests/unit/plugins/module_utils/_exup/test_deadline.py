# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deadlines of whole operations and the cap on a server's Retry-After (issue 8 item 3), as pure time arithmetic.

The HTTP side (a trickling server, a 503 with Retry-After: 3600) is in tests/system/test_sync_deadlines.py;
here a fake clock and urllib3's own response objects, no network.
"""

from __future__ import annotations

import email.utils
import time

import pytest
from urllib3.response import HTTPResponse

from ansible_collections.exup.fleet.plugins.module_utils._exup import deadline, requests_path, transport
from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import MIN_WAIT, RETRY_AFTER_CAP, Deadline, retry_sleep
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_deadline_counts_down_and_expires():
    clock = Clock()
    deadline = Deadline(10, clock=clock)
    assert (deadline.remaining(), deadline.expired()) == (10, False)
    clock.now += 9.5
    assert (deadline.remaining(), deadline.expired()) == (0.5, False)
    clock.now += 0.5
    assert (deadline.remaining(), deadline.expired()) == (0, True)
    clock.now += 100
    assert deadline.remaining() == 0  # never negative


def test_deadline_names_itself():
    assert Deadline(3600).what == 'its time limit of 3600 s'
    assert Deadline(5, what="the sync's time limit of 5 s").what == "the sync's time limit of 5 s"


def test_a_wait_is_cut_to_what_is_left_but_never_zero():
    # A socket timeout of 0 means non-blocking: a request started with no time left must still fail as a timeout.
    clock = Clock()
    deadline = Deadline(10, clock=clock)
    assert deadline.wait(30) == 10
    assert deadline.wait(2) == 2
    clock.now += 10
    assert deadline.wait(30) == MIN_WAIT > 0


@pytest.mark.parametrize('seconds', [0, -1, None, True, '60', float('nan')])
def test_a_time_limit_must_be_a_positive_number(seconds):
    with pytest.raises(ExupError) as caught:
        Deadline(seconds)
    assert caught.value.code == 'argument_invalid'
    assert caught.value.msg == 'a time limit must be a positive number of seconds, not %r' % (seconds,)


@pytest.mark.parametrize(
    'requested, left, expected',
    [
        (3600, None, RETRY_AFTER_CAP),  # the issue: a 503 with Retry-After: 3600 slept an hour holding the writer lock
        (3600, 5, 5),  # never past the deadline
        (2, None, 2),  # a short wait is honoured as asked
        (2, 0.5, 0.5),
        (0, None, 0),
        (-5, None, 0),
        (None, None, 0),
    ],
)
def test_retry_sleep(requested, left, expected):
    deadline = Deadline(left, clock=Clock()) if left else None
    assert retry_sleep(requested, deadline) == expected


def test_the_cap_is_small():
    assert RETRY_AFTER_CAP == 30


def response(retry_after):
    return HTTPResponse(body=b'', headers={'Retry-After': retry_after}, status=503, preload_content=False)


@pytest.mark.parametrize(
    'value, expected',
    [
        ('3600', RETRY_AFTER_CAP),
        ('1', 1),
        pytest.param(email.utils.formatdate(time.time() + 86400, usegmt=True), RETRY_AFTER_CAP, id='http-date-a-day-away'),
        ('soon', None),  # neither seconds nor a date: no Retry-After (a backoff), not an InvalidHeader traceback
    ],
)
def test_urllib3_retry_honours_retry_after_up_to_the_cap(value, expected):
    retry = requests_path._BoundedRetry(total=3, status_forcelist=(503,))
    assert retry.get_retry_after(response(value)) == expected
    assert retry.new(total=2).get_retry_after(response(value)) == expected  # the copies urllib3 makes keep the cap


def test_urllib3_retry_never_sleeps_past_the_request_deadline():
    clock = Clock()
    watch = transport._RequestWatch(Deadline(2, clock=clock))
    with watch:
        retry = requests_path._BoundedRetry(total=3, backoff_factor=100, status_forcelist=(503,))
        assert retry.get_retry_after(response('3600')) == 2
        clock.now += 1.5
        assert retry.get_retry_after(response('3600')) == 0.5
        retry = retry.increment('GET', '/', error=requests_path.requests.exceptions.ConnectionError()).increment(
            'GET', '/', error=requests_path.requests.exceptions.ConnectionError()
        )
        assert retry.get_backoff_time() == 0.5  # 200 s of exponential backoff, cut to what is left
    assert transport._active_deadline() is None


def test_request_budget_is_a_base_plus_the_size_at_the_minimum_rate():
    assert deadline.request_budget() == deadline.REQUEST_BASE_SECONDS
    assert deadline.request_budget(10 * deadline.MIN_TRANSFER_RATE) == deadline.REQUEST_BASE_SECONDS + 10


def test_request_deadline_is_cut_to_the_sync_deadline():
    def clock():
        return 100.0

    sync = deadline.Deadline(3600, clock=clock)
    request = deadline.request_deadline(sync, 0, clock=clock)
    assert request is not sync and request.ends == 100.0 + deadline.REQUEST_BASE_SECONDS
    assert 'request time limit' in request.what
    short = deadline.Deadline(5, clock=clock)
    assert deadline.request_deadline(short, 10**9, clock=clock) is short
    assert deadline.request_deadline(None, 0, clock=clock).ends == 100.0 + deadline.REQUEST_BASE_SECONDS


@pytest.mark.parametrize(
    ('value', 'expected'),
    [('7', 7.0), (' 120 ', 120.0), ('soon', None), ('', None), (None, None), ('\u00b2', None), ('-5', None)],
)
def test_libcurl_path_reads_retry_after_as_urllib3_does(value, expected):
    assert transport._retry_after(value) == expected


def test_libcurl_path_reads_a_retry_after_date():
    day = email.utils.formatdate(time.time() + 86400, usegmt=True)
    assert 86300 < transport._retry_after(day) <= 86400
    assert transport._retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0  # a date passed: no wait
