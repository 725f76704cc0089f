"""Redfish BMC emulators for system tests: sushy-tools' emulator, extended with firmware updates.

A RedfishBmc is the real sushy-tools emulator (its Flask app from sushy_tools/emulator/main.py with
the fake systems driver, its HTTP Basic auth middleware and its SQLite state) served over HTTPS on
127.0.0.1 by a werkzeug server thread in this process. Each instance loads its own copy of the
emulator module, so several BMCs (each with its own Flask app, port, state dir and credentials) run
side by side in one process. Extensions, added in-process (docs/bmc-emulators.md):

- UpdateService with HttpPushUri (raw image), MultipartHttpPushUri (UpdateFile + UpdateParameters),
  SimpleUpdate (the BMC really downloads ImageURI over HTTP(S)), apply times Immediate and OnReset;
- FirmwareInventory (BIOS, BMC and optionally a NIC per system; a staged image shows as
  "<id>-Pending" in state StandbyOffline), versions also in ComputerSystem.BiosVersion and
  Manager.FirmwareVersion;
- TaskService tasks (New -> Running -> Completed | Exception) with task monitors;
- Manager.Reset (activates a staged BMC image; optional reboot window in which connections drop);
- deterministic power changes (power_delay seconds, default immediate) instead of the fake
  driver's random 1-11 s; a host boot (On from Off, any restart) activates staged BIOS/NIC images.

Images are judged by image_check(image_bytes, SystemState) -> (ok, new_version or error message);
default_image_check reads ExUpInfo.xml from the zip (docs/package-format.md).

Command line (for a benchmark or by hand):

    python tests/services/redfish.py --count 2 [--systems 1] [--model MODEL]

prints one JSON line per BMC (url, user, password, CA file, system URLs) and serves until SIGINT or
SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import dataclasses
import datetime
import importlib.util
import io
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import typing
import urllib.error
import urllib.parse
import urllib.request
import uuid as uuidlib
import zipfile
from pathlib import Path

import bcrypt
import flask
from lxml import etree
from sushy_tools import error as sushy_error
from sushy_tools.emulator.resources.systems import fakedriver
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

if __name__ == "__main__":  # run as a script: the collection is importable from build/collections
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "build" / "collections"))

# pylint: disable=wrong-import-position  # after the sys.path entry above
from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK
from ansible_collections.exup.fleet.tests.services.processes import ServiceError
from ansible_collections.exup.fleet.tests.services.tls import TlsFiles, make_tls_files

# pylint: enable=wrong-import-position

DEFAULT_MODEL = "Express5800/R120h-1M"
DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "bmc-s3cret"
BCRYPT_ROUNDS = 4  # the lowest bcrypt cost: sushy checks the password on every request
APPLY_TIMES = ("Immediate", "OnReset")
TRANSFER_PROTOCOLS = ("HTTP", "HTTPS")
MANAGER_RESET_TYPES = ("GracefulRestart", "ForceRestart")
# Firmware components per system and the exup module id (ExUpInfo.xml Module/@id) that updates each.
COMPONENT_MODULES = {"BIOS": "system-bios", "BMC": "bmc-firmware", "NIC": "nic-firmware"}
COMPONENT_NAMES = {"BIOS": "System BIOS", "BMC": "BMC firmware", "NIC": "Network adapter firmware"}

UPDATE_SERVICE = "/redfish/v1/UpdateService"
FIRMWARE_INVENTORY = UPDATE_SERVICE + "/FirmwareInventory"
HTTP_PUSH_URI = UPDATE_SERVICE + "/update"
MULTIPART_PUSH_URI = UPDATE_SERVICE + "/update-multipart"
SIMPLE_UPDATE_URI = UPDATE_SERVICE + "/Actions/UpdateService.SimpleUpdate"
TASKS = "/redfish/v1/TaskService/Tasks"
TASK_MONITORS = "/redfish/v1/TaskService/TaskMonitors"
BASE_REGISTRY = "Base.1.16"
UPDATE_REGISTRY = "Update.1.0"
SIMPLE_UPDATE_PARAMETERS = frozenset(
    (
        "ImageURI",
        "TransferProtocol",
        "Targets",
        "Username",
        "Password",
        "ForceUpdate",
        "Stage",
        "LocalImage",
        "ExcludeTargets",
        "Oem",
        "@Redfish.OperationApplyTime",
    )
)

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0  # a kept-alive connection that stays idle this long is closed
DOWNLOAD_TIMEOUT = 30.0
QUICK_TASK_WAIT = 2.0  # task_delay 0: how long the answer to an update request waits for the task
TERMINAL_STATES = ("Completed", "Exception", "Killed", "Cancelled")

_LOAD_LOCK = threading.Lock()
_LOAD_COUNTER = itertools.count(1)


# --------------------------------------------------------------------------- public helpers


@dataclasses.dataclass
class BmcSystem:  # pylint: disable=too-many-instance-attributes  # one field per emulated property
    """One server behind the BMC: its model, firmware versions and initial power state.

    uuid: the Redfish system id (Systems/<uuid>); derived from name when empty.
    nic_version None: no NIC in the firmware inventory; nic_updateable: whether the BMC can update it.
    """

    name: str = "server-1"
    model: str = DEFAULT_MODEL
    bios_version: str = "1.00"
    bmc_version: str = "2.00"
    nic_version: str | None = "22.31.6"
    nic_updateable: bool = False
    power_state: str = "On"
    manufacturer: str = "NEC"
    serial_number: str = ""
    uuid: str = ""

    def __post_init__(self):
        if not self.uuid:
            self.uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"exup-bmc:{self.name}"))
        if not self.serial_number:
            self.serial_number = "SN" + self.uuid.replace("-", "")[:10].upper()


@dataclasses.dataclass(frozen=True)
class SystemState:
    """What image_check sees: the system an image would be applied to, and which component.

    component is BIOS, BMC or NIC; module the exup module id that updates it (COMPONENT_MODULES);
    version its active version; versions the active versions of all the system's components.
    """

    name: str
    uuid: str
    model: str
    component: str
    module: str
    version: str
    versions: dict
    power_state: str


def default_image_check(image: bytes, state: SystemState) -> tuple[bool, str]:
    """Accept a zip whose ExUpInfo.xml names the system's model and the component's module.

    Returns (True, Version from ExUpInfo.xml) or (False, why not). Signatures are not checked.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(image)) as archive:
            member = archive.getinfo("ExUpInfo.xml")
            if member.file_size > 1024 * 1024:
                return False, "ExUpInfo.xml is too large"
            info_xml = archive.read(member)
    except KeyError:
        return False, "the image has no ExUpInfo.xml"
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return False, f"the image is not an update package (zip): {exc}"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(info_xml, parser)
    except etree.XMLSyntaxError as exc:
        return False, f"ExUpInfo.xml is not well-formed: {exc}"
    module_el = root.find("Module")
    module = module_el.get("id") if module_el is not None else None
    version = (root.findtext("Version") or "").strip()
    models = [(model.text or "").strip() for model in root.iterfind("Targets/Model")]
    if module != state.module:
        return False, f"the package updates module {module!r}, not {state.component} ({state.module})"
    if state.model not in models:
        return False, f"the package is for {', '.join(models) or 'no model'}, not {state.model}"
    if not version:
        return False, "ExUpInfo.xml has no Version"
    return True, version


def make_image(model: str, module: str, version: str, *, package_id: str = "", payload: bytes = b"") -> bytes:
    """A minimal (unsigned) update package zip that default_image_check accepts for model/module."""
    root = etree.Element("ExUpInfo", schemaVersion="1")
    etree.SubElement(root, "PackageId").text = package_id or f"bmc-{module}-{version}"
    etree.SubElement(root, "Module", id=module, name=module)
    etree.SubElement(root, "Version").text = version
    etree.SubElement(root, "ReleaseDate").text = "2026-01-01"
    targets = etree.SubElement(root, "Targets")
    etree.SubElement(targets, "Model").text = model
    operating_systems = etree.SubElement(root, "OperatingSystems")
    etree.SubElement(operating_systems, "OS").text = "any"
    etree.SubElement(root, "Kind").text = "bmc"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ExUpInfo.xml", etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
        archive.writestr("firmware.bin", payload or f"{module} {version} for {model}".encode())
    return buffer.getvalue()


def write_htpasswd(path: Path, users: dict) -> None:
    """An htpasswd file with bcrypt hashes (the only kind sushy-tools accepts), BCRYPT_ROUNDS cost."""
    lines = []
    for name, password in users.items():
        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
        lines.append(f"{name}:{digest}\n")
    path.write_text("".join(lines))
    path.chmod(0o600)


# --------------------------------------------------------------------------- Redfish payloads


def _message(message_id: str, text: str, args=(), severity: str = "OK", resolution: str = "None.") -> dict:
    return {
        "@odata.type": "#Message.v1_1_2.Message",
        "MessageId": message_id,
        "Message": text,
        "MessageArgs": [str(arg) for arg in args],
        "MessageSeverity": severity,
        "Severity": severity,
        "Resolution": resolution,
    }


def _json_response(body, status: int = 200, headers: dict | None = None) -> flask.Response:
    all_headers = {"OData-Version": "4.0", **(headers or {})}
    return flask.Response(json.dumps(body), status=status, headers=all_headers, content_type="application/json")


def _error_response(status: int, message_id: str, text: str, args=(), headers: dict | None = None) -> flask.Response:
    """A Redfish error body (DSP0266 "Error responses"); pyghmi shows ExtendedInfo[0].Message."""
    info = _message(message_id, text, args, "Critical", "Correct the request and resubmit it.")
    body = {"error": {"code": message_id, "message": text, "@Message.ExtendedInfo": [info]}}
    return _json_response(body, status, headers)


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _Rejected(Exception):
    """A request the BMC refuses: carries the HTTP status and Redfish message."""

    def __init__(self, status: int, message_id: str, text: str, args=()):
        super().__init__(text)
        self.status, self.message_id, self.text, self.args_ = status, message_id, text, args

    def response(self) -> flask.Response:
        return _error_response(self.status, self.message_id, self.text, self.args_)


class _TaskFailed(Exception):
    """Ends a task in state Exception with this message."""

    def __init__(self, message: dict):
        super().__init__(message["Message"])
        self.message = message


# --------------------------------------------------------------------------- emulator state


@dataclasses.dataclass
class _Component:
    kind: str  # BIOS, BMC or NIC
    version: str
    updateable: bool
    staged: str | None = None  # an image waiting for its reset
    activate_at: float | None = None  # when the staged image becomes active (a host boot is under way)


@dataclasses.dataclass
class _System:
    spec: BmcSystem
    components: dict  # kind -> _Component

    @property
    def uuid(self) -> str:
        return self.spec.uuid

    @property
    def url(self) -> str:
        return f"/redfish/v1/Systems/{self.spec.uuid}"

    @property
    def manager_url(self) -> str:  # sushy-tools: one manager per system, same id
        return f"/redfish/v1/Managers/{self.spec.uuid}"


@dataclasses.dataclass
class _Candidate:
    """A component an update may go to; explicit when the client named it in Targets."""

    system: _System
    kind: str
    explicit: bool


@dataclasses.dataclass
class _UpdateRequest:  # pylint: disable=too-many-instance-attributes  # the request as the task needs it
    operation: str  # the request URI (Task.Payload.TargetUri)
    image_name: str
    candidates: list
    apply_time: str
    image: bytes | None = None
    url: str | None = None  # SimpleUpdate: the BMC downloads it
    username: str | None = None
    password: str | None = None


@dataclasses.dataclass
class _Task:  # pylint: disable=too-many-instance-attributes  # Redfish Task properties
    task_id: str
    target_uri: str
    state: str = "New"
    status: str = "OK"
    percent: int = 0
    messages: list = dataclasses.field(default_factory=list)
    start_time: str = dataclasses.field(default_factory=_now_iso)
    end_time: str | None = None

    @property
    def url(self) -> str:
        return f"{TASKS}/{self.task_id}"

    @property
    def monitor_url(self) -> str:
        return f"{TASK_MONITORS}/{self.task_id}"

    def resource(self) -> dict:
        body = {
            "@odata.type": "#Task.v1_7_3.Task",
            "@odata.id": self.url,
            "Id": self.task_id,
            "Name": f"Update task {self.task_id}",
            "TaskState": self.state,
            "TaskStatus": self.status,
            "PercentComplete": self.percent,
            "StartTime": self.start_time,
            "TaskMonitor": self.monitor_url,
            "Messages": list(self.messages),
            "Payload": {"HttpOperation": "POST", "TargetUri": self.target_uri, "HttpHeaders": []},
        }
        if self.end_time:
            body["EndTime"] = self.end_time
        return body


class _ExupFakeDriver(fakedriver.FakeDriver):
    """sushy-tools' fake systems driver with firmware versions and deterministic power changes.

    A subclass is made per BMC (initialize() keeps the config on the class) with _exup_bmc set.
    """

    _exup_bmc: RedfishBmc

    def get_versions(self, identity):
        return {"BiosVersion": self._exup_bmc.versions(self.uuid(identity))["BIOS"]}

    def set_versions(self, identity, firmware_versions):
        raise sushy_error.NotSupportedError("versions change only through the UpdateService")

    def set_power_state(self, identity, state):
        # As FakeDriver.set_power_state, but the change applies after power_delay seconds (the
        # original: random 1-11 s), PowerCycle is a restart, and a host boot activates staged images.
        apply_time = time.time() + self._exup_bmc.power_delay
        system = self._get(identity)
        before = system["power_state"]
        if "On" in state:
            pending_state = "On"
        elif state in ("ForceOff", "GracefulShutdown"):
            pending_state = "Off"
        elif "Restart" in state or state == "PowerCycle":
            system["power_state"] = "Off"
            pending_state = "ForceRestart"
        else:
            raise sushy_error.NotSupportedError(f"Power state {state} is not supported")
        if system["power_state"] != pending_state:
            self._update(system, pending_power={"power_state": pending_state, "apply_time": apply_time})
            if pending_state != "Off" and not (pending_state == "On" and before == "On"):
                self._exup_bmc.host_boots(system["uuid"], apply_time)


# --------------------------------------------------------------------------- HTTPS server


class _RequestBody:
    """The request's body and nothing more of the connection: werkzeug reads what is left of it after the answer
    (its drain) and must not swallow the kept-alive connection's next request."""

    def __init__(self, stream, length: int):
        self._stream, self._left = stream, length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._stream.read(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._stream.readline(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return data


class _Handler(WSGIRequestHandler):
    """werkzeug's handler, logging into the BMC's request log instead of the werkzeug logger.

    It keeps connections alive as BMCs do (werkzeug always closes them) when RedfishBmc.keep_alive is set and the
    body's length is known (no chunked request); an idle connection is closed after IDLE_TIMEOUT.
    """

    timeout = IDLE_TIMEOUT
    server: _BmcServer
    _keep_alive = False

    def run_wsgi(self):
        length = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        self._keep_alive = self.server.bmc.keep_alive and not chunked and (length is None or length.isdigit())
        if not self._keep_alive:
            return super().run_wsgi()
        connection_stream = self.rfile
        self.rfile = _RequestBody(connection_stream, int(length or 0))  # type: ignore[assignment]  # read() and readline() suffice
        try:
            return super().run_wsgi()
        finally:
            self.rfile = connection_stream

    def send_header(self, keyword, value):
        if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            return  # werkzeug's "always close"; a client asking to close still gets it (http.server reads its header)
        super().send_header(keyword, value)

    def log_request(self, code="-", size="-"):
        self.server.bmc.record_request(self.command, getattr(self, "path", "?"), code)

    def log(self, type, message, *args):  # pylint: disable=redefined-builtin  # werkzeug's signature
        if type == "error":
            self.server.bmc.record_error(message % args if args else message)


class _BmcServer(ThreadedWSGIServer):
    """A threaded werkzeug server doing TLS in the connection's thread, not in the accept loop.

    (werkzeug wraps the listening socket, so a client that never finishes its handshake would
    block every other client.) The accept loop waits on a selector with a wake-up pipe: no polling.
    """

    daemon_threads = True

    def __init__(self, bmc: RedfishBmc, app, port: int, tls_context: ssl.SSLContext):
        self.bmc = bmc
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        super().__init__(LOOPBACK, port, app, handler=_Handler)
        self.tls_context = tls_context
        self.ssl_context = tls_context  # werkzeug reads it for wsgi.url_scheme

    def serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _events in selector.select():
                    if key.fileobj is self.socket and not self._stopping:
                        self._handle_request_noblock()  # type: ignore[attr-defined]  # socketserver's, not in its stubs

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")

    def server_close(self) -> None:
        super().server_close()
        for descriptor in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(descriptor)

    def finish_request(self, request, client_address) -> None:
        if self.bmc.rebooting:
            return  # the connection is closed at once: the BMC is "rebooting"
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            connection = self.tls_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return  # failed handshake (wrong protocol, unknown CA ...): the client sees why
        with self._connections_lock:
            self._connections.add(connection)
            self.bmc.connections += 1
        try:
            self.RequestHandlerClass(connection, client_address, self)  # type: ignore[arg-type]  # the stubs' Self
        except (OSError, ValueError):
            pass  # connection cut by close_connections() or by the client
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.close()

    def close_connections(self) -> None:
        """Cut every open (kept-alive) connection, as a BMC reboot or stop does."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- the BMC


def _load_emulator_module():
    """A private copy of sushy_tools.emulator.main: its own Flask app with its own routes.

    main.py builds its app and routes at import, and every view uses that module-global app, so
    one BMC per process unless each BMC runs its own copy of the module (about 0.6 MB each).
    """
    spec = importlib.util.find_spec("sushy_tools.emulator.main")
    with _LOAD_LOCK:
        name = f"sushy_tools.emulator._exup_bmc_{next(_LOAD_COUNTER)}"
        copy_spec = importlib.util.spec_from_file_location(name, spec.origin)
        module = importlib.util.module_from_spec(copy_spec)
        sys.modules[name] = module  # Flask finds the templates through sys.modules[import_name]
        try:
            copy_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


class RedfishBmc:  # pylint: disable=too-many-instance-attributes,too-many-public-methods  # knobs and views
    """A Redfish BMC on https://127.0.0.1:<port> for one or several systems (see the module doc).

    Knobs (attributes, may be changed while it runs):
      image_check(image, SystemState) -> (ok, version or error); default_image_check by default.
      reject_images: False, True or a message: every update request gets 400 with a Redfish error.
      fail_tasks: False, True or a message: update tasks end in Exception (Update ApplyFailed).
      hang_tasks: tasks stay Running until it is set back to False (or the BMC stops).
      task_delay: seconds from New to the end of a task.
      power_delay: seconds until a power change is visible (0: at the next request).
      bmc_reboot_seconds: after a BMC firmware activation or Manager.Reset, connections are closed at
        once for this long (0: no outage).
      remote_ca: CA file that SimpleUpdate uses to verify HTTPS image servers (None: not verified).
      max_image_bytes: larger pushed or downloaded images are refused.
    """

    def __init__(
        self,
        systems=None,
        *,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        tls: TlsFiles | None = None,
        port: int = 0,
        image_check=None,
        multipart: bool = True,
        apply_time: str = "OnReset",
        power_delay: float = 0.0,
        task_delay: float = 0.0,
        vendor: str = "NEC",
        directory: str | os.PathLike | None = None,
    ):
        if systems is None:
            systems = [BmcSystem()]
        elif isinstance(systems, int):
            systems = [BmcSystem(name=f"server-{index}") for index in range(1, systems + 1)]
        elif isinstance(systems, BmcSystem):
            systems = [systems]
        if apply_time not in APPLY_TIMES:
            raise ValueError(f"apply_time must be one of {APPLY_TIMES}")
        self.specs = list(systems)
        if len({spec.uuid for spec in self.specs}) != len(self.specs):
            raise ValueError("two systems with the same uuid (or name)")
        self.user, self.password = user, password
        self.requested_port = port
        self.vendor = vendor
        self.multipart = multipart
        self.directory = Path(directory) if directory else None
        self._given_tls = tls
        # knobs
        self.image_check = image_check or default_image_check
        self.reject_images = False
        self.fail_tasks = False
        self.hang_tasks = False
        self.task_delay = task_delay
        self.power_delay = power_delay
        self.bmc_reboot_seconds = 0.0
        self.remote_ca: str | None = None
        self.max_image_bytes = 256 * 1024 * 1024
        # what happened, for tests
        self.requests: collections.deque = collections.deque(maxlen=20000)  # (method, path, status)
        self.connections = 0  # TLS connections accepted (a client that keeps one alive makes few)
        self.keep_alive = True  # False: every answer closes its connection, as werkzeug does
        self.downloads: list = []  # SimpleUpdate fetches: url (password hidden), status, bytes, error
        self.errors: list = []
        # state
        self._lock = threading.RLock()
        self._systems: dict = {}
        self._tasks: dict = {}
        self._task_ids = itertools.count(1)
        self._task_threads: list = []
        self._push_targets: list = []
        self._push_targets_busy = False
        self._push_apply_time = apply_time
        self._reboot_until = 0.0
        self._stop_event = threading.Event()
        self._module: typing.Any = None  # this BMC's own copy of sushy-tools' main module
        self._driver: typing.Any = None
        self._server: _BmcServer | None = None
        self._thread: threading.Thread | None = None
        self.workdir: Path | None = None
        self.tls_files: TlsFiles | None = None
        self.port: int | None = None
        self.start_seconds: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self) -> RedfishBmc:
        began = time.monotonic()
        if self.directory is None:
            workdir = self.workdir = Path(tempfile.mkdtemp(prefix="exup-bmc-"))
        else:
            workdir = self.workdir = self.directory
            workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(workdir)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _start(self, workdir: Path) -> None:
        self._stop_event.clear()
        self._systems = {spec.uuid: self._new_system(spec) for spec in self.specs}
        state_dir = workdir / f"state-{os.getpid()}-{time.monotonic_ns()}"  # fresh per start
        auth_file = workdir / "htpasswd"
        write_htpasswd(auth_file, {self.user: self.password})
        tls_files = self.tls_files = self._given_tls or make_tls_files(workdir)
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(tls_files.cert_path, tls_files.key_path)

        self._module = _load_emulator_module()
        app = self._module.app
        app.configure(
            extra_config={
                "SUSHY_EMULATOR_FAKE_DRIVER": True,
                "SUSHY_EMULATOR_FAKE_SYSTEMS": [self._fake_system(spec, index) for index, spec in enumerate(self.specs)],
                "SUSHY_EMULATOR_STATE_DIR": str(state_dir),
                "SUSHY_EMULATOR_AUTH_FILE": str(auth_file),
                "SUSHY_EMULATOR_FEATURE_SET": "full",
            }
        )
        driver_class: typing.Any = type("ExupFakeDriver", (_ExupFakeDriver,), {"_exup_bmc": self})
        self._driver = driver_class.initialize(app.config, app.logger)()
        driver = self._driver
        self._module.Application.systems = property(lambda app_: driver)  # this copy's class only
        self._install_routes(app)
        try:
            self._server = _BmcServer(self, app, self.requested_port, tls_context)
        except SystemExit as exc:  # werkzeug exits when it cannot bind
            raise ServiceError(f"Redfish BMC: cannot listen on {LOOPBACK}:{self.requested_port}") from exc
        self.port = self._server.port
        self._thread = threading.Thread(target=self._server.serve, name=f"redfish-bmc-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            if self._thread is not None:
                self._thread.join(5)
            server.server_close()
            server.close_connections()
        self._thread = None
        for thread in self._task_threads:
            thread.join(2)
        self._task_threads = []
        if self._module is not None:
            sys.modules.pop(self._module.__name__, None)
            self._module = None
        if self.workdir is not None and self.directory is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # ------------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def base_url(self) -> str:
        """Like https://127.0.0.1:8443 (no trailing slash)."""
        return f"https://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/redfish/v1/") -> str:
        return self.base_url + path

    @property
    def ca_path(self) -> Path:
        if self.tls_files is None:
            raise ServiceError("the Redfish BMC is not started")
        return self.tls_files.ca_path

    def _system(self, system: str | None = None) -> _System:
        if system is None:
            return next(iter(self._systems.values()))
        for candidate in self._systems.values():
            if system in (candidate.uuid, candidate.spec.name):
                return candidate
        raise KeyError(f"no system {system!r} on this BMC")

    def system_path(self, system: str | None = None) -> str:
        """/redfish/v1/Systems/<uuid>: pyghmi's sysurl (system: name or uuid, default the first)."""
        return self._system(system).url

    def manager_path(self, system: str | None = None) -> str:
        return self._system(system).manager_url

    def firmware_path(self, component: str, system: str | None = None) -> str:
        """FirmwareInventory/<id> of a component (BIOS, BMC, NIC) of a system."""
        return f"{FIRMWARE_INVENTORY}/{self._inventory_id(self._system(system), component)}"

    # ------------------------------------------------------------------ state for tests

    def versions(self, system: str | None = None) -> dict:
        """Active versions of a system's components, e.g. {'BIOS': '1.00', 'BMC': '2.00', 'NIC': ...}."""
        with self._lock:
            target = self._system(system)
            self._promote(target)
            return {kind: component.version for kind, component in target.components.items()}

    def staged(self, system: str | None = None) -> dict:
        """Images waiting for a reset: component -> version."""
        with self._lock:
            target = self._system(system)
            self._promote(target)
            return {kind: comp.staged for kind, comp in target.components.items() if comp.staged is not None}

    def power_state(self, system: str | None = None) -> str:
        return self._driver.get_power_state(self._system(system).uuid)

    def tasks(self) -> list:
        """Every task's Redfish resource, oldest first."""
        with self._lock:
            return [task.resource() for task in self._tasks.values()]

    def reset_system(self, system: str | None = None, reset_type: str = "ForceRestart") -> None:
        """Power action on a system as ComputerSystem.Reset does it (a boot activates staged BIOS/NIC)."""
        self._driver.set_power_state(self._system(system).uuid, reset_type)

    def reset_manager(self, system: str | None = None) -> None:
        """Manager.Reset: activates a staged BMC image (and starts the reboot window, if any)."""
        self._reset_manager(self._system(system))

    def add_user(self, name: str, password: str) -> None:
        """Another account (sushy-tools re-reads the htpasswd file on every request)."""
        if self.workdir is None:
            raise ServiceError("the Redfish BMC is not started")
        with open(self.workdir / "htpasswd", "a", encoding="utf-8") as htpasswd:
            digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
            htpasswd.write(f"{name}:{digest}\n")

    @property
    def rebooting(self) -> bool:
        return time.monotonic() < self._reboot_until

    def record_request(self, method: str, path: str, status) -> None:
        self.requests.append((method, path, int(status) if str(status).isdigit() else status))

    def record_error(self, text: str) -> None:
        self.errors.append(text)

    # ------------------------------------------------------------------ model

    @staticmethod
    def _new_system(spec: BmcSystem) -> _System:
        components = {"BIOS": _Component("BIOS", spec.bios_version, True), "BMC": _Component("BMC", spec.bmc_version, True)}
        if spec.nic_version is not None:
            components["NIC"] = _Component("NIC", spec.nic_version, spec.nic_updateable)
        return _System(spec, components)

    @staticmethod
    def _fake_system(spec: BmcSystem, index: int) -> dict:
        mac = f"52:54:00:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}:10"
        return {
            "uuid": spec.uuid,
            "name": spec.name,
            "power_state": spec.power_state,
            "external_notifier": False,
            "nics": [{"mac": mac, "ip": f"192.0.2.{10 + index % 200}"}],
        }

    def _inventory_id(self, system: _System, kind: str) -> str:
        if kind not in system.components:
            raise KeyError(f"{system.spec.name} has no {kind}")
        return kind if len(self._systems) == 1 else f"{system.spec.name}.{kind}"

    def _promote(self, system: _System) -> None:
        """Staged BIOS/NIC images become active once the host boot that activates them is done."""
        now = time.time()
        for component in system.components.values():
            if component.staged is not None and component.activate_at is not None and now >= component.activate_at:
                component.version, component.staged, component.activate_at = component.staged, None, None

    def host_boots(self, system_uuid: str, when: float) -> None:
        """Called by the driver when a system powers on or restarts: staged host firmware activates."""
        with self._lock:
            system = self._systems.get(system_uuid)
            if system is None:
                return
            self._promote(system)
            for component in system.components.values():
                if component.kind != "BMC" and component.staged is not None:
                    component.activate_at = when

    def _reset_manager(self, system: _System) -> None:
        with self._lock:
            component = system.components["BMC"]
            if component.staged is not None:
                component.version, component.staged = component.staged, None
        self._reboot()

    def _reboot(self) -> None:
        """The BMC reboots: after this response went out, connections are refused for a while."""
        if self.bmc_reboot_seconds <= 0:
            return

        def cut():
            self._reboot_until = time.monotonic() + self.bmc_reboot_seconds
            if self._server is not None:
                self._server.close_connections()

        timer = threading.Timer(0.2, cut)
        timer.daemon = True
        timer.start()

    def _state_for(self, candidate: _Candidate) -> SystemState:
        system = candidate.system
        with self._lock:
            self._promote(system)
            versions = {kind: comp.version for kind, comp in system.components.items()}
        return SystemState(
            name=system.spec.name,
            uuid=system.uuid,
            model=system.spec.model,
            component=candidate.kind,
            module=COMPONENT_MODULES[candidate.kind],
            version=versions[candidate.kind],
            versions=versions,
            power_state=self._driver.get_power_state(system.uuid),
        )

    # ------------------------------------------------------------------ routes

    def _install_routes(self, app) -> None:
        views = app.view_functions
        views["root_resource"] = self._wrap_json(views["root_resource"], self._patch_root)
        views["system_resource"] = self._wrap_json(views["system_resource"], self._patch_system)
        views["manager_resource"] = self._wrap_json(views["manager_resource"], self._patch_manager)
        views["UpdateService.update_service_resource"] = self._view_update_service
        views["UpdateService.update_service_simple_update"] = self._view_simple_update
        views["simple_task"] = lambda: self._view_task("42")  # sushy's static Tasks/42 rule
        rules = [
            (UPDATE_SERVICE, "update_service_patch", self._view_update_service_patch, ["PATCH"]),
            (FIRMWARE_INVENTORY, "firmware_inventory", self._view_firmware_inventory, ["GET"]),
            (FIRMWARE_INVENTORY + "/<item>", "firmware_item", self._view_firmware_item, ["GET"]),
            (HTTP_PUSH_URI, "http_push", self._view_http_push, ["POST"]),
            (MULTIPART_PUSH_URI, "multipart_push", self._view_multipart_push, ["POST"]),
            (TASKS, "tasks", self._view_tasks, ["GET"]),
            (TASKS + "/<task_id>", "task", self._view_task, ["GET"]),
            (TASK_MONITORS + "/<task_id>", "task_monitor", self._view_task_monitor, ["GET"]),
            ("/redfish/v1/Managers/<identity>/Actions/Manager.Reset", "manager_reset", self._view_manager_reset, ["POST"]),
        ]
        for rule, endpoint, view, methods in rules:
            app.add_url_rule(rule, endpoint=f"exup_{endpoint}", view_func=view, methods=methods)

    @staticmethod
    def _wrap_json(view, patch):
        """A sushy view whose successful GET answer gets extra properties from patch(body, **kwargs)."""

        def wrapped(**kwargs):
            response = view(**kwargs)
            if flask.request.method == "GET" and isinstance(response, flask.Response) and response.status_code == 200:
                body = json.loads(response.get_data())
                patch(body, **kwargs)
                response.set_data(json.dumps(body))
            return response

        return wrapped

    def _patch_root(self, body: dict) -> None:
        body["Vendor"] = self.vendor
        body["Product"] = "exup test BMC (sushy-tools)"
        body["TaskService"] = {"@odata.id": "/redfish/v1/TaskService"}

    def _patch_system(self, body: dict, identity: str) -> None:
        system = self._system(self._driver.uuid(identity))
        body.update(
            {
                "Model": system.spec.model,
                "Manufacturer": system.spec.manufacturer,
                "SerialNumber": system.spec.serial_number,
                "BiosVersion": self.versions(system.uuid)["BIOS"],
            }
        )

    def _patch_manager(self, body: dict, identity: str) -> None:
        system = self._system(self._driver.uuid(identity))
        body.update(
            {
                "FirmwareVersion": self.versions(system.uuid)["BMC"],
                "Model": "exup BMC",
                "Manufacturer": self.vendor,
                "Actions": {
                    "#Manager.Reset": {"target": f"{system.manager_url}/Actions/Manager.Reset", "ResetType@Redfish.AllowableValues": list(MANAGER_RESET_TYPES)}
                },
            }
        )

    def _update_service(self) -> dict:
        apply_time_support = {"@odata.type": "#Settings.v1_3_5.OperationApplyTimeSupport", "SupportedValues": list(APPLY_TIMES)}
        body = {
            "@odata.type": "#UpdateService.v1_11_0.UpdateService",
            "@odata.id": UPDATE_SERVICE,
            "@odata.context": "/redfish/v1/$metadata#UpdateService.UpdateService",
            "Id": "UpdateService",
            "Name": "Update Service",
            "Description": "Firmware update service",
            "ServiceEnabled": True,
            "Status": {"State": "Enabled", "Health": "OK"},
            "FirmwareInventory": {"@odata.id": FIRMWARE_INVENTORY},
            "HttpPushUri": HTTP_PUSH_URI,
            "HttpPushUriTargets": list(self._push_targets),
            "HttpPushUriTargetsBusy": self._push_targets_busy,
            "HttpPushUriOptions": {"HttpPushUriApplyTime": {"ApplyTime": self._push_apply_time, "ApplyTime@Redfish.AllowableValues": list(APPLY_TIMES)}},
            "MaxImageSizeBytes": self.max_image_bytes,
            "VerifyRemoteServerCertificate": self.remote_ca is not None,
            "Actions": {
                "#UpdateService.SimpleUpdate": {
                    "target": SIMPLE_UPDATE_URI,
                    "TransferProtocol@Redfish.AllowableValues": list(TRANSFER_PROTOCOLS),
                    "@Redfish.OperationApplyTimeSupport": apply_time_support,
                }
            },
        }
        if self.multipart:
            body["MultipartHttpPushUri"] = MULTIPART_PUSH_URI
            body["MultipartHttpPushUri@Redfish.OperationApplyTimeSupport"] = apply_time_support
        return body

    def _view_update_service(self):
        with self._lock:
            return _json_response(self._update_service())

    def _view_update_service_patch(self):
        changes = flask.request.get_json(force=True, silent=True)
        if not isinstance(changes, dict):
            return _error_response(400, f"{BASE_REGISTRY}.MalformedJSON", "The request body is not a JSON object.")
        try:
            with self._lock:
                self._patch_update_service(changes)
                return _json_response(self._update_service())
        except _Rejected as exc:
            return exc.response()

    def _patch_update_service(self, changes: dict) -> None:
        known = {"HttpPushUriTargets", "HttpPushUriTargetsBusy", "HttpPushUriOptions"}
        for name in changes:
            if name not in known:
                raise _Rejected(
                    400, f"{BASE_REGISTRY}.PropertyNotWritable", f"The property {name} is a read only property and cannot be assigned a value.", [name]
                )
        if "HttpPushUriTargets" in changes:
            targets = changes["HttpPushUriTargets"]
            if not isinstance(targets, list) or not all(isinstance(target, str) for target in targets):
                raise _Rejected(
                    400,
                    f"{BASE_REGISTRY}.PropertyValueTypeError",
                    "The value for the property HttpPushUriTargets is of a different type than the property can accept.",
                    [json.dumps(targets), "HttpPushUriTargets"],
                )
            self._resolve_targets(targets, "HttpPushUriTargets")
            self._push_targets = list(targets)
        if "HttpPushUriTargetsBusy" in changes:
            self._push_targets_busy = bool(changes["HttpPushUriTargetsBusy"])
        if "HttpPushUriOptions" in changes:
            options = changes["HttpPushUriOptions"] or {}
            apply_time = (options.get("HttpPushUriApplyTime") or {}).get("ApplyTime", self._push_apply_time)
            if apply_time not in APPLY_TIMES:
                raise _Rejected(
                    400,
                    f"{BASE_REGISTRY}.PropertyValueNotInList",
                    f"The value '{apply_time}' for the property ApplyTime is not in the list of acceptable values.",
                    [apply_time, "ApplyTime"],
                )
            self._push_apply_time = apply_time

    # ------------------------------------------------------------------ firmware inventory

    def _view_firmware_inventory(self):
        members = []
        with self._lock:
            for system in self._systems.values():
                self._promote(system)
                for kind, component in system.components.items():
                    members.append(f"{FIRMWARE_INVENTORY}/{self._inventory_id(system, kind)}")
                    if component.staged is not None:
                        members.append(f"{FIRMWARE_INVENTORY}/{self._inventory_id(system, kind)}-Pending")
        body = {
            "@odata.type": "#SoftwareInventoryCollection.SoftwareInventoryCollection",
            "@odata.id": FIRMWARE_INVENTORY,
            "Name": "Firmware Inventory",
            "Members": [{"@odata.id": member} for member in members],
            "Members@odata.count": len(members),
        }
        return _json_response(body)

    def _find_inventory_item(self, item: str):
        pending = item.endswith("-Pending")
        base = item[: -len("-Pending")] if pending else item
        for system in self._systems.values():
            for kind in system.components:
                if self._inventory_id(system, kind) == base:
                    return system, kind, pending
        return None

    def _view_firmware_item(self, item: str):
        with self._lock:
            found = self._find_inventory_item(item)
            if found is not None:
                system, kind, pending = found
                self._promote(system)
                component = system.components[kind]
                if not pending or component.staged is not None:
                    return _json_response(self._inventory_item(system, component, item, pending))
        return _error_response(
            404,
            f"{BASE_REGISTRY}.ResourceNotFound",
            f"The requested resource of type SoftwareInventory named '{item}' was not found.",
            ["SoftwareInventory", item],
        )

    def _inventory_item(self, system: _System, component: _Component, item: str, pending: bool) -> dict:
        if component.kind == "BMC":
            related = system.manager_url
        elif component.kind == "NIC":
            mac = self._driver.get_nics(system.uuid)[0]["mac"]
            related = f"{system.url}/EthernetInterfaces/{mac}"
        else:
            related = system.url
        name = component.kind
        return {
            "@odata.type": "#SoftwareInventory.v1_10_0.SoftwareInventory",
            "@odata.id": f"{FIRMWARE_INVENTORY}/{item}",
            "Id": item,
            "Name": name,
            "Description": f"{COMPONENT_NAMES[component.kind]} of {system.spec.name}" + (" (staged)" if pending else ""),
            "Version": component.staged if pending else component.version,
            "Updateable": component.updateable,
            "SoftwareId": COMPONENT_MODULES[component.kind],
            "Manufacturer": system.spec.manufacturer,
            "WriteProtected": False,
            "Status": {"State": "StandbyOffline" if pending else "Enabled", "Health": "OK"},
            "RelatedItem": [{"@odata.id": related}],
            "RelatedItem@odata.count": 1,
        }

    # ------------------------------------------------------------------ update requests

    def _resolve_targets(self, targets, parameter: str) -> list:
        """Candidates for Targets: FirmwareInventory items, Systems/<id> (BIOS, NIC) or Managers/<id> (BMC).

        No targets: every updateable component; the image check decides where it applies.
        """
        if not targets:
            return [
                _Candidate(system, kind, False) for system in self._systems.values() for kind, component in system.components.items() if component.updateable
            ]
        candidates = []
        for target in targets:
            path = urllib.parse.urlsplit(str(target)).path.rstrip("/")
            found = self._find_inventory_item(path.rsplit("/", 1)[-1]) if path.startswith(FIRMWARE_INVENTORY + "/") else None
            if found is not None and not found[2] and found[0].components[found[1]].updateable:
                candidates.append(_Candidate(found[0], found[1], True))
                continue
            matched = False
            for system in self._systems.values():
                if path in (system.url, f"/redfish/v1/Systems/{system.spec.name}"):
                    candidates += [_Candidate(system, kind, False) for kind, component in system.components.items() if kind != "BMC" and component.updateable]
                    matched = True
                elif path == system.manager_url:
                    candidates.append(_Candidate(system, "BMC", True))
                    matched = True
            if not matched:
                raise _Rejected(
                    400,
                    f"{BASE_REGISTRY}.ActionParameterValueError",
                    f"The value '{target}' for the parameter {parameter} is not an updateable resource.",
                    [str(target), parameter],
                )
        return candidates

    def _admit(self) -> None:
        """The reject_images knob (one update at a time is checked when the task starts)."""
        if self.reject_images:
            text = self.reject_images if isinstance(self.reject_images, str) else "The BMC rejected the update request."
            raise _Rejected(400, f"{BASE_REGISTRY}.GeneralError", text)

    def _check_apply_time(self, value, parameter: str) -> str:
        if value is None:
            return self._push_apply_time
        if value not in APPLY_TIMES:
            raise _Rejected(
                400,
                f"{BASE_REGISTRY}.ActionParameterValueNotInList",
                f"The value '{value}' for the parameter {parameter} is not in the list of acceptable values.",
                [str(value), parameter],
            )
        return value

    def _read_image(self, stream) -> bytes:
        data = stream.read(self.max_image_bytes + 1)
        if len(data) > self.max_image_bytes:
            raise _Rejected(413, f"{BASE_REGISTRY}.GeneralError", f"The image is larger than MaxImageSizeBytes ({self.max_image_bytes}).")
        return data

    def _view_http_push(self):
        try:
            self._admit()
            with self._lock:
                candidates = self._resolve_targets(self._push_targets, "HttpPushUriTargets")
                apply_time = self._push_apply_time
            image = self._read_image(flask.request.stream)
            if not image:
                raise _Rejected(400, f"{BASE_REGISTRY}.ActionParameterMissing", "The request carries no image.")
            return self._start_task(_UpdateRequest(HTTP_PUSH_URI, "image", candidates, apply_time, image=image))
        except _Rejected as exc:
            return exc.response()

    def _view_multipart_push(self):
        try:
            self._admit()
            if not self.multipart:
                raise _Rejected(404, f"{BASE_REGISTRY}.ResourceNotFound", "Multipart update is not supported.")
            upload = flask.request.files.get("UpdateFile")
            if upload is None:
                raise _Rejected(400, f"{BASE_REGISTRY}.ActionParameterMissing", "The multipart request requires the part UpdateFile.", ["UpdateFile"])
            raw = flask.request.form.get("UpdateParameters")
            if raw is None and "UpdateParameters" in flask.request.files:
                raw = flask.request.files["UpdateParameters"].read().decode("utf-8", "replace")
            try:
                parameters = json.loads(raw) if raw else {}
            except ValueError:
                parameters = None
            if not isinstance(parameters, dict):
                raise _Rejected(400, f"{BASE_REGISTRY}.MalformedJSON", "UpdateParameters is not a JSON object.")
            apply_time = self._check_apply_time(parameters.get("@Redfish.OperationApplyTime"), "@Redfish.OperationApplyTime")
            with self._lock:
                candidates = self._resolve_targets(parameters.get("Targets") or [], "Targets")
            image = self._read_image(upload.stream)
            name = os.path.basename(upload.filename or "") or "image"
            return self._start_task(_UpdateRequest(MULTIPART_PUSH_URI, name, candidates, apply_time, image=image))
        except _Rejected as exc:
            return exc.response()

    def _view_simple_update(self):
        try:
            self._admit()
            body = flask.request.get_json(force=True, silent=True)
            if not isinstance(body, dict):
                raise _Rejected(400, f"{BASE_REGISTRY}.MalformedJSON", "The request body is not a JSON object.")
            action = "UpdateService.SimpleUpdate"
            for name in body:
                if name not in SIMPLE_UPDATE_PARAMETERS:
                    raise _Rejected(
                        400, f"{BASE_REGISTRY}.ActionParameterUnknown", f"The action {action} was submitted with the invalid parameter {name}.", [action, name]
                    )
            image_uri = body.get("ImageURI")
            if not image_uri or not isinstance(image_uri, str):
                raise _Rejected(
                    400,
                    f"{BASE_REGISTRY}.ActionParameterMissing",
                    f"The action {action} requires the parameter ImageURI to be present in the request body.",
                    [action, "ImageURI"],
                )
            protocol = body.get("TransferProtocol")
            if protocol is not None and protocol not in TRANSFER_PROTOCOLS:
                raise _Rejected(
                    400,
                    f"{BASE_REGISTRY}.ActionParameterNotSupported",
                    f"The parameter TransferProtocol for the action {action} is not supported on the target resource: {protocol}.",
                    ["TransferProtocol", action],
                )
            if "://" not in image_uri:
                image_uri = f"{(protocol or 'HTTP').lower()}://{image_uri}"
            scheme = urllib.parse.urlsplit(image_uri).scheme.upper()
            if scheme not in TRANSFER_PROTOCOLS:
                raise _Rejected(400, f"{BASE_REGISTRY}.ActionParameterNotSupported", f"The ImageURI scheme {scheme} is not supported.", ["ImageURI", action])
            apply_time = self._check_apply_time(body.get("@Redfish.OperationApplyTime"), "@Redfish.OperationApplyTime")
            with self._lock:
                candidates = self._resolve_targets(body.get("Targets") or [], "Targets")
            name = urllib.parse.urlsplit(image_uri).path.rsplit("/", 1)[-1] or image_uri
            return self._start_task(
                _UpdateRequest(SIMPLE_UPDATE_URI, name, candidates, apply_time, url=image_uri, username=body.get("Username"), password=body.get("Password"))
            )
        except _Rejected as exc:
            return exc.response()

    def _start_task(self, request: _UpdateRequest) -> flask.Response:
        with self._lock:
            busy = [task for task in self._tasks.values() if task.state not in TERMINAL_STATES]
            if busy:
                raise _Rejected(503, f"{UPDATE_REGISTRY}.UpdateInProgress", f"An update is in progress (task {busy[0].task_id}).")
            task = _Task(str(next(self._task_ids)), request.operation)
            self._tasks[task.task_id] = task
            body = task.resource()
        thread = threading.Thread(target=self._run_task, args=(task, request), name=f"bmc-task-{task.task_id}", daemon=True)
        self._task_threads.append(thread)
        thread.start()
        if self.task_delay <= 0 and not self.hang_tasks:
            # A quick task is finished before the answer goes out (the answer still shows it New), so
            # that pyghmi's first poll sees it Completed: pyghmi sleeps 3 s between polls.
            thread.join(QUICK_TASK_WAIT)
        return _json_response(body, 202, {"Location": task.monitor_url, "Retry-After": "1"})

    # ------------------------------------------------------------------ tasks

    def _set_task(self, task: _Task, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(task, name, value)

    def _add_messages(self, task: _Task, *messages: dict) -> None:
        with self._lock:
            task.messages.extend(messages)

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and self._stop_event.wait(seconds):
            raise _TaskFailed(_message(f"{BASE_REGISTRY}.GeneralError", "The BMC stopped.", (), "Critical"))

    def _run_task(self, task: _Task, request: _UpdateRequest) -> None:
        delay = max(0.0, float(self.task_delay))
        try:
            self._pause(delay * 0.1)
            self._set_task(task, state="Running", percent=5)
            image = request.image
            if request.url is not None:
                self._add_messages(
                    task,
                    _message(
                        f"{UPDATE_REGISTRY}.TransferringToComponent",
                        f"Image '{request.image_name}' is being transferred to 'BMC'.",
                        [request.image_name, "BMC"],
                    ),
                )
                image = self._download(request, request.url)
            self._set_task(task, percent=30)
            if image is None:  # a push always carries its image, a SimpleUpdate downloads it
                raise ValueError("an update request without an image")
            chosen = self._choose_targets(task, request, image)
            steps = 8
            for step in range(steps):
                self._pause(delay * 0.9 / steps)
                self._set_task(task, percent=30 + (step + 1) * 60 // steps)
            while self.hang_tasks:
                self._set_task(task, percent=50)
                self._pause(0.1)
            if self.fail_tasks:
                text = self.fail_tasks if isinstance(self.fail_tasks, str) else "the flash write failed"
                raise _TaskFailed(
                    _message(
                        f"{UPDATE_REGISTRY}.ApplyFailed",
                        f"Installation of image '{request.image_name}' to '{chosen[0][0].kind}' failed: {text}.",
                        [request.image_name, chosen[0][0].kind],
                        "Critical",
                    )
                )
            for candidate, version in chosen:
                self._add_messages(task, *self._apply(candidate, version, request))
            self._set_task(task, state="Completed", percent=100, end_time=_now_iso())
        except _TaskFailed as exc:
            self._add_messages(task, exc.message)
            self._set_task(task, state="Exception", status="Critical", end_time=_now_iso())
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a task must always end
            self.record_error(f"task {task.task_id}: {exc!r}")
            self._add_messages(task, _message(f"{BASE_REGISTRY}.InternalError", f"Internal error: {exc!r}", (), "Critical"))
            self._set_task(task, state="Exception", status="Critical", end_time=_now_iso())

    def _download(self, request: _UpdateRequest, image_uri: str) -> bytes:
        """Fetch ImageURI as a BMC does: no proxy, Basic auth from Username/Password or the URL."""
        parts = urllib.parse.urlsplit(image_uri)
        username, password = request.username, request.password
        if username is None and parts.username is not None:
            username = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
        if parts.hostname is None:
            raise ValueError(f"ImageURI {_redact_url(image_uri)} names no host")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        headers = {"User-Agent": "exup-test-bmc"}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if self.remote_ca:
            context = ssl.create_default_context(cafile=str(self.remote_ca))
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
        record = {"url": _redact_url(image_uri), "user": username, "status": None, "bytes": 0, "error": None}
        self.downloads.append(record)
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=DOWNLOAD_TIMEOUT) as response:
                record["status"] = response.status
                data = response.read(self.max_image_bytes + 1)
        except urllib.error.HTTPError as exc:
            record["status"], record["error"] = exc.code, f"HTTP {exc.code} {exc.reason}"
        except (OSError, ValueError) as exc:
            record["error"] = str(exc)
        else:
            record["bytes"] = len(data)
            if len(data) > self.max_image_bytes:
                record["error"] = f"larger than MaxImageSizeBytes ({self.max_image_bytes})"
            else:
                return data
        raise _TaskFailed(
            _message(
                f"{UPDATE_REGISTRY}.TransferFailed",
                f"Transfer of image '{request.image_name}' to 'BMC' failed: {record['error']}.",
                [request.image_name, "BMC"],
                "Critical",
            )
        )

    def _choose_targets(self, task: _Task, request: _UpdateRequest, image: bytes) -> list:
        """(candidate, new version) for every candidate the image check accepts.

        An explicit target (a FirmwareInventory item or a Manager) must accept the image; otherwise the
        image goes where it applies, and at least one component must accept it.
        """
        chosen, refusals = [], []
        for candidate in request.candidates:
            state = self._state_for(candidate)
            try:
                result = self.image_check(image, state)
                accepted, detail = bool(result[0]), str(result[1])
            except Exception as exc:  # pylint: disable=broad-exception-caught  # a test's check may fail
                accepted, detail = False, f"image check failed: {exc!r}"
            target = self._inventory_id(candidate.system, candidate.kind)
            if accepted:
                chosen.append((candidate, detail))
                self._add_messages(
                    task,
                    _message(
                        f"{UPDATE_REGISTRY}.TargetDetermined",
                        f"The target device '{target}' will be updated with image '{request.image_name}'.",
                        [target, request.image_name],
                    ),
                )
            elif candidate.explicit:
                refusals = [(target, detail)]
                chosen = []
                break
            else:
                refusals.append((target, detail))
        if not chosen:
            where = ", ".join(target for target, _detail in refusals) or "no updateable component"
            details = "; ".join(f"{target}: {detail}" for target, detail in refusals) or "no target"
            raise _TaskFailed(
                _message(
                    f"{UPDATE_REGISTRY}.VerificationFailed",
                    f"Verification of image '{request.image_name}' at '{where}' failed: {details}.",
                    [request.image_name, where],
                    "Critical",
                )
            )
        return chosen

    def _apply(self, candidate: _Candidate, version: str, request: _UpdateRequest) -> list:
        """Activate or stage the new version; the Task messages that say which."""
        system, kind = candidate.system, candidate.kind
        target = self._inventory_id(system, kind)
        done = _message(
            f"{UPDATE_REGISTRY}.UpdateSuccessful", f"Device '{target}' successfully updated with image '{request.image_name}'.", [target, request.image_name]
        )
        with self._lock:
            component = system.components[kind]
            if request.apply_time == "OnReset":
                component.staged, component.activate_at = version, None
                if kind == "BMC":
                    reset_uri, reset_type = f"{system.manager_url}/Actions/Manager.Reset", "GracefulRestart"
                else:
                    reset_uri, reset_type = f"{system.url}/Actions/ComputerSystem.Reset", "ForceRestart"
                return [
                    _message(
                        f"{UPDATE_REGISTRY}.AwaitToActivate",
                        f"Update successful; reset required: awaiting for an action to proceed with activating "
                        f"image '{request.image_name}' ({version}) on '{target}'.",
                        [request.image_name, target],
                    ),
                    _message(
                        f"{BASE_REGISTRY}.ResetRequired",
                        f"In order to complete the operation, a component reset is required with the Reset "
                        f"action URI '{reset_uri}' and ResetType '{reset_type}'.",
                        [reset_uri, reset_type],
                        "Warning",
                    ),
                ]
            if kind == "BMC":
                component.version, component.staged = version, None
        if kind == "BMC":
            self._reboot()
            return [done]
        if self._driver.get_power_state(system.uuid) == "On":
            with self._lock:
                component.staged = version
            self._driver.set_power_state(system.uuid, "ForceRestart")  # host_boots() sets activate_at
            return [done, _message(f"{BASE_REGISTRY}.Success", f"The host of {system.spec.name} was restarted to activate {target} {version}.")]
        with self._lock:
            component.version, component.staged, component.activate_at = version, None, None
        return [done]

    def _view_tasks(self):
        with self._lock:
            members = [{"@odata.id": task.url} for task in self._tasks.values()]
        return _json_response(
            {"@odata.type": "#TaskCollection.TaskCollection", "@odata.id": TASKS, "Name": "Tasks", "Members": members, "Members@odata.count": len(members)}
        )

    def _view_task(self, task_id: str):
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None:
                return _json_response(task.resource())
        return _error_response(
            404, f"{BASE_REGISTRY}.ResourceNotFound", f"The requested resource of type Task named '{task_id}' was not found.", ["Task", task_id]
        )

    def _view_task_monitor(self, task_id: str):
        """202 with the Task while it runs, then 200 with the finished Task (DSP0266 asynchronous operations)."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None:
                if task.state in TERMINAL_STATES:
                    return _json_response(task.resource())
                return _json_response(task.resource(), 202, {"Location": task.monitor_url, "Retry-After": "1"})
        return _error_response(
            404, f"{BASE_REGISTRY}.ResourceNotFound", f"The requested resource of type TaskMonitor named '{task_id}' was not found.", ["TaskMonitor", task_id]
        )

    def _view_manager_reset(self, identity: str):
        try:
            system = self._system(self._driver.uuid(identity))
        except (KeyError, sushy_error.FishyError):
            return _error_response(
                404, f"{BASE_REGISTRY}.ResourceNotFound", f"The requested resource of type Manager named '{identity}' was not found.", ["Manager", identity]
            )
        body = flask.request.get_json(force=True, silent=True) or {}
        reset_type = body.get("ResetType", "GracefulRestart")
        if reset_type not in MANAGER_RESET_TYPES:
            return _error_response(
                400,
                f"{BASE_REGISTRY}.ActionParameterValueNotInList",
                f"The value '{reset_type}' for the parameter ResetType in the action Manager.Reset is not in the list of acceptable values.",
                [str(reset_type), "ResetType", "Manager.Reset"],
            )
        self._reset_manager(system)
        return flask.Response(status=204)


# --------------------------------------------------------------------------- several BMCs


@contextlib.contextmanager
def redfish_bmcs(count: int, **kwargs):
    """count RedfishBmc (each its own port, state and Flask app) sharing one test CA; all stopped at the end.

    kwargs go to every RedfishBmc (systems=, model knobs ...); tls defaults to one shared TlsFiles.
    """
    workdir = Path(tempfile.mkdtemp(prefix="exup-bmcs-"))
    bmcs = []
    try:
        kwargs.setdefault("tls", make_tls_files(workdir))
        for _index in range(count):
            bmcs.append(RedfishBmc(**kwargs).start())
        yield bmcs
    finally:
        threads = [threading.Thread(target=bmc.stop) for bmc in bmcs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run Redfish BMC emulators on 127.0.0.1 until SIGINT/SIGTERM.")
    parser.add_argument("--count", type=int, default=1, help="number of BMCs (each its own port)")
    parser.add_argument("--systems", type=int, default=1, help="systems per BMC")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--user", default=DEFAULT_USER)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--port", type=int, default=0, help="port of the first BMC (then +1 each); 0: free ports")
    parser.add_argument("--apply-time", default="OnReset", choices=APPLY_TIMES)
    parser.add_argument("--task-delay", type=float, default=0.0)
    parser.add_argument("--power-delay", type=float, default=0.0)
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stop.set())
    workdir = Path(tempfile.mkdtemp(prefix="exup-bmcs-"))
    tls = make_tls_files(workdir)
    bmcs = []
    try:
        for index in range(args.count):
            systems = [BmcSystem(name=f"bmc{index + 1}-server-{number}", model=args.model) for number in range(1, args.systems + 1)]
            bmc = RedfishBmc(
                systems,
                user=args.user,
                password=args.password,
                tls=tls,
                port=args.port + index if args.port else 0,
                apply_time=args.apply_time,
                task_delay=args.task_delay,
                power_delay=args.power_delay,
            )
            bmcs.append(bmc.start())
            print(
                json.dumps(
                    {
                        "url": bmc.base_url,
                        "host": bmc.host,
                        "port": bmc.port,
                        "user": bmc.user,
                        "password": bmc.password,
                        "ca": str(tls.ca_path),
                        "systems": [bmc.system_path(spec.uuid) for spec in systems],
                    }
                ),
                flush=True,
            )
        stop.wait()
    finally:
        for bmc in bmcs:
            bmc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
