# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A managed host fetches a package file straight from the repository service (a pool ticket URL).

The standard library only (a managed host need not have requests). The answer is hostile until
verified: no redirect is followed, never more than the stated size is read, the whole fetch has a
deadline, and the caller checks the SHA-256 and the package's signature before anything uses it.
"""

from __future__ import annotations

import ssl
import typing
import urllib.error
import urllib.request

from ansible_collections.exup.fleet.plugins.module_utils._exup.deadline import Deadline
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

CHUNK = 1024 * 1024
#: the whole fetch of one file may take 60 s plus its size at 64 KiB/s (the sync's rule for one request)
BASE_SECONDS = 60
SLOWEST_BYTES_PER_SECOND = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: typing.Any, fp: typing.Any, code: int, msg: str, headers: typing.Any, newurl: str) -> None:
        raise urllib.error.HTTPError(req.full_url, code, 'redirect refused: a pool ticket URL names the file itself', headers, fp)


def fetch_chunks(url: str, size: int, ca_pem: str | None = None, validate_certs: bool = True, timeout: float = 30) -> typing.Iterator[bytes]:
    """The file's bytes, in chunks; exactly ``size`` of them or a package_fetch_failed error."""
    shown = url.split('?', 1)[0]  # the ticket is a credential: never in a message
    deadline = Deadline(BASE_SECONDS + size / SLOWEST_BYTES_PER_SECOND, 'the fetch of %s' % shown)
    received = 0
    try:
        context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context), urllib.request.ProxyHandler({}))
        with opener.open(urllib.request.Request(url, headers={'Accept-Encoding': 'identity'}), timeout=min(timeout, deadline.remaining())) as response:
            while received < size:
                if deadline.expired():
                    raise ExupError('the fetch of %s took longer than %.0f s' % (shown, deadline.seconds), code='package_fetch_failed')
                # read1: one receive at a time, so the deadline is looked at after each (read() would gather a whole MiB)
                chunk = response.read1(min(CHUNK, size - received))
                if not chunk:
                    break
                received += len(chunk)
                yield chunk
            if response.read(1):
                raise ExupError('%s sent more than the %d bytes the repository listed' % (shown, size), code='package_fetch_failed')
    except urllib.error.HTTPError as exc:
        raise ExupError('the repository answered HTTP %d for %s: %s' % (exc.code, shown, exc.reason), code='package_fetch_failed') from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, 'reason', exc)
        raise ExupError('this host cannot fetch %s from the repository: %s' % (shown, reason), code='package_fetch_failed') from None
    if received != size:
        raise ExupError('%s ended after %d of %d bytes' % (shown, received, size), code='package_fetch_failed')
