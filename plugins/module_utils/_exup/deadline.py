# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deadlines of whole operations (a request, a sync): pure time arithmetic, no I/O.

A socket timeout bounds one read only: a server that sends a byte every 2 s never trips a 30 s
read timeout, and a Retry-After of 3600 made urllib3 sleep an hour. So every network operation of
a sync ends at a ``Deadline``, and every wait inside it (a socket read, a retry's sleep) is cut
to the time that is left.
"""

from __future__ import annotations

import time
from typing import Callable

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

Clock = Callable[[], float]  # seconds of a monotonic clock

RETRY_AFTER_CAP = 30.0  # seconds: a longer Retry-After is honoured only this long (the sync holds the writer lock)
MIN_WAIT = 0.05  # seconds: a socket timeout of 0 would mean non-blocking, not "no time left"
# One request of a sync gets REQUEST_BASE_SECONDS plus its stated size at MIN_TRANSFER_RATE, so a server
# trickling bytes is cut after minutes, not at the end of the sync's hour (the catalog has no stated size).
REQUEST_BASE_SECONDS = 60.0
MIN_TRANSFER_RATE = 64 * 1024  # bytes per second


class Deadline:
    """The moment (monotonic clock) by which an operation of ``seconds`` must have ended.

    ``what`` names it in messages (for example "the sync's time limit of 3600 s").
    """

    def __init__(self, seconds: float, what: str | None = None, clock: Clock = time.monotonic) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ExupError('a time limit must be a positive number of seconds, not %r' % (seconds,), code='argument_invalid')
        self.seconds = seconds
        self.what = what or 'its time limit of %g s' % seconds
        self._clock = clock
        self.ends = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.ends - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self.ends

    def sooner(self, seconds: float, what: str) -> Deadline:
        """A deadline ``seconds`` from now, or this one when it ends first (then it keeps its own name)."""
        request = Deadline(seconds, what, clock=self._clock)
        return self if self.ends <= request.ends else request

    def wait(self, seconds: float) -> float:
        """``seconds`` cut to what is left, and at least MIN_WAIT (for socket timeouts)."""
        return max(MIN_WAIT, min(seconds, self.remaining()))


def retry_sleep(requested: float | None, deadline: Deadline | None = None, cap: float = RETRY_AFTER_CAP) -> float:
    """How long to sleep before a retry a server asked for with Retry-After (or a backoff asked for): never above
    ``cap``, never past ``deadline``. None or a negative request is 0."""
    if requested is None or requested <= 0:
        return 0.0
    sleep = min(float(requested), cap)
    if deadline is not None:
        sleep = min(sleep, deadline.remaining())
    return sleep


def request_budget(size: int = 0) -> float:
    """Seconds one request may take as a whole: REQUEST_BASE_SECONDS plus ``size`` bytes at MIN_TRANSFER_RATE."""
    return REQUEST_BASE_SECONDS + max(0, size) / MIN_TRANSFER_RATE


def request_deadline(sync_deadline: Deadline | None, size: int = 0, clock: Clock = time.monotonic) -> Deadline:
    """The deadline of one request of a sync: its own budget, cut to the sync's ``sync_deadline`` (None: no sync limit)."""
    seconds = request_budget(size)
    what = 'the request time limit of %g s (%g s plus %d bytes at %d bytes/s)' % (seconds, REQUEST_BASE_SECONDS, max(0, size), MIN_TRANSFER_RATE)
    if sync_deadline is None:
        return Deadline(seconds, what, clock=clock)
    return sync_deadline.sooner(seconds, what)
