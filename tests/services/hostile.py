"""A threaded HTTP server on 127.0.0.1 that serves files from memory and misbehaves per path: HostileHTTPServer.

It can send overlong, truncated, slow or stalled bodies, ignore Range, fail a number of times,
and trickle its headers; it records every request. It runs in threads of the test process.
"""

import contextlib
import dataclasses
import email.message
import email.utils
import hashlib
import http.server
import socket
import threading
import time
import urllib.parse

from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK


@dataclasses.dataclass
class Behaviour:  # pylint: disable=too-many-instance-attributes  # one flag per misbehaviour
    """How the hostile server misbehaves for one path (the defaults behave like a good server).

    overlong: send this many junk bytes after the file (Content-Length counts them, unless no_length).
    no_length: no Content-Length; the body ends when the server closes the connection.
    truncate_at: announce the full length, then close the connection after this many body bytes.
    slow: seconds to sleep between chunks of chunk_size bytes.
    no_range: ignore Range (always 200 with the whole body, no Accept-Ranges).
    status, fail_times: answer status (e.g. 503) with an empty body, for the first fail_times
        requests of the path only when fail_times is set.
    headers: extra response headers (e.g. {"Retry-After": "1"}).
    header_trickle: seconds to sleep between the bytes of the status line and headers (a server
        that keeps a client in the headers phase, where no body read timeout applies).
    stall_after, stall: after stall_after body bytes, send nothing for stall seconds (a read
        timeout mid-body), then go on.
    """

    overlong: int = 0
    no_length: bool = False
    truncate_at: int | None = None
    slow: float = 0.0
    chunk_size: int = 16384
    no_range: bool = False
    status: int | None = None
    fail_times: int | None = None
    headers: dict = dataclasses.field(default_factory=dict)
    header_trickle: float = 0.0
    stall_after: int | None = None
    stall: float = 0.0


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as the hostile server saw it; headers look up names case-insensitively."""

    method: str
    path: str
    headers: email.message.Message  # an http.client.HTTPMessage (http.server's request headers)


# Junk sent after the real bytes for 'overlong': recognisable in a hexdump.
_JUNK = b"X"


def _parse_range(value: str, total: int):
    """(first, last) of a single "bytes=" range, "unsatisfiable", or None to ignore the header.

    Multiple ranges are ignored (a 200 is allowed for them): our client never asks for them.
    """
    unit, _sep, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec or "-" not in spec:
        return None
    first, _dash, last = (part.strip() for part in spec.partition("-"))
    if not first.isdigit() and not (first == "" and last.isdigit()):
        return None
    if first == "":  # suffix range: the last N bytes
        if int(last) == 0:
            return "unsatisfiable"
        return max(0, total - int(last)), total - 1
    if last and not last.isdigit():
        return None
    start, end = int(first), (int(last) if last else total - 1)
    if start >= total or end < start:
        return "unsatisfiable"
    return start, min(end, total - 1)


class _HostileHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers; needed for Range tests too
    server: "_HostileTCPServer"
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, not in its type stubs

    def do_GET(self):  # pylint: disable=invalid-name  # name fixed by http.server
        self._serve(send_body=True)

    def do_HEAD(self):  # pylint: disable=invalid-name
        self._serve(send_body=False)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin  # keep test output clean
        pass

    def _simple(self, status: int, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, send_body: bool) -> None:
        owner = self.server.owner
        path = urllib.parse.urlsplit(self.path).path
        attempt = owner.record(RecordedRequest(self.command, path, self.headers))
        data = owner.files.get(path)
        if data is None:
            self._simple(404)
            return
        how = owner.behaviours.get(path) or Behaviour()
        if how.status is not None and (how.fail_times is None or attempt <= how.fail_times):
            self._simple(how.status, how.headers)
            return

        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        validators = {"ETag": etag, "Last-Modified": owner.last_modified}
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match and (if_none_match.strip() == "*" or etag in if_none_match):
            self._simple(304, validators)
            return

        total = len(data) + how.overlong
        first, last, status = 0, total - 1, 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        # If-Range: resume only if the file is still the one the client started with.
        if wanted and not how.no_range and if_range in (None, etag, owner.last_modified):
            parsed = _parse_range(wanted, total)
            if parsed == "unsatisfiable":
                self._simple(416, {"Content-Range": f"bytes */{total}"})
                return
            if parsed is not None:
                (first, last), status = parsed, 206

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        for name, value in {**validators, **how.headers}.items():
            self.send_header(name, value)
        if not how.no_range:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{total}")
        length = last - first + 1
        if how.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        if not self._end_headers(how):
            return
        if send_body:
            self._send_body(data, first, length, how)

    def _end_headers(self, how: Behaviour) -> bool:
        """end_headers(), or with header_trickle the header bytes one at a time; False when the client gave up."""
        if not how.header_trickle:
            self.end_headers()
            return True
        self._headers_buffer.append(b"\r\n")
        head, self._headers_buffer = b"".join(self._headers_buffer), []
        stopping = self.server.owner.stopping
        try:
            for at in range(len(head)):
                if stopping.is_set():
                    break
                self.wfile.write(head[at : at + 1])
                self.wfile.flush()
                stopping.wait(how.header_trickle)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True
        return False  # the body never comes: a client that waits for it is the test

    def _send_body(self, data: bytes, offset: int, length: int, how: Behaviour) -> None:
        to_send = length if how.truncate_at is None else min(length, how.truncate_at)
        sent = 0
        try:
            while to_send > 0 and not self.server.owner.stopping.is_set():
                if how.stall_after is not None and sent >= how.stall_after and how.stall:
                    self.wfile.flush()
                    self.server.owner.stopping.wait(how.stall)
                    how = dataclasses.replace(how, stall=0.0)  # once per response
                size = min(how.chunk_size, to_send)
                if how.stall_after is not None and how.stall and sent < how.stall_after:
                    size = min(size, how.stall_after - sent)
                chunk = data[offset : offset + size]
                chunk += _JUNK * (size - len(chunk))  # past the end of the file: overlong junk
                self.wfile.write(chunk)
                offset += size
                sent += size
                to_send -= size
                if how.slow and to_send > 0:
                    self.wfile.flush()
                    self.server.owner.stopping.wait(how.slow)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: that is what some tests want
        if to_send > 0 or how.truncate_at is not None:
            # Closing with bytes missing is the truncation; the client must see a short body.
            self.close_connection = True


class _HostileTCPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a slow response; it cuts connections instead

    def __init__(self, owner: "HostileHTTPServer"):
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__((LOOPBACK, 0), _HostileHandler)

    def get_request(self):
        sock, address = super().get_request()
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, address

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Close every client connection, including idle keep-alive ones."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class HostileHTTPServer:
    """A threaded HTTP server on 127.0.0.1 serving files from memory, misbehaving per path.

    files maps a URL path ("/pkg/a.bin") to its bytes and may be changed while the server runs;
    behaviours maps a path to a Behaviour (or a dict of its fields). Responses carry a strong
    ETag (from the content) and Last-Modified; If-None-Match gets a 304; single Range requests
    get a 206 (or 416); If-Range is honoured. Every request is recorded.
    """

    def __init__(self, files: dict[str, bytes] | None = None, behaviours: dict | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.behaviours: dict[str, Behaviour] = {}
        for path, how in (behaviours or {}).items():
            self.behaviours[path] = how if isinstance(how, Behaviour) else Behaviour(**how)
        self.requests: list[RecordedRequest] = []
        self.last_modified = email.utils.formatdate(time.time() - 3600, usegmt=True)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: _HostileTCPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def add(self, path: str, data: bytes, **behaviour) -> str:
        """Serve data at path with the given Behaviour fields; returns its URL."""
        path = "/" + path.lstrip("/")
        self.files[path] = data
        self.behaviours[path] = Behaviour(**behaviour)
        return self.url(path)

    def record(self, request: RecordedRequest) -> int:
        """Store a request; returns how many requests this path has had, this one included."""
        with self._lock:
            self.requests.append(request)
            return sum(1 for r in self.requests if r.path == request.path)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        path = "/" + path.lstrip("/")
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def request_count(self, path: str) -> int:
        return len(self.requests_for(path))

    def start(self):
        began = time.monotonic()
        self.stopping.clear()
        self._server = _HostileTCPServer(self)  # binds port 0: no race for a free port
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"hostile-http-{self.port}", daemon=True)
        self._thread.start()
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        began = time.monotonic()
        server, self._server = self._server, None
        if server is not None:
            self.stopping.set()  # slow responses stop sending
            server.shutdown()
            server.cut_connections()
            server.server_close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self.stop_seconds = time.monotonic() - began


@contextlib.contextmanager
def hostile_http_server(files: dict[str, bytes] | None = None, behaviours: dict | None = None):
    """Run a HostileHTTPServer; yields it started, stops it on exit."""
    server = HostileHTTPServer(files, behaviours)
    server.start()
    try:
        yield server
    finally:
        server.stop()
