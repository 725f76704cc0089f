# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository service's logins: Basic headers, Argon2id hashes, credentials, the verification cache and the limiters."""

from __future__ import annotations

import base64
import threading

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError
from ansible_collections.exup.fleet.plugins.module_utils._exup.service import auth
from ansible_collections.exup.fleet.plugins.module_utils._exup.service.auth import (
    Argon2Parameters,
    Authenticator,
    AuthResult,
    Credentials,
    hash_password,
    parse_basic,
    role_allows,
    verify_password,
)

#: the smallest costs Argon2id accepts: a hash in well under a millisecond, so the suite stays fast
CHEAP = Argon2Parameters(memory_cost_kib=8, iterations=1, lanes=1, salt_bytes=16, length=32)
ADMIN_PASSWORD = 'admin password 0123'
READ_PASSWORD = 'read password 4567'
WRONG_PASSWORD = 'not the password 89'


@pytest.fixture(scope='module')
def admin_hash():
    return hash_password(ADMIN_PASSWORD, CHEAP)


@pytest.fixture(scope='module')
def read_hash():
    return hash_password(READ_PASSWORD, CHEAP)


@pytest.fixture
def both(admin_hash, read_hash):
    return Credentials(admin_hash=admin_hash, read_hash=read_hash)


class SteppedClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def step(self, seconds):
        self.now += seconds


class CountingVerifier:
    """verify_password, counting how often Argon2 runs (thread-safe: the thread test shares one)."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, phc, password):
        with self._lock:
            self.calls += 1
        return verify_password(phc, password)


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def verifier():
    return CountingVerifier()


@pytest.fixture
def authenticator(both, clock, verifier):
    return Authenticator(both, clock=clock, verifier=verifier)


def basic(user, password):
    return 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode('utf-8')).decode('ascii')


def raw_basic(payload):
    return 'Basic ' + base64.b64encode(payload).decode('ascii')


def refused(result, code):
    assert result == AuthResult(role=None, code=code, retry_after=result.retry_after)
    return result


# --------------------------------------------------------------------------- roles


def test_admin_may_do_what_read_may_but_not_the_other_way():
    assert role_allows('admin', 'read') and role_allows('admin', 'admin') and role_allows('read', 'read')
    assert not role_allows('read', 'admin')
    assert not role_allows('guest', 'read') and not role_allows('admin', 'root')


def test_forbidden_names_both_roles():
    error = auth.forbidden('read', 'admin')
    assert (error.code, error.msg) == ('forbidden', 'the read user may not do this; it needs the admin user')


# --------------------------------------------------------------------------- parse_basic


def test_parse_basic_reads_user_and_password_and_keeps_colons_in_the_password():
    assert parse_basic(basic('admin', 'a:b:c')) == ('admin', 'a:b:c')
    assert parse_basic('  bAsIc   ' + basic('read', 'pw')[6:] + ' ') == ('read', 'pw')
    assert parse_basic(basic('admin', 'パスワード')) == ('admin', 'パスワード')


@pytest.mark.parametrize(
    'header',
    [
        None,
        '',
        'Basic',
        'Basic ',
        'Bearer ' + basic('admin', 'x')[6:],
        'Digest username="admin"',
        'Basic not*base64!',
        'Basic YWRtaW46eA',  # padding missing
        'Basic YWRt aW46eA==',  # a space inside
        'Basic \uff39\uff37\uff32',  # not ASCII (fullwidth YWR)
        raw_basic(b'admin:\xff\xfe'),  # not UTF-8
        raw_basic(b'adminpassword'),  # no colon
        raw_basic(b''),
        'Basic ' + 'A' * auth.MAX_HEADER_CHARS,  # over 4 KiB
        12345,
    ],
    ids=lambda header: repr(header)[:30],
)
def test_parse_basic_is_none_for_hostile_headers(header):
    assert parse_basic(header) is None


def test_parse_basic_bound_is_on_the_whole_header():
    payload = b'admin:' + b'x' * 3000
    header = raw_basic(payload)
    assert len(header) <= auth.MAX_HEADER_CHARS
    assert parse_basic(header) == ('admin', 'x' * 3000)
    assert parse_basic(header + ' ' * (auth.MAX_HEADER_CHARS + 1 - len(header))) is None


def test_the_longest_password_fits_the_header_bound():
    longest = 'パ' * (auth.MAX_PASSWORD_BYTES // 3)  # 3 bytes each in UTF-8
    assert parse_basic(basic('admin', longest)) == ('admin', longest)
    assert parse_basic(basic('admin', 'x' * auth.MAX_PASSWORD_BYTES)) == ('admin', 'x' * auth.MAX_PASSWORD_BYTES)


# --------------------------------------------------------------------------- hashing


def test_hash_and_verify_round_trip_with_cheap_parameters():
    phc = hash_password(ADMIN_PASSWORD, CHEAP)
    assert phc.startswith('$argon2id$v=19$m=8,t=1,p=1$')
    assert verify_password(phc, ADMIN_PASSWORD)
    assert not verify_password(phc, WRONG_PASSWORD)
    assert not verify_password(phc, ADMIN_PASSWORD + ' ')
    assert hash_password(ADMIN_PASSWORD, CHEAP) != phc  # a fresh salt each time


def test_real_parameters_round_trip():
    phc = hash_password(ADMIN_PASSWORD)
    assert phc.startswith('$argon2id$v=19$m=65536,t=3,p=4$')
    assert verify_password(phc, ADMIN_PASSWORD)
    assert not verify_password(phc, WRONG_PASSWORD)


def test_the_module_parameters_are_read_at_call_time(monkeypatch):
    monkeypatch.setattr(auth, 'ARGON2_PARAMETERS', CHEAP)
    assert hash_password(ADMIN_PASSWORD).startswith('$argon2id$v=19$m=8,t=1,p=1$')


def test_real_parameters_are_owasp_minimum_or_more():
    parameters = auth.ARGON2_PARAMETERS
    assert parameters == Argon2Parameters(memory_cost_kib=65536, iterations=3, lanes=4, salt_bytes=16, length=32)
    assert parameters.memory_cost_kib >= 19 * 1024 and parameters.iterations >= 2


@pytest.mark.parametrize(
    'password, code, rule',
    [
        ('', 'password_weak', 'at least 12 characters'),
        ('elevenchars', 'password_weak', 'at least 12 characters'),
        ('x' * (auth.MAX_PASSWORD_BYTES + 1), 'password_invalid', 'at most 1024 bytes'),
        ('パ' * 342, 'password_invalid', 'at most 1024 bytes'),  # 342 characters, 1026 bytes
        ('surrogate \udc80 password', 'password_invalid', 'at most 1024 bytes'),
        (None, 'password_invalid', 'at most 1024 bytes'),
    ],
    ids=['empty', 'short', 'long', 'long-utf8', 'surrogate', 'not-text'],
)
def test_bad_passwords_are_refused_without_echoing_them(password, code, rule):
    with pytest.raises(ExupError) as caught:
        hash_password(password, CHEAP)
    assert caught.value.code == code
    assert caught.value.msg == auth.MESSAGES[code] and rule in caught.value.msg
    if password:
        assert password not in caught.value.msg and password not in str(caught.value.as_dict())


def test_edge_lengths_are_accepted():
    assert verify_password(hash_password('x' * 12, CHEAP), 'x' * 12)
    assert verify_password(hash_password('x' * auth.MAX_PASSWORD_BYTES, CHEAP), 'x' * auth.MAX_PASSWORD_BYTES)


@pytest.mark.parametrize(
    'phc',
    [
        '',
        'garbage',
        None,
        b'$argon2id$',
        '$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',
        '$argon2id$v=19$m=8,t=1,p=1$c2Fsdg$aGFzaGhhc2hoYXNoaGFzaGhhc2g',  # salt under 8 bytes
        '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFz',  # hash too short
        '$argon2id$v=16$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',
        '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRz*Wx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',
        '$argon2id$v=19$m=4194304,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',  # 4 GiB: never run
        '$argon2id$v=19$m=65536,t=1000,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',
        '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$' + 'A' * 300,
        '$argon2id$v=19$m=8,t=1,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',  # Argon2 raises ValueError: m < 8 p
        '$argon2id$v=19$m=8,t=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',
        '$argon2id$v=19$m=8,t=1,p=0$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',
    ],
    ids=lambda phc: repr(phc)[:40],
)
def test_malformed_or_too_costly_phc_is_false(phc):
    assert verify_password(phc, ADMIN_PASSWORD) is False


def test_an_over_long_phc_is_refused_even_when_it_would_match():
    long_output = Argon2Parameters(memory_cost_kib=8, iterations=1, lanes=1, salt_bytes=16, length=200)
    phc = hash_password(ADMIN_PASSWORD, long_output)
    assert len(phc) > auth.MAX_PHC_CHARS
    assert verify_password(phc, ADMIN_PASSWORD) is False


def test_a_tampered_hash_is_false(admin_hash):
    tampered = admin_hash[:-2] + ('AA' if admin_hash[-2:] != 'AA' else 'BB')
    assert not verify_password(tampered, ADMIN_PASSWORD)
    assert not verify_password(admin_hash, 'surrogate \udc80 password')


# --------------------------------------------------------------------------- credentials


def test_credentials_round_trip(both, admin_hash):
    assert Credentials.from_dict(both.as_dict()) == both
    only_admin = Credentials.from_dict({'admin_hash': admin_hash})
    assert only_admin.read_hash is None and only_admin.as_dict() == {'admin_hash': admin_hash, 'read_hash': None}


@pytest.mark.parametrize('data', [{}, {'admin_hash': None}, {'read_hash': None}])
def test_no_admin_password_is_missing_and_says_how_to_set_one(data):
    with pytest.raises(ExupError) as caught:
        Credentials.from_dict(data)
    assert caught.value.code == 'credentials_missing'
    assert caught.value.msg == auth.MESSAGES['credentials_missing']
    assert 'none is built in' in caught.value.msg and 'set the admin password' in caught.value.msg


@pytest.mark.parametrize(
    'data, user',
    [
        ({'admin_hash': 'plain text password'}, 'admin'),
        ({'admin_hash': '$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g'}, 'admin'),
        ({'admin_hash': 42}, 'admin'),
        ({'admin_hash': '$argon2id$v=19$m=4194304,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g'}, 'admin'),
        ({'admin_hash': 'ADMIN', 'read_hash': 'READ'}, 'admin'),
        ({'admin_hash': 'GOOD', 'read_hash': 'secret read'}, 'read'),
        ({'admin_hash': 'GOOD', 'read_hash': ''}, 'read'),
    ],
)
def test_credentials_accept_only_argon2id_phc_strings(data, user, admin_hash):
    data = {key: (admin_hash if value == 'GOOD' else value) for key, value in data.items()}
    with pytest.raises(ExupError) as caught:
        Credentials.from_dict(data)
    assert caught.value.code == 'credentials_invalid'
    assert caught.value.msg == auth.MESSAGES['credentials_invalid'] % user
    assert 'secret read' not in caught.value.msg and 'plain text password' not in caught.value.msg


def test_credentials_refuse_unknown_entries_and_non_mappings(admin_hash):
    with pytest.raises(ExupError) as caught:
        Credentials.from_dict({'admin_hash': admin_hash, 'root_hash': admin_hash})
    assert (caught.value.code, caught.value.msg) == ('credentials_invalid', 'the stored credentials have unknown entries: root_hash')
    with pytest.raises(ExupError) as caught:
        Credentials.from_dict(['admin_hash'])
    assert caught.value.code == 'credentials_invalid'


def test_credentials_are_checked_when_built_directly_too():
    with pytest.raises(ExupError) as caught:
        Credentials(admin_hash='x')
    assert caught.value.code == 'credentials_invalid'


# --------------------------------------------------------------------------- logins


def test_admin_and_read_log_in_with_their_roles(authenticator):
    admin = authenticator.role_for(basic('admin', ADMIN_PASSWORD), '10.0.0.1')
    assert admin == AuthResult(role='admin') and admin.ok and admin.allows('admin') and admin.allows('read')
    read = authenticator.role_for(basic('read', READ_PASSWORD), '10.0.0.1')
    assert read == AuthResult(role='read') and read.allows('read')
    assert not read.allows('admin')  # the read user cannot be admin


def test_the_read_password_does_not_open_admin(authenticator, verifier):
    refused(authenticator.role_for(basic('admin', READ_PASSWORD), '10.0.0.1'), 'auth_failed')
    assert verifier.calls == 1


def test_no_header_or_garbled_is_auth_required(authenticator, verifier):
    for header in (None, '', 'Bearer abc', raw_basic(b'no colon')):
        result = refused(authenticator.role_for(header, '10.0.0.1'), 'auth_required')
        assert (result.error().code, result.error().msg) == ('auth_required', auth.MESSAGES['auth_required'])
    assert verifier.calls == 0
    assert authenticator.tracked_clients() == 0


def test_wrong_password_and_unknown_user_are_auth_failed(authenticator, verifier):
    result = refused(authenticator.role_for(basic('admin', WRONG_PASSWORD), '10.0.0.1'), 'auth_failed')
    assert (result.error().code, result.error().msg) == ('auth_failed', 'wrong user name or password')
    refused(authenticator.role_for(basic('root', ADMIN_PASSWORD), '10.0.0.1'), 'auth_failed')
    assert verifier.calls == 1  # an unknown user costs no Argon2
    assert authenticator.cached_entries() == 0


def test_without_a_read_password_the_read_user_is_refused(admin_hash, clock, verifier):
    authenticator = Authenticator(Credentials(admin_hash=admin_hash), clock=clock, verifier=verifier)
    refused(authenticator.role_for(basic('read', READ_PASSWORD), '10.0.0.1'), 'auth_failed')
    refused(authenticator.role_for(basic('read', ''), '10.0.0.1'), 'auth_failed')
    assert verifier.calls == 0
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), '10.0.0.1').role == 'admin'


# --------------------------------------------------------------------------- the verification cache


def test_a_cache_hit_skips_argon2(authenticator, verifier, clock):
    for step in range(200):
        assert authenticator.role_for(basic('read', READ_PASSWORD), '10.0.0.%d' % (step % 7)).role == 'read'
        clock.step(0.1)
    assert verifier.calls == 1


def test_the_cache_is_keyed_by_user_and_password(authenticator, verifier):
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a').role == 'admin'
    refused(authenticator.role_for(basic('admin', WRONG_PASSWORD), 'a'), 'auth_failed')
    refused(authenticator.role_for(basic('read', ADMIN_PASSWORD), 'a'), 'auth_failed')
    assert verifier.calls == 3
    assert authenticator.cached_entries() == 1


def test_the_cache_never_holds_the_password(authenticator):
    authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a')
    held = repr(vars(authenticator))
    assert ADMIN_PASSWORD not in held and ADMIN_PASSWORD.encode() not in b''.join(authenticator._cache)


def test_the_cache_expires_after_cache_seconds(authenticator, verifier, clock):
    authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a')
    clock.step(auth.CACHE_SECONDS - 0.5)
    authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a')
    assert verifier.calls == 1
    clock.step(0.5)
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a').role == 'admin'
    assert verifier.calls == 2


def test_the_cache_is_bounded_oldest_dropped(authenticator, verifier, monkeypatch):
    monkeypatch.setattr(auth, 'CACHE_ENTRIES', 2)
    first, second, third = (hash_password('password number %d' % n, CHEAP) for n in range(3))
    for number in range(3):
        # the read hash is one password at a time: replace() would empty the cache, so build it around each
        authenticator._credentials = Credentials(admin_hash=(first, second, third)[number])
        authenticator.role_for(basic('admin', 'password number %d' % number), 'a')
    assert authenticator.cached_entries() == 2
    authenticator._credentials = Credentials(admin_hash=first)
    authenticator.role_for(basic('admin', 'password number 0'), 'a')
    assert verifier.calls == 4  # the first was dropped


def test_replace_empties_the_cache(authenticator, verifier, admin_hash):
    authenticator.role_for(basic('read', READ_PASSWORD), 'a')
    authenticator.replace(Credentials(admin_hash=admin_hash))
    assert authenticator.cached_entries() == 0
    refused(authenticator.role_for(basic('read', READ_PASSWORD), 'a'), 'auth_failed')  # no read password any more
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a').role == 'admin'
    assert verifier.calls == 2


def test_a_verification_running_across_replace_is_not_cached(both, clock):
    """The old password verified while the new one was set must not stay accepted for a minute."""
    holder = {}

    def replacing_verifier(phc, password):
        holder['authenticator'].replace(Credentials(admin_hash=hash_password('the new password', CHEAP)))
        return verify_password(phc, password)

    authenticator = holder['authenticator'] = Authenticator(both, clock=clock, verifier=replacing_verifier)
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a').role == 'admin'  # it began before the change
    assert authenticator.cached_entries() == 0
    refused(authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'a'), 'auth_failed')


# --------------------------------------------------------------------------- the per-client limiter


def fail(authenticator, client, times=1):
    return [authenticator.role_for(basic('admin', WRONG_PASSWORD), client) for attempt in range(times)]


def test_ten_failures_then_refused_without_argon2(authenticator, verifier):
    assert {result.code for result in fail(authenticator, 'x', auth.FAILURES_ALLOWED)} == {'auth_failed'}
    assert verifier.calls == auth.FAILURES_ALLOWED
    limited = refused(fail(authenticator, 'x')[0], 'auth_rate_limited')
    assert limited.retry_after == 60
    error = limited.error()
    assert (error.code, error.msg, error.details) == ('auth_rate_limited', 'too many failed logins: try again in 60 seconds', {'retry_after': 60})
    # the right password too: a locked address gets nothing, not even a cache hit
    refused(authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'x'), 'auth_rate_limited')
    assert verifier.calls == auth.FAILURES_ALLOWED


def test_a_locked_address_cannot_guess_against_the_cache(authenticator, verifier):
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'good').role == 'admin'  # now cached
    fail(authenticator, 'bad', auth.FAILURES_ALLOWED)
    refused(authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'bad'), 'auth_rate_limited')
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'good').role == 'admin'


def test_the_lockout_ends_after_lockout_seconds(authenticator, verifier, clock):
    fail(authenticator, 'x', auth.FAILURES_ALLOWED)
    clock.step(auth.LOCKOUT_SECONDS - 1)
    assert refused(fail(authenticator, 'x')[0], 'auth_rate_limited').retry_after == 1
    clock.step(1)
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'x').role == 'admin'
    assert fail(authenticator, 'x')[0].code == 'auth_failed'  # a fresh count: ten more guesses
    assert verifier.calls == auth.FAILURES_ALLOWED + 2


def test_a_served_lockout_forgets_its_failures_even_inside_the_window(authenticator, clock, monkeypatch):
    monkeypatch.setattr(auth, 'LOCKOUT_SECONDS', 20.0)
    fail(authenticator, 'x', auth.FAILURES_ALLOWED)
    clock.step(20)
    assert {result.code for result in fail(authenticator, 'x', auth.FAILURES_ALLOWED)} == {'auth_failed'}
    refused(fail(authenticator, 'x')[0], 'auth_rate_limited')


def test_retry_after_rounds_up(authenticator, clock):
    fail(authenticator, 'x', auth.FAILURES_ALLOWED)
    clock.step(0.5)
    assert fail(authenticator, 'x')[0].retry_after == 60
    clock.step(59.4)
    assert fail(authenticator, 'x')[0].retry_after == 1


def test_failures_older_than_the_window_are_forgotten(authenticator, clock):
    fail(authenticator, 'x', auth.FAILURES_ALLOWED - 1)
    clock.step(auth.WINDOW_SECONDS)
    assert {result.code for result in fail(authenticator, 'x', auth.FAILURES_ALLOWED - 1)} == {'auth_failed'}
    assert fail(authenticator, 'x')[0].code == 'auth_failed'  # the tenth in this window
    refused(fail(authenticator, 'x')[0], 'auth_rate_limited')


def test_other_clients_are_unaffected(authenticator, verifier):
    fail(authenticator, 'x', auth.FAILURES_ALLOWED + 5)
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'y').role == 'admin'
    assert fail(authenticator, 'y')[0].code == 'auth_failed'
    assert verifier.calls == auth.FAILURES_ALLOWED + 2


def test_a_success_resets_no_count(authenticator):
    fail(authenticator, 'x', auth.FAILURES_ALLOWED - 1)
    fail(authenticator, 'y', auth.FAILURES_ALLOWED - 1)
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'x').role == 'admin'
    assert fail(authenticator, 'x')[0].code == 'auth_failed'
    refused(fail(authenticator, 'x')[0], 'auth_rate_limited')
    assert fail(authenticator, 'y')[0].code == 'auth_failed'
    refused(fail(authenticator, 'y')[0], 'auth_rate_limited')


def test_unknown_users_count_as_failures_without_argon2(authenticator, verifier):
    for _attempt in range(auth.FAILURES_ALLOWED):
        refused(authenticator.role_for(basic('root', 'whatever'), 'x'), 'auth_failed')
    refused(authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'x'), 'auth_rate_limited')
    assert verifier.calls == 0


def test_a_thousand_bad_attempts_from_one_client_run_ten_verifications(authenticator, verifier, clock):
    codes = []
    for _attempt in range(1000):
        codes.append(fail(authenticator, 'x')[0].code)
        clock.step(0.05)  # 50 s in all: inside one lockout
    assert verifier.calls == auth.FAILURES_ALLOWED
    assert codes.count('auth_failed') == auth.FAILURES_ALLOWED and codes.count('auth_rate_limited') == 990


def test_tracked_clients_are_bounded_oldest_forgotten(authenticator, monkeypatch, verifier):
    monkeypatch.setattr(auth, 'MAX_TRACKED_CLIENTS', 3)
    fail(authenticator, 'first', auth.FAILURES_ALLOWED)
    for number in range(3):
        fail(authenticator, 'other %d' % number)
    assert authenticator.tracked_clients() == 3
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'first').role == 'admin'  # forgotten


def test_the_default_bound_is_4096(authenticator):
    for number in range(auth.MAX_TRACKED_CLIENTS + 50):
        authenticator.role_for(basic('root', 'x'), 'client %d' % number)
    assert authenticator.tracked_clients() == auth.MAX_TRACKED_CLIENTS == 4096


def test_successes_take_no_client_slot(authenticator):
    for number in range(20):
        authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'client %d' % number)
    assert authenticator.tracked_clients() == 0


# --------------------------------------------------------------------------- the global limiter


def test_the_global_limiter_caps_argon2_across_clients(authenticator, verifier, clock):
    assert authenticator.role_for(basic('read', READ_PASSWORD), 'legit').role == 'read'  # cached before the attack
    for number in range(auth.GLOBAL_FAILURES):
        assert fail(authenticator, 'spread %d' % number)[0].code == 'auth_failed'
    assert verifier.calls == auth.GLOBAL_FAILURES + 1
    clock.step(10)
    limited = refused(fail(authenticator, 'newcomer')[0], 'auth_rate_limited')
    assert limited.retry_after == 50
    # a right password not in the cache is refused too: its check would cost Argon2
    refused(authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'other'), 'auth_rate_limited')
    assert verifier.calls == auth.GLOBAL_FAILURES + 1
    assert authenticator.role_for(basic('read', READ_PASSWORD), 'legit').role == 'read'  # the cache still works
    clock.step(50)
    assert authenticator.role_for(basic('admin', ADMIN_PASSWORD), 'other').role == 'admin'


def test_while_the_budget_is_spent_a_miss_still_costs_the_client_a_guess(authenticator, verifier):
    for number in range(auth.GLOBAL_FAILURES):
        fail(authenticator, 'spread %d' % number)
    limited = [result.code for result in fail(authenticator, 'prober', auth.FAILURES_ALLOWED + 1)]
    assert limited == ['auth_rate_limited'] * (auth.FAILURES_ALLOWED + 1)
    assert authenticator._clients['prober'].locked_until is not None


# --------------------------------------------------------------------------- threads


def test_threads_give_consistent_counts(both, clock):
    """8 threads x 50 wrong guesses from one address, with a slow verifier: exactly ten run Argon2."""
    verifier = CountingVerifier()
    gate = threading.Barrier(8)

    def slow_verifier(phc, password):
        threading.Event().wait(0.002)  # let the other threads reach the check meanwhile
        return verifier(phc, password)

    authenticator = Authenticator(both, clock=clock, verifier=slow_verifier)
    codes = []
    codes_lock = threading.Lock()

    def attack(number):
        gate.wait()
        for _attempt in range(50):
            header = basic('admin', ADMIN_PASSWORD if number == 0 else WRONG_PASSWORD)
            code = authenticator.role_for(header, 'same' if number else 'legit').code
            with codes_lock:
                codes.append(code)

    threads = [threading.Thread(target=attack, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(codes) == 400
    assert codes.count(None) == 50  # the legit thread: all admitted
    assert codes.count('auth_failed') == auth.FAILURES_ALLOWED
    assert codes.count('auth_rate_limited') == 350 - auth.FAILURES_ALLOWED
    assert verifier.calls == auth.FAILURES_ALLOWED + 1  # the legit password once, then the cache
    assert authenticator._global_pending == 0 and authenticator._clients['same'].pending == 0


def test_threads_cannot_overrun_the_global_budget(both, clock, monkeypatch):
    """8 addresses guess at once while 5 wrong verifications are left: only 5 run, the rest wait their turn."""
    monkeypatch.setattr(auth, 'GLOBAL_FAILURES', 5)
    verifier = CountingVerifier()
    gate = threading.Barrier(8)

    def slow_verifier(phc, password):
        threading.Event().wait(0.05)  # all eight reach the check while the first five verify
        return verifier(phc, password)

    authenticator = Authenticator(both, clock=clock, verifier=slow_verifier)
    codes = []

    def guess(number):
        gate.wait()
        codes.append(fail(authenticator, 'address %d' % number)[0].code)

    threads = [threading.Thread(target=guess, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verifier.calls == 5
    assert sorted(codes) == ['auth_failed'] * 5 + ['auth_rate_limited'] * 3
