# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may use the repository service: HTTP Basic credentials, Argon2id password hashes and the login limiters.

Managers and managed hosts log in with HTTP Basic authentication; the user name is the role ('read' or
'admin'). Pure apart from the clock (injected) and Argon2 (cryptography): the app asks
``Authenticator.role_for`` on every request and answers the refusal it gets with ``wire.STATUS_OF``.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import math
import os
import re
import threading
import time
import typing
from collections.abc import Callable, Mapping
from typing import Any

try:
    from cryptography.exceptions import InvalidKey
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module wrapper
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

Clock = Callable[[], float]
Verifier = Callable[[str, str], bool]  # (phc, password) -> matches

#: the Basic user names; a role may do what the roles before it may ('admin' everything 'read' may)
ROLES = ('read', 'admin')

MAX_HEADER_CHARS = 4096
MIN_PASSWORD_CHARS = 12
#: bytes, not characters: 1024 bytes of UTF-8 always fit the 4 KiB header once base64 encoded
#: (1024 characters of Japanese text, 3 bytes each, would not)
MAX_PASSWORD_BYTES = 1024

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 64
FAILURES_ALLOWED = 10
WINDOW_SECONDS = 60.0
LOCKOUT_SECONDS = 60.0
MAX_TRACKED_CLIENTS = 4096
GLOBAL_FAILURES = 100

#: stable codes -> the message people read (never with the password in it)
MESSAGES = {
    'password_weak': 'the password must have at least %d characters' % MIN_PASSWORD_CHARS,
    'password_invalid': 'the password must be text of at most %d bytes in UTF-8' % MAX_PASSWORD_BYTES,
    'credentials_missing': 'the repository service has no admin password and none is built in: set the admin password in the repository settings',
    'credentials_invalid': 'the stored %s password is not an Argon2id hash (a PHC string starting $argon2id$ within the accepted costs)',
    'credentials_unknown': 'the stored credentials have unknown entries: %s',
    'auth_required': 'this service needs HTTP Basic authentication (user read or admin)',
    'auth_failed': 'wrong user name or password',
    'auth_rate_limited': 'too many failed logins: try again in %d seconds',
    'forbidden': 'the %s user may not do this; it needs the %s user',
    'missing_library': 'password hashing needs the Python library cryptography',
}


@dataclasses.dataclass(frozen=True)
class Argon2Parameters:
    memory_cost_kib: int
    iterations: int
    lanes: int
    salt_bytes: int
    length: int


#: RFC 9106 §4's second recommended option (m=64 MiB, t=3, p=4), above OWASP's Password Storage Cheat Sheet
#: minimum (Argon2id, m=19 MiB, t=2, p=1; checked 2026-12). One hash or verification takes 0.13-0.16 s on this
#: 2-CPU machine (cryptography 50.0.2, measured 2026-12-03), hence the verification cache below.
ARGON2_PARAMETERS = Argon2Parameters(memory_cost_kib=64 * 1024, iterations=3, lanes=4, salt_bytes=16, length=32)

#: a stored hash names its own costs and verification obeys them: a corrupt or planted settings entry with
#: m=4 GiB must not make every login allocate 4 GiB. Four times our own costs is the ceiling.
MAX_MEMORY_COST_KIB = 4 * ARGON2_PARAMETERS.memory_cost_kib
MAX_ITERATIONS = 4 * ARGON2_PARAMETERS.iterations
MAX_LANES = 4 * ARGON2_PARAMETERS.lanes
MAX_PHC_CHARS = 256
PHC_PREFIX = '$argon2id$'
PHC_PATTERN = re.compile(r'\$argon2id\$v=19\$m=(?P<m>[0-9]{1,10}),t=(?P<t>[0-9]{1,10}),p=(?P<p>[0-9]{1,10})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}')


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` may do what ``needed`` may (an unknown role may do nothing)."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header, or None for anything else; never raises."""
    if not isinstance(header, str) or len(header) > MAX_HEADER_CHARS:
        return None
    scheme, space, token = header.strip().partition(' ')
    if not space or scheme.lower() != 'basic':
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode('utf-8')
    except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    user, colon, password = decoded.partition(':')
    if not colon:
        return None
    return user, password


def _password_bytes(password: str) -> bytes:
    """The password as UTF-8, or ``password_weak`` / ``password_invalid``; messages never contain the password."""
    if not isinstance(password, str):
        raise ExupError(MESSAGES['password_invalid'], code='password_invalid')
    try:
        encoded = password.encode('utf-8')
    except UnicodeEncodeError:  # a lone surrogate: no client could ever send it
        raise ExupError(MESSAGES['password_invalid'], code='password_invalid') from None
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise ExupError(MESSAGES['password_invalid'], code='password_invalid')
    if len(password) < MIN_PASSWORD_CHARS:
        raise ExupError(MESSAGES['password_weak'], code='password_weak')
    return encoded


#: One Argon2 computation at a time in this process. cryptography caps OpenSSL's thread pool at the core count
#: (OSSL_set_max_threads) and Argon2 with 4 lanes asks it for threads: two computations at once each wait for a
#: thread the other holds, forever (cryptography 50.0.2 with OpenSSL 4.0.3 on 2 CPUs, even 2 lanes on 2 threads).
ARGON2_LOCK = threading.Lock()
#: how long a request waits for another request's verification of the same credentials before running its own
VERIFY_WAIT_SECONDS = 30.0


def _require_cryptography() -> None:
    if not HAS_CRYPTOGRAPHY:  # pragma: no cover - the test environment has it
        raise ExupError(MESSAGES['missing_library'], code='missing_library')


def hash_password(password: str, parameters: Argon2Parameters | None = None) -> str:
    """The Argon2id PHC string of a new password (a fresh random salt each time).

    ``parameters`` defaults to the module's ARGON2_PARAMETERS, read at call time (tests make it cheap).
    """
    encoded = _password_bytes(password)
    _require_cryptography()
    chosen = parameters or ARGON2_PARAMETERS
    kdf = Argon2id(
        salt=os.urandom(chosen.salt_bytes),
        length=chosen.length,
        iterations=chosen.iterations,
        lanes=chosen.lanes,
        memory_cost=chosen.memory_cost_kib,
    )
    with ARGON2_LOCK:
        return kdf.derive_phc_encoded(encoded)


def phc_is_acceptable(phc: object) -> bool:
    """True for an Argon2id PHC string whose costs stay within the ceilings (checked before Argon2 sees it)."""
    if not isinstance(phc, str) or len(phc) > MAX_PHC_CHARS:
        return False
    match = PHC_PATTERN.fullmatch(phc)
    if not match:
        return False
    return int(match['m']) <= MAX_MEMORY_COST_KIB and int(match['t']) <= MAX_ITERATIONS and int(match['p']) <= MAX_LANES


def verify_password(phc: str, password: str) -> bool:
    """True when password matches the PHC string; a malformed or too costly PHC string is False, never a traceback."""
    if not phc_is_acceptable(phc) or not isinstance(password, str):
        return False
    try:
        encoded = password.encode('utf-8')
    except UnicodeEncodeError:
        return False
    _require_cryptography()
    try:
        with ARGON2_LOCK:
            Argon2id.verify_phc_encoded(encoded, phc)
    except (InvalidKey, ValueError, TypeError):  # InvalidKey: no match or bad encoding; ValueError: e.g. a short salt
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The service's password hashes. No read hash: only the admin user can log in."""

    admin_hash: str
    read_hash: str | None = None

    def __post_init__(self) -> None:
        _check_hash('admin', self.admin_hash)
        if self.read_hash is not None:
            _check_hash('read', self.read_hash)

    def hash_for(self, user: str) -> str | None:
        """The hash the user's password is checked against, or None (unknown user, or no read password set)."""
        return {'admin': self.admin_hash, 'read': self.read_hash}.get(user)

    def as_dict(self) -> dict[str, str | None]:
        return {'admin_hash': self.admin_hash, 'read_hash': self.read_hash}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Credentials:
        """Credentials from stored settings; there is no default password, so no admin hash is an error."""
        if not isinstance(data, Mapping):
            raise ExupError(MESSAGES['credentials_invalid'] % 'admin', code='credentials_invalid')
        unknown = sorted(str(key) for key in data if key not in ('admin_hash', 'read_hash'))
        if unknown:
            raise ExupError(MESSAGES['credentials_unknown'] % ', '.join(unknown), code='credentials_invalid')
        if data.get('admin_hash') is None:
            raise ExupError(MESSAGES['credentials_missing'], code='credentials_missing')
        return cls(admin_hash=data['admin_hash'], read_hash=data.get('read_hash'))


def _check_hash(user: str, phc: object) -> None:
    if not phc_is_acceptable(phc):
        raise ExupError(MESSAGES['credentials_invalid'] % user, code='credentials_invalid', user=user)


@dataclasses.dataclass(frozen=True)
class AuthResult:
    """The answer to one request's credentials: a role, or a refusal code (and for a rate limit, when to retry)."""

    role: str | None = None
    code: str | None = None
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.role is not None

    def allows(self, needed: str) -> bool:
        return self.role is not None and role_allows(self.role, needed)

    def error(self) -> ExupError:
        """The refusal as an ExupError (code and message from MESSAGES) for the app to answer with."""
        code = self.code or 'auth_required'
        if code == 'auth_rate_limited':
            return ExupError(MESSAGES[code] % self.retry_after, code=code, retry_after=self.retry_after)
        return ExupError(MESSAGES[code], code=code)


def forbidden(role: str, needed: str) -> ExupError:
    """The refusal of a logged-in user that lacks the role a route needs."""
    return ExupError(MESSAGES['forbidden'] % (role, needed), code='forbidden')


def _seconds_until(moment: float, now: float) -> int:
    return max(1, math.ceil(moment - now))


class _ClientRecord:
    """One address's failed logins within the window, its verifications in flight, and its lockout."""

    def __init__(self) -> None:
        self.failures: collections.deque[float] = collections.deque()
        self.pending = 0
        self.locked_until: float | None = None


@dataclasses.dataclass(frozen=True)
class _Ticket:
    """What role_for reserved before verifying outside the lock."""

    key: bytes
    user: str
    phc: str
    generation: int
    leader: bool  # the first verification of these credentials in flight: the others wait for its answer


class Authenticator:
    """Turns an Authorization header and a client address into a role or a refusal; thread-safe.

    One lock guards the bookkeeping (cache, per-client records, global budget); Argon2 runs outside it, so
    a slow verification never holds up another request. A verification reserves its slots before it runs
    (``pending``): concurrent wrong guesses cannot run more Argon2 than the limits allow. Requests with the same
    credentials as a verification in flight wait for its answer instead of running Argon2 again (a burst of
    downloads at a fresh service, or when the cache entry expires under load, costs one verification, not a
    refusal for every request past the per-address limit).
    """

    def __init__(self, credentials: Credentials, clock: Clock = time.monotonic, verifier: Verifier | None = None) -> None:
        self._credentials = credentials
        self._clock = clock
        self._verifier = verifier or verify_password
        self._key = os.urandom(32)  # per process: cache keys mean nothing outside it
        self._lock = threading.Lock()
        self._generation = 0
        self._cache: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._clients: collections.OrderedDict[str, _ClientRecord] = collections.OrderedDict()
        self._global_failures: collections.deque[float] = collections.deque()
        self._global_pending = 0
        self._in_flight: dict[bytes, threading.Event] = {}

    def replace(self, credentials: Credentials) -> None:
        """New passwords: the cache empties, and verifications still running against the old ones are not cached."""
        with self._lock:
            self._credentials = credentials
            self._generation += 1
            self._cache.clear()

    def role_for(self, header: str | None, client: str) -> AuthResult:
        parsed = parse_basic(header)
        if parsed is None:
            return AuthResult(code='auth_required')
        user, password = parsed
        outcome = self._admit(user, password, client)
        if isinstance(outcome, threading.Event):  # the same credentials are being verified: wait for that answer
            outcome.wait(VERIFY_WAIT_SECONDS)
            outcome = self._admit(user, password, client, join=False)  # cached now, or (wrong, slow) a verification
        if not isinstance(outcome, _Ticket):  # an AuthResult (a join=False admission never answers an Event)
            return typing.cast(AuthResult, outcome)
        try:
            matches = self._verifier(outcome.phc, password)  # the slow part, outside the lock
        finally:
            if outcome.leader:
                with self._lock:
                    self._in_flight.pop(outcome.key).set()
        return self._settle(outcome, client, matches)

    def cached_role(self, header: str | None, client: str) -> AuthResult | None:
        """The answer when it needs no Argon2: no or malformed credentials, a locked address, or credentials verified
        within CACHE_SECONDS. None: ask role_for (it may verify: off the event loop). Counts no failure."""
        parsed = parse_basic(header)
        if parsed is None:
            return AuthResult(code='auth_required')
        key = self._cache_key(*parsed)
        with self._lock:
            return self._known(parsed[0], key, client, self._clock())

    # The steps under the lock

    def _cache_key(self, user: str, password: str) -> bytes:
        return hmac.new(self._key, ('%s:%s' % (user, password)).encode('utf-8'), hashlib.sha256).digest()

    def _known(self, user: str, key: bytes, client: str, now: float) -> AuthResult | None:
        """A locked address's refusal or a cached role (under the lock), else None."""
        record = self._live_record(client, now)
        if record is not None and record.locked_until is not None:
            # before the cache: a locked address may not go on guessing against the cache either
            return AuthResult(code='auth_rate_limited', retry_after=_seconds_until(record.locked_until, now))
        verified_at = self._cache.get(key)
        if verified_at is not None and now - verified_at < CACHE_SECONDS:
            return AuthResult(role=user)
        return None

    def _admit(self, user: str, password: str, client: str, join: bool = True) -> AuthResult | _Ticket | threading.Event:
        """A cached role, a refusal, the event of the same credentials' verification in flight (``join``), or a
        ticket to run Argon2 with its slots reserved."""
        key = self._cache_key(user, password)
        with self._lock:
            now = self._clock()
            self._prune_global(now)
            known = self._known(user, key, client, now)
            if known is not None:
                return known
            record = self._clients.get(client)
            phc = self._credentials.hash_for(user)
            if phc is None:  # unknown user, or 'read' without a read password: wrong without running Argon2
                self._fail(client, now)
                return AuthResult(code='auth_failed')
            if join and key in self._in_flight:
                return self._in_flight[key]
            if record is not None and len(record.failures) + record.pending >= FAILURES_ALLOWED:
                return AuthResult(code='auth_rate_limited', retry_after=1)  # its last allowed guesses are in flight
            if len(self._global_failures) + self._global_pending >= GLOBAL_FAILURES:
                # counted against the client: while the budget is spent, a miss still costs it a guess
                self._fail(client, now)
                return AuthResult(code='auth_rate_limited', retry_after=self._global_retry_after(now))
            self._record(client).pending += 1
            self._global_pending += 1
            leader = key not in self._in_flight
            if leader:
                self._in_flight[key] = threading.Event()
            return _Ticket(key=key, user=user, phc=phc, generation=self._generation, leader=leader)

    def _settle(self, ticket: _Ticket, client: str, matches: bool) -> AuthResult:
        with self._lock:
            now = self._clock()
            self._global_pending -= 1
            record = self._clients.get(client)
            if record is not None and record.pending > 0:  # none or 0: forgotten past the bound meanwhile
                record.pending -= 1
            if matches:
                if ticket.generation == self._generation:  # not for a password that was replaced meanwhile
                    self._remember(ticket.key, now)
                if record is not None and not (record.failures or record.pending or record.locked_until):
                    del self._clients[client]  # only its reservation made it: successes take no slot
                # a success resets no count, not even this address's: an attacker behind the same NAT would gain guesses
                return AuthResult(role=ticket.user)
            self._global_failures.append(now)
            self._fail(client, now)
            return AuthResult(code='auth_failed')

    def _remember(self, key: bytes, now: float) -> None:
        self._cache[key] = now
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    def _live_record(self, client: str, now: float) -> _ClientRecord | None:
        """The client's record with old failures and an ended lockout dropped (None when it has none)."""
        record = self._clients.get(client)
        if record is None:
            return None
        if record.locked_until is not None and now >= record.locked_until:
            record.locked_until = None
            record.failures.clear()  # the lockout served the failures that caused it
        while record.failures and now - record.failures[0] >= WINDOW_SECONDS:
            record.failures.popleft()
        return record

    def _prune_global(self, now: float) -> None:
        while self._global_failures and now - self._global_failures[0] >= WINDOW_SECONDS:
            self._global_failures.popleft()

    def _record(self, client: str) -> _ClientRecord:
        """The client's record, created if needed; the least recently failed addresses are forgotten past the bound."""
        record = self._clients.get(client)
        if record is None:
            record = self._clients[client] = _ClientRecord()
        self._clients.move_to_end(client)
        while len(self._clients) > MAX_TRACKED_CLIENTS:
            self._forget_oldest()
        return record

    def _forget_oldest(self) -> None:
        # an address with a verification in flight is kept (its settle step needs the record): skip past it
        for address, record in self._clients.items():
            if record.pending == 0:
                del self._clients[address]
                return
        self._clients.popitem(last=False)

    def _fail(self, client: str, now: float) -> None:
        record = self._record(client)
        record.failures.append(now)
        if len(record.failures) >= FAILURES_ALLOWED:
            record.locked_until = now + LOCKOUT_SECONDS

    def _global_retry_after(self, now: float) -> int:
        if not self._global_failures:
            return 1  # the budget is held by verifications in flight
        return _seconds_until(self._global_failures[0] + WINDOW_SECONDS, now)

    # What tests and the app's status page read

    def tracked_clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def cached_entries(self) -> int:
        with self._lock:
            return len(self._cache)
