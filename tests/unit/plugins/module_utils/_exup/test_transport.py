# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HttpClient.fetch on a loopback server: the Download it returns (path, bytes kept, bytes fetched) and its refusals.

The system tests (tests/system/test_transport_fetch.py, test_sync_proxy.py, test_sync_deadlines.py, test_sync_bad_input.py)
drive the same client against nginx, squid and the hostile server; here one call at a time against a small server of
the test's own (tests/services is not importable under ansible-test units), on whichever path the venv offers.
Below, the decisions both paths take from one function each (part_mode, the refusals): their codes and messages.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup import transport
from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import TransportError
from ansible_collections.exup.fleet.plugins.module_utils._exup.transport import Download, HttpClient

BODY = os.urandom(3 * 65536 + 123)
SHA = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves BODY at every path, honours ``Range: bytes=N-``; the server's ``cut_at`` and ``extra`` make it misbehave."""

    protocol_version = 'HTTP/1.1'
    server: _Server

    def do_GET(self):  # pylint: disable=invalid-name  # name fixed by http.server
        self.server.ranges.append(self.headers.get('Range'))
        start = int(self.headers['Range'][6:-1]) if self.headers.get('Range') else 0
        body = BODY[start:] + b'X' * self.server.extra
        self.send_response(206 if start else 200)
        if start:
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(BODY) - 1, len(BODY)))
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        cut = self.server.cut_at
        if cut is not None and start < cut:  # the first answer only: a resume gets the rest
            self.wfile.write(body[: cut - start])
            self.close_connection = True
            return
        pause = self.server.pause_at
        if pause is not None:  # the first part, then nothing until the test resumes the answer
            self.wfile.write(body[:pause])
            self.wfile.flush()
            self.server.paused.set()
            self.server.resume.wait(10)
            body = body[pause:]
        self.wfile.write(body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin  # keep test output clean
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.ranges: list = []
        self.cut_at: int | None = None
        self.extra = 0
        self.pause_at: int | None = None
        self.paused, self.resume = threading.Event(), threading.Event()

    def url(self, path: str) -> str:
        return 'http://127.0.0.1:%d%s' % (self.server_address[1], path)


@pytest.fixture
def server():
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(params=['libcurl', 'requests'])
def client(request):
    """The client on each download path: libcurl (pycurl) and requests."""
    made = HttpClient(timeout=5, retries=0)
    if request.param == 'requests':
        made.fast_path = lambda: False
    elif not made.fast_path():
        pytest.skip('pycurl is not installed')
    return made


@pytest.mark.parametrize('keep', [True, False])
def test_fetch_writes_the_part_and_keeps_the_bytes_when_asked(server, client, tmp_path, keep):
    url = server.url('/p.bin')
    part = str(tmp_path / 'p.part')
    got = client.fetch(url, part, len(BODY), SHA, keep_bytes=keep)
    assert got == Download(part, BODY if keep else None, len(BODY))
    with open(part, 'rb') as handle:
        assert handle.read() == BODY


def test_fetch_resumes_a_part_and_counts_only_the_new_bytes(server, client, tmp_path):
    url = server.url('/p.bin')
    part = tmp_path / 'p.part'
    part.write_bytes(BODY[:70000])
    got = client.fetch(url, str(part), len(BODY), SHA, keep_bytes=True)
    assert (got.data, got.fetched) == (BODY, len(BODY) - 70000)
    assert server.ranges == ['bytes=70000-']
    assert part.read_bytes() == BODY


def test_fetch_of_a_cut_body_resumes_within_the_call(server, client, tmp_path):
    server.cut_at = 100000
    url = server.url('/p.bin')
    part = str(tmp_path / 'p.part')
    # the first answer is cut at 100000 bytes; the resume's 206 brings the rest
    got = client.fetch(url, part, len(BODY), SHA, keep_bytes=True)
    assert (got.data, got.fetched) == (BODY, len(BODY))
    assert server.ranges == [None, 'bytes=100000-']


@pytest.mark.parametrize('keep', [True, False])
def test_a_stop_ends_a_download_in_flight_at_its_next_data_and_refuses_the_next(server, client, tmp_path, keep):
    server.pause_at = 70000
    part = tmp_path / 'p.part'
    outcome, received, first_part, stop = {}, [], threading.Event(), threading.Event()

    def progress(count):
        received.append(count)
        if sum(received) >= 70000:
            first_part.set()

    def fetch():
        try:
            client.fetch(server.url('/p.bin'), str(part), len(BODY), SHA, keep_bytes=keep, progress=progress, stop=stop)
        except TransportError as exc:
            outcome['error'] = exc

    thread = threading.Thread(target=fetch)
    thread.start()
    assert first_part.wait(10)  # the client has the first part; the server waits
    stop.set()  # from another thread, as the sync's when it ends on Ctrl-C
    server.resume.set()  # the next piece of data arrives: the download stops there
    thread.join(10)
    assert not thread.is_alive()
    error = outcome['error']
    assert error.code == 'download_cancelled' and error.msg.endswith(' bytes: the sync is ending')
    kept = part.read_bytes()
    assert len(kept) == 70000 and BODY.startswith(kept)  # what came is kept for a resume
    with pytest.raises(TransportError) as again:
        client.fetch(server.url('/q.bin'), str(tmp_path / 'q.part'), len(BODY), SHA, stop=stop)
    assert again.value.code == 'download_cancelled' and len(server.ranges) == 1  # refused before any request
    server.pause_at = None
    assert client.fetch(server.url('/p.bin'), str(part), len(BODY), SHA).data is None  # the client itself goes on: resumed
    assert part.read_bytes() == BODY and server.ranges[-1] == 'bytes=70000-'


def test_fetch_refuses_a_longer_body_and_leaves_no_part(server, client, tmp_path):
    server.extra = 10
    url = server.url('/p.bin')
    part = tmp_path / 'p.part'
    with pytest.raises(TransportError) as caught:
        client.fetch(url, str(part), len(BODY), SHA, keep_bytes=True)
    assert caught.value.code == 'download_too_long'
    assert 'more than the %d bytes the catalog states' % len(BODY) in str(caught.value)
    assert not part.exists()


def test_fetch_refuses_other_bytes_and_leaves_no_part(server, client, tmp_path):
    url = server.url('/p.bin')
    part = tmp_path / 'p.part'
    with pytest.raises(TransportError) as caught:
        client.fetch(url, str(part), len(BODY), hashlib.sha256(b'other').hexdigest(), keep_bytes=True)
    assert caught.value.code == 'digest_mismatch'
    assert 'does not match the SHA-256 the catalog states' in str(caught.value)
    assert not part.exists()


def test_download_still_returns_the_path(server, client, tmp_path):
    url = server.url('/p.bin')
    part = str(tmp_path / 'p.part')
    assert client.download(url, part, len(BODY), SHA) == part


def test_conditional_get_refuses_an_answer_stating_more_than_its_bound(server, client):
    url = server.url('/catalog.json')
    with pytest.raises(TransportError) as caught:
        client.get_conditional(url, max_bytes=1000)
    assert (caught.value.code, caught.value.msg) == ('download_too_long', '%s is larger than 1000 bytes (it states %d)' % (url, len(BODY)))


# --- the decisions both paths share (one function each) ---


@pytest.mark.parametrize(('value', 'length'), [('123', 123), ('0', 0), (None, None), ('', None), ('12a', None), ('-1', None), ('\u00b2', None)])
def test_stated_length(value, length):
    assert transport.stated_length(value) == length


@pytest.mark.parametrize(
    ('status', 'have', 'content_range', 'mode'),
    [
        (200, 0, None, 'wb'),
        (200, 500, None, 'wb'),  # the server ignored the Range: the whole file again
        (206, 500, 'bytes 500-999/1000', 'ab'),
        (206, 500, 'bytes 0-999/1000', None),  # not from where the .part ends
        (206, 0, 'bytes 0-999/1000', None),  # a 206 to no Range asked for
        (206, 500, None, None),
        (404, 0, None, None),
        (304, 0, None, None),
    ],
)
def test_part_mode(status, have, content_range, mode):
    assert transport.part_mode(status, have, content_range) == mode


URL = 'http://repo.example/p.bin'


@pytest.mark.parametrize(
    ('refusal', 'code', 'msg'),
    [
        (transport.status_refusal(URL, 404), 'http_status', 'GET %s answered HTTP 404' % URL),
        (transport.bound_refusal(URL, 10, '11'), 'download_too_long', '%s is larger than 10 bytes (it states 11)' % URL),
        (transport.past_bound_refusal(URL, 10, 8, 3), 'download_too_long', '%s is larger than 10 bytes' % URL),
        (transport.size_refusal(URL, 10, 4, '7'), 'download_too_long', '%s is 11 bytes long, more than the 10 bytes the catalog states' % URL),
        (transport.past_size_refusal(URL, 10, 8, 3), 'download_too_long', '%s sent more than the 10 bytes the catalog states; download stopped' % URL),
        (transport.answer_cut(URL, 5, 'reset'), 'download_truncated', 'the answer of %s was cut after 5 bytes: reset' % URL),
        (transport.answer_cut(URL, 5, 'stall', stalled_for=30), 'read_timeout', '%s sent nothing for 30 s after 5 bytes: stall' % URL),
        (transport.download_cut(URL, 5, 10, 'reset'), 'download_truncated', 'download of %s was cut after 5 of 10 bytes: reset' % URL),
        (transport.short_refusal(URL, 5, 10), 'download_truncated', 'download of %s ended after 5 of 10 bytes' % URL),
        (
            transport.digest_refusal(URL, 'ab', 'cd'),
            'digest_mismatch',
            '%s does not match the SHA-256 the catalog states: it was altered in transit or on the server' % URL,
        ),
        (transport.tls_refusal(URL, 'bad'), 'tls_failed', 'TLS verification of http://repo.example failed: bad'),
        (
            transport.proxy_failure('http://proxy:3128', URL, 'no'),
            'proxy_failed',
            'the proxy http://proxy:3128 refused or failed the request for http://repo.example: no',
        ),
        (transport.unreachable(URL, 'refused'), 'connection_failed', 'cannot reach http://repo.example: refused'),
    ],
)
def test_each_refusal_has_its_code_and_message(refusal, code, msg):
    assert (refusal.code, refusal.msg) == (code, msg)


@pytest.mark.parametrize(
    'passed',
    [
        transport.bound_refusal(URL, 10, '10'),
        transport.bound_refusal(URL, None, '11'),  # no bound
        transport.bound_refusal(URL, 10, 'many'),  # not stated: the body is bounded as it comes
        transport.past_bound_refusal(URL, 10, 7, 3),
        transport.past_bound_refusal(URL, None, 7, 30),
        transport.size_refusal(URL, 10, 4, '6'),
        transport.size_refusal(URL, 10, 4, None),
        transport.past_size_refusal(URL, 10, 7, 3),
        transport.short_refusal(URL, 10, 10),
        transport.digest_refusal(URL, 'ab', 'ab'),
    ],
)
def test_an_answer_within_its_bounds_passes(passed):
    assert passed is None
