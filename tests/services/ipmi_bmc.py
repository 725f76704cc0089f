"""Fake IPMI BMCs on loopback for system tests, built on pyghmi's own BMC server (pyghmi.ipmi.bmc).

Each FakeIpmiBmc answers IPMI 2.0 / RMCP+ (lanplus) on its own UDP port of 127.0.0.1; many run in one
process (IpmiBmcPool). Clients: pyghmi.ipmi.command.Command and Debian's ``ipmitool -I lanplus``.

    with FakeIpmiBmc({"admin": "s3cret"}, firmware_revision="2.10") as bmc:
        ipmitool -I lanplus -H 127.0.0.1 -p {bmc.port} -U admin -P s3cret mc info   -> Firmware Revision : 2.10
        bmc.power_history, bmc.unexpected_requests, bmc.logins ...

What it answers (everything else gets completion code C1h "invalid command" and is recorded in
``unexpected_requests``: there is no standard IPMI firmware update, so an OEM/raw command reaching the
BMC means the product tried something it should not; the PICMG/VITA/HPM.2 discovery ipmitool sends in
every session is recorded too, as ``probe``, and is not "unexpected"):

- Get Device ID (netfn 6, cmd 01h): device id, device revision, firmware revision, IPMI 2.0,
  manufacturer id (3 bytes), product id (2 bytes), auxiliary firmware revision (4 bytes, optional).
- Get System GUID (6/37h), Cold Reset (6/02h, counted, nothing else happens), in-session Get Channel
  Authentication Capabilities (6/38h), Set Session Privilege Level (6/3Bh), Close Session (6/3Ch).
- Get Chassis Status (0/01h), Chassis Control (0/02h: off, on, cycle, reset, diag, soft; the state
  changes at once and every request lands in ``power_history``), Set/Get System Boot Options (0/08h,
  0/09h; boot flags, parameter 5, in ``boot_history``).

Login (RMCP+ open session, RAKP 1-4) is pyghmi's server code with these changes:

- Only cipher suite 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) is offered. pyghmi's server answers
  every open-session request with the suite-3 algorithms whatever the client proposed; pyghmi's client
  (1.6.19) first proposes suite 17 (SHA-256), believes the answer and then crashes on the RAKP 2 HMAC
  length (struct.error). Here a proposal other than suite 3 is refused with RMCP+ status 11h (no cipher
  suite match); pyghmi's client then retries with suite 3, and ``ipmitool -C 17`` fails cleanly.
- An unknown user name gets RAKP 2 with status 0Dh (unauthorized name) instead of silence. A wrong
  password fails on the client when it checks the RAKP 2 HMAC (pyghmi: "Incorrect password provided",
  ipmitool: "RAKP 2 HMAC is invalid"); a RAKP 3 with a bad HMAC gets RAKP 4 with status 0Fh.
- Every open-session request starts a new session (pyghmi's server reused the old session, keys and
  all, for a client address it had seen), Close Session forgets it, and a retransmitted request is
  answered again without being done twice (no double power cycle).

Firmware revision (Get Device ID data bytes 3 and 4, i.e. response bytes 4 and 5 counting the completion
code): major in bits 6:0 of the first byte (0-127; bit 7 set means "device firmware update in progress,
device not available"), minor as two BCD digits in the second (00-99). So the representable versions
are exactly "M.mm" with M in 0..127 and two minor digits: "2.10", "2.05", "127.99". "2.5" is refused
(ambiguous: write "2.05" or "2.50"), as are "2.100", "128.00", "2.1a" and anything with a third part.
ipmitool prints "%u.%02x" (2.05 -> "2.05"); pyghmi's Command.get_firmware() prints the minor byte in
hex without its leading zero (2.05 -> "2.5", 2.10 -> "2.10") and does not mask bit 7 (while an update is
in progress 2.10 reads "130.10"); pyghmi's internal _get_device_id() prints "2.05".

All state is in memory and recorded for assertions (thread-safe copies: ``requests``, ``power_history``,
``boot_history``, ``logins``, ``cipher_refusals``, ``unexpected_requests``, ``errors``).

Threads: one daemon thread serves the UDP sockets of all started fake BMCs of the process (select);
it is not pyghmi's process-wide client event loop (pyghmi.ipmi.private.session), so a pyghmi client in
the same process (a test) runs its sessions alone in its own thread. pyghmi's client caches sessions per
process by (host, port, user, password) and, in 1.6.19, hands a dead one back after a logout or failed
login: call forget_pyghmi_sessions(port) after logging out (stop() does it for its port).
"""

import argparse
import collections
import contextlib
import dataclasses
import errno
import hashlib
import hmac
import json
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import uuid

# pylint: disable=import-error  # pyghmi is a test tool installed in .venv, not a collection dependency
import pyghmi.ipmi.bmc as pyghmi_bmc
import pyghmi.ipmi.private.constants as pyghmi_constants
import pyghmi.ipmi.private.serversession as pyghmi_serversession
import pyghmi.ipmi.private.session as pyghmi_session

# pylint: enable=import-error

LOOPBACK = "127.0.0.1"

# RMCP+ / RAKP status codes (IPMI 2.0 table 13-15)
RMCP_OK = 0x00
RMCP_UNAUTHORIZED_NAME = 0x0D
RMCP_INVALID_INTEGRITY_CHECK = 0x0F
RMCP_NO_CIPHER_SUITE_MATCH = 0x11
RMCP_ILLEGAL_PARAMETER = 0x12

# IPMI completion codes
CC_OK = 0x00
CC_PARAMETER_NOT_SUPPORTED = 0x80
CC_INVALID_COMMAND = 0xC1
CC_INVALID_DATA_FIELD = 0xCC
CC_NOT_IN_PRESENT_STATE = 0xD5
CC_UNSPECIFIED = 0xFF

# Cipher suite 3: RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128, the only one pyghmi's server implements
SUITE3_ALGORITHMS = (1, 1, 1)

# Chassis Control (netfn 0, cmd 02h) data byte -> action name
CHASSIS_CONTROL = {0: "off", 1: "on", 2: "cycle", 3: "reset", 4: "diag", 5: "soft"}
POWER_ACTIONS = tuple(CHASSIS_CONTROL.values())

# boot device selector (boot flags byte 2, bits 5:2) <-> name, as pyghmi names them
BOOT_DEVICES = {0: "default", 1: "network", 2: "hd", 3: "safe", 5: "optical", 6: "setup", 15: "floppy"}
BOOT_DEVICE_NUMBERS = {name: number for number, name in BOOT_DEVICES.items()}

# IPMI network functions reserved for OEM and group extensions (HPM.1 firmware upgrade is in 2Ch)
OEM_NETFNS = frozenset([0x2C, 0x2E, *range(0x30, 0x40)])
# Group extension discovery that ipmitool (1.8.19) sends at the start of every lanplus session, keyed
# by (netfn, command, first data byte = group id). A BMC without PICMG/VITA answers C1h, as this one
# does; they are recorded with probe=True and left out of unexpected_requests.
CLIENT_PROBES = {
    (0x2C, 0x3E, 0x00): "HPM.2 Get LAN Attach Capabilities",
    (0x2C, 0x00, 0x00): "PICMG Get PICMG Properties",
    (0x2C, 0x00, 0x03): "VITA Get VSO Capabilities",
}

_REVISION = re.compile(r"([0-9]{1,3})\.([0-9]{2})")


class BmcError(RuntimeError):
    """A fake BMC could not be started (or was misconfigured)."""


def encode_firmware_revision(revision: str) -> tuple[int, int]:
    """'2.10' -> (2, 0x10): the two firmware revision bytes of Get Device ID (bit 7 not set).

    Raises ValueError for a version IPMI cannot carry (see the module docstring).
    """
    match = _REVISION.fullmatch(str(revision))
    if not match:
        raise ValueError(f"IPMI firmware revision must be 'MAJOR.MM' (MAJOR 0-127, two minor digits), not {revision!r}")
    major = int(match.group(1))
    if major > 127:
        raise ValueError(f"IPMI firmware major revision is 7 bits (0-127), not {major} in {revision!r}")
    return major, int(match.group(2), 16)  # "10" -> 0x10: BCD


def decode_firmware_revision(first: int, second: int) -> str:
    """The two firmware revision bytes of Get Device ID as ipmitool prints them ('%u.%02x')."""
    return f"{first & 0x7F}.{second:02x}"


def free_udp_port() -> int:
    """A free UDP port on 127.0.0.1 (a start that loses the race to another process picks a new one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class IpmiRequest:
    """One IPMI request received inside a session."""

    netfn: int
    command: int
    data: bytes
    client: tuple  # (address, port) of the client
    user: str
    handled: bool  # False: answered C1h (invalid command)

    @property
    def probe(self) -> bool:
        """True for the group extension discovery ipmitool sends in every session (CLIENT_PROBES)."""
        return (self.netfn, self.command, self.data[0] if self.data else None) in CLIENT_PROBES

    @property
    def is_oem(self) -> bool:
        """True for OEM / group extension network functions (2Ch, 2Eh, 30h-3Fh)."""
        return self.netfn in OEM_NETFNS

    @property
    def unexpected(self) -> bool:
        """Not implemented here and not a known client probe: what tests assert the product never sends."""
        return not self.handled and not self.probe


@dataclasses.dataclass(frozen=True)
class PowerEvent:
    """One Chassis Control request: action ('off', 'on', 'cycle', 'reset', 'diag', 'soft')."""

    action: str
    before: str  # 'on' / 'off'
    after: str
    code: int  # completion code answered: 0, or D5h (cannot be done while the system is off)
    when: float  # time.monotonic()


@dataclasses.dataclass(frozen=True)
class BootEvent:
    """One Set System Boot Options request for the boot flags (parameter 5)."""

    device: str  # 'default', 'network', 'hd', 'safe', 'optical', 'setup', 'floppy' or 'selector N'
    persistent: bool
    uefi: bool
    valid: bool
    raw: bytes  # the 5 boot flag bytes as sent


@dataclasses.dataclass(frozen=True)
class LoginEvent:
    """The outcome of one RAKP exchange: ok, or why it failed."""

    user: str
    ok: bool
    reason: str  # '' when ok, else e.g. 'unknown user', 'bad RAKP 3 HMAC'
    client: tuple


# --------------------------------------------------------------------------- pyghmi server side


class _ServerSession(pyghmi_serversession.ServerSession):
    """pyghmi's RMCP+ server session, made strict about cipher suites and clean about failures.

    One per RMCP+ open-session request (a new request from the same client address replaces it).
    """

    # class defaults: these exist before the base __init__ calls create_open_session_response()
    username = b""
    clientpriv = 4
    maxpriv = 4
    _last_request = None
    _last_response = None

    def _record_login(self, ok: bool, reason: str) -> None:
        user = bytes(self.username).decode("utf-8", "replace")
        self.bmc.fake.record_login(LoginEvent(user, ok, reason, tuple(self.sockaddr[:2])))

    def create_open_session_response(self, request):
        request = bytearray(request)
        if len(request) < 32:
            self.clientsessionid = bytearray(request[4:8].ljust(4, b"\0"))
            return bytearray([request[0] if request else 0, RMCP_ILLEGAL_PARAMETER, 0, 0]) + self.clientsessionid
        self.clientsessionid = request[4:8]
        proposal = (request[12] & 0x3F, request[20] & 0x3F, request[28] & 0x3F)
        if proposal != SUITE3_ALGORITHMS:
            # pyghmi's client retries with suite 3 only on a refusal; answering suite 3 anyway crashes it
            self.bmc.fake.record_cipher_refusal(proposal)
            return bytearray([request[0], RMCP_NO_CIPHER_SUITE_MATCH, 0, 0]) + self.clientsessionid
        return super().create_open_session_response(request)

    def _got_rmcp_openrequest(self, data):
        pass  # never routed here: _PyghmiBmc makes a new session for every open-session request

    def _got_rakp1(self, data):
        data = bytearray(data)
        if len(data) < 28 or "managedsessionid" not in self.__dict__:
            return  # malformed, or RAKP 1 after a refused open-session request
        name = bytes(data[28 : 28 + data[27]])
        self.username = name
        password = self.authdata.get(name.decode("utf-8", "replace")) if name else None
        if password is None:
            self._record_login(False, "unknown user" if name else "anonymous login refused")
            reply = bytearray([data[0], RMCP_UNAUTHORIZED_NAME, 0, 0]) + self.clientsessionid
            self.send_payload(reply, pyghmi_constants.payload_types["rakp2"], retry=False)
            return
        super()._got_rakp1(data)

    def _got_rakp3(self, data):
        data = bytearray(data)
        if len(data) < 8 or "Rc" not in self.__dict__:
            return  # no RAKP 1 seen: nothing to answer
        if data[1] != RMCP_OK:
            # the client refused our RAKP 2: its password differs from ours
            self._record_login(False, f"client refused RAKP 2 (status {data[1]:#04x}, wrong password?)")
            return
        hmacdata = bytes(self.Rc + self.clientsessionid + struct.pack("2B", self.rolem, len(self.username)) + self.username)
        expected = hmac.new(self.kuid, hmacdata, hashlib.sha1).digest()
        if bytes(data[8:]) != expected:
            self._record_login(False, "bad RAKP 3 HMAC (wrong password)")
            reply = bytearray([data[0], RMCP_INVALID_INTEGRITY_CHECK, 0, 0]) + self.clientsessionid
            self.send_payload(reply, pyghmi_constants.payload_types["rakp4"], retry=False)
            return
        super()._got_rakp3(data)
        self.clientpriv = min(self.maxpriv, 4) or 4
        self._record_login(True, "")

    def handle_client_request(self, request):
        netfn, command, data = request["netfn"], request["command"], bytes(request["data"])
        key = (self.seqlun, netfn, command, data)
        if self._last_request is not None and self._last_request[0] == key and time.monotonic() - self._last_request[1] < 10:
            # a retransmission (the client missed our answer): answer again, do not do it twice
            if self._last_response is not None:
                self.send_ipmi_response(*self._last_response)
            return
        self._last_request = (key, time.monotonic())
        self._last_response = None
        if netfn == 6 and command == 0x3B:  # set session privilege level
            wanted = data[0] & 0x0F if data else 0
            if wanted and wanted > self.maxpriv:
                self.send_ipmi_response(code=0x81)  # requested level not available for this user
                return
            if wanted:
                self.clientpriv = wanted
            self.send_ipmi_response(data=[self.clientpriv])
        elif netfn == 6 and command == 0x3C:  # close session
            self.send_ipmi_response()
            self.close_server_session()
        else:
            self.bmc.handle_raw_request(request, self)

    def send_ipmi_response(self, data=(), code=0):
        self._last_response = (list(data), code)
        self._send_ipmi_net_payload(data=list(data), code=code)

    def close_server_session(self):
        """Forget this session: the next packet from this client address needs a new one."""
        if self.bmc.sessions.get(self.sockaddr) is self:
            del self.bmc.sessions[self.sockaddr]


class _PyghmiBmc(pyghmi_bmc.Bmc):  # pylint: disable=too-many-instance-attributes
    """pyghmi's IPMI server on one UDP port, answering from the state of a FakeIpmiBmc.

    IpmiServer.__init__ is not called on purpose: it would put the socket into pyghmi's process-wide
    event loop, shared with pyghmi clients in the same process (two threads then run client sessions
    and race on their state). The socket is served by _EventLoop instead, and the sessions are kept
    here, not in pyghmi's global Session.bmc_handlers.
    """

    def __init__(self, fake: "FakeIpmiBmc", port: int):  # pylint: disable=super-init-not-called
        self.fake = fake
        self.authdata = fake.authdata
        self.uuid = fake.guid
        self.kg = None
        self.timeout = 60
        self.pktqueue: collections.deque = collections.deque()
        # Get Channel Authentication Capabilities: channel 1, IPMI 2.0 only, non-null user names
        self.authcap = struct.pack("9B", 0, 1, 0b10000000, 0b00000100, 0b00000010, 0, 0, 0, 0)
        self.sessions: dict = {}  # client address -> _ServerSession
        self.serversocket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.serversocket.bind((LOOPBACK, port))
        except OSError:
            self.serversocket.close()
            raise
        self.port = self.serversocket.getsockname()[1]
        self.handlers = {
            (6, 0x01): self._get_device_id,
            (6, 0x02): self._cold_reset,
            (6, 0x37): self._get_system_guid,
            (6, 0x38): self._get_channel_auth_capabilities,
            (0, 0x01): self._get_chassis_status,
            (0, 0x02): self._chassis_control,
            (0, 0x08): self._set_boot_options,
            (0, 0x09): self._get_boot_options,
        }

    def receive(self) -> None:
        """Read and answer every datagram waiting on the socket (called by the event loop thread)."""
        while True:
            try:
                packet, sockaddr = self.serversocket.recvfrom(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            try:
                self.dispatch(bytearray(packet), sockaddr)
            except Exception:  # pylint: disable=broad-exception-caught  # keep serving, let the test see it
                self.fake.record_error(traceback.format_exc())

    def dispatch(self, packet: bytearray, sockaddr) -> None:
        """What pyghmi's Session.process_pktqueue does for a server, with sessions kept per BMC."""
        if len(packet) < 6 or not (packet[0] == 6 and packet[2:4] == b"\xff\x07"):
            return  # not RMCP/IPMI
        if packet[4] == 6 and packet[5] & 0x3F == 0x10:
            # RMCP+ open session request: a new session for this client address, replacing any earlier one
            session = _ServerSession(self.authdata, self.kg, sockaddr, self.serversocket, packet[16:], self.uuid, bmc=self)
            self.sessions[sockaddr] = session
            # the base __init__ registered it in pyghmi's global table, which is for pyghmi's event loop
            handlers = pyghmi_session.Session.bmc_handlers.get(sockaddr)
            if handlers is not None and handlers.get(self.port) is session:
                del handlers[self.port]
                if not handlers:
                    pyghmi_session.Session.bmc_handlers.pop(sockaddr, None)
            return
        known = self.sessions.get(sockaddr)
        if packet[4] == 6 and known is not None:
            known._handle_ipmi_packet(packet, sockaddr=sockaddr, qent=(packet, sockaddr, self.serversocket))  # pylint: disable=protected-access
        else:
            # sessionless: Get Channel Authentication Capabilities, Get Channel Cipher Suites (suite 3 only)
            self.sessionless_data(packet, sockaddr)

    def handle_raw_request(self, request, session):
        netfn, command = request["netfn"], request["command"]
        handler = self.handlers.get((netfn, command))
        self.fake.record_request(
            IpmiRequest(
                netfn, command, bytes(request["data"]), tuple(session.sockaddr[:2]), bytes(session.username).decode("utf-8", "replace"), handler is not None
            )
        )
        if handler is None:
            session.send_ipmi_response(code=CC_INVALID_COMMAND)
            return
        try:
            handler(bytes(request["data"]), session)
        except Exception:  # pylint: disable=broad-exception-caught  # answer, and let the test see it
            self.fake.record_error(traceback.format_exc())
            session.send_ipmi_response(code=CC_UNSPECIFIED)

    # ------------------------------------------------------------------ commands

    def _get_device_id(self, data, session):
        session.send_ipmi_response(data=self.fake.device_id_data())

    def _cold_reset(self, data, session):
        self.fake.count_cold_reset()
        session.send_ipmi_response()

    def _get_system_guid(self, data, session):
        session.send_ipmi_response(data=list(self.uuid.bytes_le))

    def _get_channel_auth_capabilities(self, data, session):
        session.send_ipmi_response(data=list(self.authcap[1:]))

    def _get_chassis_status(self, data, session):
        session.send_ipmi_response(data=self.fake.chassis_status_data())

    def _chassis_control(self, data, session):
        if not data or data[0] & 0x0F not in CHASSIS_CONTROL:
            session.send_ipmi_response(code=CC_INVALID_DATA_FIELD)
            return
        session.send_ipmi_response(code=self.fake.power_action(CHASSIS_CONTROL[data[0] & 0x0F]))

    def _set_boot_options(self, data, session):
        if not data:
            session.send_ipmi_response(code=CC_INVALID_DATA_FIELD)
            return
        session.send_ipmi_response(code=self.fake.set_boot_parameter(data[0] & 0x7F, data[1:]))

    def _get_boot_options(self, data, session):
        if not data:
            session.send_ipmi_response(code=CC_INVALID_DATA_FIELD)
            return
        value = self.fake.boot_parameter(data[0] & 0x7F)
        if value is None:
            session.send_ipmi_response(code=CC_PARAMETER_NOT_SUPPORTED)
            return
        session.send_ipmi_response(data=[1, data[0] & 0x7F, *value])  # parameter version 1


class _EventLoop:
    """One daemon thread serving the sockets of all started fake BMCs of the process (select()).

    The thread runs while at least one BMC is started. Sockets are closed by the thread itself,
    between two select() calls, so that no select() ever sees a closed descriptor.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.servers: list[_PyghmiBmc] = []
        self.closing: list[tuple[_PyghmiBmc, threading.Event]] = []
        self.thread: threading.Thread | None = None
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def add(self, server: _PyghmiBmc) -> None:
        with self.lock:
            self.servers.append(server)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="fake-ipmi-bmc", daemon=True)
                self.thread.start()
        self._wake()

    def remove(self, server: _PyghmiBmc) -> None:
        """Stop serving server and close its socket; returns once the port is free."""
        closed = threading.Event()
        with self.lock:
            if self.thread is None or self.thread is threading.current_thread():
                self._close(server)
                return
            self.closing.append((server, closed))
        self._wake()
        if not closed.wait(10):
            raise BmcError(f"the fake IPMI BMC thread did not release port {server.port}")

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already awake
            self.wake_w.send(b"\0")

    def _close(self, server: _PyghmiBmc) -> None:
        if server in self.servers:
            self.servers.remove(server)
        server.sessions.clear()
        server.serversocket.close()

    def _run(self) -> None:
        while True:
            with self.lock:
                while self.closing:
                    server, closed = self.closing.pop()
                    self._close(server)
                    closed.set()
                if not self.servers:
                    self.thread = None
                    return
                sockets = {server.serversocket: server for server in self.servers}
            readable, _w, _x = select.select([*sockets, self.wake_r], [], [], 5.0)
            for sock in readable:
                if sock is self.wake_r:
                    try:
                        while self.wake_r.recv(512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    sockets[sock].receive()


_LOOP = _EventLoop()


def forget_pyghmi_sessions(port: int) -> int:
    """Drop pyghmi's client sessions to 127.0.0.1:port from its per-process tables; returns how many.

    pyghmi 1.6.19 never removes a session from Session.initting_sessions (it deletes the key with the
    user and password as bytes, stored as str), so a later Command with the same host, port, user and
    password gets that session back even once it was logged out or failed, and breaks (TypeError in
    raw_command, or an IpmiException without message). FakeIpmiBmc.stop() calls this; tests that make
    a second Command to the same BMC after a logout call it too.
    """
    cls = pyghmi_session.Session
    dropped = set()
    for key in list(cls.initting_sessions):
        if key[3] == port:  # (bmc, userid, password, port, kg)
            dropped.add(cls.initting_sessions.pop(key, None))
    for peer in list(cls.bmc_handlers):
        handlers = cls.bmc_handlers.get(peer)
        if not (isinstance(peer, tuple) and peer[:2] in ((LOOPBACK, port), ("::ffff:" + LOOPBACK, port)) and isinstance(handlers, dict)):
            continue
        for local_port, client in list(handlers.items()):
            if not getattr(client, "servermode", False):
                dropped.add(handlers.pop(local_port, None))
        if not handlers:
            cls.bmc_handlers.pop(peer, None)
    dropped.discard(None)
    with pyghmi_session.KEEPALIVE_SESSIONS:
        for client in dropped:
            cls.keepalive_sessions.pop(client, None)
    with pyghmi_session.WAITING_SESSIONS:
        for client in dropped:
            cls.waiting_sessions.pop(client, None)
    for client in dropped:
        client.logged = 0
        client.logging = False
        client.lastpayload = None
    return len(dropped)


# --------------------------------------------------------------------------- public API


class FakeIpmiBmc:  # pylint: disable=too-many-instance-attributes  # one attribute per Get Device ID field
    """A fake IPMI BMC on 127.0.0.1:port (UDP) with users, firmware revision, power and boot device.

    authdata: {user: password}. port: a free UDP port when None (``.port`` is set at once). Power state
    'on' or 'off'. The firmware revision and the other fields may be changed while it runs (e.g. to
    play a finished update); ``update_in_progress`` sets bit 7 of the major revision byte.
    """

    def __init__(
        self,
        authdata: dict[str, str] | None = None,
        port: int | None = None,
        *,
        firmware_revision: str = "2.10",
        aux_firmware_revision: bytes | None = b"\x00\x00\x00\x00",
        device_id: int = 0x20,
        device_revision: int = 1,
        manufacturer_id: int = 0,
        product_id: int = 0,
        power_state: str = "on",
        boot_device: str = "default",
        guid: uuid.UUID | None = None,
    ):
        self.authdata = dict(authdata if authdata is not None else {"admin": "admin"})
        self._auto_port = port is None
        self.port = free_udp_port() if port is None else port
        self._lock = threading.RLock()
        self._firmware = encode_firmware_revision(firmware_revision)
        self.aux_firmware_revision = aux_firmware_revision
        self.device_id = device_id
        self.device_revision = device_revision
        self.manufacturer_id = manufacturer_id
        self.product_id = product_id
        self.update_in_progress = False
        if power_state not in ("on", "off"):
            raise ValueError(f"power_state must be 'on' or 'off', not {power_state!r}")
        self.power_state = power_state
        self.boot_count = 0
        self.cold_resets = 0
        self.guid = guid or uuid.uuid4()
        if boot_device not in BOOT_DEVICE_NUMBERS:
            raise ValueError(f"boot_device must be one of {sorted(BOOT_DEVICE_NUMBERS)}, not {boot_device!r}")
        self._boot_flags = bytes([0x80 if boot_device != "default" else 0, BOOT_DEVICE_NUMBERS[boot_device] << 2, 0, 0, 0])
        self._boot_other = {0: b"\x00", 3: b"\x00", 4: b"\x00\x00"}
        self._requests: list[IpmiRequest] = []
        self._power_history: list[PowerEvent] = []
        self._boot_history: list[BootEvent] = []
        self._logins: list[LoginEvent] = []
        self._cipher_refusals: list[tuple[int, int, int]] = []
        self._errors: list[str] = []
        self._server: _PyghmiBmc | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeIpmiBmc":
        """Bind the UDP port and serve (the serving thread starts with the first BMC of the process)."""
        if self._server is not None:
            return self
        try:
            server = _PyghmiBmc(self, self.port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not self._auto_port:
                raise BmcError(f"fake IPMI BMC cannot bind {LOOPBACK}:{self.port}/udp: {exc}") from exc
            server = _PyghmiBmc(self, 0)  # lost the race for the free port: let the kernel pick one
        self.port = server.port
        self._server = server
        _LOOP.add(server)
        return self

    def stop(self) -> None:
        """Stop answering and free the port (the recorded history stays readable)."""
        server, self._server = self._server, None
        if server is None:
            return
        _LOOP.remove(server)
        forget_pyghmi_sessions(self.port)

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._server is not None

    def __enter__(self) -> "FakeIpmiBmc":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FakeIpmiBmc {LOOPBACK}:{self.port} fw {self.firmware_revision} power {self.power_state}>"

    # ------------------------------------------------------------------ configuration

    @property
    def address(self) -> str:
        """The IP address the BMC answers on (always 127.0.0.1)."""
        return LOOPBACK

    @property
    def firmware_revision(self) -> str:
        """The firmware revision as 'M.mm' (what ipmitool prints); settable while running."""
        return decode_firmware_revision(*self._firmware)

    @firmware_revision.setter
    def firmware_revision(self, revision: str) -> None:
        self._firmware = encode_firmware_revision(revision)

    @property
    def boot_device(self) -> str:
        """The boot device of the boot flags ('default' when no valid override is set)."""
        return self._decode_boot_flags(self._boot_flags).device

    # ------------------------------------------------------------------ recorded state (copies)

    @property
    def requests(self) -> list[IpmiRequest]:
        """Every IPMI request received inside a session, in order (session set-up excluded)."""
        with self._lock:
            return list(self._requests)

    @property
    def unexpected_requests(self) -> list[IpmiRequest]:
        """Requests this BMC does not implement (OEM, raw, firmware update...), answered C1h, except
        ipmitool's own discovery probes (CLIENT_PROBES)."""
        return [request for request in self.requests if request.unexpected]

    @property
    def oem_requests(self) -> list[IpmiRequest]:
        """Requests with an OEM / group extension network function, ipmitool's probes excluded."""
        return [request for request in self.requests if request.is_oem and not request.probe]

    @property
    def power_history(self) -> list[PowerEvent]:
        """Every Chassis Control request, in order."""
        with self._lock:
            return list(self._power_history)

    @property
    def power_actions(self) -> list[str]:
        """The actions of power_history: e.g. ['off', 'on', 'cycle']."""
        return [event.action for event in self.power_history]

    @property
    def boot_history(self) -> list[BootEvent]:
        """Every boot flags change (Set System Boot Options parameter 5), in order."""
        with self._lock:
            return list(self._boot_history)

    @property
    def logins(self) -> list[LoginEvent]:
        """RAKP outcomes seen by the BMC. A pyghmi client with a wrong password stops after RAKP 2:
        only the client knows, and nothing is recorded here."""
        with self._lock:
            return list(self._logins)

    @property
    def cipher_refusals(self) -> list[tuple[int, int, int]]:
        """Refused open-session proposals as (auth, integrity, confidentiality) algorithm numbers."""
        with self._lock:
            return list(self._cipher_refusals)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of exceptions raised while answering (a test should expect none)."""
        with self._lock:
            return list(self._errors)

    def clear_history(self) -> None:
        """Forget the recorded requests, power/boot history, logins and refusals."""
        with self._lock:
            for recorded in (self._requests, self._power_history, self._boot_history, self._logins, self._cipher_refusals):
                recorded.clear()

    # ------------------------------------------------------------------ called from the server thread

    def record_request(self, request: IpmiRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def record_login(self, event: LoginEvent) -> None:
        with self._lock:
            self._logins.append(event)

    def record_cipher_refusal(self, proposal: tuple[int, int, int]) -> None:
        with self._lock:
            self._cipher_refusals.append(proposal)

    def record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    def count_cold_reset(self) -> None:
        with self._lock:
            self.cold_resets += 1

    def device_id_data(self) -> list[int]:
        """Get Device ID response data (after the completion code), IPMI 2.0 table 20-2."""
        major, minor = self._firmware
        if self.update_in_progress:
            major |= 0x80
        data = [
            self.device_id & 0xFF,
            self.device_revision & 0x0F,
            major,
            minor,
            0x02,  # IPMI version 2.0 (BCD, minor in the high nibble)
            0x80,
        ]  # additional device support: chassis device
        data += list(struct.pack("<I", self.manufacturer_id & 0xFFFFF)[:3])
        data += list(struct.pack("<H", self.product_id & 0xFFFF))
        if self.aux_firmware_revision is not None:
            aux = bytes(self.aux_firmware_revision)
            if len(aux) != 4:
                raise BmcError(f"aux_firmware_revision must be 4 bytes, not {aux!r}")
            data += list(aux)
        return data

    def chassis_status_data(self) -> list[int]:
        """Get Chassis Status response data: power on bit, restore policy 'previous', no faults."""
        last_event = 0x10 if any(event.after == "on" and event.code == 0 for event in self.power_history) else 0
        return [(1 if self.power_state == "on" else 0) | 0x20, last_event, 0x00]

    def power_action(self, action: str) -> int:
        """Apply a Chassis Control action at once; returns the completion code (D5h: not while off)."""
        with self._lock:
            before = self.power_state
            code = CC_OK
            if action == "off":
                after = "off"
            elif action == "on":
                after = "on"
            elif before == "off":  # cycle, reset, diag, soft: nothing to act on
                after, code = "off", CC_NOT_IN_PRESENT_STATE
            elif action == "soft":
                after = "off"
            else:  # cycle, reset, diag: still on afterwards
                after = "on"
            if code == CC_OK and after == "on" and (before == "off" or action in ("cycle", "reset")):
                self.boot_count += 1
            self.power_state = after
            self._power_history.append(PowerEvent(action, before, after, code, time.monotonic()))
            return code

    @staticmethod
    def _decode_boot_flags(flags: bytes) -> BootEvent:
        selector = (flags[1] >> 2) & 0x0F
        valid = bool(flags[0] & 0x80)
        device = BOOT_DEVICES.get(selector, f"selector {selector}") if valid else "default"
        return BootEvent(device, bool(flags[0] & 0x40), bool(flags[0] & 0x20), valid, bytes(flags))

    def set_boot_parameter(self, parameter: int, value: bytes) -> int:
        with self._lock:
            if parameter == 5:
                if len(value) < 2:
                    return CC_INVALID_DATA_FIELD
                flags = (bytes(value) + bytes(5))[:5]
                self._boot_flags = flags
                self._boot_history.append(self._decode_boot_flags(flags))
                return CC_OK
            if parameter in self._boot_other:
                self._boot_other[parameter] = bytes(value)
                return CC_OK
            return CC_PARAMETER_NOT_SUPPORTED

    def boot_parameter(self, parameter: int) -> bytes | None:
        with self._lock:
            if parameter == 5:
                return self._boot_flags
            return self._boot_other.get(parameter)


class IpmiBmcPool:
    """count fake BMCs in this process, each on its own UDP port; settings are shared unless given
    per BMC as firmware_revisions=[...] (one per BMC)."""

    def __init__(self, count: int, authdata: dict[str, str] | None = None, *, firmware_revisions=None, **settings):
        if firmware_revisions is not None and len(firmware_revisions) != count:
            raise ValueError(f"firmware_revisions has {len(firmware_revisions)} entries for {count} BMCs")
        revisions = list(firmware_revisions) if firmware_revisions is not None else [settings.pop("firmware_revision", "2.10")] * count
        settings.pop("firmware_revision", None)
        self.bmcs = [FakeIpmiBmc(authdata, firmware_revision=revision, **settings) for revision in revisions]

    def start(self) -> "IpmiBmcPool":
        """Start them all (stopping those already started if one fails)."""
        try:
            for bmc in self.bmcs:
                bmc.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop them all."""
        for bmc in self.bmcs:
            bmc.stop()

    @property
    def ports(self) -> list[int]:
        """The UDP port of each BMC, in order."""
        return [bmc.port for bmc in self.bmcs]

    def __enter__(self) -> "IpmiBmcPool":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __len__(self) -> int:
        return len(self.bmcs)

    def __iter__(self):
        return iter(self.bmcs)

    def __getitem__(self, index: int) -> FakeIpmiBmc:
        return self.bmcs[index]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run fake IPMI BMCs on 127.0.0.1 (UDP) until SIGINT/SIGTERM.")
    parser.add_argument("--count", type=int, default=1, help="number of BMCs (each its own port)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="bmc-s3cret")
    parser.add_argument("--port", type=int, default=0, help="port of the first BMC (then +1 each); 0: free ports")
    parser.add_argument("--firmware", default="2.10", help="firmware revision M.mm, or one per BMC separated by commas")
    parser.add_argument("--power", default="on", choices=("on", "off"))
    args = parser.parse_args(argv)
    revisions = args.firmware.split(",")
    if len(revisions) not in (1, args.count):
        parser.error("--firmware: give one revision or one per BMC")

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stop.set())
    bmcs = []
    try:
        for index in range(args.count):
            bmc = FakeIpmiBmc(
                {args.user: args.password},
                args.port + index if args.port else None,
                firmware_revision=revisions[index % len(revisions)],
                power_state=args.power,
            )
            bmcs.append(bmc.start())
            print(
                json.dumps({"host": bmc.address, "port": bmc.port, "user": args.user, "password": args.password, "firmware_revision": bmc.firmware_revision}),
                flush=True,
            )
        stop.wait()
    finally:
        for bmc in bmcs:
            bmc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
