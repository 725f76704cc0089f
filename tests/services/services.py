"""Real servers on loopback for system tests: nginx, squid, sshd and a hostile HTTP server.

Every server listens on 127.0.0.1 only (sshd: on given 127.0.0.0/8 addresses), on a free port, and
keeps its config, logs and pid file in a private temp directory that is removed when it stops. Each
is a small class with start()/stop() (also usable as a context manager) plus a generator-based
context manager (nginx_server, squid_proxy, ssh_server, hostile_http_server) that always stops it,
even when the test fails.
A server that fails to start raises ServiceError carrying its error log.
"""

import contextlib
import dataclasses
import datetime
import email.utils
import hashlib
import http.server
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
SQUID_HELPER_DIRS = ("/usr/lib/squid", "/usr/lib64/squid", "/usr/libexec/squid")


class ServiceError(RuntimeError):
    """A test server could not be started (the message carries its logs)."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """Ask the kernel for a free loopback port.

    There is a small window in which another process could take it; a start that then fails
    says "Address already in use" in its ServiceError.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def find_program(name: str, *candidates: str) -> str:
    """Find a server binary; /usr/sbin is often not on a non-root PATH, so try given paths too."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(f"{name} not found (install it, e.g. with scripts/setup.sh)")


def squid_helper(name: str) -> str:
    """Path of a squid helper program such as basic_ncsa_auth (its directory differs by distribution)."""
    return find_program(name, *(os.path.join(d, name) for d in SQUID_HELPER_DIRS))


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    """True when something accepts TCP connections on the loopback port (of host, 127.0.0.1 by default)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_text(path: Path, limit: int = 20000) -> str:
    """The end of a log file (errors are at the end), or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<{path.name}: {exc.strerror}>"
    return text[-limit:]


def _complete_lines(path: Path) -> list[str]:
    """The finished lines of a log that a server may be writing to right now."""
    if not path.exists():
        return []
    return [line for line in path.read_text().split("\n")[:-1] if line.strip()]


def _how_it_ended(pid: int) -> str | None:
    """How our child process ended, or None while it runs. Never reaps it (see _Daemon.stop)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # already reaped
        return "exited"
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return f"exited with status {info.si_status}"
    return f"was killed by signal {info.si_status}"


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """A test CA and a server certificate for 127.0.0.1 and localhost signed by it (PEM files)."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def make_tls_files(directory: Path, *, hostname: str = "localhost") -> TlsFiles:
    """Write a fresh test CA and a server certificate signed by it into directory.

    A separate CA (instead of one self-signed leaf) because Python 3.13's default TLS context is
    strict (VERIFY_X509_STRICT): it wants a real CA with key usage and key identifiers.
    EC P-256 keys because they are generated in microseconds.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exup test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname),
                                                    x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    files.key_path.chmod(0o600)
    return files


class _Daemon:
    """A server binary run in the foreground, in its own process group.

    The own group lets stop() also kill the server's children (nginx workers, squid's auth
    helpers) even when the server itself died badly.
    """

    def __init__(self, name: str, argv: list[str], workdir: Path, logs: list[Path]):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.output_path = workdir / f"{name}.out"
        self.logs = logs + [self.output_path]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.output_path, "wb") as output:
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with  # stop() waits for it
                self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True)

    def error(self, reason: str) -> ServiceError:
        """A ServiceError that carries every log of the server."""
        parts = [f"{self.name} {reason}", "command: " + " ".join(self.argv)]
        parts += [f"--- {path}:\n{_read_text(path)}" for path in self.logs]
        return ServiceError("\n".join(parts))

    def wait_ready(self, ready, timeout: float = START_TIMEOUT) -> None:
        """Poll ready() until it is true; fail early with the logs if the server exits."""
        deadline = time.monotonic() + timeout
        while True:
            ended = _how_it_ended(self.proc.pid)
            if ended:
                raise self.error(f"{ended} during start")
            if ready():
                return
            if time.monotonic() > deadline:
                raise self.error(f"not ready after {timeout} s")
            time.sleep(0.01)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """Send sig, give the server grace seconds to exit, then kill its whole process group."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return  # never started, or already reaped: its pid may belong to someone else now
        # The leader is reaped only at the very end: while it exists (even as a zombie) its pid
        # and process group id cannot be reused, so killpg() can only hit our own processes.
        os.kill(proc.pid, sig)
        deadline = time.monotonic() + grace
        while _how_it_ended(proc.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class _Service:
    """Shared lifecycle: private temp dir, timing, context manager."""

    kind = "service"

    def __init__(self):
        self.workdir: Path | None = None
        self.directory: Path | None = None  # a fixed workdir, kept at stop (else a temp dir, removed)
        self.requested_port: int | None = None
        self._daemon: _Daemon | None = None
        self.start_seconds: float | None = None  # measured, for reports on test speed
        self.stop_seconds: float | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._daemon.proc.pid if self._daemon and self._daemon.proc else None

    def start(self):
        began = time.monotonic()
        for attempt in range(3):
            if self.directory is None:
                self.workdir = Path(tempfile.mkdtemp(prefix=f"exup-{self.kind}-"))
            else:
                self.workdir = self.directory
                self.workdir.mkdir(parents=True, exist_ok=True)
            try:
                self._start()
                break
            except ServiceError as exc:
                self.stop()
                # free_port() can race with another process: take a new port, unless the
                # caller chose this one.
                if self.requested_port or attempt == 2 or "Address already in use" not in str(exc):
                    raise
            except BaseException:
                self.stop()
                raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        began = time.monotonic()
        try:
            if self._daemon is not None:
                self._stop_daemon()
        finally:
            self._daemon = None
            if self.workdir is not None and self.directory is None:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.stop_seconds = time.monotonic() - began

    def _start(self) -> None:
        raise NotImplementedError

    def _stop_daemon(self) -> None:
        self._daemon.stop()


# --------------------------------------------------------------------------- nginx

# One JSON object per request (escape=json keeps it valid), so tests can count requests and bytes.
# completion is "OK" only when the whole response was sent.
_NGINX_LOG_FORMAT = (
    '{"time":"$time_iso8601","remote":"$remote_addr","method":"$request_method","uri":"$request_uri",'
    '"status":$status,"body_bytes_sent":$body_bytes_sent,"bytes_sent":$bytes_sent,'
    '"completion":"$request_completion","range":"$http_range","if_range":"$http_if_range",'
    '"if_none_match":"$http_if_none_match","if_modified_since":"$http_if_modified_since",'
    '"user_agent":"$http_user_agent","via":"$http_via","x_forwarded_for":"$http_x_forwarded_for"}'
)

_NGINX_CONF = """\
# Private test nginx: foreground master, runs as root so it can read any test directory.
daemon off;
master_process on;
worker_processes 1;
user root;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    types {{
        application/xml xml;
        application/json json;
        text/plain txt;
    }}
    default_type application/octet-stream;
    sendfile on;
    log_format exup escape=json '{log_format}';
    access_log {workdir}/access.log exup;

    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;

    server {{
        listen {host}:{port}{ssl};
        server_name localhost;
        root "{root}";
{tls_lines}
        # ETag, Last-Modified and byte ranges are nginx defaults for static files.
        location / {{
        }}
    }}
}}
"""


class NginxServer(_Service):
    """nginx serving root_dir as static files on 127.0.0.1 (files may be added while it runs)."""

    kind = "nginx"

    def __init__(self, root_dir: str | os.PathLike, *, tls: bool = False, port: int | None = None):
        super().__init__()
        self.root_dir = Path(root_dir).resolve()
        self.tls = tls
        self.requested_port = port
        self.port: int | None = None
        self.tls_files: TlsFiles | None = None

    @property
    def base_url(self) -> str:
        """Like "http://127.0.0.1:8123" (no trailing slash)."""
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + "/" + path.lstrip("/")

    @property
    def ca_path(self) -> Path | None:
        """The CA certificate to trust for tls=True, else None."""
        return self.tls_files.ca_path if self.tls_files else None

    @property
    def access_log_path(self) -> Path:
        return self.workdir / "access.log"

    @property
    def error_log_path(self) -> Path:
        return self.workdir / "error.log"

    def access_log(self) -> list[dict]:
        """The requests nginx has finished so far, oldest first (see _NGINX_LOG_FORMAT for keys)."""
        return [json.loads(line) for line in _complete_lines(self.access_log_path)]

    def wait_for_log(self, count: int, timeout: float = 5.0) -> list[dict]:
        """The access log once it has at least count entries.

        nginx writes an entry only when it has finished the response, which may be just after the
        client has read the last byte, so tests should wait rather than read at once.
        """
        deadline = time.monotonic() + timeout
        while True:
            entries = self.access_log()
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.01)

    def _start(self) -> None:
        if not self.root_dir.is_dir():
            raise ServiceError(f"nginx root {self.root_dir} is not a directory")
        self.port = self.requested_port or free_port()
        tls_lines = ""
        if self.tls:
            self.tls_files = make_tls_files(self.workdir)
            tls_lines = (f"        ssl_certificate {self.tls_files.cert_path};\n"
                         f"        ssl_certificate_key {self.tls_files.key_path};\n")
        conf = self.workdir / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(
            workdir=self.workdir, log_format=_NGINX_LOG_FORMAT, host=LOOPBACK, port=self.port,
            ssl=" ssl" if self.tls else "", root=self.root_dir, tls_lines=tls_lines))
        # -e: the error log before the config is read (the default is under /var/log).
        argv = [find_program("nginx", "/usr/sbin/nginx"), "-p", str(self.workdir), "-c", str(conf),
                "-e", str(self.error_log_path)]
        self._daemon = _Daemon("nginx", argv, self.workdir, [self.error_log_path])
        self._daemon.start()
        self._daemon.wait_ready(self._ready)

    def _ready(self) -> bool:
        # nginx writes its pid file only after it has bound its port; a bare connect could reach
        # whoever else holds the port (nginx then retries bind() for 2.5 s and exits).
        pid_file = self.workdir / "nginx.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        return pid == str(self._daemon.proc.pid) and port_accepts(self.port)

    def _stop_daemon(self) -> None:
        # SIGTERM is nginx's fast shutdown: it drops open connections at once.
        self._daemon.stop(signal.SIGTERM)


@contextlib.contextmanager
def nginx_server(root_dir: str | os.PathLike, *, tls: bool = False, port: int | None = None):
    """Run nginx serving root_dir; yields the started NginxServer, stops it on exit."""
    server = NginxServer(root_dir, tls=tls, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- squid

# Space separated, no field can contain a space (squid encodes URLs): see SquidProxy.access_log.
_SQUID_LOG_FIELDS = ("time", "elapsed_ms", "client", "result", "bytes", "method", "url", "user", "hierarchy")
_SQUID_LOG_FORMAT = "%ts.%03tu %tr %>a %Ss/%03>Hs %<st %rm %ru %un %Sh/%<a"

_SQUID_CONF = """\
# Private test squid: no disk cache and no caching at all (every request must reach the origin,
# so tests can count requests there), logs in the temp dir, no waiting for clients at shutdown.
http_port {host}:{port}
pid_filename {workdir}/squid.pid
cache_log {workdir}/cache.log
logformat exup {log_format}
access_log stdio:{workdir}/access.log exup
cache_store_log none
coredump_dir {workdir}
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
visible_hostname localhost
# Never ask the machine's resolver (an external address); tests use IP literals.
dns_nameservers 127.0.0.1
cache deny all

{auth_lines}
acl localsrc src 127.0.0.1/32
http_access deny !localsrc
{access_lines}
http_access deny all
"""


class SquidProxy(_Service):
    """squid on 127.0.0.1 as a forward proxy, open to localhost or requiring Basic/Digest/NTLM auth.

    CONNECT is allowed to any port (test servers use random ports).
    """

    kind = "squid"
    realm = "exup-test"

    def __init__(self, auth: str | None = None, user: str = "exup", password: str = "s3cret", *,
                 port: int | None = None):
        super().__init__()
        if auth not in (None, "basic", "digest", "ntlm"):
            raise ValueError(f"unknown proxy auth {auth!r}")
        self.auth = auth
        self.user = user
        self.password = password
        self.requested_port = port
        self.port: int | None = None
        # squid names its shared memory files /dev/shm/<service>-*.shm: a unique name keeps
        # parallel squids apart and lets stop() remove exactly ours.
        self.service_name = "exup" + secrets.token_hex(4)

    @property
    def url(self) -> str:
        """Like "http://127.0.0.1:3128", without credentials."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def url_with_credentials(self) -> str:
        """Like "http://user:password@127.0.0.1:3128" (percent-encoded)."""
        quote = urllib.parse.quote
        return f"http://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{LOOPBACK}:{self.port}"

    @property
    def access_log_path(self) -> Path:
        return self.workdir / "access.log"

    @property
    def cache_log_path(self) -> Path:
        return self.workdir / "cache.log"

    def access_log(self) -> list[dict]:
        """The requests squid has finished so far; keys in _SQUID_LOG_FIELDS plus status (ints for numbers).

        result is like "TCP_MISS/200" or "TCP_DENIED/407"; user is "-" when none authenticated.
        """
        entries = []
        for line in _complete_lines(self.access_log_path):
            entry = dict(zip(_SQUID_LOG_FIELDS, line.split()))
            entry["status"] = int(entry["result"].rpartition("/")[2])
            entry["bytes"], entry["elapsed_ms"] = int(entry["bytes"]), int(entry["elapsed_ms"])
            entries.append(entry)
        return entries

    def _auth_config(self) -> tuple[str, str]:
        """squid.conf lines for the auth scheme, and the http_access rule that lets clients in."""
        if self.auth is None:
            return "", "http_access allow localsrc"
        if self.auth == "basic":
            passwd = self.workdir / "htpasswd"
            # htpasswd (apache2-utils) writes an MD5 (apr1) hash, which basic_ncsa_auth reads.
            htpasswd = find_program("htpasswd", "/usr/bin/htpasswd")
            subprocess.run([htpasswd, "-b", "-c", "-m", str(passwd), self.user, self.password],
                           check=True, capture_output=True)
            program = f"{squid_helper('basic_ncsa_auth')} {passwd}"
        elif self.auth == "digest":
            passwd = self.workdir / "digest_passwd"
            # -c: lines are user:realm:HA1 with HA1 = md5(user:realm:password), not plain passwords.
            ha1 = hashlib.md5(f"{self.user}:{self.realm}:{self.password}".encode(), usedforsecurity=False).hexdigest()
            passwd.write_text(f"{self.user}:{self.realm}:{ha1}\n")
            program = f"{squid_helper('digest_file_auth')} -c {passwd}"
        else:
            # ntlm_fake_auth accepts any NTLM handshake: we only need squid to demand NTLM.
            program = squid_helper("ntlm_fake_auth")
        lines = [f"auth_param {self.auth} program {program}", f"auth_param {self.auth} children 2"]
        if self.auth in ("basic", "digest"):
            lines.append(f"auth_param {self.auth} realm {self.realm}")
        lines.append("acl authed proxy_auth REQUIRED")
        return "\n".join(lines), "http_access allow authed"

    def _start(self) -> None:
        self.port = self.requested_port or free_port()
        auth_lines, access_lines = self._auth_config()
        conf = self.workdir / "squid.conf"
        conf.write_text(_SQUID_CONF.format(
            host=LOOPBACK, port=self.port, workdir=self.workdir, log_format=_SQUID_LOG_FORMAT,
            auth_lines=auth_lines, access_lines=access_lines))
        if os.geteuid() == 0:
            # Started as root, squid switches to user proxy and runs its helpers as proxy: they
            # must reach the password files and squid must write its logs here.
            proxy = pwd.getpwnam("proxy")
            for path in [self.workdir, *self.workdir.iterdir()]:
                os.chown(path, proxy.pw_uid, proxy.pw_gid)
        # -N: stay in the foreground, no SMP workers; -n: our own shared memory names.
        argv = [find_program("squid", "/usr/sbin/squid"), "-N", "-n", self.service_name, "-f", str(conf)]
        self._daemon = _Daemon("squid", argv, self.workdir, [self.cache_log_path])
        self._daemon.start()
        # Wait for squid's own "listening" line, not a probe connection: a probe would add an
        # "error:transaction-end-before-headers" line to the access log that tests count.
        self._daemon.wait_ready(lambda: "Accepting HTTP Socket connections" in _read_text(self.cache_log_path))

    def _stop_daemon(self) -> None:
        # Even with shutdown_lifetime 0 a graceful squid exit takes 2-3 s (its shutdown steps wait
        # for 1 s timers). Tests need no graceful exit: the access log is written unbuffered, so
        # kill squid and its helpers at once and remove the shared memory files it leaves.
        try:
            self._daemon.stop(signal.SIGKILL, grace=2.0)
        finally:
            for shm in Path("/dev/shm").glob(f"{self.service_name}-*"):
                with contextlib.suppress(FileNotFoundError):
                    shm.unlink()


@contextlib.contextmanager
def squid_proxy(auth: str | None = None, user: str = "exup", password: str = "s3cret", *, port: int | None = None):
    """Run squid (auth None, "basic", "digest" or "ntlm"); yields the started SquidProxy, stops it on exit."""
    proxy = SquidProxy(auth, user, password, port=port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


# --------------------------------------------------------------------------- sshd

#: OpenSSH's MAX_LISTEN_SOCKS: one sshd process listens on at most 16 sockets.
SSHD_MAX_LISTEN = 16

_SSHD_CONF = """\
# Private test sshd: runs as root, own host key and authorized keys, loopback addresses only,
# public key login only.
Port {port}
{listen_lines}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# A program, not internal-sftp: a lab host's ForceCommand (tests/lab/login.sh) runs it in the host's view.
Subsystem sftp {sftp_server}
MaxStartups 200
MaxSessions 200
LogLevel ERROR
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
{match_blocks}"""

#: One per address that has a forced command (a lab host's login, tests/lab/login.sh); Match blocks end the file.
_SSHD_MATCH = """
Match LocalAddress {address}
    ForceCommand {command}
"""


def loopback_address(address: str) -> str:
    """address in canonical form; ValueError unless it is an IPv4 loopback address (127.0.0.0/8)."""
    ip = ipaddress.ip_address(address)
    if ip.version != 4 or not ip.is_loopback:
        raise ValueError(f"{address} is not an IPv4 loopback address (127.0.0.0/8)")
    return str(ip)


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks) of a process, None when it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def process_tree(pid: int) -> dict[int, int]:
    """pid and all its descendants as they are now: pid -> start time (to recognise them later).

    sshd's session processes call setsid(), so a process group kill misses them.
    """
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                table[int(entry.name)] = stat
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in table and current not in found:
            found[current] = table[current][2]
            todo.extend(child for child, stat in table.items() if stat[1] == current)
    return found


def kill_tree(tree: dict[int, int], sig: int = signal.SIGKILL) -> None:
    """Send sig to each process of a process_tree() that is still the same process (same start time)."""
    for pid, started in tree.items():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == started and stat[0] != "Z":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def detached_running(pid: int, marker: str) -> bool:
    """True when process pid runs and its command line contains marker (a config path: not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    stat = _proc_stat(pid)
    return marker in cmdline and stat is not None and stat[0] != "Z"


def stop_detached(pid: int, marker: str, grace: float = 5.0) -> bool:
    """Stop a server that another process started (e.g. the lab's command line), with its descendants.

    The process's command line must contain marker (its config path), so a reused pid is left
    alone. SIGTERM, up to grace seconds, then SIGKILL for whatever of its tree is left.
    Returns False when it was not running.
    """
    if not detached_running(pid, marker):
        return False
    tree = process_tree(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while detached_running(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_tree(tree)
    return True


class SshServer(_Service):
    """OpenSSH's sshd as root on loopback addresses (one port for all), public key login only.

    It has its own host key and an ed25519 client key pair (client_key_path) whose public key
    is the only authorized key; root may log in with it. Errors go to log_path. One sshd
    process listens on at most 16 sockets, so more addresses get more sshd processes sharing
    keys, port and log. directory keeps the files there and leaves them at stop (for a lab that
    outlives this process); by default they are in a temp dir removed at stop. force_commands
    maps an address to the command sshd runs for every session there (a Match LocalAddress
    block with ForceCommand; the client's command is in SSH_ORIGINAL_COMMAND): the lab's hosts
    use it to log in to their own view (tests/lab/login.sh).
    """

    kind = "sshd"

    def __init__(self, addresses=(LOOPBACK,), *, port: int | None = None, directory: str | os.PathLike | None = None,
                 force_commands: dict | None = None):
        super().__init__()
        self.addresses = [loopback_address(address) for address in addresses]
        # address -> command sshd runs for every session there instead of the client's (which it gets in SSH_ORIGINAL_COMMAND)
        self.force_commands = {loopback_address(address): command for address, command in (force_commands or {}).items()}
        if set(self.force_commands) - set(self.addresses):
            raise ValueError("SshServer force_commands name addresses it does not listen on")
        if not self.addresses:
            raise ValueError("SshServer needs at least one address")
        if len(set(self.addresses)) != len(self.addresses):
            raise ValueError("SshServer addresses must be distinct")
        self.requested_port = port
        self.port: int | None = None
        self.directory = Path(directory).resolve() if directory is not None else None
        self._daemons: list[_Daemon] = []

    @property
    def host_key_path(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def client_key_path(self) -> Path:
        """The private key to log in with (OpenSSH format, mode 0600); the public key is next to it (.pub)."""
        return self.workdir / "client_ed25519"

    @property
    def authorized_keys_path(self) -> Path:
        return self.workdir / "authorized_keys"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def config_paths(self) -> list[Path]:
        """One sshd_config per sshd process."""
        return [self.workdir / f"sshd-{index}.conf" for index in range(len(self._shards()))]

    @property
    def pids(self) -> list[int]:
        """The pids of the running sshd processes (one per 16 addresses)."""
        return [daemon.proc.pid for daemon in self._daemons if daemon.proc is not None]

    def ssh_command(self, address: str | None = None) -> list[str]:
        """An ssh command line that logs in as root on address (the first by default); append the remote command."""
        return ["ssh", "-i", str(self.client_key_path), "-p", str(self.port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                f"root@{address or self.addresses[0]}"]

    def _shards(self) -> list[list[str]]:
        return [self.addresses[index:index + SSHD_MAX_LISTEN] for index in range(0, len(self.addresses), SSHD_MAX_LISTEN)]

    def _write_keys(self) -> None:
        for path, key in ((self.host_key_path, ed25519.Ed25519PrivateKey.generate()),
                          (self.client_key_path, ed25519.Ed25519PrivateKey.generate())):
            private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                        serialization.NoEncryption())
            public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # ssh refuses keys others can read
            with os.fdopen(fd, "wb") as handle:
                handle.write(private)
            Path(f"{path}.pub").write_bytes(public + b" exup-test\n")
        self.authorized_keys_path.write_bytes(Path(f"{self.client_key_path}.pub").read_bytes())

    def _start(self) -> None:
        if os.geteuid() != 0:
            raise ServiceError("the test sshd must run as root (it logs users in, root included)")
        # sshd re-executes itself and insists on an absolute path.
        program = os.path.abspath(find_program("sshd", "/usr/sbin/sshd"))
        sftp_server = find_program("sftp-server", "/usr/lib/openssh/sftp-server")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation directory
        self.port = self.requested_port or free_port()
        self._write_keys()
        self.log_path.write_text("")
        self._daemons = []
        for index, addresses in enumerate(self._shards()):
            conf = self.workdir / f"sshd-{index}.conf"
            conf.write_text(_SSHD_CONF.format(
                port=self.port, listen_lines="\n".join(f"ListenAddress {address}" for address in addresses),
                host_key=self.host_key_path, pid_file=self.workdir / f"sshd-{index}.pid",
                authorized_keys=self.authorized_keys_path, sftp_server=sftp_server,
                match_blocks="".join(_SSHD_MATCH.format(address=address, command=self.force_commands[address])
                                     for address in addresses if address in self.force_commands)))
            # -D: foreground; -E: log to our file instead of syslog.
            daemon = _Daemon(f"sshd-{index}", [program, "-D", "-f", str(conf), "-E", str(self.log_path)],
                             self.workdir, [self.log_path])
            self._daemons.append(daemon)
            self._daemon = self._daemons[0]  # from now on stop() cleans up
            daemon.start()
        for index, (daemon, addresses) in enumerate(zip(self._daemons, self._shards())):
            daemon.wait_ready(lambda d=daemon, a=addresses, i=index: self._ready(d, a, i))

    def _ready(self, daemon: _Daemon, addresses: list[str], index: int) -> bool:
        # sshd writes its pid file after binding; an address it could not bind is only an error
        # in the log (it goes on with the others), and a connect would then reach someone else.
        if "Address already in use" in _read_text(self.log_path):
            raise daemon.error("could not bind an address: Address already in use")
        pid_file = self.workdir / f"sshd-{index}.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        return pid == str(daemon.proc.pid) and all(port_accepts(self.port, address) for address in addresses)

    def _stop_daemon(self) -> None:
        # Session processes (setsid) are not in the daemon's process group: find them first.
        trees: dict[int, int] = {}
        for daemon in self._daemons:
            if daemon.proc is not None and daemon.proc.returncode is None:
                trees.update(process_tree(daemon.proc.pid))
        try:
            for daemon in self._daemons:
                daemon.stop(signal.SIGTERM, grace=2.0)
        finally:
            kill_tree(trees)
            self._daemons = []


@contextlib.contextmanager
def ssh_server(addresses=(LOOPBACK,), *, port: int | None = None, directory: str | os.PathLike | None = None):
    """Run an SshServer; yields it started, stops it on exit."""
    server = SshServer(addresses, port=port, directory=directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- hostile HTTP server


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
    headers: object  # http.client.HTTPMessage


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
                self.wfile.write(head[at:at + 1])
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
                chunk = data[offset:offset + size]
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
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"hostile-http-{self.port}", daemon=True)
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
            self._thread.join(timeout=5)
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
