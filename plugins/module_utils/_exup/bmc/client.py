# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The out-of-band path: a server's BMC through pyghmi, Redfish or IPMI (003 §1.2.5, Table 5).

Only BIOS and BMC firmware are managed this way, with packages of kind ``bmc``.
Redfish: the firmware inventory, updates pushed to the UpdateService
(MultipartHttpPushUri, else HttpPushUri) or pulled by the BMC (SimpleUpdate with
an ImageURI), the returned task followed to its end with a deadline (pyghmi's
own wait has none), and the reset the update asks for. IPMI: firmware revision
and power state only; an update through IPMI is refused.

TLS is verified by default: with ``ca_path`` against that CA (cryptography's
X.509 verifier: chain, validity, the BMC's name or address), else against the
system's store by the standard library.

Cost per BMC (issue 10): pyghmi opens a new TLS connection, with a new SSL
context that loads the system's CA bundle, for every request. Here one context
per process serves every connection (KeptConnection), one connection serves a
BMC's requests one after the other while the BMC keeps it open, and what a run
has read is not read again (RedfishBmc.read), except the firmware inventory
after an update (RedfishBmc.versions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import ipaddress
import json
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.exup.fleet.plugins.module_utils._exup.errors import ExupError

try:
    from pyghmi import exceptions as pyghmi_exceptions
    from pyghmi.redfish import command as redfish_command
    from pyghmi.util import webclient

    HAS_PYGHMI = True
    PYGHMI_IMPORT_ERROR = None
except ImportError as import_error:  # pragma: no cover - the module reports missing_required_lib
    HAS_PYGHMI = False
    PYGHMI_IMPORT_ERROR = import_error

BMC_MODULES = ('system-bios', 'bmc-firmware')
BMC_KINDS = ('bmc',)
PROTOCOLS = ('redfish', 'ipmi')
UPDATE_METHODS = ('push', 'simple_update')
TASK_FAILED = ('Exception', 'Killed', 'Cancelled', 'Interrupted', 'Suspended')
RESET_WORDS = ('reset', 'reboot', 'restart', 'power cycle', 'onreset')

#: a Redfish resource or answer as JSON
Json = dict[str, Any]
#: inventory(): {'model', 'manufacturer', 'power', 'system', 'firmware': [{name, id, version, module, updateable, url}]}
Inventory = dict[str, Any]
#: called with (TaskState, PercentComplete) whenever either changes
TaskProgress = Callable[[str, Any], object]
#: run_plan's progress: (plan item, state, percent)
PlanProgress = Callable[[Mapping[str, Any], str, Any], object]


class BmcError(ExupError):
    """The BMC refused, failed or could not be reached."""


@dataclasses.dataclass
class BmcConfig:
    """How to reach one BMC."""

    address: str
    username: str
    password: str
    protocol: str = 'redfish'
    port: int | None = None
    system: str | None = None  # Redfish system id or its URL path, when the service has several
    validate_certs: bool = True
    ca_path: str | None = None
    timeout: int = 60

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise BmcError('bmc_protocol must be one of %s' % ', '.join(PROTOCOLS), code='argument_invalid')

    @property
    def sysurl(self) -> str | None:
        if not self.system:
            return None
        return self.system if self.system.startswith('/') else '/redfish/v1/Systems/%s' % self.system


def certificate_verifier(config: BmcConfig) -> Callable[[bytes], bool] | None:
    """The callback pyghmi calls with the BMC's certificate (DER); None means the standard library checks it.

    pyghmi hands over only the leaf certificate, so with ``ca_path`` the leaf must be issued by that CA.
    """
    if not config.validate_certs:
        return lambda certificate: True
    if not config.ca_path:
        return None
    from cryptography import x509
    from cryptography.x509 import verification

    try:
        with open(config.ca_path, 'rb') as handle:
            authorities = x509.load_pem_x509_certificates(handle.read())
    except (OSError, ValueError) as exc:
        raise BmcError('ca_path %s holds no usable CA certificate: %s' % (config.ca_path, exc), code='argument_invalid') from exc
    subject: verification.IPAddress | verification.DNSName
    try:
        subject = verification.IPAddress(ipaddress.ip_address(config.address))
    except ValueError:
        subject = verification.DNSName(config.address)
    verifier = verification.PolicyBuilder().store(verification.Store(authorities)).build_server_verifier(subject)

    def verify(certificate: bytes) -> bool:
        try:
            verifier.verify(x509.load_der_x509_certificate(certificate), [])
        except (verification.VerificationError, ValueError) as exc:
            raise BmcError(
                'the certificate of BMC %s is not trusted (%s): give its CA in ca_path' % (config.address, exc), code='certificate_untrusted'
            ) from exc
        return True

    return verify


def _reason(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text.replace('\n', ' ')[:500]


def module_of_component(name: str | None, component_id: str | None, related: Sequence[str] = ()) -> str | None:
    """Which module a firmware inventory member is: 'system-bios', 'bmc-firmware' or None (listed, not managed).

    ``related`` are its RelatedItem links, when the BMC gives them: one to a Manager is the BMC's own
    firmware; only links to parts of a System (a NIC, a disk) make it a device, managed by neither.
    """
    if any('/Managers/' in link for link in related):
        return 'bmc-firmware'
    if related and all(_system_part(link) for link in related):
        return None
    words = ('%s %s' % (name or '', component_id or '')).lower()
    if 'bios' in words or 'uefi' in words:
        return 'system-bios'
    if 'bmc' in words or 'manager' in words or 'idrac' in words or 'xcc' in words or 'ilo' in words:
        return 'bmc-firmware'
    return None


def _system_part(link: str) -> bool:
    """A link below a System (its EthernetInterfaces, Storage ...), not the System itself."""
    parts = link.rstrip('/').split('/')
    return 'Systems' in parts and len(parts) > parts.index('Systems') + 2


def _related(item: Json) -> list[str]:
    return [link['@odata.id'] for link in item.get('RelatedItem') or [] if isinstance(link, dict) and link.get('@odata.id')]


def _foreign(related: Sequence[str], own: Sequence[str]) -> bool:
    """True when every link goes to another System or Manager than ``own`` (the chosen system and its managers)."""

    def elsewhere(link: str) -> bool:
        if not ('/Systems/' in link or '/Managers/' in link):
            return False
        return not any(link == mine or link.startswith(mine.rstrip('/') + '/') for mine in own)

    return bool(related) and all(elsewhere(link) for link in related)


#: one SSL context per process for each way of checking the BMC's certificate (True: exup's verifier checks it)
_TLS_CONTEXTS: dict[bool, ssl.SSLContext] = {}
#: the Redfish service root, readable without credentials
SERVICE_ROOT = '/redfish/v1/'
MAX_LISTED_TASKS = 128  # the most tasks the pre-flight gate reads (one request each); more: the queue is taken as unknown


def tls_context(checked_by_exup: bool) -> ssl.SSLContext:
    """The process's context: loading the system's CA bundle costs ~25 ms of CPU, pyghmi paid it per request.

    With exup's verifier (certificate_verifier) the context checks nothing and loads no CA: the verifier checks
    the leaf after the handshake, before any request is sent. Else the standard library checks chain and name.
    """
    context = _TLS_CONTEXTS.get(checked_by_exup)
    if context is None:
        if checked_by_exup:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context()
        _TLS_CONTEXTS[checked_by_exup] = context
    return context


#: errors of a kept connection the BMC closed while it was idle: an idempotent request is sent again, once.
#: The SSL ones are what a send raises once the client's TLS layer has read the close: SSLEOFError after a bare
#: FIN, SSLZeroReturnError after the BMC's close_notify.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError)
_IDEMPOTENT = ('GET', 'HEAD')


class NotSentAgain(ConnectionError):
    """A request other than GET or HEAD met a kept connection the BMC had closed: it may have reached the BMC
    (an update started), so it is not sent again."""


if HAS_PYGHMI:

    class KeptConnection(webclient.SecureHTTPConnection):  # type: ignore[misc]  # pyghmi has no type hints
        """pyghmi's HTTPS connection, kept open across requests, on the process's TLS context.

        pyghmi asks a copy (dupe) for every request, each opening its own TLS connection: here the copy is this
        connection, which serves the requests one after the other (pyghmi makes them one at a time, and exup
        uploads in the calling thread). The timeout given to dupe holds for the next exchange only, also when
        pyghmi asks its own copy (without a timeout) of the copy it was handed, as upload() does.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.opened = 0  # TLS connections made
            self.root: Json | None = None  # the service root pyghmi read first, without credentials
            self._exchange_timeout: float | None = None  # given to dupe, for the next exchange
            self._timeout_now: float | None = None  # the current exchange's, also for its resend
            self._response: http.client.HTTPResponse | None = None
            self._answered = 0  # requests answered on the current socket
            self._sent: tuple[Any, ...] = ()

        @classmethod
        def adopt(cls, plain: Any) -> KeptConnection:
            """The same settings as pyghmi's fresh connection ``plain`` (nothing sent on it yet)."""
            kept = cls(plain.thehost, plain.theport, verifycallback=plain._certverify, timeout=plain.mytimeout)
            kept.stdheaders.update(plain.stdheaders)
            kept.cookies.update(plain.cookies)
            return kept

        def dupe(self, timeout: float | None = None) -> KeptConnection:
            if timeout is not None:  # pyghmi's own dupe() of the copy it was handed must not drop the caller's timeout
                self._exchange_timeout = timeout
            return self

        def connect(self) -> None:
            family, _kind, _proto, _name, address = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
            plain = socket.socket(family, socket.SOCK_STREAM)
            plain.settimeout(self.mytimeout)
            with contextlib.suppress(OSError):  # pyghmi's work-around for paths with too large an MTU
                plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1456)
            try:
                plain.connect(address)
                checked_by_exup = bool(self._certverify)
                self.sock = tls_context(checked_by_exup).wrap_socket(plain, server_hostname=None if checked_by_exup else self.thehost)
            except BaseException:
                plain.close()
                raise
            self.opened += 1
            self._answered = 0
            self._response = None
            if checked_by_exup:
                try:
                    if not self._certverify(self.sock.getpeercert(binary_form=True)):
                        raise pyghmi_exceptions.UnrecognizedCertificate('Unknown certificate', None)
                except BaseException:
                    self.close()
                    raise

        def _usable(self) -> bool:
            """Whether the open socket can carry the next request: the last answer was read to its end, and the
            BMC has not closed it meanwhile (a closed socket reads as ready)."""
            if self.sock is None:
                return False
            if self._response is not None and not self._response.isclosed():
                return False
            try:
                return not select.select([self.sock], [], [], 0)[0]
            except (OSError, ValueError):
                return False

        def request(self, method: str, url: str, body: Any = None, headers: Any = None, referer: Any = None) -> None:
            self._timeout_now = self._exchange_timeout or self.mytimeout
            self._exchange_timeout = None
            if not self._usable():
                self.close()
                self.connect()
            self.sock.settimeout(self._timeout_now)
            self._sent = (method, url, body, headers, referer)
            try:
                super().request(method, url, body, headers, referer)
            except _STALE as exc:
                self._send_again(exc)
            except BaseException:
                self.close()
                raise

        def _send_again(self, stale: BaseException) -> None:
            """Send the last request on a new connection, when the old one was closed by the BMC while idle
            (only a GET or HEAD: a POST may have reached the BMC)."""
            method, url, body, headers, referer = self._sent
            reused = self._answered > 0
            self.close()
            if not reused:  # a new connection closed without an answer: the BMC's refusal, not staleness
                raise stale
            if not (method in _IDEMPOTENT and body is None):
                raise NotSentAgain(
                    'the BMC closed the kept connection during %s %s (%s); not sent again: it may have reached the BMC' % (method, url, _reason(stale))
                ) from stale
            self.connect()
            self.sock.settimeout(self._timeout_now)
            try:
                super().request(method, url, body, headers, referer)
            except BaseException:
                self.close()
                raise

        def getresponse(self) -> http.client.HTTPResponse:
            try:
                response = super().getresponse()
            except _STALE as exc:
                self._send_again(exc)
                response = self._answer()
            except BaseException:
                self.close()
                raise
            self._answered += 1
            self._response = response
            return response

        def _answer(self) -> http.client.HTTPResponse:
            try:
                return super().getresponse()
            except BaseException:
                self.close()
                raise

        def grab_json_response(self, url: str, data: Any = None, referer: Any = None, headers: Any = None) -> Any:
            body = super().grab_json_response(url, data, referer, headers)
            if url == SERVICE_ROOT and data is None and isinstance(body, dict) and body:
                self.root = body  # pyghmi reads it first, for itself: exup reads its UpdateService link from it
            return body

    class ExupRedfishCommand(redfish_command.Command):  # type: ignore[misc]  # pyghmi has no type hints
        """pyghmi's Redfish client on a KeptConnection: its __init__ assigns ``wc`` before it sends anything."""

        @property
        def wc(self) -> Any:
            return self._exup_wc

        @wc.setter
        def wc(self, connection: Any) -> None:
            self._exup_wc = connection if isinstance(connection, KeptConnection) else KeptConnection.adopt(connection)


class RedfishBmc:
    """One Redfish service (a BMC), through pyghmi's Redfish client."""

    def __init__(self, config: BmcConfig, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self._command: Any = None  # pyghmi's redfish Command
        self._read: dict[str, Json] = {}  # what this run read (read()); versions() reads the firmware again
        self._not_modules: set[str] = set()  # firmware members that are no module of exup's (or another system's)

    def command(self, fresh: bool = False) -> Any:
        """One pyghmi client for the run (its own 30 s cache is never used: request() reads uncached)."""
        if self._command is None or fresh:
            config = self.config
            try:
                self._command = ExupRedfishCommand(
                    config.address, config.username, config.password, verifycallback=certificate_verifier(config), sysurl=config.sysurl, port=config.port or 443
                )
            except BmcError:
                raise
            except pyghmi_exceptions.UnrecognizedCertificate as exc:
                raise BmcError('the certificate of BMC %s is not trusted: %s' % (config.address, _reason(exc)), code='certificate_untrusted') from exc
            except (OSError, pyghmi_exceptions.PyghmiException, ValueError, KeyError) as exc:
                raise self._classify(exc) from exc
            self._read = self._known_after_login(self._command)
        return self._command

    @staticmethod
    def _known_after_login(command: Any) -> dict[str, Json]:
        """What pyghmi's client read while it logged in: the service root and the chosen system (its ``sysinfo``,
        served from pyghmi's cache of that moment): no need to read them again."""
        known: dict[str, Json] = {}
        root = getattr(command.wc, 'root', None)
        if isinstance(root, dict):
            known[SERVICE_ROOT] = root
        if command.sysurl and isinstance(command.sysinfo, dict) and command.sysinfo:
            known[command.sysurl] = command.sysinfo
        return known

    def _classify(self, exc: BaseException) -> BmcError:
        text = _reason(exc)
        address = self.config.address
        if isinstance(exc, BmcError):
            return exc
        lowered = text.lower()
        # pyghmi says 'Access Denied' when the service answers 401 to its first authenticated request
        if '401' in text or 'Unauthorized' in text or 'credential' in lowered or 'authentic' in lowered or 'access denied' in lowered:
            return BmcError('BMC %s refused the user name or password' % address, code='bmc_auth_failed')
        if 'sysurl is required' in lowered:
            return BmcError('BMC %s serves several systems: give bmc_system (a system id or /redfish/v1/Systems/<id>)' % address, code='argument_invalid')
        if 'certificate' in text.lower() or 'CERTIFICATE' in text:
            return BmcError('the certificate of BMC %s is not trusted: %s' % (address, text), code='certificate_untrusted')
        return BmcError('BMC %s cannot be reached over Redfish: %s' % (address, text), code='bmc_unreachable')

    def request(self, url: str, payload: Any = None, method: str | None = None) -> Any:
        try:
            return self.command()._do_web_request(url, payload, method=method, cache=False)
        except (OSError, pyghmi_exceptions.PyghmiException, ValueError, KeyError) as exc:
            raise self._classify(exc) from exc

    def read(self, url: str, again: bool = False) -> Json:
        """GET a resource once per run (``again``: read it anew, as the firmware after an update)."""
        self.command()  # first: a new client starts the run's reads with what it read at login
        if again or url not in self._read:
            self._read[url] = self.request(url)
        return self._read[url]

    def _linked(self, url: str, name: str) -> str:
        """The link ``name`` of the resource at ``url`` (the UpdateService of the root, the FirmwareInventory of it)."""
        link = self.read(url).get(name)
        if not isinstance(link, dict) or not link.get('@odata.id'):
            raise BmcError(
                'BMC %s cannot be reached over Redfish: BMC does not implement extended firmware information (no %s)' % (self.config.address, name),
                code='bmc_unreachable',
            )
        return str(link['@odata.id'])

    def update_service_url(self) -> str:
        return self._linked(SERVICE_ROOT, 'UpdateService')

    def _object(self, answer: Any, url: str) -> Json:
        """The BMC's answer at ``url`` as a JSON object; anything else is a protocol error (no traceback on a hostile BMC)."""
        if not isinstance(answer, dict):
            raise BmcError('BMC %s answered %s with a %s, not a Redfish resource' % (self.config.address, url, type(answer).__name__), code='bmc_protocol')
        return answer

    def _link(self, resource: Json, name: str) -> str | None:
        link = resource.get(name)
        target = link.get('@odata.id') if isinstance(link, dict) else None
        return target if isinstance(target, str) and target else None

    def tasks(self, limit: int = MAX_LISTED_TASKS) -> list[dict[str, Any]]:
        """The BMC's Redfish tasks (every member of TaskService/Tasks, in any order): ``url``, ``state`` (TaskState), ``percent``.

        A BMC without a task service lists none. Read anew each time: the rollout's pre-flight gate asks whether the queue is
        empty now. A task without a TaskState has state ``Unknown``. When the BMC lists more than ``limit`` tasks (or pages
        its list), or the listing takes longer than the client's timeout (each request has it too), one entry with the
        collection's URL and state ``Unknown`` stands for the tasks not read: the gate takes the queue as busy.
        """
        deadline = self.clock() + self.config.timeout
        service = self._link(self._object(self.read(SERVICE_ROOT), SERVICE_ROOT), 'TaskService')
        if service is None:
            return []
        collection = self._link(self._object(self.request(service), service), 'Tasks')
        if collection is None:
            return []
        listing = self._object(self.request(collection), collection)
        members = listing.get('Members')
        if members is None:
            members = []
        if not isinstance(members, list):
            raise BmcError(
                'BMC %s lists its tasks (%s) with Members a %s, not a list' % (self.config.address, collection, type(members).__name__), code='bmc_protocol'
            )
        unknown = {'url': collection, 'state': 'Unknown', 'percent': None}
        if len(members) > max(limit, 0) or listing.get('Members@odata.nextLink'):
            return [unknown]
        listed: list[dict[str, Any]] = []
        for member in members:
            url = member.get('@odata.id') if isinstance(member, dict) else None
            if not isinstance(url, str) or not url:
                listed.append({'url': None, 'state': 'Unknown', 'percent': None})
                continue
            if self.clock() >= deadline:
                return listed + [unknown]
            task = self._object(self.request(url), url)
            state, percent = task.get('TaskState'), task.get('PercentComplete')
            listed.append(
                {
                    'url': url,
                    'state': state if isinstance(state, str) and state else 'Unknown',
                    'percent': percent if isinstance(percent, int) and not isinstance(percent, bool) else None,
                }
            )
        return listed

    # ------------------------------------------------------------------ reading
    def inventory(self) -> Inventory:
        """Model, power state and firmware: {'model', 'power', 'firmware': [{name, id, version, module, updateable}]}."""
        command = self.command()
        system = self.read(command.sysurl) if command.sysurl else {}
        return {
            'model': system.get('Model') or '',
            'manufacturer': system.get('Manufacturer') or '',
            'power': (system.get('PowerState') or '').lower() or None,
            'system': command.sysurl,
            'firmware': self._firmware(system, again=False),
        }

    def _firmware(self, system: Json, again: bool) -> list[dict[str, Any]]:
        """The firmware inventory of the chosen system and its BMC; ``again`` re-reads the collection and each
        member, except those known from this run to be no module of exup's."""
        sysurl = self.command().sysurl
        # A service with several systems lists the firmware of all of them: keep the chosen system's and its BMC's.
        own = [sysurl] + [link.get('@odata.id') for link in system.get('Links', {}).get('ManagedBy', []) if link.get('@odata.id')]
        members = self.read(self._linked(self.update_service_url(), 'FirmwareInventory'), again).get('Members', [])
        firmware: list[dict[str, Any]] = []
        for member in members:
            url = member['@odata.id']
            if again and url in self._not_modules:
                continue
            item = self.read(url, again)
            related = _related(item)
            if sysurl and _foreign(related, own):
                self._not_modules.add(url)
                continue
            module_id = module_of_component(item.get('Name'), item.get('Id'), related)
            if module_id is None:
                self._not_modules.add(url)
            firmware.append(
                {
                    'name': item.get('Name'),
                    'id': item.get('Id'),
                    'version': item.get('Version'),
                    'module': module_id,
                    'updateable': bool(item.get('Updateable', False)),
                    'url': url,
                }
            )
        return firmware

    def versions(self) -> dict[str, str]:
        """module_id -> current version, read anew (after an update): the firmware, not what the run read before."""
        command = self.command()
        system = self.read(command.sysurl) if command.sysurl else {}  # for its links to the BMC: unchanged by an update
        return firmware_versions({'firmware': self._firmware(system, again=True)})

    # ------------------------------------------------------------------ updating
    def update_service(self) -> Json:
        return self.read(self.update_service_url())

    def push(self, path: str, targets: Iterable[str] = (), apply_time: str | None = None) -> str:
        """Send the image to MultipartHttpPushUri (file part UpdateFile, UpdateParameters) or HttpPushUri; return the task URL."""
        service = self.update_service()
        multipart = service.get('MultipartHttpPushUri')
        parameters: Json = {'Targets': list(targets)}
        if apply_time:
            parameters['@Redfish.OperationApplyTime'] = apply_time
        command = self.command()
        if multipart:
            url, fields = multipart, {'UpdateParameters': parameters}  # pyghmi sends a dict field as application/json
        elif service.get('HttpPushUri'):
            url, fields = service['HttpPushUri'], {}
        else:
            raise BmcError(
                'BMC %s offers no push update (MultipartHttpPushUri or HttpPushUri): use update_method simple_update' % self.config.address,
                code='bmc_push_unsupported',
            )
        # pyghmi's upload in this thread, not through its FileUploader thread: a failed upload (the BMC gone, the
        # connection cut) is then an error of this call, classified as any other, not a traceback in a thread and a
        # made-up HTTP 500.
        connection = command.wc.dupe(timeout=max(self.config.timeout, 300))
        try:
            answer = connection.upload(url, path, formname='UpdateFile', otherfields=fields, formwrap=bool(multipart), excepterror=False)
        except (OSError, http.client.HTTPException, pyghmi_exceptions.PyghmiException, ValueError) as exc:
            raise self._classify(exc) from exc
        return self._task_from_answer(connection.rspstatus, answer)

    def simple_update(self, image_uri: str, targets: Iterable[str] = (), apply_time: str | None = None) -> str:
        """Ask the BMC to pull the image from ``image_uri`` (SimpleUpdate); return the task URL."""
        service = self.update_service()
        action = service.get('Actions', {}).get('#UpdateService.SimpleUpdate', {})
        if not action.get('target'):
            raise BmcError('BMC %s offers no SimpleUpdate action: use update_method push' % self.config.address, code='bmc_pull_unsupported')
        body: Json = {'ImageURI': image_uri, 'TransferProtocol': image_uri.split(':', 1)[0].upper()}
        if targets:
            body['Targets'] = list(targets)
        if apply_time:
            body['@Redfish.OperationApplyTime'] = apply_time
        wc = self.command().wc.dupe()
        try:
            answer, status = wc.grab_json_response_with_status(action['target'], body, method='POST')
        except (OSError, pyghmi_exceptions.PyghmiException, ValueError) as exc:
            raise self._classify(exc) from exc
        return self._task_from_answer(status, answer)

    def _task_from_answer(self, status: int | None, answer: Any) -> str:
        if isinstance(answer, (bytes, str)):
            try:
                answer = json.loads(answer or '{}')
            except ValueError:
                answer = {'raw': str(answer)[:300]}
        if status is None or status >= 300 or status < 200:
            raise BmcError(
                'BMC %s rejected the image (HTTP %s): %s' % (self.config.address, status, redfish_message(answer)), code='bmc_rejected', http_status=status
            )
        task = answer.get('@odata.id') if isinstance(answer, dict) else None
        if not task or '/Task' not in task:
            task = (answer.get('TaskMonitor') if isinstance(answer, dict) else None) or task
        if not task or '/Task' not in task:
            # Following anything else would poll a resource with no TaskState until the timeout.
            raise BmcError('BMC %s accepted the image but returned no task to follow (%s)' % (self.config.address, task or 'nothing'), code='bmc_protocol')
        return task

    def follow(self, task_url: str, timeout: float, poll_interval: float = 2.0, progress: TaskProgress | None = None) -> Json:
        """Poll the task until it ends; a task that never ends is an error after ``timeout`` seconds."""
        deadline = self.clock() + timeout
        shown: tuple[str, Any] | None = None
        while True:
            task = self.request(task_url)
            state = task.get('TaskState', 'Unknown')
            percent = task.get('PercentComplete')
            if progress and (state, percent) != shown:
                progress(state, percent)
                shown = (state, percent)
            if state == 'Completed':
                return task
            if state in TASK_FAILED:
                raise BmcError(
                    'the BMC task %s ended in %s: %s' % (task_url, state, redfish_message(task) or 'no message'), code='bmc_task_failed', task_state=state
                )
            if self.clock() >= deadline:
                raise BmcError(
                    'the BMC task %s did not end within %d s (last state %s, %s%%)' % (task_url, timeout, state, percent),
                    code='bmc_task_timeout',
                    task_state=state,
                )
            self.sleep(poll_interval)

    def reset_system(self) -> Any:
        """Power cycle the server (ComputerSystem.Reset), as an update that waits for a reset asks."""
        try:
            return self.command().set_power('boot')
        except (OSError, pyghmi_exceptions.PyghmiException, ValueError, KeyError) as exc:
            raise self._classify(exc) from exc

    def reset_bmc(self) -> Any:
        try:
            return self.command().reset_bmc()
        except (OSError, pyghmi_exceptions.PyghmiException, ValueError, KeyError) as exc:
            raise self._classify(exc) from exc


def firmware_versions(inventory: Inventory) -> dict[str, str]:
    """module_id -> version from a BMC's firmware inventory (the first component of each module)."""
    versions: dict[str, str] = {}
    for item in inventory['firmware']:
        if item['module'] and item['version'] and item['module'] not in versions:
            versions[item['module']] = item['version']
    return versions


def redfish_message(body: Any) -> str:
    """The human part of a Redfish answer: error message(s) or task messages."""
    if not isinstance(body, dict):
        return ''
    error: Any = body.get('error') if isinstance(body.get('error'), dict) else {}  # not {"error": "text"} or null
    infos = error.get('@Message.ExtendedInfo') or body.get('Messages') or []
    texts = [info.get('Message', '') for info in infos if isinstance(info, dict)]
    if not texts and error.get('message'):
        texts = [error['message']]
    return '; '.join(text for text in texts if text)


def needs_reset(task: Json) -> bool:
    """Whether a finished update task says the new firmware waits for a reset."""
    for message in task.get('Messages', []) or []:
        if not isinstance(message, dict):
            continue
        words = ('%s %s' % (message.get('MessageId', ''), message.get('Message', ''))).lower()
        if any(word in words for word in RESET_WORDS):
            return True
    return False


class IpmiBmc:
    """One IPMI BMC: firmware revision and power state; no firmware update through IPMI."""

    def __init__(self, config: BmcConfig) -> None:
        self.config = config
        self._command: Any = None  # pyghmi's ipmi Command

    def command(self) -> Any:
        """One client per BMC: pyghmi shares IPMI sessions per process, and a second client for the same BMC can hang on it."""
        if self._command is not None:
            return self._command
        from pyghmi.ipmi import command as ipmi_command

        config = self.config
        try:
            self._command = ipmi_command.Command(bmc=config.address, userid=config.username, password=config.password, port=config.port or 623)
            return self._command
        except (OSError, pyghmi_exceptions.PyghmiException) as exc:
            text = _reason(exc)
            if 'password' in text.lower() or 'unauthorized' in text.lower() or 'rakp' in text.lower():
                raise BmcError('BMC %s refused the user name or password (IPMI)' % config.address, code='bmc_auth_failed') from exc
            raise BmcError('BMC %s cannot be reached over IPMI: %s' % (config.address, text), code='bmc_unreachable') from exc

    def inventory(self) -> Inventory:
        command = self.command()
        try:
            device = command.xraw_command(netfn=6, command=1)['data']
            power = command.get_power()['powerstate']
        except (OSError, pyghmi_exceptions.PyghmiException, KeyError) as exc:
            raise BmcError('BMC %s did not answer over IPMI: %s' % (self.config.address, _reason(exc)), code='bmc_unreachable') from exc
        revision = ipmi_firmware_revision(bytes(device))
        return {
            'model': '',
            'manufacturer': '',
            'power': power,
            'system': None,
            'firmware': [{'name': 'BMC', 'id': 'bmc', 'version': revision, 'module': 'bmc-firmware', 'updateable': False, 'url': None}],
        }

    def versions(self) -> dict[str, str]:
        return {'bmc-firmware': self.inventory()['firmware'][0]['version']}

    def reset_system(self) -> Any:
        """Power cycle the server (Chassis Control: on when off, else reset), for power_cycle: standard IPMI does that much."""
        try:
            return self.command().set_power('boot')
        except (OSError, pyghmi_exceptions.PyghmiException) as exc:
            raise BmcError('BMC %s did not power cycle the server over IPMI: %s' % (self.config.address, _reason(exc)), code='bmc_unreachable') from exc

    def refuse_update(self) -> None:
        raise BmcError(
            'BMC %s is reached over IPMI, which has no standard firmware update: use Redfish (bmc_protocol: redfish) or the agent' % self.config.address,
            code='ipmi_update_unsupported',
        )


def ipmi_firmware_revision(device_id: bytes) -> str:
    """Get Device ID answer -> 'major.minor' (byte 2: major in bits 0-6; byte 3: minor in BCD)."""
    if len(device_id) < 4:
        raise BmcError('Get Device ID answer too short (%d bytes)' % len(device_id), code='bmc_protocol')
    major = device_id[2] & 0x7F
    minor = device_id[3]
    return '%d.%02x' % (major, minor)


def connect(config: BmcConfig) -> RedfishBmc | IpmiBmc:
    return RedfishBmc(config) if config.protocol == 'redfish' else IpmiBmc(config)


CAUSE_EARLIER = 'an earlier package failed'
#: errors after which the firmware may be half written: the server is "apply failed" until it restarts (§2.1.6)
BLOCKING_ERRORS = ('bmc_task_failed', 'bmc_task_timeout')


def run_plan(
    bmc: RedfishBmc,
    items: Sequence[Mapping[str, Any]],
    sources: Mapping[str, str],
    method: str = 'push',
    apply_time: str = 'OnReset',
    task_timeout: float = 1800,
    poll_interval: float = 2.0,
    progress: PlanProgress | None = None,
    inventory: Inventory | None = None,
) -> list[dict[str, Any]]:
    """Run the ordered plan items through the BMC one after the other (the same order as the agent path).

    ``sources`` maps a package id to the local file (push) or the ImageURI (simple_update); ``inventory``
    (as read just before) gives the components to target. After a failure the rest are cancelled, as the agent's runner does. Returns one result per item.
    """
    targets: dict[str, str] = {}
    if items:
        for component in (inventory or bmc.inventory())['firmware']:
            if component['module'] and component['url'] and component['module'] not in targets:
                targets[component['module']] = component['url']
    results: list[dict[str, Any]] = []
    failed = False
    for item in items:
        result = dict(item, status='waiting', cause=None, error=None, reset_required=False)
        results.append(result)
        if failed:
            result.update(status='cancelled', cause=CAUSE_EARLIER)
            continue
        chosen = [targets[item['module_id']]] if item['module_id'] in targets else []
        try:
            if progress:
                progress(item, 'sending', None)
            if method == 'push':
                task_url = bmc.push(sources[item['package_id']], chosen, apply_time)
            else:
                task_url = bmc.simple_update(sources[item['package_id']], chosen, apply_time)

            def report(state: str, percent: Any, item: Mapping[str, Any] = item) -> None:
                if progress:
                    progress(item, state, percent)

            task = bmc.follow(task_url, task_timeout, poll_interval, report)
            result.update(status='succeeded', task=task_url, messages=redfish_message(task), reset_required=bool(item['reboot_required'] or needs_reset(task)))
        except BmcError as exc:
            result.update(status='failed', cause=exc.msg, error=exc.code, blocks=exc.code in BLOCKING_ERRORS)
            failed = True
    return results
