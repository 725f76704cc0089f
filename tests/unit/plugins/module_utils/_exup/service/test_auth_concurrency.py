# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logins at the same moment: Argon2 with several lanes in several threads, one verification per credentials in
flight, and the cached answer the app reads without a thread (found by benchmarks/bench_service.py, issue 11)."""

from __future__ import annotations

import base64
import threading

from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.auth import (
    Argon2Parameters,
    Authenticator,
    AuthResult,
    Credentials,
    hash_password,
    verify_password,
)

#: 4 lanes like the real parameters (RFC 9106), the least memory 4 lanes allow: fast, and still threaded in OpenSSL
LANES_4 = Argon2Parameters(memory_cost_kib=32, iterations=1, lanes=4, salt_bytes=16, length=32)
PASSWORD = 'read password 4567'
WRONG = 'not the password 89'
JOIN_SECONDS = 60.0  # a hang guard, not a speed limit


def basic(user, password):
    return 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode('utf-8')).decode('ascii')


def run_threads(count, target):
    """``count`` threads released together; each one's result or exception, in thread order."""
    gate = threading.Barrier(count)
    results: list = [None] * count

    def run(number):
        gate.wait()
        try:
            results[number] = target(number)
        except Exception as exc:  # pylint: disable=broad-except  # the test reports it
            results[number] = exc

    threads = [threading.Thread(target=run, args=(number,), daemon=True) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), 'a login hung'
    return results


class SlowCountingVerifier:
    """The real verification behind a gate the test opens, counting the runs."""

    def __init__(self):
        self.calls = 0
        self.started = threading.Event()
        self.go_on = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, phc, password):
        with self._lock:
            self.calls += 1
        self.started.set()
        self.go_on.wait(JOIN_SECONDS)
        return verify_password(phc, password)


def test_argon2_with_lanes_runs_in_many_threads_at_once():
    """Without the process-wide lock, OpenSSL's capped thread pool made these hang or raise MemoryError."""
    phc = hash_password(PASSWORD, LANES_4)
    results = run_threads(6, lambda number: [verify_password(phc, PASSWORD if number % 2 else WRONG) for _round in range(10)])
    assert results == [[False] * 10, [True] * 10] * 3


def test_hashing_beside_verifying_neither_hangs_nor_fails():
    phc = hash_password(PASSWORD, LANES_4)
    results = run_threads(4, lambda number: verify_password(hash_password(PASSWORD, LANES_4), PASSWORD) if number % 2 else verify_password(phc, PASSWORD))
    assert results == [True] * 4


def test_a_burst_of_the_same_right_credentials_runs_argon2_once():
    """200 requests from one address at a cold cache: one verification, every request admitted, none refused."""
    phc = hash_password(PASSWORD, LANES_4)
    verifier = SlowCountingVerifier()
    authenticator = Authenticator(Credentials(admin_hash=phc, read_hash=phc), verifier=verifier)
    header = basic('read', PASSWORD)

    def opener():
        verifier.started.wait(JOIN_SECONDS)
        verifier.go_on.set()  # the other threads are waiting on the first verification by now, or find the cache

    releaser = threading.Thread(target=opener, daemon=True)
    releaser.start()
    results = run_threads(200, lambda _number: authenticator.role_for(header, '192.0.2.7'))
    releaser.join(JOIN_SECONDS)
    assert results == [AuthResult(role='read')] * 200
    assert verifier.calls == 1
    assert authenticator.tracked_clients() == 0  # a success takes no slot
    assert authenticator._global_pending == 0 and not authenticator._in_flight  # pylint: disable=protected-access


def test_a_burst_of_the_same_wrong_password_is_counted_guess_by_guess():
    """Waiting for another's verification gives a wrong guess no free pass: the limits hold as before."""
    phc = hash_password(PASSWORD, LANES_4)
    verifier = SlowCountingVerifier()
    verifier.go_on.set()
    authenticator = Authenticator(Credentials(admin_hash=phc, read_hash=phc), verifier=verifier)
    header = basic('read', WRONG)
    results = run_threads(40, lambda _number: authenticator.role_for(header, '192.0.2.8').code)
    assert results.count('auth_failed') == auth.FAILURES_ALLOWED
    assert results.count('auth_rate_limited') == 40 - auth.FAILURES_ALLOWED
    assert verifier.calls == auth.FAILURES_ALLOWED
    assert authenticator._global_pending == 0 and not authenticator._in_flight  # pylint: disable=protected-access


def test_cached_role_answers_only_what_needs_no_argon2():
    phc = hash_password(PASSWORD, LANES_4)
    verifier = SlowCountingVerifier()
    verifier.go_on.set()
    authenticator = Authenticator(Credentials(admin_hash=phc, read_hash=phc), verifier=verifier)
    header = basic('read', PASSWORD)
    assert authenticator.cached_role(None, '192.0.2.9') == AuthResult(code='auth_required')
    assert authenticator.cached_role('Bearer x', '192.0.2.9') == AuthResult(code='auth_required')
    assert authenticator.cached_role(header, '192.0.2.9') is None  # not verified yet: role_for must run
    assert authenticator.cached_role(basic('read', WRONG), '192.0.2.9') is None
    assert verifier.calls == 0 and authenticator.tracked_clients() == 0  # asking counted nothing
    assert authenticator.role_for(header, '192.0.2.9') == AuthResult(role='read')
    assert authenticator.cached_role(header, '192.0.2.10') == AuthResult(role='read')  # any address, once verified
    assert authenticator.cached_role(basic('admin', PASSWORD), '192.0.2.10') is None  # the cache is per user and password
    assert verifier.calls == 1


def test_cached_role_refuses_a_locked_address_even_with_cached_credentials():
    phc = hash_password(PASSWORD, LANES_4)
    authenticator = Authenticator(Credentials(admin_hash=phc, read_hash=phc))
    header = basic('read', PASSWORD)
    assert authenticator.role_for(header, 'legit').ok
    for _guess in range(auth.FAILURES_ALLOWED):
        assert authenticator.role_for(basic('read', WRONG), 'prober').code == 'auth_failed'
    locked = authenticator.cached_role(header, 'prober')
    assert locked is not None and locked.code == 'auth_rate_limited' and locked.retry_after >= 1
    assert authenticator.cached_role(header, 'legit') == AuthResult(role='read')


def test_new_credentials_empty_the_cache_the_app_reads():
    phc = hash_password(PASSWORD, LANES_4)
    authenticator = Authenticator(Credentials(admin_hash=phc, read_hash=phc))
    header = basic('read', PASSWORD)
    assert authenticator.role_for(header, 'a').ok
    authenticator.replace(Credentials(admin_hash=phc, read_hash=hash_password('another password 0', LANES_4)))
    assert authenticator.cached_role(header, 'a') is None
    assert authenticator.role_for(header, 'a').code == 'auth_failed'
