"""OpenSSH's sshd as root on loopback addresses, public key login only: SshServer (the lab's hosts use it).

One sshd process listens on at most 16 sockets, so more addresses get more sshd processes.
"""

import contextlib
import os
import signal
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ansible_collections.exup.fleet.tests.services.ports import LOOPBACK, free_port, loopback_address, port_accepts
from ansible_collections.exup.fleet.tests.services.processes import Daemon, ServiceError, find_program, kill_tree, log_tail, process_tree
from ansible_collections.exup.fleet.tests.services.service import Service

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


class SshServer(Service):
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

    def __init__(self, addresses=(LOOPBACK,), *, port: int | None = None, directory: str | os.PathLike | None = None, force_commands: dict | None = None):
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
        self._daemons: list[Daemon] = []

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
        return [
            "ssh",
            "-i",
            str(self.client_key_path),
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            f"root@{address or self.addresses[0]}",
        ]

    def _shards(self) -> list[list[str]]:
        return [self.addresses[index : index + SSHD_MAX_LISTEN] for index in range(0, len(self.addresses), SSHD_MAX_LISTEN)]

    def _write_keys(self) -> None:
        for path, key in ((self.host_key_path, ed25519.Ed25519PrivateKey.generate()), (self.client_key_path, ed25519.Ed25519PrivateKey.generate())):
            private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
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
        port = self.port = self.requested_port or free_port()
        self._write_keys()
        self.log_path.write_text("")
        self._daemons = []
        for index, addresses in enumerate(self._shards()):
            conf = self.workdir / f"sshd-{index}.conf"
            conf.write_text(
                _SSHD_CONF.format(
                    port=port,
                    listen_lines="\n".join(f"ListenAddress {address}" for address in addresses),
                    host_key=self.host_key_path,
                    pid_file=self.workdir / f"sshd-{index}.pid",
                    authorized_keys=self.authorized_keys_path,
                    sftp_server=sftp_server,
                    match_blocks="".join(
                        _SSHD_MATCH.format(address=address, command=self.force_commands[address]) for address in addresses if address in self.force_commands
                    ),
                )
            )
            # -D: foreground; -E: log to our file instead of syslog.
            daemon = Daemon(f"sshd-{index}", [program, "-D", "-f", str(conf), "-E", str(self.log_path)], self.workdir, [self.log_path])
            self._daemons.append(daemon)
            self._daemon = self._daemons[0]  # from now on stop() cleans up
            daemon.start()
        for index, (daemon, addresses) in enumerate(zip(self._daemons, self._shards(), strict=True)):
            daemon.wait_ready(lambda d=daemon, a=addresses, i=index: self._ready(d, a, i, port))

    def _ready(self, daemon: Daemon, addresses: list[str], index: int, port: int) -> bool:
        # sshd writes its pid file after binding; an address it could not bind is only an error
        # in the log (it goes on with the others), and a connect would then reach someone else.
        if "Address already in use" in log_tail(self.log_path):
            raise daemon.error("could not bind an address: Address already in use")
        pid_file = self.workdir / f"sshd-{index}.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        return pid == str(daemon.pid) and all(port_accepts(port, address) for address in addresses)

    def _stop_daemon(self, daemon: Daemon) -> None:
        # daemon is the first of self._daemons: every one stops. Session processes (setsid) are not in the daemon's process group: find them first.
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
