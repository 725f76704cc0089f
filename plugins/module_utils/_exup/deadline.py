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

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

RETRY_AFTER_CAP = 30.0  # seconds: a longer Retry-After is honoured only this long (the sync holds the writer lock)
MIN_WAIT = 0.05  # seconds: a socket timeout of 0 would mean non-blocking, not "no time left"


class Deadline:
    """The moment (monotonic clock) by which an operation of ``seconds`` must have ended.

    ``what`` names it in messages (for example "the sync's time limit of 3600 s").
    """

    def __init__(self, seconds, what=None, clock=time.monotonic):
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ExupError('a time limit must be a positive number of seconds, not %r' % (seconds,), code='argument_invalid')
        self.seconds = seconds
        self.what = what or 'its time limit of %g s' % seconds
        self._clock = clock
        self.ends = clock() + seconds

    def remaining(self):
        """Seconds left, never below 0."""
        return max(0.0, self.ends - self._clock())

    def expired(self):
        return self._clock() >= self.ends

    def wait(self, seconds):
        """``seconds`` cut to what is left, and at least MIN_WAIT (for socket timeouts)."""
        return max(MIN_WAIT, min(seconds, self.remaining()))


def retry_sleep(requested, deadline=None, cap=RETRY_AFTER_CAP):
    """How long to sleep before a retry a server asked for with Retry-After (or a backoff asked for): never above
    ``cap``, never past ``deadline``. None or a negative request is 0."""
    if requested is None or requested <= 0:
        return 0.0
    sleep = min(float(requested), cap)
    if deadline is not None:
        sleep = min(sleep, deadline.remaining())
    return sleep
