# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The notice that new packages arrived (003 §3.4.4) and its delivery to webhooks.

ESMPRO/SM tells of a download in its alert viewer and by a pop-up at the next login, listing the
components the packages concern (Fig. 39). The service has neither: it posts the same facts, as
JSON, to the webhooks of the repository's settings. ``new_packages_notice`` and ``check_targets``
are pure; ``send_webhook`` does the HTTP with requests and never raises: one webhook that is down or
slow must not stop the others nor the download that found the packages.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import urllib.parse
import warnings
from collections.abc import Mapping
from typing import Any, TypedDict

from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import Deadline
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

TARGETS_SETTING = 'notify_webhooks'
MAX_TARGETS = 8
MAX_URL_LENGTH = 2048
ANSWER_LIMIT = 64 * 1024  # bytes of a webhook's answer read at most (a receiver may stream without end)
SHOWN_ANSWER = 200  # characters of a refusing answer quoted in the message
EVENT = 'packages_arrived'
EVENT_HEADER = 'X-Exup-Event'
SIGNATURE_HEADER = 'X-Exup-Signature'  # "sha256=<hex>": HMAC-SHA256 of the body bytes, as GitHub's webhooks sign
USER_AGENT = 'exup.fleet/0.1'
UNSAFE_IN_URL = re.compile(r'[\x00-\x20\x7f]')  # controls and spaces: header injection, or a URL that is two

TARGETS_RULE = '%s must be a list of at most %d http:// or https:// URLs of at most %d characters each, without a user name or password' % (
    TARGETS_SETTING,
    MAX_TARGETS,
    MAX_URL_LENGTH,
)


class ArrivedPackage(TypedDict):
    """A package that arrived: its PackageId, the module it updates and its version."""

    package_id: str
    module_id: str
    version: str


class AffectedServer(TypedDict):
    """A managed server some arrived package targets (its model, and its OS or any OS): who manages it, what it is."""

    manager_id: str
    name: str
    model: str
    os: str
    package_ids: list[str]  # the arrived packages that target it


class PackagesNotice(TypedDict):
    """The body of a packages_arrived event (003 §3.4.4): what arrived and the servers it concerns."""

    event: str
    packages: list[ArrivedPackage]
    servers: list[AffectedServer]


# --- the notice (pure) ---


def targets_server(package: dict, server: dict) -> bool:
    """True when ``package`` (models, os: lists, empty for any) is for ``server``'s model and OS.

    'any' among the OS names also means any OS, as in the packages' own XML (package.PackageInfo.targets).
    """
    models, os_names = package.get('models') or [], package.get('os') or []
    model_fits = not models or server['model'] in models
    os_fits = not os_names or 'any' in os_names or server['os'] in os_names
    return model_fits and os_fits


def new_packages_notice(added: list[dict], servers: list[dict]) -> PackagesNotice:
    """The packages_arrived body: ``added`` (package_id, module_id, version, models, os) and the ``servers``
    (manager_id, name, model, os) they target. Each package and server once, in a stable order."""
    arrived = {package['package_id']: package for package in added}
    packages = [ArrivedPackage(package_id=key, module_id=arrived[key]['module_id'], version=arrived[key]['version']) for key in sorted(arrived)]
    affected = {}
    for server in servers:
        ids = [key for key in sorted(arrived) if targets_server(arrived[key], server)]
        if ids:
            key = (server['manager_id'], server['name'])
            affected[key] = AffectedServer(manager_id=server['manager_id'], name=server['name'], model=server['model'], os=server['os'], package_ids=ids)
    return PackagesNotice(event=EVENT, packages=packages, servers=[affected[key] for key in sorted(affected)])


# --- the webhook targets (pure) ---


def _target_problem(url: object) -> str | None:
    """What is wrong with one target URL, or None. The message never repeats the URL (its path may be a secret)."""
    if not isinstance(url, str):
        return 'is not a text but %s' % type(url).__name__
    if len(url) > MAX_URL_LENGTH:
        return 'is %d characters long' % len(url)
    if UNSAFE_IN_URL.search(url):
        return 'has a space or a control character'
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  # urlsplit checks the port only when asked: "host:99999" raises here
    except ValueError as exc:
        return 'is not a URL (%s)' % exc
    if parts.scheme.lower() not in ('http', 'https') or not url.lower().startswith(parts.scheme.lower() + '://'):
        return 'is not an http:// or https:// URL'
    if '@' in parts.netloc:
        return 'carries a user name or password (give a secret for a signature instead)'
    if not parts.hostname:
        return 'has no host'
    return None


def check_targets(targets: object) -> list[str]:
    """The webhook URLs of the settings, checked; a bad list or URL is ExupError setting_invalid naming the rule."""
    if not isinstance(targets, list):
        raise ExupError('%s, not %s' % (TARGETS_RULE, type(targets).__name__), code='setting_invalid', setting=TARGETS_SETTING)
    if len(targets) > MAX_TARGETS:
        raise ExupError('%s: %d URLs are given' % (TARGETS_RULE, len(targets)), code='setting_invalid', setting=TARGETS_SETTING)
    for number, url in enumerate(targets):
        problem = _target_problem(url)
        if problem:
            raise ExupError('%s: %s[%d] %s' % (TARGETS_RULE, TARGETS_SETTING, number, problem), code='setting_invalid', setting=TARGETS_SETTING)
    if len(set(targets)) != len(targets):
        raise ExupError('%s, each once: a URL is given twice' % TARGETS_RULE, code='setting_invalid', setting=TARGETS_SETTING)
    return list(targets)


# --- the delivery ---


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The bytes posted (and signed): compact JSON with sorted keys, so one notice is always the same bytes."""
    return json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def signature(data: bytes, secret: str | bytes) -> str:
    """The X-Exup-Signature value of ``data``: receivers compute it with the shared secret and compare in constant time."""
    key = secret.encode('utf-8') if isinstance(secret, str) else secret
    return 'sha256=' + hmac.new(key, data, hashlib.sha256).hexdigest()


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, for messages: its path and query may be a secret (as chat webhooks' are)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition('@')[2]
    return '%s://%s' % (parts.scheme, host)


def _failed(url: str, error: str, msg: str, **more: Any) -> dict:
    return dict({'url': url, 'ok': False, 'error': error, 'msg': msg}, **more)


def send_webhook(
    url: str,
    body: Mapping[str, Any],
    timeout: float,
    ca_path: str | None = None,
    validate_certs: bool = True,
    secret: str | bytes | None = None,
    event: str = EVENT,
) -> dict:
    """POST ``body`` as JSON to ``url``, all of it (connect, TLS, send, answer) within ``timeout`` seconds.

    Returns {'url', 'status', 'ok': True} for a 2xx answer, else {'url', 'ok': False, 'error', 'msg'}
    (and 'status' when there was one): webhook_unreachable, webhook_timeout, webhook_rejected (any other
    status: redirects are not followed), setting_invalid (a URL check_targets refuses) or argument_invalid
    (a bad timeout). Never raises. Not retried: a POST sent twice would be two notices.
    """
    problem = _target_problem(url)
    if problem:
        return _failed(url if isinstance(url, str) and '@' not in url else '(not shown)', 'setting_invalid', 'the webhook URL %s' % problem)
    try:
        deadline = Deadline(timeout, 'the webhook time limit of %s s' % (timeout,))
    except ExupError as exc:
        return _failed(url, exc.code, exc.msg)
    data = encode_body(body)
    # identity: the answer is read as its bytes on the wire, at most ANSWER_LIMIT (no inflating a compressed one)
    headers = {'Content-Type': 'application/json', EVENT_HEADER: event, 'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity'}
    if secret:
        headers[SIGNATURE_HEADER] = signature(data, secret)
    verify: bool | str = (ca_path or True) if validate_certs else False
    return _post(url, data, headers, deadline, verify)


def _session() -> Any:
    """A requests session whose connections register with the request's watch (transport's deadline), without retries."""
    import requests  # pylint: disable=import-outside-toplevel  # only the sender needs it (sanity's import test has none)

    from ansible_collections.exup.fleet.plugins.module_utils._exup.requests_path import (  # pylint: disable=import-outside-toplevel
        _WatchedAdapter,
    )

    session = requests.Session()
    adapter = _WatchedAdapter(max_retries=0, pool_connections=1, pool_maxsize=1)
    session.mount('http://', adapter)
    session.mount('https://', adapter)
    session.trust_env = False  # the environment's proxy or .netrc must not change where a notice goes
    return session


def _post(url: str, data: bytes, headers: dict, deadline: Deadline, verify: bool | str) -> dict:
    """The request under the deadline's watch: at the deadline its socket is shut, wherever it waits."""
    from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import (  # pylint: disable=import-outside-toplevel
        _RequestWatch,
    )

    try:
        session = _session()
    except ImportError:
        return _failed(url, 'webhook_unreachable', 'cannot send to the webhook at %s: the Python library requests is not installed' % _origin(url))
    with session, _RequestWatch(deadline) as watch, warnings.catch_warnings():
        warnings.simplefilter('ignore')  # validate_certs=False is the operator's choice: no InsecureRequestWarning per notice
        try:
            response = session.post(url, data=data, headers=headers, timeout=deadline.wait(deadline.seconds), allow_redirects=False, stream=True, verify=verify)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # never raises: every failure is a result
            return _request_failure(url, exc, watch.fired or deadline.expired(), deadline)
        answer = _read_answer(response)
    return _verdict(url, response.status_code, response.reason, answer)


def _read_answer(response: Any) -> bytes:
    """At most ANSWER_LIMIT bytes of the answer; the status has come, so a cut or stalled body does not change the verdict."""
    try:
        return response.raw.read(ANSWER_LIMIT, decode_content=False) or b''
    except Exception:  # pylint: disable=broad-exception-caught  # the deadline shut the socket, or the receiver cut
        return b''
    finally:
        with contextlib.suppress(Exception):
            response.close()


def _request_failure(url: str, exc: Exception, timed_out: bool, deadline: Deadline) -> dict:
    import requests  # pylint: disable=import-outside-toplevel

    where = 'the webhook at %s' % _origin(url)
    if timed_out or isinstance(exc, requests.exceptions.Timeout):
        return _failed(url, 'webhook_timeout', '%s did not answer within %s' % (where, deadline.what))
    if isinstance(exc, requests.exceptions.SSLError):
        return _failed(url, 'webhook_unreachable', 'the TLS connection to %s failed: %s' % (where, _short(exc)))
    return _failed(url, 'webhook_unreachable', 'cannot reach %s: %s' % (where, _short(exc)))


def _verdict(url: str, status: int, reason: str | None, answer: bytes) -> dict:
    if 200 <= status < 300:
        return {'url': url, 'status': status, 'ok': True}
    why = ' (redirects are not followed)' if 300 <= status < 400 else ''
    shown = UNSAFE_IN_URL.sub(' ', answer[:SHOWN_ANSWER].decode('utf-8', 'replace')).strip()
    msg = 'the webhook at %s answered %d %s%s%s' % (_origin(url), status, reason or '', why, ': %s' % shown if shown else '')
    return _failed(url, 'webhook_rejected', msg, status=status)


def _short(exc: BaseException) -> str:
    """The innermost reason of a requests error, one line: the socket's or TLS's words.

    str() of requests' errors nests urllib3's, which repeat the URL's path (it may be a secret).
    """
    pending, seen = [exc], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return UNSAFE_IN_URL.sub(' ', str(current.strerror))[:300]
        pending += [item for item in (current.__cause__, current.__context__, getattr(current, 'reason', None)) if isinstance(item, BaseException)]
        pending += [item for item in current.args if isinstance(item, BaseException)]
    return type(exc).__name__
