"""squid on 127.0.0.1 as a forward proxy, open or requiring Basic, Digest or NTLM auth: SquidProxy.

No caching (every request reaches the origin); the access log is parsed into dicts for tests.
"""

import contextlib
import hashlib
import os
import pwd
import secrets
import signal
import subprocess
import urllib.parse
from pathlib import Path

from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port
from ansible_collections.exup.fleet.tests.services.processes import Daemon, complete_lines, find_program, log_tail
from ansible_collections.exup.fleet.tests.services.service import Service

SQUID_HELPER_DIRS = ("/usr/lib/squid", "/usr/lib64/squid", "/usr/libexec/squid")


def squid_helper(name: str) -> str:
    """Path of a squid helper program such as basic_ncsa_auth (its directory differs by distribution)."""
    return find_program(name, *(os.path.join(d, name) for d in SQUID_HELPER_DIRS))


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


class SquidProxy(Service):
    """squid on 127.0.0.1 as a forward proxy, open to localhost or requiring Basic/Digest/NTLM auth.

    CONNECT is allowed to any port (test servers use random ports).
    """

    kind = "squid"
    realm = "exup-test"

    def __init__(self, auth: str | None = None, user: str = "exup", password: str = "s3cret", *, port: int | None = None):
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
        entries: list[dict] = []
        for line in complete_lines(self.access_log_path):
            fields = dict(zip(_SQUID_LOG_FIELDS, line.split(), strict=False))
            numbers = {"bytes": int(fields["bytes"]), "elapsed_ms": int(fields["elapsed_ms"])}
            entries.append({**fields, **numbers, "status": int(fields["result"].rpartition("/")[2])})
        return entries

    def _auth_config(self) -> tuple[str, str]:
        """squid.conf lines for the auth scheme, and the http_access rule that lets clients in."""
        if self.auth is None:
            return "", "http_access allow localsrc"
        if self.auth == "basic":
            passwd = self.workdir / "htpasswd"
            # htpasswd (apache2-utils) writes an MD5 (apr1) hash, which basic_ncsa_auth reads.
            htpasswd = find_program("htpasswd", "/usr/bin/htpasswd")
            subprocess.run([htpasswd, "-b", "-c", "-m", str(passwd), self.user, self.password], check=True, capture_output=True)
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
        conf.write_text(
            _SQUID_CONF.format(
                host=LOOPBACK, port=self.port, workdir=self.workdir, log_format=_SQUID_LOG_FORMAT, auth_lines=auth_lines, access_lines=access_lines
            )
        )
        if os.geteuid() == 0:
            # Started as root, squid switches to user proxy and runs its helpers as proxy: they
            # must reach the password files and squid must write its logs here.
            proxy = pwd.getpwnam("proxy")
            for path in [self.workdir, *self.workdir.iterdir()]:
                os.chown(path, proxy.pw_uid, proxy.pw_gid)
        # -N: stay in the foreground, no SMP workers; -n: our own shared memory names.
        argv = [find_program("squid", "/usr/sbin/squid"), "-N", "-n", self.service_name, "-f", str(conf)]
        self._daemon = Daemon("squid", argv, self.workdir, [self.cache_log_path])
        self._daemon.start()
        # Wait for squid's own "listening" line, not a probe connection: a probe would add an
        # "error:transaction-end-before-headers" line to the access log that tests count.
        self._daemon.wait_ready(lambda: "Accepting HTTP Socket connections" in log_tail(self.cache_log_path))

    def _stop_daemon(self, daemon: Daemon) -> None:
        # Even with shutdown_lifetime 0 a graceful squid exit takes 2-3 s (its shutdown steps wait
        # for 1 s timers). Tests need no graceful exit: the access log is written unbuffered, so
        # kill squid and its helpers at once and remove the shared memory files it leaves.
        try:
            daemon.stop(signal.SIGKILL, grace=2.0)
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
