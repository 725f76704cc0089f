"""send_webhook (service/notify.py) against real receivers on 127.0.0.1: delivery, refusals, and receivers that hang or never stop.

The receivers are small servers in threads of the test process: http.server for the ones that answer, a bare
listening socket for the ones that do not. Each misbehaving receiver stops by itself after RECEIVER_PATIENCE
seconds, so a broken deadline fails an assertion instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.exup.fleet.plugins.module_utils._exup.service.notify import new_packages_notice, send_webhook
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files

RECEIVER_PATIENCE = 10.0  # seconds a hanging receiver hangs at most
TIMEOUT = 1.5  # the webhook time limit of the tests that wait for it
SECRET = 'shared webhook secret'
NOTICE = new_packages_notice(
    [{'package_id': 'P1', 'module_id': 'bmc', 'version': '2.10', 'models': ['R120h-1M'], 'os': []}],
    [{'manager_id': 'm1', 'name': 'web1', 'model': 'R120h-1M', 'os': 'rhel9'}],
)


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((LOOPBACK, 0), Handler)
        self.received: list[dict] = []  # path, headers, body of each POST
        self.streamed = 0  # bytes an endless answer got out before the client left
        self.stop = threading.Event()

    @property
    def base_url(self) -> str:
        return 'http://%s:%d' % (LOOPBACK, self.server_address[1])


class Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = 'HTTP/1.1'

    def log_message(self, *_args) -> None:  # the test's output is for its assertions
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers['Content-Length']))
        self.server.received.append({'path': self.path, 'headers': dict(self.headers.items()), 'body': body})
        answer = getattr(self, 'answer_' + self.path.strip('/').split('?')[0].replace('-', '_'), self.answer_ok)
        answer()

    def answer_ok(self) -> None:
        self.send_response(204)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def answer_fail(self) -> None:
        text = b'receiver broke\r\nX-Injected: no\x1b[31m'
        self.send_response(500)
        self.send_header('Content-Length', str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def answer_redirect(self) -> None:
        self.send_response(307)  # 307 would repeat the POST with its body, if followed
        self.send_header('Location', '/ok')
        self.send_header('Content-Length', '0')
        self.end_headers()

    def answer_endless(self, pause: float = 0.0, size: int = 16384) -> None:
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.end_headers()  # no length: the answer ends when the connection does, which it never does
        piece = b'x' * size
        ends = time.monotonic() + RECEIVER_PATIENCE
        with contextlib.suppress(OSError):
            while time.monotonic() < ends and not self.server.stop.is_set():
                self.wfile.write(piece)
                self.server.streamed += len(piece)
                time.sleep(pause)
        self.close_connection = True

    def answer_endless_slow(self) -> None:
        self.answer_endless(pause=0.2, size=100)  # 64 KiB would take 131 s


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(RECEIVER_PATIENCE + 2)


@contextlib.contextmanager
def silent_receiver(trickle: bytes = b''):
    """A receiver that accepts connections and never answers; with ``trickle``, sends its bytes one every 0.2 s."""
    listener = socket.create_server((LOOPBACK, 0))
    stop = threading.Event()

    def serve() -> None:
        ends = time.monotonic() + RECEIVER_PATIENCE
        listener.settimeout(RECEIVER_PATIENCE)
        with contextlib.suppress(OSError):
            connection, _address = listener.accept()
            with connection:
                for byte in trickle:
                    if stop.wait(0.2) or time.monotonic() > ends:
                        return
                    connection.sendall(bytes([byte]))
                stop.wait(max(0.0, ends - time.monotonic()))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield 'http://%s:%d/hook' % (LOOPBACK, listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()
        thread.join(RECEIVER_PATIENCE + 2)


def timed(*args, **kwargs) -> tuple[dict, float]:
    started = time.monotonic()
    result = send_webhook(*args, **kwargs)
    return result, time.monotonic() - started


# --- delivery ---


def test_the_notice_is_delivered_signed(receiver):
    url = receiver.base_url + '/ok'
    assert send_webhook(url, NOTICE, 5.0, secret=SECRET) == {'url': url, 'status': 204, 'ok': True}
    (got,) = receiver.received
    assert json.loads(got['body']) == NOTICE
    assert got['headers']['Content-Type'] == 'application/json'
    assert got['headers']['X-Exup-Event'] == 'packages_arrived'
    expected = 'sha256=' + hmac.new(SECRET.encode(), got['body'], hashlib.sha256).hexdigest()  # as a receiver checks it
    assert hmac.compare_digest(got['headers']['X-Exup-Signature'], expected)
    assert 'Authorization' not in got['headers'] and 'Cookie' not in got['headers']


def test_without_a_secret_there_is_no_signature(receiver):
    assert send_webhook(receiver.base_url + '/ok', NOTICE, 5.0)['ok']
    assert 'X-Exup-Signature' not in receiver.received[0]['headers']


def test_https_with_the_receivers_ca(tmp_path: Path):
    tls = make_tls_files(tmp_path)
    server = Receiver()
    server.socket = _tls_context(tls).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = 'https://%s:%d/ok' % (LOOPBACK, server.server_address[1])
    try:
        assert send_webhook(url, NOTICE, 5.0, ca_path=str(tls.ca_path)) == {'url': url, 'status': 204, 'ok': True}
        refused = send_webhook(url, NOTICE, 5.0)  # the default trust store does not know the test CA
        assert refused['error'] == 'webhook_unreachable' and 'ok' in refused and not refused['ok']
        assert refused['msg'].startswith('the TLS connection to the webhook at https://127.0.0.1:%d failed: ' % server.server_address[1])
        assert 'CERTIFICATE_VERIFY_FAILED' in refused['msg']
        assert send_webhook(url, NOTICE, 5.0, validate_certs=False)['ok']  # the operator's choice
        assert len(server.received) == 2  # the refused one sent nothing
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _tls_context(tls):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert_path), str(tls.key_path))
    return context


# --- refusals ---


def test_a_receiver_answering_500_rejects(receiver):
    url = receiver.base_url + '/fail?token=abc'
    result = send_webhook(url, NOTICE, 5.0)
    port = receiver.server_address[1]
    # the answer is quoted in one line; the URL's path and query (maybe a secret) are not
    assert result == {
        'url': url,
        'ok': False,
        'error': 'webhook_rejected',
        'status': 500,
        'msg': 'the webhook at http://127.0.0.1:%d answered 500 Internal Server Error: receiver broke  X-Injected: no [31m' % port,
    }


def test_a_redirect_is_not_followed(receiver):
    result = send_webhook(receiver.base_url + '/redirect', NOTICE, 5.0)
    assert result['error'] == 'webhook_rejected' and result['status'] == 307
    assert 'answered 307 Temporary Redirect (redirects are not followed)' in result['msg']
    assert [item['path'] for item in receiver.received] == ['/redirect']


def test_nobody_listening_is_unreachable():
    url = 'http://%s:%d/hook' % (LOOPBACK, free_port())
    result, elapsed = timed(url, NOTICE, 5.0)
    assert result == {
        'url': url,
        'ok': False,
        'error': 'webhook_unreachable',
        'msg': 'cannot reach the webhook at %s: Connection refused' % url[: -len('/hook')],
    }
    assert elapsed < 1.0  # not retried


# --- receivers that hang: the deadline ends the whole call ---


def test_a_receiver_that_never_answers_times_out():
    with silent_receiver() as url:
        result, elapsed = timed(url, NOTICE, TIMEOUT)
    assert result == {'url': url, 'ok': False, 'error': 'webhook_timeout', 'msg': result['msg']}
    assert result['msg'].startswith('the webhook at http://127.0.0.1:') and 'did not answer within the webhook time limit of 1.5 s' in result['msg']
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + 1


def test_a_receiver_trickling_its_headers_times_out():
    # a byte every 0.2 s never trips a 1.5 s read timeout: only the deadline on the whole call ends it
    with silent_receiver(trickle=b'HTTP/1.1 200 OK\r\nX-Slow: ' + b'a' * 200) as url:
        result, elapsed = timed(url, NOTICE, TIMEOUT)
    assert result['error'] == 'webhook_timeout' and not result['ok']
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + 1


def test_an_endless_answer_is_read_only_in_part(receiver):
    result, elapsed = timed(receiver.base_url + '/endless', NOTICE, 5.0)
    assert result == {'url': receiver.base_url + '/endless', 'status': 200, 'ok': True}  # the status is the verdict
    assert elapsed < 2.0
    deadline = time.monotonic() + 5
    while receiver.streamed and time.monotonic() < deadline and not _writer_stopped(receiver):
        time.sleep(0.05)
    assert receiver.streamed < 16 * 1024 * 1024  # 64 KiB read, the rest in socket buffers, until the client left


def _writer_stopped(receiver) -> bool:
    before = receiver.streamed
    time.sleep(0.2)
    return receiver.streamed == before


def test_a_slow_endless_answer_ends_at_the_deadline(receiver):
    result, elapsed = timed(receiver.base_url + '/endless-slow', NOTICE, TIMEOUT)
    assert result == {'url': receiver.base_url + '/endless-slow', 'status': 200, 'ok': True}
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + 1
