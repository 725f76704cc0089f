# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HttpClient.fetch on a loopback server: the Download it returns (path, bytes kept, bytes fetched) and its refusals.

The system tests (tests/system/test_transport_fetch.py, test_sync_proxy.py, test_sync_deadlines.py, test_sync_bad_input.py)
drive the same client against nginx, squid and the hostile server; here one call at a time against a small server of
the test's own (tests/services is not importable under ansible-test units), on whichever path the venv offers.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading

import pytest

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
